/* MOMETAS's cse objective: SimCSE-style contrastive learning of sentence
 * embeddings (gingasan/mometas modeling_bert.py, flow "cse").  Each
 * sequence runs twice with different dropout (views a and b); its [CLS]
 * state goes through a pooler dense + tanh the objective owns
 * (aux.cse.dense.*, as the reference's separate BertPooler), and the loss is
 * the symmetric NT-Xent over the global batch with cosine similarity / tau:
 * every one of the 2N embeddings is an anchor whose positive is the other
 * view of its sequence and whose negatives are every other embedding
 * (dapt_contrastive_loss_ex with the anchor itself left out, once per
 * direction, each half the loss).
 *
 * micro_step runs both views and keeps their embeddings; step_end, with
 * every rank's rows, computes the loss and then recomputes each view's
 * forward (dropout is keyed, so bit-identical) for its backward: one
 * workspace, 4 forwards and 2 backwards per micro-batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"
#include "dapt/rng.h"
#include "cse.h"
#include "objectives.h"

typedef struct cse_state {
    double tau;
    int64_t rows_cap, n; /* rows reserved / held this step */
    float *z[2], *dz[2]; /* [rows_cap, hidden]: the views' embeddings, their gradients */
    float *cls[2];       /* [rows_cap, hidden]: the views' [CLS] states */
    float *grad;         /* [6, rows_cap, hidden]: the two loss directions' parts */
    float *dh;           /* [micro_max, seq_len, hidden] */
    double term;         /* this rank's share of the step's loss (metrics) */
} cse_state;

static dapt_status cse_create(void **state, const dapt_config *cfg)
{
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(cse_state), "cse state"));
    ((cse_state *)*state)->tau = cfg->objectives.cse_temperature;
    return DAPT_OK;
}

static void cse_release(void *state)
{
    cse_state *s = state;
    for (int v = 0; v < 2; v++) {
        free(s->z[v]);
        free(s->dz[v]);
        free(s->cls[v]);
        s->z[v] = s->dz[v] = s->cls[v] = NULL;
    }
    free(s->grad);
    free(s->dh);
    s->grad = NULL;
    s->dh = NULL;
}

static void cse_destroy(void *state)
{
    cse_release(state);
    free(state);
}

static dapt_status cse_aux(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    (void)cfg;
    memset(out, 0, 2 * sizeof *out);
    snprintf(out[0].name, sizeof out[0].name, "aux.cse.dense.weight");
    out[0].rows = mc->hidden;
    out[0].cols = mc->hidden;
    snprintf(out[1].name, sizeof out[1].name, "aux.cse.dense.bias");
    out[1].rows = mc->hidden;
    *n = 2;
    return DAPT_OK;
}

static dapt_status cse_begin(void *state, dapt_objective_ctx *ctx)
{
    cse_state *s = state;
    cse_release(s);
    const int64_t H = ctx->model->config.hidden;
    /* A rank holds at most the global batch. */
    s->rows_cap = ctx->global_rows > 0 ? ctx->global_rows : 1;
    for (int v = 0; v < 2; v++) {
        DAPT_CHECK(dapt_calloc((void **)&s->z[v], (size_t)(s->rows_cap * H), sizeof(float), "cse embeddings"));
        DAPT_CHECK(dapt_calloc((void **)&s->dz[v], (size_t)(s->rows_cap * H), sizeof(float), "cse gradients"));
        DAPT_CHECK(dapt_calloc((void **)&s->cls[v], (size_t)(s->rows_cap * H), sizeof(float), "cse [CLS] states"));
    }
    DAPT_CHECK(dapt_calloc((void **)&s->grad, (size_t)(6 * s->rows_cap * H), sizeof(float), "cse gradients"));
    return dapt_calloc((void **)&s->dh, (size_t)(ctx->micro_max * ctx->seq_len * H), sizeof(float), "cse dh");
}

static dapt_status view_forward(dapt_objective_ctx *ctx, const dapt_micro_batch *mb, int v)
{
    dapt_batch b = mb->batch;
    b.mlm_labels = NULL;
    b.class_labels = NULL;
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    if (v == 1) opts.seed = ctx->seed ^ dapt_rng_stream_tag(DAPT_RNG_CSE_VIEW_B);
    return dapt_model_forward(ctx->model, mb->ws, &b, NULL, &opts);
}

