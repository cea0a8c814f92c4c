/* The transformer engine: BertModel / RobertaModel as Hugging Face defines
 * them, with the MLM head, the pooler and the sequence-classification heads,
 * forward and backward on one flat parameter buffer (see params.h) and one
 * activation arena sized up front.
 *
 * Usage:
 *   dapt_model m;                 dapt_model_create(&mc, &m);
 *   dapt_model_init_random(&m, seed);         (or fill m.params from a file)
 *   dapt_workspace *ws;           dapt_workspace_create(&m, &spec, &ws);
 *   dapt_model_forward(&m, ws, &batch, &masks, &opts);
 *   dapt_model_zero_grads(&m);    dapt_model_backward(&m, ws, 1.0, NULL, &mask_grads);
 *   (or dapt_model_backward_ex(&m, ws, &backward_opts) for gradients on the
 *   logits and input-only backward)
 *
 * Unit masks (the DAS/DGA "virtual" gates, all ones when NULL):
 *   head [layers, heads]          multiplies the attention probabilities of a
 *                                 head after dropout (Hugging Face head_mask)
 *   intermediate [layers, I]      multiplies the FFN pre-activation, before GELU
 *   output [layers, H]            multiplies the FFN output (after its bias),
 *                                 before dropout and the residual
 * Their gradients (d loss / d mask) are accumulated by backward when asked.
 *
 * Dropout (train mode) uses dapt_rng keyed by (seed, DAPT_RNG_DROPOUT, step,
 * global sample index, position) where position encodes the site (layer and
 * kind) and the element within the sample using *global* head / column
 * indices, so a sample's masks do not depend on which rank holds it.
 *
 * Tensor parallelism (Megatron-style, docs/model.md): a model made by
 * dapt_model_create_shard holds one tensor rank's share -- heads
 * [head_begin, +head_count) (rows of Q/K/V, columns of attn.out), FFN columns
 * [ffn_begin, +ffn_count) (rows of ffn.in, columns of ffn.out) and vocabulary
 * rows [vocab_begin, +vocab_rows) of embeddings.word / mlm.bias (the tied
 * decoder); everything else is replicated.  Per sub-layer, forward reduces the
 * row-parallel partial sums (attention output, FFN output) before bias +
 * dropout + residual + LayerNorm, backward reduces the input gradient of the
 * column-parallel Q/K/V and FFN-in matmuls; the embedding lookup is reduced
 * once, the MLM cross-entropy reduces a row max, the sums of exponentials and
 * target logits, and the decoder's input gradient.  All of these go through
 * m->tp->allreduce over the tensor group, so forward and backward of a
 * sharded model are collective over that group (every rank of it must call
 * them with the same batch, masks and options).  With tp == NULL (or size 1)
 * nothing is collective and a model from dapt_model_create holds every head,
 * column and vocabulary row.
 *
 * Unless a comment says otherwise, functions here run on the calling process
 * only (OpenMP + OpenBLAS threads inside). */
#ifndef DAPT_MODEL_H
#define DAPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/params.h"
#include "dapt/status.h"

/* MLM / class label value that contributes nothing (PyTorch ignore_index). */
#define DAPT_IGNORE_LABEL (-100)

typedef enum { DAPT_REDUCE_SUM = 0, DAPT_REDUCE_MAX = 1 } dapt_reduce_op;

/* All-reduce in place over the tensor-parallel group (issue 5). */
typedef dapt_status (*dapt_allreduce_fn)(void *ctx, float *buf, size_t count, dapt_reduce_op op);

typedef struct dapt_tp_group {
    int size, rank;
    dapt_allreduce_fn allreduce;
    void *ctx;
} dapt_tp_group;

/* The global units a model holds (all of them unless it is a tensor-parallel
 * shard).  Unit-mask arrays stay global ([layers, heads], [layers, I]): a
 * shard reads and writes only its entries of them. */
typedef struct dapt_model_ranges {
    int tensor_rank, tensor_size;     /* 0, 1 for a whole model */
    int64_t head_begin, head_count;   /* attention heads of every layer */
    int64_t ffn_begin, ffn_count;     /* FFN intermediate columns */
    int64_t vocab_begin, vocab_rows;  /* rows of embeddings.word and mlm.bias held
                                       * (vocabulary padding rows included) */
    int64_t vocab_real;               /* of which real tokens (< vocab_size) */
} dapt_model_ranges;

/* Told by a backward with parameter gradients, as it finishes each part,
 * that the gradients of every non-auxiliary tensor at offsets >= frontier
 * are complete for this backward (the frontiers of
 * dapt_model_grad_frontiers, in that order), so the gradient all-reduce can
 * start while the rest of the backward runs (src/optim/grad_sync.c).  A
 * non-OK status ends the backward with it. */
