/* Training objectives: the one extension point of `dapt train` and
 * `dapt finetune`.
 *
 * A method (MLM, ONE, KD, EWC, DGA, DAS, classification, ...) is a
 * dapt_objective_ops table in its own file under src/objectives/, listed in
 * the registry (src/objectives/registry.c).  The loops know objectives only
 * through this header: they never name a method.  What an objective needs
 * from the loop it declares in `flags`, `n_denominators`, `columns`,
 * `outputs` and `aux_tensors`; what it does it does in hooks.
 *
 * Life cycle (every hook may be NULL unless marked required):
 *
 *   create(cfg)                      once per dapt train / dapt finetune
 *   for each domain (dapt train; finetune has one "domain"):
 *     [the loop builds the model, with the objective's aux tensors, and ctx]
 *     finished earlier (--resume)?   resume_domain
 *     otherwise                      begin_domain, then per optimizer step:
 *         prepare        this rank's rows: input corruption, labels and the
 *                        local parts of the objective's global denominators
 *                        (the loop sums them over the data ranks into
 *                        ctx->denominators before the first micro_step)
 *         micro_step     forward/backward of one micro-batch (required)
 *         step_end       after every micro-batch (global-batch losses)
 *         [gradient all-reduce over the data ranks]
 *         transform_grads
 *         [clipping, NaN check, optimizer]
 *         after_update
 *         metrics        local shares of the extra metrics columns
 *       end_domain                   after the last step
 *       save / load                  own state in each checkpoint
 *       eval_loss                    on demand, by an objective that evaluates
 *                                    others on held-out rows (a sampler)
 *     release                        per-domain resources (always called)
 *   destroy
 *
 * Composition: a hook may call another objective's hooks (dapt_objective
 * wrappers below), so a sampler can delegate to several objectives and a
 * regulariser can wrap one.
 *
 * Collectiveness: unless a hook's comment says "not collective", the loops
 * call it on every rank of the run at the same point, so it may use
 * collectives over ctx->data_comm (and the tensor group through the engine).
 * A hook's failure on one rank is agreed by the loop (dapt_status_agree)
 * before anyone goes on. */
#ifndef DAPT_OBJECTIVE_H
#define DAPT_OBJECTIVE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/batches.h"
#include "dapt/checkpoint.h"
#include "dapt/config.h"
#include "dapt/h5io.h"
#include "dapt/mlm.h"
#include "dapt/model.h"
#include "dapt/params.h"
#include "dapt/status.h"

/* What an objective declares about itself (dapt_objective_ops.flags). */
enum {
    DAPT_OBJ_TRAIN = 1u << 0,           /* a train.method of dapt train */
    DAPT_OBJ_FINETUNE = 1u << 1,        /* a finetune.objective of dapt finetune */
    DAPT_OBJ_TENSOR_PARALLEL = 1u << 2, /* correct on a tensor-parallel shard */
    DAPT_OBJ_FROM_BASE = 1u << 3,       /* every continual domain starts from the base
                                         * model (otherwise from the previous domain's) */
    DAPT_OBJ_ONE_BACKWARD = 1u << 4,    /* micro_step runs one backward with parameter
                                         * gradients and step_end leaves the gradients
                                         * alone, so the loop may all-reduce each layer's
                                         * gradients during the last micro-batch's backward
                                         * (parallel.overlap_grads) */
};

#define DAPT_OBJ_MAX_DENOMINATORS 4
#define DAPT_OBJ_MAX_COLUMNS 8
#define DAPT_OBJ_MAX_AUX 16

/* The domain being trained (dapt train's continual.domains; one domain for
 * a plain run and for dapt finetune). */
typedef struct dapt_domain_info {
    int64_t index, count;
    const char *name;
    const char *out_dir; /* run.output_dir: files shared by every domain */
    const char *dir;     /* this domain's directory (out_dir itself for one unnamed domain) */
    int listed;          /* domains named by continual.domains */
    int resume;          /* --resume */
} dapt_domain_info;

/* What an objective sees of the run.  Filled by the loop; members marked
 * "train" are NULL / 0 under dapt finetune. */
typedef struct dapt_objective_ctx {
    const dapt_config *cfg;
    MPI_Comm data_comm; /* data-parallel communicator */
    int data_rank, data_size;
    int writer;         /* this rank's data communicator writes shared files
                         * (tensor rank 0; every tensor rank holds the same numbers) */
    dapt_model *model;
    dapt_workspace *ws;            /* train: sized for the largest micro-batch, training mode */
    const dapt_mlm_spec *mlm;      /* train: the tokenizer's MLM spec */
    const dapt_seq_spec *seq_spec; /* train: how sequences are cut (to open other corpora) */
    dapt_sequences *seqs;          /* train: the corpus of this domain */
    uint64_t seed;
    int64_t step;                  /* the step being computed (0-based) */
    double lr;                     /* its learning rate */
    double denominators[DAPT_OBJ_MAX_DENOMINATORS]; /* global sums of prepare's local parts */
    double token_denominator;      /* non-padding tokens in the global batch */
    int64_t global_rows;           /* sequences in the global batch */
    int64_t total_steps;           /* optimizer updates the run will take (for schedules
                                    * inside an objective, e.g. SMART's teacher momentum);
                                    * 0 = not known; dapt train: train.steps) */
    int64_t seq_len;               /* train: data.seq_len */
    int64_t micro_max;             /* rows of the largest micro-batch */
    const dapt_domain_info *domain;
    /* Per-element multipliers of the optimizer's step and of its weight
     * decay (laid out like model->params; NULL = 1), set by the objective
     * (e.g. in begin_domain) and read by the loop at every update
     * (dapt_adamw_update_scaled): DAS's update-space soft-mask. */
    const float *update_scale, *decay_scale;
    /* How the parameters sit in a checkpoint (valid in save / load): for
     * buffers laid out like them (dapt_objective_save_params). */
    const dapt_ckpt_layout *ckpt_layout;
    MPI_Comm ckpt_comm;
} dapt_objective_ctx;

