/* The state of one dapt train run (one domain), shared by the files of
 * src/train: setup.c (grid, tokenizer, model, buffers), output.c (the run
 * directory and the metrics log), step.c (one optimizer step, held-out loss),
 * loop.c (the step loop, checkpoints, preemption) and continual.c (the
 * domains, dapt_train_run).  Internal to src/train. */
#ifndef DAPT_TRAIN_INTERNAL_H
#define DAPT_TRAIN_INTERNAL_H

#include <stdio.h>

#include "dapt/batches.h"
#include "dapt/grid.h"
#include "dapt/metrics_log.h"
#include "dapt/modelfile.h"
#include "dapt/objective.h"
#include "dapt/optim.h"
#include "dapt/train.h"

typedef struct train_run {
    const dapt_config *cfg;
    dapt_objective *obj;
    dapt_grid grid;
    int have_grid;
    dapt_tp_group tpg; /* parallel.tensor > 1: the model is this rank's shard */
    dapt_tp_layout tpl;
    int have_tpl;
    MPI_Comm comm; /* the data communicator (MPI_COMM_WORLD before the grid exists) */
    int rank, size;
    char out[DAPT_CONFIG_STR_MAX], ckpt_dir[DAPT_CONFIG_STR_MAX + 16];
    dapt_mlm_spec mlm;
    dapt_model model;
    int have_model;
    dapt_model_meta meta; /* tokenizer files and HF name, carried into checkpoints */
    dapt_workspace *ws;
    dapt_sequences *seqs;
    dapt_order order;
    dapt_adamw adam;
    dapt_lr_schedule sched;
    float *exp_avg, *exp_avg_sq;
    dapt_objective_ctx ctx;
    dapt_domain_info domain;
    dapt_tensor_spec aux[DAPT_OBJ_MAX_AUX]; /* the objective's auxiliary tensors */
    size_t naux;
    int64_t B, L, accum, local_begin, local_count, micro_max;
    int32_t *clean, *ids, *att, *labels;
    int64_t *seq_idx;
    int64_t step, position, bad_run, last_ckpt_step;
    dapt_metrics_log mlog; /* OUT/metrics.csv and OUT/metrics.jsonl (leader) */
    dapt_seq_spec ss;
    dapt_micro_batch *mbs; /* this rank's micro-batches of the step */
    dapt_grad_sync *sync;  /* the gradient all-reduce (made at the first step) */
    dapt_zero *zero;       /* parallel.shard_optimizer: the moments are this rank's rows */
} train_run;

/* What one step reports. */
typedef struct train_step_result {
    double loss, lr, grad_norm, tokens_per_s;
    double extra[DAPT_OBJ_MAX_COLUMNS]; /* the objective's columns, summed over the data ranks */
    int bad;      /* update skipped */
    int bad_rank; /* lowest rank that saw a non-finite value */
} train_step_result;

/* Every rank of the run (tensor ranks included) returns the same status:
 * dapt_status_agree over the world. */
dapt_status train_agree(const train_run *r, dapt_status st);
/* Data rank 0 of tensor rank 0: writes the run's shared files. */
int train_leader(const train_run *r);

/* setup.c.  Collective over the world. */
dapt_status train_new(train_run **out, const dapt_config *cfg, dapt_objective *obj);
dapt_status train_setup(train_run *r);
void train_teardown(train_run *r);

/* output.c.  Leader only unless noted. */
dapt_status train_prepare_output(train_run *r, const dapt_train_opts *opts); /* all ranks call; leader acts */
dapt_status train_truncate_metrics(train_run *r, int64_t step);
dapt_status train_open_metrics(train_run *r);
dapt_status train_metrics_row(train_run *r, int64_t step, const train_step_result *sr, double eval_loss);

/* step.c.  Collective over the world. */
dapt_status train_step(train_run *r, train_step_result *out);
dapt_status train_evaluate(train_run *r, double *eval_loss);

/* loop.c.  Collective over the world. */
dapt_status train_loop(train_run *r, const dapt_train_opts *opts, dapt_train_result *res);
/* --resume on a domain whose model file (model_path) marks it finished:
 * checks the configuration it was trained with and fills res as for a
 * complete run (res->complete, the last logged loss). */
dapt_status train_resume_finished(train_run *r, const char *model_path, const dapt_train_opts *opts,
                                  dapt_train_result *res);

#endif
