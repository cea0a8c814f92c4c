/* SMART (Jiang et al., ACL 2020), Algorithm 1, as a fine-tuning objective:
 *   loss = L(theta) + lambda_s R_s(theta) + mu D(theta, theta~)
 *   R_s = mean over the global batch of l_s(f(x), f(x + nu)), nu from
 *         adv_steps projected ascent steps on l_s from random noise nu_0
 *   D   = mean of l_s(f(x; theta), f(x; theta~)), theta~ a momentum copy of
 *         theta (the Bregman proximal point), updated every inner_steps
 *         optimizer updates.
 * nu perturbs the embedding output (dapt_run_opts.embedding_delta).  Every
 * pass of a micro-batch uses the same dropout keys, so only nu (or the
 * parameters, for the teacher) differ.  `style = mtdnn` follows
 * namisan/mt-dnn's SmartPerturbation and SymKlCriterion instead
 * (docs/algorithms.md lists the differences).
 *
 * Per micro-batch: one clean forward (with labels), one teacher forward
 * (mu > 0), adv_steps forward + input-only backward passes, one perturbed
 * forward + backward and the clean backward.  Tensor parallel: logits are
 * replicated after the engine's reductions, the embedding gradient is the
 * full one on every rank and the noise is keyed globally, so every rank of a
 * tensor group computes the same nu. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/rng.h"
#include "objectives.h"
#include "smart.h"

#define SMART_WS_CACHE 8
#define MTDNN_NORM_EPS 1e-6 /* mt-dnn's adv_epsilon: the guard of its normalisation */

typedef struct smart_ws {
    int64_t len;
    dapt_workspace *adv;     /* training, ctx->model */
    dapt_workspace *teacher; /* forward only, the teacher */
} smart_ws;

typedef struct smart_state {
    smart_style style;
    double lambda_s, mu, noise_std, eps, eta, beta_early, beta_late, beta_switch;
    int64_t adv_steps, inner_steps;
    dapt_model teacher;
    int have_teacher;
    int64_t updates; /* optimizer updates since the run began (teacher schedule) */
    smart_ws cache[SMART_WS_CACHE];
    size_t ncache;
    int64_t rows_cap, cells_cap, labels_cap;
    float *nu0, *nu, *a, *b, *t, *ga, *gb, *gd;
    smart_record last;
    double term[3]; /* this step's cls, adv, bregman shares */
} smart_state;

/* ---- the numerical pieces (smart.h) --------------------------------------- */

static void log_softmax(const float *x, int64_t k, double *out)
{
    double mx = x[0];
    for (int64_t j = 1; j < k; j++)
        if (x[j] > mx) mx = x[j];
    double sum = 0.0;
    for (int64_t j = 0; j < k; j++) sum += exp((double)x[j] - mx);
    const double lse = mx + log(sum);
    for (int64_t j = 0; j < k; j++) out[j] = (double)x[j] - lse;
}

/* One row of the symmetric KL; k <= 64 on the stack, else heap. */
static double sym_kl_row(const float *a, const float *b, int64_t k, smart_grad_kind kind, double scale, float *da,
                         float *db, double *w)
{
    double *lp = w, *lq = w + k;
    log_softmax(a, k, lp);
    log_softmax(b, k, lq);
    double kl_pq = 0.0, kl_qp = 0.0;
    for (int64_t j = 0; j < k; j++) {
        const double p = exp(lp[j]), q = exp(lq[j]);
        kl_pq += p * (lp[j] - lq[j]);
        kl_qp += q * (lq[j] - lp[j]);
    }
    for (int64_t j = 0; j < k; j++) {
        const double p = exp(lp[j]), q = exp(lq[j]), d = lq[j] - lp[j];
        double ga = p - q, gb = q - p;
        if (kind == SMART_GRAD_FULL) {
            ga += p * (-d - kl_pq);
            gb += q * (d - kl_qp);
        }
        if (da) da[j] = (float)(scale * ga);
        if (db) db[j] = (float)(scale * gb);
    }
    return kl_pq + kl_qp;
}

