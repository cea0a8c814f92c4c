/* DGA / DAS building blocks: unit importance, soft-masked gradients and the
 * general-vs-full contrastive loss (Ke et al., EMNLP 2022; ICLR 2023).
 *
 * Units are the engine's unit masks (model.h): attention heads [layers,
 * heads], FFN intermediate neurons [layers, intermediate] and FFN output
 * neurons [layers, hidden].  Importance of a unit is the gradient of a proxy
 * loss with respect to its mask variable g (= 1), accumulated over batches
 * and divided by the number of tokens seen.
 *
 * Layout invariance: every batch's unit gradients are summed over the data
 * communicator before they are accumulated, so both accumulation modes (the
 * reference code's signed sum and the paper's sum of absolute values) give
 * the same numbers for any number of data ranks.  The reference code instead
 * averages per-rank ratios, which changes with the layout; see
 * docs/algorithms.md.
 *
 * Collective functions say so; the rest run on the calling process only. */
#ifndef DAPT_DAS_H
#define DAPT_DAS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/h5io.h"
#include "dapt/model.h"
#include "dapt/params.h"
#include "dapt/status.h"

typedef enum {
    DAPT_IMPORTANCE_SIGNED = 0,  /* sum of batch gradients (ContinualLM code) */
    DAPT_IMPORTANCE_ABSOLUTE = 1 /* sum of |batch gradient| (the papers) */
} dapt_importance_mode;

/* Unit kinds, in the order they are stored and written. */
typedef enum { DAPT_UNIT_HEAD = 0, DAPT_UNIT_INTERMEDIATE = 1, DAPT_UNIT_OUTPUT = 2, DAPT_UNIT_KINDS = 3 } dapt_unit_kind;

/* Name of a unit kind as used in files: "head", "intermediate", "output". */
const char *dapt_unit_kind_name(dapt_unit_kind kind);

typedef struct dapt_importance {
    dapt_importance_mode mode;
    int64_t layers;
    int64_t units[DAPT_UNIT_KINDS]; /* per layer: heads, intermediate, hidden */
    double *sum[DAPT_UNIT_KINDS];   /* [layers * units[k]] accumulated gradients */
    float *batch[DAPT_UNIT_KINDS];  /* [layers * units[k]] scratch for one batch */
    double tokens;                  /* tokens accumulated (global) */
    int64_t batches;
} dapt_importance;

/* Allocates zeroed accumulators sized from the model configuration. */
dapt_status dapt_importance_create(const dapt_model_config *mc, dapt_importance_mode mode,
                                   dapt_importance *imp);
void dapt_importance_free(dapt_importance *imp);

/* The engine's gradient outputs pointing at imp->batch (zeroed): pass it to
 * dapt_model_backward, then call dapt_importance_add_batch. */
dapt_unit_mask_grads dapt_importance_batch_grads(dapt_importance *imp);
void dapt_importance_zero_batch(dapt_importance *imp);

/* Collective over comm (the data-parallel communicator; MPI_COMM_SELF for a
 * single process): sums this batch's unit gradients and token counts over
 * the ranks, then adds them (signed or absolute) to the accumulators. */
dapt_status dapt_importance_add_batch(dapt_importance *imp, double local_tokens, MPI_Comm comm);

/* Raw importance of one kind: sum / tokens, [layers * units[kind]].  Fails
 * when no token was accumulated. */
dapt_status dapt_importance_raw(const dapt_importance *imp, dapt_unit_kind kind, float *out);

/* How raw importance becomes [0, 1] per layer (das.normalization):
 *   TANH_Z  z = (x - mean) / std over the layer's units (std with n - 1, as
 *           torch.std), then |tanh(z)| (the papers); a layer whose units are
 *           all equal gets 0.  Its ceiling depends on n: |z| <= (n - 1)/sqrt(n),
 *           so with 4 units no unit exceeds tanh(1.5) = 0.905.
 *   RANK    (rank of x among the layer's units, ascending, ties averaged) /
 *           (n - 1): the most important unit gets 1, the least 0, whatever n
 *           (a single unit gets 1). */
typedef enum { DAPT_NORM_TANH_Z = 0, DAPT_NORM_RANK = 1 } dapt_norm_kind;
const char *dapt_norm_kind_name(dapt_norm_kind k);

/* Per-layer normalisation of [layers * units] (above).  in and out may
 * alias.  Not collective. */
