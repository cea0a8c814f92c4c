/* The state of one dapt finetune run, shared by finetune.c (set-up, the
 * epochs), finetune_step.c (one optimizer step) and finetune_ckpt.c
 * (checkpoints, resume, the metrics file).  Internal to src/task. */
#ifndef DAPT_FINETUNE_INTERNAL_H
#define DAPT_FINETUNE_INTERNAL_H

#include <stdio.h>

#include "dapt/batches.h"
#include "dapt/checkpoint.h"
#include "dapt/grid.h"
#include "dapt/metrics_log.h"
#include "dapt/objective.h"
#include "dapt/optim.h"
#include "task_internal.h"

/* What the epochs loop carries from step to step (checkpointed). */
typedef struct ft_progress {
    double epoch_loss_sum; /* train losses of the current epoch's steps so far */
    double best_metric;    /* -inf before the first dev evaluation */
    int64_t best_epoch, since_best;
    double best_accuracy, best_macro_f1;
    double extra_sum[DAPT_OBJ_MAX_COLUMNS]; /* the objective's columns, summed over the epoch's steps */
    int64_t finished;                       /* every epoch done, or stopped early */
} ft_progress;

typedef struct ft {
    const dapt_config *cfg;
    dapt_grid grid;
    int have_grid;
    dapt_tp_group tpg; /* parallel.tensor > 1: the model is this rank's shard */
    dapt_tp_layout tpl;
    int have_tpl;
    MPI_Comm comm; /* the data communicator */
    int rank, size;
    dapt_task_file task;
    dapt_task_split train, dev;
    int have_dev;
    dapt_model model;
    int have_model;
    dapt_model_meta meta;
    float *m1, *m2;
    dapt_adamw adam;
    dapt_lr_schedule sched;
    dapt_order order;
    task_ws_cache cache;
    int64_t B, micro, max_len, steps_per_epoch, total_steps, step, last_ckpt_step;
    int32_t *ids, *att, *types, *labels;
    float *values; /* regression targets of a batch */
    int64_t *idx;
    char out[DAPT_CONFIG_STR_MAX], model_path[DAPT_CONFIG_STR_MAX + 32], metrics_path[DAPT_CONFIG_STR_MAX + 32],
        ckpt_dir[DAPT_CONFIG_STR_MAX + 32];
    dapt_metrics_log mlog; /* finetune_metrics.csv and .jsonl (leader) */
    ft_progress prog;
    dapt_objective obj;
    dapt_objective_ctx ctx;
    dapt_domain_info domain;
    double t0;
    dapt_grad_sync *sync; /* the gradient all-reduce (made at the first step) */
    dapt_zero *zero;      /* parallel.shard_optimizer: m1, m2 are this rank's rows */
} ft;

/* Every rank of the run: the world (tensor ranks included). */
MPI_Comm ft_world(const ft *r);
/* World rank 0: writes the metrics file. */
int ft_leader(const ft *r);
/* How this rank's parameters sit in the files' global tensors. */
dapt_ckpt_layout ft_layout(const ft *r);

/* finetune_step.c: optimizer step k of epoch e; *loss = the step's
 * objective over the global batch, *lr its learning rate.  Collective over
 * the world. */
dapt_status ft_step(ft *r, int64_t e, int64_t k, double *loss, double *lr);

/* finetune_ckpt.c.  Collective over the world. */
dapt_status ft_save_checkpoint(ft *r);
/* --resume: the newest good checkpoint, after checking the configuration
 * it was written with (dapt_resume_check); a finished run fills res as
 * complete (res->complete, the last logged train loss). */
dapt_status ft_resume(ft *r, const dapt_finetune_opts *opts, dapt_finetune_result *res, int *resumed);
/* The learning-rate schedule of cfg for steps_per_epoch steps an epoch. */
void ft_schedule(const dapt_config *cfg, int64_t steps_per_epoch, dapt_lr_schedule *s);
dapt_status ft_save_model(ft *r); /* the best model, OUT/model.h5 */
/* The metrics log: created (fresh run) or cut after the epochs the
 * resumed state has finished.  Leader only. */
dapt_status ft_open_metrics(ft *r, int resumed);

#endif