/* This rank's rows of a global batch, before the objective corrupts them.
 * input_ids starts as a copy of clean_ids; labels as DAPT_IGNORE_LABEL;
 * attention_mask as the corpus's (1 = token, 0 = padding, tokens first).
 * An objective that shortens a row (deleted-token detection) pads it and
 * clears the mask behind it: the micro-batches run with the mask as
 * prepare leaves it. */
typedef struct dapt_rows {
    int64_t rows, seq_len;
    uint64_t first_sample; /* global sample index of row 0 (random keying) */
    uint64_t key_step;     /* step key of this block's random draws */
    const int32_t *clean_ids;
    int32_t *attention_mask;     /* [rows, seq_len] */
    int32_t *input_ids, *labels; /* [rows, seq_len] */
} dapt_rows;

/* One micro-batch: batch.input_ids are the corrupted inputs, clean_ids the
 * same rows before corruption; ws the workspace to run it in. */
typedef struct dapt_micro_batch {
    dapt_batch batch;
    const int32_t *clean_ids;
    dapt_workspace *ws;
} dapt_micro_batch;

typedef struct dapt_objective_ops {
    const char *name;
    unsigned flags;
    size_t n_denominators;           /* local parts prepare returns */
    const char *const *columns;      /* extra metrics.csv columns, NULL-terminated (or NULL) */
    const char *const *outputs;      /* files it writes in out_dir or a domain dir, NULL-terminated
                                      * (removed by --force with the run's own files) */
    /* Auxiliary tensors it owns (e.g. a detection head) for a model of
     * config mc: at most DAPT_OBJ_MAX_AUX specs into out, their number in *n.
     * They join the model's one parameter table (DAPT_TENSOR_AUX, params.h),
     * so the optimizer, the gradient all-reduce, tensor-parallel sharding
     * (replicated), checkpoints and model files handle them; export leaves
     * them out.  The objective finds them with dapt_model_param /
     * dapt_model_grad and owns their forward and backward.  New tensors are
     * initialised like the model's (dapt_model_init_random_flags); a model
     * file that holds them (an earlier domain's) gives their values.  Not
     * collective. */
    dapt_status (*aux_tensors)(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out,
                               size_t *n);
    /* The largest share of a batch's positions prepare may label for the MLM
     * head (the engine sizes its MLM rows from it, with 8 standard
     * deviations of slack); NULL = train.mlm_probability.  Not collective. */
    double (*label_fraction)(const dapt_config *cfg);

    dapt_status (*create)(void **state, const dapt_config *cfg);
    void (*destroy)(void *state);
    dapt_status (*begin_domain)(void *state, dapt_objective_ctx *ctx);
    dapt_status (*resume_domain)(void *state, dapt_objective_ctx *ctx);
    dapt_status (*end_domain)(void *state, dapt_objective_ctx *ctx);
    void (*release)(void *state); /* not collective */

    /* Not collective.  Fills blk->input_ids / labels and local_denominators
     * [n_denominators]. */
    dapt_status (*prepare)(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local_denominators);
    /* Forward and backward of one micro-batch into ctx->model->grads; adds
     * this rank's share of the step loss to *loss (normalised by the global
     * denominators, so the sum over data ranks is the step loss).  Not
     * collective over the data ranks (they may hold different numbers of
     * micro-batches); collective over the tensor group through the engine.
     * A non-finite loss is DAPT_ERR_NUMERIC (the step is skipped). */
    dapt_status (*micro_step)(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss);
    /* After every micro_step of the step, before the all-reduce, with this
     * rank's micro-batches (count may be 0).  Adds to *loss like micro_step. */
    dapt_status (*step_end)(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                            double *loss);
    /* After the gradient all-reduce, before clipping. */
    dapt_status (*transform_grads)(void *state, dapt_objective_ctx *ctx);
    /* After the optimizer update. */
    dapt_status (*after_update)(void *state, dapt_objective_ctx *ctx);
    /* This rank's shares of the extra columns of the step just taken (the
     * loop sums them over the data ranks).  Not collective. */
    dapt_status (*metrics)(void *state, const dapt_objective_ctx *ctx, double *local_values);
    /* The held-out loss of this rank's micro-batches mbs[0..count) (count
     * may be 0), prepared by this objective's prepare with
     * ctx->denominators set to the global sums of its local parts: forward
     * in evaluation mode (no dropout), no gradient; adds this rank's share
     * (the sum over data ranks is the loss) to *loss.  Collective over
     * ctx->data_comm (every rank calls it), so a loss over the global batch
     * (contrastive) can gather.  For objectives that evaluate others (a
     * sampler's meta-evaluation); NULL = cannot be evaluated. */
    dapt_status (*eval_loss)(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                             double *loss);
    /* Own state into / out of a checkpoint (collective over the file's communicator). */
    dapt_status (*save)(void *state, dapt_objective_ctx *ctx, dapt_h5file *f);
    dapt_status (*load)(void *state, dapt_objective_ctx *ctx, const dapt_h5file *f);
} dapt_objective_ops;

