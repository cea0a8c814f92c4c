/* dapt eval: a classifier on a task split (accuracy, F1, confusion matrix),
 * or held-out MLM loss on a prepared corpus; see docs/finetune.md. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/modelfile.h"
#include "dapt/task.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt eval --model M.h5 --task T.h5 [--split test] [--output OUT] [--force]\n"
           "                 [--batch-size N] [--max-length N]\n"
           "       dapt eval --model M.h5 --corpus C.h5 [--output OUT] [--force]\n"
           "                 [--max-sequences N] [--tokenizer PATH] [--batch-size N]\n\n"
           "With --task: runs the classifier on one split (default test) and prints\n"
           "accuracy, macro-/micro-/weighted-F1, per-class precision/recall/F1/support\n"
           "and the confusion matrix; --output OUT writes them to OUT.h5 (with every\n"
           "example's label, prediction and logits) and OUT.json.\n"
           "With --corpus: the held-out MLM loss and perplexity with fixed masks, exactly\n"
           "as dapt train evaluates: the held-out documents are chosen by data.eval_fraction\n"
           "and run.seed, sequences by data.seq_len and data.packing (set them as the run\n"
           "that trained on C.h5 did, with --config or --set); --max-sequences N (default:\n"
           "all held-out sequences) with N = train.eval_batches x train.batch_size gives the\n"
           "eval_loss of that run's metrics.csv.  The tokenizer is the model file's unless\n"
           "--tokenizer is given.\n"
           "Runs on any number of ranks (examples are split among them).\n"
           "  --batch-size N   examples per forward (default 64)\n"
           "  --max-length N   cut longer examples to their first N - 1 ids and the last\n"
           "                   (default: finetune.max_length of the run that wrote the\n"
           "                   model, else the model's positions)\n\n");
    dapt_cli_print_common_help();
}

typedef struct eval_args {
    const char *model, *task, *corpus, *split, *output, *tokenizer;
    int force;
    int64_t batch, max_length, max_sequences;
} eval_args;

/* finetune.max_length of the run that wrote the model file (its dapt_config
 * attribute), so a fine-tuned model is evaluated on inputs cut as it was
 * trained on; 0 when the file has none or it does not parse. */
static int64_t trained_max_length(const dapt_h5file *f)
{
    if (!dapt_h5_attr_exists(f, "/", "dapt_config")) return 0;
    char *text = NULL;
    if (dapt_h5_attr_get_string(f, "/", "dapt_config", &text) != DAPT_OK) {
        dapt_error_clear();
        return 0;
    }
    dapt_config c;
    dapt_config_defaults(&c);
    int64_t len = 0;
    if (strstr(text, "[finetune]") && dapt_config_load_string(&c, text, f->path) == DAPT_OK) len = c.finetune.max_length;
    else dapt_error_clear();
    free(text);
    return len;
}

/* Loads the model file as it is.  Collective over MPI_COMM_WORLD. */
static dapt_status load_model(const char *path, dapt_model *m, dapt_model_meta *meta, int64_t *max_length)
{
    dapt_h5file f;
    dapt_model_config mc;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_WORLD, path, &f));
    *max_length = trained_max_length(&f);
    dapt_status st = dapt_modelfile_get_config(&f, &mc, meta);
    if (st == DAPT_OK) st = dapt_model_create(&mc, m);
    if (st == DAPT_OK) {
        st = dapt_modelfile_get_params(&f, &m->table, m->params);
        if (st != DAPT_OK) dapt_model_free(m);
    }
    dapt_h5_close(&f);
    return st;
}

