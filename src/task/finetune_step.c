/* One optimizer step of dapt finetune: this rank's share of the global
 * batch through the objective (micro-batches of finetune.micro_batch), the
 * gradient all-reduce over the data ranks, the objective's transform,
 * clipping, AdamW and the objective's after-update. */
#include <math.h>
#include <string.h>

#include "dapt/log.h"
#include "finetune_internal.h"

/* The rows of global batch k of epoch e, padded to its longest example
 * (every rank sees the whole batch, so the padded length does not depend on
 * the number of ranks); returns the batch size and its padded length. */
static int64_t batch_rows(ft *r, int64_t e, int64_t k, uint64_t *g0, int64_t *L)
{
    const int64_t n = r->train.n, first = k * r->B;
    const int64_t nb = n - first < r->B ? n - first : r->B; /* the last batch of an epoch may be short */
    *g0 = (uint64_t)(e * n + first);                        /* global sample index of the batch's row 0 */
    int64_t longest = 1;
    for (int64_t i = 0; i < nb; i++) {
        r->idx[i] = dapt_order_at(&r->order, *g0 + (uint64_t)i, NULL);
        const int64_t len = task_example_len(&r->train, r->idx[i], r->max_len);
        if (len > longest) longest = len;
    }
    *L = task_padded_len(longest, r->max_len);
    return nb;
}

/* This rank's micro-batches through the objective; *local = its share of
 * the loss (NaN after a numerical failure). */
static dapt_status micro_steps(ft *r, int64_t nb, uint64_t g0, int64_t L, double *local)
{
    int64_t lb, lc;
    dapt_share(nb, r->rank, r->size, &lb, &lc);
    dapt_status st = DAPT_OK;
    /* The all-reduce may start inside the last backward when the objective
     * runs exactly one per micro-batch. */
    const int overlap = r->size > 1 && r->cfg->parallel.overlap_grads && (r->obj.ops->flags & DAPT_OBJ_ONE_BACKWARD);
    for (int64_t off = 0; off < lc && st == DAPT_OK; off += r->micro) {
        const int64_t mb = lc - off < r->micro ? lc - off : r->micro;
        task_fill_batch(&r->train, r->idx + lb + off, mb, L, (int32_t)r->model.config.pad_token_id, r->ids, r->att,
                        r->types, r->labels, r->values);
        dapt_micro_batch m;
        memset(&m, 0, sizeof m);
        DAPT_CHECK(task_ws_get(&r->cache, L, &m.ws));
        m.batch = (dapt_batch){mb, L, r->ids, r->att, r->types, NULL, r->labels, g0 + (uint64_t)(lb + off), NULL};
        task_batch_labels(&m.batch, &r->train, r->labels, r->values);
        m.clean_ids = r->ids;
        if (overlap && off + r->micro >= lc) r->model.grad_hook = dapt_grad_sync_hook(r->sync);
        st = dapt_objective_micro_step(&r->obj, &r->ctx, &m, local);
        r->model.grad_hook = NULL;
    }
    if (st == DAPT_ERR_NUMERIC) {
        dapt_error_clear();
        *local = NAN;
        st = DAPT_OK;
    }
    DAPT_CHECK(st);
    st = dapt_objective_step_end(&r->obj, &r->ctx, NULL, 0, local);
    if (st == DAPT_ERR_NUMERIC) {
        dapt_error_clear();
        *local = NAN;
        st = DAPT_OK;
    }
    return st;
}

/* The global-norm factor: sharded tensors summed over the tensor group,
 * replicated ones counted once. */
static dapt_status clip(ft *r, double *norm)
{
    double sumsq = 0.0;
    if (r->zero) DAPT_CHECK(dapt_zero_sumsq(r->zero, r->model.grads, &sumsq)); /* own rows only */
    else if (r->have_tpl) DAPT_CHECK(dapt_tp_sumsq(&r->tpl, &r->model.table, r->model.grads, &sumsq));
    else sumsq = dapt_grad_sumsq(&r->model.table, 0, r->model.table.total, r->model.grads);
    const float factor = dapt_grad_clip_factor(sumsq, r->cfg->finetune.max_grad_norm, norm);
    if (isfinite(*norm) && factor != 1.0f) {
        if (r->zero) dapt_zero_scale(r->zero, r->model.grads, factor);
        else dapt_grad_scale(&r->model.table, 0, r->model.table.total, r->model.grads, factor);
    }
    return DAPT_OK;
}

dapt_status ft_step(ft *r, int64_t e, int64_t k, double *loss, double *lr)
{
    uint64_t g0;
    int64_t L;
    const int64_t nb = batch_rows(r, e, k, &g0, &L);
    if (!r->sync && r->zero)
        DAPT_CHECK(dapt_grad_sync_create_sharded(&r->model, r->cfg->parallel.bucket_mb, r->zero, r->comm, &r->sync));
    if (!r->sync) DAPT_CHECK(dapt_grad_sync_create(&r->model, r->cfg->parallel.bucket_mb, r->comm, &r->sync));
    dapt_model_zero_grads(&r->model);
    dapt_grad_sync_begin(r->sync, r->model.grads);
    r->ctx.step = r->step;
    r->ctx.lr = dapt_lr_at(&r->sched, r->step);
    r->ctx.global_rows = nb; /* global denominators: the same loss for any layout */
    r->ctx.seq_len = L;
    double local = 0.0;
    DAPT_CHECK(micro_steps(r, nb, g0, L, &local));
    int nonfinite = 0; /* finetune stops on a non-finite sum below, whichever rank caused it */
    DAPT_CHECK(dapt_grad_sync_end(r->sync, &nonfinite));
    double gl = 0.0;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&local, &gl, 1, MPI_DOUBLE, MPI_SUM, r->comm)));
    if (isfinite(gl)) DAPT_CHECK(dapt_objective_transform_grads(&r->obj, &r->ctx));
    double norm = 0.0;
    DAPT_CHECK(clip(r, &norm));
    if (!isfinite(gl) || !isfinite(norm))
        return DAPT_ERROR(DAPT_ERR_NUMERIC, "finetune step %lld (epoch %lld): loss %g, gradient norm %g are not finite (lower finetune.lr?)",
                          (long long)r->step + 1, (long long)e + 1, gl, norm);
    *lr = r->ctx.lr;
    dapt_adamw_advance(&r->adam);
    if (r->zero) {
        DAPT_CHECK(dapt_zero_update(r->zero, &r->adam, *lr, r->model.params, r->model.grads, r->m1, r->m2,
                                    r->ctx.update_scale, r->ctx.decay_scale));
        DAPT_CHECK(dapt_zero_gather(r->zero, r->model.params));
    } else {
        DAPT_CHECK(dapt_adamw_update_scaled(&r->adam, *lr, &r->model.table, 0, r->model.table.total, r->model.params,
                                            r->model.grads, r->m1, r->m2, r->ctx.update_scale, r->ctx.decay_scale));
    }
    DAPT_CHECK(dapt_objective_after_update(&r->obj, &r->ctx));
    const size_t nc = dapt_objective_columns(&r->obj);
    if (nc > 0) {
        double mine[DAPT_OBJ_MAX_COLUMNS] = {0}, sum[DAPT_OBJ_MAX_COLUMNS];
        DAPT_CHECK(dapt_objective_metrics(&r->obj, &r->ctx, mine));
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(mine, sum, (int)nc, MPI_DOUBLE, MPI_SUM, r->comm)));
        for (size_t i = 0; i < nc; i++) r->prog.extra_sum[i] += sum[i];
    }
    *loss = gl;
    r->step++;
    return DAPT_OK;
}
