/* The optimizer: AdamW, learning-rate schedules, global-norm gradient
 * clipping and gradient accumulation.
 *
 * Semantics follow PyTorch's torch.optim.AdamW (1.13, single-tensor path)
 * and Hugging Face's schedules, so that a dapt run follows the trajectory of
 * the same run in transformers' Trainer (docs/optim.md has the equations):
 *   t += 1
 *   p *= 1 - lr * wd                       (decoupled decay; 0 for NO_DECAY)
 *   m  = b1 m + (1 - b1) g
 *   v  = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * Arithmetic is float32 with the scalar coefficients computed in double and
 * rounded once, as PyTorch does.
 *
 * Every function works on flat buffers laid out by a dapt_param_table
 * (params, grads, m and v share the table's offsets) and takes a float range
 * [begin, end) of that buffer: only elements of tensors inside the range are
 * touched, so a rank can update the shard it owns (a tensor subset, or a
 * slice of the buffer cutting through tensors) and the padding between
 * tensors is never read.  Use 0 and table->total for everything.
 *
 * Nothing here is collective.  Gradient clipping over ranks is split in two
 * so that the caller reduces the sum of squares itself:
 *   local = dapt_grad_sumsq(...);  MPI_Allreduce(local -> total, SUM);
 *   scale = dapt_grad_clip_scale(total, max_norm, &norm);
 *   dapt_grad_scale(..., scale);
 * Loops are threaded with OpenMP and vectorisable. */
#ifndef DAPT_OPTIM_H
#define DAPT_OPTIM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/config.h"
#include "dapt/model.h"
#include "dapt/params.h"
#include "dapt/status.h"

typedef struct dapt_adamw {
    double beta1, beta2, eps, weight_decay;
    int64_t step; /* optimizer steps taken so far (PyTorch's state["step"]) */
} dapt_adamw;

/* Hyper-parameters from [train] (adam_beta1, adam_beta2, adam_eps,
 * weight_decay); step 0. */
void dapt_adamw_from_config(const dapt_config *cfg, dapt_adamw *opt);

/* Checks ranges (0 <= beta < 1, eps >= 0, weight_decay >= 0); names the
 * offending field. */
dapt_status dapt_adamw_validate(const dapt_adamw *opt);

/* One AdamW update with learning rate lr on the elements of [begin, end)
 * (floats of the flat buffers).  Tensors flagged DAPT_TENSOR_NO_DECAY get no
 * weight decay.  m and v start as zeros.  Does not advance opt->step: call
 * dapt_adamw_advance once per optimizer step, before the updates of that
 * step (all shards of one step use the same t). */
dapt_status dapt_adamw_update(const dapt_adamw *opt, double lr, const dapt_param_table *table,
                              size_t begin, size_t end, float *params, const float *grads,
                              float *m, float *v);

/* opt->step += 1; returns the new step (the t of this step's updates). */
int64_t dapt_adamw_advance(dapt_adamw *opt);

/* Learning-rate schedules, as transformers' get_linear_schedule_with_warmup
 * and get_constant_schedule_with_warmup: lr(s) = base * f(s) where s is the
 * number of optimizer steps already taken (the first step uses s = 0, so
 * with warm-up it runs with lr 0, exactly like the Trainer). */
typedef enum { DAPT_SCHEDULE_LINEAR = 0, DAPT_SCHEDULE_CONSTANT = 1 } dapt_schedule_kind;

typedef struct dapt_lr_schedule {
    dapt_schedule_kind kind;
    double base_lr;
    int64_t warmup_steps, total_steps;
} dapt_lr_schedule;

/* From [train] lr, schedule, steps, warmup_steps, warmup_ratio; warm-up steps
 * are warmup_steps if > 0, else ceil(warmup_ratio * steps) (the Trainer's
 * rule). */
dapt_status dapt_lr_schedule_from_config(const dapt_config *cfg, dapt_lr_schedule *s);

/* Learning rate for step s (0-based); s < 0 is treated as 0. */
double dapt_lr_at(const dapt_lr_schedule *s, int64_t step);

/* Sum of squares of the gradients in [begin, end), accumulated in double.
 * The global norm is sqrt of the sum over all shards and ranks. */
double dapt_grad_sumsq(const dapt_param_table *table, size_t begin, size_t end,
                       const float *grads);

/* Clipping factor from the global sum of squares, as
 * torch.nn.utils.clip_grad_norm_: norm = sqrt(sumsq); factor =
 * min(1, max_norm / (norm + 1e-6)).  max_norm <= 0 disables clipping
 * (factor 1).  *norm (if not NULL) receives the pre-clipping norm, which is
 * NaN or Inf when a gradient is; the factor is then NaN too (the caller
 * checks the norm and skips the step). */
