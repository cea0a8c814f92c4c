/* Finished importances: raw and normalised arrays, their combination, and
 * the importance file (OUT/importance.h5, dapt importance). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"
#include "dapt/fsio.h"

static size_t count(const dapt_importance_source *s, int k) { return (size_t)(s->layers * s->units[k]); }

void dapt_importance_source_free(dapt_importance_source *src)
{
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        free(src->raw[k]);
        free(src->norm[k]);
        src->raw[k] = src->norm[k] = NULL;
    }
}

static dapt_status source_alloc(dapt_importance_source *src)
{
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        DAPT_CHECK(dapt_alloc((void **)&src->raw[k], sizeof(float) * (count(src, k) ? count(src, k) : 1), "importance"));
        DAPT_CHECK(dapt_alloc((void **)&src->norm[k], sizeof(float) * (count(src, k) ? count(src, k) : 1), "importance"));
    }
    return DAPT_OK;
}

dapt_status dapt_importance_source_make(const dapt_importance *imp, const char *name, dapt_proxy_kind proxy,
                                        dapt_norm_kind norm, dapt_importance_source *src)
{
    memset(src, 0, sizeof *src);
    src->norm_kind = norm;
    snprintf(src->name, sizeof src->name, "%s", name);
    src->proxy = proxy;
    src->mode = imp->mode;
    src->tokens = imp->tokens;
    src->batches = imp->batches;
    src->layers = imp->layers;
    memcpy(src->units, imp->units, sizeof src->units);
    dapt_status st = DAPT_OK;
    DAPT_TRY(source_alloc(src));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        DAPT_TRY(dapt_importance_raw(imp, (dapt_unit_kind)k, src->raw[k]));
        dapt_importance_normalize(src->raw[k], src->layers, src->units[k], norm, src->norm[k]);
    }
    return DAPT_OK;
cleanup:
    dapt_importance_source_free(src);
    return st;
}

dapt_status dapt_importance_combine_sources(const dapt_importance_source *srcs, size_t n, int64_t layers,
                                            const int64_t units[DAPT_UNIT_KINDS], float *out[DAPT_UNIT_KINDS])
{
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        size_t m = (size_t)(layers * units[k]);
        DAPT_CHECK(dapt_calloc((void **)&out[k], m ? m : 1, sizeof(float), "combined importance"));
        for (size_t i = 0; i < n; i++) {
            if (srcs[i].layers != layers || srcs[i].units[k] != units[k])
                return DAPT_ERROR(DAPT_ERR_ARG, "importance source %s has another shape than the model", srcs[i].name);
            dapt_importance_combine_max(out[k], srcs[i].norm[k], m);
        }
    }
    return DAPT_OK;
}

static const char *proxy_name(dapt_proxy_kind p) { return p == DAPT_PROXY_KL ? "kl" : "mlm"; }
static const char *mode_name(dapt_importance_mode m) { return m == DAPT_IMPORTANCE_SIGNED ? "signed" : "absolute"; }

dapt_status dapt_importance_write(MPI_Comm comm, const char *path, const dapt_config *cfg,
                                  const dapt_importance_source *srcs, size_t nsrc,
                                  const dapt_importance_mask_entry *masks, size_t nmask)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(comm, path, 1, cfg, &f));
    dapt_status st = DAPT_OK;
    char obj[512];
    DAPT_TRY(dapt_h5_set_format(&f, "dapt-importance"));
    for (size_t i = 0; i < nsrc; i++) {
        const dapt_importance_source *s = &srcs[i];
        for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
            const int64_t dims[2] = {s->layers, s->units[k]};
            snprintf(obj, sizeof obj, "/importance/%s/%s/raw", dapt_unit_kind_name((dapt_unit_kind)k), s->name);
            DAPT_TRY(dapt_h5_write_all(&f, obj, DAPT_H5_F32, 2, dims, s->raw[k]));
            snprintf(obj, sizeof obj, "/importance/%s/%s/normalized", dapt_unit_kind_name((dapt_unit_kind)k), s->name);
            DAPT_TRY(dapt_h5_write_all(&f, obj, DAPT_H5_F32, 2, dims, s->norm[k]));
            snprintf(obj, sizeof obj, "/importance/%s/%s", dapt_unit_kind_name((dapt_unit_kind)k), s->name);
            DAPT_TRY(dapt_h5_attr_set_double(&f, obj, "tokens", s->tokens));
            DAPT_TRY(dapt_h5_attr_set_int64(&f, obj, "batches", s->batches));
            DAPT_TRY(dapt_h5_attr_set_string(&f, obj, "proxy", proxy_name(s->proxy)));
            DAPT_TRY(dapt_h5_attr_set_string(&f, obj, "accumulation", mode_name(s->mode)));
            DAPT_TRY(dapt_h5_attr_set_string(&f, obj, "normalization", dapt_norm_kind_name(s->norm_kind)));
        }
    }
    for (size_t i = 0; i < nmask; i++) {
        for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
            if (!masks[i].norm[k] || nsrc == 0) continue;
            const int64_t dims[2] = {srcs[0].layers, srcs[0].units[k]};
            snprintf(obj, sizeof obj, "/softmask/%s/%s", masks[i].name, dapt_unit_kind_name((dapt_unit_kind)k));
            DAPT_TRY(dapt_h5_write_all(&f, obj, DAPT_H5_F32, 2, dims, masks[i].norm[k]));
        }
        snprintf(obj, sizeof obj, "/softmask/%s", masks[i].name);
        DAPT_TRY(dapt_h5_group(&f, obj));
        DAPT_TRY(dapt_h5_attr_set_string(&f, obj, "sources", masks[i].sources));
    }
    return dapt_h5_commit(&f);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

dapt_status dapt_importance_read_source(MPI_Comm comm, const char *path, const char *name,
                                        const dapt_model_config *mc, dapt_importance_source *src, int *found)
{
    memset(src, 0, sizeof *src);
    *found = 0;
    int exists = dapt_fs_exists(path);
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &exists, 1, MPI_INT, MPI_MIN, comm)));
    if (!exists) return DAPT_OK;
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    dapt_status st = DAPT_OK;
    char obj[512], *text = NULL;
    snprintf(obj, sizeof obj, "/importance/head/%s", name);
    if (!dapt_h5_exists(&f, obj)) goto cleanup;
    snprintf(obj, sizeof obj, "/importance/head/%s/raw", name);
    if (!dapt_h5_exists(&f, obj)) DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s is missing", path, obj);
    snprintf(src->name, sizeof src->name, "%s", name);
    src->layers = mc->layers;
    src->units[DAPT_UNIT_HEAD] = mc->heads;
    src->units[DAPT_UNIT_INTERMEDIATE] = mc->intermediate;
    src->units[DAPT_UNIT_OUTPUT] = mc->hidden;
    /* Files written before the option existed were normalised with tanh_z. */
    src->norm_kind = DAPT_NORM_TANH_Z;
    snprintf(obj, sizeof obj, "/importance/head/%s", name);
    if (dapt_h5_attr_exists(&f, obj, "normalization")) {
        DAPT_TRY(dapt_h5_attr_get_string(&f, obj, "normalization", &text));
        if (!strcmp(text, "rank")) src->norm_kind = DAPT_NORM_RANK;
        else if (strcmp(text, "tanh_z")) DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s: normalization '%s' is not tanh_z or rank", path, obj, text);
        free(text);
        text = NULL;
    }
    DAPT_TRY(source_alloc(src));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        snprintf(obj, sizeof obj, "/importance/%s/%s/raw", dapt_unit_kind_name((dapt_unit_kind)k), name);
        int nd = 0;
        int64_t dims[DAPT_H5_MAX_DIMS];
        dapt_h5_type t;
        DAPT_TRY(dapt_h5_info(&f, obj, &nd, dims, &t));
        if (nd != 2 || dims[0] != src->layers || dims[1] != src->units[k])
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s has shape other than [%lld, %lld] of the model", path, obj,
                       (long long)src->layers, (long long)src->units[k]);
        const int64_t start[2] = {0, 0};
        DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_F32, 2, start, dims, src->raw[k]));
        /* The stored normalised values are used as they are (a file may
         * carry chosen ones); a file without them gets them recomputed. */
        snprintf(obj, sizeof obj, "/importance/%s/%s/normalized", dapt_unit_kind_name((dapt_unit_kind)k), name);
        if (dapt_h5_exists(&f, obj)) {
            DAPT_TRY(dapt_h5_info(&f, obj, &nd, dims, &t));
            if (nd != 2 || dims[0] != src->layers || dims[1] != src->units[k])
                DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s has shape other than [%lld, %lld] of the model", path, obj,
                           (long long)src->layers, (long long)src->units[k]);
            DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_F32, 2, start, dims, src->norm[k]));
            for (int64_t i = 0; i < src->layers * src->units[k]; i++)
                if (!(src->norm[k][i] >= 0.0f && src->norm[k][i] <= 1.0f))
                    DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s holds %g, outside [0, 1]", path, obj, (double)src->norm[k][i]);
        } else {
            dapt_importance_normalize(src->raw[k], src->layers, src->units[k], src->norm_kind, src->norm[k]);
        }
    }
    snprintf(obj, sizeof obj, "/importance/head/%s", name);
    DAPT_TRY(dapt_h5_attr_get_double(&f, obj, "tokens", &src->tokens));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, obj, "batches", &src->batches));
    DAPT_TRY(dapt_h5_attr_get_string(&f, obj, "proxy", &text));
    src->proxy = strcmp(text, "kl") ? DAPT_PROXY_MLM : DAPT_PROXY_KL;
    free(text);
    text = NULL;
    DAPT_TRY(dapt_h5_attr_get_string(&f, obj, "accumulation", &text));
    src->mode = strcmp(text, "signed") ? DAPT_IMPORTANCE_ABSOLUTE : DAPT_IMPORTANCE_SIGNED;
    *found = 1;
cleanup:
    free(text);
    if (st != DAPT_OK || !*found) dapt_importance_source_free(src);
    dapt_h5_close(&f);
    return st;
}

static dapt_status count_source(const char *name, void *user)
{
    char **one = user;
    if (!one[0]) one[0] = strdup(name);
    else one[1] = (char *)1;
    return one[0] ? DAPT_OK : DAPT_ERROR(DAPT_ERR_NOMEM, "source name");
}

dapt_status dapt_importance_only_source(MPI_Comm comm, const char *path, char *name, size_t len)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    char *one[2] = {NULL, NULL};
    dapt_status st = DAPT_OK;
    if (!dapt_h5_exists(&f, "/importance/head")) DAPT_THROW(DAPT_ERR_FORMAT, "%s has no /importance/head group", path);
    DAPT_TRY(dapt_h5_list(&f, "/importance/head", count_source, one));
    if (!one[0] || one[1])
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: no source named general, and %s source to use instead", path,
                   one[0] ? "more than one" : "no");
    snprintf(name, len, "%s", one[0]);
cleanup:
    free(one[0]);
    dapt_h5_close(&f);
    return st;
}