double smart_divergence(const float *a, const float *b, int64_t rows, int64_t k, smart_grad_kind kind, double scale,
                        float *da, float *db)
{
    double total = 0.0;
    if (k == 1) {
        for (int64_t r = 0; r < rows; r++) {
            const double diff = (double)a[r] - (double)b[r];
            total += diff * diff;
            if (da) da[r] = (float)(scale * 2.0 * diff);
            if (db) db[r] = (float)(-scale * 2.0 * diff);
        }
        return scale * total;
    }
    double stack[128];
    double *w = k <= 64 ? stack : malloc(sizeof(double) * (size_t)(2 * k));
    if (!w) return NAN;
    for (int64_t r = 0; r < rows; r++)
        total += sym_kl_row(a + r * k, b + r * k, k, kind, scale, da ? da + r * k : NULL, db ? db + r * k : NULL, w);
    if (w != stack) free(w);
    return scale * total;
}

void smart_noise(uint64_t seed, uint64_t step, uint64_t first_sample, int64_t rows, int64_t seq_len, int64_t hidden,
                 const int32_t *mask, double std, float *nu)
{
    const dapt_rng rng = dapt_rng_make(seed, DAPT_RNG_ADVERSARIAL, step);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t s = 0; s < seq_len; s++) {
            float *o = nu + (r * seq_len + s) * hidden;
            const int on = !mask || mask[r * seq_len + s];
            for (int64_t h = 0; h < hidden; h++)
                o[h] = on ? (float)(std * (double)dapt_rng_normal(&rng, first_sample + (uint64_t)r,
                                                                  (uint64_t)(s * hidden + h)))
                          : 0.0f;
        }
}

void smart_ascent(const float *e, const int32_t *mask, int64_t rows, int64_t seq_len, int64_t hidden, smart_style style,
                  double eta, double eps, float *nu)
{
    for (int64_t t = 0; t < rows * seq_len; t++) {
        const float *g = e + t * hidden;
        float *o = nu + t * hidden;
        if (mask && !mask[t]) {
            memset(o, 0, sizeof(float) * (size_t)hidden);
            continue;
        }
        double mx = 0.0;
        for (int64_t h = 0; h < hidden; h++)
            if (fabs((double)g[h]) > mx) mx = fabs((double)g[h]);
        for (int64_t h = 0; h < hidden; h++) {
            if (style == SMART_STYLE_MTDNN) {
                o[h] = (float)(eta * (double)g[h] / (mx + MTDNN_NORM_EPS));
            } else {
                double v = (double)o[h] + (mx > 0.0 ? eta * (double)g[h] / mx : 0.0);
                o[h] = (float)(v > eps ? eps : v < -eps ? -eps : v);
            }
        }
    }
}

void smart_last(const void *state, smart_record *out) { *out = ((const smart_state *)state)->last; }

/* ---- life cycle -------------------------------------------------------------- */

static dapt_status smart_create(void **state, const dapt_config *cfg)
{
    const int mtdnn = !strcmp(cfg->smart.style, "mtdnn");
    if (cfg->smart.mu < 0.0 && cfg->smart.mu != -1.0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "smart.mu = %g: must be >= 0 (or -1: the style's default)", cfg->smart.mu);
    if (!mtdnn && !(cfg->smart.epsilon > 0.0) && cfg->smart.lambda_s > 0.0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "smart.epsilon = %g: style paper projects the perturbation onto "
                          "[-epsilon, epsilon], so it must be > 0", cfg->smart.epsilon);
    if (!(cfg->smart.step_size > 0.0) && cfg->smart.lambda_s > 0.0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "smart.step_size = %g: the ascent step must be > 0 (set smart.lambda_s = 0 "
                          "to turn the adversarial term off)", cfg->smart.step_size);
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(smart_state), "SMART state"));
    smart_state *s = *state;
    s->style = mtdnn ? SMART_STYLE_MTDNN : SMART_STYLE_PAPER;
    s->lambda_s = cfg->smart.lambda_s;
    s->mu = cfg->smart.mu >= 0.0 ? cfg->smart.mu : mtdnn ? 0.0 : 1.0;
    s->noise_std = mtdnn ? cfg->smart.noise_var : sqrt(cfg->smart.noise_var);
    s->eps = cfg->smart.epsilon;
    s->eta = cfg->smart.step_size;
    s->adv_steps = cfg->smart.adv_steps;
    s->inner_steps = cfg->smart.inner_steps;
    s->beta_early = cfg->smart.beta_early;
    s->beta_late = cfg->smart.beta_late;
    s->beta_switch = cfg->smart.beta_switch;
    return DAPT_OK;
}

