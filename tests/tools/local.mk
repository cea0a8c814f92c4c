# tests/tools: the Python tools shipped for users (plots) and the
# architecture check; the test harness's timing driver; the man page and
# the bash completion.
TESTS += tests/tools/plot.test tests/tools/include_graph.test tests/tools/timed_driver.test \
	tests/tools/completion.test tests/tools/manpage.test
EXTRA_DIST += tests/tools/timed_driver.test tests/tools/completion.test tests/tools/manpage.test tests/tools/plot.test tools/plot.py tests/tools/include_graph.test tools/dev/include_graph.py
