/* ZeRO stage 1 (parallel.shard_optimizer; include/dapt/optim.h).
 *
 * The flat parameter buffer is cut into one contiguous range per data rank,
 * in rank order, each cut on a row boundary of the tensor it falls in (or
 * between tensors).  Contiguous ranges in rank order make any contiguous
 * bucket of the buffer one reduce-scatter (rank r receives the bucket's
 * intersection with its range) and one in-place all-gather, so the
 * collectives are the all-reduce's buckets, not one per tensor; whole rows
 * make every rank's part of a tensor a hyperslab, so each rank writes and
 * reads the moments it keeps into a checkpoint at global shape without
 * gathering them. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/optim.h"

struct dapt_zero {
    const dapt_param_table *table;
    MPI_Comm comm;
    int rank, size;
    size_t *cut;    /* size + 1 entries: rank r owns floats [cut[r], cut[r + 1]) */
    int64_t *rows;  /* 3 per tensor: first owned row, owned rows, offset of the first in the moments */
    float *recv;    /* the reduce-scattered gradient range (size > 1) */
    /* the all-gather's buckets: [glo[b], glo[b + 1]), counts and displacements */
    size_t ngb, *glo;
    int *gcounts, *gdispls;
    MPI_Request *req;
};

/* The first row boundary at or after float x: a row start of the tensor
 * holding x, the end of that tensor, or x itself between tensors. */
static size_t snap(const dapt_param_table *t, size_t x)
{
    for (size_t k = 0; k < t->count; k++) {
        const dapt_tensor *tt = &t->tensors[k];
        if (x <= tt->offset) return x;
        if (x < tt->offset + tt->numel) {
            const size_t cols = (size_t)tt->shape[1];
            return tt->offset + (x - tt->offset + cols - 1) / cols * cols;
        }
    }
    return x;
}

void dapt_zero_range_counts(const dapt_zero *z, size_t a, size_t b, int *counts, int *displs)
{
    for (int r = 0; r < z->size; r++) {
        const size_t lo = z->cut[r] > a ? z->cut[r] : a, hi = z->cut[r + 1] < b ? z->cut[r + 1] : b;
        counts[r] = hi > lo ? (int)(hi - lo) : 0;
        if (displs) displs[r] = hi > lo ? (int)(lo - a) : 0;
    }
}

/* The part of [a, a + n) in this rank's range: [*s, *e). */
static int clip_to(const dapt_zero *z, size_t a, size_t n, size_t *s, size_t *e)
{
    *s = a > z->cut[z->rank] ? a : z->cut[z->rank];
    *e = a + n < z->cut[z->rank + 1] ? a + n : z->cut[z->rank + 1];
    return *e > *s;
}

dapt_status dapt_zero_create(const dapt_param_table *table, double bucket_mb, MPI_Comm comm, dapt_zero **out)
{
    *out = NULL;
    dapt_zero *z = NULL;
    DAPT_CHECK(dapt_calloc((void **)&z, 1, sizeof *z, "optimizer shard plan"));
    z->table = table;
    z->comm = comm;
    dapt_status st = DAPT_MPI(MPI_Comm_rank(comm, &z->rank));
    if (st == DAPT_OK) st = DAPT_MPI(MPI_Comm_size(comm, &z->size));
    if (st == DAPT_OK) st = dapt_calloc((void **)&z->cut, (size_t)z->size + 1, sizeof *z->cut, "optimizer shard plan");
    if (st == DAPT_OK)
        st = dapt_calloc((void **)&z->rows, 3 * (table->count ? table->count : 1), sizeof *z->rows, "optimizer shard rows");
    if (st != DAPT_OK) {
        dapt_zero_free(z);
        return st;
    }
    const size_t total = table->total;
    for (int r = 1; r < z->size; r++) {
        const size_t want = (size_t)((double)total * r / z->size);
        z->cut[r] = snap(table, want);
        if (z->cut[r] < z->cut[r - 1]) z->cut[r] = z->cut[r - 1];
    }
    z->cut[z->size] = total;
    const size_t lo = z->cut[z->rank], hi = z->cut[z->rank + 1];
    for (size_t k = 0; k < table->count; k++) {
        const dapt_tensor *t = &table->tensors[k];
        const size_t cols = (size_t)t->shape[1];
        size_t s, e;
        const int mine = clip_to(z, t->offset, t->numel, &s, &e);
        z->rows[3 * k] = mine ? (int64_t)((s - t->offset) / cols) : 0;
        z->rows[3 * k + 1] = mine ? (int64_t)((e - s) / cols) : 0;
        z->rows[3 * k + 2] = (int64_t)((s < hi ? s : hi) - lo); /* within the buffer even when empty */
    }
    /* The all-gather in buckets of bucket_mb (at most INT_MAX floats). */
    size_t piece = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    if (piece < 1024) piece = 1024;
    if (piece > (size_t)INT_MAX) piece = (size_t)INT_MAX;
    z->ngb = total ? (total + piece - 1) / piece : 0;
    const size_t nb = z->ngb ? z->ngb : 1, ns = nb * (size_t)z->size;
    st = dapt_calloc((void **)&z->glo, nb + 1, sizeof *z->glo, "all-gather buckets");
    if (st == DAPT_OK) st = dapt_calloc((void **)&z->gcounts, 2 * ns, sizeof *z->gcounts, "all-gather counts");
    if (st == DAPT_OK) st = dapt_calloc((void **)&z->req, nb, sizeof *z->req, "all-gather requests");
    if (st == DAPT_OK && z->size > 1)
        st = dapt_alloc((void **)&z->recv, (hi > lo ? hi - lo : 1) * sizeof *z->recv, "reduce-scattered gradients");
    if (st != DAPT_OK) {
        dapt_zero_free(z);
        return st;
    }
    z->gdispls = z->gcounts + ns;
    for (size_t b = 0; b < z->ngb; b++) {
        z->glo[b] = b * piece;
        z->glo[b + 1] = total - b * piece < piece ? total : (b + 1) * piece;
        dapt_zero_range_counts(z, z->glo[b], z->glo[b + 1], z->gcounts + b * (size_t)z->size,
                               z->gdispls + b * (size_t)z->size);
    }
    *out = z;
    return DAPT_OK;
}

