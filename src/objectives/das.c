/* The DGA and DAS objectives (Ke et al., EMNLP 2022; ICLR 2023):
 *   loss = MLM + lambda * InfoNCE(z1, z2, z3) over the global batch,
 *   z1, z2 = mean-pooled last hidden states of two dropout passes over the
 *   unmasked input, z3 = the same input with every unit multiplied by its
 *   importance; then gradients soft-masked by (1 - importance).
 * DGA uses the head importance only, DAS heads and both FFN unit kinds.
 *
 * Cost.  The MLM pass runs as in `mlm`.  The three views run without the MLM
 * head (no labels: no vocabulary projection).  With one micro-batch per step
 * the views' activations stay in three training workspaces and backward runs
 * straight after the loss (4 forward + 4 backward passes, 3 without the MLM
 * head).  With several micro-batches the loss needs every micro-batch's
 * views first, so they are computed forward-only and then each view is
 * recomputed with the same dropout keys and back-propagated (gradient
 * caching): 3 extra forwards per micro-batch instead of 3 stored activation
 * arenas per micro-batch.  docs/performance.md has the measured costs.
 * Importance across domains: das_domains.c.
 *
 * The data term.  das.lm_objective = mlm is the MLM term above; any other
 * train objective (e.g. mometas, the MOMETAS sampler) is a delegate whose
 * prepare, micro_step, step_end, transform_grads (before the soft-mask),
 * after_update, checkpoint state and auxiliary tensors stand in for it,
 * its metrics columns after DAS's own.  The views still run on the clean
 * ids with the attention mask the delegate's prepare leaves (a deletion
 * objective shortens it). */
#include <stdlib.h>
#include <string.h>

#include "dapt/rng.h"
#include "das_state.h"

static dapt_unit_masks view_masks(const das_state *s)
{
    dapt_unit_masks m = {s->importance[DAPT_UNIT_HEAD], NULL, NULL};
    if (s->all_units) {
        m.intermediate = s->importance[DAPT_UNIT_INTERMEDIATE];
        m.output = s->importance[DAPT_UNIT_OUTPUT];
    }
    return m;
}

/* DAS's columns and output files, then the delegate's, filled by
 * create_common: the ops table is a constant of the registry, but the loop
 * reads the names only after creating the objective.  Process-wide: the
 * last DAS / DGA created names them (a run creates one). */
#define DAS_MAX_OUTPUTS 8
static const char *das_columns[DAPT_OBJ_MAX_COLUMNS + 1] = {"mlm_loss", "contrast_loss", NULL};
static const char *das_outputs[DAS_MAX_OUTPUTS + 1] = {"importance.h5", "representations.h5", NULL};

/* The delegate's ops, NULL for the built-in MLM term. */
static dapt_status lm_ops(const dapt_config *cfg, const dapt_objective_ops **out)
{
    *out = NULL;
    const char *name = cfg->das.lm_objective;
    if (!strcmp(name, "mlm")) return DAPT_OK;
    const dapt_objective_ops *ops = dapt_objective_find(name, DAPT_OBJ_TRAIN);
    if (!ops || ops == &dapt_objective_das || ops == &dapt_objective_dga) {
        char names[512];
        dapt_objective_names(DAPT_OBJ_TRAIN, names, sizeof names);
        return DAPT_ERROR(DAPT_ERR_CONFIG, "das.lm_objective: '%s' is not a data term (one of %s, not dga or das)", name,
                          names);
    }
    if (cfg->das.forward_mask)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "das.forward_mask masks the built-in MLM pass: it needs das.lm_objective = mlm");
    if (cfg->parallel.tensor > 1 && !(ops->flags & DAPT_OBJ_TENSOR_PARALLEL))
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "das.lm_objective = %s does not run tensor-parallel (parallel.tensor = %lld)",
                          name, (long long)cfg->parallel.tensor);
    size_t n = 0, m = 0;
    while (ops->columns && ops->columns[n]) n++;
    while (ops->outputs && ops->outputs[m]) m++;
    if (n + 2 > DAPT_OBJ_MAX_COLUMNS || m + 2 > DAS_MAX_OUTPUTS)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "das.lm_objective = %s: too many metrics columns or outputs with DAS's",
                          name);
    *out = ops;
    return DAPT_OK;
}

static dapt_status das_aux(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    const dapt_objective_ops *ops;
    *n = 0;
    DAPT_CHECK(lm_ops(cfg, &ops));
    return ops && ops->aux_tensors ? ops->aux_tensors(cfg, mc, out, n) : DAPT_OK;
}

static double das_label_fraction(const dapt_config *cfg)
{
    const dapt_objective_ops *ops = NULL;
    if (lm_ops(cfg, &ops) != DAPT_OK) dapt_error_clear(); /* create reports it */
    return dapt_objective_label_fraction(ops, cfg);
}