static void smart_release(void *state)
{
    smart_state *s = state;
    for (size_t i = 0; i < s->ncache; i++) {
        dapt_workspace_free(s->cache[i].adv);
        dapt_workspace_free(s->cache[i].teacher);
    }
    s->ncache = 0;
    if (s->have_teacher) dapt_model_free(&s->teacher);
    s->have_teacher = 0;
    float **bufs[] = {&s->nu0, &s->nu, &s->a, &s->b, &s->t, &s->ga, &s->gb, &s->gd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        free(*bufs[i]);
        *bufs[i] = NULL;
    }
    s->rows_cap = s->cells_cap = s->labels_cap = 0;
    memset(&s->last, 0, sizeof s->last);
}

static void smart_destroy(void *state)
{
    if (!state) return;
    smart_release(state);
    free(state);
}

/* theta~ = theta: a copy of the model (a shard of the same layout under
 * tensor parallelism). */
static dapt_status smart_begin_domain(void *state, dapt_objective_ctx *ctx)
{
    smart_state *s = state;
    smart_release(s);
    const dapt_model *m = ctx->model;
    if (m->config.num_labels < 1)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "finetune.objective = smart needs a classification or regression head");
    s->updates = 0;
    if (s->mu > 0.0) {
        dapt_model_ranges rg;
        dapt_model_shard_ranges(m, &rg);
        DAPT_CHECK(dapt_model_create_shard(&m->config, &m->table, &rg, &s->teacher));
        s->have_teacher = 1;
        s->teacher.tp = m->tp;
        memcpy(s->teacher.params, m->params, sizeof(float) * m->table.total);
        if (ctx->total_steps <= 0 && s->beta_early != s->beta_late)
            dapt_warn("smart: the run's number of updates is not known, so the teacher keeps smart.beta_early = %g throughout",
                      s->beta_early);
    }
    return DAPT_OK;
}

/* ---- per micro-batch --------------------------------------------------------- */

static dapt_status grow(float **buf, int64_t n, const char *what)
{
    free(*buf);
    *buf = NULL;
    return dapt_alloc((void **)buf, sizeof(float) * (size_t)(n > 0 ? n : 1), what);
}

/* Buffers for rows x seq_len and the workspaces of this sequence length. */
static dapt_status smart_prepare_buffers(smart_state *s, const dapt_objective_ctx *ctx, int64_t rows, int64_t L,
                                         smart_ws **out)
{
    const int64_t H = ctx->model->config.hidden, K = ctx->model->config.num_labels;
    const int64_t want_rows = rows > ctx->micro_max ? rows : ctx->micro_max;
    if (want_rows * L * H > s->cells_cap) {
        s->cells_cap = want_rows * L * H;
        DAPT_CHECK(grow(&s->nu0, s->cells_cap, "SMART noise"));
        DAPT_CHECK(grow(&s->nu, s->cells_cap, "SMART perturbation"));
    }
    if (want_rows * K > s->labels_cap) {
        s->labels_cap = want_rows * K;
        float **bufs[] = {&s->a, &s->b, &s->t, &s->ga, &s->gb, &s->gd};
        for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) DAPT_CHECK(grow(bufs[i], s->labels_cap, "SMART logits"));
    }
    for (size_t i = 0; i < s->ncache; i++)
        if (s->cache[i].len == L && s->rows_cap >= rows) {
            *out = &s->cache[i];
            return DAPT_OK;
        }
    if (s->ncache == SMART_WS_CACHE || s->rows_cap < rows) {
        for (size_t i = 0; i < s->ncache; i++) {
            dapt_workspace_free(s->cache[i].adv);
            dapt_workspace_free(s->cache[i].teacher);
        }
        s->ncache = 0;
    }
    s->rows_cap = want_rows;
    smart_ws *c = &s->cache[s->ncache];
    memset(c, 0, sizeof *c);
    c->len = L;
    dapt_workspace_spec spec = {want_rows, L, 0, 1, 0};
    if (s->lambda_s > 0.0) DAPT_CHECK(dapt_workspace_create(ctx->model, &spec, &c->adv));
    spec.training = 0;
    if (s->have_teacher) DAPT_CHECK(dapt_workspace_create(&s->teacher, &spec, &c->teacher));
    s->ncache++;
    *out = c;
    return DAPT_OK;
}

