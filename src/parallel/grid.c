/* The data-parallel x tensor-parallel process grid (include/dapt/grid.h). */
#include "dapt/grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/share.h"

/* dapt_share as a dapt_range. */
static dapt_range block(int64_t n, int parts, int part)
{
    dapt_range r;
    dapt_share(n, part, parts, &r.begin, &r.count);
    return r;
}

dapt_range dapt_shard_heads(const dapt_model_config *mc, int tensor_rank, int tensor_size)
{
    return block(mc->heads, tensor_size, tensor_rank);
}

dapt_range dapt_shard_ffn(const dapt_model_config *mc, int tensor_rank, int tensor_size)
{
    return block(mc->intermediate, tensor_size, tensor_rank);
}

int64_t dapt_padded_vocab(int64_t vocab_size, int tensor_size)
{
    int64_t q = (int64_t)DAPT_VOCAB_PAD * (tensor_size > 0 ? tensor_size : 1);
    return vocab_size <= 0 ? 0 : (vocab_size + q - 1) / q * q;
}

dapt_range dapt_shard_vocab(int64_t vocab_size, int tensor_rank, int tensor_size, int64_t *real)
{
    dapt_range r = block(dapt_padded_vocab(vocab_size, tensor_size), tensor_size, tensor_rank);
    if (real) {
        int64_t end = r.begin + r.count < vocab_size ? r.begin + r.count : vocab_size;
        *real = end > r.begin ? end - r.begin : 0;
    }
    return r;
}

dapt_range dapt_shard_samples(int64_t global_batch, int data_rank, int data_size)
{
    return block(global_batch, data_size, data_rank);
}

void dapt_grid_free(dapt_grid *g)
{
    MPI_Comm *comms[] = {&g->data, &g->tensor, &g->world};
    for (size_t i = 0; i < sizeof comms / sizeof comms[0]; i++)
        if (*comms[i] != MPI_COMM_NULL && *comms[i] != 0) DAPT_MPI_WARN(MPI_Comm_free(comms[i]));
    memset(g, 0, sizeof *g);
    g->world = g->data = g->tensor = MPI_COMM_NULL;
}

dapt_status dapt_grid_create(MPI_Comm world, int64_t tensor, dapt_grid *g)
{
    memset(g, 0, sizeof *g);
    g->world = g->data = g->tensor = MPI_COMM_NULL;
    int rank, size;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(world, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(world, &size)));
    /* Every rank must have read the same value; a mismatch would split the
     * communicators inconsistently and hang later. */
    int64_t lo = tensor, hi = tensor;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_INT64_T, MPI_MIN, world)));
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_INT64_T, MPI_MAX, world)));
    if (lo != hi)
        return DAPT_ERROR(DAPT_ERR_MPI, "rank %d: ranks disagree on parallel.tensor (from %lld to %lld)",
                          rank, (long long)lo, (long long)hi);
    if (tensor < 1)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "parallel.tensor = %lld: must be at least 1", (long long)tensor);
    if (tensor > size)
        return DAPT_ERROR(DAPT_ERR_CONFIG,
                          "parallel.tensor = %lld needs at least %lld ranks, the job has %d",
                          (long long)tensor, (long long)tensor, size);
    if (size % tensor)
        return DAPT_ERROR(DAPT_ERR_CONFIG,
                          "parallel.tensor = %lld does not divide the %d ranks of the job "
                          "(data-parallel size = ranks / tensor must be whole)",
                          (long long)tensor, size);
    const int T = (int)tensor;
    dapt_status st = DAPT_OK;
    DAPT_TRY(DAPT_MPI(MPI_Comm_dup(world, &g->world)));
    g->world_rank = rank;
    g->world_size = size;
    g->tensor_size = T;
    g->data_size = size / T;
    g->tensor_rank = rank % T;
    g->data_rank = rank / T;
    /* Tensor group: consecutive ranks (same data rank), ordered by rank. */
    DAPT_TRY(DAPT_MPI(MPI_Comm_split(g->world, g->data_rank, g->tensor_rank, &g->tensor)));
    DAPT_TRY(DAPT_MPI(MPI_Comm_split(g->world, g->tensor_rank, g->data_rank, &g->data)));
    int tr, ts, dr, ds;
    DAPT_TRY(DAPT_MPI(MPI_Comm_rank(g->tensor, &tr)));
    DAPT_TRY(DAPT_MPI(MPI_Comm_size(g->tensor, &ts)));
    DAPT_TRY(DAPT_MPI(MPI_Comm_rank(g->data, &dr)));
    DAPT_TRY(DAPT_MPI(MPI_Comm_size(g->data, &ds)));
    if (tr != g->tensor_rank || ts != T || dr != g->data_rank || ds != g->data_size)
        DAPT_THROW(DAPT_ERR_INTERNAL, "rank %d: communicator split gave tensor %d/%d data %d/%d", rank,
                   tr, ts, dr, ds);
    return DAPT_OK;
cleanup:
    dapt_grid_free(g);
    return st;
}

