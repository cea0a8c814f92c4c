/* What makes a fine-tune survive preemption: checkpoints of the parameters,
 * AdamW moments, the epochs' bookkeeping and the objective's state (the
 * checkpoint module's format, at global shape, so a run resumes on any
 * layout), the best model, and the metrics file cut back to the resumed
 * state. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/fsio.h"
#include "dapt/log.h"
#include "finetune_internal.h"

MPI_Comm ft_world(const ft *r) { return r->have_grid ? r->grid.world : MPI_COMM_WORLD; }

int ft_leader(const ft *r) { return r->rank == 0 && (!r->have_grid || r->grid.tensor_rank == 0); }

dapt_ckpt_layout ft_layout(const ft *r)
{
    if (!r->have_tpl) {
        dapt_ckpt_layout lay = dapt_ckpt_layout_whole(ft_world(r), &r->model.table);
        if (r->zero) lay.optim_rows = dapt_zero_rows(r->zero); /* m1, m2: this rank's range */
        return lay;
    }
    return (dapt_ckpt_layout){&r->tpl.global, &r->model.table, r->tpl.shards, r->grid.tensor_rank,
                              r->grid.tensor_size, r->grid.data_rank, r->grid.data_size, NULL};
}

/* ---- the loop's own state in a checkpoint --------------------------------- */

#define PROGRESS "finetune"

static dapt_status save_state(void *ctx, dapt_h5file *f)
{
    ft *r = ctx;
    const ft_progress *p = &r->prog;
    DAPT_CHECK(dapt_h5_group(f, PROGRESS));
    DAPT_CHECK(dapt_h5_attr_set_double(f, PROGRESS, "epoch_loss_sum", p->epoch_loss_sum));
    DAPT_CHECK(dapt_h5_attr_set_double(f, PROGRESS, "best_metric", p->best_metric));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, PROGRESS, "best_epoch", p->best_epoch));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, PROGRESS, "since_best", p->since_best));
    DAPT_CHECK(dapt_h5_attr_set_double(f, PROGRESS, "best_accuracy", p->best_accuracy));
    DAPT_CHECK(dapt_h5_attr_set_double(f, PROGRESS, "best_macro_f1", p->best_macro_f1));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, PROGRESS, "finished", p->finished));
    for (size_t i = 0; i < DAPT_OBJ_MAX_COLUMNS; i++) {
        char name[32];
        snprintf(name, sizeof name, "extra_sum_%zu", i);
        DAPT_CHECK(dapt_h5_attr_set_double(f, PROGRESS, name, p->extra_sum[i]));
    }
    if (!r->obj.ops->save) return DAPT_OK;
    const dapt_ckpt_layout lay = ft_layout(r);
    r->ctx.ckpt_layout = &lay;
    r->ctx.ckpt_comm = ft_world(r);
    dapt_status st = r->obj.ops->save(r->obj.state, &r->ctx, f);
    r->ctx.ckpt_layout = NULL;
    return st;
}

static dapt_status load_state(void *ctx, const dapt_h5file *f)
{
    ft *r = ctx;
    ft_progress *p = &r->prog;
    if (!dapt_h5_exists(f, PROGRESS))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s is a dapt train checkpoint, not a dapt finetune one (no /%s)", f->path,
                          PROGRESS);
    DAPT_CHECK(dapt_h5_attr_get_double(f, PROGRESS, "epoch_loss_sum", &p->epoch_loss_sum));
    DAPT_CHECK(dapt_h5_attr_get_double(f, PROGRESS, "best_metric", &p->best_metric));
    DAPT_CHECK(dapt_h5_attr_get_int64(f, PROGRESS, "best_epoch", &p->best_epoch));
    DAPT_CHECK(dapt_h5_attr_get_int64(f, PROGRESS, "since_best", &p->since_best));
    DAPT_CHECK(dapt_h5_attr_get_double(f, PROGRESS, "best_accuracy", &p->best_accuracy));
    DAPT_CHECK(dapt_h5_attr_get_double(f, PROGRESS, "best_macro_f1", &p->best_macro_f1));
    DAPT_CHECK(dapt_h5_attr_get_int64(f, PROGRESS, "finished", &p->finished));
    for (size_t i = 0; i < DAPT_OBJ_MAX_COLUMNS; i++) {
        char name[32];
        snprintf(name, sizeof name, "extra_sum_%zu", i);
        DAPT_CHECK(dapt_h5_attr_get_double(f, PROGRESS, name, &p->extra_sum[i]));
    }
    if (!r->obj.ops->load) return DAPT_OK;
    const dapt_ckpt_layout lay = ft_layout(r);
    r->ctx.ckpt_layout = &lay;
    r->ctx.ckpt_comm = ft_world(r);
    dapt_status st = r->obj.ops->load(r->obj.state, &r->ctx, f);
    r->ctx.ckpt_layout = NULL;
    return st;
}

dapt_status ft_save_checkpoint(ft *r)
{
    const dapt_ckpt_state cs = {r->step, r->step * r->B, r->adam.step, 0, (uint64_t)r->cfg->run.seed};
    const dapt_ckpt_layout lay = ft_layout(r);
    const double t0 = dapt_now();
    DAPT_CHECK(dapt_checkpoint_save_layout(ft_world(r), r->ckpt_dir, r->cfg, &r->model.config, &lay, r->model.params,
                                           r->m1, r->m2, &r->meta, &cs, r->cfg->checkpoint.keep, save_state, r));
    r->last_ckpt_step = r->step;
    dapt_debug("finetune checkpoint step %lld written in %.2f s", (long long)r->step, dapt_now() - t0);
    return DAPT_OK;
}