static dapt_status create_common(void **state, const dapt_config *cfg, int all_units)
{
    const dapt_objective_ops *lm;
    DAPT_CHECK(lm_ops(cfg, &lm));
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(das_state), "DAS state"));
    das_state *s = *state;
    das_columns[0] = lm ? "lm_loss" : "mlm_loss"; /* a sampler has an mlm_loss column of its own */
    size_t n = 2;
    for (size_t i = 0; lm && lm->columns && lm->columns[i]; i++) das_columns[n++] = lm->columns[i];
    das_columns[n] = NULL;
    n = 2;
    for (size_t i = 0; lm && lm->outputs && lm->outputs[i]; i++) das_outputs[n++] = lm->outputs[i];
    das_outputs[n] = NULL;
    if (lm) {
        const dapt_status st = dapt_objective_create(lm, cfg, &s->lm);
        if (st != DAPT_OK) {
            free(s);
            *state = NULL;
            return st;
        }
    }
    s->base = cfg;
    s->all_units = all_units;
    s->style = strcmp(cfg->das.softmask, "reference") ? DAPT_SOFTMASK_PAPER : DAPT_SOFTMASK_REFERENCE;
    s->forward_mask = (int)cfg->das.forward_mask;
    s->update_space = !strcmp(cfg->das.softmask_space, "update");
    s->mask_decay = (int)cfg->das.mask_decay;
    s->lambda = cfg->das.contrast_lambda;
    s->tau = cfg->das.contrast_tau;
    return DAPT_OK;
}

static dapt_status das_create(void **state, const dapt_config *cfg) { return create_common(state, cfg, 1); }
static dapt_status dga_create(void **state, const dapt_config *cfg) { return create_common(state, cfg, 0); }

static void das_release(void *state)
{
    das_state *s = state;
    if (s->lm.ops) dapt_objective_release(&s->lm);
    for (int v = 0; v < 3; v++) {
        dapt_workspace_free(s->ws_view[v]);
        s->ws_view[v] = NULL;
        free(s->z[v]);
        free(s->dz[v]);
        s->z[v] = s->dz[v] = NULL;
    }
    dapt_workspace_free(s->ws_fwd);
    s->ws_fwd = NULL;
    free(s->dh);
    s->dh = NULL;
    free(s->scale);
    s->scale = NULL;
}

static void das_destroy(void *state)
{
    das_state *s = state;
    das_release(s);
    das_domains_free(s);
    if (s->lm.ops) dapt_objective_destroy(&s->lm);
    free(s);
}

/* (1 - importance) of every parameter element this rank holds: the
 * soft-mask applied to a buffer of ones. */
static dapt_status make_scale(das_state *s, const dapt_model *m)
{
    DAPT_CHECK(dapt_alloc((void **)&s->scale, m->table.total * sizeof(float), "soft-mask scale"));
    for (size_t i = 0; i < m->table.total; i++) s->scale[i] = 1.0f;
    dapt_model_ranges rg;
    dapt_model_shard_ranges(m, &rg);
    return dapt_softmask_apply_shard(&m->config, &rg, &m->table, s->scale, s->importance[DAPT_UNIT_HEAD],
                                     s->all_units ? s->importance[DAPT_UNIT_INTERMEDIATE] : NULL,
                                     s->all_units ? s->importance[DAPT_UNIT_OUTPUT] : NULL, s->style);
}

/* The domain's soft-mask, then the step buffers. */
static dapt_status das_begin_domain(void *state, dapt_objective_ctx *ctx)
{
    das_state *s = state;
    DAPT_CHECK(das_domain_begin(s, ctx));
    DAPT_CHECK(make_scale(s, ctx->model));
    ctx->update_scale = s->update_space ? s->scale : NULL;
    ctx->decay_scale = s->update_space || s->mask_decay ? s->scale : NULL;
    const dapt_config *cfg = ctx->cfg;
    const int64_t L = ctx->seq_len, H = ctx->model->config.hidden;
    const int64_t accum = cfg->train.grad_accum;
    s->rows_cap = ctx->micro_max * accum;
    dapt_workspace_spec spec = {ctx->micro_max, L, 1, 1, (int)cfg->model.recompute};
    if (accum == 1) {
        DAPT_CHECK(dapt_workspace_create(ctx->model, &spec, &s->ws_view[1]));
        DAPT_CHECK(dapt_workspace_create(ctx->model, &spec, &s->ws_view[2]));
    } else {
        spec.training = 0;
        DAPT_CHECK(dapt_workspace_create(ctx->model, &spec, &s->ws_fwd));
    }
    for (int v = 0; v < 3; v++) {
        DAPT_CHECK(dapt_alloc((void **)&s->z[v], sizeof(float) * (size_t)(s->rows_cap * H), "contrastive views"));
        DAPT_CHECK(dapt_alloc((void **)&s->dz[v], sizeof(float) * (size_t)(s->rows_cap * H), "view gradients"));
    }
    DAPT_CHECK(dapt_alloc((void **)&s->dh, sizeof(float) * (size_t)(ctx->micro_max * L * H), "view hidden gradient"));
    /* After the importance pass: the delegate's start (a sampler's first
     * held-out losses) sees the model as training starts. */
    return s->lm.ops ? dapt_objective_begin_domain(&s->lm, ctx) : DAPT_OK;
}

