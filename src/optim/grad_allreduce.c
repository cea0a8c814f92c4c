/* Summing gradients over the data-parallel ranks (dapt train, dapt
 * finetune): buckets of parallel.bucket_mb, all in flight together
 * (non-blocking MPI_Iallreduce), so large models are not one huge message
 * and an int count always suffices. */
#include <stdlib.h>

#include "dapt/optim.h"

dapt_status dapt_grad_allreduce(float *grads, size_t total, double bucket_mb, MPI_Comm comm)
{
    int size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    if (size == 1 || total == 0) return DAPT_OK;
    size_t bucket = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    if (bucket < 1024) bucket = 1024;
    if (bucket > ((size_t)1 << 30)) bucket = (size_t)1 << 30;
    size_t nb = (total + bucket - 1) / bucket;
    MPI_Request *req = NULL;
    DAPT_CHECK(dapt_alloc((void **)&req, nb * sizeof *req, "all-reduce requests"));
    dapt_status st = DAPT_OK;
    for (size_t b = 0; b < nb && st == DAPT_OK; b++) {
        size_t off = b * bucket, cnt = total - off < bucket ? total - off : bucket;
        st = DAPT_MPI(MPI_Iallreduce(MPI_IN_PLACE, grads + off, (int)cnt, MPI_FLOAT, MPI_SUM, comm, &req[b]));
        if (st != DAPT_OK) nb = b;
    }
    if (nb) {
        dapt_status w = DAPT_MPI(MPI_Waitall((int)nb, req, MPI_STATUSES_IGNORE));
        if (st == DAPT_OK) st = w;
    }
    free(req);
    return st;
}
