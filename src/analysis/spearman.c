/* Spearman's rank correlation with average ranks for ties (scipy's
 * spearmanr, numpy's argsort-based rankdata 'average'). */
#include <math.h>
#include <stdlib.h>

#include "dapt/analysis.h"

typedef struct keyed {
    double v;
    size_t i;
} keyed;

static int by_value(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static dapt_status ranks(const double *x, size_t n, double *r)
{
    keyed *k = NULL;
    DAPT_CHECK(dapt_alloc((void **)&k, sizeof *k * (n ? n : 1), "ranks"));
    for (size_t i = 0; i < n; i++) k[i] = (keyed){x[i], i};
    qsort(k, n, sizeof *k, by_value);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && k[b].v == k[a].v) b++;
        double mean = 0.5 * (double)(a + 1 + b); /* ranks a+1 .. b */
        for (size_t j = a; j < b; j++) r[k[j].i] = mean;
        a = b;
    }
    free(k);
    return DAPT_OK;
}

void dapt_rank_average(const double *x, size_t n, double *r)
{
    if (ranks(x, n, r) != DAPT_OK)
        for (size_t i = 0; i < n; i++) r[i] = NAN;
}

dapt_status dapt_spearman(const double *x, const double *y, size_t n, double *rho)
{
    *rho = NAN;
    if (n < 2) return DAPT_OK;
    double *rx = NULL, *ry = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_alloc((void **)&rx, sizeof(double) * n, "ranks"));
    DAPT_TRY(dapt_alloc((void **)&ry, sizeof(double) * n, "ranks"));
    DAPT_TRY(ranks(x, n, rx));
    DAPT_TRY(ranks(y, n, ry));
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += rx[i];
        my += ry[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (rx[i] - mx) * (ry[i] - my);
        sxx += (rx[i] - mx) * (rx[i] - mx);
        syy += (ry[i] - my) * (ry[i] - my);
    }
    if (sxx > 0 && syy > 0) *rho = sxy / sqrt(sxx * syy);
cleanup:
    free(rx);
    free(ry);
    return st;
}
