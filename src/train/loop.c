/* The step loop of one dapt train run: resume, held-out evaluation,
 * metrics, checkpoints and preemption (see dapt/train.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/checkpoint.h"
#include "dapt/log.h"
#include "dapt/preempt.h"
#include "train_internal.h"

/* ---- checkpoints ------------------------------------------------------------ */

static dapt_ckpt_layout tp_ckpt_layout(const train_run *r);

/* The objective sees how the parameters are laid out while it saves or
 * loads, so buffers shaped like them go in at global shape too. */
static dapt_status obj_state(train_run *r, dapt_h5file *wf, const dapt_h5file *rf)
{
    const dapt_ckpt_layout lay = r->have_tpl ? tp_ckpt_layout(r) : dapt_ckpt_layout_whole(r->comm, &r->model.table);
    r->ctx.ckpt_layout = &lay;
    r->ctx.ckpt_comm = r->have_tpl ? r->grid.world : r->comm;
    dapt_status st = wf ? r->obj->ops->save(r->obj->state, &r->ctx, wf) : r->obj->ops->load(r->obj->state, &r->ctx, rf);
    r->ctx.ckpt_layout = NULL;
    return st;
}

static dapt_status obj_save(void *ctx, dapt_h5file *f) { return obj_state(ctx, f, NULL); }
static dapt_status obj_load(void *ctx, const dapt_h5file *f) { return obj_state(ctx, NULL, f); }

/* Tensor parallelism: every rank writes (and on resume reads) only its own
 * hyperslabs of the global-shape datasets, so the file is the same as a
 * T = 1 run's and resumes on any layout, without gathering anything. */
static dapt_ckpt_layout tp_ckpt_layout(const train_run *r)
{
    return (dapt_ckpt_layout){&r->tpl.global, &r->model.table, r->tpl.shards, r->grid.tensor_rank,
                              r->grid.tensor_size, r->grid.data_rank, r->grid.data_size, NULL};
}

/* The layout of the model and its moments: tensor-parallel shards, or a
 * whole model whose moments are this rank's rows (ZeRO-1). */
static dapt_ckpt_layout optim_ckpt_layout(const train_run *r)
{
    if (r->have_tpl) return tp_ckpt_layout(r);
    dapt_ckpt_layout lay = dapt_ckpt_layout_whole(r->comm, &r->model.table);
    lay.optim_rows = dapt_zero_rows(r->zero);
    return lay;
}

static dapt_status save_checkpoint(train_run *r)
{
    dapt_ckpt_state cs = {r->step, r->position, r->adam.step, r->bad_run, (uint64_t)r->cfg->run.seed};
    const dapt_objective_ops *ops = r->obj->ops;
    double t0 = dapt_now();
    if (r->have_tpl || r->zero) {
        const dapt_ckpt_layout lay = optim_ckpt_layout(r);
        DAPT_CHECK(dapt_checkpoint_save_layout(r->have_tpl ? r->grid.world : r->comm, r->ckpt_dir, r->cfg, &r->model.config, &lay,
                                               r->model.params, r->exp_avg, r->exp_avg_sq, &r->meta, &cs,
                                               r->cfg->checkpoint.keep, ops->save ? obj_save : NULL, r));
    } else {
        DAPT_CHECK(dapt_checkpoint_save(r->comm, r->ckpt_dir, r->cfg, &r->model, &r->meta, r->exp_avg, r->exp_avg_sq,
                                        &cs, r->cfg->checkpoint.keep, ops->save ? obj_save : NULL, r));
    }
    r->last_ckpt_step = r->step;
    double bytes = 3.0 * (double)(r->have_tpl ? r->tpl.global.total : r->model.table.total) * sizeof(float);
    double dt = dapt_now() - t0;
    dapt_info("checkpoint step %lld written in %.2f s (%.1f MB/s); largest checkpoint buffer %zu bytes",
              (long long)r->step, dt, dt > 0 ? bytes / dt / 1e6 : 0.0, dapt_checkpoint_peak_alloc());
    return DAPT_OK;
}

static dapt_status train_schedule(const dapt_config *cfg, void *ctx, dapt_lr_schedule *out)
{
    (void)ctx;
    return dapt_lr_schedule_from_config(cfg, out);
}

/* A checkpoint at or past train.steps: nothing to train; the result says
 * where the run stands from what its metrics.csv logged. */
static dapt_status resumed_complete(train_run *r, dapt_train_result *res)
{
    int64_t at = -1, eval_at = -1;
    double loss = NAN, eval = NAN;
    DAPT_CHECK(dapt_resume_logged(r->grid.world, r->mlog.csv, "loss", r->step, &loss, &at));
    DAPT_CHECK(dapt_resume_logged(r->grid.world, r->mlog.csv, "eval_loss", r->step, &eval, &eval_at));
    res->complete = 1;
    res->steps_total = r->cfg->train.steps;
    res->last_loss = loss;
    res->last_loss_step = at;
    res->last_eval_loss = eval;
    return DAPT_OK;
}

