/* What DGA and DAS carry from one domain to the next (docs/training.md):
 * the importance of each source -- "general" (the KL proxy on the domain's
 * data, MLM on data.general_corpus when given, or das.general_importance)
 * and, for DAS, each finished domain's own MLM importance --, the soft-mask
 * of each domain (DAS: the element-wise max over general and the earlier
 * domains; DGA: the general source of that domain, computed from the base
 * model each time), OUT/importance.h5 and the held-out representations in
 * OUT/representations.h5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/corpus_pass.h"
#include "dapt/fsio.h"
#include "dapt/log.h"
#include "das_state.h"

static void copy_name(char *dst, size_t len, const char *src) { snprintf(dst, len, "%.*s", (int)(len - 1), src); }

static void out_path(const dapt_objective_ctx *ctx, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", ctx->domain->out_dir, name);
}

static dapt_importance_source *find_source(das_state *s, const char *name)
{
    for (size_t i = 0; i < s->nsrc; i++)
        if (!strcmp(s->src[i].name, name)) return &s->src[i];
    return NULL;
}

/* DAS has one general source for every domain; DGA one per domain (each
 * computed from the base model on that domain's data). */
static const char *general_name(const das_state *s, const dapt_objective_ctx *ctx, char *buf, size_t len)
{
    if (s->all_units || !ctx->domain->listed) snprintf(buf, len, "general");
    else snprintf(buf, len, "general_%s", ctx->domain->name);
    return buf;
}

static dapt_status write_importance(das_state *s, dapt_objective_ctx *ctx)
{
    char path[DAPT_CONFIG_STR_MAX + 32];
    out_path(ctx, "importance.h5", path, sizeof path);
    if (!ctx->writer) return DAPT_OK;
    return dapt_importance_write(ctx->data_comm, path, s->base, s->src, s->nsrc, s->masks, s->nmask);
}

/* A precomputed general importance (dapt importance, or chosen values). */
static dapt_status given_source(das_state *s, dapt_objective_ctx *ctx, const char *name, dapt_importance_source *src)
{
    const char *file = s->base->das.general_importance;
    char use[128] = "general";
    int found = 0;
    DAPT_CHECK(dapt_importance_read_source(ctx->data_comm, file, use, &ctx->model->config, src, &found));
    if (!found) {
        if (!dapt_fs_exists(file)) return DAPT_ERROR(DAPT_ERR_IO, "das.general_importance: %s does not exist", file);
        DAPT_CHECK(dapt_importance_only_source(ctx->data_comm, file, use, sizeof use));
        DAPT_CHECK(dapt_importance_read_source(ctx->data_comm, file, use, &ctx->model->config, src, &found));
    }
    copy_name(src->name, sizeof src->name, name);
    s->nsrc++;
    dapt_info("importance %s: source %s of %s", name, use, file);
    return DAPT_OK;
}

/* Importance of source `name`: already held, else (on --resume) read from
 * OUT/importance.h5, else computed with the current model: MLM on
 * data.general_corpus (general sources, when given) or on the domain's
 * corpus, KL on the domain's corpus otherwise. */
