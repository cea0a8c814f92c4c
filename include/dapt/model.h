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
 * Tensor-parallel seam (issue 5): a layer's attention-output and FFN-output
 * matmuls produce partial sums that are reduced over the tensor group before
 * bias + residual + LayerNorm; the inputs' gradients of the Q/K/V and FFN-in
 * matmuls are reduced the same way in backward; the MLM cross-entropy needs a
 * max and two sums over the vocabulary slices.  All of these go through
 * dapt_tp_group.allreduce; with tp == NULL (the only layout implemented so
 * far) they are no-ops and the model holds every head, column and vocabulary
 * row.
 *
 * Nothing in this header is collective: every function runs on the calling
 * process only (OpenMP + OpenBLAS threads inside). */
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

typedef struct dapt_model {
    dapt_model_config config;
    dapt_param_table table;
    float *params; /* table.total floats */
    float *grads;  /* table.total floats; backward accumulates here */
    const dapt_tp_group *tp; /* NULL: single process (only layout so far) */
} dapt_model;

/* Builds the table and allocates params and grads (both zeroed). */
dapt_status dapt_model_create(const dapt_model_config *mc, dapt_model *m);
void dapt_model_free(dapt_model *m);

/* Hugging Face's _init_weights: every matrix and embedding ~ N(0, initializer_range)
 * from dapt_rng (seed, DAPT_RNG_INIT, step 0, sample = tensor index in the
 * table, position = element), the padding row of the word embeddings (and of
 * RoBERTa's position embeddings) zero, LayerNorm weight 1 and bias 0, other
 * biases 0. */
void dapt_model_init_random(dapt_model *m, uint64_t seed);

void dapt_model_zero_grads(dapt_model *m);

/* The parameter (or gradient) block of a named tensor, NULL if absent. */
float *dapt_model_param(const dapt_model *m, const char *name);
float *dapt_model_grad(const dapt_model *m, const char *name);

/* One micro-batch.  Arrays are row-major [batch, seq_len]; attention_mask
 * (1 = attend, 0 = padding) NULL = all ones, token_type_ids NULL = zeros.
 * mlm_labels [batch, seq_len] with DAPT_IGNORE_LABEL for unscored positions,
 * class_labels [batch]; either may be NULL.  first_sample is the global index
 * of row 0 (dropout keying). */
typedef struct dapt_batch {
    int64_t batch, seq_len;
    const int32_t *input_ids;
    const int32_t *attention_mask;
    const int32_t *token_type_ids;
    const int32_t *mlm_labels;
    const int32_t *class_labels;
    uint64_t first_sample;
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
 * (they are not copied).  Loss = MLM loss (if mlm_labels and an MLM head) +
 * classification loss (if class_labels and num_labels > 0). */
dapt_status dapt_model_forward(const dapt_model *m, dapt_workspace *ws, const dapt_batch *b,
                               const dapt_unit_masks *masks, const dapt_run_opts *opts);

/* Backward of the last forward (needs spec.training).  Accumulates into
 * m->grads the gradient of loss_scale * loss + <d_last_hidden, last hidden
 * state> (d_last_hidden [batch, seq_len, hidden] or NULL: lets proxy losses
 * computed outside the engine, e.g. KL or contrastive, flow back), and into
 * mask_grads (may be NULL) the same for the unit masks.  Overwrites the MLM
 * logits with their gradient. */
dapt_status dapt_model_backward(dapt_model *m, dapt_workspace *ws, double loss_scale,
                                const float *d_last_hidden, const dapt_unit_mask_grads *mask_grads);

/* Results of the last forward; pointers into the arena, valid until the next
 * forward.  hidden_state(i): i = 0 embedding output, i = l + 1 output of
 * layer l; [batch, seq_len, hidden]. */
const float *dapt_ws_hidden_state(const dapt_workspace *ws, int64_t i);
const float *dapt_ws_last_hidden(const dapt_workspace *ws);
const float *dapt_ws_pooler(const dapt_workspace *ws); /* [batch, hidden] or NULL */
/* [rows, vocab] MLM logits; positions[r] = b * seq_len + s of row r. */
const float *dapt_ws_mlm_logits(const dapt_workspace *ws, int64_t *rows, const int64_t **positions);
const float *dapt_ws_class_logits(const dapt_workspace *ws); /* [batch, num_labels] or NULL */
/* Losses of the last forward (0 when the part is absent) and their counts. */
double dapt_ws_loss(const dapt_workspace *ws);
double dapt_ws_mlm_loss(const dapt_workspace *ws, int64_t *labelled);
double dapt_ws_cls_loss(const dapt_workspace *ws);
/* d loss / d embedding output [batch, seq_len, hidden] after backward (SMART). */
const float *dapt_ws_embedding_grad(const dapt_workspace *ws);

/* Model FLOPs of one forward on b tokens-batch (2 per multiply-add, matmuls
 * only; mlm_rows = positions through the MLM head); backward = 2x forward. */
double dapt_model_forward_flops(const dapt_model_config *mc, int64_t batch, int64_t seq_len,
                                int64_t mlm_rows);

#endif
