/* Shared by the task module's sources: padded batches and workspaces sized
 * per padded length.  Nothing here is collective. */
#ifndef DAPT_TASK_INTERNAL_H
#define DAPT_TASK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dapt/metrics_log.h"
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
 * (1/0), types (NULL when s has none; 0 on padding), labels[n] (class ids
 * of a classification split) and values[n] (targets of a regression split);
 * either of those may be NULL.  An example longer than L keeps its first
 * L - 1 ids and its last one. */
void task_fill_batch(const dapt_task_split *s, const int64_t *idx, int64_t n, int64_t L, int32_t pad, int32_t *ids,
                     int32_t *att, int32_t *types, int32_t *labels, float *values);

/* Points b's labels at the filled arrays: class_labels for a classification
 * split, regression_labels for a regression one (the other NULL). */
void task_batch_labels(dapt_batch *b, const dapt_task_split *s, const int32_t *labels, const float *values);

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

/* What dapt finetune can do with task t and finetune.metric: refuses (one
 * line) a metric of the other kind of task and a classification task of one
 * class (a one-output head is a regression head). */
dapt_status dapt_task_check_finetune(const dapt_task_file *t, const char *metric);

/* finetune_metrics.csv / .jsonl: the columns before the objective's for a
 * classification or regression task (names[] holds at least
 * TASK_METRICS_COLUMNS; returns how many), and a row's dev fields (m NULL:
 * no dev split, empty fields). */
#define TASK_METRICS_COLUMNS 12
size_t task_metrics_columns(int regression, const char **names);
void task_metrics_dev_fields(dapt_metrics_log *log, int regression, const dapt_cls_metrics *m, double dev_loss);

#endif