/* z[r] = tanh(W cls[r] + b) for rows [0, n). */
static void pooler_forward(const float *W, const float *b, const float *cls, int64_t n, int64_t H, float *z)
{
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < H; i++) {
            double u = b[i];
            for (int64_t k = 0; k < H; k++) u += (double)W[i * H + k] * cls[r * H + k];
            z[r * H + i] = (float)tanh(u);
        }
}

/* Adds the pooler's weight gradients and writes d cls into dh's position 0
 * of each row (dh zeroed elsewhere). */
static void pooler_backward(const float *W, float *gW, float *gb, const float *cls, const float *z, const float *dz,
                            int64_t n, int64_t L, int64_t H, float *dh)
{
    memset(dh, 0, (size_t)(n * L * H) * sizeof *dh);
    for (int64_t r = 0; r < n; r++) {
        float *dc = dh + r * L * H;
        for (int64_t i = 0; i < H; i++) {
            const double zi = z[r * H + i];
            const double du = dz[r * H + i] * (1.0 - zi * zi);
            gb[i] += (float)du;
            for (int64_t k = 0; k < H; k++) {
                gW[i * H + k] += (float)(du * cls[r * H + k]);
                dc[k] += (float)(du * W[i * H + k]);
            }
        }
    }
}

dapt_status dapt_cse_loss(const float *za, const float *zb, int64_t n, int64_t dim, double tau, MPI_Comm comm,
                          float *scratch, int64_t rows_cap, double *loss, float *dza, float *dzb)
{
    /* C1: anchors a, candidates b and the other a; C2 the other way round;
     * L = (C1 + C2) / 2, so each view's gradient gathers three parts. */
    float *g[6];
    for (int k = 0; k < 6; k++) g[k] = scratch + (size_t)k * (size_t)(rows_cap * dim);
    double c[2];
    DAPT_CHECK(dapt_contrastive_loss_ex(za, zb, za, n, dim, tau, 1, comm, &c[0], g[0], g[1], g[2]));
    DAPT_CHECK(dapt_contrastive_loss_ex(zb, za, zb, n, dim, tau, 1, comm, &c[1], g[3], g[4], g[5]));
    *loss = 0.5 * (c[0] + c[1]);
    for (int64_t i = 0; i < n * dim; i++) {
        dza[i] = 0.5f * (g[0][i] + g[2][i] + g[4][i]);
        dzb[i] = 0.5f * (g[1][i] + g[3][i] + g[5][i]);
    }
    return DAPT_OK;
}

static dapt_status cse_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    (void)loss; /* the loss needs every rank's rows: step_end */
    cse_state *s = state;
    const int64_t H = ctx->model->config.hidden, n = mb->batch.batch, L = mb->batch.seq_len;
    if (!s->dh) return DAPT_ERROR(DAPT_ERR_INTERNAL, "cse: micro_step before begin_domain");
    if (s->n + n > s->rows_cap)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "cse: %lld rows exceed the %lld reserved", (long long)(s->n + n),
                          (long long)s->rows_cap);
    const float *W = dapt_model_param(ctx->model, "aux.cse.dense.weight");
    const float *b = dapt_model_param(ctx->model, "aux.cse.dense.bias");
    if (!W || !b) return DAPT_ERROR(DAPT_ERR_INTERNAL, "cse: aux.cse.dense.* missing from the model");
    for (int v = 0; v < 2; v++) {
        DAPT_CHECK(view_forward(ctx, mb, v));
        const float *h = dapt_ws_last_hidden(mb->ws);
        for (int64_t r = 0; r < n; r++) memcpy(s->cls[v] + (s->n + r) * H, h + r * L * H, (size_t)H * sizeof *h);
        pooler_forward(W, b, s->cls[v] + s->n * H, n, H, s->z[v] + s->n * H);
    }
    s->n += n;
    return DAPT_OK;
}

