/* dapt analyze spectrum: singular values, explained variance, effective
 * rank, anisotropy and principal directions of an [N, d] matrix. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"
#include "scalapack.h"

double dapt_effective_rank(const double *s, int64_t n)
{
    double sum = 0, h = 0;
    for (int64_t i = 0; i < n; i++) sum += s[i] > 0 ? s[i] : 0;
    if (!(sum > 0)) return 0;
    for (int64_t i = 0; i < n; i++) {
        double p = s[i] > 0 ? s[i] / sum : 0;
        if (p > 0) h -= p * log(p);
    }
    return exp(h);
}

double dapt_participation_ratio(const double *var, int64_t n)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        s += var[i];
        s2 += var[i] * var[i];
    }
    return s2 > 0 ? s * s / s2 : 0;
}

dapt_status dapt_anisotropy(const dapt_dmat *X, double *mean_cos, int64_t *zero_rows)
{
    const dapt_pgrid *g = X->grid;
    double *norm = NULL, *S = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_calloc((void **)&norm, (size_t)(X->locr ? X->locr : 1), sizeof(double), "row norms"));
    DAPT_TRY(dapt_calloc((void **)&S, (size_t)X->n, sizeof(double), "sum of unit rows"));
    for (int j = 0; j < X->locc; j++)
        for (int i = 0; i < X->locr; i++) norm[i] += X->a[(size_t)j * X->lld + i] * X->a[(size_t)j * X->lld + i];
    /* A row's pieces live on the ranks of one process row. */
    if (X->locr) DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, norm, X->locr, MPI_DOUBLE, MPI_SUM, g->row_comm)));
    double nonzero = 0;
    for (int i = 0; i < X->locr; i++) {
        norm[i] = sqrt(norm[i]);
        nonzero += norm[i] > 0;
    }
    for (int j = 0; j < X->locc; j++) {
        double s = 0;
        for (int i = 0; i < X->locr; i++)
            if (norm[i] > 0) s += X->a[(size_t)j * X->lld + i] / norm[i];
        S[dapt_dmat_gcol(X, j)] = s;
    }
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, S, (int)X->n, MPI_DOUBLE, MPI_SUM, g->comm)));
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &nonzero, 1, MPI_DOUBLE, MPI_SUM, g->col_comm)));
    double s2 = 0;
    for (int64_t j = 0; j < X->n; j++) s2 += S[j] * S[j];
    *mean_cos = nonzero >= 2 ? (s2 - nonzero) / (nonzero * (nonzero - 1)) : NAN;
    *zero_rows = X->m - (int64_t)nonzero;
cleanup:
    free(norm);
    free(S);
    return st;
}

/* Unit vectors with a fixed sign: the largest |component| positive, so the
 * directions do not depend on the eigensolver's sign choices. */
static void fix_signs(double *v, int64_t k, int64_t d)
{
    for (int64_t r = 0; r < k; r++) {
        double *row = v + r * d, big = 0;
        for (int64_t j = 0; j < d; j++)
            if (fabs(row[j]) > fabs(big)) big = row[j];
        if (big < 0)
            for (int64_t j = 0; j < d; j++) row[j] = -row[j];
    }
}

/* Eigen-decomposition of the covariance Xc^T Xc / (N - 1) (PDSYRK, PDSYEVD):
 * variance (descending, first count) and, with k > 0, the top k
 * eigenvectors as rows of dir [k, d] (every rank). */
