/* MOMETAS's objective sampler as an objective (`train.method = mometas`):
 * at every step one of [objectives] objectives is drawn, keyed by (seed,
 * step) so every rank draws the same one, and the step is delegated to it
 * (prepare, micro_step, step_end, transform_grads, after_update).  Samplers:
 *   mometas      Gumbel-max over logits z (equal at first), meta-learned:
 *                every meta_interval updates each objective's loss on its
 *                fixed held-out rows (global over the data ranks) gives the
 *                reward, and z takes one REINFORCE + entropy step
 *                (sampler_policy.c); OUT/sampler.h5 records p, the rewards
 *                and the held-out losses;
 *   uniform      Gumbel-max over equal logits;
 *   fixed        Gumbel-max over log(weights);
 *   round_robin  objective step mod K.
 * State (z, the rollout, the last held-out losses, the history) is
 * checkpointed, so a resumed run draws and updates exactly as the straight
 * one.  docs/algorithms.md ("MOMETAS"). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objective_heldout.h"
#include "objectives.h"
#include "sampler.h"

/* The objectives a sampler may draw: metrics.csv has a loss column for
 * each, and `objective` is the drawn one's index in this list. */
static const char *const known[] = {"mlm", "atd", "dtd", "cse", "emlm"};
#define N_KNOWN 5

typedef enum { S_MOMETAS, S_UNIFORM, S_FIXED, S_ROUND_ROBIN } sampler_kind;

typedef struct sampler_state {
    const dapt_config *cfg;
    sampler_kind kind;
    size_t K;
    dapt_objective sub[DAPT_SAMPLER_MAX];
    int known_index[DAPT_SAMPLER_MAX];
    double z[DAPT_SAMPLER_MAX];
    double last[DAPT_SAMPLER_MAX];     /* held-out losses of the last meta-evaluation */
    int64_t counts[DAPT_SAMPLER_MAX];  /* the rollout since the last meta-step */
    size_t chosen;
    double step_loss;                  /* this rank's share of the step's loss */
    /* History for sampler.h5 (and checkpoints): M meta-steps. */
    int64_t M, hist_cap;
    double *hist_p, *hist_reward, *hist_loss; /* [M, K], [M], [M + 1, K] (row 0: the start) */
    int64_t *hist_step;                       /* [M]: the update after which each was taken */
    dapt_heldout heldout; /* mometas only */
} sampler_state;

static dapt_status parse_objectives(sampler_state *s, const char *list)
{
    char buf[DAPT_CONFIG_STR_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    s->K = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t)) t++;
        for (char *e = t + strlen(t); e > t && isspace((unsigned char)e[-1]);) *--e = 0;
        int k = -1;
        for (int i = 0; i < N_KNOWN; i++)
            if (!strcmp(t, known[i])) k = i;
        if (k < 0) return DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.objectives: unknown objective '%s' (mlm, atd, dtd, cse, emlm)", t);
        for (size_t i = 0; i < s->K; i++)
            if (s->known_index[i] == k) return DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.objectives: '%s' twice", t);
        s->known_index[s->K++] = k;
    }
    if (s->K == 0) return DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.objectives: no objective given");
    return DAPT_OK;
}

/* z for the rule-based samplers; mometas starts from equal logits too. */
static dapt_status parse_weights(sampler_state *s, const char *list)
{
    for (size_t i = 0; i < s->K; i++) s->z[i] = 0.0;
    if (!list[0]) return DAPT_OK;
    if (s->kind != S_FIXED) return DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.weights is for sampler = fixed only");
    size_t n = 0;
    const char *at = list;
    while (*at) {
        char *end;
        const double w = strtod(at, &end);
        while (isspace((unsigned char)*end)) end++;
        if (end == at || !(w > 0) || !isfinite(w) || (*end && *end != ',') || n == s->K)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.weights '%s': give %zu positive numbers, comma-separated", list,
                              s->K);
        s->z[n++] = log(w);
        at = *end ? end + 1 : end;
    }
    if (n != s->K)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.weights '%s': %zu weights for %zu objectives", list, n, s->K);
    return DAPT_OK;
}

static void sampler_destroy(void *state);