void dapt_importance_normalize(const float *in, int64_t layers, int64_t units, dapt_norm_kind kind, float *out);

/* acc[i] = max(acc[i], src[i]): importances from several sources. */
void dapt_importance_combine_max(float *acc, const float *src, size_t n);

typedef enum {
    DAPT_SOFTMASK_PAPER = 0,     /* rows of Q/K/V (+bias) and columns of attn.out per head */
    DAPT_SOFTMASK_REFERENCE = 1  /* ContinualLM: Q/K/V weight columns and every attention
                                  * bias scaled by the per-head vector broadcast over the
                                  * hidden dimension (mixes heads) */
} dapt_softmask_style;

/* Multiplies gradients by (1 - importance) unit by unit, in place:
 *   head h of layer l: rows h*d..(h+1)*d-1 of layer.l.attn.{q,k,v}.weight and
 *     .bias, columns h*d..(h+1)*d-1 of layer.l.attn.out.weight
 *   intermediate neuron i: row i of layer.l.ffn.in.weight and .bias[i]
 *   output neuron j: row j of layer.l.ffn.out.weight and .bias[j]
 * Any of the importance arrays may be NULL (that kind is left alone).
 * Embeddings, LayerNorms and heads are never touched.  grads is the flat
 * gradient buffer described by table. */
dapt_status dapt_softmask_apply(const dapt_model_config *mc, const dapt_param_table *table, float *grads,
                                const float *head, const float *intermediate, const float *output,
                                dapt_softmask_style style);
/* The same on a tensor-parallel shard: table holds the shard's local tensors,
 * rg (dapt_model_shard_ranges) its global heads and FFN columns; importance
 * arrays are global.  The reference style is refused when tensor_size > 1. */
dapt_status dapt_softmask_apply_shard(const dapt_model_config *mc, const dapt_model_ranges *rg,
                                      const dapt_param_table *table, float *grads, const float *head,
                                      const float *intermediate, const float *output, dapt_softmask_style style);

/* Mean over the sequence of hidden states, padding excluded:
 * out[b, :] = sum_s mask[b,s] h[b,s,:] / sum_s mask[b,s] (a row with no token
 * gives zeros).  mask may be NULL (all ones). */
void dapt_mean_pool_forward(const float *hidden, const int32_t *mask, int64_t batch, int64_t seq_len,
                            int64_t dim, float *out);
/* d_hidden[b,s,:] += mask[b,s] d_out[b,:] / sum_s mask[b,s]. */
void dapt_mean_pool_backward(const float *d_out, const int32_t *mask, int64_t batch, int64_t seq_len,
                             int64_t dim, float *d_hidden);

/* The DAS contrastive loss (InfoNCE with cosine similarity / tau) over the
 * global batch of N = sum of every rank's n rows:
 *   L = -(1/N) sum_i log( e^{s(z1_i, z2_i)} /
 *            (sum_j e^{s(z1_i, z2_j)} + sum_j e^{s(z1_i, z3_j)}) ),
 *   s(a, b) = cos(a, b) / tau,
 * anchors z1 (full view, dropout pass 1), positives z2 (full view, pass 2),
 * negatives every other z2_j and every z3_j (the importance-masked "general"
 * view), z3_i included.
 * Collective over comm (the data-parallel communicator): each rank passes
 * its own n rows [n, dim]; z2 and z3 are gathered, and the gradients that
 * belong to other ranks' rows are sent back, so d_z1, d_z2, d_z3 ([n, dim],
 * overwritten; any may be NULL) are this rank's rows of dL/dz.  Returns the
 * global loss (the same on every rank) in *loss. */
dapt_status dapt_contrastive_loss(const float *z1, const float *z2, const float *z3, int64_t n, int64_t dim,
                                  double tau, MPI_Comm comm, double *loss, float *d_z1, float *d_z2,
                                  float *d_z3);
/* The same with z3_i left out of row i's candidates when skip_own_z3 is
 * set: with z3 = z1 that is the symmetric NT-Xent of SimCSE / MOMETAS's
 * cse, one direction per call (every view of every other sequence is a
 * negative, the anchor itself is not).  Collective over comm. */
dapt_status dapt_contrastive_loss_ex(const float *z1, const float *z2, const float *z3, int64_t n, int64_t dim,
                                     double tau, int skip_own_z3, MPI_Comm comm, double *loss, float *d_z1,
                                     float *d_z2, float *d_z3);

