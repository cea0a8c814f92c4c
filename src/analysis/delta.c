/* dapt analyze delta: the spectrum of each weight change dW = W_after -
 * W_before and the change of every DAS unit (heads, FFN neurons). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"
#include "dapt/das.h"
#include "scalapack.h"

static dapt_status singular_values(const dapt_dmat *D, double *s)
{
    const dapt_pgrid *g = D->grid;
    const int m = (int)D->m, n = (int)D->n, one = 1;
    dapt_dmat W, U, VT;
    double *work = NULL;
    memset(&W, 0, sizeof W);
    memset(&U, 0, sizeof U);
    memset(&VT, 0, sizeof VT);
    dapt_status st = DAPT_OK;
    /* PDGESVD destroys its input; the caller keeps dW for the unit changes. */
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, D->m, D->n, D->mb, D->nb, &W)));
    memcpy(W.a, D->a, sizeof(double) * (size_t)W.lld * (size_t)(W.locc > 0 ? W.locc : 1));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, 1, 1, D->mb, D->nb, &U)));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, 1, 1, D->mb, D->nb, &VT)));
    double wq = 0;
    int lwork = -1, info = 0;
    pdgesvd_("N", "N", &m, &n, W.a, &one, &one, W.desc, s, U.a, &one, &one, U.desc, VT.a, &one, &one, VT.desc, &wq,
             &lwork, &info);
    lwork = (int)wq + 1;
    DAPT_TRY(dapt_alloc((void **)&work, sizeof(double) * (size_t)lwork, "PDGESVD workspace"));
    pdgesvd_("N", "N", &m, &n, W.a, &one, &one, W.desc, s, U.a, &one, &one, U.desc, VT.a, &one, &one, VT.desc, work,
             &lwork, &info);
    if (info != 0) DAPT_THROW(DAPT_ERR_NUMERIC, "PDGESVD failed on a %dx%d weight change (info %d)", m, n, info);
    /* identical on every rank: the values become attributes any rank may write */
    DAPT_TRY(DAPT_MPI(MPI_Bcast(s, m < n ? m : n, MPI_DOUBLE, 0, g->comm)));
cleanup:
    free(work);
    dapt_dmat_free(&W);
    dapt_dmat_free(&U);
    dapt_dmat_free(&VT);
    return st;
}

dapt_status dapt_delta_matrix(dapt_dmat *after, const dapt_dmat *before, dapt_delta_stats *out)
{
    memset(out, 0, sizeof *out);
    if (after->grid != before->grid || after->m != before->m || after->n != before->n || after->mb != before->mb ||
        after->nb != before->nb)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "weight change of differently distributed matrices");
    size_t local = (size_t)after->lld * (size_t)(after->locc > 0 ? after->locc : 1);
    for (size_t i = 0; i < local; i++) after->a[i] -= before->a[i];
    out->count = after->m < after->n ? after->m : after->n;
    dapt_status st = dapt_calloc((void **)&out->singular, (size_t)out->count, sizeof(double), "singular values");
    st = dapt_status_agree(after->grid->comm, st);
    if (st != DAPT_OK) return st;
    double dd = 0, bb = 0;
    DAPT_TRY(dapt_dmat_sumsq(after, &dd));
    DAPT_TRY(dapt_dmat_sumsq(before, &bb));
    DAPT_TRY(singular_values(after, out->singular));
    /* the same values on every rank (they become attributes) */
    double both[2] = {dd, bb};
    DAPT_TRY(DAPT_MPI(MPI_Bcast(both, 2, MPI_DOUBLE, 0, after->grid->comm)));
    dd = both[0];
    bb = both[1];
    out->fro = sqrt(dd);
    out->fro_before = sqrt(bb);
    out->rel_fro = bb > 0 ? out->fro / out->fro_before : dd > 0 ? INFINITY : 0;
    double s1 = out->singular[0];
    out->stable_rank = s1 > 0 ? dd / (s1 * s1) : 0;
    return DAPT_OK;
cleanup:
    dapt_delta_stats_free(out);
    return st;
}

void dapt_delta_stats_free(dapt_delta_stats *s)
{
    free(s->singular);
    memset(s, 0, sizeof *s);
}

dapt_status dapt_unit_change_create(const dapt_model_config *mc, dapt_unit_change *u)
{
    memset(u, 0, sizeof *u);
    u->layers = mc->layers;
    u->units[0] = mc->heads;
    u->units[1] = mc->intermediate;
    u->units[2] = mc->hidden;
    for (int k = 0; k < 3; k++) {
        size_t n = (size_t)(u->layers * u->units[k]);
        dapt_status st = dapt_calloc((void **)&u->change[k], n, sizeof(double), "unit changes");
        if (st == DAPT_OK) st = dapt_calloc((void **)&u->before[k], n, sizeof(double), "unit norms");
        if (st != DAPT_OK) {
            dapt_unit_change_free(u);
            return st;
        }
    }
    return DAPT_OK;
}

