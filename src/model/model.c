/* BERT / RoBERTa forward and backward on flat buffers (see dapt/model.h):
 * model creation and tensor-pointer resolution, the workspace, embeddings,
 * encoder layers and the top level; the heads are in heads.c.
 *
 * Notation: B batch, S sequence length, T = B*S tokens, H hidden, F FFN
 * width (not I: cblas.h pulls in complex.h, whose I is a macro), NH heads,
 * D = H / NH head size, V vocabulary, M MLM rows.
 * Weights are [out, in] (PyTorch layout), activations row-major [rows, cols];
 * head h of a [T, H] projection is the column block h*D .. h*D+D-1, used in
 * place with leading dimension H (no transposes). */
#include "dapt/model.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* ---------------------------------------------------------------- model */

/* The block of a named tensor in base, NULL if absent (or !required: fine). */
static dapt_status find(const dapt_model *m, float *base, const char *name, int required, float **out)
{
    const dapt_tensor *t = dapt_param_find(&m->table, name);
    *out = t ? base + t->offset : NULL;
    if (!t && required) return DAPT_ERROR(DAPT_ERR_INTERNAL, "model: the parameter table has no tensor %s", name);
    return DAPT_OK;
}

static dapt_status resolve_into(const dapt_model *m, float *base, model_ptrs *p)
{
    const dapt_model_config *mc = &m->config;
    model_top_ptrs *t = &p->top;
    const int roberta = mc->arch == DAPT_ARCH_ROBERTA, cls = mc->num_labels > 0, mlm = mc->has_mlm_head != 0;
    DAPT_CHECK(find(m, base, "embeddings.word", 1, &t->word));
    DAPT_CHECK(find(m, base, "embeddings.position", 1, &t->position));
    DAPT_CHECK(find(m, base, "embeddings.token_type", 1, &t->token_type));
    DAPT_CHECK(find(m, base, "embeddings.ln.weight", 1, &t->eln_w));
    DAPT_CHECK(find(m, base, "embeddings.ln.bias", 1, &t->eln_b));
    DAPT_CHECK(find(m, base, "pooler.weight", mc->has_pooler, &t->pooler_w));
    DAPT_CHECK(find(m, base, "pooler.bias", mc->has_pooler, &t->pooler_b));
    DAPT_CHECK(find(m, base, "mlm.dense.weight", mlm, &t->mlm_dense_w));
    DAPT_CHECK(find(m, base, "mlm.dense.bias", mlm, &t->mlm_dense_b));
    DAPT_CHECK(find(m, base, "mlm.ln.weight", mlm, &t->mlm_ln_w));
    DAPT_CHECK(find(m, base, "mlm.ln.bias", mlm, &t->mlm_ln_b));
    DAPT_CHECK(find(m, base, "mlm.bias", mlm, &t->mlm_bias));
    DAPT_CHECK(find(m, base, "cls.weight", cls && !roberta, &t->cls_w));
    DAPT_CHECK(find(m, base, "cls.bias", cls && !roberta, &t->cls_b));
    DAPT_CHECK(find(m, base, "cls.dense.weight", cls && roberta, &t->cls_dense_w));
    DAPT_CHECK(find(m, base, "cls.dense.bias", cls && roberta, &t->cls_dense_b));
    DAPT_CHECK(find(m, base, "cls.out.weight", cls && roberta, &t->cls_out_w));
    DAPT_CHECK(find(m, base, "cls.out.bias", cls && roberta, &t->cls_out_b));
    static const struct {
        const char *what;
        size_t off;
    } fields[] = {
        {"attn.q.weight", offsetof(model_layer_ptrs, q_w)},    {"attn.q.bias", offsetof(model_layer_ptrs, q_b)},
        {"attn.k.weight", offsetof(model_layer_ptrs, k_w)},    {"attn.k.bias", offsetof(model_layer_ptrs, k_b)},
        {"attn.v.weight", offsetof(model_layer_ptrs, v_w)},    {"attn.v.bias", offsetof(model_layer_ptrs, v_b)},
        {"attn.out.weight", offsetof(model_layer_ptrs, ao_w)}, {"attn.out.bias", offsetof(model_layer_ptrs, ao_b)},
        {"attn.ln.weight", offsetof(model_layer_ptrs, aln_w)}, {"attn.ln.bias", offsetof(model_layer_ptrs, aln_b)},
        {"ffn.in.weight", offsetof(model_layer_ptrs, fi_w)},   {"ffn.in.bias", offsetof(model_layer_ptrs, fi_b)},
        {"ffn.out.weight", offsetof(model_layer_ptrs, fo_w)},  {"ffn.out.bias", offsetof(model_layer_ptrs, fo_b)},
        {"ffn.ln.weight", offsetof(model_layer_ptrs, fln_w)},  {"ffn.ln.bias", offsetof(model_layer_ptrs, fln_b)},
    };
    for (int64_t l = 0; l < mc->layers; l++)
        for (size_t k = 0; k < sizeof fields / sizeof *fields; k++) {
            char name[64];
            snprintf(name, sizeof name, "layer.%lld.%s", (long long)l, fields[k].what);
            DAPT_CHECK(find(m, base, name, 1, (float **)((char *)&p->layer[l] + fields[k].off)));
        }
    return DAPT_OK;
}

dapt_status dapt_model_resolve(dapt_model *m)
{
    const size_t L = (size_t)m->config.layers;
    if (!m->ptrs) {
        struct dapt_model_ptrs *r = NULL;
        DAPT_CHECK(dapt_calloc((void **)&r, 1,
                               sizeof *r + 3 * L * sizeof(model_layer_ptrs) + (L + 2) * sizeof(size_t),
                               "model tensor pointers"));
        model_layer_ptrs *layers = (model_layer_ptrs *)(r + 1);
        r->p.layer = layers;
        r->g.layer = layers + L;
        r->none.layer = layers + 2 * L; /* all NULL (calloc) */
        r->frontier = (size_t *)(layers + 3 * L);
        m->ptrs = r;
    }
    DAPT_CHECK(resolve_into(m, m->params, &m->ptrs->p));
    DAPT_CHECK(resolve_into(m, m->grads, &m->ptrs->g));
    m->ptrs->params = m->params;
    m->ptrs->grads = m->grads;
    /* Backward's frontiers: the heads' tensors (everything after the layers
     * up to the auxiliary ones), then each layer from the last, then the
     * embeddings; the table keeps each layer contiguous, q.weight first. */
    struct dapt_model_ptrs *r = m->ptrs;
    size_t after = m->table.total, aux = m->table.total;
    for (size_t i = 0; i < m->table.count; i++) {
        const dapt_tensor *t = &m->table.tensors[i];
        if (t->flags & DAPT_TENSOR_AUX) {
            if (t->offset < aux) aux = t->offset;
        } else if (strncmp(t->name, "embeddings.", 11) != 0 && strncmp(t->name, "layer.", 6) != 0 && t->offset < after) {
            after = t->offset;
        }
    }
    r->aux_begin = aux;
    r->frontier[0] = after < aux ? after : aux;
    for (size_t l = 0; l < L; l++) r->frontier[1 + (L - 1 - l)] = (size_t)(r->g.layer[l].q_w - m->grads);
    r->frontier[L + 1] = 0;
    return DAPT_OK;
}

