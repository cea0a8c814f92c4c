/* dapt train: the data-parallel post-training loop.
 *
 * One optimizer step s:
 *   1. the ranks agree whether a preemption signal arrived (MPI_Allreduce
 *      MAX); if so they write a checkpoint and return DAPT_ERR_INTERRUPTED;
 *   2. global batch = global samples [s*B, (s+1)*B) of the epoch
 *      permutations (batches.h); data rank d takes a contiguous block and
 *      reads only those sequences, split into train.grad_accum micro-batches;
 *   3. MLM masks (mlm.h) keyed by (seed, step s, global sample); the count of
 *      masked tokens is summed over the data ranks before forward and passed
 *      to the engine as the loss denominator, so the loss (sum over all
 *      masked tokens of the global batch / their global count) and its
 *      gradient do not depend on the number of ranks or micro-batches;
 *   4. the objective's micro_step runs forward/backward per micro-batch;
 *      gradients are summed over the data communicator in buckets of
 *      parallel.bucket_mb (non-blocking MPI_Iallreduce per bucket, all in
 *      flight together; the engine has no per-layer backward hook yet, so
 *      they start after the last backward instead of overlapping it);
 *   5. objective transform_grads, global-norm clipping, a NaN/Inf check
 *      (a non-finite loss or gradient norm skips the update, counted; after
 *      train.max_bad_steps in a row the run stops naming the rank and step),
 *      AdamW with the learning-rate schedule;
 *   6. every train.log_every steps a progress line; every step a row of
 *      OUT/metrics.csv; every train.eval_every steps held-out loss and
 *      perplexity with fixed masks; every checkpoint.every steps and at the
 *      end a checkpoint (checkpoint.h).
 *
 * Objectives plug in through dapt_objective_ops without changes to the
 * loop: mlm, one, kd, ewc, dga, das (objectives_*.c; docs/algorithms.md).
 *
 * Continual domains ([das] domains / corpora): the loop trains the domains
 * in order, each in OUT/<domain>/ as a run of its own (checkpoints,
 * metrics.csv, model.h5 when finished), from the base model (one, dga, and
 * domain 0) or the previous domain's model; between domains it computes what
 * the method carries forward (importance, a teacher, a Fisher diagonal) and
 * hands it to the objective in dapt_train_ctx.domain. */
#ifndef DAPT_TRAIN_H
#define DAPT_TRAIN_H

#include <mpi.h>
#include <stdint.h>

#include "dapt/batches.h"
#include "dapt/config.h"
#include "dapt/das.h"
#include "dapt/h5io.h"
#include "dapt/mlm.h"
#include "dapt/model.h"
#include "dapt/status.h"

/* What the methods carry from earlier domains into the current one. */
typedef struct dapt_domain_state {
    int64_t index, count;          /* this domain, number of domains */
    const char *name;
    /* dga/das: normalised importance (max over the protected sources) of each
     * unit kind, [layers * units]; NULL kinds are neither masked nor used in
     * the general view */
    const float *importance[DAPT_UNIT_KINDS];
    const dapt_model *teacher;     /* kd: the previous model, frozen; NULL = none */
    const float *fisher, *anchor;  /* ewc: Fisher diagonal and parameters to stay
                                    * near (table.total floats); NULL = none */
} dapt_domain_state;

/* What an objective sees of the run. */
typedef struct dapt_train_ctx {
    const dapt_config *cfg;
    MPI_Comm data_comm; /* data-parallel communicator */
    int data_rank, data_size;
    dapt_model *model;
    dapt_workspace *ws; /* sized for the largest micro-batch, training mode */
    const dapt_mlm_spec *mlm;
    uint64_t seed;
    int64_t step;             /* the step being computed (0-based) */
    double lr;                /* its learning rate */
    double mlm_denominator;   /* masked tokens in the global batch */
    double token_denominator; /* non-padding tokens in the global batch */
    int64_t global_rows;      /* sequences in the global batch */
    int64_t micro_max;        /* rows of the largest micro-batch (workspace size) */
    const dapt_domain_state *domain;
} dapt_train_ctx;

/* One micro-batch: batch.input_ids are the masked inputs, clean_ids the
 * same sequences before masking (for objectives that need them). */
typedef struct dapt_micro_batch {
    dapt_batch batch;
    const int32_t *clean_ids;
} dapt_micro_batch;

/* A training objective.  Every member except name and micro_step may be
 * NULL.  Unless noted, calls happen on every data rank in step (so a member
 * may use collectives over ctx->data_comm). */
