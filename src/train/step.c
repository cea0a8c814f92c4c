/* One optimizer step of dapt train (the order is documented in dapt/train.h)
 * and the held-out loss. */
#include <math.h>
#include <string.h>

#include "dapt/log.h"
#include "train_internal.h"

/* Reads this rank's block of global samples [first, first + n) and lets the
 * objective corrupt it; local[0] = non-padding tokens after corruption (an
 * objective may shorten rows), local[1..] = the objective's denominators. */
static dapt_status load_block(train_run *r, int64_t first, int64_t n, double *local)
{
    for (int64_t i = 0; i < n; i++) r->seq_idx[i] = dapt_order_at(&r->order, (uint64_t)(first + i), NULL);
    DAPT_CHECK(dapt_sequences_read(r->seqs, DAPT_SPLIT_TRAIN, r->seq_idx, n, r->clean, r->att));
    const int64_t cells = n * r->L;
    memcpy(r->ids, r->clean, (size_t)cells * sizeof *r->ids);
    for (int64_t j = 0; j < cells; j++) r->labels[j] = DAPT_IGNORE_LABEL;
    dapt_rows blk = {n, r->L, (uint64_t)first, (uint64_t)r->step, r->clean, r->att, r->ids, r->labels};
    DAPT_CHECK(dapt_objective_prepare(r->obj, &r->ctx, &blk, local + 1));
    int64_t tokens = 0;
    for (int64_t j = 0; j < cells; j++) tokens += r->att[j] != 0;
    local[0] = (double)tokens;
    return DAPT_OK;
}

static int injected_nan(const train_run *r)
{
    const dapt_config *cfg = r->cfg;
    const int64_t numbered = r->step + 1; /* steps are numbered from 1 in logs and metrics */
    return cfg->train.inject_nan_step > 0 && r->rank == cfg->train.inject_nan_rank &&
           numbered >= cfg->train.inject_nan_step && numbered < cfg->train.inject_nan_step + cfg->train.inject_nan_steps;
}

/* A numerical failure of a hook skips the step; anything else ends it. */
static dapt_status numeric_skip(train_run *r, dapt_status st, int *bad)
{
    if (st != DAPT_ERR_NUMERIC) return st;
    dapt_debug("step %lld: %s", (long long)r->step, dapt_error_message());
    dapt_error_clear();
    *bad = 1;
    return DAPT_OK;
}

/* Forward/backward of this rank's micro-batches, then the objective's
 * step_end (collective: every rank calls it, a rank with a bad micro-step
 * too). */
static dapt_status micro_steps(train_run *r, double *loss, int *bad)
{
    int64_t nmb = 0, last = -1;
    for (int64_t k = 0; k < r->accum; k++) {
        int64_t mb, mc;
        dapt_share(r->local_count, (int)k, (int)r->accum, &mb, &mc);
        if (mc > 0) last = k;
    }
    /* The all-reduce may start inside the last backward when the objective
     * runs exactly one per micro-batch. */
    const int overlap = r->size > 1 && r->cfg->parallel.overlap_grads &&
                        (r->obj->ops->flags & DAPT_OBJ_ONE_BACKWARD);
    for (int64_t k = 0; k < r->accum && !*bad; k++) {
        int64_t mb, mc;
        dapt_share(r->local_count, (int)k, (int)r->accum, &mb, &mc);
        if (mc == 0) continue;
        dapt_micro_batch m;
        memset(&m, 0, sizeof m);
        m.batch.batch = mc;
        m.batch.seq_len = r->L;
        m.batch.input_ids = r->ids + mb * r->L;
        m.batch.attention_mask = r->att + mb * r->L;
        m.batch.mlm_labels = r->labels + mb * r->L;
        m.batch.first_sample = (uint64_t)(r->position + r->local_begin + mb);
        m.clean_ids = r->clean + mb * r->L;
        m.ws = r->ws;
        r->mbs[nmb++] = m;
        if (overlap && k == last) r->model.grad_hook = dapt_grad_sync_hook(r->sync);
        const dapt_status st = dapt_objective_micro_step(r->obj, &r->ctx, &m, loss);
        r->model.grad_hook = NULL;
        DAPT_CHECK(numeric_skip(r, st, bad));
    }
    return numeric_skip(r, dapt_objective_step_end(r->obj, &r->ctx, r->mbs, nmb, loss), bad);
}