size_t dapt_model_grad_frontiers(const dapt_model *m, const size_t **f, size_t *aux_begin)
{
    *f = m->ptrs->frontier;
    *aux_begin = m->ptrs->aux_begin;
    return (size_t)m->config.layers + 2;
}

/* The model's buffers are the ones its pointers were resolved against. */
static dapt_status ptrs_ok(const dapt_model *m, const char *what)
{
    if (!m->ptrs || m->ptrs->params != m->params || m->ptrs->grads != m->grads)
        return DAPT_ERROR(DAPT_ERR_ARG, "%s: the model's parameter or gradient buffer was replaced after "
                          "dapt_model_resolve (call it again after swapping buffers)", what);
    return DAPT_OK;
}

static dapt_status alloc_buffers(dapt_model *m)
{
    dapt_status st = dapt_calloc((void **)&m->params, m->table.total, sizeof(float), "model parameters");
    if (st == DAPT_OK)
        st = dapt_calloc((void **)&m->grads, m->table.total, sizeof(float), "model gradients");
    if (st == DAPT_OK) st = dapt_model_resolve(m);
    if (st != DAPT_OK) dapt_model_free(m);
    return st;
}

dapt_status dapt_model_create(const dapt_model_config *mc, dapt_model *m)
{
    return dapt_model_create_aux(mc, NULL, 0, m);
}

dapt_status dapt_model_create_aux(const dapt_model_config *mc, const dapt_tensor_spec *aux, size_t naux,
                                  dapt_model *m)
{
    memset(m, 0, sizeof *m);
    m->config = *mc;
    DAPT_CHECK(dapt_param_table_build(mc, &m->table));
    dapt_status st = dapt_param_table_add_aux(&m->table, aux, naux);
    if (st != DAPT_OK) {
        dapt_param_table_free(&m->table);
        return st;
    }
    m->ranges = (dapt_model_ranges){0, 1, 0, mc->heads, 0, mc->intermediate, 0, mc->vocab_size, mc->vocab_size};
    return alloc_buffers(m);
}

/* The local shape a shard's tensor must have, from its name. */
static void shard_shape(const dapt_model_config *mc, const dapt_model_ranges *r, const char *name,
                        int64_t shape[2])
{
    const int64_t HL = r->head_count * (mc->hidden / mc->heads);
    const char *dot = strncmp(name, "layer.", 6) ? NULL : strchr(name + 6, '.');
    const char *what = dot ? dot + 1 : "";
    if (!strcmp(name, "embeddings.word")) shape[0] = r->vocab_rows;
    else if (!strcmp(name, "mlm.bias")) shape[0] = r->vocab_rows;
    else if (!strncmp(what, "attn.q.", 7) || !strncmp(what, "attn.k.", 7) || !strncmp(what, "attn.v.", 7))
        shape[0] = HL;
    else if (!strcmp(what, "attn.out.weight")) shape[1] = HL;
    else if (!strncmp(what, "ffn.in.", 7)) shape[0] = r->ffn_count;
    else if (!strcmp(what, "ffn.out.weight")) shape[1] = r->ffn_count;
}

dapt_status dapt_model_create_shard(const dapt_model_config *mc, const dapt_param_table *local,
                                    const dapt_model_ranges *r, dapt_model *m)
{
    memset(m, 0, sizeof *m);
    dapt_param_table global;
    DAPT_CHECK(dapt_param_table_build(mc, &global));
    dapt_status st = DAPT_OK;
    if (r->head_count <= 0 || r->head_begin < 0 || r->head_begin + r->head_count > mc->heads ||
        r->ffn_count <= 0 || r->ffn_begin < 0 || r->ffn_begin + r->ffn_count > mc->intermediate ||
        r->vocab_rows < r->vocab_real || r->vocab_real < 0 || r->vocab_begin < 0 ||
        (r->vocab_real > 0 && r->vocab_begin + r->vocab_real > mc->vocab_size))
        st = DAPT_ERROR(DAPT_ERR_ARG, "model shard: heads [%lld, +%lld), FFN [%lld, +%lld), vocabulary [%lld, +%lld) "
                        "do not fit the model (%lld heads, %lld FFN columns, %lld tokens)",
                        (long long)r->head_begin, (long long)r->head_count, (long long)r->ffn_begin,
                        (long long)r->ffn_count, (long long)r->vocab_begin, (long long)r->vocab_real,
                        (long long)mc->heads, (long long)mc->intermediate, (long long)mc->vocab_size);
    if (st == DAPT_OK && local->count < global.count)
        st = DAPT_ERROR(DAPT_ERR_ARG, "model shard: %zu tensors, the model has %zu", local->count, global.count);
    /* Beyond the model's own: auxiliary tensors, replicated (whole). */
    for (size_t k = global.count; st == DAPT_OK && k < local->count; k++)
        if (!(local->tensors[k].flags & DAPT_TENSOR_AUX) || local->tensors[k].offset + local->tensors[k].numel > local->total)
            st = DAPT_ERROR(DAPT_ERR_ARG, "model shard: tensor %zu (%s) is not one of the model's", k,
                            local->tensors[k].name);
    for (size_t k = 0; st == DAPT_OK && k < global.count; k++) {
        const dapt_tensor *g = &global.tensors[k], *l = &local->tensors[k];
        int64_t want[2] = {g->shape[0], g->shape[1]};
        shard_shape(mc, r, g->name, want);
        if (strcmp(g->name, l->name) || l->shape[0] != want[0] || l->shape[1] != want[1] ||
            l->numel != (size_t)(want[0] * want[1]) || l->offset + l->numel > local->total)
            st = DAPT_ERROR(DAPT_ERR_ARG, "model shard: tensor %zu is %s [%lld, %lld], expected %s [%lld, %lld]", k,
                            l->name, (long long)l->shape[0], (long long)l->shape[1], g->name, (long long)want[0],
                            (long long)want[1]);
    }
    dapt_param_table_free(&global);
    DAPT_CHECK(st);
    m->config = *mc;
    m->ranges = *r;
    DAPT_CHECK(dapt_calloc((void **)&m->table.tensors, local->count, sizeof *local->tensors, "shard table"));
    memcpy(m->table.tensors, local->tensors, local->count * sizeof *local->tensors);
    m->table.count = local->count;
    m->table.total = local->total;
    return alloc_buffers(m);
}

void dapt_model_shard_ranges(const dapt_model *m, dapt_model_ranges *out) { *out = m->ranges; }