static dapt_status eval_task(const dapt_cli *cli, const eval_args *a, const dapt_model *m, const dapt_model_meta *meta)
{
    const dapt_config *cfg = &cli->cfg;
    dapt_task_file t;
    dapt_task_split s;
    dapt_cls_metrics met;
    memset(&s, 0, sizeof s);
    memset(&met, 0, sizeof met);
    int32_t *pred = NULL;
    float *logits = NULL;
    double loss = NAN;
    if (cfg->data.verify) DAPT_CHECK(dapt_h5_verify_file(MPI_COMM_WORLD, a->task));
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, dapt_task_file_open(a->task, &t)));
    dapt_status st = DAPT_OK;
    const int64_t C = m->config.num_labels;
    if (C <= 0) st = DAPT_ERROR(DAPT_ERR_ARG, "%s has no classification head (fine-tune it with dapt finetune first)", a->model);
    else if (t.regression && C != 1)
        st = DAPT_ERROR(DAPT_ERR_ARG, "%s is a regression task but %s has %lld classes (it needs a one-output regression head)",
                        a->task, a->model, (long long)C);
    else if (!t.regression && C == 1)
        st = DAPT_ERROR(DAPT_ERR_ARG, "%s has a regression head (one output) but %s is a classification task", a->model, a->task);
    else if (C != t.n_labels)
        st = DAPT_ERROR(DAPT_ERR_ARG, "%s has %lld classes but %s has %lld labels", a->model, (long long)C, a->task,
                        (long long)t.n_labels);
    else if (t.vocab_size > m->config.vocab_size)
        st = DAPT_ERROR(DAPT_ERR_ARG, "%s was prepared with a vocabulary of %lld ids, but %s has %lld", a->task,
                        (long long)t.vocab_size, a->model, (long long)m->config.vocab_size);
    for (int64_t k = 0; st == DAPT_OK && !t.regression && meta->labels && k < C; k++)
        if (meta->labels[k] && strcmp(meta->labels[k], t.label_names[k]))
            st = DAPT_ERROR(DAPT_ERR_ARG, "class %lld of %s is '%s' but label %lld of %s is '%s'", (long long)k, a->model,
                            meta->labels[k], (long long)k, a->task, t.label_names[k]);
    DAPT_TRY(st);
    DAPT_TRY(dapt_status_agree(MPI_COMM_WORLD, dapt_task_split_read(&t, a->split, &s)));
    DAPT_TRY(dapt_alloc((void **)&pred, (size_t)s.n * sizeof *pred, "predictions"));
    DAPT_TRY(dapt_alloc((void **)&logits, (size_t)s.n * (size_t)C * sizeof *logits, "logits"));
    const double t0 = dapt_now();
    DAPT_TRY(dapt_task_evaluate(MPI_COMM_WORLD, m, &s, a->batch, a->max_length, &met, &loss, t.regression ? NULL : pred,
                                logits));
    dapt_info("eval: %lld examples in %.1f s", (long long)s.n, dapt_now() - t0);
    dapt_eval_report rep = {a->model, a->task, a->split, t.label_names, &met,  loss,
                            s.n,      s.labels, t.regression ? NULL : pred, logits, s.values};
    if (cli->rank == 0) {
        dapt_eval_report_print(stdout, &rep);
        fflush(stdout);
    }
    if (a->output) DAPT_TRY(dapt_eval_report_write(MPI_COMM_WORLD, a->output, a->force, cfg, &rep));
cleanup:
    free(pred);
    free(logits);
    dapt_cls_metrics_free(&met);
    dapt_task_split_free(&s);
    dapt_task_file_free(&t);
    return st;
}

