/* dapt train: MLM post-training (and, later, DGA/DAS) with checkpoints and
 * preemption; see include/dapt/train.h and docs/training.md. */
#include <math.h>
#include <stdio.h>

#include "dapt/cli.h"
#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/train.h"

static void usage(void)
{
    printf("usage: dapt train --config run.ini [--set S.K=V ...] [--resume [--override-resume-check]] [--force]\n\n"
           "Post-trains a model on data.corpus (or the continual.domains in order) with\n"
           "the objective train.method: mlm, one, kd, ewc, dga, das, or MOMETAS's atd, dtd,\n"
           "cse, emlm and mometas (the meta-learned sampler over them; docs/training.md),\n"
           "writing run.output_dir/metrics.csv (the loss and each of its terms) and\n"
           "run.output_dir/checkpoints/step-N.h5.\n"
           "  --resume   continue from run.output_dir/checkpoints/latest (or the newest\n"
           "             checkpoint that loads); starts at step 0 when there is none.  Keys that\n"
           "             change the run's mathematics must equal the checkpoint's; others\n"
           "             (train.steps, checkpoint.*, logging, the layout) may change, with a notice\n"
           "  --override-resume-check  resume although such keys changed (a warning each)\n"
           "  --force    start afresh in an output directory holding a previous run\n"
           "On SIGTERM, SIGUSR1 or Ctrl-C the ranks checkpoint at the next step boundary and\n"
           "exit with code %d (requeue and resume with --resume).\n\n",
           DAPT_EXIT_PREEMPTED);
    dapt_cli_print_common_help();
}

static dapt_status run(dapt_cli *cli, void *ctx)
{
    const dapt_train_opts *opts = ctx;
    dapt_train_result res;
    int lock = -1;
    DAPT_CHECK(dapt_cli_lock_output(cli, cli->cfg.run.output_dir, &lock));
    dapt_status st = dapt_cli_watchdog_start(cli);
    if (st == DAPT_OK) st = dapt_train_run(&cli->cfg, opts, &res);
    else res.agreed = 0;
    dapt_cli_watchdog_stop();
    dapt_fs_unlock_dir(lock);
    /* A failure only some ranks saw may leave the others in a collective. */
    if (st != DAPT_OK && !res.agreed) dapt_cli_fail(st);
    DAPT_CHECK(st);
    if (res.complete) {
        /* What the run logged: a resubmitted finished job must not read as a new result. */
        char loss[96] = "no loss logged in metrics.csv", eval[96] = "";
        if (res.last_loss_step >= 0) /* a skipped step logs nan */
            snprintf(loss, sizeof loss, "last loss %.4f (step %lld)", res.last_loss, (long long)res.last_loss_step);
        if (!isnan(res.last_eval_loss))
            snprintf(eval, sizeof eval, ", held-out loss %.4f (perplexity %.2f)", res.last_eval_loss,
                     exp(res.last_eval_loss));
        dapt_info("train: %s is already complete: %lld of %lld steps done, %s%s; nothing to train",
                  cli->cfg.run.output_dir, (long long)res.steps_done, (long long)res.steps_total, loss, eval);
        return DAPT_OK;
    }
    if (isnan(res.last_eval_loss))
        dapt_info("train: done, %lld steps, last loss %.4f, %lld skipped", (long long)res.steps_done, res.last_loss,
                  (long long)res.bad_steps);
    else
        dapt_info("train: done, %lld steps, last loss %.4f, held-out loss %.4f (perplexity %.2f), %lld skipped",
                  (long long)res.steps_done, res.last_loss, res.last_eval_loss, exp(res.last_eval_loss),
                  (long long)res.bad_steps);
    return DAPT_OK;
}

int dapt_cmd_train(int argc, char **argv)
{
    dapt_train_opts opts = {0, 0, 0};
    const dapt_cli_option options[] = {{.name = "resume", .kind = DAPT_OPT_FLAG, .dest = &opts.resume},
                                       {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &opts.force},
                                       {.name = "override-resume-check", .kind = DAPT_OPT_FLAG,
                                        .dest = &opts.override_resume_check},
                                       {.name = NULL}};
    const dapt_cli_command cmd = {.name = "train", .usage = usage, .options = options, .max_args = 0, .run = run,
                                  .ctx = &opts};
    return dapt_cli_main(argc, argv, &cmd);
}
