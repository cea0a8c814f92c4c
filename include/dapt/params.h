/* Model configuration and the parameter table.
 *
 * All parameters of a model live in one contiguous float buffer (and so do
 * gradients and both Adam moments); this table names each tensor, gives its
 * global shape and its offset in that buffer.  Import, export, checkpoints
 * and the optimizer all walk the same table.  Weights are stored as PyTorch
 * stores them, [out, in] row-major, so y = x W^T + b and Hugging Face
 * tensors copy in unchanged.
 *
 * dapt's tensor names (l = layer index, C = num_labels):
 *   embeddings.word [V,H]  embeddings.position [P,H]  embeddings.token_type [T,H]
 *   embeddings.ln.weight [H]  embeddings.ln.bias [H]
 *   layer.l.attn.{q,k,v}.weight [H,H]  layer.l.attn.{q,k,v}.bias [H]
 *   layer.l.attn.out.weight [H,H]  layer.l.attn.out.bias [H]
 *   layer.l.attn.ln.weight [H]  layer.l.attn.ln.bias [H]
 *   layer.l.ffn.in.weight [I,H]  layer.l.ffn.in.bias [I]
 *   layer.l.ffn.out.weight [H,I]  layer.l.ffn.out.bias [H]
 *   layer.l.ffn.ln.weight [H]  layer.l.ffn.ln.bias [H]
 *   pooler.weight [H,H]  pooler.bias [H]                         (has_pooler)
 *   mlm.dense.weight [H,H]  mlm.dense.bias [H]  mlm.ln.weight [H]  mlm.ln.bias [H]
 *   mlm.bias [V]   (decoder weight tied to embeddings.word)        (has_mlm_head)
 *   BERT classifier:    cls.weight [C,H]  cls.bias [C]             (num_labels > 0)
 *   RoBERTa classifier: cls.dense.weight [H,H] cls.dense.bias [H]
 *                       cls.out.weight [C,H] cls.out.bias [C]
 * Nothing here is collective. */
#ifndef DAPT_PARAMS_H
#define DAPT_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/config.h"
#include "dapt/status.h"

typedef enum { DAPT_ARCH_BERT = 0, DAPT_ARCH_ROBERTA = 1 } dapt_arch;

typedef struct dapt_model_config {
    dapt_arch arch;
    int64_t vocab_size, hidden, layers, heads, intermediate;
    int64_t max_position, type_vocab_size, pad_token_id;
    double layer_norm_eps, hidden_dropout, attention_dropout, initializer_range;
    int has_pooler, has_mlm_head;
    int64_t num_labels; /* 0: no classification head */
} dapt_model_config;

/* Checks sizes (positive, hidden divisible by heads, ...); names the field. */
dapt_status dapt_model_config_validate(const dapt_model_config *mc);

/* The architecture of a randomly initialised model from [model] keys
 * (MLM head and pooler present, no classifier). */
dapt_status dapt_model_config_from_run(const dapt_config *cfg, dapt_model_config *mc);

enum dapt_tensor_flags {
    DAPT_TENSOR_NO_DECAY = 1u << 0, /* biases and LayerNorm: no weight decay */
    DAPT_TENSOR_LAYERNORM = 1u << 1,
    DAPT_TENSOR_EMBEDDING = 1u << 2,
    DAPT_TENSOR_AUX = 1u << 3 /* owned by a training objective ("aux.*"): replicated under
                               * tensor parallelism, kept in checkpoints and model files,
                               * never exported to Hugging Face */
};

/* An auxiliary tensor an objective asks for (objective.h): [rows, cols], a
 * vector when cols is 0.  Random initialisation treats it like the model's
 * own tensors (matrices N(0, initializer_range), vectors 0). */
typedef struct dapt_tensor_spec {
    char name[64]; /* must start with "aux." */
    int64_t rows, cols;
} dapt_tensor_spec;

typedef struct dapt_tensor {
    char name[64];
    int ndim;          /* 1 or 2 */
    int64_t shape[2];  /* global shape; shape[1] = 1 when ndim == 1 */
    size_t offset;     /* in floats, into the flat buffer; 16-float aligned */
    size_t numel;
    unsigned flags;
} dapt_tensor;

typedef struct dapt_param_table {
    dapt_tensor *tensors;
    size_t count;
    size_t total; /* floats in the flat buffer, padding included */
} dapt_param_table;

/* Builds the table for a configuration, in a fixed order: embeddings,
 * layers, pooler, MLM head, classifier. */
dapt_status dapt_param_table_build(const dapt_model_config *mc, dapt_param_table *table);
void dapt_param_table_free(dapt_param_table *table);
/* Appends auxiliary tensors (flag DAPT_TENSOR_AUX, vectors also NO_DECAY)
 * after the model's own; refuses a name without the "aux." prefix, a
 * duplicate or a non-positive size. */
dapt_status dapt_param_table_add_aux(dapt_param_table *table, const dapt_tensor_spec *aux, size_t n);

/* The tensor called name, or NULL. */
const dapt_tensor *dapt_param_find(const dapt_param_table *table, const char *name);

#endif