static dapt_status cov_spectrum(const dapt_dmat *X, int64_t count, int64_t k, double *variance, double *dir)
{
    const dapt_pgrid *g = X->grid;
    const int d = (int)X->n, N = (int)X->m, one = 1;
    dapt_dmat C, Z;
    double *w = NULL, *work = NULL;
    int *iwork = NULL;
    memset(&C, 0, sizeof C);
    memset(&Z, 0, sizeof Z);
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, d, d, X->nb, X->nb, &C)));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, d, d, X->nb, X->nb, &Z)));
    double alpha = 1.0 / (double)(N - 1), beta = 0;
    pdsyrk_("L", "T", &d, &N, &alpha, X->a, &one, &one, X->desc, &beta, C.a, &one, &one, C.desc);
    DAPT_TRY(dapt_alloc((void **)&w, sizeof(double) * (size_t)d, "eigenvalues"));
    double wq = 0;
    int iq = 0, lwork = -1, liwork = -1, info = 0;
    pdsyevd_("V", "L", &d, C.a, &one, &one, C.desc, w, Z.a, &one, &one, Z.desc, &wq, &lwork, &iq, &liwork, &info);
    lwork = (int)wq + 1;
    /* The query underestimates what PDORMTR needs when a block is larger
     * than the local part (then PDORMTR refuses LWORK and PDSYEVD returns
     * info 0 with garbage): add PDORMTR's documented need,
     * max(NB (NB - 1) / 2, (MpC0 + NqC0) NB) + NB^2, with MpC0, NqC0 bounded
     * by the local sizes plus a block. */
    const int nb = C.nb, ormtr = (C.locr + C.locc + 2 * nb) * nb;
    lwork += (ormtr > nb * (nb - 1) / 2 ? ormtr : nb * (nb - 1) / 2) + nb * nb + 2 * d;
    liwork = (iq > 1 ? iq : 1) + 8 * g->npcol + 2;
    DAPT_TRY(dapt_alloc((void **)&work, sizeof(double) * (size_t)lwork, "PDSYEVD workspace"));
    DAPT_TRY(dapt_alloc((void **)&iwork, sizeof(int) * (size_t)liwork, "PDSYEVD workspace"));
    pdsyevd_("V", "L", &d, C.a, &one, &one, C.desc, w, Z.a, &one, &one, Z.desc, work, &lwork, iwork, &liwork, &info);
    if (info != 0) DAPT_THROW(DAPT_ERR_NUMERIC, "PDSYEVD failed on the %dx%d covariance (info %d)", d, d, info);
    /* Every rank must hold the same values (they become attributes, which
     * any rank may write): when the matrix is one block, PDSYEVD leaves W
     * right only on the process that owns it. */
    DAPT_TRY(DAPT_MPI(MPI_Bcast(w, d, MPI_DOUBLE, 0, g->comm)));
    /* Eigenvalues below the covariance's rounding level are zero: the Gram
     * form cannot resolve singular values under sqrt(eps) s_1, and left
     * as noise they would bias the entropy effective rank. */
    const double floor = (double)(N > d ? N : d) * DBL_EPSILON * (w[d - 1] > 0 ? w[d - 1] : 0);
    for (int64_t i = 0; i < count; i++) variance[i] = w[d - 1 - i] > floor ? w[d - 1 - i] : 0;
    if (k > 0) {
        memset(dir, 0, sizeof(double) * (size_t)(k * d));
        for (int j = 0; j < Z.locc; j++) {
            int64_t gj = dapt_dmat_gcol(&Z, j), r = d - 1 - gj;
            if (r >= k) continue;
            for (int i = 0; i < Z.locr; i++) dir[r * d + dapt_dmat_grow(&Z, i)] = Z.a[(size_t)j * Z.lld + i];
        }
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, dir, (int)(k * d), MPI_DOUBLE, MPI_SUM, g->comm)));
    }
cleanup:
    free(w);
    free(work);
    free(iwork);
    dapt_dmat_free(&C);
    dapt_dmat_free(&Z);
    return st;
}

/* Singular values of X (PDGESVD; X is destroyed), descending, and with
 * k > 0 the top k right singular vectors as rows of dir [k, d]. */
static dapt_status svd_spectrum(dapt_dmat *X, int64_t count, int64_t k, double *s, double *dir)
{
    const dapt_pgrid *g = X->grid;
    const int m = (int)X->m, n = (int)X->n, one = 1;
    dapt_dmat U, VT;
    double *work = NULL;
    memset(&U, 0, sizeof U);
    memset(&VT, 0, sizeof VT);
    dapt_status st = DAPT_OK;
    /* U is never referenced (JOBU = N), but its descriptor must be valid. */
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, 1, 1, X->mb, X->mb, &U)));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, k > 0 ? count : 1, k > 0 ? n : 1, X->mb, X->nb, &VT)));
    const char *jobvt = k > 0 ? "V" : "N";
    double wq = 0;
    int lwork = -1, info = 0;
    pdgesvd_("N", jobvt, &m, &n, X->a, &one, &one, X->desc, s, U.a, &one, &one, U.desc, VT.a, &one, &one, VT.desc,
             &wq, &lwork, &info);
    lwork = (int)wq + 1;
    DAPT_TRY(dapt_alloc((void **)&work, sizeof(double) * (size_t)lwork, "PDGESVD workspace"));
    pdgesvd_("N", jobvt, &m, &n, X->a, &one, &one, X->desc, s, U.a, &one, &one, U.desc, VT.a, &one, &one, VT.desc,
             work, &lwork, &info);
    if (info != 0) DAPT_THROW(DAPT_ERR_NUMERIC, "PDGESVD failed on a %dx%d matrix (info %d)", m, n, info);
    DAPT_TRY(DAPT_MPI(MPI_Bcast(s, (int)count, MPI_DOUBLE, 0, g->comm))); /* identical on every rank */
    if (k > 0) {
        memset(dir, 0, sizeof(double) * (size_t)(k * n));
        for (int j = 0; j < VT.locc; j++)
            for (int i = 0; i < VT.locr; i++) {
                int64_t r = dapt_dmat_grow(&VT, i);
                if (r < k) dir[r * n + dapt_dmat_gcol(&VT, j)] = VT.a[(size_t)j * VT.lld + i];
            }
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, dir, (int)(k * n), MPI_DOUBLE, MPI_SUM, g->comm)));
    }