void ft_schedule(const dapt_config *cfg, int64_t steps_per_epoch, dapt_lr_schedule *s)
{
    const int64_t total = steps_per_epoch * cfg->finetune.epochs;
    s->kind = strcmp(cfg->finetune.schedule, "constant") ? DAPT_SCHEDULE_LINEAR : DAPT_SCHEDULE_CONSTANT;
    s->base_lr = cfg->finetune.lr;
    s->total_steps = total;
    s->warmup_steps = cfg->finetune.warmup_steps > 0 ? cfg->finetune.warmup_steps
                                                      : (int64_t)ceil(cfg->finetune.warmup_ratio * (double)total);
}

static dapt_status resume_schedule(const dapt_config *cfg, void *ctx, dapt_lr_schedule *out)
{
    ft_schedule(cfg, ((const ft *)ctx)->steps_per_epoch, out);
    return DAPT_OK;
}

/* A checkpoint of a finished fine-tune: nothing to train, unless
 * finetune.epochs grew and the run ended by its epoch count (not by early
 * stopping); the result says where the run stands from its metrics file. */
static dapt_status resumed_finished(ft *r, dapt_finetune_result *res)
{
    const ft_progress *p = &r->prog;
    const int64_t patience = r->cfg->finetune.patience;
    const int stopped_early = r->have_dev && patience > 0 && p->since_best >= patience;
    if (r->step < r->total_steps && !stopped_early) {
        r->prog.finished = 0;
        dapt_info("--resume: the finished run continues to epoch %lld", (long long)r->cfg->finetune.epochs);
        return DAPT_OK;
    }
    int64_t epoch = -1;
    DAPT_CHECK(dapt_resume_logged(ft_world(r), r->metrics_path, "train_loss", r->step / r->steps_per_epoch,
                                  &res->last_train_loss, &epoch));
    res->complete = 1;
    res->stopped_early = stopped_early;
    res->steps_total = r->total_steps;
    res->last_loss_epoch = epoch;
    return DAPT_OK;
}

dapt_status ft_resume(ft *r, const dapt_finetune_opts *opts, dapt_finetune_result *res, int *resumed)
{
    *resumed = 0;
    long long have = 0;
    if (ft_leader(r)) {
        int64_t *steps = NULL;
        size_t n = 0;
        dapt_status st = dapt_checkpoint_list(r->ckpt_dir, &steps, &n);
        free(steps);
        have = st == DAPT_OK ? (long long)n : -1;
    }
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&have, 1, MPI_LONG_LONG, 0, ft_world(r))));
    if (have < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list checkpoints", r->ckpt_dir);
    if (have == 0) {
        dapt_info("--resume: no checkpoint in %s, starting from step 0", r->ckpt_dir);
        return DAPT_OK;
    }
    const dapt_ckpt_layout lay = ft_layout(r);
    dapt_ckpt_state cs;
    char path[2 * DAPT_CONFIG_STR_MAX];
    DAPT_CHECK(dapt_checkpoint_resume_layout(ft_world(r), r->ckpt_dir, &lay, r->model.params, r->m1, r->m2, &cs,
                                             load_state, r, path, sizeof path));
    dapt_info("resumed from %s: step %lld of %lld (epoch %lld)", path, (long long)cs.step, (long long)r->total_steps,
              (long long)(cs.step / r->steps_per_epoch) + 1);
    /* The checkpoint's own configuration (run.seed included) against this one. */
    const dapt_resume_spec spec = {DAPT_RESUME_FINETUNE, opts->override_resume_check, cs.step, resume_schedule, r};
    DAPT_CHECK(dapt_resume_check(ft_world(r), path, r->cfg, &spec));
    r->step = r->last_ckpt_step = cs.step;
    r->adam.step = cs.adam_step;
    *resumed = 1;
    if (r->prog.finished) return resumed_finished(r, res);
    if (cs.step > r->total_steps)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s is at step %lld, beyond this run's %lld steps (finetune.epochs or the task changed)",
                          path, (long long)cs.step, (long long)r->total_steps);
    return DAPT_OK;
}

dapt_status ft_save_model(ft *r)
{
    if (!r->have_tpl)
        return dapt_modelfile_save(ft_world(r), r->model_path, 1, r->cfg, &r->model.config, &r->model.table,
                                   r->model.params, &r->meta);
    const dapt_ckpt_layout lay = ft_layout(r);
    return dapt_checkpoint_save_model(ft_world(r), r->model_path, r->cfg, &r->model.config, &lay, r->model.params,
                                      &r->meta);
}

/* ---- the metrics file ------------------------------------------------------ */

dapt_status ft_open_metrics(ft *r, int resumed)
{
    if (!ft_leader(r)) return DAPT_OK;
    DAPT_CHECK(dapt_metrics_log_init(&r->mlog, r->metrics_path));
    const int keep = resumed && dapt_fs_exists(r->mlog.csv);
    if (keep) DAPT_CHECK(dapt_metrics_log_truncate(&r->mlog, r->step / r->steps_per_epoch));
    const char *names[TASK_METRICS_COLUMNS + DAPT_OBJ_MAX_COLUMNS];
    const size_t nt = task_metrics_columns(r->task.regression, names), nc = dapt_objective_columns(&r->obj);
    if (nc > DAPT_OBJ_MAX_COLUMNS)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "%zu objective metrics columns (at most %d)", nc, DAPT_OBJ_MAX_COLUMNS);
    for (size_t i = 0; i < nc; i++) names[nt + i] = r->obj.ops->columns[i];
    return dapt_metrics_log_open(&r->mlog, names, nt + nc, keep);
}
