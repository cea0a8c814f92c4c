/* End tasks: prepared task files, classification and regression metrics, fine-tuning
 * (`dapt finetune`) and evaluation (`dapt eval`).
 *
 * A prepared task (dapt prepare --task, docs/formats.md "Prepared task") is
 * small enough to hold in memory: every rank reads the splits it needs
 * whole, and ranks then work on contiguous shares of each global batch.
 *
 * Fine-tuning is data parallel over MPI_COMM_WORLD and gives the same run
 * for any number of ranks: the sample order of epoch e is a permutation
 * keyed by (run.seed, e) (batches.h's dapt_order), a global batch is padded
 * to the longest example in it, dropout is keyed by the global sample index,
 * gradients are summed over the ranks and the loss is divided by the global
 * batch size.  Only float rounding of the sums differs between layouts.
 *
 * Metrics follow scikit-learn's conventions (zero_division = 0): precision
 * of a class never predicted is 0, recall of a class never present is 0, F1
 * is 0 when precision + recall is 0; macro averages run over the classes that
 * are present in the truth or the predictions (sklearn's default label set);
 * micro-F1 of single-label classification equals accuracy.
 *
 * Functions taking a communicator are collective over it; the others run on
 * the calling process only. */
#ifndef DAPT_TASK_H
#define DAPT_TASK_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dapt/config.h"
#include "dapt/model.h"
#include "dapt/modelfile.h"
#include "dapt/status.h"
#include "dapt/tokenizer.h"

typedef struct dapt_task_file dapt_task_file;

/* ---- classification metrics --------------------------------------------- */

/* Regression metrics (a task prepared with --regression, a one-output
 * head): over n examples of truth y and prediction p,
 *   mse = mean (p - y)^2, rmse = sqrt(mse), mae = mean |p - y|,
 *   pearson = Pearson's r of (p, y), spearman = Pearson's r of their ranks
 *   (ties get the mean of their ranks, as scipy.stats.spearmanr);
 * a correlation is NaN when either side is constant (as scipy's). */
typedef struct dapt_reg_metrics {
    int64_t n;
    double mse, rmse, mae, pearson, spearman;
} dapt_reg_metrics;

/* Computes them from the whole arrays (the same numbers on every rank that
 * passes the same arrays).  DAPT_ERR_ARG for n < 1. */
dapt_status dapt_reg_metrics_compute(const float *truth, const float *prediction, int64_t n, dapt_reg_metrics *r);

/* The dev metrics of a run.  Classification: the counts and scores below.
 * Regression (regression = 1): reg only; the classification members stay
 * zero (n_labels 1, no confusion matrix). */
typedef struct dapt_cls_metrics {
    int regression;
    dapt_reg_metrics reg;
    int64_t n_labels;
    int64_t total;       /* examples counted */
    int64_t *confusion;  /* [n_labels, n_labels]: row = true label, column = prediction */
    int64_t *support;    /* [n_labels] examples whose true label is k */
    int64_t *predicted;  /* [n_labels] examples predicted as k */
    double *precision, *recall, *f1; /* [n_labels], after dapt_cls_metrics_finish */
    int64_t n_averaged;  /* classes in the macro averages (present or predicted) */
    double accuracy, micro_f1, macro_precision, macro_recall, macro_f1, weighted_f1;
} dapt_cls_metrics;

/* Zeroed counts for n_labels classes (n_labels >= 1). */
dapt_status dapt_cls_metrics_init(dapt_cls_metrics *m, int64_t n_labels);
void dapt_cls_metrics_free(dapt_cls_metrics *m);

/* Counts one example; labels outside 0..n_labels-1 are refused. */
dapt_status dapt_cls_metrics_add(dapt_cls_metrics *m, int32_t truth, int32_t prediction);

/* Sums the confusion matrices of all ranks of comm into every rank's m
 * (counts only: call dapt_cls_metrics_finish afterwards).  Collective. */
dapt_status dapt_cls_metrics_allreduce(dapt_cls_metrics *m, MPI_Comm comm);

/* Derives support, predicted counts, per-class precision/recall/F1 and the
 * averages from the confusion matrix. */
void dapt_cls_metrics_finish(dapt_cls_metrics *m);

/* The metric called name: classification "accuracy", "macro_f1",
 * "micro_f1", "weighted_f1"; regression "mse", "rmse", "mae", "pearson",
 * "spearman"; "auto" is macro_f1 for classification and mse for regression
 * (finetune.metric's default).  DAPT_ERR_CONFIG naming it when unknown or
 * of the other kind of task. */
