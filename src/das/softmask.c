/* Soft-masking: gradients of a unit's parameters scaled by (1 - importance). */
#include <stdio.h>

#include "dapt/das.h"

static dapt_status find(const dapt_param_table *t, float *grads, const char *fmt, int64_t layer,
                        const dapt_tensor **tensor, float **g)
{
    char name[64];
    snprintf(name, sizeof name, fmt, (long long)layer);
    *tensor = dapt_param_find(t, name);
    if (!*tensor) return DAPT_ERROR(DAPT_ERR_INTERNAL, "soft-mask: no tensor %s in the parameter table", name);
    *g = grads + (*tensor)->offset;
    return DAPT_OK;
}

/* Scales each row r of an [rows, cols] block by keep(r / group). */
static void scale_rows(float *g, int64_t rows, int64_t cols, const float *imp, int64_t group)
{
    for (int64_t r = 0; r < rows; r++) {
        float keep = 1.0f - imp[r / group];
        for (int64_t c = 0; c < cols; c++) g[r * cols + c] *= keep;
    }
}

/* Scales each column c of an [rows, cols] block by keep(c / group). */
static void scale_cols(float *g, int64_t rows, int64_t cols, const float *imp, int64_t group)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) g[r * cols + c] *= 1.0f - imp[c / group];
}

dapt_status dapt_softmask_apply(const dapt_model_config *mc, const dapt_param_table *table, float *grads,
                                const float *head, const float *intermediate, const float *output,
                                dapt_softmask_style style)
{
    if (style != DAPT_SOFTMASK_PAPER && style != DAPT_SOFTMASK_REFERENCE)
        return DAPT_ERROR(DAPT_ERR_ARG, "soft-mask: unknown style %d", (int)style);
    const int64_t H = mc->hidden, I = mc->intermediate, d = mc->hidden / mc->heads;
    static const char *const qkv_w[3] = {"layer.%lld.attn.q.weight", "layer.%lld.attn.k.weight",
                                         "layer.%lld.attn.v.weight"};
    static const char *const qkv_b[3] = {"layer.%lld.attn.q.bias", "layer.%lld.attn.k.bias",
                                         "layer.%lld.attn.v.bias"};
    const dapt_tensor *t = NULL;
    float *g = NULL;
    for (int64_t l = 0; l < mc->layers; l++) {
        if (head) {
            const float *imp = head + l * mc->heads;
            for (int i = 0; i < 3; i++) {
                DAPT_CHECK(find(table, grads, qkv_w[i], l, &t, &g));
                if (style == DAPT_SOFTMASK_PAPER) scale_rows(g, H, H, imp, d);
                else scale_cols(g, H, H, imp, d); /* the reference's broadcast over inputs */
                DAPT_CHECK(find(table, grads, qkv_b[i], l, &t, &g));
                scale_rows(g, H, 1, imp, d);
            }
            DAPT_CHECK(find(table, grads, "layer.%lld.attn.out.weight", l, &t, &g));
            scale_cols(g, H, H, imp, d);
            if (style == DAPT_SOFTMASK_REFERENCE) {
                /* The reference also scales the output bias, indexing hidden
                 * dimensions as if they were heads' dimensions. */
                DAPT_CHECK(find(table, grads, "layer.%lld.attn.out.bias", l, &t, &g));
                scale_rows(g, H, 1, imp, d);
            }
        }
        if (intermediate) {
            const float *imp = intermediate + l * I;
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.in.weight", l, &t, &g));
            scale_rows(g, I, H, imp, 1);
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.in.bias", l, &t, &g));
            scale_rows(g, I, 1, imp, 1);
        }
        if (output) {
            const float *imp = output + l * H;
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.out.weight", l, &t, &g));
            scale_rows(g, H, I, imp, 1);
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.out.bias", l, &t, &g));
            scale_rows(g, H, 1, imp, 1);
        }
    }
    return DAPT_OK;
}
