/* dapt analyze delta over two model files: every weight matrix's change,
 * every unit's change, and how they rank against DAS importance. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"
#include "dapt/das.h"
#include "dapt/modelfile.h"

static dapt_status same_shape(const char *a, const char *b, const dapt_model_config *x, const dapt_model_config *y)
{
    struct {
        const char *name;
        int64_t u, v;
    } f[] = {{"vocab_size", x->vocab_size, y->vocab_size},
             {"hidden_size", x->hidden, y->hidden},
             {"num_hidden_layers", x->layers, y->layers},
             {"num_attention_heads", x->heads, y->heads},
             {"intermediate_size", x->intermediate, y->intermediate},
             {"max_position_embeddings", x->max_position, y->max_position},
             {"type_vocab_size", x->type_vocab_size, y->type_vocab_size},
             {"has_pooler", x->has_pooler, y->has_pooler},
             {"has_mlm_head", x->has_mlm_head, y->has_mlm_head},
             {"num_labels", x->num_labels, y->num_labels}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].u != f[i].v)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s and %s are models of different shapes (%s %lld vs %lld)", a, b,
                              f[i].name, (long long)f[i].u, (long long)f[i].v);
    return DAPT_OK;
}

static dapt_status read_vector(const dapt_h5file *f, const char *name, int64_t n, double **out)
{
    int ndim = 0;
    int64_t dims[DAPT_H5_MAX_DIMS] = {0};
    if (!dapt_h5_exists(f, name)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no dataset '%s'", f->path, name);
    DAPT_CHECK(dapt_h5_read_all(f, name, DAPT_H5_F64, (void **)out, &ndim, dims));
    if (ndim != 1 || dims[0] != n)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: dataset '%s' is not [%lld]", f->path, name, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite((*out)[i])) return DAPT_ERROR(DAPT_ERR_NUMERIC, "%s: dataset '%s' has NaN or an infinity at [%lld]",
                                                    f->path, name, (long long)i);
    return DAPT_OK;
}

/* One 2-D weight: statistics of dW and its units' changes. */
static dapt_status one_matrix(const dapt_pgrid *g, const dapt_h5file *fb, const dapt_h5file *fa, const char *name,
                              const char *ds, int block, dapt_delta_result *r, size_t k)
{
    dapt_dmat B, A;
    memset(&A, 0, sizeof A);
    dapt_status st = dapt_dmat_read_h5(fb, ds, g, block, &B);
    if (st != DAPT_OK) return st;
    DAPT_TRY(dapt_dmat_read_h5(fa, ds, g, block, &A));
    if (A.m != B.m || A.n != B.n)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: '%s' is [%lld, %lld], in %s [%lld, %lld]", fa->path, ds, (long long)A.m,
                   (long long)A.n, fb->path, (long long)B.m, (long long)B.n);
    DAPT_TRY(dapt_delta_matrix(&A, &B, &r->stats[k]));
    DAPT_TRY(dapt_unit_change_add_matrix(&r->units, &r->mc, name, &A, &B));
cleanup:
    dapt_dmat_free(&A);
    dapt_dmat_free(&B);
    return st;
}