void dapt_model_free(dapt_model *m)
{
    free(m->params);
    free(m->grads);
    free(m->ptrs);
    dapt_param_table_free(&m->table);
    memset(m, 0, sizeof *m);
}

void dapt_model_zero_grads(dapt_model *m)
{
    memset(m->grads, 0, m->table.total * sizeof(float));
}

float *dapt_model_param(const dapt_model *m, const char *name)
{
    const dapt_tensor *t = dapt_param_find(&m->table, name);
    return t ? m->params + t->offset : NULL;
}

float *dapt_model_grad(const dapt_model *m, const char *name)
{
    const dapt_tensor *t = dapt_param_find(&m->table, name);
    return t ? m->grads + t->offset : NULL;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void dapt_model_init_random(dapt_model *m, uint64_t seed) { dapt_model_init_random_flags(m, seed, 0); }

void dapt_model_init_random_flags(dapt_model *m, uint64_t seed, unsigned flags)
{
    const dapt_model_config *mc = &m->config;
    const dapt_rng rng = dapt_rng_make(seed, DAPT_RNG_INIT, 0);
    const float std = (float)mc->initializer_range;
    for (size_t ti = 0; ti < m->table.count; ti++) {
        const dapt_tensor *t = &m->table.tensors[ti];
        if ((t->flags & flags) != flags) continue;
        float *w = m->params + t->offset;
        if (t->flags & DAPT_TENSOR_LAYERNORM) {
            float v = ends_with(t->name, ".weight") ? 1.0f : 0.0f;
            for (size_t e = 0; e < t->numel; e++) w[e] = v;
        } else if (t->ndim == 1) {
            memset(w, 0, t->numel * sizeof *w);
        } else {
#pragma omp parallel for schedule(static)
            for (size_t e = 0; e < t->numel; e++) w[e] = std * dapt_rng_normal(&rng, ti, e);
        }
    }
    if (flags != 0) return; /* the padding rows below belong to the model's own tensors */
    /* nn.Embedding(padding_idx=pad) starts with a zero padding row. */
    const size_t H = (size_t)mc->hidden;
    const int64_t pad = mc->pad_token_id - m->ranges.vocab_begin;
    if (pad >= 0 && pad < m->ranges.vocab_real)
        memset(dapt_model_param(m, "embeddings.word") + (size_t)pad * H, 0, H * sizeof(float));
    if (mc->arch == DAPT_ARCH_ROBERTA)
        memset(dapt_model_param(m, "embeddings.position") + (size_t)mc->pad_token_id * H, 0, H * sizeof(float));
}

double dapt_model_forward_flops(const dapt_model_config *mc, int64_t batch, int64_t seq_len,
                                int64_t mlm_rows)
{
    const double T = (double)batch * (double)seq_len, H = (double)mc->hidden,
                 F = (double)mc->intermediate, S = (double)seq_len, V = (double)mc->vocab_size;
    /* Per layer: Q,K,V,out projections 4*T*H^2, FFN 2*T*H*F, scores and
     * context 2*B*S^2*H multiply-adds. */
    double layer = 2.0 * (4.0 * T * H * H + 2.0 * T * H * F + 2.0 * (double)batch * S * S * H);
    double heads = 2.0 * (double)mlm_rows * (H * H + H * V);
    if (mc->has_pooler) heads += 2.0 * (double)batch * H * H;
    return layer * (double)mc->layers + heads;
}

/* ------------------------------------------------------------ workspace */

typedef struct carver {
    float *base;
    size_t off;
} carver;

static float *take(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->off : NULL;
    c->off += (n + 15) & ~(size_t)15;
    return p;
}

static uint8_t *take_bytes(carver *c, size_t n) { return (uint8_t *)take(c, (n + 3) / 4); }

static void layout(dapt_workspace *ws, carver *c)
{
    const dapt_model_config *mc = &ws->mc;
    /* Per-head and per-column buffers hold the model's share only. */
    const size_t B = (size_t)ws->spec.batch, S = (size_t)ws->spec.seq_len, T = B * S,
                 H = (size_t)mc->hidden, F = (size_t)ws->FL, NH = (size_t)ws->NHL, HL = (size_t)ws->HL,
                 V = (size_t)ws->VL, L = (size_t)mc->layers, M = (size_t)ws->M_max,
                 C = (size_t)mc->num_labels;
    const int training = ws->spec.training;
    ws->hs = take(c, (L + 1) * T * H);
    ws->xhat0 = take(c, T * H);
    ws->rstd0 = take(c, T);
    ws->maskadd = take(c, T);
    ws->keep0 = training ? take_bytes(c, T * H) : NULL;
    const size_t sets = training && !ws->spec.recompute ? L : 1;
    for (size_t s = 0; s < sets; s++) {
        layer_acts *a = &ws->la[s];
        a->q = take(c, T * HL);
        a->k = take(c, T * HL);
        a->v = take(c, T * HL);
        a->p = take(c, B * NH * S * S);
        a->ctx = take(c, T * HL);
        a->xhat1 = take(c, T * H);
        a->rstd1 = take(c, T);
        a->h1 = take(c, T * H);
        a->u = take(c, T * F);
        a->y = take(c, T * H);
        a->xhat2 = take(c, T * H);
        a->rstd2 = take(c, T);
        if (training) {
            a->keep_att = take_bytes(c, B * NH * S * S);
            a->keep_ao = take_bytes(c, T * H);
            a->keep_ffn = take_bytes(c, T * H);
        }
    }
    for (size_t s = sets; s < L; s++) ws->la[s] = ws->la[0];
    ws->act = take(c, T * F);
    ws->tmp = take(c, T * H);
    ws->pool_in = take(c, B * H);
    ws->pooled = mc->has_pooler ? take(c, B * H) : NULL;
    if (C > 0) {
        ws->cls_x = take(c, B * H);
        ws->cls_z = take(c, B * H);
        ws->cls_x2 = take(c, B * H);
        ws->cls_logits = take(c, B * C);
        ws->cls_lse = take(c, B);
    }
    if (mc->has_mlm_head) {
        ws->mlm_in = take(c, M * H);
        ws->mlm_pre = take(c, M * H);
        ws->mlm_xhat = take(c, M * H);
        ws->mlm_rstd = take(c, M);
        ws->mlm_out = take(c, M * H);
        ws->mlm_logits = take(c, M * V);
        ws->mlm_lse = take(c, M);
        ws->mlm_red = take(c, 2 * M);
    }
    if (training) {
        ws->dA = take(c, T * H);
        ws->dB = take(c, T * H);
        ws->g1 = take(c, T * H);
        ws->g2 = take(c, T * H);
        ws->g3 = take(c, T * H);
        ws->dq = take(c, T * HL);
        ws->dk = take(c, T * HL);
        ws->dv = take(c, T * HL);
        ws->du = take(c, T * F);
        ws->gelu_grad = take(c, T * F);
        ws->demb = take(c, T * H);
        ws->hm_grad_tmp = take(c, B * NH);
        if (mc->has_mlm_head) {
            ws->mlm_d1 = take(c, M * H);
            ws->mlm_d2 = take(c, M * H);
        }
    }
}

dapt_status dapt_workspace_create(const dapt_model *m, const dapt_workspace_spec *spec,
                                  dapt_workspace **out)
{
    *out = NULL;
    if (spec->batch <= 0 || spec->seq_len <= 0)
        return DAPT_ERROR(DAPT_ERR_ARG, "workspace: batch %lld and seq_len %lld must be positive",
                          (long long)spec->batch, (long long)spec->seq_len);
    const dapt_model_config *mc = &m->config;
    int64_t max_pos = mc->arch == DAPT_ARCH_ROBERTA ? mc->max_position - mc->pad_token_id - 1
                                                    : mc->max_position;
    if (spec->seq_len > max_pos)
        return DAPT_ERROR(DAPT_ERR_ARG, "workspace: seq_len %lld exceeds the model's %lld positions",
                          (long long)spec->seq_len, (long long)max_pos);
    dapt_workspace *ws = NULL;
    dapt_status st;
    DAPT_CHECK(dapt_calloc((void **)&ws, 1, sizeof *ws, "workspace"));
    ws->mc = *mc;
    ws->spec = *spec;
    ws->r = m->ranges;
    ws->NHL = m->ranges.head_count;
    ws->HL = ws->NHL * (mc->hidden / mc->heads);
    ws->FL = m->ranges.ffn_count;
    ws->VL = m->ranges.vocab_rows;
    ws->T_max = spec->batch * spec->seq_len;
    ws->M_max = spec->max_mlm_rows > 0 && spec->max_mlm_rows < ws->T_max ? spec->max_mlm_rows : ws->T_max;
    DAPT_TRY(dapt_calloc((void **)&ws->la, (size_t)mc->layers, sizeof *ws->la, "layer activations"));
    carver c = {NULL, 0};
    layout(ws, &c);
    ws->arena_floats = c.off;
    DAPT_TRY(dapt_alloc((void **)&ws->arena, ws->arena_floats * sizeof(float), "activation arena"));
    c.base = ws->arena;
    c.off = 0;
    layout(ws, &c);
    DAPT_TRY(dapt_alloc((void **)&ws->pos_ids, (size_t)ws->T_max * sizeof *ws->pos_ids, "position ids"));
    DAPT_TRY(dapt_alloc((void **)&ws->mlm_pos, (size_t)ws->M_max * sizeof *ws->mlm_pos, "MLM rows"));
    DAPT_TRY(dapt_alloc((void **)&ws->mlm_lab, (size_t)ws->M_max * sizeof *ws->mlm_lab, "MLM labels"));
    *out = ws;
    return DAPT_OK;
cleanup:
    dapt_workspace_free(ws);
    return st;
}

void dapt_workspace_free(dapt_workspace *ws)
{
    if (!ws) return;
    free(ws->arena);
    free(ws->la);
    free(ws->pos_ids);
    free(ws->mlm_pos);
    free(ws->mlm_lab);
    free(ws);
}

size_t dapt_workspace_bytes(const dapt_workspace *ws) { return ws->arena_floats * sizeof(float); }

/* ---------------------------------------------------------- validation */

static dapt_status check_batch(const dapt_model *m, const dapt_workspace *ws, const dapt_batch *b)
{
    const dapt_model_config *mc = &m->config;
    if (b->batch <= 0 || b->seq_len <= 0 || b->batch > ws->spec.batch || b->seq_len != ws->spec.seq_len)
        return DAPT_ERROR(DAPT_ERR_ARG, "batch %lld x %lld does not fit the workspace (%lld x %lld)",
                          (long long)b->batch, (long long)b->seq_len, (long long)ws->spec.batch,
                          (long long)ws->spec.seq_len);
    const int64_t T = b->batch * b->seq_len;
    for (int64_t t = 0; t < T; t++) {
        if (b->input_ids[t] < 0 || b->input_ids[t] >= mc->vocab_size)
            return DAPT_ERROR(DAPT_ERR_ARG, "input_ids[%lld][%lld] = %d is outside the vocabulary (%lld)",
                              (long long)(t / b->seq_len), (long long)(t % b->seq_len), b->input_ids[t],
                              (long long)mc->vocab_size);
        if (b->token_type_ids && (b->token_type_ids[t] < 0 || b->token_type_ids[t] >= mc->type_vocab_size))
            return DAPT_ERROR(DAPT_ERR_ARG, "token_type_ids[%lld][%lld] = %d is outside 0..%lld",
                              (long long)(t / b->seq_len), (long long)(t % b->seq_len),
                              b->token_type_ids[t], (long long)mc->type_vocab_size - 1);
        if (b->mlm_labels && b->mlm_labels[t] != DAPT_IGNORE_LABEL &&
            (b->mlm_labels[t] < 0 || b->mlm_labels[t] >= mc->vocab_size))
            return DAPT_ERROR(DAPT_ERR_ARG, "labels[%lld][%lld] = %d is neither -100 nor a token id",
                              (long long)(t / b->seq_len), (long long)(t % b->seq_len), b->mlm_labels[t]);
    }
    if (b->regression_labels && mc->num_labels != 1)
        return DAPT_ERROR(DAPT_ERR_ARG, "regression labels given but the model has %lld labels (a regression head has 1)",
                          (long long)mc->num_labels);
    if (b->class_labels && !b->regression_labels && mc->num_labels == 1)
        return DAPT_ERROR(DAPT_ERR_ARG, "class labels given to a regression head (num_labels = 1): pass regression_labels");
    if (b->class_labels && !b->regression_labels) {
        if (mc->num_labels <= 0)
            return DAPT_ERROR(DAPT_ERR_ARG, "class labels given but the model has no classification head");
        for (int64_t i = 0; i < b->batch; i++)
            if (b->class_labels[i] != DAPT_IGNORE_LABEL &&
                (b->class_labels[i] < 0 || b->class_labels[i] >= mc->num_labels))
                return DAPT_ERROR(DAPT_ERR_ARG, "class label %d of sample %lld is outside 0..%lld",
                                  b->class_labels[i], (long long)i, (long long)mc->num_labels - 1);
    }
    return DAPT_OK;
}

/* ----------------------------------------------------------- embeddings */

static dapt_status embeddings_forward(const dapt_model *m, dapt_workspace *ws)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const dapt_batch *b = &ws->b;
    const int64_t B = b->batch, S = b->seq_len, T = B * S, H = mc->hidden;
    const int32_t pad = (int32_t)mc->pad_token_id;
    for (int64_t i = 0; i < B; i++) {
        /* RoBERTa: cumulative count of non-padding tokens, offset by pad. */
        int32_t count = 0;
        for (int64_t s = 0; s < S; s++) {
            int64_t t = i * S + s;
            if (mc->arch == DAPT_ARCH_ROBERTA)
                ws->pos_ids[t] = b->input_ids[t] != pad ? ++count + pad : pad;
            else
                ws->pos_ids[t] = (int32_t)s;
        }
        for (int64_t s = 0; s < S; s++) {
            int attend = !b->attention_mask || b->attention_mask[i * S + s];
            /* Hugging Face adds (1 - mask) * finfo(float32).min. */
            ws->maskadd[i * S + s] = attend ? 0.0f : -FLT_MAX;
        }
    }
    const float *word = P->word, *pos = P->position, *type = P->token_type;
    float *x = ws->hs;
    /* Vocab-parallel: a shard looks up the ids in its rows, zeros elsewhere,
     * and the group sums (exact: one term is nonzero).  Then (w + type) + pos,
     * the same additions in the same order whatever the layout. */
    const int64_t v0 = ws->r.vocab_begin, vn = ws->r.vocab_real;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const int64_t id = (int64_t)b->input_ids[t] - v0;
        float *o = x + t * H;
        if (id >= 0 && id < vn)
            memcpy(o, word + (size_t)id * H, (size_t)H * sizeof *o);
        else
            memset(o, 0, (size_t)H * sizeof *o);
    }
    DAPT_CHECK(model_tp_reduce(m, x, (size_t)(T * H), DAPT_REDUCE_SUM));
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *p = pos + (size_t)ws->pos_ids[t] * H,
                    *ty = type + (size_t)(b->token_type_ids ? b->token_type_ids[t] : 0) * H;
        float *o = x + t * H;
        for (int64_t j = 0; j < H; j++) o[j] = o[j] + ty[j] + p[j];
    }
    k_layernorm_fwd(T, H, x, P->eln_w, P->eln_b, mc->layer_norm_eps, ws->xhat0, ws->rstd0, x);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        k_dropout_row(&ws->hid_drop, b->first_sample + (uint64_t)(t / S), 0, (uint64_t)(t % S * H), H,
                      x + t * H, ws->keep0 ? ws->keep0 + t * H : NULL);
        if (ws->opts.embedding_delta)
            for (int64_t j = 0; j < H; j++) x[t * H + j] += ws->opts.embedding_delta[t * H + j];
    }
    return DAPT_OK;
}

