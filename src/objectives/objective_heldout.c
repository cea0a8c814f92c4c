/* An objective's loss on fixed held-out rows (objective_heldout.h). */
#include <stdlib.h>
#include <string.h>

#include "dapt/share.h"
#include "objective_heldout.h"

/* The step key of the held-out rows' corruption. */
#define HELDOUT_KEY UINT64_MAX

void dapt_heldout_free(dapt_heldout *h)
{
    free(h->clean);
    free(h->ids);
    free(h->att);
    free(h->labels);
    free(h->idx);
    free(h->mbs);
    memset(h, 0, sizeof *h);
}

dapt_status dapt_heldout_alloc(dapt_heldout *h, const dapt_objective_ctx *ctx, int64_t rows)
{
    dapt_heldout_free(h);
    if (dapt_sequences_count(ctx->seqs, DAPT_SPLIT_EVAL) == 0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "held-out losses: the corpus has no held-out sequences (data.eval_fraction)");
    h->rows = rows;
    dapt_share(rows, ctx->data_rank, ctx->data_size, &h->first, &h->count);
    const size_t n = (size_t)(h->count ? h->count : 1), cells = n * (size_t)ctx->seq_len;
    DAPT_CHECK(dapt_calloc((void **)&h->clean, cells, sizeof(int32_t), "held-out rows"));
    DAPT_CHECK(dapt_calloc((void **)&h->ids, cells, sizeof(int32_t), "held-out rows"));
    DAPT_CHECK(dapt_calloc((void **)&h->att, cells, sizeof(int32_t), "held-out rows"));
    DAPT_CHECK(dapt_calloc((void **)&h->labels, cells, sizeof(int32_t), "held-out rows"));
    DAPT_CHECK(dapt_calloc((void **)&h->idx, n, sizeof(int64_t), "held-out rows"));
    const size_t nmb = (size_t)((h->count + ctx->micro_max - 1) / ctx->micro_max);
    return dapt_calloc((void **)&h->mbs, nmb ? nmb : 1, sizeof(dapt_micro_batch), "held-out batches");
}

/* Micro-batches of at most micro_max rows over the prepared rows. */
static int64_t split(dapt_heldout *h, const dapt_objective_ctx *ctx, uint64_t first_sample)
{
    const int64_t L = ctx->seq_len;
    int64_t nmb = 0;
    for (int64_t at = 0; at < h->count; at += ctx->micro_max) {
        dapt_micro_batch *m = &h->mbs[nmb++];
        memset(m, 0, sizeof *m);
        m->batch.batch = h->count - at < ctx->micro_max ? h->count - at : ctx->micro_max;
        m->batch.seq_len = L;
        m->batch.input_ids = h->ids + at * L;
        m->batch.attention_mask = h->att + at * L;
        m->batch.mlm_labels = h->labels + at * L;
        m->batch.first_sample = first_sample + (uint64_t)at;
        m->clean_ids = h->clean + at * L;
        m->ws = ctx->ws;
    }
    return nmb;
}

dapt_status dapt_heldout_loss(dapt_heldout *h, dapt_objective *o, dapt_objective_ctx *ctx, int64_t first_seq,
                              double *loss)
{
    const int64_t L = ctx->seq_len, n_eval = dapt_sequences_count(ctx->seqs, DAPT_SPLIT_EVAL);
    const uint64_t first = (uint64_t)(first_seq + h->first);
    for (int64_t r = 0; r < h->count; r++) h->idx[r] = ((int64_t)first + r) % n_eval;
    DAPT_CHECK(dapt_sequences_read(ctx->seqs, DAPT_SPLIT_EVAL, h->idx, h->count, h->clean, h->att));
    memcpy(h->ids, h->clean, (size_t)(h->count * L) * sizeof *h->ids);
    for (int64_t j = 0; j < h->count * L; j++) h->labels[j] = DAPT_IGNORE_LABEL;
    dapt_rows blk = {h->count, L, first, HELDOUT_KEY, h->clean, h->att, h->ids, h->labels};
    double local[DAPT_OBJ_MAX_DENOMINATORS] = {0}, global[DAPT_OBJ_MAX_DENOMINATORS], train[DAPT_OBJ_MAX_DENOMINATORS];
    DAPT_CHECK(dapt_objective_prepare(o, ctx, &blk, local));
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(local, global, DAPT_OBJ_MAX_DENOMINATORS, MPI_DOUBLE, MPI_SUM, ctx->data_comm)));
    const int64_t nmb = split(h, ctx, first);
    memcpy(train, ctx->denominators, sizeof train);
    memcpy(ctx->denominators, global, sizeof global);
    double mine = 0.0;
    const dapt_status st = dapt_objective_eval_loss(o, ctx, h->mbs, nmb, &mine);
    memcpy(ctx->denominators, train, sizeof train);
    DAPT_CHECK(st);
    return DAPT_MPI(MPI_Allreduce(&mine, loss, 1, MPI_DOUBLE, MPI_SUM, ctx->data_comm));
}