/* The robustness proxy of DGA/DAS: KL divergence between token-axis
 * softmaxes of two last-hidden-state tensors [batch, seq_len, hidden]
 * (ContinualLM's DistillKL applied to hidden_states[-1], softmax over dim 1,
 * in dapt's direction; ContinualLM's is the reverse, see below):
 *   p_t = softmax_s(teacher[b,:,k] / T),  p_s = softmax_s(student[b,:,k] / T)
 *   L = T^2 / batch * sum_{b,k} KL(p_t || p_s)
 * Padding positions (mask 0) are left out of both softmaxes (the reference
 * code includes them; mask NULL reproduces that).  d_student (may be NULL)
 * receives dL/dstudent (overwritten); the teacher is treated as a constant
 * (dapt_token_kl_loss_ex also gives its gradient).  Not collective: each
 * rank scores its own rows, and the caller sums losses over ranks if it
 * needs the global value. */
dapt_status dapt_token_kl_loss(const float *student, const float *teacher, const int32_t *mask, int64_t batch,
                               int64_t seq_len, int64_t hidden, double temperature, double *loss,
                               float *d_student);

/* Which way the token-axis KL runs (das.proxy_direction, kd.direction):
 *   TEACHER_STUDENT  KL(p_teacher || p_student): dapt's, and what
 *                    dapt_token_kl_loss computes
 *   STUDENT_TEACHER  KL(p_student || p_teacher): ContinualLM's, which calls
 *                    DistillKL(y_s = teacher, y_t = student) and DistillKL
 *                    computes KL(softmax(y_t) || softmax(y_s)) */
typedef enum { DAPT_KL_TEACHER_STUDENT = 0, DAPT_KL_STUDENT_TEACHER = 1 } dapt_kl_direction;
const char *dapt_kl_direction_name(dapt_kl_direction d);

/* dapt_token_kl_loss in either direction, with the gradient with respect to
 * either argument (NULL: not computed; both overwritten).  With p = softmax
 * of the KL's first argument x / T and q of its second y / T, per column
 * (b, k):  L = T^2 / batch * KL(p || q),
 *   dL/dy_s = T / batch * (q_s - p_s)
 *   dL/dx_s = T / batch * p_s (log p_s - log q_s - KL(p || q)).
 * TEACHER_STUDENT with d_teacher NULL is dapt_token_kl_loss bit for bit.
 * Not collective. */
dapt_status dapt_token_kl_loss_ex(const float *student, const float *teacher, const int32_t *mask, int64_t batch,
                                  int64_t seq_len, int64_t hidden, double temperature, dapt_kl_direction dir,
                                  double *loss, float *d_student, float *d_teacher);

/* Proxy losses whose unit-mask gradients define importance. */
typedef enum {
    DAPT_PROXY_KL = 0, /* robustness: token-axis KL between two dropout passes (no general data) */
    DAPT_PROXY_MLM = 1 /* MLM loss on a corpus (general, or the domain just learned) */
} dapt_proxy_kind;

/* Supplies this rank's part of global batch `index` (sizes within the
 * workspaces'); sets *tokens to its count of non-padding tokens. */
typedef dapt_status (*dapt_batch_source_fn)(void *ctx, int64_t index, dapt_batch *batch, double *tokens);

/* Which passes of the KL proxy the unit-mask gradient flows through
 * (das.proxy_passes).  Both passes run the same model with the same unit
 * masks g, so dL/dg has a term from each (the papers; ContinualLM passes g
 * to both); ONE is dapt's earlier version, the second pass a frozen
 * forward-only copy. */
typedef enum { DAPT_PROXY_PASSES_BOTH = 0, DAPT_PROXY_PASSES_ONE = 1 } dapt_proxy_passes;

typedef struct dapt_importance_pass_opts {
    dapt_proxy_kind proxy;
    int64_t batches;      /* global batches to accumulate (every rank the same) */
    uint64_t seed;        /* dropout keying of the passes */
    double temperature;   /* KL proxy temperature (1 in the reference) */
    dapt_proxy_passes passes;    /* KL proxy: BOTH (0, default) or ONE */
    dapt_kl_direction direction; /* KL proxy: model pass = student, second pass = teacher */
} dapt_importance_pass_opts;

/* das.proxy_passes and das.proxy_direction of a configuration.  Not collective. */
dapt_proxy_passes dapt_proxy_passes_of(const dapt_config *cfg);
dapt_kl_direction dapt_proxy_direction_of(const dapt_config *cfg);