void dapt_unit_change_free(dapt_unit_change *u)
{
    for (int k = 0; k < 3; k++) {
        free(u->change[k]);
        free(u->before[k]);
    }
    memset(u, 0, sizeof *u);
}

/* Which unit kind and axis a tensor's rows (axis 0) or columns (axis 1)
 * belong to, and how many of its rows/columns make one unit; -1 if none. */
static int unit_of(const dapt_model_config *mc, const char *name, int *layer, int *axis, int64_t *per_unit)
{
    int l = -1, end = 0;
    char rest[48];
    if (sscanf(name, "layer.%d.%47s%n", &l, rest, &end) != 2 || l < 0 || l >= mc->layers) return -1;
    *layer = l;
    *axis = 0;
    *per_unit = 1;
    const int64_t dh = mc->hidden / mc->heads;
    static const char *const qkv[] = {"attn.q.weight", "attn.k.weight", "attn.v.weight",
                                      "attn.q.bias", "attn.k.bias", "attn.v.bias"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(rest, qkv[i])) {
            *per_unit = dh;
            return DAPT_UNIT_HEAD;
        }
    if (!strcmp(rest, "attn.out.weight")) {
        *per_unit = dh;
        *axis = 1;
        return DAPT_UNIT_HEAD;
    }
    if (!strcmp(rest, "ffn.in.weight") || !strcmp(rest, "ffn.in.bias")) return DAPT_UNIT_INTERMEDIATE;
    if (!strcmp(rest, "ffn.out.weight") || !strcmp(rest, "ffn.out.bias")) return DAPT_UNIT_OUTPUT;
    return -1;
}

static void accumulate(dapt_unit_change *u, int kind, int layer, int64_t per_unit, const double *d2, const double *b2,
                       int64_t n)
{
    double *c = u->change[kind] + layer * u->units[kind], *b = u->before[kind] + layer * u->units[kind];
    for (int64_t i = 0; i < n; i++) {
        int64_t unit = i / per_unit;
        if (unit >= u->units[kind]) break;
        c[unit] += d2[i];
        b[unit] += b2[i];
    }
}

dapt_status dapt_unit_change_add_matrix(dapt_unit_change *u, const dapt_model_config *mc, const char *name,
                                        const dapt_dmat *dW, const dapt_dmat *Wb)
{
    int layer = 0, axis = 0;
    int64_t per = 1;
    int kind = unit_of(mc, name, &layer, &axis, &per);
    if (kind < 0) return DAPT_OK;
    int64_t n = axis ? dW->n : dW->m;
    double *d2 = NULL, *b2 = NULL;
    dapt_status st = dapt_alloc((void **)&d2, sizeof(double) * (size_t)n, "unit sums");
    if (st == DAPT_OK) st = dapt_alloc((void **)&b2, sizeof(double) * (size_t)n, "unit sums");
    st = dapt_status_agree(dW->grid->comm, st);
    if (st == DAPT_OK) st = axis ? dapt_dmat_col_sumsq(dW, d2) : dapt_dmat_row_sumsq(dW, d2);
    if (st == DAPT_OK) st = axis ? dapt_dmat_col_sumsq(Wb, b2) : dapt_dmat_row_sumsq(Wb, b2);
    if (st == DAPT_OK) accumulate(u, kind, layer, per, d2, b2, n);
    free(d2);
    free(b2);
    return st;
}

void dapt_unit_change_add_vector(dapt_unit_change *u, const dapt_model_config *mc, const char *name, const double *dw,
                                 const double *wb, int64_t n)
{
    int layer = 0, axis = 0;
    int64_t per = 1;
    int kind = unit_of(mc, name, &layer, &axis, &per);
    if (kind < 0) return;
    double *c = u->change[kind] + layer * u->units[kind], *b = u->before[kind] + layer * u->units[kind];
    for (int64_t i = 0; i < n && i / per < u->units[kind]; i++) {
        c[i / per] += dw[i] * dw[i];
        b[i / per] += wb[i] * wb[i];
    }
}

void dapt_unit_change_finish(dapt_unit_change *u)
{
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < u->layers * u->units[k]; i++) {
            u->change[k][i] = sqrt(u->change[k][i]);
            u->before[k][i] = sqrt(u->before[k][i]);
        }
}