static dapt_status all_tensors(const dapt_pgrid *g, const dapt_h5file *fb, const dapt_h5file *fa, int block,
                               dapt_delta_result *r)
{
    dapt_param_table table;
    memset(&table, 0, sizeof table);
    double *vb = NULL, *va = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_param_table_build(&r->mc, &table));
    DAPT_TRY(dapt_calloc((void **)&r->names, table.count, sizeof *r->names, "tensor names"));
    DAPT_TRY(dapt_calloc((void **)&r->stats, table.count, sizeof *r->stats, "tensor statistics"));
    DAPT_TRY(dapt_unit_change_create(&r->mc, &r->units));
    for (size_t i = 0; i < table.count; i++) {
        const dapt_tensor *t = &table.tensors[i];
        char ds[96];
        snprintf(ds, sizeof ds, "params/%s", t->name);
        if (t->ndim == 2) {
            snprintf(r->names[r->ntensors], sizeof r->names[0], "%s", t->name);
            DAPT_TRY(one_matrix(g, fb, fa, t->name, ds, block, r, r->ntensors));
            r->ntensors++;
            continue;
        }
        DAPT_TRY(dapt_status_agree(g->comm, read_vector(fb, ds, t->shape[0], &vb)));
        DAPT_TRY(dapt_status_agree(g->comm, read_vector(fa, ds, t->shape[0], &va)));
        for (int64_t j = 0; j < t->shape[0]; j++) va[j] -= vb[j];
        dapt_unit_change_add_vector(&r->units, &r->mc, t->name, va, vb, t->shape[0]);
        free(vb);
        free(va);
        vb = va = NULL;
    }
    dapt_unit_change_finish(&r->units);
    /* Reductions may round differently on different ranks; the correlations
     * and attributes must not: every rank takes rank 0's unit changes. */
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        int n = (int)(r->units.layers * r->units.units[k]);
        DAPT_TRY(DAPT_MPI(MPI_Bcast(r->units.change[k], n, MPI_DOUBLE, 0, g->comm)));
        DAPT_TRY(DAPT_MPI(MPI_Bcast(r->units.before[k], n, MPI_DOUBLE, 0, g->comm)));
    }
cleanup:
    free(vb);
    free(va);
    dapt_param_table_free(&table);
    return st;
}

/* ---- importance ------------------------------------------------------------ */

static dapt_status count_member(const char *name, void *user)
{
    char *only = user;
    if (only[0]) {
        only[0] = 1; /* a second one: ambiguous */
    } else {
        snprintf(only + 1, 127, "%s", name);
        only[0] = 2;
    }
    return DAPT_OK;
}

/* The group holding the importance arrays to use ("softmask/<d>" holds
 * <unit> datasets; "importance/<unit>/<s>" holds normalized). */
static dapt_status pick_source(const dapt_h5file *f, const char *want, char *source, size_t len)
{
    char path[200], only[128] = {0};
    if (want) {
        snprintf(path, sizeof path, "softmask/%s", want);
        if (dapt_h5_exists(f, path)) return snprintf(source, len, "%s", path), DAPT_OK;
        snprintf(path, sizeof path, "importance/head/%s", want);
        if (dapt_h5_exists(f, path)) return snprintf(source, len, "importance/%s", want), DAPT_OK;
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no soft mask or importance source '%s'", f->path, want);
    }
    if (dapt_h5_exists(f, "softmask")) DAPT_CHECK(dapt_h5_list(f, "softmask", count_member, only));
    if (only[0] == 2) return snprintf(source, len, "softmask/%s", only + 1), DAPT_OK;
    if (dapt_h5_exists(f, "importance/head/general")) return snprintf(source, len, "importance/general"), DAPT_OK;
    only[0] = 0;
    if (dapt_h5_exists(f, "importance/head")) DAPT_CHECK(dapt_h5_list(f, "importance/head", count_member, only));
    if (only[0] == 2) return snprintf(source, len, "importance/%s", only + 1), DAPT_OK;
    return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no single soft mask or importance source to use; name one with --source", f->path);
}

static dapt_status read_importance(const dapt_pgrid *g, const dapt_delta_opts *o, dapt_delta_result *r)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_status_agree(g->comm, dapt_h5_open(g->comm, o->importance, &f)));
    dapt_status st = dapt_status_agree(g->comm, pick_source(&f, o->source, r->source, sizeof r->source));
    for (int k = 0; k < DAPT_UNIT_KINDS && st == DAPT_OK; k++) {
        char ds[320];
        const char *unit = dapt_unit_kind_name((dapt_unit_kind)k);
        if (!strncmp(r->source, "softmask/", 9)) snprintf(ds, sizeof ds, "%s/%s", r->source, unit);
        else snprintf(ds, sizeof ds, "importance/%s/%s/normalized", unit, r->source + 11);
        if (!dapt_h5_exists(&f, ds)) continue; /* DGA masks heads only */
        int ndim = 0;
        int64_t dims[DAPT_H5_MAX_DIMS] = {0};
        st = dapt_h5_read_all(&f, ds, DAPT_H5_F64, (void **)&r->importance[k], &ndim, dims);
        if (st == DAPT_OK && (ndim != 2 || dims[0] != r->units.layers || dims[1] != r->units.units[k]))
            st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: '%s' is not [%lld, %lld] as the models' %s units", o->importance, ds,
                            (long long)r->units.layers, (long long)r->units.units[k], unit);
        r->have_importance[k] = st == DAPT_OK;
        st = dapt_status_agree(g->comm, st);
    }
    dapt_h5_close(&f);
    return st;
}