/* G: where parameter gradients go (all NULL: none, only ws->demb). */
static void embeddings_backward(const dapt_model *m, dapt_workspace *ws, float *dx, const model_top_ptrs *G)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const dapt_batch *b = &ws->b;
    const int64_t S = b->seq_len, T = b->batch * S, H = mc->hidden;
    memcpy(ws->demb, dx, (size_t)(T * H) * sizeof *dx);
    if (!G->word) return; /* input gradients only */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++)
        k_dropout_apply(&ws->hid_drop, ws->keep0 + t * H, H, dx + t * H);
    k_layernorm_bwd(T, H, dx, ws->xhat0, ws->rstd0, P->eln_w, G->eln_w, G->eln_b, dx, 0);
    float *gw = G->word, *gp = G->position, *gt = G->token_type;
    const int32_t pad = (int32_t)mc->pad_token_id;
    const int roberta = mc->arch == DAPT_ARCH_ROBERTA;
    const int64_t v0 = ws->r.vocab_begin, vn = ws->r.vocab_real;
    /* Scatter-add by column blocks so threads never write the same row
     * element; nn.Embedding(padding_idx) leaves the padding row's gradient 0. */
#pragma omp parallel
    {
        int th = omp_get_thread_num(), nth = omp_get_num_threads();
        int64_t c0 = H * th / nth, c1 = H * (th + 1) / nth;
        for (int64_t t = 0; t < T; t++) {
            const float *d = dx + t * H;
            int32_t id = b->input_ids[t], p = ws->pos_ids[t];
            int32_t ty = b->token_type_ids ? b->token_type_ids[t] : 0;
            /* A shard's rows only: dx is complete on every rank. */
            if (id != pad && id - v0 >= 0 && id - v0 < vn)
                for (int64_t j = c0; j < c1; j++) gw[(size_t)(id - v0) * H + j] += d[j];
            if (!(roberta && p == pad))
                for (int64_t j = c0; j < c1; j++) gp[(size_t)p * H + j] += d[j];
            for (int64_t j = c0; j < c1; j++) gt[(size_t)ty * H + j] += d[j];
        }
    }
}