/* The class logits of the last forward of ws into out. */
static void copy_logits(const dapt_workspace *ws, int64_t rows, int64_t K, float *out)
{
    memcpy(out, dapt_ws_class_logits(ws), sizeof(float) * (size_t)(rows * K));
}

/* nu from nu_0 by adv_steps ascent steps on l_s(a, f(x + nu)) with a fixed;
 * input gradients only. */
static dapt_status smart_perturb(smart_state *s, dapt_objective_ctx *ctx, const dapt_micro_batch *mb,
                                 dapt_workspace *ws, const dapt_batch *ab, const dapt_run_opts *aopts)
{
    const int64_t n = mb->batch.batch, L = mb->batch.seq_len, H = ctx->model->config.hidden;
    const int64_t K = ctx->model->config.num_labels;
    const double scale = 1.0 / (double)ctx->global_rows;
    smart_noise(ctx->seed, (uint64_t)ctx->step, mb->batch.first_sample, n, L, H, mb->batch.attention_mask, s->noise_std,
                s->nu0);
    memcpy(s->nu, s->nu0, sizeof(float) * (size_t)(n * L * H));
    /* mt-dnn's inner loss is KL(P||Q) with P detached: gradient q - p. */
    const smart_grad_kind inner = s->style == SMART_STYLE_MTDNN ? SMART_GRAD_DETACHED : SMART_GRAD_FULL;
    for (int64_t k = 0; k < s->adv_steps; k++) {
        DAPT_CHECK(dapt_model_forward(ctx->model, ws, ab, NULL, aopts));
        copy_logits(ws, n, K, s->b);
        const double v = smart_divergence(s->a, s->b, n, K, inner, scale, NULL, s->gb);
        if (!isfinite(v)) return DAPT_ERROR(DAPT_ERR_NUMERIC, "smart: the divergence of the perturbed logits is not finite");
        dapt_backward_opts bo = DAPT_BACKWARD_OPTS_INIT;
        bo.loss_scale = 0.0;
        bo.d_class_logits = s->gb;
        bo.param_grads = 0;
        DAPT_CHECK(dapt_model_backward_ex(ctx->model, ws, &bo));
        smart_ascent(dapt_ws_embedding_grad(ws), mb->batch.attention_mask, n, L, H, s->style, s->eta, s->eps, s->nu);
    }
    return DAPT_OK;
}

static dapt_status smart_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    smart_state *s = state;
    const int64_t n = mb->batch.batch, L = mb->batch.seq_len, K = ctx->model->config.num_labels;
    const double scale = 1.0 / (double)ctx->global_rows;
    smart_ws *c = NULL;
    DAPT_CHECK(smart_prepare_buffers(s, ctx, n, L, &c));
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.cls_denominator = (double)ctx->global_rows;
    DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &mb->batch, NULL, &opts));
    const double cls = dapt_ws_cls_loss(mb->ws);
    copy_logits(mb->ws, n, K, s->a);
    dapt_batch ab = mb->batch; /* the other passes: no labels, same dropout keys */
    ab.class_labels = NULL;
    ab.mlm_labels = NULL;
    const smart_grad_kind kind = s->style == SMART_STYLE_MTDNN ? SMART_GRAD_DETACHED : SMART_GRAD_FULL;
    memset(s->ga, 0, sizeof(float) * (size_t)(n * K));
    double adv = 0.0, breg = 0.0;
    s->last = (smart_record){n, L, NULL, NULL, s->a, NULL, NULL, 0, 0, 0};
    if (s->lambda_s > 0.0) {
        dapt_run_opts aopts = opts;
        aopts.embedding_delta = s->nu;
        DAPT_CHECK(smart_perturb(s, ctx, mb, c->adv, &ab, &aopts));
        DAPT_CHECK(dapt_model_forward(ctx->model, c->adv, &ab, NULL, &aopts));
        copy_logits(c->adv, n, K, s->b);
        adv = smart_divergence(s->a, s->b, n, K, kind, s->lambda_s * scale, s->ga, s->gb);
        s->last.nu0 = s->nu0;
        s->last.nu = s->nu;
        s->last.b = s->b;
    }
    if (s->have_teacher) {
        DAPT_CHECK(dapt_model_forward(&s->teacher, c->teacher, &ab, NULL, &opts));
        copy_logits(c->teacher, n, K, s->t);
        breg = smart_divergence(s->a, s->t, n, K, kind, s->mu * scale, s->gd, NULL);
        for (int64_t i = 0; i < n * K; i++) s->ga[i] += s->gd[i];
        s->last.t = s->t;
    }
    if (!isfinite(cls + adv + breg))
        return DAPT_ERROR(DAPT_ERR_NUMERIC, "smart: loss %g, adversarial term %g, Bregman term %g are not finite", cls, adv,
                          breg);
    if (s->lambda_s > 0.0) {
        dapt_backward_opts bo = DAPT_BACKWARD_OPTS_INIT;
        bo.loss_scale = 0.0;
        bo.d_class_logits = s->gb;
        DAPT_CHECK(dapt_model_backward_ex(ctx->model, c->adv, &bo));
    }
    dapt_backward_opts bo = DAPT_BACKWARD_OPTS_INIT;
    bo.d_class_logits = s->ga;
    DAPT_CHECK(dapt_model_backward_ex(ctx->model, mb->ws, &bo));
    s->last.cls = cls;
    s->last.adv = adv;
    s->last.bregman = breg;
    s->term[0] += cls;
    s->term[1] += adv;
    s->term[2] += breg;
    *loss += cls + adv + breg;
    return DAPT_OK;
}

