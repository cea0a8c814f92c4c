/* The loss of MOMETAS's cse objective (cse.c), apart for its test.
 * Internal to src/objectives. */
#ifndef DAPT_OBJECTIVES_CSE_H
#define DAPT_OBJECTIVES_CSE_H

#include <mpi.h>
#include <stdint.h>

#include "dapt/status.h"

/* The symmetric NT-Xent of the reference (modeling_bert.py, flow "cse")
 * over the global batch: this rank's n rows of the two views' embeddings
 * za, zb [n, dim]; every one of the 2N embeddings of the global batch is
 * an anchor, its positive the other view of its sequence, its negatives
 * the 2N - 2 others; logits cos / tau; *loss the mean over the 2N anchors
 * (the same on every rank).  dza, dzb [n, dim] receive this rank's rows of
 * the gradient; scratch holds 6 * rows_cap * dim floats (rows_cap >= n).
 * Collective over comm. */
dapt_status dapt_cse_loss(const float *za, const float *zb, int64_t n, int64_t dim, double tau, MPI_Comm comm,
                          float *scratch, int64_t rows_cap, double *loss, float *dza, float *dzb);

#endif
