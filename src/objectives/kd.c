/* Knowledge distillation baseline: MLM + kd.lambda * token-axis KL from the
 * model the domain started from (frozen, dropout off, the same masked
 * input) to the student:
 *   loss = L_MLM + lambda * T^2 / N * sum KL(p_teacher || p_student),
 * with dapt_token_kl_loss's softmax over the token axis and N the global
 * batch.  The teacher is this domain's starting model: the previous
 * domain's (the base model at domain 0). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"
#include "objectives.h"

typedef struct kd_state {
    dapt_model teacher;
    int have_teacher;
    dapt_workspace *ws_teacher; /* forward-only */
    float *dh;
    double term[2]; /* this rank's shares of the step's MLM and KL terms */
} kd_state;

static dapt_status kd_create(void **state, const dapt_config *cfg)
{
    (void)cfg;
    return dapt_calloc(state, 1, sizeof(kd_state), "kd state");
}

static void kd_release(void *state)
{
    kd_state *s = state;
    dapt_workspace_free(s->ws_teacher);
    s->ws_teacher = NULL;
    free(s->dh);
    s->dh = NULL;
    if (s->have_teacher) dapt_model_free(&s->teacher);
    s->have_teacher = 0;
}

static void kd_destroy(void *state)
{
    kd_release(state);
    free(state);
}

static dapt_status kd_begin_domain(void *state, dapt_objective_ctx *ctx)
{
    kd_state *s = state;
    kd_release(s);
    DAPT_CHECK(dapt_model_create(&ctx->model->config, &s->teacher));
    s->have_teacher = 1;
    memcpy(s->teacher.params, ctx->model->params, sizeof(float) * ctx->model->table.total);
    const int64_t L = ctx->seq_len, H = ctx->model->config.hidden;
    dapt_workspace_spec spec = {ctx->micro_max, L, 1, 0, 0};
    DAPT_CHECK(dapt_workspace_create(&s->teacher, &spec, &s->ws_teacher));
    return dapt_alloc((void **)&s->dh, sizeof(float) * (size_t)(ctx->micro_max * L * H), "kd gradient");
}

static dapt_status kd_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    kd_state *s = state;
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.mlm_denominator = ctx->denominators[0];
    DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &mb->batch, NULL, &opts));
    const double mlm = dapt_ws_mlm_loss(mb->ws, NULL);
    *loss += mlm;
    s->term[0] += mlm;
    dapt_batch tb = mb->batch;
    tb.mlm_labels = NULL;
    dapt_run_opts topts = {0};
    DAPT_CHECK(dapt_model_forward(&s->teacher, s->ws_teacher, &tb, NULL, &topts));
    const dapt_config *cfg = ctx->cfg;
    const int64_t n = mb->batch.batch, L = mb->batch.seq_len, H = ctx->model->config.hidden;
    double kl = 0;
    DAPT_CHECK(dapt_token_kl_loss(dapt_ws_last_hidden(mb->ws), dapt_ws_last_hidden(s->ws_teacher),
                                  mb->batch.attention_mask, n, L, H, cfg->kd.temperature, &kl, s->dh));
    /* dapt_token_kl_loss averages over its n rows; the step averages over the global batch. */
    const double share = cfg->kd.lambda * (double)n / (double)ctx->global_rows;
    for (int64_t i = 0; i < n * L * H; i++) s->dh[i] *= (float)share;
    *loss += share * kl;
    s->term[1] += share * kl;
    if (!isfinite(kl)) return DAPT_ERROR(DAPT_ERR_NUMERIC, "kd: KL to the teacher is not finite");
    return dapt_model_backward(ctx->model, mb->ws, 1.0, s->dh, NULL);
}

static dapt_status kd_metrics(void *state, const dapt_objective_ctx *ctx, double *local_values)
{
    (void)ctx;
    kd_state *s = state;
    local_values[0] = s->term[0];
    local_values[1] = s->term[1];
    s->term[0] = s->term[1] = 0.0;
    return DAPT_OK;
}

static const char *const kd_columns[] = {"mlm_loss", "kd_loss", NULL};

const dapt_objective_ops dapt_objective_kd = {
    .name = "kd",
    .flags = DAPT_OBJ_TRAIN,
    .n_denominators = 1,
    .columns = kd_columns,
    .create = kd_create,
    .destroy = kd_destroy,
    .begin_domain = kd_begin_domain,
    .release = kd_release,
    .prepare = dapt_objective_mlm_prepare,
    .micro_step = kd_micro_step,
    .metrics = kd_metrics,
};