/* Clipping and the update (skipped when any rank saw a non-finite value). */
static dapt_status update(train_run *r, int first_bad, double gloss, train_step_result *out)
{
    if (first_bad == r->size) DAPT_CHECK(dapt_objective_transform_grads(r->obj, &r->ctx));
    /* Every rank holds the summed gradient, so the local sum of squares is
     * the global one; with tensor parallelism sharded tensors are summed over
     * the tensor group and replicated ones counted once. */
    double norm = NAN;
    float factor = 1.0f;
    if (first_bad == r->size) {
        double sumsq = 0.0;
        if (r->zero) /* each rank holds the sum of its own rows only */
            DAPT_CHECK(dapt_zero_sumsq(r->zero, r->model.grads, &sumsq));
        else if (r->have_tpl)
            DAPT_CHECK(dapt_tp_sumsq(&r->tpl, &r->model.table, r->model.grads, &sumsq));
        else
            sumsq = dapt_grad_sumsq(&r->model.table, 0, r->model.table.total, r->model.grads);
        factor = dapt_grad_clip_factor(sumsq, r->cfg->train.max_grad_norm, &norm);
    }
    out->bad = first_bad < r->size || !isfinite(norm) || !isfinite(gloss);
    out->bad_rank = first_bad < r->size ? first_bad : -1;
    if (!out->bad && r->zero) {
        if (factor != 1.0f) dapt_zero_scale(r->zero, r->model.grads, factor);
        dapt_adamw_advance(&r->adam);
        DAPT_CHECK(dapt_zero_update(r->zero, &r->adam, r->ctx.lr, r->model.params, r->model.grads, r->exp_avg,
                                    r->exp_avg_sq, r->ctx.update_scale, r->ctx.decay_scale));
        DAPT_CHECK(dapt_zero_gather(r->zero, r->model.params));
        DAPT_CHECK(dapt_objective_after_update(r->obj, &r->ctx));
    } else if (!out->bad) {
        if (factor != 1.0f) dapt_grad_scale(&r->model.table, 0, r->model.table.total, r->model.grads, factor);
        dapt_adamw_advance(&r->adam);
        DAPT_CHECK(dapt_adamw_update_scaled(&r->adam, r->ctx.lr, &r->model.table, 0, r->model.table.total,
                                            r->model.params, r->model.grads, r->exp_avg, r->exp_avg_sq,
                                            r->ctx.update_scale, r->ctx.decay_scale));
        DAPT_CHECK(dapt_objective_after_update(r->obj, &r->ctx));
    }
    out->loss = out->bad && !isfinite(gloss) ? NAN : gloss;
    if (first_bad < r->size) out->loss = NAN;
    out->grad_norm = norm;
    return DAPT_OK;
}

dapt_status train_step(train_run *r, train_step_result *out)
{
    const double t0 = dapt_now();
    memset(out, 0, sizeof *out);
    r->ctx.step = r->step;
    r->ctx.lr = dapt_lr_at(&r->sched, r->step);
    const size_t nden = r->obj->ops->n_denominators;
    double local[1 + DAPT_OBJ_MAX_DENOMINATORS] = {0}, global[1 + DAPT_OBJ_MAX_DENOMINATORS];
    DAPT_CHECK(load_block(r, r->position + r->local_begin, r->local_count, local));
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(local, global, (int)(1 + nden), MPI_DOUBLE, MPI_SUM, r->comm)));
    r->ctx.token_denominator = global[0];
    for (size_t i = 0; i < nden; i++) r->ctx.denominators[i] = global[1 + i];

    if (!r->sync && r->zero)
        DAPT_CHECK(dapt_grad_sync_create_sharded(&r->model, r->cfg->parallel.bucket_mb, r->zero, r->comm, &r->sync));
    if (!r->sync) DAPT_CHECK(dapt_grad_sync_create(&r->model, r->cfg->parallel.bucket_mb, r->comm, &r->sync));
    dapt_model_zero_grads(&r->model);
    dapt_grad_sync_begin(r->sync, r->model.grads);
    /* Before the backward passes, which add to it: a bucket may be sent
     * during the last one. */
    if (injected_nan(r)) r->model.grads[0] = NAN;
    double loss = 0.0;
    int bad = 0, nonfinite = 0;
    DAPT_CHECK(micro_steps(r, &loss, &bad));
    /* The sum; each rank checks its own gradient before sending it. */
    DAPT_CHECK(dapt_grad_sync_end(r->sync, &nonfinite));
    if (nonfinite) bad = 1;
    double gloss = 0.0;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&loss, &gloss, 1, MPI_DOUBLE, MPI_SUM, r->comm)));
    int mine = bad ? r->rank : r->size, first_bad = r->size;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&mine, &first_bad, 1, MPI_INT, MPI_MIN, r->comm)));
    if (r->have_tpl) /* a skip on one tensor rank is a skip on all */
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, r->grid.tensor)));
    DAPT_CHECK(update(r, first_bad, gloss, out));

    const size_t nc = dapt_objective_columns(r->obj);
    if (nc > 0) {
        double mine_cols[DAPT_OBJ_MAX_COLUMNS] = {0};
        DAPT_CHECK(dapt_objective_metrics(r->obj, &r->ctx, mine_cols));
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(mine_cols, out->extra, (int)nc, MPI_DOUBLE, MPI_SUM, r->comm)));
    }
    out->lr = r->ctx.lr;
    double dt = dapt_now() - t0;
    out->tokens_per_s = dt > 0 ? global[0] / dt : 0.0;
    r->position += r->B;
    r->step++;
    return DAPT_OK;
}

dapt_status train_evaluate(train_run *r, double *eval_loss)
{
    int64_t want = r->cfg->train.eval_batches * r->B, masked = 0;
    return dapt_heldout_mlm_loss(r->comm, &r->model, r->ws, r->seqs, &r->mlm, r->ctx.seed, want, r->micro_max,
                                 eval_loss, &masked);
}