/* ------------------------------------------------------------ attention */

/* For (sample i, head h): probabilities into a->p, context into a->ctx. */
static void attention_forward(const dapt_model *m, dapt_workspace *ws, int64_t l, const layer_acts *a)
{
    const dapt_model_config *mc = &m->config;
    /* This model's heads h = 0..NH-1 are the global heads h0 + h; q, k, v
     * and ctx hold only them ([T, H] with H = NH * D, the local width). */
    const int64_t B = ws->b.batch, S = ws->b.seq_len, NH = ws->NHL, H = ws->HL, D = mc->hidden / mc->heads,
                  h0 = ws->r.head_begin;
    const float scale = 1.0f / sqrtf((float)D);
    const float *hm = ws->um.head ? ws->um.head + l * mc->heads + h0 : NULL;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t i = 0; i < B; i++)
        for (int64_t h = 0; h < NH; h++) {
            float *P = a->p + (i * NH + h) * S * S;
            float *pd = k_thread_scratch((size_t)(S * S));
            const float *q = a->q + i * S * H + h * D, *k = a->k + i * S * H + h * D,
                        *v = a->v + i * S * H + h * D;
            const float *madd = ws->maskadd + i * S;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)S, (int)D, scale, q, (int)H,
                        k, (int)H, 0.0f, P, (int)S);
            const float g = hm ? hm[h] : 1.0f;
            for (int64_t r = 0; r < S; r++) {
                float *row = P + r * S, *dr = pd + r * S;
                k_softmax_row(S, row, madd);
#pragma omp simd
                for (int64_t c = 0; c < S; c++) dr[c] = row[c] * g;
                k_dropout_row(&ws->att_drop, ws->b.first_sample + (uint64_t)i, model_site_of(l, 0),
                              (uint64_t)(((h0 + h) * S + r) * S), S, dr,
                              a->keep_att ? a->keep_att + ((i * NH + h) * S + r) * S : NULL);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)D, (int)S, 1.0f, pd, (int)S,
                        v, (int)H, 0.0f, a->ctx + i * S * H + h * D, (int)H);
        }
}