typedef struct dapt_grad_hook {
    dapt_status (*ready)(void *ctx, size_t frontier);
    void *ctx;
} dapt_grad_hook;

typedef struct dapt_model {
    dapt_model_config config;  /* global sizes */
    dapt_param_table table;    /* local shapes when sharded */
    float *params; /* table.total floats */
    float *grads;  /* table.total floats; backward accumulates here */
    const dapt_tp_group *tp;   /* NULL: single process */
    const dapt_grad_hook *grad_hook; /* NULL (the default): not called */
    dapt_model_ranges ranges;
    /* Every tensor's block in params and in grads, resolved once by
     * dapt_model_resolve (private to src/model; owned by the model). */
    struct dapt_model_ptrs *ptrs;
} dapt_model;

/* The offsets at which a backward's parameter gradients become complete,
 * in the order it completes them: (*f)[0] is where the tensors after the
 * layers begin (pooler, MLM head, classifier: done by the heads' backward),
 * (*f)[1 + k] the first tensor of layer layers - 1 - k, and the last, 0,
 * the embeddings.  *aux_begin: where the objective's auxiliary tensors
 * begin (table.total without any), which backward never completes.
 * Returns the number of frontiers, layers + 2.  Not collective. */
size_t dapt_model_grad_frontiers(const dapt_model *m, const size_t **f, size_t *aux_begin);

/* Builds the table and allocates params and grads (both zeroed); resolves
 * the tensor pointers (dapt_model_resolve). */
dapt_status dapt_model_create(const dapt_model_config *mc, dapt_model *m);
/* The same with auxiliary tensors (a training objective's, params.h)
 * appended to the table; the engine never reads them. */
dapt_status dapt_model_create_aux(const dapt_model_config *mc, const dapt_tensor_spec *aux, size_t naux,
                                  dapt_model *m);
/* A tensor-parallel shard: `local` is the rank's parameter table
 * (dapt_shard_table_build in grid.h; copied) and r the units it holds; the
 * shapes of local are checked against r.  Params and grads zeroed; set m->tp
 * before running it.  Use dapt_tp_shard_model (grid.h) to make one from a
 * whole model. */
dapt_status dapt_model_create_shard(const dapt_model_config *mc, const dapt_param_table *local,
                                    const dapt_model_ranges *r, dapt_model *m);
void dapt_model_free(dapt_model *m);

/* Resolves, once, a pointer to every tensor's block in m->params and in
 * m->grads, which forward and backward use instead of looking names up.
 * dapt_model_create and dapt_model_create_shard call it: params and grads
 * are allocated there once and must stay where they are (fill them with
 * memcpy, never assign m->params or m->grads).  Code that does replace either
 * buffer must call this again; forward and backward refuse (DAPT_ERR_ARG) a
 * model whose buffers are not the ones last resolved.  Moving the struct
 * (*dst = *src, as dapt_tp_shard_model does) keeps the pointers valid: they
 * aim into the buffers, not into the struct.  Local, not collective. */
dapt_status dapt_model_resolve(dapt_model *m);

/* The units this model (shard) holds, by global index: what DAS uses to
 * index importance of the heads and FFN neurons it owns. */
void dapt_model_shard_ranges(const dapt_model *m, dapt_model_ranges *out);

/* Whole models only (a shard is filled by scattering a whole one, so that the
 * numbers do not depend on the layout).  Hugging Face's _init_weights: every matrix and embedding ~ N(0, initializer_range)
 * from dapt_rng (seed, DAPT_RNG_INIT, step 0, sample = tensor index in the
 * table, position = element), the padding row of the word embeddings (and of
 * RoBERTa's position embeddings) zero, LayerNorm weight 1 and bias 0, other
 * biases 0. */
void dapt_model_init_random(dapt_model *m, uint64_t seed);
/* The same for the tensors with every flag of `flags` only (e.g.
 * DAPT_TENSOR_AUX: an objective's new tensors on a loaded model), with the
 * keys dapt_model_init_random would use. */
void dapt_model_init_random_flags(dapt_model *m, uint64_t seed, unsigned flags);

void dapt_model_zero_grads(dapt_model *m);

/* The parameter (or gradient) block of a named tensor, NULL if absent. */
float *dapt_model_param(const dapt_model *m, const char *name);
float *dapt_model_grad(const dapt_model *m, const char *name);

