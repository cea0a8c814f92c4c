/* Linear CKA in feature space: the d x d products Xc^T Xc, Yc^T Yc and
 * Yc^T Xc (PDSYRK / PDGEMM, cost N d^2) instead of the N x N Gram
 * matrices, so N can be as large as the rows fit in memory over the job. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"
#include "scalapack.h"

/* Frobenius norm squared of a symmetric matrix of which PDSYRK filled the
 * lower triangle: diagonal once, strict lower part twice. */
static dapt_status lower_sym_sumsq(const dapt_dmat *C, double *out)
{
    double s = 0;
    for (int j = 0; j < C->locc; j++) {
        int64_t gj = dapt_dmat_gcol(C, j);
        for (int i = 0; i < C->locr; i++) {
            int64_t gi = dapt_dmat_grow(C, i);
            double v = C->a[(size_t)j * C->lld + i];
            if (gi > gj) s += 2 * v * v;
            else if (gi == gj) s += v * v;
        }
    }
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, C->grid->comm)));
    *out = s;
    return DAPT_OK;
}

dapt_status dapt_cka_prepare(dapt_dmat *X, dapt_cka_side *s)
{
    memset(s, 0, sizeof *s);
    if (X->m < 4) return DAPT_ERROR(DAPT_ERR_ARG, "CKA needs at least 4 rows (the debiased estimator divides by N - 3), got %lld",
                                    (long long)X->m);
    const dapt_pgrid *g = X->grid;
    const int d = (int)X->n, N = (int)X->m, one = 1;
    double *means = NULL;
    dapt_dmat C;
    memset(&C, 0, sizeof C);
    dapt_status st = DAPT_OK;
    s->n = X->m;
    s->locr = X->locr;
    DAPT_TRY(dapt_calloc((void **)&means, (size_t)X->n, sizeof(double), "column means"));
    DAPT_TRY(dapt_calloc((void **)&s->row_sq, (size_t)(X->locr ? X->locr : 1), sizeof(double), "row norms"));
    DAPT_TRY(dapt_status_agree(g->comm, dapt_dmat_create(g, d, d, X->nb, X->nb, &C)));
    DAPT_TRY(dapt_dmat_center(X, 1, means));
    double alpha = 1, beta = 0;
    pdsyrk_("L", "T", &d, &N, &alpha, X->a, &one, &one, X->desc, &beta, C.a, &one, &one, C.desc);
    DAPT_TRY(lower_sym_sumsq(&C, &s->gram2));
    for (int j = 0; j < X->locc; j++)
        for (int i = 0; i < X->locr; i++) s->row_sq[i] += X->a[(size_t)j * X->lld + i] * X->a[(size_t)j * X->lld + i];
    if (X->locr)
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, s->row_sq, X->locr, MPI_DOUBLE, MPI_SUM, g->row_comm)));
    double local = 0;
    for (int i = 0; i < X->locr; i++) local += s->row_sq[i];
    /* Each process column holds every row once. */
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(&local, &s->sumsq, 1, MPI_DOUBLE, MPI_SUM, g->col_comm)));
cleanup:
    free(means);
    dapt_dmat_free(&C);
    if (st != DAPT_OK) dapt_cka_side_free(s);
    return st;
}

void dapt_cka_side_free(dapt_cka_side *s)
{
    free(s->row_sq);
    memset(s, 0, sizeof *s);
}

/* Kornblith et al. (2019), _debiased_dot_product_similarity_helper: the
 * unbiased HSIC estimator's numerator for centred features, times
 * n (n - 3). */
static double debiased_dot(double xty, double rxry, double nx, double ny, double n)
{
    return xty - n / (n - 2) * rxry + nx * ny / ((n - 1) * (n - 2));
}

dapt_status dapt_cka_pair(const dapt_dmat *X, const dapt_cka_side *sx, const dapt_dmat *Y, const dapt_cka_side *sy,
                          double *cka, double *debiased)
{
    const dapt_pgrid *g = X->grid;
    if (Y->grid != g || X->m != Y->m || X->mb != Y->mb)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "CKA of matrices on different grids or rows ([%lld, .] vs [%lld, .])",
                          (long long)X->m, (long long)Y->m);
    const int dx = (int)X->n, dy = (int)Y->n, N = (int)X->m, one = 1;
    dapt_dmat P;
    dapt_status st = dapt_status_agree(g->comm, dapt_dmat_create(g, dy, dx, Y->nb, X->nb, &P));
    if (st != DAPT_OK) return st;
    double alpha = 1, beta = 0, cross2 = 0, rxry = 0;
    pdgemm_("T", "N", &dy, &dx, &N, &alpha, Y->a, &one, &one, Y->desc, X->a, &one, &one, X->desc, &beta, P.a, &one,
            &one, P.desc);
    DAPT_TRY(dapt_dmat_sumsq(&P, &cross2));
    for (int i = 0; i < X->locr; i++) rxry += sx->row_sq[i] * sy->row_sq[i];
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &rxry, 1, MPI_DOUBLE, MPI_SUM, g->col_comm)));
    double den = sqrt(sx->gram2) * sqrt(sy->gram2);
    *cka = den > 0 ? cross2 / den : NAN;
    double n = (double)N;
    double hxy = debiased_dot(cross2, rxry, sx->sumsq, sy->sumsq, n);
    double rxx = 0, ryy = 0;
    for (int i = 0; i < X->locr; i++) {
        rxx += sx->row_sq[i] * sx->row_sq[i];
        ryy += sy->row_sq[i] * sy->row_sq[i];
    }
    double r2[2] = {rxx, ryy};
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, r2, 2, MPI_DOUBLE, MPI_SUM, g->col_comm)));
    double hxx = debiased_dot(sx->gram2, r2[0], sx->sumsq, sx->sumsq, n);
    double hyy = debiased_dot(sy->gram2, r2[1], sy->sumsq, sy->sumsq, n);
    *debiased = hxx > 0 && hyy > 0 ? hxy / sqrt(hxx * hyy) : NAN;
cleanup:
    dapt_dmat_free(&P);
    return st;
}
