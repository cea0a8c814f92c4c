/* The parameter table of one tensor-parallel rank, and copies between the
 * global and local flat buffers (include/dapt/grid.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/grid.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

typedef enum { SPLIT_NONE, SPLIT_VOCAB, SPLIT_HEADS, SPLIT_FFN } split_what;

/* Which dimension of tensor t is split, and by what. */
static dapt_shard_kind classify(const dapt_tensor *t, split_what *what)
{
    *what = SPLIT_NONE;
    const char *n = t->name;
    if (!strcmp(n, "embeddings.word") || !strcmp(n, "mlm.bias")) {
        *what = SPLIT_VOCAB;
        return DAPT_SHARD_ROWS;
    }
    if (strncmp(n, "layer.", 6)) return DAPT_SHARD_REPLICATED;
    static const char *const head_rows[] = {".attn.q.weight", ".attn.q.bias", ".attn.k.weight",
                                            ".attn.k.bias",   ".attn.v.weight", ".attn.v.bias"};
    for (size_t i = 0; i < sizeof head_rows / sizeof head_rows[0]; i++)
        if (ends_with(n, head_rows[i])) {
            *what = SPLIT_HEADS;
            return DAPT_SHARD_ROWS;
        }
    if (ends_with(n, ".attn.out.weight")) {
        *what = SPLIT_HEADS;
        return DAPT_SHARD_COLS;
    }
    if (ends_with(n, ".ffn.in.weight") || ends_with(n, ".ffn.in.bias")) {
        *what = SPLIT_FFN;
        return DAPT_SHARD_ROWS;
    }
    if (ends_with(n, ".ffn.out.weight")) {
        *what = SPLIT_FFN;
        return DAPT_SHARD_COLS;
    }
    return DAPT_SHARD_REPLICATED;
}

dapt_status dapt_shard_table_build(const dapt_model_config *mc, const dapt_param_table *global,
                                   int tensor_rank, int tensor_size, dapt_param_table *local,
                                   dapt_shard **shards)
{
    memset(local, 0, sizeof *local);
    *shards = NULL;
    if (tensor_size < 1 || tensor_rank < 0 || tensor_rank >= tensor_size)
        return DAPT_ERROR(DAPT_ERR_ARG, "tensor rank %d of %d is not a valid position", tensor_rank,
                          tensor_size);
    const int64_t T = tensor_size, dh = mc->hidden / mc->heads;
    if (mc->heads % T || mc->intermediate % T)
        return DAPT_ERROR(DAPT_ERR_CONFIG,
                          "parallel.tensor = %lld does not divide num_attention_heads = %lld "
                          "and intermediate_size = %lld",
                          (long long)T, (long long)mc->heads, (long long)mc->intermediate);
    dapt_status st = DAPT_OK;
    dapt_shard *sh = NULL;
    DAPT_TRY(dapt_calloc((void **)&local->tensors, global->count ? global->count : 1,
                         sizeof *local->tensors, "the local parameter table"));
    DAPT_TRY(dapt_calloc((void **)&sh, global->count ? global->count : 1, sizeof *sh,
                         "the shard descriptions"));
    const dapt_range heads = dapt_shard_heads(mc, tensor_rank, tensor_size);
    const dapt_range ffn = dapt_shard_ffn(mc, tensor_rank, tensor_size);
    int64_t vocab_real = 0;
    const dapt_range vocab = dapt_shard_vocab(mc->vocab_size, tensor_rank, tensor_size, &vocab_real);
    for (size_t k = 0; k < global->count; k++) {
        const dapt_tensor *g = &global->tensors[k];
        dapt_tensor *l = &local->tensors[k];
        dapt_shard *s = &sh[k];
        *l = *g;
        split_what what;
        s->kind = classify(g, &what);
        s->row0 = 0;
        s->rows = g->shape[0];
        s->col0 = 0;
        s->cols = g->shape[1];
        dapt_range r = {0, 0};
        int64_t full = 0;
        switch (what) {
        case SPLIT_VOCAB: r = vocab; full = mc->vocab_size; break;
        case SPLIT_HEADS: r = (dapt_range){heads.begin * dh, heads.count * dh}; full = mc->hidden; break;
        case SPLIT_FFN: r = ffn; full = mc->intermediate; break;
        case SPLIT_NONE: break;
        }
        int dim = s->kind == DAPT_SHARD_COLS ? 1 : 0;
        if (what != SPLIT_NONE && g->shape[dim] != full)
            DAPT_THROW(DAPT_ERR_INTERNAL, "tensor %s: dimension %d is %lld, expected %lld", g->name, dim,
                       (long long)g->shape[dim], (long long)full);
        if (s->kind == DAPT_SHARD_ROWS) {
            s->row0 = r.begin;
            s->rows = what == SPLIT_VOCAB ? vocab_real : r.count;
            l->shape[0] = r.count; /* padding rows included */
        } else if (s->kind == DAPT_SHARD_COLS) {
            s->col0 = r.begin;
            s->cols = r.count;
            l->shape[1] = r.count;
        }
        s->local_rows = l->shape[0];
        l->numel = (size_t)l->shape[0] * (size_t)l->shape[1];
        l->offset = local->total;
        local->total += (l->numel + 15) & ~(size_t)15;
    }
    local->count = global->count;
    *shards = sh;
    return DAPT_OK;
cleanup:
    free(sh);
    dapt_param_table_free(local);
    return st;
}

void dapt_shard_scatter(const dapt_param_table *global, const float *global_buf,
                        const dapt_param_table *local, const dapt_shard *shards, float *local_buf)
{
    for (size_t k = 0; k < local->count; k++) {
        const dapt_tensor *g = &global->tensors[k], *l = &local->tensors[k];
        const dapt_shard *s = &shards[k];
        const size_t gcols = (size_t)g->shape[1], lcols = (size_t)l->shape[1];
        float *dst = local_buf + l->offset;
        for (int64_t r = 0; r < s->rows; r++)
            memcpy(dst + (size_t)r * lcols,
                   global_buf + g->offset + (size_t)(s->row0 + r) * gcols + (size_t)s->col0,
                   (size_t)s->cols * sizeof(float));
        if (s->local_rows > s->rows)
            memset(dst + (size_t)s->rows * lcols, 0,
                   (size_t)(s->local_rows - s->rows) * lcols * sizeof(float));
    }
}

void dapt_shard_gather(const dapt_param_table *global, float *global_buf,
                       const dapt_param_table *local, const dapt_shard *shards,
                       const float *local_buf)
{
    for (size_t k = 0; k < local->count; k++) {
        const dapt_tensor *g = &global->tensors[k], *l = &local->tensors[k];
        const dapt_shard *s = &shards[k];
        const size_t gcols = (size_t)g->shape[1], lcols = (size_t)l->shape[1];
        for (int64_t r = 0; r < s->rows; r++)
            memcpy(global_buf + g->offset + (size_t)(s->row0 + r) * gcols + (size_t)s->col0,
                   local_buf + l->offset + (size_t)r * lcols, (size_t)s->cols * sizeof(float));
    }
}