/* One micro-batch.  Arrays are row-major [batch, seq_len]; attention_mask
 * (1 = attend, 0 = padding) NULL = all ones, token_type_ids NULL = zeros.
 * mlm_labels [batch, seq_len] with DAPT_IGNORE_LABEL for unscored positions,
 * class_labels [batch]; either may be NULL.  regression_labels [batch]
 * (float targets, NaN = unscored) are used instead of class_labels when
 * num_labels == 1: the head is then a regression head and its loss the mean
 * squared error between the one logit and the label (Hugging Face's
 * problem_type "regression"); given to a model with num_labels != 1 they are
 * refused, and so are class_labels alone for num_labels == 1.  first_sample
 * is the global index of row 0 (dropout keying). */
typedef struct dapt_batch {
    int64_t batch, seq_len;
    const int32_t *input_ids;
    const int32_t *attention_mask;
    const int32_t *token_type_ids;
    const int32_t *mlm_labels;
    const int32_t *class_labels;
    uint64_t first_sample;
    const float *regression_labels; /* [batch], num_labels == 1 only; or NULL
                                     * (last, so positional initialisers of
                                     * the fields above keep working) */
} dapt_batch;

typedef struct dapt_unit_masks {
    const float *head;         /* [layers, heads] or NULL */
    const float *intermediate; /* [layers, intermediate] or NULL */
    const float *output;       /* [layers, hidden] or NULL */
} dapt_unit_masks;

/* Accumulated (+=) by backward; NULL members are not computed. */
typedef struct dapt_unit_mask_grads {
    float *head;
    float *intermediate;
    float *output;
} dapt_unit_mask_grads;

/* How a workspace is sized.  Forward refuses batches larger than this. */
typedef struct dapt_workspace_spec {
    int64_t batch, seq_len;
    int64_t max_mlm_rows; /* labelled positions per batch; 0 = batch * seq_len */
    int training;         /* keep what backward needs */
    int recompute;        /* keep only layer inputs; recompute each layer in backward */
} dapt_workspace_spec;

/* Per-head and per-column buffers are sized for the model's share (a
 * shard's workspace serves that shard only). */
typedef struct dapt_workspace dapt_workspace;

dapt_status dapt_workspace_create(const dapt_model *m, const dapt_workspace_spec *spec,
                                  dapt_workspace **out);
void dapt_workspace_free(dapt_workspace *ws);
/* Bytes of the activation arena (for logs and the memory budget). */
size_t dapt_workspace_bytes(const dapt_workspace *ws);

typedef struct dapt_run_opts {
    int train;                 /* dropout on */
    uint64_t seed, step;       /* dropout keying */
    int mlm_all_positions;     /* MLM logits for every position (dapt forward);
                                * otherwise only for labelled positions */
    double mlm_denominator;    /* loss = sum / this; 0 = number of labelled positions */
    double cls_denominator;    /* 0 = batch */
    const float *embedding_delta; /* [batch, seq_len, hidden] added to the
                                   * embedding output (SMART), or NULL */
} dapt_run_opts;

/* Forward pass.  The batch, masks and delta must stay valid until backward
 * (they are not copied).  Collective over the tensor group of a shard (every
 * rank of it passes the same batch, masks and options); backward too.  Loss = MLM loss (if mlm_labels and an MLM head) +
 * classification loss (if class_labels and num_labels > 1: cross-entropy;
 * if regression_labels and num_labels == 1: sum of (logit - label)^2 over
 * the scored samples / opts.cls_denominator, 0 = their count). */
dapt_status dapt_model_forward(const dapt_model *m, dapt_workspace *ws, const dapt_batch *b,
                               const dapt_unit_masks *masks, const dapt_run_opts *opts);

/* What backward differentiates and what it computes.  The objective is
 *   J = loss_scale * (the engine's own losses of the last forward: MLM and
 *                     classification cross-entropy or regression MSE, where
 *                     labels were given)
 *     + <d_last_hidden, last hidden state>
 *     + <d_class_logits, class logits> + <d_mlm_logits, MLM logits>
 * so a loss computed outside the engine on any of those outputs (KL to a
 * teacher, SMART's symmetric KL on the logits, contrastive terms) flows back
 * by passing its gradient; the caller's gradients are not scaled by
 * loss_scale.  The arrays are read during the call only; NULL = zero.
 *   d_last_hidden  [batch, seq_len, hidden]
 *   d_class_logits [batch, num_labels] (as dapt_ws_class_logits; needs a
 *                  classification head; works with or without class labels)
 *   d_mlm_logits   [rows, ranges.vocab_rows] exactly as dapt_ws_mlm_logits
 *                  reports them: the rows are the labelled positions (every
 *                  position with mlm_all_positions), the columns this model's
 *                  vocabulary rows (a shard's columns only); entries of
 *                  vocabulary padding columns are ignored.  Needs an MLM head;
 *                  forward computes MLM logits only when the batch has
 *                  mlm_labels or opts.mlm_all_positions is set (no rows: no
 *                  effect).
 * param_grads = 1 accumulates (+=) d J / d parameters into m->grads;
 * param_grads = 0 computes input gradients only: the weight-gradient GEMMs
 * and sums are skipped (not computed and discarded) and m->grads is left
 * untouched bit for bit -- for adversarial inner steps (SMART), which want
 * dapt_ws_embedding_grad = d J / d embedding output, i.e. d J / d
 * opts.embedding_delta of the forward.  mask_grads (NULL members skipped)
 * accumulates d J / d unit masks either way.
 * Start from DAPT_BACKWARD_OPTS_INIT: a zeroed struct means loss_scale 0
 * and no parameter gradients. */
