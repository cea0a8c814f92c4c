/* A command run the way the dapt driver runs one (dapt_cli_mpi_init, then
 * dapt_cli_main) whose body makes an MPI call fail: MPI_Bcast from a root
 * that is not a rank (--root, default the communicator's size).  With the
 * MPI_ERRORS_RETURN that dapt_cli_mpi_init sets, the call returns
 * MPI_ERR_ROOT to DAPT_MPI and the job ends with one "dapt: error:" line and
 * exit code 1; under MPI's default handler it would abort inside MPI_Bcast.
 * tests/cli/mpi_errors.test runs it. */
#include <mpi.h>
#include <stdio.h>

#include "dapt/cli.h"

static void usage(void)
{
    printf("usage: mpi_fail [--root N]\n");
}

static dapt_status run(dapt_cli *cli, void *ctx)
{
    const int64_t root = *(const int64_t *)ctx;
    int x = 7;
    return DAPT_MPI(MPI_Bcast(&x, 1, MPI_INT, root < 0 ? cli->size : (int)root, MPI_COMM_WORLD));
}

int main(int argc, char **argv)
{
    if (dapt_cli_mpi_init(&argc, &argv) != DAPT_OK) return DAPT_EXIT_FAILURE;
    int64_t root = -1;
    const dapt_cli_option opts[] = {{.name = "root", .kind = DAPT_OPT_INT, .dest = &root, .min = -1, .max = 1000},
                                    {.name = NULL}};
    const dapt_cli_command cmd = {.name = "mpi_fail", .usage = usage, .options = opts, .run = run, .ctx = &root};
    int code = dapt_cli_main(argc, argv, &cmd);
    if (MPI_Finalize() != MPI_SUCCESS && code == DAPT_EXIT_OK) code = DAPT_EXIT_FAILURE;
    return code;
}
