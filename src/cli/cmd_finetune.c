/* dapt finetune: a classification head on a prepared task; see
 * include/dapt/task.h and docs/finetune.md. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/log.h"
#include "dapt/task.h"

static void usage(void)
{
    printf("usage: dapt finetune [--model M.h5] [--task T.h5] [--output DIR] [--seed N]\n"
           "                     [--epochs N] [--force] [--config run.ini] [--set S.K=V ...]\n\n"
           "Fine-tunes a model file (dapt import, dapt train checkpoint) on a prepared task\n"
           "(dapt prepare --task) with a fresh classification head, AdamW and a linear\n"
           "schedule, evaluating the dev split after every epoch.  Writes\n"
           "  DIR/model.h5                the model of the best dev epoch (finetune.metric)\n"
           "  DIR/finetune_metrics.csv    one row per epoch: train loss, dev loss/accuracy/F1\n"
           "Data parallel over all ranks; the result does not depend on their number.\n"
           "  --model M.h5    model.path          --task T.h5   finetune.task\n"
           "  --output DIR    run.output_dir      --seed N      run.seed (head init, order, dropout)\n"
           "  --epochs N      finetune.epochs     --force       replace a previous run in DIR\n"
           "Other settings ([finetune] in `dapt config show --keys`): batch_size (16),\n"
           "lr (3e-5), weight_decay (0.01), warmup_ratio / warmup_steps, schedule, max_length,\n"
           "metric (macro_f1), patience (early stopping, 0 = off), train_split, dev_split.\n"
           "Then: dapt eval --model DIR/model.h5 --task T.h5 --split test --output DIR/test\n\n");
    dapt_cli_print_common_help();
}

/* --opt VALUE or --opt=VALUE among the command's own arguments. */
static const char *value_of(const dapt_cli *cli, int *i, const char *opt, dapt_status *st)
{
    const char *a = cli->rest[*i];
    size_t n = strlen(opt);
    if (a[n] == '=') return a + n + 1;
    if (*i + 1 >= cli->nrest) {
        *st = DAPT_ERROR(DAPT_ERR_ARG, "dapt finetune: %s needs a value", opt);
        return NULL;
    }
    return cli->rest[++*i];
}

static int is_opt(const char *a, const char *opt)
{
    size_t n = strlen(opt);
    return !strncmp(a, opt, n) && (a[n] == '\0' || a[n] == '=');
}

static dapt_status apply_args(dapt_cli *cli, dapt_finetune_opts *opts)
{
    static const struct {
        const char *opt, *section, *key;
    } map[] = {{"--model", "model", "path"},
               {"--task", "finetune", "task"},
               {"--output", "run", "output_dir"},
               {"--seed", "run", "seed"},
               {"--epochs", "finetune", "epochs"}};
    dapt_status st = DAPT_OK;
    for (int i = 0; i < cli->nrest; i++) {
        const char *a = cli->rest[i];
        if (!strcmp(a, "--force")) {
            opts->force = 1;
            continue;
        }
        size_t k = 0;
        while (k < sizeof map / sizeof map[0] && !is_opt(a, map[k].opt)) k++;
        if (k == sizeof map / sizeof map[0])
            return DAPT_ERROR(DAPT_ERR_ARG, "dapt finetune: unexpected argument '%s' (see dapt finetune --help)", a);
        const char *v = value_of(cli, &i, map[k].opt, &st);
        if (!v) return st;
        DAPT_CHECK(dapt_config_set_value(&cli->cfg, map[k].section, map[k].key, v, map[k].opt));
    }
    return DAPT_OK;
}

int dapt_cmd_finetune(int argc, char **argv)
{
    dapt_cli cli;
    if (dapt_cli_begin(argc, argv, &cli, usage)) return DAPT_EXIT_OK;
    dapt_status st = DAPT_OK;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    dapt_finetune_opts opts = {0};
    st = apply_args(&cli, &opts);
    if (st != DAPT_OK) dapt_cli_fail_all(st); /* every rank parsed the same line */
    dapt_finetune_result res;
    st = dapt_finetune_run(&cli.cfg, &opts, &res);
    if (st != DAPT_OK) {
        if (res.agreed) dapt_cli_fail_all(st);
        dapt_cli_fail(st);
    }
    if (isnan(res.best_metric))
        dapt_info("finetune: done, %lld epochs (%lld steps), last train loss %.4f; model in %s/model.h5",
                  (long long)res.epochs_done, (long long)res.steps_done, res.last_train_loss, cli.cfg.run.output_dir);
    else
        dapt_info("finetune: done, %lld epochs (%lld steps)%s; best %s epoch %lld: %s %.4f, accuracy %.4f, macro-F1 %.4f; model in %s/model.h5",
                  (long long)res.epochs_done, (long long)res.steps_done, res.stopped_early ? ", stopped early" : "",
                  cli.cfg.finetune.dev_split, (long long)res.best_epoch, cli.cfg.finetune.metric, res.best_metric,
                  res.best_accuracy, res.best_macro_f1, cli.cfg.run.output_dir);
    dapt_cli_free(&cli);
    return DAPT_EXIT_OK;
}
