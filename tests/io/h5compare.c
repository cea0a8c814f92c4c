/* h5compare EXPECTED.h5 ACTUAL.h5 TOL: every dataset of EXPECTED must exist
 * in ACTUAL with the same shape and agree to TOL relative to the largest
 * magnitude of the expected dataset (max |a - e| <= TOL * max |e|, with
 * max |e| floored at 1e-6 for all-zero tensors).  Prints the worst error
 * of each dataset; exits 0 when all agree, 1 otherwise. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/h5io.h"

typedef struct cmp_ctx {
    dapt_h5file *e, *a;
    double tol;
    int bad;
} cmp_ctx;

static dapt_status one(const char *name, void *user)
{
    cmp_ctx *c = user;
    int ne = 0, na = 0;
    int64_t de[DAPT_H5_MAX_DIMS], da[DAPT_H5_MAX_DIMS];
    if (dapt_h5_info(c->e, name, &ne, de, NULL) != DAPT_OK) return DAPT_OK; /* a group */
    if (!dapt_h5_exists(c->a, name) || dapt_h5_info(c->a, name, &na, da, NULL) != DAPT_OK) {
        printf("%-24s missing in %s\n", name, c->a->path);
        c->bad = 1;
        return DAPT_OK;
    }
    size_t n = 1;
    int same = ne == na;
    for (int d = 0; d < ne && same; d++) {
        same = de[d] == da[d];
        n *= (size_t)de[d];
    }
    if (!same) {
        printf("%-24s shapes differ\n", name);
        c->bad = 1;
        return DAPT_OK;
    }
    double *x = NULL, *y = NULL;
    DAPT_CHECK(dapt_h5_read_all(c->e, name, DAPT_H5_F64, (void **)&x, NULL, NULL));
    DAPT_CHECK(dapt_h5_read_all(c->a, name, DAPT_H5_F64, (void **)&y, NULL, NULL));
    double scale = 1e-6, err = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(x[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, isfinite(y[i]) ? fabs(x[i] - y[i]) : INFINITY);
    int ok = err <= c->tol * scale;
    printf("%-24s max|diff| %.3e  max|expected| %.3e  relative %.2e  %s\n", name, err, scale, err / scale,
           ok ? "ok" : "TOO LARGE");
    c->bad |= !ok;
    free(x);
    free(y);
    return DAPT_OK;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (argc != 4) {
        fprintf(stderr, "usage: h5compare EXPECTED.h5 ACTUAL.h5 TOL\n");
        MPI_Finalize();
        return 2;
    }
    dapt_h5file e, a;
    cmp_ctx c = {&e, &a, atof(argv[3]), 0};
    dapt_status st = dapt_h5_open(MPI_COMM_SELF, argv[1], &e);
    if (st == DAPT_OK) st = dapt_h5_open(MPI_COMM_SELF, argv[2], &a);
    if (st == DAPT_OK) st = dapt_h5_list(&e, "/", one, &c);
    if (st != DAPT_OK) {
        fprintf(stderr, "h5compare: %s\n", dapt_error_message());
        c.bad = 1;
    }
    dapt_h5_close(&e);
    dapt_h5_close(&a);
    MPI_Finalize();
    return c.bad ? 1 : 0;
}
