/* Calling an objective's hooks (dapt/objective.h): a NULL hook is "nothing
 * to do", so loops and delegating objectives call every hook the same way. */
#include <string.h>

#include "dapt/objective.h"

double dapt_objective_label_fraction(const dapt_objective_ops *ops, const dapt_config *cfg)
{
    return ops && ops->label_fraction ? ops->label_fraction(cfg) : cfg->train.mlm_probability;
}

dapt_status dapt_objective_create(const dapt_objective_ops *ops, const dapt_config *cfg, dapt_objective *obj)
{
    obj->ops = ops;
    obj->state = NULL;
    return ops->create ? ops->create(&obj->state, cfg) : DAPT_OK;
}

void dapt_objective_destroy(dapt_objective *obj)
{
    if (obj->ops && obj->ops->destroy && obj->state) obj->ops->destroy(obj->state);
    obj->state = NULL;
}

size_t dapt_objective_columns(const dapt_objective *obj)
{
    size_t n = 0;
    while (obj->ops->columns && obj->ops->columns[n]) n++;
    return n;
}

dapt_status dapt_objective_prepare(dapt_objective *o, const dapt_objective_ctx *ctx, dapt_rows *blk,
                                   double *local_denominators)
{
    return o->ops->prepare ? o->ops->prepare(o->state, ctx, blk, local_denominators) : DAPT_OK;
}

dapt_status dapt_objective_micro_step(dapt_objective *o, dapt_objective_ctx *ctx, const dapt_micro_batch *mb,
                                      double *loss)
{
    return o->ops->micro_step(o->state, ctx, mb, loss);
}

dapt_status dapt_objective_step_end(dapt_objective *o, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs,
                                    int64_t count, double *loss)
{
    return o->ops->step_end ? o->ops->step_end(o->state, ctx, mbs, count, loss) : DAPT_OK;
}

dapt_status dapt_objective_transform_grads(dapt_objective *o, dapt_objective_ctx *ctx)
{
    return o->ops->transform_grads ? o->ops->transform_grads(o->state, ctx) : DAPT_OK;
}

dapt_status dapt_objective_after_update(dapt_objective *o, dapt_objective_ctx *ctx)
{
    return o->ops->after_update ? o->ops->after_update(o->state, ctx) : DAPT_OK;
}

dapt_status dapt_objective_metrics(dapt_objective *o, const dapt_objective_ctx *ctx, double *local_values)
{
    return o->ops->metrics ? o->ops->metrics(o->state, ctx, local_values) : DAPT_OK;
}

dapt_status dapt_objective_eval_loss(dapt_objective *o, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs,
                                     int64_t count, double *loss)
{
    if (!o->ops->eval_loss)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "objective %s has no held-out loss (eval_loss)", o->ops->name);
    return o->ops->eval_loss(o->state, ctx, mbs, count, loss);
}

dapt_status dapt_objective_begin_domain(dapt_objective *o, dapt_objective_ctx *ctx)
{
    return o->ops->begin_domain ? o->ops->begin_domain(o->state, ctx) : DAPT_OK;
}

dapt_status dapt_objective_resume_domain(dapt_objective *o, dapt_objective_ctx *ctx)
{
    return o->ops->resume_domain ? o->ops->resume_domain(o->state, ctx) : DAPT_OK;
}

dapt_status dapt_objective_end_domain(dapt_objective *o, dapt_objective_ctx *ctx)
{
    return o->ops->end_domain ? o->ops->end_domain(o->state, ctx) : DAPT_OK;
}

void dapt_objective_release(dapt_objective *o)
{
    if (o->ops && o->ops->release && o->state) o->ops->release(o->state);
}

dapt_run_opts dapt_objective_train_opts(const dapt_objective_ctx *ctx)
{
    dapt_run_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.train = 1;
    opts.seed = ctx->seed;
    opts.step = (uint64_t)ctx->step;
    return opts;
}

dapt_run_opts dapt_objective_eval_opts(const dapt_objective_ctx *ctx)
{
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.train = 0;
    return opts;
}

dapt_status dapt_objective_mlm_term(dapt_objective_ctx *ctx, const dapt_micro_batch *mb, const dapt_unit_masks *masks,
                                    double *loss)
{
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.mlm_denominator = ctx->denominators[0];
    DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &mb->batch, masks, &opts));
    *loss += dapt_ws_mlm_loss(mb->ws, NULL);
    return dapt_model_backward(ctx->model, mb->ws, 1.0, NULL, NULL);
}

dapt_status dapt_objective_save_params(const dapt_objective_ctx *ctx, dapt_h5file *f, const char *group,
                                       const float *buf)
{
    if (!ctx->ckpt_layout) return DAPT_ERROR(DAPT_ERR_INTERNAL, "objective: parameters saved outside a checkpoint");
    return dapt_checkpoint_put_buffer(f, ctx->ckpt_comm, ctx->ckpt_layout, group, buf);
}

dapt_status dapt_objective_load_params(const dapt_objective_ctx *ctx, const dapt_h5file *f, const char *group,
                                       float *buf)
{
    if (!ctx->ckpt_layout) return DAPT_ERROR(DAPT_ERR_INTERNAL, "objective: parameters loaded outside a checkpoint");
    return dapt_checkpoint_get_buffer(f, ctx->ckpt_comm, ctx->ckpt_layout, group, buf);
}
