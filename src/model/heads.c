/* The heads of the engine (see dapt/model.h): the MLM head with its tied
 * decoder and (vocabulary-parallel) softmax cross-entropy, the pooler, and
 * the BERT / RoBERTa sequence-classification heads (softmax cross-entropy,
 * or mean squared error for a one-output regression head). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static void softmax_ce_rows(int64_t n, int64_t c, const float *logits, const int32_t *labels, float *lse,
                            double *loss_sum, int64_t *count)
{
    double sum = 0.0;
    int64_t cnt = 0;
    /* Vocab-parallel seam: the row max, the sum of exponentials and the
     * target logit are each one reduction over the vocabulary shards. */
#pragma omp parallel for schedule(static) reduction(+ : sum, cnt)
    for (int64_t r = 0; r < n; r++) {
        const float *row = logits + r * c;
        const float mx = k_max_row(c, row);
        const double l = (double)mx + log(k_sum_exp_row(c, row, mx));
        lse[r] = (float)l;
        if (labels[r] != DAPT_IGNORE_LABEL) {
            sum += l - (double)row[labels[r]];
            cnt++;
        }
    }
    *loss_sum = sum;
    *count = cnt;
}

/* Vocab-parallel cross-entropy over a shard's columns [c0, c0 + c) of each
 * row (columns from `real` on are padding, set to -inf): the row max, then
 * the sums of exponentials and the target logits, each reduced over the
 * tensor group, so the full logits are never gathered.  lse[r] as above;
 * loss_sum and count are the same on every rank. */
static dapt_status softmax_ce_rows_tp(const dapt_model *m, dapt_workspace *ws, int64_t n, int64_t c, int64_t real,
                                      int64_t c0, float *logits, const int32_t *labels, float *lse, double *loss_sum,
                                      int64_t *count)
{
    float *red = ws->mlm_red; /* [n] sums of exponentials, [n] target logits */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *row = logits + r * c;
        for (int64_t j = real; j < c; j++) row[j] = -INFINITY;
        lse[r] = k_max_row(real, row);
    }
    DAPT_CHECK(model_tp_reduce(m, lse, (size_t)n, DAPT_REDUCE_MAX));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const float *row = logits + r * c;
        const float mx = lse[r];
        red[r] = (float)k_sum_exp_row(real, row, mx);
        const int64_t lab = labels[r] == DAPT_IGNORE_LABEL ? -1 : labels[r] - c0;
        red[n + r] = lab >= 0 && lab < real ? row[lab] : 0.0f;
    }
    DAPT_CHECK(model_tp_reduce(m, red, (size_t)(2 * n), DAPT_REDUCE_SUM));
    double sum = 0.0;
    int64_t cnt = 0;
    for (int64_t r = 0; r < n; r++) {
        const double l = (double)lse[r] + log((double)red[r]);
        lse[r] = (float)l;
        if (labels[r] != DAPT_IGNORE_LABEL) {
            sum += l - (double)red[n + r];
            cnt++;
        }
    }
    *loss_sum = sum;
    *count = cnt;
    return DAPT_OK;
}

/* logits <- scale * (softmax - onehot) on labelled rows, 0 elsewhere; the
 * rows hold columns [c0, c0 + c) of the classes. */
static void softmax_ce_backward(int64_t n, int64_t c, int64_t c0, float *logits, const int32_t *labels,
                                const float *lse, float scale)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *row = logits + r * c;
        if (labels[r] == DAPT_IGNORE_LABEL) {
            memset(row, 0, (size_t)c * sizeof *row);
            continue;
        }
        const float l = lse[r];
        k_exp_scale_row(c, row, l, scale);
        if (labels[r] >= c0 && labels[r] - c0 < c) row[labels[r] - c0] -= scale;
    }
}