static dapt_status resume(train_run *r, const dapt_train_opts *opts, dapt_train_result *res)
{
    char path[2 * DAPT_CONFIG_STR_MAX];
    dapt_ckpt_state cs;
    long long have = 0;
    if (r->rank == 0) {
        int64_t *steps = NULL;
        size_t n = 0;
        dapt_status st = dapt_checkpoint_list(r->ckpt_dir, &steps, &n);
        free(steps);
        have = st == DAPT_OK ? (long long)n : -1;
    }
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&have, 1, MPI_LONG_LONG, 0, r->comm)));
    if (have < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list checkpoints", r->ckpt_dir);
    if (have == 0) {
        dapt_info("--resume: no checkpoint in %s, starting from step 0", r->ckpt_dir);
        return DAPT_OK;
    }
    const dapt_objective_ops *ops = r->obj->ops;
    const double t0 = dapt_now();
    if (r->have_tpl || r->zero) {
        const dapt_ckpt_layout lay = optim_ckpt_layout(r);
        DAPT_CHECK(dapt_checkpoint_resume_layout(r->have_tpl ? r->grid.world : r->comm, r->ckpt_dir, &lay, r->model.params, r->exp_avg,
                                                 r->exp_avg_sq, &cs, ops->load ? obj_load : NULL, r, path, sizeof path));
    } else {
        DAPT_CHECK(dapt_checkpoint_resume(r->comm, r->ckpt_dir, &r->model, r->exp_avg, r->exp_avg_sq, &cs,
                                          ops->load ? obj_load : NULL, r, path, sizeof path));
    }
    /* As the write's line: the checkpoint's bytes (model and both moments)
     * over the time of the whole load, checks included. */
    const double dt = dapt_now() - t0;
    const double bytes = 3.0 * (double)(r->have_tpl ? r->tpl.global.total : r->model.table.total) * sizeof(float);
    dapt_info("resumed from %s: step %lld, %lld sequences consumed; read in %.2f s (%.1f MB/s)", path,
              (long long)cs.step, (long long)cs.samples, dt, dt > 0 ? bytes / dt / 1e6 : 0.0);
    /* The checkpoint's own configuration (run.seed included) against this
     * one: every rank reaches the same verdict, so a refusal ends the run
     * cleanly. */
    const dapt_resume_spec spec = {DAPT_RESUME_TRAIN, opts->override_resume_check, cs.step, train_schedule, NULL};
    const dapt_status st = dapt_resume_check(r->grid.world, path, r->cfg, &spec);
    res->agreed = st != DAPT_OK;
    DAPT_CHECK(st);
    r->step = r->last_ckpt_step = cs.step;
    r->position = cs.samples;
    r->adam.step = cs.adam_step;
    r->bad_run = cs.bad_run;
    return cs.step >= r->cfg->train.steps ? resumed_complete(r, res) : DAPT_OK;
}

dapt_status train_resume_finished(train_run *r, const char *model_path, const dapt_train_opts *opts,
                                  dapt_train_result *res)
{
    /* The domain's model file carries the configuration it was trained with. */
    const dapt_resume_spec spec = {DAPT_RESUME_TRAIN, opts->override_resume_check, r->cfg->train.steps, NULL, NULL};
    DAPT_CHECK(dapt_resume_check(r->grid.world, model_path, r->cfg, &spec));
    r->step = r->cfg->train.steps;
    int64_t at = -1;
    DAPT_CHECK(dapt_resume_logged(r->grid.world, r->mlog.csv, "step", INT64_MAX, &(double){0}, &at));
    if (at >= 0) r->step = at;
    res->steps_done = r->step;
    return resumed_complete(r, res);
}

/* ---- the loop ---------------------------------------------------------------- */

/* Resume, metrics.csv, and the step-0 evaluation. */
static dapt_status start(train_run *r, const dapt_train_opts *opts, dapt_train_result *res)
{
    if (opts->resume) DAPT_CHECK(resume(r, opts, res));
    /* Rows after the checkpoint are recomputed; at step 0 even row 0 is. */
    DAPT_CHECK(train_agree(r, train_leader(r) && opts->resume ? train_truncate_metrics(r, r->step ? r->step : -1)
                                                              : DAPT_OK));
    DAPT_CHECK(train_agree(r, train_open_metrics(r)));
    const int64_t eval_every = r->cfg->train.eval_every;
    if (eval_every > 0 && dapt_sequences_count(r->seqs, DAPT_SPLIT_EVAL) == 0) {
        dapt_warn("no held-out sequences (data.eval_fraction = %g): evaluation is skipped", r->cfg->data.eval_fraction);
    } else if (r->step == 0 && eval_every > 0) {
        double el;
        DAPT_CHECK(train_evaluate(r, &el));
        DAPT_CHECK(train_agree(r, train_leader(r) ? train_metrics_row(r, 0, NULL, el) : DAPT_OK));
        res->last_eval_loss = el;
        dapt_info("step 0: held-out loss %.4f perplexity %.2f", el, exp(el));
    }
    return DAPT_OK;
}

