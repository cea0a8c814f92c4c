/* The gradient all-reduce of dapt train and dapt finetune, started during
 * the backward pass: buckets follow the order in which backward completes
 * the gradients (heads, last layer ... first layer, embeddings), each is
 * sent with MPI_Iallreduce as soon as backward passes its frontier, and the
 * requests in flight are progressed at every later frontier (Open MPI's
 * non-blocking collectives advance only inside MPI calls).  Buckets are
 * started in the same order on every rank whatever each rank computed: a
 * rank with no rows starts them all at the end, in that order.  With
 * parallel.shard_optimizer the same buckets are reduce-scattered instead
 * (src/optim/zero.c): each rank receives the sum of its own range. */
#include <math.h>
#include <stdlib.h>

#include "dapt/optim.h"

typedef struct bucket {
    size_t lo, hi;
    int aux; /* the objective's tensors: backward never completes them */
} bucket;

struct dapt_grad_sync {
    const dapt_param_table *table;
    MPI_Comm comm;
    int size;
    bucket *b;
    MPI_Request *req;
    size_t nb, cap, started;
    float *grads;
    int nonfinite;
    dapt_grad_hook hook;
    dapt_zero *zero; /* parallel.shard_optimizer: reduce-scatter */
    int *counts;     /* sharded: size per bucket, the receive counts */
};

/* Appends [lo, hi) cut into pieces of at most `piece` floats. */
static dapt_status add_unit(dapt_grad_sync *s, size_t lo, size_t hi, size_t piece, int aux)
{
    for (size_t a = lo; a < hi; a += piece) {
        if (s->nb == s->cap) {
            const size_t cap = s->cap ? 2 * s->cap : 32;
            bucket *nbk = realloc(s->b, cap * sizeof *nbk);
            if (!nbk) return DAPT_ERROR(DAPT_ERR_NOMEM, "gradient all-reduce: out of memory for %zu buckets", cap);
            s->b = nbk;
            s->cap = cap;
        }
        s->b[s->nb++] = (bucket){a, hi - a < piece ? hi : a + piece, aux};
    }
    return DAPT_OK;
}

static dapt_status start(dapt_grad_sync *s)
{
    const bucket *b = &s->b[s->started];
    /* A non-finite local gradient is this rank's fault: find it before the sum. */
    if (!isfinite(dapt_grad_sumsq(s->table, b->lo, b->hi, s->grads))) s->nonfinite = 1;
    if (s->zero)
        DAPT_CHECK(dapt_zero_reduce_start(s->zero, b->lo, b->hi, s->grads, s->counts + s->started * (size_t)s->size,
                                          &s->req[s->started]));
    else if (s->size > 1)
        DAPT_CHECK(DAPT_MPI(MPI_Iallreduce(MPI_IN_PLACE, s->grads + b->lo, (int)(b->hi - b->lo), MPI_FLOAT, MPI_SUM,
                                           s->comm, &s->req[s->started])));
    s->started++;
    return DAPT_OK;
}

static dapt_status ready(void *ctx, size_t frontier)
{
    dapt_grad_sync *s = ctx;
    while (s->started < s->nb && !s->b[s->started].aux && s->b[s->started].lo >= frontier) DAPT_CHECK(start(s));
    if (s->size > 1 && s->started > 0) {
        int done = 0;
        DAPT_CHECK(DAPT_MPI(MPI_Testall((int)s->started, s->req, &done, MPI_STATUSES_IGNORE)));
    }
    return DAPT_OK;
}

static dapt_status create(const dapt_model *m, double bucket_mb, dapt_zero *z, MPI_Comm comm, dapt_grad_sync **out)
{
    *out = NULL;
    dapt_grad_sync *s = NULL;
    DAPT_CHECK(dapt_calloc((void **)&s, 1, sizeof *s, "gradient all-reduce"));
    s->table = &m->table;
    s->zero = z;
    s->comm = comm;
    dapt_status st = DAPT_MPI(MPI_Comm_size(comm, &s->size));
    size_t piece = (size_t)(bucket_mb * 1048576.0 / sizeof(float));
    if (piece < 1024) piece = 1024;
    if (piece > ((size_t)1 << 30)) piece = (size_t)1 << 30;
    const size_t *f, total = m->table.total;
    size_t aux;
    const size_t nf = dapt_model_grad_frontiers(m, &f, &aux);
    /* Units in the order backward completes them: [f[0], aux), then
     * [f[k], f[k - 1]) for each layer and the embeddings; the auxiliary
     * tensors last. */
    if (st == DAPT_OK) st = add_unit(s, f[0], aux, piece, 0);
    for (size_t k = 1; k < nf && st == DAPT_OK; k++) st = add_unit(s, f[k], f[k - 1], piece, 0);
    if (st == DAPT_OK) st = add_unit(s, aux, total, piece, 1);
    if (st == DAPT_OK) st = dapt_alloc((void **)&s->req, (s->nb ? s->nb : 1) * sizeof *s->req, "all-reduce requests");
    if (st == DAPT_OK && z) {
        st = dapt_alloc((void **)&s->counts, (s->nb ? s->nb : 1) * (size_t)s->size * sizeof *s->counts,
                        "reduce-scatter counts");
        for (size_t k = 0; k < s->nb && st == DAPT_OK; k++)
            dapt_zero_range_counts(z, s->b[k].lo, s->b[k].hi, s->counts + k * (size_t)s->size, NULL);
    }
    if (st != DAPT_OK) {
        dapt_grad_sync_free(s);
        return st;
    }
    s->hook = (dapt_grad_hook){ready, s};
    *out = s;
    return DAPT_OK;
}

dapt_status dapt_grad_sync_create(const dapt_model *m, double bucket_mb, MPI_Comm comm, dapt_grad_sync **out)
{
    return create(m, bucket_mb, NULL, comm, out);
}

dapt_status dapt_grad_sync_create_sharded(const dapt_model *m, double bucket_mb, dapt_zero *z, MPI_Comm comm,
                                          dapt_grad_sync **out)
{
    return create(m, bucket_mb, z, comm, out);
}

void dapt_grad_sync_free(dapt_grad_sync *s)
{
    if (!s) return;
    free(s->b);
    free(s->req);
    free(s->counts);
    free(s);
}

void dapt_grad_sync_begin(dapt_grad_sync *s, float *grads)
{
    s->grads = grads;
    s->started = 0;
    s->nonfinite = 0;
}

const dapt_grad_hook *dapt_grad_sync_hook(dapt_grad_sync *s) { return &s->hook; }

dapt_status dapt_grad_sync_end(dapt_grad_sync *s, int *nonfinite)
{
    dapt_status st = DAPT_OK;
    while (s->started < s->nb && st == DAPT_OK) st = start(s);
    if (s->size > 1 && s->started > 0) {
        const dapt_status w = DAPT_MPI(MPI_Waitall((int)s->started, s->req, MPI_STATUSES_IGNORE));
        if (st == DAPT_OK) st = w;
    }
    if (st == DAPT_OK && s->zero) dapt_zero_reduce_finish(s->zero, s->grads);
    s->started = 0;
    *nonfinite = s->nonfinite;
    return st;
}

size_t dapt_grad_sync_buckets(const dapt_grad_sync *s) { return s->nb; }