dapt_status model_mlm_forward(const dapt_model *m, dapt_workspace *ws)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const dapt_batch *b = &ws->b;
    const int64_t T = b->batch * b->seq_len, H = mc->hidden, V = ws->VL;
    const float *last = ws->hs + mc->layers * ws->T_max * H;
    int64_t M = 0;
    for (int64_t t = 0; t < T; t++) {
        int32_t lab = b->mlm_labels ? b->mlm_labels[t] : DAPT_IGNORE_LABEL;
        if (!ws->opts.mlm_all_positions && lab == DAPT_IGNORE_LABEL) continue;
        if (M == ws->M_max)
            return DAPT_ERROR(DAPT_ERR_ARG, "batch has more than %lld MLM positions; size the workspace "
                              "with a larger max_mlm_rows", (long long)ws->M_max);
        ws->mlm_pos[M] = t;
        ws->mlm_lab[M] = lab;
        M++;
    }
    ws->mlm_rows = M;
    ws->mlm_count = 0;
    ws->mlm_loss = 0.0;
    if (M == 0) return DAPT_OK;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < M; r++)
        memcpy(ws->mlm_in + r * H, last + ws->mlm_pos[r] * H, (size_t)H * sizeof(float));
    k_linear_fwd(M, H, H, ws->mlm_in, P->mlm_dense_w, P->mlm_dense_b, ws->mlm_pre, 0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < M; r++) k_gelu_row(H, ws->mlm_pre + r * H, NULL, ws->mlm_out + r * H, NULL);
    k_layernorm_fwd(M, H, ws->mlm_out, P->mlm_ln_w, P->mlm_ln_b, mc->layer_norm_eps,
                    ws->mlm_xhat, ws->mlm_rstd, ws->mlm_out);
    /* The tied decoder on this model's vocabulary rows. */
    k_linear_fwd(M, H, V, ws->mlm_out, P->word, P->mlm_bias, ws->mlm_logits, 0);
    double sum;
    if (m->tp && m->tp->size > 1)
        DAPT_CHECK(softmax_ce_rows_tp(m, ws, M, V, ws->r.vocab_real, ws->r.vocab_begin, ws->mlm_logits, ws->mlm_lab,
                                      ws->mlm_lse, &sum, &ws->mlm_count));
    else {
        /* Unsharded; a padded vocabulary's extra rows are never a token. */
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < M; r++)
            for (int64_t j = ws->r.vocab_real; j < V; j++) ws->mlm_logits[r * V + j] = -INFINITY;
        softmax_ce_rows(M, V, ws->mlm_logits, ws->mlm_lab, ws->mlm_lse, &sum, &ws->mlm_count);
    }
    ws->mlm_den = ws->opts.mlm_denominator > 0 ? ws->opts.mlm_denominator : (double)ws->mlm_count;
    ws->mlm_loss = ws->mlm_count ? sum / ws->mlm_den : 0.0;
    return DAPT_OK;
}

/* Adds the caller's logit gradient d [n, c] to the gradient in logits (or,
 * `add` 0, writes it over the logits); columns from `real` on (vocabulary
 * padding: constant -inf logits) keep a zero gradient. */
static void add_logit_grad(int64_t n, int64_t c, int64_t real, float *logits, const float *d, int add)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *row = logits + r * c;
        const float *dr = d + r * c;
        if (add) {
            for (int64_t j = 0; j < real; j++) row[j] += dr[j];
        } else {
            for (int64_t j = 0; j < real; j++) row[j] = dr[j];
            for (int64_t j = real; j < c; j++) row[j] = 0.0f;
        }
    }
}

dapt_status model_mlm_backward(const dapt_model *m, dapt_workspace *ws, double loss_scale, float *dlast,
                               const model_top_ptrs *G, const float *d_logits)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const int64_t M = ws->mlm_rows, H = mc->hidden, V = ws->VL;
    /* The cross-entropy contributes when labels scored something; every
     * rank of a tensor group takes the same branch (same batch, same
     * d_logits NULL-ness), as the reduction below is collective. */
    const int ce = ws->b.mlm_labels && ws->mlm_count > 0;
    if (M == 0 || (!ce && !d_logits)) return DAPT_OK;
    if (ce)
        softmax_ce_backward(M, V, ws->r.vocab_begin, ws->mlm_logits, ws->mlm_lab, ws->mlm_lse,
                            (float)(loss_scale / ws->mlm_den));
    if (d_logits) add_logit_grad(M, V, ws->r.vocab_real, ws->mlm_logits, d_logits, ce);
    /* The decoder is tied: its gradient lands on embeddings.word (this
     * model's rows); its input gradient is a partial sum over the
     * vocabulary shards, reduced before the replicated transform. */
    k_linear_bwd(M, H, V, ws->mlm_out, P->word, ws->mlm_logits, G->word, G->mlm_bias, ws->mlm_d1, 0);
    DAPT_CHECK(model_tp_reduce(m, ws->mlm_d1, (size_t)(M * H), DAPT_REDUCE_SUM));
    k_layernorm_bwd(M, H, ws->mlm_d1, ws->mlm_xhat, ws->mlm_rstd, P->mlm_ln_w, G->mlm_ln_w, G->mlm_ln_b, ws->mlm_d1, 0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < M; r++) k_gelu_grad_mul_row(H, ws->mlm_pre + r * H, ws->mlm_d1 + r * H);
    k_linear_bwd(M, H, H, ws->mlm_in, P->mlm_dense_w, ws->mlm_d1, G->mlm_dense_w, G->mlm_dense_b, ws->mlm_d2, 0);
    for (int64_t r = 0; r < M; r++) {
        float *d = dlast + ws->mlm_pos[r] * H;
        for (int64_t j = 0; j < H; j++) d[j] += ws->mlm_d2[r * H + j];
    }
    return DAPT_OK;
}