cleanup:
    free(work);
    dapt_dmat_free(&U);
    dapt_dmat_free(&VT);
    return st;
}

static void summarise(dapt_spectrum *s)
{
    const double nm1 = (double)(s->rows - 1);
    double total = 0;
    for (int64_t i = 0; i < s->count; i++) total += s->variance[i];
    s->total_variance = total;
    for (int64_t i = 0; i < s->count; i++) s->variance_ratio[i] = total > 0 ? s->variance[i] / total : 0;
    s->erank_entropy = dapt_effective_rank(s->singular, s->count);
    s->participation = dapt_participation_ratio(s->variance, s->count);
    s->stable_rank = s->singular[0] > 0 ? total * nm1 / (s->singular[0] * s->singular[0]) : 0;
}

dapt_status dapt_spectrum_compute(dapt_dmat *X, const dapt_spectrum_opts *o, dapt_spectrum *s)
{
    memset(s, 0, sizeof *s);
    if (X->m < 2) return DAPT_ERROR(DAPT_ERR_ARG, "a spectrum needs at least 2 rows, the matrix has %lld", (long long)X->m);
    s->rows = X->m;
    s->dim = X->n;
    s->count = X->m < X->n ? X->m : X->n;
    s->top_k = o->top_k < 0 ? 0 : o->top_k > s->count ? s->count : o->top_k;
    dapt_status st = DAPT_OK;
    size_t c = (size_t)s->count;
    DAPT_TRY(dapt_calloc((void **)&s->singular, c, sizeof(double), "singular values"));
    DAPT_TRY(dapt_calloc((void **)&s->variance, c, sizeof(double), "variances"));
    DAPT_TRY(dapt_calloc((void **)&s->variance_ratio, c, sizeof(double), "variance ratios"));
    DAPT_TRY(dapt_calloc((void **)&s->mean, (size_t)X->n, sizeof(double), "column means"));
    if (s->top_k)
        DAPT_TRY(dapt_calloc((void **)&s->directions, (size_t)(s->top_k * X->n), sizeof(double), "directions"));
    st = dapt_status_agree(X->grid->comm, st);
    if (st != DAPT_OK) goto cleanup;
    DAPT_TRY(dapt_anisotropy(X, &s->anisotropy, &s->zero_rows));
    DAPT_TRY(dapt_dmat_center(X, o->center, s->mean));
    const double nm1 = (double)(X->m - 1);
    if (o->method == DAPT_SPECTRUM_SVD) {
        DAPT_TRY(dapt_status_agree(X->grid->comm, svd_spectrum(X, s->count, s->top_k, s->singular, s->directions)));
        for (int64_t i = 0; i < s->count; i++) s->variance[i] = s->singular[i] * s->singular[i] / nm1;
    } else {
        DAPT_TRY(dapt_status_agree(X->grid->comm, cov_spectrum(X, s->count, s->top_k, s->variance, s->directions)));
        for (int64_t i = 0; i < s->count; i++) s->singular[i] = sqrt(s->variance[i] * nm1);
    }
    if (s->top_k) fix_signs(s->directions, s->top_k, s->dim);
    summarise(s);
    /* Reductions may round differently on different ranks; the numbers
     * become attributes, which any rank may write: take rank 0's. */
    double scalars[5] = {s->total_variance, s->erank_entropy, s->participation, s->stable_rank, s->anisotropy};
    DAPT_TRY(DAPT_MPI(MPI_Bcast(scalars, 5, MPI_DOUBLE, 0, X->grid->comm)));
    s->total_variance = scalars[0];
    s->erank_entropy = scalars[1];
    s->participation = scalars[2];
    s->stable_rank = scalars[3];
    s->anisotropy = scalars[4];
    return DAPT_OK;
cleanup:
    dapt_spectrum_free(s);
    return st;
}

void dapt_spectrum_free(dapt_spectrum *s)
{
    free(s->singular);
    free(s->variance);
    free(s->variance_ratio);
    free(s->mean);
    free(s->directions);
    memset(s, 0, sizeof *s);
}
