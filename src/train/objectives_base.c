/* Continual-learning baselines: kd (MLM + KL to the previous model) and ewc
 * (MLM + Fisher-diagonal penalty).  `mlm` and `one` are in loop.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"
#include "dapt/train.h"
#include "dapt/optim.h"

/* ---- kd --------------------------------------------------------------------- */

typedef struct kd_state {
    dapt_workspace *ws_teacher; /* forward-only */
    float *dh;
} kd_state;

static void kd_destroy(void *state)
{
    kd_state *s = state;
    if (!s) return;
    dapt_workspace_free(s->ws_teacher);
    free(s->dh);
    free(s);
}

static dapt_status kd_init(void **state, dapt_train_ctx *ctx)
{
    kd_state *s = NULL;
    DAPT_CHECK(dapt_calloc((void **)&s, 1, sizeof *s, "kd state"));
    *state = s;
    if (!ctx->domain || !ctx->domain->teacher) return DAPT_OK;
    const int64_t L = ctx->cfg->data.seq_len, H = ctx->model->config.hidden;
    dapt_workspace_spec spec = {ctx->micro_max, L, 1, 0, 0};
    DAPT_CHECK(dapt_workspace_create(ctx->domain->teacher, &spec, &s->ws_teacher));
    DAPT_CHECK(dapt_alloc((void **)&s->dh, sizeof(float) * (size_t)(ctx->micro_max * L * H), "kd gradient"));
    return DAPT_OK;
}

/* The student's MLM pass and the teacher (dropout off, the same masked
 * input): loss = MLM + lambda * T^2 / N * sum KL(p_teacher || p_student)
 * with the token-axis softmax of dapt_token_kl_loss, N = global batch. */
static dapt_status kd_micro_step(void *state, dapt_train_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    kd_state *s = state;
    dapt_run_opts opts = {0};
    opts.train = 1;
    opts.seed = ctx->seed;
    opts.step = (uint64_t)ctx->step;
    opts.mlm_denominator = ctx->mlm_denominator;
    DAPT_CHECK(dapt_model_forward(ctx->model, ctx->ws, &mb->batch, NULL, &opts));
    *loss += dapt_ws_mlm_loss(ctx->ws, NULL);
    if (!s->ws_teacher) return dapt_model_backward(ctx->model, ctx->ws, 1.0, NULL, NULL);
    dapt_batch tb = mb->batch;
    tb.mlm_labels = NULL;
    dapt_run_opts topts = {0};
    DAPT_CHECK(dapt_model_forward(ctx->domain->teacher, s->ws_teacher, &tb, NULL, &topts));
    const dapt_config *cfg = ctx->cfg;
    const int64_t n = mb->batch.batch, L = mb->batch.seq_len, H = ctx->model->config.hidden;
    double kl = 0;
    DAPT_CHECK(dapt_token_kl_loss(dapt_ws_last_hidden(ctx->ws), dapt_ws_last_hidden(s->ws_teacher),
                                  mb->batch.attention_mask, n, L, H, cfg->das.proxy_temperature, &kl, s->dh));
    /* dapt_token_kl_loss averages over its n rows; the step averages over the global batch. */
    const double share = cfg->das.kd_lambda * (double)n / (double)ctx->global_rows;
    for (int64_t i = 0; i < n * L * H; i++) s->dh[i] *= (float)share;
    *loss += share * kl;
    if (!isfinite(kl)) return DAPT_ERROR(DAPT_ERR_NUMERIC, "kd: KL to the teacher is not finite");
    return dapt_model_backward(ctx->model, ctx->ws, 1.0, s->dh, NULL);
}

const dapt_objective_ops dapt_objective_kd = {
    .name = "kd",
    .init = kd_init,
    .micro_step = kd_micro_step,
    .destroy = kd_destroy,
};

/* ---- ewc -------------------------------------------------------------------- */

/* The data term is plain MLM; the penalty is added in transform_grads. */
static dapt_status ewc_micro_step(void *state, dapt_train_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    return dapt_objective_mlm.micro_step(state, ctx, mb, loss);
}

/* lambda / 2 * sum F (theta - anchor)^2, the same on every rank (every rank
 * holds the whole model), so each adds its 1/size share to the step loss. */
static dapt_status ewc_step_end(void *state, dapt_train_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                double *loss)
{
    (void)state;
    (void)mbs;
    (void)count;
    const dapt_domain_state *d = ctx->domain;
    if (!d || !d->fisher) return DAPT_OK;
    const float *p = ctx->model->params;
    double pen = 0;
    for (size_t i = 0; i < ctx->model->table.total; i++) {
        double diff = (double)p[i] - d->anchor[i];
        pen += d->fisher[i] * diff * diff;
    }
    *loss += 0.5 * ctx->cfg->das.ewc_lambda * pen / (double)ctx->data_size;
    return DAPT_OK;
}

/* Added after the all-reduce (the summed gradient is on every rank). */
static dapt_status ewc_transform(void *state, dapt_train_ctx *ctx)
{
    (void)state;
    const dapt_domain_state *d = ctx->domain;
    if (!d || !d->fisher) return DAPT_OK;
    const float lambda = (float)ctx->cfg->das.ewc_lambda;
    float *g = ctx->model->grads;
    const float *p = ctx->model->params;
    for (size_t i = 0; i < ctx->model->table.total; i++) g[i] += lambda * d->fisher[i] * (p[i] - d->anchor[i]);
    return DAPT_OK;
}

const dapt_objective_ops dapt_objective_ewc = {
    .name = "ewc",
    .micro_step = ewc_micro_step,
    .step_end = ewc_step_end,
    .transform_grads = ewc_transform,
};