static dapt_status sampler_create(void **state, const dapt_config *cfg)
{
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(sampler_state), "sampler state"));
    sampler_state *s = *state;
    s->cfg = cfg;
    const char *k = cfg->objectives.sampler;
    s->kind = !strcmp(k, "uniform") ? S_UNIFORM : !strcmp(k, "fixed") ? S_FIXED : !strcmp(k, "round_robin") ? S_ROUND_ROBIN : S_MOMETAS;
    dapt_status st = parse_objectives(s, cfg->objectives.objectives);
    if (st == DAPT_OK) st = parse_weights(s, cfg->objectives.weights);
    if (st == DAPT_OK && s->kind == S_MOMETAS && !(cfg->data.eval_fraction > 0))
        st = DAPT_ERROR(DAPT_ERR_CONFIG, "objectives.sampler = mometas needs held-out sequences (data.eval_fraction > 0)");
    for (size_t i = 0; i < s->K && st == DAPT_OK; i++) {
        const dapt_objective_ops *ops = dapt_objective_find(known[s->known_index[i]], DAPT_OBJ_TRAIN);
        if (!ops) st = DAPT_ERROR(DAPT_ERR_INTERNAL, "sampler: objective %s is not registered", known[s->known_index[i]]);
        else st = dapt_objective_create(ops, cfg, &s->sub[i]);
    }
    if (st != DAPT_OK) {
        sampler_destroy(s);
        *state = NULL;
    }
    return st;
}

static void sampler_release(void *state)
{
    sampler_state *s = state;
    for (size_t i = 0; i < s->K; i++) dapt_objective_release(&s->sub[i]);
    dapt_heldout_free(&s->heldout);
}

static void sampler_destroy(void *state)
{
    sampler_state *s = state;
    dapt_heldout_free(&s->heldout);
    for (size_t i = 0; i < s->K; i++)
        if (s->sub[i].ops) dapt_objective_destroy(&s->sub[i]);
    free(s->hist_p);
    free(s->hist_reward);
    free(s->hist_loss);
    free(s->hist_step);
    free(s);
}

/* Every drawn objective's auxiliary tensors. */
static dapt_status sampler_aux(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    sampler_state tmp;
    memset(&tmp, 0, sizeof tmp);
    DAPT_CHECK(parse_objectives(&tmp, cfg->objectives.objectives));
    *n = 0;
    for (size_t i = 0; i < tmp.K; i++) {
        const dapt_objective_ops *ops = dapt_objective_find(known[tmp.known_index[i]], DAPT_OBJ_TRAIN);
        if (!ops || !ops->aux_tensors) continue;
        dapt_tensor_spec mine[DAPT_OBJ_MAX_AUX];
        size_t m = 0;
        DAPT_CHECK(ops->aux_tensors(cfg, mc, mine, &m));
        if (*n + m > DAPT_OBJ_MAX_AUX)
            return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "sampler: more than %d auxiliary tensors", DAPT_OBJ_MAX_AUX);
        memcpy(out + *n, mine, m * sizeof *mine);
        *n += m;
    }
    return DAPT_OK;
}

/* The largest share any drawn objective labels (a step runs one of them). */
static double sampler_label_fraction(const dapt_config *cfg)
{
    sampler_state tmp;
    memset(&tmp, 0, sizeof tmp);
    double p = cfg->train.mlm_probability;
    if (parse_objectives(&tmp, cfg->objectives.objectives) != DAPT_OK) {
        dapt_error_clear(); /* create reports it */
        return p;
    }
    for (size_t i = 0; i < tmp.K; i++) {
        const double q = dapt_objective_label_fraction(dapt_objective_find(known[tmp.known_index[i]], DAPT_OBJ_TRAIN), cfg);
        if (q > p) p = q;
    }
    return p;
}

/* Each objective's held-out loss on its own rows (objective o: held-out
 * sequences o * R .. o * R + R - 1).  Collective over data_comm. */
static dapt_status heldout_all(sampler_state *s, dapt_objective_ctx *ctx, double *loss)
{
    const int64_t R = ctx->cfg->objectives.heldout_rows;
    for (size_t o = 0; o < s->K; o++) DAPT_CHECK(dapt_heldout_loss(&s->heldout, &s->sub[o], ctx, (int64_t)o * R, &loss[o]));
    return DAPT_OK;
}

