/* Soft-masking: gradients of a unit's parameters scaled by (1 - importance). */
#include <stdio.h>
#include <string.h>

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
    dapt_model_ranges all;
    memset(&all, 0, sizeof all);
    all.tensor_size = 1;
    all.head_count = mc->heads;
    all.ffn_count = mc->intermediate;
    return dapt_softmask_apply_shard(mc, &all, table, grads, head, intermediate, output, style);
}

dapt_status dapt_softmask_apply_shard(const dapt_model_config *mc, const dapt_model_ranges *rg,
                                      const dapt_param_table *table, float *grads, const float *head,
                                      const float *intermediate, const float *output, dapt_softmask_style style)
{
    if (style != DAPT_SOFTMASK_PAPER && style != DAPT_SOFTMASK_REFERENCE)
        return DAPT_ERROR(DAPT_ERR_ARG, "soft-mask: unknown style %d", (int)style);
    if (style == DAPT_SOFTMASK_REFERENCE && rg->tensor_size > 1)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "das.softmask = reference mixes heads across input columns, which tensor-parallel shards do not hold: use paper");
    /* A shard holds heads [head_begin, +head_count) (Q/K/V rows and
     * attention-output columns) and FFN columns [ffn_begin, +ffn_count);
     * importance arrays stay global. */
    const int64_t H = mc->hidden, d = mc->hidden / mc->heads;
    const int64_t Hl = rg->head_count * d, Il = rg->ffn_count;
    static const char *const qkv_w[3] = {"layer.%lld.attn.q.weight", "layer.%lld.attn.k.weight",
                                         "layer.%lld.attn.v.weight"};
    static const char *const qkv_b[3] = {"layer.%lld.attn.q.bias", "layer.%lld.attn.k.bias",
                                         "layer.%lld.attn.v.bias"};
    const dapt_tensor *t = NULL;
    float *g = NULL;
    for (int64_t l = 0; l < mc->layers; l++) {
        if (head) {
            const float *imp = head + l * mc->heads + rg->head_begin;
            for (int i = 0; i < 3; i++) {
                DAPT_CHECK(find(table, grads, qkv_w[i], l, &t, &g));
                if (style == DAPT_SOFTMASK_PAPER) scale_rows(g, Hl, H, imp, d);
                else scale_cols(g, H, H, imp, d); /* the reference's broadcast over inputs */
                DAPT_CHECK(find(table, grads, qkv_b[i], l, &t, &g));
                scale_rows(g, Hl, 1, imp, d);
            }
            DAPT_CHECK(find(table, grads, "layer.%lld.attn.out.weight", l, &t, &g));
            scale_cols(g, H, Hl, imp, d);
            if (style == DAPT_SOFTMASK_REFERENCE) {
                /* The reference also scales the output bias, indexing hidden
                 * dimensions as if they were heads' dimensions. */
                DAPT_CHECK(find(table, grads, "layer.%lld.attn.out.bias", l, &t, &g));
                scale_rows(g, H, 1, imp, d);
            }
        }
        if (intermediate) {
            const float *imp = intermediate + l * mc->intermediate + rg->ffn_begin;
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.in.weight", l, &t, &g));
            scale_rows(g, Il, H, imp, 1);
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.in.bias", l, &t, &g));
            scale_rows(g, Il, 1, imp, 1);
        }
        if (output) {
            const float *imp = output + l * H;
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.out.weight", l, &t, &g));
            scale_rows(g, H, Il, imp, 1);
            DAPT_CHECK(find(table, grads, "layer.%lld.ffn.out.bias", l, &t, &g));
            scale_rows(g, H, 1, imp, 1);
        }
    }
    return DAPT_OK;
}