/* Accumulates unit importance of model m into imp over opts.batches batches
 * from source, with dropout on (train mode).  KL proxy: the model's pass
 * (dropout keyed by (seed, step = batch index)) against a second pass over
 * the same input (the same weights, dropout keyed by seed ^
 * dapt_rng_stream_tag(DAPT_RNG_FROZEN)), KL(second || model) or the reverse
 * (opts.direction); the gradient flows through both passes (opts.passes =
 * BOTH; ws_frozen then needs spec.training) or through the model's pass only
 * (ONE; ws_frozen may be forward-only).  MLM proxy: the batch's MLM labels.
 * ws_model needs spec.training; ws_frozen may be NULL for MLM.  Parameter
 * gradients are left zero.  Collective
 * over comm (the data-parallel communicator) once per batch, and over the
 * model's tensor group when m is a shard (whose unit-mask gradients are
 * gathered, so imp holds every unit on every rank). */
dapt_status dapt_importance_pass(dapt_model *m, dapt_workspace *ws_model, dapt_workspace *ws_frozen,
                                 dapt_batch_source_fn source, void *ctx, const dapt_importance_pass_opts *opts,
                                 dapt_importance *imp, MPI_Comm comm);


/* ---- importance files (OUT/importance.h5, dapt importance) ---------------- */

/* One finished importance: raw (sum / tokens) and normalised arrays of each
 * kind, indexed by global unit [layers * units[k]], and how it was made. */
typedef struct dapt_importance_source {
    char name[128];              /* "general", a domain name, ... */
    dapt_proxy_kind proxy;
    dapt_importance_mode mode;
    double tokens;
    int64_t batches;
    int64_t layers, units[DAPT_UNIT_KINDS];
    dapt_norm_kind norm_kind; /* how norm was made from raw (attribute "normalization") */
    float *raw[DAPT_UNIT_KINDS];
    float *norm[DAPT_UNIT_KINDS];
} dapt_importance_source;

/* Raw and normalised arrays from accumulators.  Not collective. */
dapt_status dapt_importance_source_make(const dapt_importance *imp, const char *name, dapt_proxy_kind proxy,
                                        dapt_norm_kind norm, dapt_importance_source *src);
void dapt_importance_source_free(dapt_importance_source *src);

/* Element-wise max of the normalised arrays of srcs[0..n) into out[k]
 * (allocated, [layers * units[k]]; zeros when n = 0).  Not collective. */
dapt_status dapt_importance_combine_sources(const dapt_importance_source *srcs, size_t n, int64_t layers,
                                            const int64_t units[DAPT_UNIT_KINDS], float *out[DAPT_UNIT_KINDS]);

/* A combined importance used to soft-mask one domain. */
typedef struct dapt_importance_mask_entry {
    char name[128];            /* the domain */
    char sources[512];         /* comma-separated source names combined */
    const float *norm[DAPT_UNIT_KINDS];
} dapt_importance_mask_entry;

/* Writes path (temporary name, then rename; replaces an existing file):
 *   /importance/<unit>/<source>/raw, /normalized   float32 [layers, units]
 *       attributes on the source group: tokens, batches, proxy ("kl"|"mlm"),
 *       accumulation ("signed"|"absolute")
 *   /softmask/<domain>/<unit>                       float32 [layers, units]
 *       attribute sources on /softmask/<domain>
 * Collective over comm (every rank passes the same arrays; rank 0 writes). */
dapt_status dapt_importance_write(MPI_Comm comm, const char *path, const dapt_config *cfg,
                                  const dapt_importance_source *srcs, size_t nsrc,
                                  const dapt_importance_mask_entry *masks, size_t nmask);

/* Reads source `name` (raw and normalised arrays, tokens, batches, proxy,
 * mode) from a file written by dapt_importance_write, checking the shapes
 * against mc and that normalised values lie in [0, 1] (recomputed from raw
 * when absent).  A missing file or source is not an error: *found = 0.
 * Collective over comm. */
dapt_status dapt_importance_read_source(MPI_Comm comm, const char *path, const char *name,
                                        const dapt_model_config *mc, dapt_importance_source *src, int *found);

/* The name of the only source in an importance file (an error when it holds
 * none or several).  Collective over comm. */
dapt_status dapt_importance_only_source(MPI_Comm comm, const char *path, char *name, size_t len);

#endif