/* Room for meta-step M (and the start row of the losses). */
static dapt_status history_reserve(sampler_state *s, int64_t M)
{
    if (M < s->hist_cap) return DAPT_OK;
    const int64_t cap = s->hist_cap ? 2 * s->hist_cap : 16;
    const size_t K = s->K;
    double *p = realloc(s->hist_p, (size_t)cap * K * sizeof *p);
    if (p) s->hist_p = p;
    double *r = realloc(s->hist_reward, (size_t)cap * sizeof *r);
    if (r) s->hist_reward = r;
    double *l = realloc(s->hist_loss, (size_t)(cap + 1) * K * sizeof *l);
    if (l) s->hist_loss = l;
    int64_t *t = realloc(s->hist_step, (size_t)cap * sizeof *t);
    if (t) s->hist_step = t;
    if (!p || !r || !l || !t) return DAPT_ERROR(DAPT_ERR_NOMEM, "sampler: no memory for %lld meta-steps", (long long)cap);
    s->hist_cap = cap;
    return DAPT_OK;
}

/* OUT/sampler.h5 (or the domain's): the whole history, rewritten after
 * every meta-step by the writing rank (under a temporary name, renamed). */
static dapt_status write_sampler_file(const sampler_state *s, const dapt_objective_ctx *ctx)
{
    if (!ctx->writer || ctx->data_rank != 0) return DAPT_OK;
    char path[DAPT_CONFIG_STR_MAX + 64];
    snprintf(path, sizeof path, "%s/sampler.h5", ctx->domain->dir);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(MPI_COMM_SELF, path, 1, ctx->cfg, &f));
    const int64_t K = (int64_t)s->K, dp[2] = {s->M, K}, dl[2] = {s->M + 1, K}, dm[1] = {s->M};
    char *names[DAPT_SAMPLER_MAX];
    for (size_t i = 0; i < s->K; i++) names[i] = (char *)known[s->known_index[i]];
    dapt_status st = dapt_h5_write_strings(&f, "objectives", names, s->K);
    if (st == DAPT_OK) st = dapt_h5_write_all(&f, "step", DAPT_H5_I64, 1, dm, s->hist_step);
    if (st == DAPT_OK) st = dapt_h5_write_all(&f, "p", DAPT_H5_F64, 2, dp, s->hist_p);
    if (st == DAPT_OK) st = dapt_h5_write_all(&f, "reward", DAPT_H5_F64, 1, dm, s->hist_reward);
    if (st == DAPT_OK) st = dapt_h5_write_all(&f, "heldout_loss", DAPT_H5_F64, 2, dl, s->hist_loss);
    if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "format", "dapt-sampler");
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "version", 1);
    if (st == DAPT_OK) return dapt_h5_commit(&f);
    dapt_h5_abort(&f);
    return st;
}

/* One meta-step after update `step` (0-based): held-out losses, reward,
 * z's gradient step, the history and sampler.h5. */
static dapt_status meta_step(sampler_state *s, dapt_objective_ctx *ctx)
{
    const dapt_config *cfg = ctx->cfg;
    double now[DAPT_SAMPLER_MAX];
    DAPT_CHECK(heldout_all(s, ctx, now));
    const double reward = dapt_sampler_reward(s->last, now, s->K, cfg->objectives.reward_threshold);
    dapt_sampler_update(s->z, s->K, s->counts, reward, cfg->objectives.meta_lr, cfg->objectives.meta_gamma);
    memcpy(s->last, now, s->K * sizeof *now);
    memset(s->counts, 0, sizeof s->counts);
    DAPT_CHECK(history_reserve(s, s->M));
    dapt_sampler_probs(s->z, s->K, s->hist_p + s->M * (int64_t)s->K);
    s->hist_reward[s->M] = reward;
    s->hist_step[s->M] = ctx->step + 1;
    memcpy(s->hist_loss + (s->M + 1) * (int64_t)s->K, now, s->K * sizeof *now);
    s->M++;
    return write_sampler_file(s, ctx);
}

static dapt_status sampler_begin(void *state, dapt_objective_ctx *ctx)
{
    sampler_state *s = state;
    for (size_t i = 0; i < s->K; i++) DAPT_CHECK(dapt_objective_begin_domain(&s->sub[i], ctx));
    if (s->kind != S_MOMETAS) return DAPT_OK;
    DAPT_CHECK(dapt_heldout_alloc(&s->heldout, ctx, ctx->cfg->objectives.heldout_rows));
    /* The starting losses (a resumed run's checkpoint replaces them). */
    DAPT_CHECK(heldout_all(s, ctx, s->last));
    s->M = 0;
    memset(s->counts, 0, sizeof s->counts);
    DAPT_CHECK(history_reserve(s, 0));
    memcpy(s->hist_loss, s->last, s->K * sizeof *s->last);
    return DAPT_OK;
}

