/* Shared by the task module's sources: padded batches and workspaces sized
 * per padded length.  Nothing here is collective. */
#ifndef DAPT_TASK_INTERNAL_H
#define DAPT_TASK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/model.h"
#include "dapt/task.h"

/* Padded lengths are rounded up to this many positions, so a run needs few
 * distinct workspaces. */
#define TASK_LEN_ROUND 16

/* Ids example i contributes: its length, capped at max_len. */
int64_t task_example_len(const dapt_task_split *s, int64_t i, int64_t max_len);

/* The padded length for a batch whose longest example has len ids. */
int64_t task_padded_len(int64_t len, int64_t max_len);

/* Rows idx[0..n) of s into [n, L] arrays: ids (padding = pad), attention
 * (1/0), types (NULL when s has none; 0 on padding) and labels[n].  An
 * example longer than L keeps its first L - 1 ids and its last one. */
void task_fill_batch(const dapt_task_split *s, const int64_t *idx, int64_t n, int64_t L, int32_t pad, int32_t *ids,
                     int32_t *att, int32_t *types, int32_t *labels);

/* Workspaces for one model and batch size, one per padded length. */
typedef struct task_ws_cache {
    const dapt_model *model;
    int64_t batch;
    int training;
    size_t n;
    int64_t len[64];
    dapt_workspace *ws[64];
    size_t bytes;
} task_ws_cache;

void task_ws_cache_init(task_ws_cache *c, const dapt_model *m, int64_t batch, int training);
/* The workspace for padded length L (created on first use; the cache is
 * emptied first when it holds more than 1 GiB). */
dapt_status task_ws_get(task_ws_cache *c, int64_t L, dapt_workspace **ws);
void task_ws_cache_free(task_ws_cache *c);


#endif
