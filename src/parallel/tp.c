/* Tensor-parallel models: the engine's reduction callback over the tensor
 * communicator, sharding a whole model, and the two group-wide views of a
 * sharded buffer that training needs (global norm, whole buffer).  See
 * include/dapt/grid.h and docs/parallel.md. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/grid.h"

static dapt_status tensor_allreduce(void *ctx, float *buf, size_t count, dapt_reduce_op op)
{
    MPI_Comm comm = *(const MPI_Comm *)ctx;
    MPI_Op mop = op == DAPT_REDUCE_MAX ? MPI_MAX : MPI_SUM;
    /* MPI counts are int: reduce in chunks. */
    for (size_t done = 0; done < count;) {
        size_t n = count - done > (size_t)INT_MAX / 2 ? (size_t)INT_MAX / 2 : count - done;
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, buf + done, (int)n, MPI_FLOAT, mop, comm)));
        done += n;
    }
    return DAPT_OK;
}

void dapt_grid_tp_group(const dapt_grid *g, dapt_tp_group *tp)
{
    tp->size = g->tensor_size;
    tp->rank = g->tensor_rank;
    tp->allreduce = tensor_allreduce;
    tp->ctx = (void *)&g->tensor;
}

void dapt_tp_layout_free(dapt_tp_layout *lay)
{
    dapt_param_table_free(&lay->global);
    free(lay->shards);
    memset(lay, 0, sizeof *lay);
}

dapt_status dapt_tp_shard_model(const dapt_grid *g, const dapt_tp_group *tp, dapt_model *m,
                                dapt_tp_layout *lay)
{
    memset(lay, 0, sizeof *lay);
    const dapt_model_config *mc = &m->config;
    const int t = g->tensor_rank, T = g->tensor_size;
    const dapt_model_ranges *mr = &m->ranges;
    if (mr->tensor_size != 1 || mr->head_count != mc->heads || mr->ffn_count != mc->intermediate ||
        mr->vocab_rows != mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_ARG, "tensor-parallel sharding needs a whole model (this one is already tensor rank %d of %d)",
                          mr->tensor_rank, mr->tensor_size);
    DAPT_CHECK(dapt_grid_check_model(g, mc));
    dapt_param_table local = {0};
    dapt_model shard;
    memset(&shard, 0, sizeof shard);
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_shard_table_build(mc, &m->table, t, T, &local, &lay->shards));
    const dapt_range heads = dapt_shard_heads(mc, t, T), ffn = dapt_shard_ffn(mc, t, T);
    int64_t real = 0;
    const dapt_range vocab = dapt_shard_vocab(mc->vocab_size, t, T, &real);
    const dapt_model_ranges r = {t, T, heads.begin, heads.count, ffn.begin, ffn.count, vocab.begin, vocab.count, real};
    DAPT_TRY(dapt_model_create_shard(mc, &local, &r, &shard));
    dapt_shard_scatter(&m->table, m->params, &shard.table, lay->shards, shard.params);
    /* The whole model's table becomes the layout's global table. */
    lay->global = m->table;
    m->table.tensors = NULL;
    m->table.count = 0;
    dapt_model_free(m);
    *m = shard;
    m->tp = tp;
    lay->tensor_rank = t;
    lay->tensor_size = T;
    lay->tensor = g->tensor;
    dapt_param_table_free(&local);
    return DAPT_OK;
cleanup:
    dapt_param_table_free(&local);
    dapt_model_free(&shard);
    free(lay->shards);
    lay->shards = NULL;
    return st;
}

dapt_status dapt_tp_sumsq(const dapt_tp_layout *lay, const dapt_param_table *local, const float *buf,
                          double *sumsq)
{
    double part[2] = {0.0, 0.0}; /* split, replicated */
    for (size_t k = 0; k < local->count; k++) {
        const dapt_tensor *l = &local->tensors[k];
        const float *x = buf + l->offset;
        const size_t n = l->numel;
        double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
        part[lay->shards[k].kind == DAPT_SHARD_REPLICATED] += s;
    }
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &part[0], 1, MPI_DOUBLE, MPI_SUM, lay->tensor)));
    *sumsq = part[0] + part[1];
    return DAPT_OK;
}

dapt_status dapt_tp_allgather(const dapt_tp_layout *lay, const dapt_param_table *local,
                              const float *local_buf, float *global_buf)
{
    const dapt_param_table *g = &lay->global;
    memset(global_buf, 0, g->total * sizeof *global_buf);
    for (size_t k = 0; k < local->count; k++) {
        const dapt_shard *s = &lay->shards[k];
        /* Replicated tensors: rank 0's copy (all are equal). */
        if (s->kind == DAPT_SHARD_REPLICATED && lay->tensor_rank != 0) continue;
        const dapt_tensor *gt = &g->tensors[k], *lt = &local->tensors[k];
        const size_t gcols = (size_t)gt->shape[1], lcols = (size_t)lt->shape[1];
        for (int64_t r = 0; r < s->rows; r++)
            memcpy(global_buf + gt->offset + (size_t)(s->row0 + r) * gcols + (size_t)s->col0,
                   local_buf + lt->offset + (size_t)r * lcols, (size_t)s->cols * sizeof(float));
    }
    return tensor_allreduce((void *)&lay->tensor, global_buf, g->total, DAPT_REDUCE_SUM);
}
