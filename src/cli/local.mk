# src/cli: the dapt driver.  Each command lives in its own cmd_<name>.c
# and is listed once in commands.c.
dapt_SOURCES += src/cli/main.c src/cli/commands.c src/cli/common.c src/cli/watchdog.c src/cli/memory_hint.c \
	src/cli/cmd_version.c src/cli/cmd_config.c src/cli/cmd_inspect.c
