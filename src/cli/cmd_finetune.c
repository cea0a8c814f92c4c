/* dapt finetune: a classification head on a prepared task; see
 * include/dapt/task.h and docs/finetune.md. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/task.h"

static void usage(void)
{
    printf("usage: dapt finetune [--model M.h5] [--task T.h5] [--output DIR] [--seed N]\n"
           "                     [--epochs N] [--force | --resume [--override-resume-check]]\n"
           "                     [--config run.ini] [--set S.K=V ...]\n\n"
           "Fine-tunes a model file (dapt import, dapt train checkpoint) on a prepared task\n"
           "(dapt prepare --task) with a fresh classification head, AdamW and a linear\n"
           "schedule, evaluating the dev split after every epoch.  Writes\n"
           "  DIR/model.h5                the model of the best dev epoch (finetune.metric)\n"
           "  DIR/finetune_metrics.csv    one row per epoch: train loss, dev loss/accuracy/F1\n"
           "  DIR/checkpoints/            after every epoch (and checkpoint.every steps)\n"
           "Data parallel over all ranks, tensor parallel over parallel.tensor of them;\n"
           "the result does not depend on the layout.  finetune.objective picks the\n"
           "objective (cls: cross-entropy).  On SIGTERM, SIGUSR1 or Ctrl-C the ranks\n"
           "checkpoint at the next step and exit with status 75; --resume continues.\n"
           "  --model M.h5    model.path          --task T.h5   finetune.task\n"
           "  --output DIR    run.output_dir      --seed N      run.seed (head init, order, dropout)\n"
           "  --epochs N      finetune.epochs     --force       replace a previous run in DIR\n"
           "  --resume        continue the run in DIR from its newest checkpoint; keys that\n"
           "                  change the run's mathematics must equal the checkpoint's\n"
           "                  (finetune.epochs, checkpoint.*, logging, the layout may change)\n"
           "  --override-resume-check  resume although such keys changed (a warning each)\n"
           "Other settings ([finetune] in `dapt config show --keys`): batch_size (16),\n"
           "lr (3e-5), weight_decay (0.01), warmup_ratio / warmup_steps, schedule, max_length,\n"
           "metric (auto: macro_f1, or mse for a regression task), patience (early stopping,\n"
           "0 = off), train_split, dev_split.\n"
           "Then: dapt eval --model DIR/model.h5 --task T.h5 --split test --output DIR/test\n\n");
    dapt_cli_print_common_help();
}

static dapt_status run(dapt_cli *cli, void *ctx)
{
    const dapt_finetune_opts *opts = ctx;
    const dapt_config *cfg = &cli->cfg;
    dapt_finetune_result res;
    int lock = -1;
    DAPT_CHECK(dapt_cli_lock_output(cli, cfg->run.output_dir, &lock));
    dapt_status st = dapt_cli_watchdog_start(cli);
    if (st == DAPT_OK) st = dapt_finetune_run(cfg, opts, &res);
    else res.agreed = 0;
    dapt_cli_watchdog_stop();
    dapt_fs_unlock_dir(lock);
    /* A failure only some ranks saw may leave the others in a collective. */
    if (st != DAPT_OK && !res.agreed) dapt_cli_fail(st);
    DAPT_CHECK(st);
    if (res.complete) {
        /* What the run logged: a resubmitted finished job must not read as a new result. */
        char loss[96] = "no train loss logged in finetune_metrics.csv";
        if (res.last_loss_epoch >= 0)
            snprintf(loss, sizeof loss, "last train loss %.4f (epoch %lld)", res.last_train_loss,
                     (long long)res.last_loss_epoch);
        dapt_info("finetune: %s is already complete%s: %lld of %lld steps done (%lld epochs), %s; nothing to train; model in %s/model.h5",
                  cfg->run.output_dir, res.stopped_early ? " (stopped early)" : "", (long long)res.steps_done,
                  (long long)res.steps_total, (long long)res.epochs_done, loss, cfg->run.output_dir);
        return DAPT_OK;
    }
    if (isnan(res.best_metric))
        dapt_info("finetune: done, %lld epochs (%lld steps), last train loss %.4f; model in %s/model.h5",
                  (long long)res.epochs_done, (long long)res.steps_done, res.last_train_loss, cfg->run.output_dir);
    else if (res.regression)
        dapt_info("finetune: done, %lld epochs (%lld steps)%s; best %s epoch %lld: %s %.6g; model in %s/model.h5",
                  (long long)res.epochs_done, (long long)res.steps_done, res.stopped_early ? ", stopped early" : "",
                  cfg->finetune.dev_split, (long long)res.best_epoch,
                  strcmp(cfg->finetune.metric, "auto") ? cfg->finetune.metric : "mse", res.best_metric, cfg->run.output_dir);
    else
        dapt_info("finetune: done, %lld epochs (%lld steps)%s; best %s epoch %lld: %s %.4f, accuracy %.4f, macro-F1 %.4f; model in %s/model.h5",
                  (long long)res.epochs_done, (long long)res.steps_done, res.stopped_early ? ", stopped early" : "",
                  cfg->finetune.dev_split, (long long)res.best_epoch, cfg->finetune.metric, res.best_metric,
                  res.best_accuracy, res.best_macro_f1, cfg->run.output_dir);
    return DAPT_OK;
}

int dapt_cmd_finetune(int argc, char **argv)
{
    dapt_finetune_opts opts = {0};
    /* Each valued option is a configuration key, set after --config and --set. */
    const dapt_cli_option options[] = {{.name = "model", .kind = DAPT_OPT_CONFIG, .arg = "model.path"},
                                       {.name = "task", .kind = DAPT_OPT_CONFIG, .arg = "finetune.task"},
                                       {.name = "output", .kind = DAPT_OPT_CONFIG, .arg = "run.output_dir"},
                                       {.name = "seed", .kind = DAPT_OPT_CONFIG, .arg = "run.seed"},
                                       {.name = "epochs", .kind = DAPT_OPT_CONFIG, .arg = "finetune.epochs"},
                                       {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &opts.force},
                                       {.name = "resume", .kind = DAPT_OPT_FLAG, .dest = &opts.resume},
                                       {.name = "override-resume-check", .kind = DAPT_OPT_FLAG,
                                        .dest = &opts.override_resume_check},
                                       {.name = NULL}};
    const dapt_cli_command cmd = {.name = "finetune", .usage = usage, .options = options, .max_args = 0, .run = run,
                                  .ctx = &opts};
    return dapt_cli_main(argc, argv, &cmd);
}