static dapt_status sampler_resume_domain(void *state, dapt_objective_ctx *ctx)
{
    sampler_state *s = state;
    for (size_t i = 0; i < s->K; i++) DAPT_CHECK(dapt_objective_resume_domain(&s->sub[i], ctx));
    return DAPT_OK;
}

static dapt_status sampler_end(void *state, dapt_objective_ctx *ctx)
{
    sampler_state *s = state;
    for (size_t i = 0; i < s->K; i++) DAPT_CHECK(dapt_objective_end_domain(&s->sub[i], ctx));
    return DAPT_OK;
}

/* The draw of this step, then the drawn objective's corruption.  Every
 * rank draws the same objective: the key is (seed, step). */
static dapt_status sampler_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local)
{
    sampler_state *s = state;
    s->chosen = s->kind == S_ROUND_ROBIN ? (size_t)(blk->key_step % s->K)
                                         : dapt_sampler_draw(s->z, s->K, ctx->seed, blk->key_step);
    s->step_loss = 0.0;
    return dapt_objective_prepare(&s->sub[s->chosen], ctx, blk, local);
}

static dapt_status sampler_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    sampler_state *s = state;
    double mine = 0.0;
    const dapt_status st = dapt_objective_micro_step(&s->sub[s->chosen], ctx, mb, &mine);
    *loss += mine;
    s->step_loss += mine;
    return st;
}

static dapt_status sampler_step_end(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                    double *loss)
{
    sampler_state *s = state;
    double mine = 0.0;
    const dapt_status st = dapt_objective_step_end(&s->sub[s->chosen], ctx, mbs, count, &mine);
    *loss += mine;
    s->step_loss += mine;
    return st;
}

static dapt_status sampler_transform(void *state, dapt_objective_ctx *ctx)
{
    sampler_state *s = state;
    return dapt_objective_transform_grads(&s->sub[s->chosen], ctx);
}

/* The rollout holds the updates taken; a meta-step every meta_interval. */
static dapt_status sampler_after_update(void *state, dapt_objective_ctx *ctx)
{
    sampler_state *s = state;
    DAPT_CHECK(dapt_objective_after_update(&s->sub[s->chosen], ctx));
    if (s->kind != S_MOMETAS) return DAPT_OK;
    s->counts[s->chosen]++;
    if ((ctx->step + 1) % ctx->cfg->objectives.meta_interval != 0) return DAPT_OK;
    return meta_step(s, ctx);
}

/* objective (the drawn one's index in `known`), then one loss column per
 * known objective: the step's loss under the drawn one, NaN elsewhere. */
static dapt_status sampler_metrics(void *state, const dapt_objective_ctx *ctx, double *local)
{
    sampler_state *s = state;
    double scratch[DAPT_OBJ_MAX_COLUMNS] = {0};
    DAPT_CHECK(dapt_objective_metrics(&s->sub[s->chosen], ctx, scratch)); /* resets its per-step terms */
    local[0] = ctx->data_rank == 0 ? (double)s->known_index[s->chosen] : 0.0;
    for (int i = 0; i < N_KNOWN; i++) local[1 + i] = i == s->known_index[s->chosen] ? s->step_loss : NAN;
    return DAPT_OK;
}

/* z, the rollout, the last losses and the history (mometas only), so a
 * resumed run continues bit for bit and rewrites the whole sampler.h5. */
static dapt_status sampler_save(void *state, dapt_objective_ctx *ctx, dapt_h5file *f)
{
    sampler_state *s = state;
    for (size_t i = 0; i < s->K; i++)
        if (s->sub[i].ops->save) DAPT_CHECK(s->sub[i].ops->save(s->sub[i].state, ctx, f));
    if (s->kind != S_MOMETAS) return DAPT_OK;
    const int64_t K = (int64_t)s->K, rows = s->M > 0 ? s->M : 1;
    const int64_t dk[1] = {K}, dp[2] = {rows, K}, dm[1] = {rows}, dl[2] = {s->M + 1, K};
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", "sampler_meta_steps", s->M));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "sampler_objectives", ctx->cfg->objectives.objectives));
    DAPT_CHECK(dapt_h5_write_all(f, "sampler.z", DAPT_H5_F64, 1, dk, s->z));
    DAPT_CHECK(dapt_h5_write_all(f, "sampler.last", DAPT_H5_F64, 1, dk, s->last));
    DAPT_CHECK(dapt_h5_write_all(f, "sampler.counts", DAPT_H5_I64, 1, dk, s->counts));
    DAPT_CHECK(dapt_h5_write_all(f, "sampler.p", DAPT_H5_F64, 2, dp, s->hist_p));
    DAPT_CHECK(dapt_h5_write_all(f, "sampler.reward", DAPT_H5_F64, 1, dm, s->hist_reward));
    DAPT_CHECK(dapt_h5_write_all(f, "sampler.step", DAPT_H5_I64, 1, dm, s->hist_step));
    return dapt_h5_write_all(f, "sampler.heldout_loss", DAPT_H5_F64, 2, dl, s->hist_loss);
}

