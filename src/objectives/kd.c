/* Knowledge distillation baseline: MLM + kd.lambda * token-axis KL between
 * the model the domain started from (the teacher, frozen) and the student:
 *   loss = L_MLM(x) + lambda * T^2 / N * sum KL(p_teacher || p_student)
 * with dapt_token_kl_loss's softmax over the token axis and N the global
 * batch.  The teacher is this domain's starting model: the previous
 * domain's (the base model at domain 0).
 *   kd.input = clean (default): both sides of the KL see the unmasked
 *     sequence x~; the student runs an extra forward / backward on x~
 *     (dropout keyed by seed ^ "kdstud"), whose gradient adds to the MLM
 *     pass's (ContinualLM's distill baseline).  masked: the KL is on the
 *     MLM pass's own last hidden state of the masked input x (one student
 *     pass; dapt's first version).
 *   kd.direction = student_teacher: KL(p_student || p_teacher) instead
 *     (ContinualLM's DistillKL call order).
 *   kd.teacher_dropout = 1: the teacher runs with dropout (keyed by seed ^
 *     "kdteach"), as ContinualLM's teacher in training mode; 0 (default):
 *     a deterministic target.
 * masked + teacher_student + no teacher dropout is the first version bit
 * for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"
#include "dapt/rng.h"
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

/* The KL term of one micro-batch on the student's last forward in ws (over
 * kb, labels dropped): the teacher's forward on the same input, the KL, and
 * its gradient with respect to the student's last hidden state in s->dh,
 * scaled to the global batch. */
static dapt_status kd_distill(kd_state *s, dapt_objective_ctx *ctx, const dapt_batch *kb, dapt_workspace *ws,
                              double *loss)
{
    const dapt_config *cfg = ctx->cfg;
    dapt_run_opts topts = {0};
    if (cfg->kd.teacher_dropout) {
        topts = dapt_objective_train_opts(ctx);
        topts.seed = ctx->seed ^ dapt_rng_stream_tag(DAPT_RNG_KD_TEACHER);
    }
    DAPT_CHECK(dapt_model_forward(&s->teacher, s->ws_teacher, kb, NULL, &topts));
    const int64_t n = kb->batch, L = kb->seq_len, H = ctx->model->config.hidden;
    const dapt_kl_direction dir = strcmp(cfg->kd.direction, "student_teacher") ? DAPT_KL_TEACHER_STUDENT
                                                                                : DAPT_KL_STUDENT_TEACHER;
    double kl = 0;
    DAPT_CHECK(dapt_token_kl_loss_ex(dapt_ws_last_hidden(ws), dapt_ws_last_hidden(s->ws_teacher), kb->attention_mask,
                                     n, L, H, cfg->kd.temperature, dir, &kl, s->dh, NULL));
    /* dapt_token_kl_loss averages over its n rows; the step averages over the global batch. */
    const double share = cfg->kd.lambda * (double)n / (double)ctx->global_rows;
    for (int64_t i = 0; i < n * L * H; i++) s->dh[i] *= (float)share;
    *loss += share * kl;
    s->term[1] += share * kl;
    if (!isfinite(kl)) return DAPT_ERROR(DAPT_ERR_NUMERIC, "kd: KL to the teacher is not finite");
    return DAPT_OK;
}

static dapt_status kd_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    kd_state *s = state;
    const int clean = !strcmp(ctx->cfg->kd.input, "clean");
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.mlm_denominator = ctx->denominators[0];
    DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &mb->batch, NULL, &opts));
    const double mlm = dapt_ws_mlm_loss(mb->ws, NULL);
    *loss += mlm;
    s->term[0] += mlm;
    dapt_batch kb = mb->batch;
    kb.mlm_labels = NULL;
    if (clean) {
        if (!mb->clean_ids) return DAPT_ERROR(DAPT_ERR_ARG, "kd: kd.input = clean needs the unmasked rows");
        /* The MLM pass is finished with its workspace, which the clean pass reuses. */
        DAPT_CHECK(dapt_model_backward(ctx->model, mb->ws, 1.0, NULL, NULL));
        kb.input_ids = mb->clean_ids;
        dapt_run_opts sopts = dapt_objective_train_opts(ctx);
        sopts.seed = ctx->seed ^ dapt_rng_stream_tag(DAPT_RNG_KD_STUDENT);
        DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &kb, NULL, &sopts));
    }
    DAPT_CHECK(kd_distill(s, ctx, &kb, mb->ws, loss));
    return dapt_model_backward(ctx->model, mb->ws, clean ? 0.0 : 1.0, s->dh, NULL);
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