float dapt_grad_clip_factor(double global_sumsq, double max_norm, double *norm);

/* dapt_adamw_update with per-element multipliers (flat buffers laid out
 * like params, or NULL = 1): step_scale multiplies the Adam step and
 * decay_scale the decoupled weight decay of each element,
 *   p <- p (1 - lr wd decay_scale) - step_scale lr m^ / (sqrt(v^) + eps),
 * so an element with both 0 does not move at all (DAS's update-space
 * soft-mask, docs/algorithms.md).  The moments are updated as usual.  With
 * both NULL it is dapt_adamw_update; with all ones the same bits.  Not
 * collective. */
dapt_status dapt_adamw_update_scaled(const dapt_adamw *opt, double lr, const dapt_param_table *table, size_t begin,
                                     size_t end, float *params, const float *grads, float *m, float *v,
                                     const float *step_scale, const float *decay_scale);

/* dapt_adamw_update_scaled on one span of n contiguous elements of a single
 * tensor (no_decay: the tensor has DAPT_TENSOR_NO_DECAY): p, g, step_scale
 * and decay_scale (either may be NULL) point at the span's first element in
 * the parameter layout, m and v at its moments, which may live elsewhere
 * (the compact shard of parallel.shard_optimizer).  The same bits, element
 * for element, as the table-wide functions.  Not collective. */
dapt_status dapt_adamw_update_span(const dapt_adamw *opt, double lr, int no_decay, size_t n, float *p, const float *g,
                                   float *m, float *v, const float *step_scale, const float *decay_scale);

/* Sums grads[0..total) over comm in place, in buckets of bucket_mb MiB all
 * in flight at once (MPI_Iallreduce).  Collective over comm. */
dapt_status dapt_grad_allreduce(float *grads, size_t total, double bucket_mb, MPI_Comm comm);

/* The gradient all-reduce of a training step, overlapped with backward
 * (src/optim/grad_sync.c).  Per step:
 *   dapt_grad_sync_begin(s, m->grads);
 *   m->grad_hook = dapt_grad_sync_hook(s);   only around the step's last
 *   ... the last backward ...                 backward, and only when it
 *   m->grad_hook = NULL;                      completes every gradient
 *   dapt_grad_sync_end(s, &nonfinite);        m->grads is now the sum
 * Buckets follow backward's frontiers (dapt_model_grad_frontiers), each
 * unit cut at bucket_mb MiB; the objective's auxiliary tensors go last.
 * Without the hook it is dapt_grad_allreduce with checks: every bucket is
 * started at the end.  The model must outlive it. */
typedef struct dapt_grad_sync dapt_grad_sync;

/* Not collective. */
dapt_status dapt_grad_sync_create(const dapt_model *m, double bucket_mb, MPI_Comm comm, dapt_grad_sync **out);
void dapt_grad_sync_free(dapt_grad_sync *s);
/* A new step: nothing in flight.  Not collective. */
void dapt_grad_sync_begin(dapt_grad_sync *s, float *grads);
/* The hook that starts buckets from inside backward.  Collective over comm
 * in the sense that every rank must end the step with dapt_grad_sync_end. */
const dapt_grad_hook *dapt_grad_sync_hook(dapt_grad_sync *s);
/* Starts the buckets not yet started, in order, and waits for all of them;
 * *nonfinite = 1 when this rank's own gradient held a NaN or an infinity
 * (checked bucket by bucket before sending).  Collective over comm. */
dapt_status dapt_grad_sync_end(dapt_grad_sync *s, int *nonfinite);
/* How many buckets (tests).  Not collective. */
size_t dapt_grad_sync_buckets(const dapt_grad_sync *s);

/* ZeRO stage 1 (parallel.shard_optimizer, src/optim/zero.c): the AdamW
 * moments sharded over the data-parallel ranks of comm.  The flat buffer
 * is cut into one contiguous range per rank, in rank order, every cut on a
 * row boundary (dapt_zero_range); a rank keeps the moments of its range
 * only, in two buffers of dapt_zero_size(z) floats indexed from the range's
 * start.  A step:
 *   the gradient reduce-scattered (a dapt_grad_sync made with z, in the
 *     all-reduce's buckets): each rank receives the sum of its range; the
 *     rest of its gradient buffer keeps what it computed, so only
 *     elementwise transforms may follow;
 *   dapt_zero_sumsq (collective) for clipping, dapt_zero_scale;
 *   dapt_zero_update: AdamW on the range;
 *   dapt_zero_gather (collective): every rank holds every updated float.
 * Each element's update is the replicated optimizer's, operation for
 * operation; only the order of the gradient sums may differ.  Data
 * parallelism only: the table is a whole model's.  The table must outlive
 * z. */
