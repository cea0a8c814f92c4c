/* The 2-D BLACS process grid dapt analyze distributes its matrices on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"
#include "scalapack.h"

void dapt_pgrid_shape(int size, int *nprow, int *npcol)
{
    int c = 1;
    for (int k = 1; k * k <= size; k++)
        if (size % k == 0) c = k;
    *npcol = c;
    *nprow = size / c;
}

dapt_status dapt_pgrid_parse(const char *text, int *nprow, int *npcol)
{
    char *end = NULL;
    long r = strtol(text, &end, 10);
    if (!end || (*end != 'x' && *end != 'X') || r < 1 || r > 1 << 20)
        return DAPT_ERROR(DAPT_ERR_ARG, "grid '%s' is not ROWSxCOLS (e.g. 2x2)", text);
    const char *c_text = end + 1;
    long c = strtol(c_text, &end, 10);
    if (!end || *end || end == c_text || c < 1 || c > 1 << 20)
        return DAPT_ERROR(DAPT_ERR_ARG, "grid '%s' is not ROWSxCOLS (e.g. 2x2)", text);
    *nprow = (int)r;
    *npcol = (int)c;
    return DAPT_OK;
}

dapt_status dapt_pgrid_create(MPI_Comm comm, int nprow, int npcol, dapt_pgrid *g)
{
    memset(g, 0, sizeof *g);
    g->comm = comm;
    g->row_comm = g->col_comm = MPI_COMM_NULL;
    g->ctxt = -1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &g->rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &g->size)));
    if (nprow < 1 || npcol < 1 || (int64_t)nprow * npcol != g->size)
        return DAPT_ERROR(DAPT_ERR_ARG, "a %dx%d process grid needs %lld ranks, the job has %d", nprow, npcol,
                          (long long)nprow * npcol, g->size);
    g->sys = Csys2blacs_handle(comm);
    g->ctxt = g->sys;
    Cblacs_gridinit(&g->ctxt, "Row", nprow, npcol);
    /* The context holds its own communicators; the handle is not needed
     * again, and freeing it now lets several grids share a communicator. */
    Cfree_blacs_system_handle(g->sys);
    Cblacs_gridinfo(g->ctxt, &g->nprow, &g->npcol, &g->myrow, &g->mycol);
    dapt_status st = DAPT_OK;
    /* Row-major order: rank r is process (r / npcol, r % npcol). */
    if (g->nprow != nprow || g->npcol != npcol || g->myrow != g->rank / npcol || g->mycol != g->rank % npcol)
        st = DAPT_ERROR(DAPT_ERR_MPI, "BLACS made a %dx%d grid with rank %d at (%d, %d), not the %dx%d row-major grid asked for",
                        g->nprow, g->npcol, g->rank, g->myrow, g->mycol, nprow, npcol);
    if (st == DAPT_OK) st = DAPT_MPI(MPI_Comm_split(comm, g->myrow, g->mycol, &g->row_comm));
    if (st == DAPT_OK) st = DAPT_MPI(MPI_Comm_split(comm, g->mycol, g->myrow, &g->col_comm));
    st = dapt_status_agree(comm, st);
    if (st != DAPT_OK) dapt_pgrid_free(g);
    return st;
}

void dapt_pgrid_free(dapt_pgrid *g)
{
    if (g->row_comm != MPI_COMM_NULL && g->row_comm != 0) MPI_Comm_free(&g->row_comm);
    if (g->col_comm != MPI_COMM_NULL && g->col_comm != 0) MPI_Comm_free(&g->col_comm);
    if (g->ctxt >= 0 && g->size > 0) {
        Cblacs_gridexit(g->ctxt);
    }
    g->ctxt = -1;
    g->size = 0;
    g->row_comm = g->col_comm = MPI_COMM_NULL;
}