void dapt_zero_free(dapt_zero *z)
{
    if (!z) return;
    free(z->cut);
    free(z->rows);
    free(z->recv);
    free(z->glo);
    free(z->gcounts);
    free(z->req);
    free(z);
}

size_t dapt_zero_size(const dapt_zero *z) { return z->cut[z->rank + 1] - z->cut[z->rank]; }

void dapt_zero_range(const dapt_zero *z, size_t *lo, size_t *hi)
{
    *lo = z->cut[z->rank];
    *hi = z->cut[z->rank + 1];
}

const int64_t *dapt_zero_rows(const dapt_zero *z) { return z->rows; }

dapt_status dapt_zero_reduce_start(dapt_zero *z, size_t a, size_t b, const float *grads, const int *counts,
                                   MPI_Request *req)
{
    *req = MPI_REQUEST_NULL;
    if (z->size == 1 || b <= a) return DAPT_OK;
    const size_t lo = z->cut[z->rank], at = a > lo ? a : lo;
    /* A rank with nothing in [a, b) still passes a valid address. */
    float *dst = z->recv + (at - lo < dapt_zero_size(z) ? at - lo : 0);
    return DAPT_MPI(MPI_Ireduce_scatter(grads + a, dst, counts, MPI_FLOAT, MPI_SUM, z->comm, req));
}

void dapt_zero_reduce_finish(const dapt_zero *z, float *grads)
{
    const size_t n = dapt_zero_size(z);
    if (z->size > 1 && n) memcpy(grads + z->cut[z->rank], z->recv, n * sizeof *grads);
}

/* The part of tensor k in this rank's range: [*s, *e). */
static int owned(const dapt_zero *z, size_t k, size_t *s, size_t *e)
{
    const dapt_tensor *t = &z->table->tensors[k];
    return clip_to(z, t->offset, t->numel, s, e);
}

dapt_status dapt_zero_sumsq(const dapt_zero *z, const float *grads, double *sumsq)
{
    double local = 0.0;
    for (size_t k = 0; k < z->table->count; k++) {
        size_t s, e;
        if (owned(z, k, &s, &e)) local += dapt_grad_sumsq(z->table, s, e, grads);
    }
    *sumsq = local;
    if (z->size == 1) return DAPT_OK;
    return DAPT_MPI(MPI_Allreduce(&local, sumsq, 1, MPI_DOUBLE, MPI_SUM, z->comm));
}

void dapt_zero_scale(const dapt_zero *z, float *grads, float factor)
{
    dapt_grad_scale(z->table, z->cut[z->rank], z->cut[z->rank + 1], grads, factor);
}

dapt_status dapt_zero_update(const dapt_zero *z, const dapt_adamw *opt, double lr, float *params, const float *grads,
                             float *m, float *v, const float *step_scale, const float *decay_scale)
{
    const size_t lo = z->cut[z->rank];
    for (size_t k = 0; k < z->table->count; k++) {
        size_t s, e;
        if (!owned(z, k, &s, &e)) continue;
        const int no_decay = (z->table->tensors[k].flags & DAPT_TENSOR_NO_DECAY) != 0;
        DAPT_CHECK(dapt_adamw_update_span(opt, lr, no_decay, e - s, params + s, grads + s, m + (s - lo), v + (s - lo),
                                          step_scale ? step_scale + s : NULL, decay_scale ? decay_scale + s : NULL));
    }
    return DAPT_OK;
}

dapt_status dapt_zero_gather(dapt_zero *z, float *params)
{
    if (z->size == 1) return DAPT_OK;
    dapt_status st = DAPT_OK;
    size_t started = 0;
    for (; started < z->ngb; started++) {
        const size_t b = started, off = b * (size_t)z->size;
        st = DAPT_MPI(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, params + z->glo[b], z->gcounts + off,
                                      z->gdispls + off, MPI_FLOAT, z->comm, &z->req[b]));
        if (st != DAPT_OK) break;
    }
    if (started) {
        const dapt_status w = DAPT_MPI(MPI_Waitall((int)started, z->req, MPI_STATUSES_IGNORE));
        if (st == DAPT_OK) st = w;
    }
    return st;
}

dapt_status dapt_adamw_moments(const dapt_config *cfg, const dapt_param_table *table, MPI_Comm comm,
                               int tensor_parallel, dapt_zero **z, float **m, float **v)
{
    *z = NULL;
    size_t n = table->total;
    if (cfg->parallel.shard_optimizer) {
        if (tensor_parallel)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "parallel.shard_optimizer: not supported with parallel.tensor = %lld > 1 yet",
                              (long long)cfg->parallel.tensor);
        DAPT_CHECK(dapt_zero_create(table, cfg->parallel.bucket_mb, comm, z));
        n = dapt_zero_size(*z);
        dapt_info("parallel.shard_optimizer: AdamW moments for %zu of the model's %zu floats on this rank, %d data ranks",
                  n, table->total, (*z)->size);
    }
    DAPT_CHECK(dapt_calloc((void **)m, n ? n : 1, sizeof(float), "AdamW first moment"));
    return dapt_calloc((void **)v, n ? n : 1, sizeof(float), "AdamW second moment");
}