/* dctx -> dq, dk, dv; head-mask gradient into ws->hm_grad_tmp [B,NH]. */
static void attention_backward(const dapt_model *m, dapt_workspace *ws, int64_t l, const layer_acts *a,
                               const float *dctx)
{
    const dapt_model_config *mc = &m->config;
    const int64_t B = ws->b.batch, S = ws->b.seq_len, NH = ws->NHL, H = ws->HL, D = mc->hidden / mc->heads;
    const float scale = 1.0f / sqrtf((float)D);
    const float *hm = ws->um.head ? ws->um.head + l * mc->heads + ws->r.head_begin : NULL;
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int64_t i = 0; i < B; i++)
        for (int64_t h = 0; h < NH; h++) {
            const float *P = a->p + (i * NH + h) * S * S;
            float *pd = k_thread_scratch((size_t)(2 * S * S + S));
            float *dpd = pd + S * S, *keep = dpd + S * S;
            const size_t off = (size_t)(i * S * H + h * D);
            const float g = hm ? hm[h] : 1.0f;
            /* keep[c] = dropout multiplier (0 or 1/(1-p)) of row r. */
            double dg = 0.0;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)S, (int)D, 1.0f, dctx + off,
                        (int)H, a->v + off, (int)H, 0.0f, dpd, (int)S);
            for (int64_t r = 0; r < S; r++) {
                const uint8_t *kr = a->keep_att + ((i * NH + h) * S + r) * S;
                if (ws->att_drop.rng)
                    for (int64_t c = 0; c < S; c++) keep[c] = kr[c] ? ws->att_drop.scale : 0.0f;
                else
                    for (int64_t c = 0; c < S; c++) keep[c] = 1.0f;
                const float *pr = P + r * S;
                float *pdr = pd + r * S, *dr = dpd + r * S;
                float dot = 0.0f;
                for (int64_t c = 0; c < S; c++) {
                    float pk = pr[c] * keep[c];
                    pdr[c] = pk * g;
                    dg += (double)dr[c] * pk; /* d/dg of sum dpd * (p * keep * g) */
                    dr[c] *= keep[c] * g;     /* now d loss / d p */
                    dot += dr[c] * pr[c];
                }
                /* softmax backward: ds = p * (dp - <dp, p>) */
                for (int64_t c = 0; c < S; c++) dr[c] = pr[c] * (dr[c] - dot);
            }
            ws->hm_grad_tmp[i * NH + h] = (float)dg;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)S, (int)D, (int)S, 1.0f, pd, (int)S,
                        dctx + off, (int)H, 0.0f, ws->dv + off, (int)H);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)S, (int)D, (int)S, scale, dpd, (int)S,
                        a->k + off, (int)H, 0.0f, ws->dq + off, (int)H);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)S, (int)D, (int)S, scale, dpd, (int)S,
                        a->q + off, (int)H, 0.0f, ws->dk + off, (int)H);
        }
}

/* ---------------------------------------------------------------- layer */

static dapt_status layer_forward(const dapt_model *m, dapt_workspace *ws, int64_t l)
{
    const model_layer_ptrs *w = &m->ptrs->p.layer[l];
    const dapt_model_config *mc = &m->config;
    const layer_acts *a = &ws->la[l];
    /* HL, F: this model's share of the attention width and FFN columns. */
    const int64_t S = ws->b.seq_len, T = ws->b.batch * S, H = mc->hidden, HL = ws->HL, F = ws->FL;
    const float *x = ws->hs + l * ws->T_max * H;
    float *out = ws->hs + (l + 1) * ws->T_max * H;
    const uint64_t first = ws->b.first_sample;

    /* Column-parallel Q, K, V (a shard holds its heads' rows). */
    k_linear_fwd(T, H, HL, x, w->q_w, w->q_b, a->q, 0);
    k_linear_fwd(T, H, HL, x, w->k_w, w->k_b, a->k, 0);
    k_linear_fwd(T, H, HL, x, w->v_w, w->v_b, a->v, 0);
    attention_forward(m, ws, l, a);

    /* Row-parallel output projection: partial sum, reduce, then bias,
     * dropout, residual and LayerNorm on the full hidden vector. */
    k_linear_fwd(T, HL, H, a->ctx, w->ao_w, NULL, ws->tmp, 0);
    DAPT_CHECK(model_tp_reduce(m, ws->tmp, (size_t)(T * H), DAPT_REDUCE_SUM));
    const float *bo = w->ao_b;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float *r = ws->tmp + t * H;
        for (int64_t j = 0; j < H; j++) r[j] += bo[j];
        k_dropout_row(&ws->hid_drop, first + (uint64_t)(t / S), model_site_of(l, 1), (uint64_t)(t % S * H), H, r,
                      a->keep_ao ? a->keep_ao + t * H : NULL);
        for (int64_t j = 0; j < H; j++) r[j] += x[t * H + j];
    }
    k_layernorm_fwd(T, H, ws->tmp, w->aln_w, w->aln_b, mc->layer_norm_eps, a->xhat1, a->rstd1, a->h1);

    /* FFN: column-parallel in, intermediate mask, GELU, row-parallel out. */
    k_linear_fwd(T, H, F, a->h1, w->fi_w, w->fi_b, a->u, 0);
    const float *gi = ws->um.intermediate ? ws->um.intermediate + l * mc->intermediate + ws->r.ffn_begin : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *u = a->u + t * F;
        float *o = ws->act + t * F;
        k_gelu_row(F, u, gi, o, NULL);
    }
    k_linear_fwd(T, F, H, ws->act, w->fo_w, NULL, a->y, 0);
    DAPT_CHECK(model_tp_reduce(m, a->y, (size_t)(T * H), DAPT_REDUCE_SUM));
    const float *b2 = w->fo_b;
    const float *go = ws->um.output ? ws->um.output + l * H : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float *y = a->y + t * H, *r = ws->tmp + t * H;
        for (int64_t j = 0; j < H; j++) {
            y[j] += b2[j];
            r[j] = go ? y[j] * go[j] : y[j];
        }
        k_dropout_row(&ws->hid_drop, first + (uint64_t)(t / S), model_site_of(l, 2), (uint64_t)(t % S * H), H, r,
                      a->keep_ffn ? a->keep_ffn + t * H : NULL);
        for (int64_t j = 0; j < H; j++) r[j] += a->h1[t * H + j];
    }
    k_layernorm_fwd(T, H, ws->tmp, w->fln_w, w->fln_b, mc->layer_norm_eps, a->xhat2, a->rstd2, out);
    return DAPT_OK;
}