static dapt_status correlate(dapt_delta_result *r)
{
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        r->spearman_relative[k] = r->spearman_absolute[k] = NAN;
        if (!r->have_importance[k]) continue;
        const int64_t L = r->units.layers, U = r->units.units[k], n = L * U;
        double *rel = NULL;
        DAPT_CHECK(dapt_alloc((void **)&rel, sizeof(double) * (size_t)n, "relative changes"));
        for (int64_t i = 0; i < n; i++)
            rel[i] = r->units.before[k][i] > 0 ? r->units.change[k][i] / r->units.before[k][i] : 0;
        dapt_status st = dapt_spearman(r->importance[k], rel, (size_t)n, &r->spearman_relative[k]);
        if (st == DAPT_OK) st = dapt_spearman(r->importance[k], r->units.change[k], (size_t)n, &r->spearman_absolute[k]);
        if (st == DAPT_OK) st = dapt_alloc((void **)&r->spearman_layer[k], sizeof(double) * (size_t)L, "per-layer rho");
        for (int64_t l = 0; l < L && st == DAPT_OK; l++)
            st = dapt_spearman(r->importance[k] + l * U, rel + l * U, (size_t)U, &r->spearman_layer[k][l]);
        free(rel);
        DAPT_CHECK(st);
    }
    return DAPT_OK;
}

dapt_status dapt_delta_models(const dapt_pgrid *g, const dapt_delta_opts *o, dapt_delta_result *r)
{
    memset(r, 0, sizeof *r);
    dapt_h5file fb, fa;
    dapt_model_config ma;
    memset(&fa, 0, sizeof fa);
    dapt_status st = dapt_status_agree(g->comm, dapt_h5_open(g->comm, o->before, &fb));
    if (st != DAPT_OK) return st;
    DAPT_TRY(dapt_status_agree(g->comm, dapt_h5_open(g->comm, o->after, &fa)));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_modelfile_get_config(&fb, &r->mc, NULL)));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_modelfile_get_config(&fa, &ma, NULL)));
    DAPT_TRY(same_shape(o->before, o->after, &r->mc, &ma));
    DAPT_TRY(all_tensors(g, &fb, &fa, o->block, r));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) r->spearman_relative[k] = r->spearman_absolute[k] = NAN;
    if (o->importance) {
        DAPT_TRY(read_importance(g, o, r));
        DAPT_TRY(dapt_status_agree(g->comm, correlate(r)));
    }
cleanup:
    dapt_h5_close(&fa);
    dapt_h5_close(&fb);
    if (st != DAPT_OK) dapt_delta_result_free(r);
    return st;
}

void dapt_delta_result_free(dapt_delta_result *r)
{
    for (size_t i = 0; r->stats && i < r->ntensors; i++) dapt_delta_stats_free(&r->stats[i]);
    free(r->stats);
    free(r->names);
    dapt_unit_change_free(&r->units);
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        free(r->importance[k]);
        free(r->spearman_layer[k]);
    }
    memset(r, 0, sizeof *r);
}

/* ---- output ------------------------------------------------------------------ */

static dapt_status write_tensor(dapt_h5file *f, const char *name, const dapt_delta_stats *s)
{
    char g[128], ds[160];
    snprintf(g, sizeof g, "delta/%s", name);
    snprintf(ds, sizeof ds, "%s/singular_values", g);
    const int64_t dims[1] = {s->count};
    DAPT_CHECK(dapt_h5_write_all(f, ds, DAPT_H5_F64, 1, dims, s->singular));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "fro", s->fro));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "fro_before", s->fro_before));
    DAPT_CHECK(dapt_h5_attr_set_double(f, g, "relative_fro", s->rel_fro));
    return dapt_h5_attr_set_double(f, g, "stable_rank", s->stable_rank);
}