typedef struct dapt_backward_opts {
    double loss_scale;              /* scale of the engine's own losses */
    const float *d_last_hidden;     /* [batch, seq_len, hidden] or NULL */
    const float *d_class_logits;    /* [batch, num_labels] or NULL */
    const float *d_mlm_logits;      /* [mlm rows, vocab rows held] or NULL */
    int param_grads;                /* 1: accumulate parameter gradients; 0: input gradients only */
    const dapt_unit_mask_grads *mask_grads; /* or NULL */
} dapt_backward_opts;

#define DAPT_BACKWARD_OPTS_INIT {1.0, NULL, NULL, NULL, 1, NULL}

/* Backward of the last forward (needs spec.training) with options o (NULL:
 * DAPT_BACKWARD_OPTS_INIT).  Always leaves dapt_ws_embedding_grad set.
 * Overwrites the MLM and class logits of the workspace with their
 * gradients (read them before), so a forward must precede each backward.
 * Collective over the tensor group of a shard: every rank of it calls it
 * with the same options (the same NULL-ness of each gradient; d_mlm_logits
 * holds each rank's own columns). */
dapt_status dapt_model_backward_ex(dapt_model *m, dapt_workspace *ws, const dapt_backward_opts *o);

/* dapt_model_backward_ex with {loss_scale, d_last_hidden, NULL, NULL,
 * param_grads 1, mask_grads}: accumulates into m->grads the gradient of
 * loss_scale * loss + <d_last_hidden, last hidden state>, and into
 * mask_grads (may be NULL) the same for the unit masks. */
dapt_status dapt_model_backward(dapt_model *m, dapt_workspace *ws, double loss_scale,
                                const float *d_last_hidden, const dapt_unit_mask_grads *mask_grads);

/* Completes unit-mask gradients accumulated by a shard: the head and
 * intermediate entries of units other tensor ranks own are overwritten with
 * their owners' values (a shard's backward adds only to the entries of its
 * own units, so accumulating over several backward passes and gathering at
 * the end, or after each, both work); the output-mask gradient is already
 * complete and identical on every rank.  Collective over
 * the tensor group (a no-op without one). */
dapt_status dapt_model_gather_mask_grads(const dapt_model *m, const dapt_unit_mask_grads *g);

/* Results of the last forward; pointers into the arena, valid until the next
 * forward.  hidden_state(i): i = 0 embedding output, i = l + 1 output of
 * layer l; [batch, seq_len, hidden]. */
const float *dapt_ws_hidden_state(const dapt_workspace *ws, int64_t i);
const float *dapt_ws_last_hidden(const dapt_workspace *ws);
const float *dapt_ws_pooler(const dapt_workspace *ws); /* [batch, hidden] or NULL */
/* [rows, ranges.vocab_rows] MLM logits of the vocabulary rows this model
 * holds (all of them unless sharded; padding rows are -inf); positions[r] =
 * b * seq_len + s of row r. */
const float *dapt_ws_mlm_logits(const dapt_workspace *ws, int64_t *rows, const int64_t **positions);
const float *dapt_ws_class_logits(const dapt_workspace *ws); /* [batch, num_labels] or NULL */
/* Losses of the last forward (0 when the part is absent) and their counts. */
double dapt_ws_loss(const dapt_workspace *ws);
double dapt_ws_mlm_loss(const dapt_workspace *ws, int64_t *labelled);
double dapt_ws_cls_loss(const dapt_workspace *ws);
/* d J / d embedding output [batch, seq_len, hidden] after backward (J as in
 * dapt_backward_opts), which is also d J / d opts.embedding_delta (SMART). */
const float *dapt_ws_embedding_grad(const dapt_workspace *ws);

/* Model FLOPs of one forward on b tokens-batch (2 per multiply-add, matmuls
 * only; mlm_rows = positions through the MLM head); backward = 2x forward. */
double dapt_model_forward_flops(const dapt_model_config *mc, int64_t batch, int64_t seq_len,
                                int64_t mlm_rows);

#endif
