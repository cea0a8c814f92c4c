/* Padded task batches and per-length workspaces. */
#include <string.h>

#include "task_internal.h"

int64_t task_example_len(const dapt_task_split *s, int64_t i, int64_t max_len)
{
    int64_t len = s->offsets[i + 1] - s->offsets[i];
    return len < max_len ? len : max_len;
}

int64_t task_padded_len(int64_t len, int64_t max_len)
{
    int64_t L = (len + TASK_LEN_ROUND - 1) / TASK_LEN_ROUND * TASK_LEN_ROUND;
    return L < max_len ? L : max_len;
}

void task_fill_batch(const dapt_task_split *s, const int64_t *idx, int64_t n, int64_t L, int32_t pad, int32_t *ids,
                     int32_t *att, int32_t *types, int32_t *labels, float *values)
{
    for (int64_t r = 0; r < n; r++) {
        const int64_t i = idx[r], begin = s->offsets[i], full = s->offsets[i + 1] - begin;
        const int64_t len = full < L ? full : L;
        int32_t *row = ids + r * L, *arow = att + r * L, *trow = types ? types + r * L : NULL;
        for (int64_t j = 0; j < L; j++) {
            /* Truncation keeps the closing separator as the last id. */
            const int64_t src = j < len - 1 ? begin + j : begin + full - 1;
            row[j] = j < len ? s->ids[src] : pad;
            arow[j] = j < len;
            if (trow) trow[j] = j < len && s->type_ids ? s->type_ids[src] : 0;
        }
        if (labels && s->labels) labels[r] = s->labels[i];
        if (values && s->values) values[r] = s->values[i];
    }
}

void task_batch_labels(dapt_batch *b, const dapt_task_split *s, const int32_t *labels, const float *values)
{
    b->class_labels = s->values ? NULL : labels;
    b->regression_labels = s->values ? values : NULL;
}

void task_ws_cache_init(task_ws_cache *c, const dapt_model *m, int64_t batch, int training)
{
    memset(c, 0, sizeof *c);
    c->model = m;
    c->batch = batch;
    c->training = training;
}

void task_ws_cache_free(task_ws_cache *c)
{
    for (size_t i = 0; i < c->n; i++) dapt_workspace_free(c->ws[i]);
    c->n = 0;
    c->bytes = 0;
}

dapt_status task_ws_get(task_ws_cache *c, int64_t L, dapt_workspace **ws)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->len[i] == L) {
            *ws = c->ws[i];
            return DAPT_OK;
        }
    if (c->n == sizeof c->ws / sizeof c->ws[0] || c->bytes > ((size_t)1 << 30)) task_ws_cache_free(c);
    dapt_workspace_spec spec = {c->batch, L, 0, c->training, 0};
    DAPT_CHECK(dapt_workspace_create(c->model, &spec, &c->ws[c->n]));
    c->len[c->n] = L;
    c->bytes += dapt_workspace_bytes(c->ws[c->n]);
    *ws = c->ws[c->n++];
    return DAPT_OK;
}