dapt_status dapt_grid_check_model(const dapt_grid *g, const dapt_model_config *mc)
{
    const int64_t T = g->tensor_size;
    if (mc->heads % T)
        return DAPT_ERROR(DAPT_ERR_CONFIG,
                          "parallel.tensor = %lld does not divide num_attention_heads = %lld: "
                          "each tensor rank must own whole attention heads",
                          (long long)T, (long long)mc->heads);
    if (mc->intermediate % T)
        return DAPT_ERROR(DAPT_ERR_CONFIG,
                          "parallel.tensor = %lld does not divide intermediate_size = %lld: "
                          "each tensor rank must own the same number of FFN columns",
                          (long long)T, (long long)mc->intermediate);
    int64_t vp = dapt_padded_vocab(mc->vocab_size, (int)T);
    if (vp % T || vp < mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "padded vocabulary %lld for %lld is not divisible by %lld",
                          (long long)vp, (long long)mc->vocab_size, (long long)T);
    return DAPT_OK;
}

dapt_status dapt_grid_check_batch(const dapt_grid *g, int64_t global_batch)
{
    if (global_batch < g->data_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG,
                          "train.batch_size = %lld is smaller than the %d data-parallel ranks: "
                          "every data rank needs at least one sample per step",
                          (long long)global_batch, g->data_size);
    return DAPT_OK;
}

enum { HOST_MAX = 64, LOG_ALL_RANKS_UP_TO = 64 };

dapt_status dapt_grid_log(const dapt_grid *g, const dapt_model_config *mc)
{
    char host[HOST_MAX] = {0};
    char mpi_host[MPI_MAX_PROCESSOR_NAME] = {0};
    int len = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Get_processor_name(mpi_host, &len)));
    /* Truncated to HOST_MAX - 1 characters for the fixed-size gather. */
    memcpy(host, mpi_host, len < HOST_MAX - 1 ? (size_t)len : HOST_MAX - 1);
    char *hosts = NULL;
    dapt_status st = DAPT_OK;
    if (g->world_rank == 0)
        DAPT_TRY(dapt_alloc((void **)&hosts, (size_t)g->world_size * HOST_MAX, "host names for the grid log"));
    DAPT_TRY(DAPT_MPI(MPI_Gather(host, HOST_MAX, MPI_CHAR, hosts, HOST_MAX, MPI_CHAR, 0, g->world)));
    if (g->world_rank == 0) {
        dapt_info("process grid: %d ranks = %d data-parallel x %d tensor-parallel "
                  "(tensor groups are consecutive ranks)",
                  g->world_size, g->data_size, g->tensor_size);
        if (mc)
            dapt_info("  per tensor rank: %lld of %lld heads, %lld of %lld FFN columns, "
                      "%lld of %lld vocabulary rows (padded from %lld)",
                      (long long)(mc->heads / g->tensor_size), (long long)mc->heads,
                      (long long)(mc->intermediate / g->tensor_size), (long long)mc->intermediate,
                      (long long)(dapt_padded_vocab(mc->vocab_size, g->tensor_size) / g->tensor_size),
                      (long long)dapt_padded_vocab(mc->vocab_size, g->tensor_size),
                      (long long)mc->vocab_size);
        dapt_info("  %5s %5s %6s  %-20s%s", "rank", "data", "tensor", "host",
                  mc ? "  heads        ffn columns        vocab rows" : "");
        int shown = g->world_size <= LOG_ALL_RANKS_UP_TO ? g->world_size : 2 * g->tensor_size;
        if (shown > g->world_size) shown = g->world_size;
        for (int r = 0; r < shown; r++) {
            int t = r % g->tensor_size, d = r / g->tensor_size;
            char shard[160] = "";
            if (mc) {
                dapt_range h = dapt_shard_heads(mc, t, g->tensor_size);
                dapt_range f = dapt_shard_ffn(mc, t, g->tensor_size);
                dapt_range v = dapt_shard_vocab(mc->vocab_size, t, g->tensor_size, NULL);
                char hs[48], fs[48], vs[48];
                snprintf(hs, sizeof hs, "[%lld, %lld)", (long long)h.begin, (long long)(h.begin + h.count));
                snprintf(fs, sizeof fs, "[%lld, %lld)", (long long)f.begin, (long long)(f.begin + f.count));
                snprintf(vs, sizeof vs, "[%lld, %lld)", (long long)v.begin, (long long)(v.begin + v.count));
                snprintf(shard, sizeof shard, "  %-12s %-18s %s", hs, fs, vs);
            }
            dapt_info("  %5d %5d %6d  %-20s%s", r, d, t, hosts + (size_t)r * HOST_MAX, shard);
        }
        if (shown < g->world_size)
            dapt_info("  ... %d more ranks, same pattern (rank = data * %d + tensor)",
                      g->world_size - shown, g->tensor_size);
    }
cleanup:
    free(hosts);
    return st;
}

dapt_status dapt_grid_setup(MPI_Comm world, const dapt_config *cfg, const dapt_model_config *mc,
                            dapt_grid *g)
{
    DAPT_CHECK(dapt_grid_create(world, cfg->parallel.tensor, g));
    dapt_status st = DAPT_OK;
    if (mc) DAPT_TRY(dapt_grid_check_model(g, mc));
    DAPT_TRY(dapt_grid_check_batch(g, cfg->train.batch_size));
    DAPT_TRY(dapt_grid_log(g, mc));
    return DAPT_OK;
cleanup:
    dapt_grid_free(g);
    return st;
}
