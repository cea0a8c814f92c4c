/* dapt train: MLM post-training (and, later, DGA/DAS) with checkpoints and
 * preemption; see include/dapt/train.h and docs/training.md. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/log.h"
#include "dapt/train.h"

static void usage(void)
{
    printf("usage: dapt train --config run.ini [--set S.K=V ...] [--resume] [--force]\n\n"
           "Post-trains a model on data.corpus with train.method (mlm), writing\n"
           "run.output_dir/metrics.csv and run.output_dir/checkpoints/step-N.h5.\n"
           "  --resume   continue from run.output_dir/checkpoints/latest (or the newest\n"
           "             checkpoint that loads); starts at step 0 when there is none\n"
           "  --force    start afresh in an output directory holding a previous run\n"
           "On SIGTERM or SIGUSR1 the ranks checkpoint at the next step boundary and\n"
           "exit with code %d (requeue and resume with --resume).\n\n",
           DAPT_EXIT_PREEMPTED);
    dapt_cli_print_common_help();
}

int dapt_cmd_train(int argc, char **argv)
{
    dapt_cli cli;
    if (dapt_cli_begin(argc, argv, &cli, usage)) return DAPT_EXIT_OK;
    dapt_status st = DAPT_OK;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    dapt_train_opts opts = {0, 0};
    for (int i = 0; i < cli.nrest; i++) {
        if (!strcmp(cli.rest[i], "--resume")) opts.resume = 1;
        else if (!strcmp(cli.rest[i], "--force")) opts.force = 1;
        else dapt_cli_fail_all(DAPT_ERROR(DAPT_ERR_ARG, "dapt train: unexpected argument '%s' (see dapt train --help)", cli.rest[i]));
    }
    dapt_train_result res;
    st = dapt_train_run(&cli.cfg, &opts, &res);
    if (st != DAPT_OK) {
        if (res.agreed) dapt_cli_fail_all(st);
        dapt_cli_fail(st);
    }
    if (isnan(res.last_eval_loss))
        dapt_info("train: done, %lld steps, last loss %.4f, %lld skipped", (long long)res.steps_done, res.last_loss,
                  (long long)res.bad_steps);
    else
        dapt_info("train: done, %lld steps, last loss %.4f, held-out loss %.4f (perplexity %.2f), %lld skipped",
                  (long long)res.steps_done, res.last_loss, res.last_eval_loss, exp(res.last_eval_loss),
                  (long long)res.bad_steps);
    dapt_cli_free(&cli);
    return DAPT_EXIT_OK;
}
