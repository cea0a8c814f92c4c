/* dapt config show|check: the resolved run configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"

static void usage(void)
{
    printf("usage: dapt config show [--keys] [--config FILE] [--set S.K=V ...]\n"
           "       dapt config check --config FILE [--set S.K=V ...]\n\n"
           "show prints the resolved configuration as INI (defaults, then the file, then\n"
           "--set overrides); --keys adds each key's meaning and choices.  check only\n"
           "validates and exits non-zero with file:line: key: reason on the first error.\n\n");
    dapt_cli_print_common_help();
}

static dapt_status run(dapt_cli *cli, void *ctx)
{
    const int with_help = *(const int *)ctx;
    const char *action = cli->args[0];
    if (strcmp(action, "show") && strcmp(action, "check")) {
        cli->want_usage = 1;
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt config: unknown action '%s' (show or check)", action);
    }
    if (cli->rank != 0) return DAPT_OK;
    if (!strcmp(action, "show")) {
        char *text = NULL;
        DAPT_CHECK(dapt_config_to_ini(&cli->cfg, with_help, &text));
        fputs(text, stdout);
        free(text);
    } else {
        printf("%s: ok\n", cli->config_path ? cli->config_path : "(defaults)");
    }
    return DAPT_OK;
}

int dapt_cmd_config(int argc, char **argv)
{
    int with_help = 0;
    const dapt_cli_option opts[] = {{.name = "keys", .kind = DAPT_OPT_FLAG, .dest = &with_help}, {.name = NULL}};
    const dapt_cli_command cmd = {.name = "config", .usage = usage, .options = opts, .min_args = 1, .max_args = 1,
                                  .run = run, .ctx = &with_help};
    return dapt_cli_main(argc, argv, &cmd);
}