typedef struct dapt_objective_ops {
    const char *name;
    /* Allocates *state after the model and workspace exist. */
    dapt_status (*init)(void **state, dapt_train_ctx *ctx);
    /* Forward and backward of one micro-batch, accumulating into
     * ctx->model->grads; adds this rank's share of the step loss to *loss
     * (normalised by the global denominators, so the sum over data ranks is
     * the step loss).  Not collective: ranks may hold different numbers of
     * micro-batches.  A non-finite loss is reported as DAPT_ERR_NUMERIC. */
    dapt_status (*micro_step)(void *state, dapt_train_ctx *ctx, const dapt_micro_batch *mb, double *loss);
    /* After every micro_step of the step and before the gradient all-reduce,
     * with all of this rank's micro-batches of the step (count may be 0):
     * for losses over the whole global batch (the DGA/DAS contrastive loss).
     * Collective over ctx->data_comm.  Adds to *loss like micro_step. */
    dapt_status (*step_end)(void *state, dapt_train_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                            double *loss);
    /* After the gradient all-reduce, before clipping (e.g. DAS soft masks). */
    dapt_status (*transform_grads)(void *state, dapt_train_ctx *ctx);
    /* After the optimizer update (e.g. an EMA teacher). */
    dapt_status (*after_update)(void *state, dapt_train_ctx *ctx);
    /* Own state into / out of a checkpoint (collective over the file). */
    dapt_status (*save)(void *state, dapt_train_ctx *ctx, dapt_h5file *f);
    dapt_status (*load)(void *state, dapt_train_ctx *ctx, const dapt_h5file *f);
    void (*destroy)(void *state);
} dapt_objective_ops;

/* The plain MLM objective (DAPT baseline); `one` is the same objective, each
 * domain starting from the base model. */
extern const dapt_objective_ops dapt_objective_mlm, dapt_objective_one;
/* MLM + kd_lambda * token-axis KL to the previous model's last hidden states. */
extern const dapt_objective_ops dapt_objective_kd;
/* MLM + ewc_lambda / 2 * sum F (theta - theta_prev)^2. */
extern const dapt_objective_ops dapt_objective_ewc;
/* MLM + contrast_lambda * InfoNCE(full vs importance-masked views), gradients
 * soft-masked by (1 - importance): dga (heads), das (heads and FFN units). */
extern const dapt_objective_ops dapt_objective_dga, dapt_objective_das;

/* The objective for train.method, or NULL when not implemented. */
const dapt_objective_ops *dapt_objective_find(const char *method);

typedef struct dapt_train_opts {
    int resume; /* continue from OUT/checkpoints/latest */
    int force;  /* start afresh in an OUT that holds a previous run */
} dapt_train_opts;

typedef struct dapt_train_result {
    int64_t steps_done;    /* optimizer steps completed at return */
    int64_t bad_steps;     /* steps skipped for NaN/Inf in this process's run */
    double last_loss;      /* training loss of the last step */
    double last_eval_loss; /* NaN when no evaluation ran */
    int agreed;            /* on failure: 1 if every rank returned it together */
} dapt_train_result;

/* Runs training as configured.  Collective over MPI_COMM_WORLD.  Returns
 * DAPT_ERR_INTERRUPTED (on every rank) after a preemption checkpoint. */
dapt_status dapt_train_run(const dapt_config *cfg, const dapt_train_opts *opts, dapt_train_result *res);

/* Importance of model m over a prepared corpus: `samples` train sequences
 * (global samples g = 0.. of a permutation keyed by seed ^ a tag, wrapping
 * around), in global batches of `global_batch` rows split over comm, MLM
 * masks keyed (seed, step = 2^64 - 2 - batch, sample g).  Proxy KL or MLM
 * (dapt_importance_pass).  Collective over comm (the data communicator). */
typedef struct dapt_corpus_importance_opts {
    dapt_proxy_kind proxy;
    int64_t samples, global_batch;
    uint64_t seed;
    double temperature;
    int64_t seq_len; /* the sequences' length (data.seq_len) */
    int recompute;   /* model.recompute for the workspace */
} dapt_corpus_importance_opts;
dapt_status dapt_importance_from_corpus(dapt_model *m, dapt_sequences *seqs, const dapt_mlm_spec *mlm,
                                        const dapt_corpus_importance_opts *opts, dapt_importance *imp,
                                        MPI_Comm comm);

/* The tokenizer at path (file or directory): its MLM spec (mlm_probability
 * p) and the begin / end / pad ids for dapt_seq_spec.  Not collective. */
dapt_status dapt_train_tokenizer_spec(const char *path, double p, dapt_mlm_spec *mlm, int32_t *begin,
                                      int32_t *end, int32_t *pad);

/* The flag the SIGTERM/SIGUSR1 handler sets (tests raise it directly). */
void dapt_train_request_stop(void);

#endif