static dapt_status cse_step_end(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                double *loss)
{
    cse_state *s = state;
    const int64_t H = ctx->model->config.hidden, n = s->n;
    s->n = 0;
    double closs = 0.0;
    DAPT_CHECK(dapt_cse_loss(s->z[0], s->z[1], n, H, s->tau, ctx->data_comm, s->grad, s->rows_cap, &closs, s->dz[0],
                             s->dz[1]));
    if (!isfinite(closs)) return DAPT_ERROR(DAPT_ERR_NUMERIC, "cse: contrastive loss is not finite");
    /* Every rank holds the global loss; the loop sums the ranks' shares. */
    *loss += closs / (double)ctx->data_size;
    s->term += closs / (double)ctx->data_size;
    const float *W = dapt_model_param(ctx->model, "aux.cse.dense.weight");
    float *gW = dapt_model_grad(ctx->model, "aux.cse.dense.weight");
    float *gb = dapt_model_grad(ctx->model, "aux.cse.dense.bias");
    int64_t at = 0;
    for (int64_t k = 0; k < count; k++) {
        const dapt_micro_batch *mb = &mbs[k];
        const int64_t m = mb->batch.batch, L = mb->batch.seq_len;
        for (int v = 0; v < 2; v++) {
            DAPT_CHECK(view_forward(ctx, mb, v));
            pooler_backward(W, gW, gb, s->cls[v] + at * H, s->z[v] + at * H, s->dz[v] + at * H, m, L, H, s->dh);
            DAPT_CHECK(dapt_model_backward(ctx->model, mb->ws, 0.0, s->dh, NULL));
        }
        at += m;
    }
    return DAPT_OK;
}

/* Without dropout the two views are one: the loss of z against itself
 * (the reference evaluates in eval mode too). */
static dapt_status cse_eval_loss(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                 double *loss)
{
    cse_state *s = state;
    const int64_t H = ctx->model->config.hidden;
    int64_t n = 0;
    for (int64_t k = 0; k < count; k++) n += mbs[k].batch.batch;
    const int64_t cap = n > 0 ? n : 1;
    float *buf = NULL;
    DAPT_CHECK(dapt_calloc((void **)&buf, (size_t)(10 * cap * H), sizeof(float), "cse held-out buffers"));
    float *cls = buf, *z = buf + cap * H, *dz = buf + 2 * cap * H, *scratch = buf + 4 * cap * H;
    const float *W = dapt_model_param(ctx->model, "aux.cse.dense.weight");
    const float *b = dapt_model_param(ctx->model, "aux.cse.dense.bias");
    dapt_status st = W && b ? DAPT_OK : DAPT_ERROR(DAPT_ERR_INTERNAL, "cse: aux.cse.dense.* missing from the model");
    const dapt_run_opts opts = dapt_objective_eval_opts(ctx);
    int64_t at = 0;
    for (int64_t k = 0; k < count && st == DAPT_OK; k++) {
        dapt_batch bt = mbs[k].batch;
        bt.mlm_labels = NULL;
        st = dapt_model_forward(ctx->model, mbs[k].ws, &bt, NULL, &opts);
        const float *h = st == DAPT_OK ? dapt_ws_last_hidden(mbs[k].ws) : NULL;
        for (int64_t r = 0; h && r < bt.batch; r++)
            memcpy(cls + (at + r) * H, h + r * bt.seq_len * H, (size_t)H * sizeof *h);
        at += bt.batch;
    }
    /* Every rank takes part in the gathers, whatever its own outcome. */
    if (st == DAPT_OK) pooler_forward(W, b, cls, n, H, z);
    double l = 0.0;
    dapt_status cst = dapt_cse_loss(z, z, n, H, s->tau, ctx->data_comm, scratch, cap, &l, dz, dz + cap * H);
    free(buf);
    DAPT_CHECK(st);
    DAPT_CHECK(cst);
    *loss += l / (double)ctx->data_size;
    return DAPT_OK;
}

static dapt_status cse_metrics(void *state, const dapt_objective_ctx *ctx, double *local_values)
{
    (void)ctx;
    cse_state *s = state;
    local_values[0] = s->term;
    s->term = 0.0;
    return DAPT_OK;
}

static const char *const cse_columns[] = {"cse_loss", NULL};

const dapt_objective_ops dapt_objective_cse = {
    .name = "cse",
    .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL,
    .columns = cse_columns,
    .aux_tensors = cse_aux,
    .create = cse_create,
    .destroy = cse_destroy,
    .begin_domain = cse_begin,
    .resume_domain = cse_begin,
    .release = cse_release,
    .micro_step = cse_micro_step,
    .step_end = cse_step_end,
    .eval_loss = cse_eval_loss,
    .metrics = cse_metrics,
};