/* A dataset of exactly n elements into out. */
static dapt_status read_exact(const dapt_h5file *f, const char *name, dapt_h5_type type, size_t n, void *out)
{
    void *buf = NULL;
    int ndim = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    DAPT_CHECK(dapt_h5_read_all(f, name, type, &buf, &ndim, dims));
    int64_t have = 1;
    for (int i = 0; i < ndim; i++) have *= dims[i];
    if (have < (int64_t)n) {
        free(buf);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "checkpoint: %s holds %lld values, %zu expected", name, (long long)have, n);
    }
    memcpy(out, buf, n * dapt_h5_type_size(type));
    free(buf);
    return DAPT_OK;
}

static dapt_status sampler_load(void *state, dapt_objective_ctx *ctx, const dapt_h5file *f)
{
    sampler_state *s = state;
    for (size_t i = 0; i < s->K; i++)
        if (s->sub[i].ops->load) DAPT_CHECK(s->sub[i].ops->load(s->sub[i].state, ctx, f));
    if (s->kind != S_MOMETAS) return DAPT_OK;
    char *list = NULL;
    DAPT_CHECK(dapt_h5_attr_get_string(f, "/", "sampler_objectives", &list));
    const int same = !strcmp(list, ctx->cfg->objectives.objectives);
    free(list);
    if (!same) return DAPT_ERROR(DAPT_ERR_CONFIG, "--resume: the checkpoint's objectives.objectives differ from the run's");
    int64_t M = 0;
    DAPT_CHECK(dapt_h5_attr_get_int64(f, "/", "sampler_meta_steps", &M));
    DAPT_CHECK(history_reserve(s, M));
    const size_t K = s->K;
    DAPT_CHECK(read_exact(f, "sampler.z", DAPT_H5_F64, K, s->z));
    DAPT_CHECK(read_exact(f, "sampler.last", DAPT_H5_F64, K, s->last));
    DAPT_CHECK(read_exact(f, "sampler.counts", DAPT_H5_I64, K, s->counts));
    DAPT_CHECK(read_exact(f, "sampler.p", DAPT_H5_F64, (size_t)M * K, s->hist_p));
    DAPT_CHECK(read_exact(f, "sampler.reward", DAPT_H5_F64, (size_t)M, s->hist_reward));
    DAPT_CHECK(read_exact(f, "sampler.step", DAPT_H5_I64, (size_t)M, s->hist_step));
    DAPT_CHECK(read_exact(f, "sampler.heldout_loss", DAPT_H5_F64, (size_t)(M + 1) * K, s->hist_loss));
    s->M = M;
    return DAPT_OK;
}

static const char *const sampler_columns[] = {"objective", "mlm_loss", "atd_loss", "dtd_loss", "cse_loss",
                                                "emlm_loss", NULL};
static const char *const sampler_outputs[] = {"sampler.h5", NULL};

const dapt_objective_ops dapt_objective_mometas = {
    .name = "mometas",
    .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL,
    .n_denominators = DAPT_OBJ_MAX_DENOMINATORS,
    .columns = sampler_columns,
    .outputs = sampler_outputs,
    .aux_tensors = sampler_aux,
    .label_fraction = sampler_label_fraction,
    .create = sampler_create,
    .destroy = sampler_destroy,
    .begin_domain = sampler_begin,
    .resume_domain = sampler_resume_domain,
    .end_domain = sampler_end,
    .release = sampler_release,
    .prepare = sampler_prepare,
    .micro_step = sampler_micro_step,
    .step_end = sampler_step_end,
    .transform_grads = sampler_transform,
    .after_update = sampler_after_update,
    .metrics = sampler_metrics,
    .save = sampler_save,
    .load = sampler_load,
};