/* dout = d loss / d out (ws->dA) -> d loss / d x (ws->dB). */
/* g: where this layer's parameter gradients go (all NULL: none). */
static dapt_status layer_backward(const dapt_model *m, dapt_workspace *ws, int64_t l, const float *dout, float *dx,
                                  const dapt_unit_mask_grads *mg, const model_layer_ptrs *g)
{
    const model_layer_ptrs *w = &m->ptrs->p.layer[l];
    const dapt_model_config *mc = &m->config;
    const layer_acts *a = &ws->la[l];
    const int64_t S = ws->b.seq_len, T = ws->b.batch * S, H = mc->hidden, F = ws->FL, HL = ws->HL,
                  NH = ws->NHL, f0 = ws->r.ffn_begin, h0 = ws->r.head_begin;
    const float *x = ws->hs + l * ws->T_max * H;
    float *g1 = ws->g1, *g2 = ws->g2, *g3 = ws->g3;

    /* Output LayerNorm: g1 = d r2 = d h1 (residual part). */
    k_layernorm_bwd(T, H, dout, a->xhat2, a->rstd2, w->fln_w, g->fln_w, g->fln_b, g1, 0);
    /* g2 = d (masked FFN output) through dropout; the output mask's gradient
     * is <g2, y>, then g2 becomes d y. */
    const float *go = ws->um.output ? ws->um.output + l * H : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        memcpy(g2 + t * H, g1 + t * H, (size_t)H * sizeof *g2);
        k_dropout_apply(&ws->hid_drop, a->keep_ffn + t * H, H, g2 + t * H);
    }
    if (mg && mg->output) k_coldot_acc(T, H, g2, a->y, mg->output + l * H);
    if (go) {
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < H; j++) g2[t * H + j] *= go[j];
    }
    /* Recompute the GELU output (and its derivative: both need Phi(z), one
     * erf per element), then FFN-out backward: du = d act. */
    const float *gi = ws->um.intermediate ? ws->um.intermediate + l * mc->intermediate + f0 : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float *u = a->u + t * F;
        float *o = ws->act + t * F, *gp = ws->gelu_grad + t * F;
        k_gelu_row(F, u, gi, o, gp);
    }
    k_linear_bwd(T, F, H, ws->act, w->fo_w, g2, g->fo_w, g->fo_b, ws->du, 0);
    /* Through GELU: d z = d act * gelu'(z), z = u * g_int; d g_int = <dz, u>. */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float *d = ws->du + t * F;
        const float *gp = ws->gelu_grad + t * F;
        for (int64_t j = 0; j < F; j++) d[j] *= gp[j];
    }
    /* Unit-mask gradients of heads and FFN columns: the owner's entries only. */
    if (mg && mg->intermediate) k_coldot_acc(T, F, ws->du, a->u, mg->intermediate + l * mc->intermediate + f0);
    if (gi) {
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < F; j++) ws->du[t * F + j] *= gi[j];
    }
    /* FFN-in backward: partial d h1 into g3, reduced over the tensor group. */
    k_linear_bwd(T, H, F, a->h1, w->fi_w, ws->du, g->fi_w, g->fi_b, g3, 0);
    DAPT_CHECK(model_tp_reduce(m, g3, (size_t)(T * H), DAPT_REDUCE_SUM));
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < T * H; e++) g1[e] += g3[e];
    /* Attention LayerNorm: g2 = d r1 = d x (residual part). */
    k_layernorm_bwd(T, H, g1, a->xhat1, a->rstd1, w->aln_w, g->aln_w, g->aln_b, g2, 0);
    /* g3 = d (attention output) through dropout. */
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        memcpy(g3 + t * H, g2 + t * H, (size_t)H * sizeof *g3);
        k_dropout_apply(&ws->hid_drop, a->keep_ao + t * H, H, g3 + t * H);
    }
    /* Output projection backward: g1 = d ctx. */
    k_linear_bwd(T, HL, H, a->ctx, w->ao_w, g3, g->ao_w, g->ao_b, g1, 0);
    attention_backward(m, ws, l, a, g1);
    if (mg && mg->head) {
        for (int64_t i = 0; i < ws->b.batch; i++)
            for (int64_t h = 0; h < NH; h++) mg->head[l * mc->heads + h0 + h] += ws->hm_grad_tmp[i * NH + h];
    }
    /* Q, K, V backward: partial d x, reduced, plus the residual. */
    k_linear_bwd(T, H, HL, x, w->q_w, ws->dq, g->q_w, g->q_b, dx, 0);
    k_linear_bwd(T, H, HL, x, w->k_w, ws->dk, g->k_w, g->k_b, dx, 1);
    k_linear_bwd(T, H, HL, x, w->v_w, ws->dv, g->v_w, g->v_b, dx, 1);
    DAPT_CHECK(model_tp_reduce(m, dx, (size_t)(T * H), DAPT_REDUCE_SUM));
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < T * H; e++) dx[e] += g2[e];
    return DAPT_OK;
}

/* ------------------------------------------------------------ top level */

static dapt_status forward_all(const dapt_model *m, dapt_workspace *ws)
{
    const dapt_model_config *mc = &m->config;
    DAPT_CHECK(embeddings_forward(m, ws));
    for (int64_t l = 0; l < mc->layers; l++) DAPT_CHECK(layer_forward(m, ws, l));
    model_pooler_forward(m, ws);
    DAPT_CHECK(model_classifier_forward(m, ws));
    if (mc->has_mlm_head && (ws->b.mlm_labels || ws->opts.mlm_all_positions)) DAPT_CHECK(model_mlm_forward(m, ws));
    return DAPT_OK;
}

dapt_status dapt_model_forward(const dapt_model *m, dapt_workspace *ws, const dapt_batch *b,
                               const dapt_unit_masks *masks, const dapt_run_opts *opts)
{
    static const dapt_unit_masks none = {NULL, NULL, NULL};
    static const dapt_run_opts defaults = {0};
    ws->have_forward = 0;
    DAPT_CHECK(ptrs_ok(m, "forward"));
    const int group = m->tp ? m->tp->size : 1;
    if (group != m->ranges.tensor_size)
        return DAPT_ERROR(DAPT_ERR_ARG, "forward: the model is tensor rank %d of %d, but its tensor-parallel group has %d rank%s",
                          m->ranges.tensor_rank, m->ranges.tensor_size, group, group == 1 ? "" : "s");
    if (ws->r.head_begin != m->ranges.head_begin || ws->NHL != m->ranges.head_count ||
        ws->FL != m->ranges.ffn_count || ws->VL != m->ranges.vocab_rows)
        return DAPT_ERROR(DAPT_ERR_ARG, "forward: the workspace was made for another shard of the model");
    DAPT_CHECK(check_batch(m, ws, b));
    ws->b = *b;
    ws->um = masks ? *masks : none;
    ws->opts = opts ? *opts : defaults;
    const dapt_model_config *mc = &m->config;
    ws->rng = dapt_rng_make(ws->opts.seed, DAPT_RNG_DROPOUT, ws->opts.step);
    ws->hid_drop.rng = ws->opts.train && mc->hidden_dropout > 0 ? &ws->rng : NULL;
    ws->hid_drop.p = (float)mc->hidden_dropout;
    ws->hid_drop.scale = (float)(1.0 / (1.0 - mc->hidden_dropout));
    ws->att_drop.rng = ws->opts.train && mc->attention_dropout > 0 ? &ws->rng : NULL;
    ws->att_drop.p = (float)mc->attention_dropout;
    ws->att_drop.scale = (float)(1.0 / (1.0 - mc->attention_dropout));
    ws->mlm_rows = ws->mlm_count = ws->cls_count = 0;
    ws->mlm_loss = ws->cls_loss = 0.0;

    k_blas_serial_begin();
    dapt_status st = forward_all(m, ws);
    k_blas_serial_end();
    DAPT_CHECK(st);
    if (!isfinite(ws->mlm_loss) || !isfinite(ws->cls_loss))
        return DAPT_ERROR(DAPT_ERR_NUMERIC, "forward: loss is not finite (MLM %g, classification %g)",
                          ws->mlm_loss, ws->cls_loss);
    ws->have_forward = 1;
    return DAPT_OK;
}