static dapt_status write_summary(dapt_h5file *f, const dapt_delta_result *r)
{
    const size_t n = r->ntensors;
    double *v = NULL;
    char *names = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_calloc((void **)&v, 3 * (n ? n : 1), sizeof(double), "summary"));
    DAPT_TRY(dapt_calloc((void **)&names, n * 65 + 1, 1, "tensor names"));
    for (size_t i = 0; i < n; i++) {
        v[i] = r->stats[i].fro;
        v[n + i] = r->stats[i].rel_fro;
        v[2 * n + i] = r->stats[i].stable_rank;
        strcat(names, r->names[i]);
        strcat(names, "\n");
    }
    const int64_t dims[1] = {(int64_t)n};
    DAPT_TRY(dapt_h5_write_all(f, "summary/fro", DAPT_H5_F64, 1, dims, v));
    DAPT_TRY(dapt_h5_write_all(f, "summary/relative_fro", DAPT_H5_F64, 1, dims, v + n));
    DAPT_TRY(dapt_h5_write_all(f, "summary/stable_rank", DAPT_H5_F64, 1, dims, v + 2 * n));
    DAPT_TRY(dapt_h5_attr_set_string(f, "summary", "tensors", names));
cleanup:
    free(v);
    free(names);
    return st;
}

static dapt_status write_units(dapt_h5file *f, const dapt_delta_result *r, int k)
{
    const dapt_unit_change *u = &r->units;
    const int64_t n = u->layers * u->units[k], dims[2] = {u->layers, u->units[k]}, ldim[1] = {u->layers};
    const char *unit = dapt_unit_kind_name((dapt_unit_kind)k);
    char g[64], ds[128];
    double *rel = NULL;
    DAPT_CHECK(dapt_alloc((void **)&rel, sizeof(double) * (size_t)n, "relative changes"));
    for (int64_t i = 0; i < n; i++) rel[i] = u->before[k][i] > 0 ? u->change[k][i] / u->before[k][i] : 0;
    snprintf(g, sizeof g, "units/%s", unit);
    dapt_status st = DAPT_OK;
    snprintf(ds, sizeof ds, "%s/change", g);
    DAPT_TRY(dapt_h5_write_all(f, ds, DAPT_H5_F64, 2, dims, u->change[k]));
    snprintf(ds, sizeof ds, "%s/norm_before", g);
    DAPT_TRY(dapt_h5_write_all(f, ds, DAPT_H5_F64, 2, dims, u->before[k]));
    snprintf(ds, sizeof ds, "%s/relative_change", g);
    DAPT_TRY(dapt_h5_write_all(f, ds, DAPT_H5_F64, 2, dims, rel));
    if (r->have_importance[k]) {
        snprintf(ds, sizeof ds, "%s/importance", g);
        DAPT_TRY(dapt_h5_write_all(f, ds, DAPT_H5_F64, 2, dims, r->importance[k]));
        snprintf(ds, sizeof ds, "%s/spearman_per_layer", g);
        DAPT_TRY(dapt_h5_write_all(f, ds, DAPT_H5_F64, 1, ldim, r->spearman_layer[k]));
        DAPT_TRY(dapt_h5_attr_set_double(f, g, "spearman_relative", r->spearman_relative[k]));
        DAPT_TRY(dapt_h5_attr_set_double(f, g, "spearman_absolute", r->spearman_absolute[k]));
    }
cleanup:
    free(rel);
    return st;
}

dapt_status dapt_delta_write(dapt_h5file *f, const dapt_delta_result *r)
{
    for (size_t i = 0; i < r->ntensors; i++) DAPT_CHECK(write_tensor(f, r->names[i], &r->stats[i]));
    DAPT_CHECK(write_summary(f, r));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) DAPT_CHECK(write_units(f, r, k));
    if (r->source[0]) DAPT_CHECK(dapt_h5_attr_set_string(f, "units", "importance_source", r->source));
    return DAPT_OK;
}