dapt_status dapt_cls_metrics_get(const dapt_cls_metrics *m, const char *name, double *value);

/* Is value (of metric name, as dapt_cls_metrics_get resolves it for m)
 * better than best?  Lower is better for mse, rmse and mae, higher for the
 * others; anything beats no best yet (have_best 0) except NaN, which never
 * improves. */
int dapt_metric_improves(const dapt_cls_metrics *m, const char *name, double value, double best, int have_best);

/* Refuses (DAPT_ERR_CONFIG, one line naming the task) a classification
 * metric for a regression task and a regression metric for a classification
 * task; unknown names too. */
dapt_status dapt_task_metric_check(const dapt_task_file *t, const char *name);

/* ---- prepared task files ------------------------------------------------- */

typedef struct dapt_task_split {
    char name[64];
    int64_t n;          /* examples */
    int32_t *ids;       /* every example's ids, concatenated */
    int64_t *offsets;   /* [n + 1] */
    int32_t *type_ids;  /* like ids, or NULL (single texts) */
    int32_t *labels;    /* [n] class ids; NULL for a regression task */
    float *values;      /* [n] regression targets; NULL for a classification task */
    int64_t max_len;    /* longest example */
} dapt_task_split;

struct dapt_task_file {
    char path[4096];
    int64_t n_labels, vocab_size, max_length; /* n_labels 1 for regression */
    int pairs;
    int regression;          /* root attribute task_type = "regression" */
    char **label_names;      /* [n_labels] */
    char *tokenizer_checksum; /* NULL when the file has none */
    char *splits;            /* split names, one per line */
};

/* Reads the attributes and label names of a prepared task.  Refuses a file
 * that is not a dapt task.  Not collective (serial HDF5 on this process). */
dapt_status dapt_task_file_open(const char *path, dapt_task_file *t);
void dapt_task_file_free(dapt_task_file *t);

/* Reads one split whole, checking it: the split exists (else the error
 * lists the splits the file has), offsets increase from 0 to the id count,
 * ids lie in 0..vocab_size-1 and labels in 0..n_labels-1 (else the error
 * names the example); a regression task's float labels go to s->values and
 * must be finite.  Not collective. */
dapt_status dapt_task_split_read(const dapt_task_file *t, const char *split, dapt_task_split *s);
void dapt_task_split_free(dapt_task_split *s);

/* ---- evaluation ---------------------------------------------------------- */

/* Evaluates a classifier or a regression head (eval mode) on examples
 * [0, s->n) of a split: a regression split (s->values) needs a model with
 * num_labels 1 and a classification split one with more; regression fills
 * m->reg (m->regression = 1), *loss is then the MSE and logits the
 * predictions.
 * Each rank of comm runs a contiguous share, in batches of batch_size
 * examples padded to the longest in the batch; examples longer than
 * max_len keep their first max_len - 1 ids and their last one (the closing
 * separator).  On return every rank holds the finished metrics (*m is
 * initialised here) and the mean cross-entropy in *loss; predictions (may
 * be NULL) receives on every rank the argmax for each example and logits
 * (may be NULL) the [n, num_labels] logits.  Collective over comm. */
dapt_status dapt_task_evaluate(MPI_Comm comm, const dapt_model *model, const dapt_task_split *s,
                               int64_t batch_size, int64_t max_len, dapt_cls_metrics *m, double *loss,
                               int32_t *predictions, float *logits);

/* Longest input a model accepts: its positions (RoBERTa's start after the
 * padding id, so pad_token_id + 1 fewer). */
int64_t dapt_model_max_input(const dapt_model_config *mc);

/* Held-out MLM loss of a model on a prepared corpus, exactly as dapt train
 * evaluates it: sequences of data.seq_len from the split chosen by
 * data.eval_fraction and run.seed (data.packing), masks keyed by
 * (run.seed, the fixed evaluation step, held-out index).  max_sequences
 * (0 = all) caps the number of held-out sequences; with
 * train.eval_batches x train.batch_size it reproduces the held-out loss in a
 * run's metrics.csv.  The special ids come from tok, which must be the
 * tokenizer the corpus was prepared with (checked by checksum).  Collective
 * over comm. */
typedef struct dapt_mlm_eval {
    double loss;        /* mean cross-entropy per masked token */
    double perplexity;  /* exp(loss) */
    int64_t sequences;  /* held-out sequences evaluated */
    int64_t masked;     /* masked tokens scored */
    int64_t available;  /* held-out sequences in the corpus */
} dapt_mlm_eval;