static dapt_status das_resume_domain(void *state, dapt_objective_ctx *ctx)
{
    das_state *s = state;
    DAPT_CHECK(das_domain_resume(s, ctx));
    return s->lm.ops ? dapt_objective_resume_domain(&s->lm, ctx) : DAPT_OK;
}

static dapt_status das_end_domain(void *state, dapt_objective_ctx *ctx)
{
    das_state *s = state;
    if (s->lm.ops) DAPT_CHECK(dapt_objective_end_domain(&s->lm, ctx));
    return das_domain_end(s, ctx);
}

static dapt_status das_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local)
{
    das_state *s = state;
    return s->lm.ops ? dapt_objective_prepare(&s->lm, ctx, blk, local) : dapt_objective_mlm_prepare(NULL, ctx, blk, local);
}

static dapt_status das_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    das_state *s = state;
    if (s->lm.ops) {
        double mine = 0.0;
        const dapt_status st = dapt_objective_micro_step(&s->lm, ctx, mb, &mine);
        *loss += mine;
        s->term[0] += mine;
        return st;
    }
    dapt_unit_masks masks = view_masks(s);
    double mlm = 0.0;
    DAPT_CHECK(dapt_objective_mlm_term(ctx, mb, s->forward_mask ? &masks : NULL, &mlm));
    *loss += mlm;
    s->term[0] += mlm;
    return DAPT_OK;
}

/* Forward of view v of a micro-batch (unmasked ids, no labels), with its own
 * dropout stream so the views' masks differ from each other and from the
 * MLM pass. */
static dapt_status view_forward(dapt_objective_ctx *ctx, dapt_workspace *ws, const dapt_micro_batch *mb, int v,
                                const dapt_unit_masks *masks)
{
    dapt_batch b = mb->batch;
    b.input_ids = mb->clean_ids;
    b.mlm_labels = NULL;
    b.class_labels = NULL;
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.seed = ctx->seed ^ dapt_rng_stream_tag(DAPT_RNG_VIEW1 + v);
    return dapt_model_forward(ctx->model, ws, &b, v == 2 ? masks : NULL, &opts);
}

static dapt_status view_backward(das_state *s, dapt_objective_ctx *ctx, dapt_workspace *ws, const dapt_micro_batch *mb,
                                 const float *dz)
{
    const int64_t H = ctx->model->config.hidden, n = mb->batch.batch, L = mb->batch.seq_len;
    memset(s->dh, 0, sizeof(float) * (size_t)(n * L * H));
    dapt_mean_pool_backward(dz, mb->batch.attention_mask, n, L, H, s->dh);
    return dapt_model_backward(ctx->model, ws, 0.0, s->dh, NULL);
}