static dapt_status ensure_source(das_state *s, dapt_objective_ctx *ctx, const char *name, int general)
{
    if (find_source(s, name)) return DAPT_OK;
    if (s->nsrc == DAS_MAX_SOURCES) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "too many importance sources");
    dapt_importance_source *src = &s->src[s->nsrc];
    char path[DAPT_CONFIG_STR_MAX + 32];
    out_path(ctx, "importance.h5", path, sizeof path);
    if (ctx->domain->resume) {
        int found = 0;
        DAPT_CHECK(dapt_importance_read_source(ctx->data_comm, path, name, &ctx->model->config, src, &found));
        if (found) {
            s->nsrc++;
            dapt_info("importance %s: read from %s (%.0f tokens)", name, path, src->tokens);
            return DAPT_OK;
        }
    }
    const dapt_config *cfg = s->base;
    if (general && cfg->das.general_importance[0]) return given_source(s, ctx, name, src);
    dapt_importance_mode mode = strcmp(cfg->das.accumulation, "signed") ? DAPT_IMPORTANCE_ABSOLUTE : DAPT_IMPORTANCE_SIGNED;
    const int use_general = general && cfg->data.general_corpus[0];
    dapt_corpus_importance_opts o = {general && !use_general ? DAPT_PROXY_KL : DAPT_PROXY_MLM,
                                     cfg->das.importance_samples, ctx->global_rows, ctx->seed,
                                     cfg->das.proxy_temperature, ctx->seq_len, (int)cfg->model.recompute,
                                     dapt_proxy_passes_of(cfg), dapt_proxy_direction_of(cfg)};
    dapt_sequences *gen = NULL;
    dapt_importance imp;
    DAPT_CHECK(dapt_importance_create(&ctx->model->config, mode, &imp));
    dapt_status st = DAPT_OK;
    if (use_general) DAPT_TRY(dapt_sequences_open(cfg->data.general_corpus, ctx->seq_spec, &gen));
    double t0 = dapt_now();
    DAPT_TRY(dapt_importance_from_corpus(ctx->model, gen ? gen : ctx->seqs, ctx->mlm, &o, &imp, ctx->data_comm));
    double dt = dapt_now() - t0;
    DAPT_TRY(dapt_importance_source_make(&imp, name, o.proxy,
                                         strcmp(cfg->das.normalization, "rank") ? DAPT_NORM_TANH_Z : DAPT_NORM_RANK, src));
    s->nsrc++;
    dapt_info("importance %s: %s proxy on %s, %lld batches, %.0f tokens in %.1f s (%.0f tokens/s)", name,
              o.proxy == DAPT_PROXY_KL ? "KL" : "MLM", use_general ? cfg->data.general_corpus : ctx->cfg->data.corpus,
              (long long)imp.batches, imp.tokens, dt, dt > 0 ? imp.tokens / dt : 0.0);
cleanup:
    dapt_sequences_close(gen);
    dapt_importance_free(&imp);
    return st;
}

/* The soft-mask of domain t: max over [general, domains 0..t-1] (das) or
 * the general source (dga).  Recorded for importance.h5. */
static dapt_status domain_mask(das_state *s, dapt_objective_ctx *ctx)
{
    const size_t t = (size_t)ctx->domain->index;
    char gname[160];
    general_name(s, ctx, gname, sizeof gname);
    const dapt_importance_source *use[DAS_MAX_SOURCES];
    size_t nuse = 0;
    if (s->nmask == DAS_MAX_DOMAINS) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "too many domains (%d)", DAS_MAX_DOMAINS);
    dapt_importance_mask_entry *e = &s->masks[s->nmask];
    memset(e, 0, sizeof *e);
    copy_name(e->name, sizeof e->name, ctx->domain->name);
    const dapt_importance_source *g = find_source(s, gname);
    if (!g) return DAPT_ERROR(DAPT_ERR_INTERNAL, "importance source %s missing", gname);
    use[nuse++] = g;
    size_t at = (size_t)snprintf(e->sources, sizeof e->sources, "%s", gname);
    for (size_t u = 0; s->all_units && u < t; u++) {
        const dapt_importance_source *d = find_source(s, s->names[u]);
        if (!d) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s/importance.h5 has no importance of domain %s: run again with --force",
                                  ctx->domain->out_dir, s->names[u]);
        use[nuse++] = d;
        if (at < sizeof e->sources) at += (size_t)snprintf(e->sources + at, sizeof e->sources - at, ",%s", s->names[u]);
    }
    dapt_importance_source tmp[DAS_MAX_SOURCES];
    for (size_t i = 0; i < nuse; i++) tmp[i] = *use[i];
    DAPT_CHECK(dapt_importance_combine_sources(tmp, nuse, g->layers, g->units, s->mask_arr[s->nmask]));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        e->norm[k] = s->all_units || k == DAPT_UNIT_HEAD ? s->mask_arr[s->nmask][k] : NULL;
        s->importance[k] = e->norm[k];
    }
    s->nmask++;
    return DAPT_OK;
}

