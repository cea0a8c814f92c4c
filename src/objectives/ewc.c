/* Elastic weight consolidation baseline:
 *   loss = L_MLM + ewc.lambda / 2 * sum_i F_i (theta_i - theta*_i)^2,
 * F the Fisher diagonal of the MLM loss summed over the finished domains and
 * theta* the parameters at the end of the previous domain.  After each
 * domain F is estimated on ewc.samples sequences of its corpus and written
 * with theta* to <domain>/fisher.h5 (read back by --resume). */
#include <stdlib.h>
#include <string.h>

#include "dapt/corpus_pass.h"
#include "objectives.h"

typedef struct ewc_state {
    const dapt_config *base; /* the run's configuration, stored with fisher.h5 */
    float *fisher, *anchor;  /* table.total floats each; NULL before the first domain ends */
    double term[2];          /* this rank's shares of the MLM term and the penalty */
} ewc_state;

static dapt_status ewc_create(void **state, const dapt_config *cfg)
{
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(ewc_state), "ewc state"));
    ((ewc_state *)*state)->base = cfg;
    return DAPT_OK;
}

static void ewc_destroy(void *state)
{
    ewc_state *s = state;
    free(s->fisher);
    free(s->anchor);
    free(s);
}

static void fisher_path(const dapt_objective_ctx *ctx, char *buf, size_t len)
{
    snprintf(buf, len, "%s/fisher.h5", ctx->domain->dir);
}

static dapt_status save_fisher(ewc_state *s, dapt_objective_ctx *ctx)
{
    char path[2 * DAPT_CONFIG_STR_MAX];
    fisher_path(ctx, path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(ctx->data_comm, path, 1, s->base, &f));
    const int64_t dims[1] = {(int64_t)ctx->model->table.total};
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_h5_set_format(&f, "dapt-fisher"));
    DAPT_TRY(dapt_h5_write_all(&f, "fisher", DAPT_H5_F32, 1, dims, s->fisher));
    DAPT_TRY(dapt_h5_write_all(&f, "anchor", DAPT_H5_F32, 1, dims, s->anchor));
    return dapt_h5_commit(&f);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

static dapt_status read_vector(dapt_h5file *f, const char *path, const char *name, size_t total, float **out)
{
    int nd;
    int64_t dims[DAPT_H5_MAX_DIMS];
    free(*out);
    *out = NULL;
    DAPT_CHECK(dapt_h5_read_all(f, name, DAPT_H5_F32, (void **)out, &nd, dims));
    if (nd != 1 || dims[0] != (int64_t)total)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s has %lld values, the model %zu", path, name, (long long)dims[0], total);
    return DAPT_OK;
}

static dapt_status ewc_resume_domain(void *state, dapt_objective_ctx *ctx)
{
    ewc_state *s = state;
    char path[2 * DAPT_CONFIG_STR_MAX];
    fisher_path(ctx, path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(ctx->data_comm, path, &f));
    dapt_status st = read_vector(&f, path, "fisher", ctx->model->table.total, &s->fisher);
    if (st == DAPT_OK) st = read_vector(&f, path, "anchor", ctx->model->table.total, &s->anchor);
    dapt_h5_close(&f);
    return st;
}

