/* dapt config show|check: the resolved run configuration. */
#include <mpi.h>
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

int dapt_cmd_config(int argc, char **argv)
{
    dapt_cli cli;
    if (dapt_cli_begin(argc, argv, &cli, usage)) return DAPT_EXIT_OK;
    dapt_status st = DAPT_OK;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *action = cli.nrest > 0 ? cli.rest[0] : NULL;
    int with_help = 0;
    for (int i = 1; i < cli.nrest; i++) {
        if (!strcmp(cli.rest[i], "--keys")) {
            with_help = 1;
        } else {
            dapt_cli_fail_all(DAPT_ERROR(DAPT_ERR_ARG, "config: unexpected argument '%s'", cli.rest[i]));
        }
    }
    if (!action || (strcmp(action, "show") && strcmp(action, "check"))) {
        if (rank == 0) usage();
        dapt_cli_free(&cli);
        return DAPT_EXIT_USAGE;
    }
    if (!strcmp(action, "show") && rank == 0) {
        char *text = NULL;
        st = dapt_config_to_ini(&cli.cfg, with_help, &text);
        if (st != DAPT_OK) dapt_cli_fail(st);
        fputs(text, stdout);
        free(text);
    } else if (rank == 0) {
        printf("%s: ok\n", cli.config_path ? cli.config_path : "(defaults)");
    }
    dapt_cli_free(&cli);
    return DAPT_EXIT_OK;
}