static dapt_status eval_corpus(const dapt_cli *cli, const eval_args *a, const dapt_model *m, const dapt_model_meta *meta)
{
    const dapt_config *cfg = &cli->cfg;
    if (!m->config.has_mlm_head)
        return DAPT_ERROR(DAPT_ERR_ARG, "%s has no MLM head, so it has no MLM loss (evaluate the model it was fine-tuned from)",
                          a->model);
    dapt_tokenizer *tok = NULL;
    dapt_status st = a->tokenizer ? dapt_tokenizer_load(a->tokenizer, &tok) : dapt_model_tokenizer(meta, a->model, &tok);
    if (st == DAPT_ERR_ARG && !a->tokenizer) st = DAPT_ERROR(DAPT_ERR_ARG, "%s carries no tokenizer: pass --tokenizer", a->model);
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, st));
    dapt_mlm_eval e;
    const double t0 = dapt_now();
    st = dapt_mlm_evaluate(MPI_COMM_WORLD, cfg, m, a->corpus, tok, a->max_sequences, a->batch, &e);
    dapt_tokenizer_free(tok);
    DAPT_CHECK(st);
    dapt_info("eval: %lld held-out sequences in %.1f s", (long long)e.sequences, dapt_now() - t0);
    if (cli->rank == 0) {
        printf("%s on %s: held-out MLM loss %.6f, perplexity %.4f (%lld of %lld held-out sequences of %lld tokens, %lld masked tokens; data.eval_fraction %g, run.seed %lld)\n",
               a->model, a->corpus, e.loss, e.perplexity, (long long)e.sequences, (long long)e.available,
               (long long)cfg->data.seq_len, (long long)e.masked, cfg->data.eval_fraction, (long long)cfg->run.seed);
        fflush(stdout);
    }
    if (a->output) DAPT_CHECK(dapt_mlm_report_write(MPI_COMM_WORLD, a->output, a->force, cfg, a->model, a->corpus, &e));
    return DAPT_OK;
}

static dapt_status run(dapt_cli *cli, void *ctx)
{
    eval_args *a = ctx;
    if (!a->model) return DAPT_ERROR(DAPT_ERR_ARG, "dapt eval: --model is required (see dapt eval --help)");
    if (!a->task == !a->corpus)
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt eval: give exactly one of --task (classification) and --corpus (MLM loss)");
    dapt_model m;
    dapt_model_meta meta;
    memset(&m, 0, sizeof m);
    memset(&meta, 0, sizeof meta);
    int64_t trained = 0;
    DAPT_CHECK(load_model(a->model, &m, &meta, &trained));
    if (a->max_length == 0 && trained > 0) {
        a->max_length = trained;
        if (a->task) dapt_info("eval: inputs cut to %lld ids, the finetune.max_length the model was trained with (--max-length to change)",
                               (long long)trained);
    }
    dapt_status st = a->task ? eval_task(cli, a, &m, &meta) : eval_corpus(cli, a, &m, &meta);
    /* Every failure above is reached by all ranks together (inputs are
     * checked the same way everywhere, reads agree). */
    dapt_model_free(&m);
    dapt_model_meta_free(&meta);
    return st;
}

int dapt_cmd_eval(int argc, char **argv)
{
    eval_args a = {.split = "test", .batch = 64};
    const dapt_cli_option opts[] = {
        {.name = "model", .kind = DAPT_OPT_STRING, .dest = &a.model},
        {.name = "task", .kind = DAPT_OPT_STRING, .dest = &a.task},
        {.name = "corpus", .kind = DAPT_OPT_STRING, .dest = &a.corpus},
        {.name = "split", .kind = DAPT_OPT_STRING, .dest = &a.split},
        {.name = "output", .kind = DAPT_OPT_STRING, .dest = &a.output},
        {.name = "tokenizer", .kind = DAPT_OPT_STRING, .dest = &a.tokenizer},
        {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &a.force},
        {.name = "batch-size", .kind = DAPT_OPT_INT, .dest = &a.batch, .min = 1, .max = INT64_MAX},
        {.name = "max-length", .kind = DAPT_OPT_INT, .dest = &a.max_length, .min = 2, .max = INT64_MAX},
        {.name = "max-sequences", .kind = DAPT_OPT_INT, .dest = &a.max_sequences, .min = 0, .max = INT64_MAX},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "eval", .usage = usage, .options = opts, .max_args = 0, .run = run,
                                  .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