static dapt_status das_step_end(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                double *loss)
{
    das_state *s = state;
    if (s->lm.ops) {
        double mine = 0.0;
        DAPT_CHECK(dapt_objective_step_end(&s->lm, ctx, mbs, count, &mine));
        *loss += mine;
        s->term[0] += mine;
    }
    const int64_t H = ctx->model->config.hidden;
    dapt_unit_masks masks = view_masks(s);
    const int direct = s->ws_fwd == NULL; /* one micro-batch: keep the activations */
    dapt_workspace *ws_of[3] = {ctx->ws, s->ws_view[1], s->ws_view[2]};
    int64_t n = 0;
    for (int64_t k = 0; k < count; k++) {
        const dapt_micro_batch *mb = &mbs[k];
        if (n + mb->batch.batch > s->rows_cap)
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "contrastive views: %lld rows exceed the %lld reserved",
                              (long long)(n + mb->batch.batch), (long long)s->rows_cap);
        if (direct && k > 0) return DAPT_ERROR(DAPT_ERR_INTERNAL, "contrastive views: several micro-batches without caching");
        for (int v = 0; v < 3; v++) {
            dapt_workspace *ws = direct ? ws_of[v] : s->ws_fwd;
            DAPT_CHECK(view_forward(ctx, ws, mb, v, &masks));
            dapt_mean_pool_forward(dapt_ws_last_hidden(ws), mb->batch.attention_mask, mb->batch.batch,
                                   mb->batch.seq_len, H, s->z[v] + n * H);
        }
        n += mb->batch.batch;
    }
    double closs = 0;
    DAPT_CHECK(dapt_contrastive_loss(s->z[0], s->z[1], s->z[2], n, H, s->tau, ctx->data_comm, &closs, s->dz[0],
                                     s->dz[1], s->dz[2]));
    if (!(closs == closs) || closs > 1e300) return DAPT_ERROR(DAPT_ERR_NUMERIC, "contrastive loss is not finite");
    for (int v = 0; v < 3; v++)
        for (int64_t i = 0; i < n * H; i++) s->dz[v][i] *= (float)s->lambda;
    /* Every rank holds the global loss; the loop sums the ranks' shares. */
    *loss += s->lambda * closs / (double)ctx->data_size;
    s->term[1] += s->lambda * closs / (double)ctx->data_size;
    int64_t at = 0;
    for (int64_t k = 0; k < count; k++) {
        const dapt_micro_batch *mb = &mbs[k];
        for (int v = 0; v < 3; v++) {
            if (!direct) DAPT_CHECK(view_forward(ctx, ctx->ws, mb, v, &masks));
            DAPT_CHECK(view_backward(s, ctx, direct ? ws_of[v] : ctx->ws, mb, s->dz[v] + at * H));
        }
        at += mb->batch.batch;
    }
    return DAPT_OK;
}

/* Gradient space only (update space scales AdamW's step instead). */
static dapt_status das_transform(void *state, dapt_objective_ctx *ctx)
{
    das_state *s = state;
    if (s->lm.ops) DAPT_CHECK(dapt_objective_transform_grads(&s->lm, ctx));
    if (s->update_space) return DAPT_OK;
    dapt_model_ranges rg;
    dapt_model_shard_ranges(ctx->model, &rg);
    return dapt_softmask_apply_shard(&ctx->model->config, &rg, &ctx->model->table, ctx->model->grads,
                                     s->importance[DAPT_UNIT_HEAD],
                                     s->all_units ? s->importance[DAPT_UNIT_INTERMEDIATE] : NULL,
                                     s->all_units ? s->importance[DAPT_UNIT_OUTPUT] : NULL, s->style);
}

static dapt_status das_after_update(void *state, dapt_objective_ctx *ctx)
{
    das_state *s = state;
    return s->lm.ops ? dapt_objective_after_update(&s->lm, ctx) : DAPT_OK;
}

static dapt_status das_metrics(void *state, const dapt_objective_ctx *ctx, double *local_values)
{
    das_state *s = state;
    local_values[0] = s->term[0];
    local_values[1] = s->term[1];
    s->term[0] = s->term[1] = 0.0;
    return s->lm.ops ? dapt_objective_metrics(&s->lm, ctx, local_values + 2) : DAPT_OK;
}

/* The delegate's state (DAS's own is in its shared files). */
static dapt_status das_save(void *state, dapt_objective_ctx *ctx, dapt_h5file *f)
{
    das_state *s = state;
    return s->lm.ops && s->lm.ops->save ? s->lm.ops->save(s->lm.state, ctx, f) : DAPT_OK;
}

static dapt_status das_load(void *state, dapt_objective_ctx *ctx, const dapt_h5file *f)
{
    das_state *s = state;
    return s->lm.ops && s->lm.ops->load ? s->lm.ops->load(s->lm.state, ctx, f) : DAPT_OK;
}


/* DGA and DAS share every hook; they differ in the units they mask (create)
 * and in where each domain starts (DGA: from the base model). */
#define DAS_OPS(NAME, FLAGS, CREATE)                                                                              \
    {                                                                                                             \
        .name = NAME, .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL | (FLAGS),                               \
        .n_denominators = DAPT_OBJ_MAX_DENOMINATORS, /* the delegate's (mlm: one) */                             \
        .columns = das_columns, .outputs = das_outputs, .aux_tensors = das_aux, .label_fraction = das_label_fraction, .create = CREATE,                 \
        .destroy = das_destroy, .begin_domain = das_begin_domain, .resume_domain = das_resume_domain,             \
        .end_domain = das_end_domain, .release = das_release, .prepare = das_prepare,                             \
        .micro_step = das_micro_step, .step_end = das_step_end, .transform_grads = das_transform,                 \
        .after_update = das_after_update, .metrics = das_metrics, .save = das_save, .load = das_load,            \
    }

const dapt_objective_ops dapt_objective_das = DAS_OPS("das", 0, das_create);
const dapt_objective_ops dapt_objective_dga = DAS_OPS("dga", DAPT_OBJ_FROM_BASE, dga_create);