typedef struct dapt_zero dapt_zero;

/* The all-gather goes in buckets of bucket_mb MiB.  Not collective (reads
 * comm's rank and size). */
dapt_status dapt_zero_create(const dapt_param_table *table, double bucket_mb, MPI_Comm comm, dapt_zero **out);
void dapt_zero_free(dapt_zero *z);
/* Floats of this rank's range, the size of each moment buffer.  Not
 * collective. */
size_t dapt_zero_size(const dapt_zero *z);
/* This rank's range of the flat buffer, [*lo, *hi).  Not collective. */
void dapt_zero_range(const dapt_zero *z, size_t *lo, size_t *hi);
/* Three per tensor: the first row of it in this rank's range, how many
 * rows, and where the first sits in the moment buffers (the checkpoint's
 * dapt_ckpt_layout.optim_rows).  Not collective. */
const int64_t *dapt_zero_rows(const dapt_zero *z);
/* counts[r], displs[r] of [a, b): the floats of it in rank r's range and
 * where they start, relative to a (for MPI's v-collectives; displs may be
 * NULL).  Not collective. */
void dapt_zero_range_counts(const dapt_zero *z, size_t a, size_t b, int *counts, int *displs);
/* Starts the reduce-scatter of grads[a, b) with the counts of
 * dapt_zero_range_counts (which must stay valid until it completes);
 * MPI_REQUEST_NULL on one rank.  dapt_zero_reduce_finish, once every range
 * of the buffer has completed, copies this rank's summed range into grads.
 * Collective over comm (every rank starts the same ranges in the same
 * order). */
dapt_status dapt_zero_reduce_start(dapt_zero *z, size_t a, size_t b, const float *grads, const int *counts,
                                   MPI_Request *req);
void dapt_zero_reduce_finish(const dapt_zero *z, float *grads);
/* The sum of squares of the range over all ranks (the global one).
 * Collective over comm. */
dapt_status dapt_zero_sumsq(const dapt_zero *z, const float *grads, double *sumsq);
/* grads *= factor on the range.  Not collective. */
void dapt_zero_scale(const dapt_zero *z, float *grads, float factor);
/* dapt_adamw_update_scaled on the range, m and v the shard buffers.  Not
 * collective. */
dapt_status dapt_zero_update(const dapt_zero *z, const dapt_adamw *opt, double lr, float *params, const float *grads,
                             float *m, float *v, const float *step_scale, const float *decay_scale);
/* Every rank's updated range to every rank (in place).  Collective over
 * comm. */
dapt_status dapt_zero_gather(dapt_zero *z, float *params);

/* The AdamW moment buffers of a training or fine-tuning run (zeroed, *m
 * and *v to free()): for the whole table, or with parallel.shard_optimizer
 * for this rank's range (*z made, to dapt_zero_free; a line logged with
 * the count).  Sharding with tensor parallelism is refused with one line
 * naming the key.  Not collective. */
dapt_status dapt_adamw_moments(const dapt_config *cfg, const dapt_param_table *table, MPI_Comm comm,
                               int tensor_parallel, dapt_zero **z, float **m, float **v);

/* The gradient reduce-scatter of parallel.shard_optimizer: a
 * dapt_grad_sync with the buckets of dapt_grad_sync_create, each
 * reduce-scattered by z as backward completes it; dapt_grad_sync_end
 * leaves the summed range in grads.  Not collective. */
dapt_status dapt_grad_sync_create_sharded(const dapt_model *m, double bucket_mb, dapt_zero *z, MPI_Comm comm,
                                          dapt_grad_sync **out);

/* grads[i] *= factor on [begin, end). */
void dapt_grad_scale(const dapt_param_table *table, size_t begin, size_t end, float *grads,
                     float factor);

/* Single-process clipping: sum of squares, factor and scaling over the
 * whole buffer; returns the pre-clipping norm in *norm. */
void dapt_grad_clip(const dapt_param_table *table, float *grads, double max_norm, double *norm);

/* Gradient accumulation over micro-batches: acc[i] += g[i] on [begin, end)
 * (the first micro-batch may instead be copied or the accumulator zeroed
 * with dapt_grad_zero).  Averaging over k micro-batches is
 * dapt_grad_scale(..., 1.0f / k), which matches Hugging Face's loss / k
 * before backward up to float rounding. */
void dapt_grad_accumulate(const dapt_param_table *table, size_t begin, size_t end, float *acc,
                          const float *g);

/* acc[i] = 0 on [begin, end) (the padding is zeroed too). */
void dapt_grad_zero(size_t begin, size_t end, float *acc);

#endif