static dapt_status note_domain(das_state *s, const dapt_objective_ctx *ctx)
{
    const int64_t t = ctx->domain->index;
    if (t < 0 || t >= DAS_MAX_DOMAINS) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "too many domains (%d)", DAS_MAX_DOMAINS);
    copy_name(s->names[t], sizeof s->names[t], ctx->domain->name);
    return DAPT_OK;
}

dapt_status das_domain_begin(das_state *s, dapt_objective_ctx *ctx)
{
    char gname[160];
    DAPT_CHECK(note_domain(s, ctx));
    DAPT_CHECK(ensure_source(s, ctx, general_name(s, ctx, gname, sizeof gname), 1));
    DAPT_CHECK(domain_mask(s, ctx));
    return write_importance(s, ctx);
}

static dapt_status write_representations(das_state *s, dapt_objective_ctx *ctx)
{
    char path[DAPT_CONFIG_STR_MAX + 32], obj[256];
    out_path(ctx, "representations.h5", path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(ctx->data_comm, path, 1, s->base, &f));
    dapt_status st = DAPT_OK;
    const int64_t H = ctx->model->config.hidden;
    DAPT_TRY(dapt_h5_set_format(&f, "dapt-representations"));
    for (size_t i = 0; i < s->nrep; i++) {
        const das_reps *d = &s->reps[i];
        const int64_t dims[2] = {d->total, H}, start[2] = {d->first, 0}, count[2] = {d->rows, H};
        snprintf(obj, sizeof obj, "/%s/z1", d->name);
        DAPT_TRY(dapt_h5_write(&f, obj, DAPT_H5_F32, 2, dims, start, count, d->z1));
        snprintf(obj, sizeof obj, "/%s/z3", d->name);
        DAPT_TRY(dapt_h5_write(&f, obj, DAPT_H5_F32, 2, dims, start, count, d->z3));
        snprintf(obj, sizeof obj, "/%s/doc_ids", d->name);
        DAPT_TRY(dapt_h5_write(&f, obj, DAPT_H5_I64, 1, dims, start, count, d->docs));
        snprintf(obj, sizeof obj, "/%s", d->name);
        DAPT_TRY(dapt_h5_attr_set_int64(&f, obj, "step", d->step));
        DAPT_TRY(dapt_h5_attr_set_string(&f, obj, "split", "held-out"));
        DAPT_TRY(dapt_h5_attr_set_int64(&f, obj, "first_sequence", 0));
    }
    return dapt_h5_commit(&f);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

/* z1 / z3 of the first das.representation_samples held-out sequences. */
static dapt_status domain_representations(das_state *s, dapt_objective_ctx *ctx)
{
    int64_t n = s->base->das.representation_samples, have = dapt_sequences_count(ctx->seqs, DAPT_SPLIT_EVAL);
    if (n > have) n = have;
    if (n == 0) {
        dapt_warn("domain %s: no held-out sequences, so no representations are written", ctx->domain->name);
        return DAPT_OK;
    }
    das_reps *d = &s->reps[s->nrep];
    memset(d, 0, sizeof *d);
    copy_name(d->name, sizeof d->name, ctx->domain->name);
    dapt_corpus_batches cb;
    DAPT_CHECK(dapt_corpus_batches_init(&cb, ctx->seqs, ctx->mlm, DAPT_SPLIT_EVAL, ctx->seed, ctx->seq_len, n, n,
                                        ctx->data_rank, ctx->data_size));
    dapt_unit_masks um = {s->importance[DAPT_UNIT_HEAD], s->importance[DAPT_UNIT_INTERMEDIATE],
                          s->importance[DAPT_UNIT_OUTPUT]};
    dapt_status st = dapt_representations(ctx->model, &cb, &um, &d->z1, &d->z3, &d->docs, &d->first, &d->rows);
    dapt_corpus_batches_free(&cb);
    DAPT_CHECK(st);
    d->total = n;
    d->step = ctx->step;
    s->nrep++;
    return ctx->writer ? write_representations(s, ctx) : DAPT_OK;
}

/* Reads back a finished domain's representations (resume). */
static dapt_status read_representations(das_state *s, dapt_objective_ctx *ctx)
{
    char path[DAPT_CONFIG_STR_MAX + 32], obj[256];
    out_path(ctx, "representations.h5", path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(ctx->data_comm, path, &f));
    dapt_status st = DAPT_OK;
    das_reps *d = &s->reps[s->nrep];
    memset(d, 0, sizeof *d);
    copy_name(d->name, sizeof d->name, ctx->domain->name);
    snprintf(obj, sizeof obj, "/%s/z1", d->name);
    if (!dapt_h5_exists(&f, obj)) goto cleanup; /* no held-out data in that domain */
    int nd;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type ty;
    DAPT_TRY(dapt_h5_info(&f, obj, &nd, dims, &ty));
    const int64_t H = ctx->model->config.hidden;
    if (nd != 2 || dims[1] != H) DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s is not [n, %lld]", path, obj, (long long)H);
    d->total = dims[0];
    dapt_share(d->total, ctx->data_rank, ctx->data_size, &d->first, &d->rows);
    DAPT_TRY(dapt_alloc((void **)&d->z1, sizeof(float) * (size_t)((d->rows + 1) * H), "representations"));
    DAPT_TRY(dapt_alloc((void **)&d->z3, sizeof(float) * (size_t)((d->rows + 1) * H), "representations"));
    DAPT_TRY(dapt_alloc((void **)&d->docs, sizeof(int64_t) * (size_t)(d->rows + 1), "document ids"));
    const int64_t start[2] = {d->first, 0}, count[2] = {d->rows, H};
    DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_F32, 2, start, count, d->z1));
    snprintf(obj, sizeof obj, "/%s/z3", d->name);
    DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_F32, 2, start, count, d->z3));
    snprintf(obj, sizeof obj, "/%s/doc_ids", d->name);
    DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_I64, 1, start, count, d->docs));
    snprintf(obj, sizeof obj, "/%s", d->name);
    DAPT_TRY(dapt_h5_attr_get_int64(&f, obj, "step", &d->step));
    s->nrep++;