void model_pooler_forward(const dapt_model *m, dapt_workspace *ws)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const int64_t B = ws->b.batch, S = ws->b.seq_len, H = mc->hidden;
    const float *last = ws->hs + mc->layers * ws->T_max * H;
    for (int64_t i = 0; i < B; i++) memcpy(ws->pool_in + i * H, last + i * S * H, (size_t)H * sizeof(float));
    if (!mc->has_pooler) return;
    k_linear_fwd(B, H, H, ws->pool_in, P->pooler_w, P->pooler_b, ws->pooled, 0);
    for (int64_t e = 0; e < B * H; e++) ws->pooled[e] = tanhf(ws->pooled[e]);
}

dapt_status model_classifier_forward(const dapt_model *m, dapt_workspace *ws)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const int64_t B = ws->b.batch, H = mc->hidden, C = mc->num_labels;
    if (C <= 0) return DAPT_OK;
    const uint64_t first = ws->b.first_sample;
    if (mc->arch == DAPT_ARCH_ROBERTA) {
        memcpy(ws->cls_x, ws->pool_in, (size_t)(B * H) * sizeof(float));
        for (int64_t i = 0; i < B; i++)
            k_dropout_row(&ws->hid_drop, first + (uint64_t)i, model_cls_site(ws, 0), 0, H, ws->cls_x + i * H, NULL);
        k_linear_fwd(B, H, H, ws->cls_x, P->cls_dense_w, P->cls_dense_b, ws->cls_z, 0);
        for (int64_t e = 0; e < B * H; e++) ws->cls_z[e] = tanhf(ws->cls_z[e]);
        memcpy(ws->cls_x2, ws->cls_z, (size_t)(B * H) * sizeof(float));
        for (int64_t i = 0; i < B; i++)
            k_dropout_row(&ws->hid_drop, first + (uint64_t)i, model_cls_site(ws, 1), 0, H, ws->cls_x2 + i * H, NULL);
        k_linear_fwd(B, H, C, ws->cls_x2, P->cls_out_w, P->cls_out_b, ws->cls_logits, 0);
    } else {
        if (!mc->has_pooler)
            return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "BERT sequence classification needs the pooler");
        memcpy(ws->cls_x, ws->pooled, (size_t)(B * H) * sizeof(float));
        for (int64_t i = 0; i < B; i++)
            k_dropout_row(&ws->hid_drop, first + (uint64_t)i, model_cls_site(ws, 0), 0, H, ws->cls_x + i * H, NULL);
        k_linear_fwd(B, H, C, ws->cls_x, P->cls_w, P->cls_b, ws->cls_logits, 0);
    }
    ws->cls_loss = 0.0;
    ws->cls_count = 0;
    if (C == 1 && ws->b.regression_labels) {
        /* Regression (Hugging Face's num_labels == 1): mean squared error
         * between the one logit and the float label; NaN labels are
         * unscored, as DAPT_IGNORE_LABEL is for classes. */
        double sum = 0.0;
        int64_t cnt = 0;
        for (int64_t i = 0; i < B; i++) {
            const float y = ws->b.regression_labels[i];
            if (isnan(y)) continue;
            const double e = (double)ws->cls_logits[i] - (double)y;
            sum += e * e;
            cnt++;
        }
        ws->cls_count = cnt;
        ws->cls_den = ws->opts.cls_denominator > 0 ? ws->opts.cls_denominator : (double)cnt;
        ws->cls_loss = cnt ? sum / ws->cls_den : 0.0;
    } else if (ws->b.class_labels) {
        double sum;
        softmax_ce_rows(B, C, ws->cls_logits, ws->b.class_labels, ws->cls_lse, &sum, &ws->cls_count);
        ws->cls_den = ws->opts.cls_denominator > 0 ? ws->opts.cls_denominator : (double)ws->cls_count;
        ws->cls_loss = ws->cls_count ? sum / ws->cls_den : 0.0;
    }
    return DAPT_OK;
}