/* ---- the teacher ------------------------------------------------------------- */

/* theta~ <- (1 - beta) theta + beta theta~ every inner_steps updates. */
static dapt_status smart_after_update(void *state, dapt_objective_ctx *ctx)
{
    smart_state *s = state;
    s->updates++;
    if (!s->have_teacher || s->updates % s->inner_steps) return DAPT_OK;
    const int early = ctx->total_steps <= 0 || (double)s->updates <= s->beta_switch * (double)ctx->total_steps;
    const float beta = (float)(early ? s->beta_early : s->beta_late);
    const float *p = ctx->model->params;
    float *q = s->teacher.params;
    const size_t total = ctx->model->table.total;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < total; i++) q[i] = (1.0f - beta) * p[i] + beta * q[i];
    return DAPT_OK;
}

static dapt_status smart_metrics(void *state, const dapt_objective_ctx *ctx, double *local_values)
{
    (void)ctx;
    smart_state *s = state;
    for (int i = 0; i < 3; i++) {
        local_values[i] = s->term[i];
        s->term[i] = 0.0;
    }
    return DAPT_OK;
}

#define TEACHER_GROUP "objective/smart/teacher"

static dapt_status smart_save(void *state, dapt_objective_ctx *ctx, dapt_h5file *f)
{
    smart_state *s = state;
    if (!s->have_teacher) return DAPT_OK;
    DAPT_CHECK(dapt_objective_save_params(ctx, f, TEACHER_GROUP, s->teacher.params));
    return dapt_h5_attr_set_int64(f, TEACHER_GROUP, "updates", s->updates);
}

static dapt_status smart_load(void *state, dapt_objective_ctx *ctx, const dapt_h5file *f)
{
    smart_state *s = state;
    if (!s->have_teacher) return DAPT_OK;
    if (!dapt_h5_exists(f, TEACHER_GROUP))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: the checkpoint has no SMART teacher (%s): was it written with smart.mu = 0?",
                          f->path, TEACHER_GROUP);
    DAPT_CHECK(dapt_objective_load_params(ctx, f, TEACHER_GROUP, s->teacher.params));
    return dapt_h5_attr_get_int64(f, TEACHER_GROUP, "updates", &s->updates);
}

static const char *const smart_columns[] = {"cls_loss", "adv_loss", "bregman", NULL};

const dapt_objective_ops dapt_objective_smart = {
    .name = "smart",
    .flags = DAPT_OBJ_FINETUNE | DAPT_OBJ_TENSOR_PARALLEL,
    .columns = smart_columns,
    .create = smart_create,
    .destroy = smart_destroy,
    .begin_domain = smart_begin_domain,
    .release = smart_release,
    .micro_step = smart_micro_step,
    .after_update = smart_after_update,
    .metrics = smart_metrics,
    .save = smart_save,
    .load = smart_load,
};