cleanup:
    if (st != DAPT_OK) {
        free(d->z1);
        free(d->z3);
        free(d->docs);
    }
    dapt_h5_close(&f);
    return st;
}

/* After the domain trained: DAS's importance of what it learned, then the
 * representations. */
dapt_status das_domain_end(das_state *s, dapt_objective_ctx *ctx)
{
    if (s->all_units) {
        DAPT_CHECK(ensure_source(s, ctx, ctx->domain->name, 0));
        DAPT_CHECK(write_importance(s, ctx));
    }
    return domain_representations(s, ctx);
}

/* A domain finished in an earlier run (--resume): take back what later
 * domains need. */
dapt_status das_domain_resume(das_state *s, dapt_objective_ctx *ctx)
{
    char gname[160];
    DAPT_CHECK(note_domain(s, ctx));
    DAPT_CHECK(ensure_source(s, ctx, general_name(s, ctx, gname, sizeof gname), 1));
    if (s->all_units) {
        int found = 0;
        char path[DAPT_CONFIG_STR_MAX + 32];
        out_path(ctx, "importance.h5", path, sizeof path);
        if (s->nsrc == DAS_MAX_SOURCES) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "too many importance sources");
        DAPT_CHECK(dapt_importance_read_source(ctx->data_comm, path, ctx->domain->name, &ctx->model->config,
                                               &s->src[s->nsrc], &found));
        if (!found)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s has no importance of finished domain %s: run again with --force", path,
                              ctx->domain->name);
        s->nsrc++;
    }
    DAPT_CHECK(domain_mask(s, ctx));
    return read_representations(s, ctx);
}

void das_domains_free(das_state *s)
{
    for (size_t i = 0; i < s->nsrc; i++) dapt_importance_source_free(&s->src[i]);
    for (size_t i = 0; i < s->nmask; i++)
        for (int k = 0; k < DAPT_UNIT_KINDS; k++) free(s->mask_arr[i][k]);
    for (size_t i = 0; i < s->nrep; i++) {
        free(s->reps[i].z1);
        free(s->reps[i].z3);
        free(s->reps[i].docs);
    }
    s->nsrc = s->nmask = s->nrep = 0;
}