/* The ranks agree whether a stop signal arrived; if so, checkpoint. */
static dapt_status check_preempted(train_run *r, dapt_train_result *res)
{
    int any = 0;
    DAPT_CHECK(dapt_preempt_agree(r->grid.world, &any));
    if (!any) return DAPT_OK;
    dapt_info("stop signal received: checkpointing at step %lld", (long long)r->step);
    if (r->last_ckpt_step != r->step) DAPT_CHECK(save_checkpoint(r));
    res->steps_done = r->step;
    res->agreed = 1;
    return DAPT_ERROR(DAPT_ERR_INTERRUPTED, "preempted at step %lld: checkpoint written to %s, resume with --resume",
                      (long long)r->step, r->ckpt_dir);
}

/* NaN/Inf bookkeeping: too many skipped steps in a row end the run. */
static dapt_status count_bad(train_run *r, const train_step_result *sr, dapt_train_result *res)
{
    const int64_t limit = r->cfg->train.max_bad_steps;
    if (!sr->bad) {
        r->bad_run = 0;
        return DAPT_OK;
    }
    r->bad_run++;
    res->bad_steps++;
    dapt_warn("step %lld: non-finite loss or gradient (first on rank %d): update skipped (%lld in a row, limit %lld)",
              (long long)r->step, sr->bad_rank, (long long)r->bad_run, (long long)limit);
    if (r->bad_run < limit) return DAPT_OK;
    res->steps_done = r->step;
    res->agreed = 1;
    return DAPT_ERROR(DAPT_ERR_NUMERIC, "step %lld: loss or gradients not finite (first on rank %d) for %lld steps in a row (train.max_bad_steps = %lld)",
                      (long long)r->step, sr->bad_rank, (long long)r->bad_run, (long long)limit);
}

static void progress_line(train_run *r, dapt_progress *prog, int64_t start, const train_step_result *sr, double el)
{
    char extra[256];
    int n = snprintf(extra, sizeof extra, "step %lld loss %.4f lr %.3g grad-norm %.3f tokens/s %.0f", (long long)r->step,
                     sr->loss, sr->lr, sr->grad_norm, sr->tokens_per_s);
    /* n is the would-be length: a huge finite loss or norm printed with %f may fill extra. */
    if (!isnan(el) && n >= 0 && (size_t)n < sizeof extra)
        snprintf(extra + n, sizeof extra - (size_t)n, " held-out %.4f ppl %.2f", el, exp(el));
    prog->interval = 0.0;
    dapt_progress_update(prog, r->step - start, extra);
}

dapt_status train_loop(train_run *r, const dapt_train_opts *opts, dapt_train_result *res)
{
    const dapt_config *cfg = r->cfg;
    const int64_t steps = cfg->train.steps;
    dapt_info("train: %s on %s, %d data rank%s, global batch %lld x %lld tokens (%lld per rank, %lld micro-batches), %lld train / %lld held-out sequences, %zu parameters",
              r->obj->ops->name, cfg->data.corpus, r->size, r->size == 1 ? "" : "s", (long long)r->B, (long long)r->L,
              (long long)r->local_count, (long long)r->accum, (long long)dapt_sequences_count(r->seqs, DAPT_SPLIT_TRAIN),
              (long long)dapt_sequences_count(r->seqs, DAPT_SPLIT_EVAL), r->model.table.total);
    DAPT_CHECK(start(r, opts, res));
    const int64_t eval_every = cfg->train.eval_every;
    dapt_progress prog;
    char label[64];
    snprintf(label, sizeof label, r->step ? "train (resumed at %lld)" : "train", (long long)r->step);
    dapt_progress_start(&prog, label, "steps", steps - r->step, 0.0);
    const int64_t first = r->step;
    while (r->step < steps) {
        dapt_heartbeat("a training step");
        DAPT_CHECK(check_preempted(r, res));
        train_step_result sr;
        DAPT_CHECK(train_step(r, &sr));
        res->last_loss = sr.loss;
        DAPT_CHECK(count_bad(r, &sr, res));
        double el = NAN;
        const int last = r->step == steps;
        if (eval_every > 0 && (r->step % eval_every == 0 || last)) {
            DAPT_CHECK(train_evaluate(r, &el));
            res->last_eval_loss = el;
        }
        DAPT_CHECK(train_agree(r, train_leader(r) ? train_metrics_row(r, r->step, &sr, el) : DAPT_OK));
        if (r->step % cfg->train.log_every == 0 || last || !isnan(el)) progress_line(r, &prog, first, &sr, el);
        if ((cfg->checkpoint.every > 0 && r->step % cfg->checkpoint.every == 0) || last) DAPT_CHECK(save_checkpoint(r));
    }
    r->ctx.step = r->step;
    res->steps_done = r->step;
    return DAPT_OK;
}
