/* Block-cyclic distributed matrices: descriptors, local <-> global indices,
 * reductions over rows and columns, redistribution between grids. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"
#include "scalapack.h"

dapt_status dapt_dmat_create(const dapt_pgrid *g, int64_t m, int64_t n, int mb, int nb, dapt_dmat *A)
{
    memset(A, 0, sizeof *A);
    if (m < 1 || n < 1 || m > INT_MAX || n > INT_MAX)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "a [%lld, %lld] matrix is outside ScaLAPACK's 32-bit sizes",
                          (long long)m, (long long)n);
    if (mb < 1 || nb < 1) return DAPT_ERROR(DAPT_ERR_ARG, "block size %dx%d is not positive", mb, nb);
    A->grid = g;
    A->m = m;
    A->n = n;
    A->mb = mb;
    A->nb = nb;
    int im = (int)m, in = (int)n, zero = 0, info = 0;
    A->locr = numroc_(&im, &mb, &g->myrow, &zero, &g->nprow);
    A->locc = numroc_(&in, &nb, &g->mycol, &zero, &g->npcol);
    A->lld = A->locr > 1 ? A->locr : 1;
    descinit_(A->desc, &im, &in, &mb, &nb, &zero, &zero, &g->ctxt, &A->lld, &info);
    if (info != 0) return DAPT_ERROR(DAPT_ERR_INTERNAL, "descinit failed (info %d) for [%lld, %lld]", info, (long long)m, (long long)n);
    size_t count = (size_t)A->lld * (size_t)(A->locc > 0 ? A->locc : 1);
    return dapt_calloc((void **)&A->a, count, sizeof(double), "distributed matrix block");
}

void dapt_dmat_free(dapt_dmat *A)
{
    free(A->a);
    memset(A, 0, sizeof *A);
}

static int64_t local_to_global(int i, int b, int p, int np)
{
    return ((int64_t)(i / b) * np + p) * b + i % b;
}

int64_t dapt_dmat_grow(const dapt_dmat *A, int i)
{
    return local_to_global(i, A->mb, A->grid->myrow, A->grid->nprow);
}

int64_t dapt_dmat_gcol(const dapt_dmat *A, int j)
{
    return local_to_global(j, A->nb, A->grid->mycol, A->grid->npcol);
}

static dapt_status sum_all(const dapt_pgrid *g, double *v, int64_t n)
{
    if (n > INT_MAX) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "reduction of %lld values", (long long)n);
    return DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, g->comm));
}

dapt_status dapt_dmat_center(dapt_dmat *A, int subtract, double *means)
{
    memset(means, 0, sizeof(double) * (size_t)A->n);
    for (int j = 0; j < A->locc; j++) {
        const double *col = A->a + (size_t)j * A->lld;
        double s = 0;
        for (int i = 0; i < A->locr; i++) s += col[i];
        means[dapt_dmat_gcol(A, j)] = s;
    }
    DAPT_CHECK(sum_all(A->grid, means, A->n));
    for (int64_t j = 0; j < A->n; j++) means[j] /= (double)A->m;
    if (!subtract) return DAPT_OK;
    for (int j = 0; j < A->locc; j++) {
        double *col = A->a + (size_t)j * A->lld, mu = means[dapt_dmat_gcol(A, j)];
        for (int i = 0; i < A->locr; i++) col[i] -= mu;
    }
    return DAPT_OK;
}

dapt_status dapt_dmat_row_sumsq(const dapt_dmat *A, double *rows)
{
    memset(rows, 0, sizeof(double) * (size_t)A->m);
    for (int j = 0; j < A->locc; j++) {
        const double *col = A->a + (size_t)j * A->lld;
        for (int i = 0; i < A->locr; i++) rows[dapt_dmat_grow(A, i)] += col[i] * col[i];
    }
    return sum_all(A->grid, rows, A->m);
}

dapt_status dapt_dmat_col_sumsq(const dapt_dmat *A, double *cols)
{
    memset(cols, 0, sizeof(double) * (size_t)A->n);
    for (int j = 0; j < A->locc; j++) {
        const double *col = A->a + (size_t)j * A->lld;
        double s = 0;
        for (int i = 0; i < A->locr; i++) s += col[i] * col[i];
        cols[dapt_dmat_gcol(A, j)] = s;
    }
    return sum_all(A->grid, cols, A->n);
}

dapt_status dapt_dmat_sumsq(const dapt_dmat *A, double *out)
{
    double s = 0;
    for (int j = 0; j < A->locc; j++) {
        const double *col = A->a + (size_t)j * A->lld;
        for (int i = 0; i < A->locr; i++) s += col[i] * col[i];
    }
    DAPT_CHECK(sum_all(A->grid, &s, 1));
    *out = s;
    return DAPT_OK;
}

dapt_status dapt_dmat_redistribute(const dapt_dmat *A, const dapt_pgrid *into, int mb, int nb, dapt_dmat *B)
{
    dapt_status st = dapt_status_agree(into->comm, dapt_dmat_create(into, A->m, A->n, mb, nb, B));
    if (st != DAPT_OK) return st;
    int m = (int)A->m, n = (int)A->n, one = 1;
    pdgemr2d_(&m, &n, A->a, &one, &one, A->desc, B->a, &one, &one, B->desc, &into->ctxt);
    return DAPT_OK;
}