static dapt_status backward_all(dapt_model *m, dapt_workspace *ws, const dapt_backward_opts *o)
{
    const dapt_model_config *mc = &m->config;
    const int64_t T = ws->b.batch * ws->b.seq_len, H = mc->hidden;
    /* Without parameter gradients every weight-gradient destination is
     * NULL, so the kernels skip those GEMMs and sums: m->grads is untouched. */
    const model_ptrs *G = o->param_grads ? &m->ptrs->g : &m->ptrs->none;
    const dapt_grad_hook *hook = o->param_grads ? m->grad_hook : NULL;
    const size_t *frontier = m->ptrs->frontier;
    float *dout = ws->dA, *dx = ws->dB;
    if (o->d_last_hidden)
        memcpy(dout, o->d_last_hidden, (size_t)(T * H) * sizeof *dout);
    else
        memset(dout, 0, (size_t)(T * H) * sizeof *dout);
    if (mc->has_mlm_head)
        DAPT_CHECK(model_mlm_backward(m, ws, o->loss_scale, dout, &G->top, o->d_mlm_logits));
    model_classifier_backward(m, ws, o->loss_scale, dout, &G->top, o->d_class_logits);
    ws->have_forward = 0; /* the logits now hold their gradient */
    if (hook) DAPT_CHECK(hook->ready(hook->ctx, frontier[0]));
    for (int64_t l = mc->layers - 1; l >= 0; l--) {
        /* Recompute mode: one activation set, refilled from the stored input. */
        if (ws->spec.recompute && l != mc->layers - 1) DAPT_CHECK(layer_forward(m, ws, l));
        DAPT_CHECK(layer_backward(m, ws, l, dout, dx, o->mask_grads, &G->layer[l]));
        if (hook) DAPT_CHECK(hook->ready(hook->ctx, frontier[mc->layers - l]));
        float *t = dout;
        dout = dx;
        dx = t;
    }
    embeddings_backward(m, ws, dout, &G->top);
    if (hook) DAPT_CHECK(hook->ready(hook->ctx, 0));
    return DAPT_OK;
}

dapt_status dapt_model_backward_ex(dapt_model *m, dapt_workspace *ws, const dapt_backward_opts *o)
{
    static const dapt_backward_opts defaults = DAPT_BACKWARD_OPTS_INIT;
    if (!o) o = &defaults;
    if (!ws->spec.training)
        return DAPT_ERROR(DAPT_ERR_ARG, "backward: the workspace was sized for inference (training = 0)");
    if (!ws->have_forward) return DAPT_ERROR(DAPT_ERR_ARG, "backward: no successful forward to differentiate");
    DAPT_CHECK(ptrs_ok(m, "backward"));
    if (o->d_class_logits && m->config.num_labels <= 0)
        return DAPT_ERROR(DAPT_ERR_ARG, "backward: a class-logit gradient given but the model has no classification head");
    if (o->d_mlm_logits && !m->config.has_mlm_head)
        return DAPT_ERROR(DAPT_ERR_ARG, "backward: an MLM-logit gradient given but the model has no MLM head");
    k_blas_serial_begin();
    dapt_status st = backward_all(m, ws, o);
    k_blas_serial_end();
    return st;
}

dapt_status dapt_model_backward(dapt_model *m, dapt_workspace *ws, double loss_scale,
                                const float *d_last_hidden, const dapt_unit_mask_grads *mask_grads)
{
    dapt_backward_opts o = DAPT_BACKWARD_OPTS_INIT;
    o.loss_scale = loss_scale;
    o.d_last_hidden = d_last_hidden;
    o.mask_grads = mask_grads;
    return dapt_model_backward_ex(m, ws, &o);
}

/* Zeroes the entries of [rows, n] outside columns [c0, c0 + k), then sums
 * over the group: each entry ends up with its owner's value. */
static dapt_status gather_columns(const dapt_model *m, float *g, int64_t rows, int64_t n, int64_t c0, int64_t k)
{
    for (int64_t r = 0; r < rows; r++) {
        float *row = g + r * n;
        memset(row, 0, (size_t)c0 * sizeof *row);
        memset(row + c0 + k, 0, (size_t)(n - c0 - k) * sizeof *row);
    }
    return model_tp_reduce(m, g, (size_t)(rows * n), DAPT_REDUCE_SUM);
}

dapt_status dapt_model_gather_mask_grads(const dapt_model *m, const dapt_unit_mask_grads *g)
{
    if (!g || !m->tp || m->tp->size <= 1) return DAPT_OK;
    const dapt_model_config *mc = &m->config;
    const dapt_model_ranges *r = &m->ranges;
    if (g->head) DAPT_CHECK(gather_columns(m, g->head, mc->layers, mc->heads, r->head_begin, r->head_count));
    if (g->intermediate)
        DAPT_CHECK(gather_columns(m, g->intermediate, mc->layers, mc->intermediate, r->ffn_begin, r->ffn_count));
    return DAPT_OK;
}

/* ------------------------------------------------------------- results */

const float *dapt_ws_hidden_state(const dapt_workspace *ws, int64_t i)
{
    if (i < 0 || i > ws->mc.layers) return NULL;
    return ws->hs + i * ws->T_max * ws->mc.hidden;
}

const float *dapt_ws_last_hidden(const dapt_workspace *ws) { return dapt_ws_hidden_state(ws, ws->mc.layers); }

const float *dapt_ws_pooler(const dapt_workspace *ws) { return ws->pooled; }

const float *dapt_ws_mlm_logits(const dapt_workspace *ws, int64_t *rows, const int64_t **positions)
{
    if (rows) *rows = ws->mlm_rows;
    if (positions) *positions = ws->mlm_pos;
    return ws->mlm_logits;
}

const float *dapt_ws_class_logits(const dapt_workspace *ws) { return ws->cls_logits; }

double dapt_ws_loss(const dapt_workspace *ws) { return ws->mlm_loss + ws->cls_loss; }

double dapt_ws_mlm_loss(const dapt_workspace *ws, int64_t *labelled)
{
    if (labelled) *labelled = ws->mlm_count;
    return ws->mlm_loss;
}

double dapt_ws_cls_loss(const dapt_workspace *ws) { return ws->cls_loss; }

const float *dapt_ws_embedding_grad(const dapt_workspace *ws) { return ws->demb; }
