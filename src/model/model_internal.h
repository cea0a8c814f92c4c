/* Engine-internal declarations shared by the files of src/model (model.c:
 * model, workspace, embeddings, encoder layers, top level; heads.c: MLM
 * head, pooler, classification heads and their cross-entropies).  Private to
 * src/model; the public interface is include/dapt/model.h.
 *
 * Notation: B batch, S sequence length, T = B*S tokens, H hidden, F FFN
 * width (not I: cblas.h pulls in complex.h, whose I is a macro), NH heads,
 * D = H / NH head size, V vocabulary, M MLM rows.
 * Weights are [out, in] (PyTorch layout), activations row-major [rows, cols]. */
#ifndef DAPT_MODEL_INTERNAL_H
#define DAPT_MODEL_INTERNAL_H

#include <stdint.h>

#include "dapt/model.h"
#include "dapt/rng.h"
#include "kernels.h"

/* What one encoder layer keeps for backward. */
typedef struct layer_acts {
    float *q, *k, *v; /* [T,H] projections */
    float *p;         /* [B,NH,S,S] softmax probabilities (before dropout / head mask) */
    float *ctx;       /* [T,H] attention context (heads merged) */
    float *xhat1, *rstd1, *h1; /* attention LayerNorm: normalised input, 1/std, output */
    float *u;         /* [T,F] FFN pre-activation (before the intermediate mask) */
    float *y;         /* [T,H] FFN output with bias (before the output mask) */
    float *xhat2, *rstd2;      /* output LayerNorm */
    uint8_t *keep_att, *keep_ao, *keep_ffn; /* dropout decisions (training) */
} layer_acts;

struct dapt_workspace {
    dapt_model_config mc;
    dapt_workspace_spec spec;
    /* The model's share (all of it unless sharded): heads NHL = HL / D,
     * FFN columns FL, vocabulary rows VL. */
    dapt_model_ranges r;
    int64_t NHL, HL, FL, VL;
    float *arena;
    size_t arena_floats;
    int64_t T_max, M_max;
    /* forward */
    float *hs;              /* [(L+1), T, H] hidden states: embedding output, each layer's */
    float *xhat0, *rstd0;   /* embedding LayerNorm */
    uint8_t *keep0;         /* embedding dropout decisions (training) */
    float *maskadd;         /* [B,S] additive attention mask */
    layer_acts *la;         /* L entries; share one set unless training without recompute */
    float *act;             /* [T,F] GELU output (recomputed in backward) */
    float *tmp;             /* [T,H] */
    float *pool_in, *pooled; /* [B,H] */
    float *cls_x, *cls_z, *cls_x2, *cls_logits, *cls_lse; /* classification head */
    float *mlm_in, *mlm_pre, *mlm_xhat, *mlm_rstd, *mlm_out, *mlm_logits, *mlm_lse;
    float *mlm_red;         /* [2M] vocab-parallel reductions (sum of exponentials, target logit) */
    /* backward */
    float *dA, *dB, *g1, *g2, *g3, *dq, *dk, *dv, *du, *gelu_grad, *demb, *mlm_d1, *mlm_d2;
    float *hm_grad_tmp;     /* [B,NH] per (sample, head) head-mask gradient */
    int32_t *pos_ids;       /* [T] */
    int64_t *mlm_pos;       /* [M] */
    int32_t *mlm_lab;       /* [M] */
    /* the last forward */
    int have_forward, grads_taken;
    dapt_batch b;
    dapt_unit_masks um;
    dapt_run_opts opts;
    dapt_rng rng;
    k_dropout hid_drop, att_drop;
    int64_t mlm_rows, mlm_count, cls_count;
    double mlm_loss, cls_loss, mlm_den, cls_den;
};

/* All-reduce over the tensor group (a no-op without one). */
static inline dapt_status model_tp_reduce(const dapt_model *m, float *buf, size_t n, dapt_reduce_op op)
{
    if (!m->tp || m->tp->size <= 1) return DAPT_OK;
    return m->tp->allreduce(m->tp->ctx, buf, n, op);
}

/* Dropout sites: 0 embeddings, 1 + 3l + {0 attention probs, 1 attention
 * output, 2 FFN output}, then the classifier's two. */
static inline uint64_t model_site_of(int64_t layer, int kind) { return 1 + 3 * (uint64_t)layer + (uint64_t)kind; }
static inline uint64_t model_cls_site(const dapt_workspace *ws, int k) { return model_site_of(ws->mc.layers, k); }

/* Tensors resolved once (dapt_model_resolve, called by dapt_model_create and
 * dapt_model_create_shard): forward and backward index these structs instead
 * of looking names up in the parameter table.  The pointers aim into
 * m->params or m->grads, which are allocated once by create and never
 * replaced; forward and backward refuse a model whose buffers differ from
 * the ones resolved (ptrs_ok in model.c). */

/* One encoder layer's tensors in one flat buffer (layer.l.*). */
typedef struct model_layer_ptrs {
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b; /* attn.{q,k,v}.{weight,bias} */
    float *ao_w, *ao_b, *aln_w, *aln_b;       /* attn.out.*, attn.ln.* */
    float *fi_w, *fi_b, *fo_w, *fo_b;         /* ffn.in.*, ffn.out.* */
    float *fln_w, *fln_b;                     /* ffn.ln.* */
} model_layer_ptrs;

/* Embeddings and heads; NULL for tensors the model does not have. */
typedef struct model_top_ptrs {
    float *word, *position, *token_type, *eln_w, *eln_b; /* embeddings.* */
    float *pooler_w, *pooler_b;
    float *mlm_dense_w, *mlm_dense_b, *mlm_ln_w, *mlm_ln_b, *mlm_bias;
    float *cls_w, *cls_b;                                 /* BERT classifier */
    float *cls_dense_w, *cls_dense_b, *cls_out_w, *cls_out_b; /* RoBERTa classifier */
} model_top_ptrs;

typedef struct model_ptrs {
    model_top_ptrs top;
    model_layer_ptrs *layer; /* [layers] */
} model_ptrs;

/* m->ptrs.  `none` is all NULL: the gradient set of a backward that
 * computes input gradients only (dapt_backward_opts.param_grads = 0); the
 * kernels skip a weight-gradient GEMM or sum whose destination is NULL. */
struct dapt_model_ptrs {
    const float *params, *grads; /* the buffers resolved against */
    model_ptrs p, g, none;
    size_t *frontier; /* [layers + 2], dapt_model_grad_frontiers */
    size_t aux_begin;
};

/* heads.c.  Forward reads the last hidden state ws->hs[layers]; backward
 * differentiates loss_scale * (the head's cross-entropy, when labels scored
 * something) + <d_logits, logits> (d_logits NULL: nothing), overwriting the
 * logits with their gradient, adds its input gradient into dlast [B, S, H]
 * (the rows it reads) and its parameter gradients into G (all NULL: none). */
dapt_status model_mlm_forward(const dapt_model *m, dapt_workspace *ws);
dapt_status model_mlm_backward(const dapt_model *m, dapt_workspace *ws, double loss_scale, float *dlast,
                               const model_top_ptrs *G, const float *d_logits);
void model_pooler_forward(const dapt_model *m, dapt_workspace *ws);
dapt_status model_classifier_forward(const dapt_model *m, dapt_workspace *ws);
void model_classifier_backward(const dapt_model *m, dapt_workspace *ws, double loss_scale, float *dlast,
                               const model_top_ptrs *G, const float *d_logits);

#endif