/* An objective and its state. */
typedef struct dapt_objective {
    const dapt_objective_ops *ops;
    void *state;
} dapt_objective;

/* The registry (src/objectives/registry.c): the objective called name with
 * all of the flags `need`, or NULL. */
const dapt_objective_ops *dapt_objective_find(const char *name, unsigned need);
/* Adds an objective at run time (tests, plug-ins linked into the binary);
 * DAPT_ERR_EXISTS when the name is taken.  Not thread-safe. */
dapt_status dapt_objective_register(const dapt_objective_ops *ops);
/* Names of the registered objectives with the flags `need`, comma-separated. */
void dapt_objective_names(unsigned need, char *buf, size_t len);

/* ops->label_fraction, or train.mlm_probability without one. */
double dapt_objective_label_fraction(const dapt_objective_ops *ops, const dapt_config *cfg);

/* Creates an instance (ops->create); dapt_objective_destroy releases it. */
dapt_status dapt_objective_create(const dapt_objective_ops *ops, const dapt_config *cfg, dapt_objective *obj);
void dapt_objective_destroy(dapt_objective *obj);
size_t dapt_objective_columns(const dapt_objective *obj);

/* Hook calls that treat a NULL hook as "nothing to do" (for loops and for
 * objectives that delegate).  prepare without a hook leaves the block as the
 * loop filled it. */
dapt_status dapt_objective_prepare(dapt_objective *o, const dapt_objective_ctx *ctx, dapt_rows *blk,
                                   double *local_denominators);
dapt_status dapt_objective_micro_step(dapt_objective *o, dapt_objective_ctx *ctx, const dapt_micro_batch *mb,
                                      double *loss);
dapt_status dapt_objective_step_end(dapt_objective *o, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs,
                                    int64_t count, double *loss);
dapt_status dapt_objective_transform_grads(dapt_objective *o, dapt_objective_ctx *ctx);
dapt_status dapt_objective_after_update(dapt_objective *o, dapt_objective_ctx *ctx);
dapt_status dapt_objective_metrics(dapt_objective *o, const dapt_objective_ctx *ctx, double *local_values);
/* ops->eval_loss; DAPT_ERR_UNSUPPORTED naming the objective when it has none. */
dapt_status dapt_objective_eval_loss(dapt_objective *o, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs,
                                     int64_t count, double *loss);
dapt_status dapt_objective_begin_domain(dapt_objective *o, dapt_objective_ctx *ctx);
dapt_status dapt_objective_resume_domain(dapt_objective *o, dapt_objective_ctx *ctx);
dapt_status dapt_objective_end_domain(dapt_objective *o, dapt_objective_ctx *ctx);
void dapt_objective_release(dapt_objective *o);

/* The run options of a training forward at ctx's step (dropout keyed by
 * (seed, step)).  Not collective. */
dapt_run_opts dapt_objective_train_opts(const dapt_objective_ctx *ctx);

/* The run options of an evaluation forward (no dropout).  Not collective. */
dapt_run_opts dapt_objective_eval_opts(const dapt_objective_ctx *ctx);

/* The model's MLM loss on one micro-batch (labels in mb->batch.mlm_labels,
 * normalised by ctx->denominators[0]), forward and backward with optional
 * unit masks on the forward: the data term that mlm, one, kd, ewc, dga and
 * das share.  Collective over the tensor group. */
dapt_status dapt_objective_mlm_term(dapt_objective_ctx *ctx, const dapt_micro_batch *mb, const dapt_unit_masks *masks,
                                    double *loss);

/* A flat buffer laid out like ctx->model->params (e.g. a teacher copy)
 * into / out of the checkpoint being written / read, as group/<tensor> at
 * global shape with CRC-32s, under any layout (tensor parallelism
 * included), so it resumes on another layout like the parameters do.  Only
 * inside the save / load hooks.  Collective over ctx->ckpt_comm. */
dapt_status dapt_objective_save_params(const dapt_objective_ctx *ctx, dapt_h5file *f, const char *group,
                                       const float *buf);
dapt_status dapt_objective_load_params(const dapt_objective_ctx *ctx, const dapt_h5file *f, const char *group,
                                       float *buf);

#endif
