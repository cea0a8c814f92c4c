/* Options shared by every command, and the driver's way of failing. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/log.h"

/* Returns the option's value: "--opt=value" or the next argument. */
static const char *option_value(int argc, char **argv, int *i, const char *name, dapt_status *st)
{
    size_t n = strlen(name);
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (*i + 1 >= argc) {
        *st = DAPT_ERROR(DAPT_ERR_ARG, "option %s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

static int is_option(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && (arg[n] == '\0' || arg[n] == '=');
}

static dapt_status agree_on_config(const dapt_cli *cli, dapt_status st);

dapt_status dapt_cli_parse(int argc, char **argv, dapt_cli *cli)
{
    memset(cli, 0, sizeof *cli);
    dapt_config_defaults(&cli->cfg);
    dapt_status st = DAPT_OK;
    DAPT_CHECK(dapt_alloc((void **)&cli->rest, sizeof(char *) * (size_t)(argc + 1), "arguments"));
    /* Overrides are applied after the file, whatever their order on the line. */
    const char **sets = NULL;
    int nsets = 0;
    DAPT_TRY(dapt_alloc((void **)&sets, sizeof(char *) * (size_t)(argc + 1), "overrides"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (is_option(a, "--config")) {
            cli->config_path = option_value(argc, argv, &i, "--config", &st);
            if (!cli->config_path) goto cleanup;
        } else if (is_option(a, "--set")) {
            const char *v = option_value(argc, argv, &i, "--set", &st);
            if (!v) goto cleanup;
            sets[nsets++] = v;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            cli->verbose = 1;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli->help = 1;
        } else {
            cli->rest[cli->nrest++] = argv[i];
        }
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    dapt_log_setup(rank, cli->verbose, cli->verbose ? DAPT_LOG_DEBUG : DAPT_LOG_INFO);
    if (cli->config_path) DAPT_TRY(dapt_config_load_file(&cli->cfg, cli->config_path));
    for (int k = 0; k < nsets; k++) DAPT_TRY(dapt_config_set(&cli->cfg, sets[k]));
cleanup:
    free(sets);
    return agree_on_config(cli, st);
}

/* FNV-1a, enough to tell whether two texts differ. */
static unsigned long long text_hash(const char *s)
{
    unsigned long long h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Every rank reads the configuration itself; make sure they all succeeded
 * and resolved the same text, so no rank enters a collective the others
 * skip.  A rank whose own parse failed prints its message here, because the
 * caller reports only rank 0's. */
static dapt_status agree_on_config(const dapt_cli *cli, dapt_status st)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return st;
    int failed = st != DAPT_OK, first_failed = failed ? rank : size;
    int any_failed = 0, lowest = size;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&first_failed, &lowest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (any_failed) {
        if (failed && rank != 0) fprintf(stderr, "dapt: error: rank %d: %s\n", rank, dapt_error_message());
        if (!failed)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "rank %d could not read the configuration (see its own message)",
                              lowest);
        return st;
    }
    char *text = NULL;
    unsigned long long h = 0, lo = 0, hi = 0;
    int ok = dapt_config_to_ini(&cli->cfg, 0, &text) == DAPT_OK, all_ok = 0;
    if (ok) h = text_hash(text);
    free(text);
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (!all_ok) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot format the configuration on some rank");
    if (lo != hi)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "the resolved configuration differs between ranks "
                                           "(is the --config file on a filesystem every node sees?)");
    return DAPT_OK;
}

void dapt_cli_free(dapt_cli *cli)
{
    free(cli->rest);
    cli->rest = NULL;
}

void dapt_cli_print_common_help(void)
{
    printf("common options:\n"
           "  --config FILE     run configuration (INI); see `dapt config show --keys`\n"
           "  --set S.K=VALUE   override one key, repeatable (applied after --config)\n"
           "  --verbose, -v     log from every rank, with debug messages\n"
           "  --help, -h        this text\n");
}

static void print_failure(dapt_status st)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const char *msg = dapt_error_message();
    if (size > 1)
        fprintf(stderr, "dapt: error: rank %d: %s\n", rank, *msg ? msg : dapt_status_name(st));
    else
        fprintf(stderr, "dapt: error: %s\n", *msg ? msg : dapt_status_name(st));
    fflush(stderr);
}

static int exit_code_for(dapt_status st)
{
    if (st == DAPT_ERR_INTERRUPTED) return DAPT_EXIT_PREEMPTED;
    if (st == DAPT_ERR_ARG) return DAPT_EXIT_USAGE;
    return DAPT_EXIT_FAILURE;
}

_Noreturn void dapt_cli_fail(dapt_status st)
{
    print_failure(st);
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code_for(st));
    MPI_Finalize();
    exit(exit_code_for(st));
}

_Noreturn void dapt_cli_fail_all(dapt_status st)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) print_failure(st);
    MPI_Finalize();
    exit(exit_code_for(st));
}

dapt_status dapt_cli_expect_no_args(const dapt_cli *cli, const char *command)
{
    if (cli->nrest > 0)
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: unexpected argument '%s' (see dapt %s --help)",
                          command, cli->rest[0], command);
    return DAPT_OK;
}

int dapt_cli_begin(int argc, char **argv, dapt_cli *cli, void (*usage)(void))
{
    dapt_status st = dapt_cli_parse(argc, argv, cli);
    if (st != DAPT_OK) dapt_cli_fail_all(st);
    if (!cli->help) return 0;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) usage();
    dapt_cli_free(cli);
    return 1;
}

dapt_status dapt_cli_positional(const dapt_cli *cli, const char *command, const char **pos, int max, int *npos,
                                int *force)
{
    *npos = 0;
    *force = 0;
    for (int i = 0; i < cli->nrest; i++) {
        if (!strcmp(cli->rest[i], "--force")) *force = 1;
        else if (cli->rest[i][0] == '-' || *npos == max)
            return DAPT_ERROR(DAPT_ERR_ARG, "dapt %s: unexpected argument '%s' (see dapt %s --help)", command,
                              cli->rest[i], command);
        else pos[(*npos)++] = cli->rest[i];
    }
    return DAPT_OK;
}