dapt_status dapt_mlm_evaluate(MPI_Comm comm, const dapt_config *cfg, const dapt_model *model,
                              const char *corpus, const dapt_tokenizer *tok, int64_t max_sequences,
                              int64_t batch_size, dapt_mlm_eval *out);

/* ---- evaluation reports ------------------------------------------------------ */

/* What dapt eval writes about a classifier or a regression head (m->regression)
 * on one split. */
typedef struct dapt_eval_report {
    const char *model, *task, *split; /* provenance, recorded as given */
    char *const *label_names;         /* [n_labels] */
    const dapt_cls_metrics *m;
    double loss;                      /* mean cross-entropy (regression: MSE) */
    int64_t n;                        /* examples */
    const int32_t *labels;            /* [n] true labels, or NULL (classification) */
    const int32_t *predictions;       /* [n], or NULL (classification) */
    const float *logits;              /* [n, n_labels], or NULL (regression: the predictions) */
    const float *values;              /* [n] true targets, or NULL (regression) */
} dapt_eval_report;

/* base + ".h5" and base + ".json" (a trailing .h5 or .json on base is
 * dropped), written under temporary names and renamed; existing files are
 * refused unless force.  Layout: docs/formats.md, "Evaluation".  Every rank
 * passes the same report.  Collective over comm. */
dapt_status dapt_eval_report_write(MPI_Comm comm, const char *base, int force, const dapt_config *cfg,
                                   const dapt_eval_report *r);

/* The human-readable table: per-class precision/recall/F1/support, the
 * averages and the confusion matrix.  Not collective. */
void dapt_eval_report_print(FILE *out, const dapt_eval_report *r);

/* The same two files for a held-out MLM evaluation.  Collective over comm. */
dapt_status dapt_mlm_report_write(MPI_Comm comm, const char *base, int force, const dapt_config *cfg, const char *model,
                                  const char *corpus, const dapt_mlm_eval *e);

/* ---- fine-tuning ----------------------------------------------------------- */

typedef struct dapt_finetune_opts {
    int force;  /* replace outputs of a previous run in run.output_dir */
    int resume; /* continue from run.output_dir/checkpoints (fresh when there is none) */
    int override_resume_check; /* --override-resume-check: a changed key --resume refuses is only a warning */
} dapt_finetune_opts;

typedef struct dapt_finetune_result {
    int64_t epochs_done, steps_done, best_epoch;
    double best_metric;     /* finetune.metric of the best epoch on the dev split */
    double best_accuracy, best_macro_f1; /* classification tasks */
    int regression;         /* the task is a regression task (best_metric is then a regression metric) */
    double last_train_loss;
    int stopped_early;
    int agreed;             /* on failure: 1 if every rank returned it together */
    int complete;           /* --resume found the run finished: nothing was trained */
    int64_t steps_total;    /* the run's steps (when complete) */
    int64_t last_loss_epoch; /* the finetune_metrics.csv row last_train_loss comes from (when complete; -1: none) */
} dapt_finetune_result;

/* Fine-tunes model.path on finetune.task as configured ([finetune]) with the
 * objective finetune.objective, on the process grid of parallel.tensor
 * (data x tensor parallel; the losses do not depend on the layout), writing
 * run.output_dir/model.h5 (best dev epoch), run.output_dir/finetune_metrics.csv
 * and run.output_dir/checkpoints/ (after every epoch and every
 * checkpoint.every steps: parameters, AdamW moments, the epochs'
 * bookkeeping and the objective's state, resumable on any layout).  A stop
 * signal (preempt.h) writes a checkpoint and returns DAPT_ERR_INTERRUPTED
 * on every rank.  Collective over MPI_COMM_WORLD. */
dapt_status dapt_finetune_run(const dapt_config *cfg, const dapt_finetune_opts *opts, dapt_finetune_result *res);

/* Loads a model file as a classifier for n_labels classes (n_labels = 1: a
 * regression head, dapt/model.h): every tensor the
 * file has is kept except an existing classifier; the head (and a BERT
 * pooler the file lacks) is freshly initialised as dapt_model_init_random
 * does with seed; the MLM head is dropped; auxiliary tensors aux[0..naux)
 * (a fine-tuning objective's) are added, from the file when it holds them,
 * else initialised the same way.  *meta receives the file's tokenizer files
 * and names.  Collective over comm. */
dapt_status dapt_task_load_classifier(MPI_Comm comm, const char *path, int64_t n_labels, uint64_t seed,
                                      const dapt_tensor_spec *aux, size_t naux, dapt_model *m, dapt_model_meta *meta);

#endif