/* The domain's Fisher diagonal, combined with the earlier domains'. */
static dapt_status ewc_end_domain(void *state, dapt_objective_ctx *ctx)
{
    ewc_state *s = state;
    const size_t total = ctx->model->table.total;
    const int reference = !strcmp(s->base->ewc.fisher, "reference");
    if (!s->fisher) DAPT_CHECK(dapt_calloc((void **)&s->fisher, total, sizeof(float), "Fisher diagonal"));
    if (!s->anchor) DAPT_CHECK(dapt_alloc((void **)&s->anchor, total * sizeof(float), "EWC anchor"));
    float *fresh = NULL;
    DAPT_CHECK(dapt_calloc((void **)&fresh, total, sizeof(float), "Fisher diagonal of the domain"));
    dapt_corpus_batches cb;
    dapt_status st = dapt_corpus_batches_init(&cb, ctx->seqs, ctx->mlm, DAPT_SPLIT_TRAIN, ctx->seed, ctx->seq_len,
                                              ctx->global_rows, s->base->ewc.samples, ctx->data_rank, ctx->data_size);
    if (st == DAPT_OK) {
        const double nb = (double)dapt_corpus_batches_count(&cb);
        st = dapt_fisher_from_corpus(ctx->model, &cb, ctx->seed, (int)s->base->model.recompute, fresh, ctx->data_comm);
        dapt_corpus_batches_free(&cb);
        /* mean: F += mean_b g_b^2.  reference: F_t = sum_b B g_b^2, and
         * F = (F_t + t F) / (t + 1) over the domains t = 0, 1, ... */
        const double t = (double)ctx->domain->index, scale = reference ? nb * (double)ctx->global_rows : 1.0;
        for (size_t i = 0; st == DAPT_OK && i < total; i++)
            s->fisher[i] = reference ? (float)((scale * fresh[i] + t * s->fisher[i]) / (t + 1.0)) : s->fisher[i] + fresh[i];
    }
    free(fresh);
    DAPT_CHECK(st);
    memcpy(s->anchor, ctx->model->params, total * sizeof(float));
    return save_fisher(s, ctx);
}

/* The data term is plain MLM. */
static dapt_status ewc_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    ewc_state *s = state;
    double mlm = 0.0;
    DAPT_CHECK(dapt_objective_mlm_term(ctx, mb, NULL, &mlm));
    *loss += mlm;
    s->term[0] += mlm;
    return DAPT_OK;
}

/* The penalty is the same on every rank (each holds the whole model), so
 * each adds its 1/size share to the step loss. */
static dapt_status ewc_step_end(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                double *loss)
{
    (void)mbs;
    (void)count;
    ewc_state *s = state;
    if (!s->fisher) return DAPT_OK;
    const float *p = ctx->model->params;
    double pen = 0;
    for (size_t i = 0; i < ctx->model->table.total; i++) {
        double diff = (double)p[i] - s->anchor[i];
        pen += s->fisher[i] * diff * diff;
    }
    const double share = 0.5 * ctx->cfg->ewc.lambda * pen / (double)ctx->data_size;
    *loss += share;
    s->term[1] += share;
    return DAPT_OK;
}

/* The penalty's gradient, after the all-reduce (the summed gradient is on
 * every rank). */
static dapt_status ewc_transform(void *state, dapt_objective_ctx *ctx)
{
    ewc_state *s = state;
    if (!s->fisher) return DAPT_OK;
    const float lambda = (float)ctx->cfg->ewc.lambda;
    float *g = ctx->model->grads;
    const float *p = ctx->model->params;
    for (size_t i = 0; i < ctx->model->table.total; i++) g[i] += lambda * s->fisher[i] * (p[i] - s->anchor[i]);
    return DAPT_OK;
}

static dapt_status ewc_metrics(void *state, const dapt_objective_ctx *ctx, double *local_values)
{
    (void)ctx;
    ewc_state *s = state;
    local_values[0] = s->term[0];
    local_values[1] = s->term[1];
    s->term[0] = s->term[1] = 0.0;
    return DAPT_OK;
}

static const char *const ewc_columns[] = {"mlm_loss", "ewc_penalty", NULL};
static const char *const ewc_outputs[] = {"fisher.h5", NULL};

const dapt_objective_ops dapt_objective_ewc = {
    .name = "ewc",
    .flags = DAPT_OBJ_TRAIN,
    .n_denominators = 1,
    .columns = ewc_columns,
    .outputs = ewc_outputs,
    .create = ewc_create,
    .destroy = ewc_destroy,
    .resume_domain = ewc_resume_domain,
    .end_domain = ewc_end_domain,
    .prepare = dapt_objective_mlm_prepare,
    .micro_step = ewc_micro_step,
    .step_end = ewc_step_end,
    .transform_grads = ewc_transform,
    .metrics = ewc_metrics,
};