/* logits [n, 1] <- scale * 2 (logit - label), 0 on unscored (NaN) rows. */
static void mse_backward(int64_t n, float *logits, const float *labels, double scale)
{
    for (int64_t i = 0; i < n; i++)
        logits[i] = isnan(labels[i]) ? 0.0f : (float)(scale * 2.0 * ((double)logits[i] - (double)labels[i]));
}

/* Classifier and pooler backward: adds into dlast (row 0 of each sample). */
void model_classifier_backward(const dapt_model *m, dapt_workspace *ws, double loss_scale, float *dlast,
                               const model_top_ptrs *G, const float *d_logits)
{
    const model_top_ptrs *P = &m->ptrs->p.top;
    const dapt_model_config *mc = &m->config;
    const int64_t B = ws->b.batch, S = ws->b.seq_len, H = mc->hidden, C = mc->num_labels;
    const int mse = C == 1 && ws->b.regression_labels && ws->cls_count > 0;
    const int ce = !mse && ws->b.class_labels && ws->cls_count > 0;
    if (C <= 0 || (!ce && !mse && !d_logits)) return;
    const uint64_t first = ws->b.first_sample;
    if (ce)
        softmax_ce_backward(B, C, 0, ws->cls_logits, ws->b.class_labels, ws->cls_lse,
                            (float)(loss_scale / ws->cls_den));
    if (mse) mse_backward(B, ws->cls_logits, ws->b.regression_labels, loss_scale / ws->cls_den);
    if (d_logits) add_logit_grad(B, C, C, ws->cls_logits, d_logits, ce || mse);
    float *d1 = ws->mlm_d1 && ws->M_max >= B ? ws->mlm_d1 : ws->g1; /* [B,H] scratch */
    float *d2 = ws->g2;
    if (mc->arch == DAPT_ARCH_ROBERTA) {
        k_linear_bwd(B, H, C, ws->cls_x2, P->cls_out_w, ws->cls_logits, G->cls_out_w, G->cls_out_b, d1, 0);
        for (int64_t i = 0; i < B; i++)
            k_dropout_row(&ws->hid_drop, first + (uint64_t)i, model_cls_site(ws, 1), 0, H, d1 + i * H, NULL);
        for (int64_t e = 0; e < B * H; e++) d1[e] *= 1.0f - ws->cls_z[e] * ws->cls_z[e];
        k_linear_bwd(B, H, H, ws->cls_x, P->cls_dense_w, d1, G->cls_dense_w, G->cls_dense_b, d2, 0);
        for (int64_t i = 0; i < B; i++)
            k_dropout_row(&ws->hid_drop, first + (uint64_t)i, model_cls_site(ws, 0), 0, H, d2 + i * H, NULL);
    } else {
        k_linear_bwd(B, H, C, ws->cls_x, P->cls_w, ws->cls_logits, G->cls_w, G->cls_b, d1, 0);
        for (int64_t i = 0; i < B; i++)
            k_dropout_row(&ws->hid_drop, first + (uint64_t)i, model_cls_site(ws, 0), 0, H, d1 + i * H, NULL);
        /* Pooler: tanh' = 1 - pooled^2. */
        for (int64_t e = 0; e < B * H; e++) d1[e] *= 1.0f - ws->pooled[e] * ws->pooled[e];
        k_linear_bwd(B, H, H, ws->pool_in, P->pooler_w, d1, G->pooler_w, G->pooler_b, d2, 0);
    }
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < H; j++) dlast[i * S * H + j] += d2[i * H + j];
}
