/* The held-out MLM loss: what dapt train reports every train.eval_every
 * steps and dapt eval --corpus reports for a model (forgetting), computed
 * one way for both. */
#include <math.h>
#include <stdlib.h>

#include "dapt/train.h"

/* Held-out masks use this step key, which no training step reaches, so every
 * evaluation sees the same masks and they differ from any training masks. */
#define HELD_OUT_MASK_STEP UINT64_MAX

dapt_status dapt_heldout_mlm_loss(MPI_Comm comm, const dapt_model *m, dapt_workspace *ws, dapt_sequences *seqs,
                                  const dapt_mlm_spec *mlm, uint64_t seed, int64_t want, int64_t batch,
                                  double *loss, int64_t *masked)
{
    *loss = NAN;
    *masked = 0;
    const int64_t have = dapt_sequences_count(seqs, DAPT_SPLIT_EVAL);
    if (want > have) want = have;
    if (want <= 0) return DAPT_OK;
    if (batch < 1) return DAPT_ERROR(DAPT_ERR_ARG, "held-out evaluation batch %lld", (long long)batch);
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    int64_t begin, count;
    dapt_share(want, rank, size, &begin, &count);
    dapt_workspace *own = NULL;
    int32_t *ids = NULL, *att = NULL, *labels = NULL;
    int64_t *idx = NULL;
    const int64_t L = dapt_sequences_seq_len(seqs);
    dapt_status st = DAPT_OK;
    if (!ws) {
        dapt_workspace_spec spec = {batch, L, 0, 0, 0};
        st = dapt_workspace_create(m, &spec, &own);
        ws = own;
    }
    const size_t cells = (size_t)(batch * L);
    if (st == DAPT_OK) st = dapt_alloc((void **)&ids, cells * sizeof *ids, "held-out ids");
    if (st == DAPT_OK) st = dapt_alloc((void **)&att, cells * sizeof *att, "held-out attention");
    if (st == DAPT_OK) st = dapt_alloc((void **)&labels, cells * sizeof *labels, "held-out labels");
    if (st == DAPT_OK) st = dapt_alloc((void **)&idx, (size_t)batch * sizeof *idx, "held-out rows");
    double sums[3] = {0, 0, 0}; /* loss sum, masked tokens, non-finite batches */
    dapt_run_opts opts = {0};
    opts.mlm_denominator = 1.0; /* the engine returns the plain sum */
    for (int64_t off = 0; st == DAPT_OK && off < count; off += batch) {
        const int64_t n = count - off < batch ? count - off : batch;
        for (int64_t i = 0; i < n; i++) idx[i] = begin + off + i;
        if ((st = dapt_sequences_read(seqs, DAPT_SPLIT_EVAL, idx, n, ids, att)) != DAPT_OK) break;
        int64_t sel_total = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t sel = 0;
            dapt_mlm_mask(mlm, seed, HELD_OUT_MASK_STEP, (uint64_t)idx[i], ids + i * L, att + i * L, L, labels + i * L,
                          &sel);
            sel_total += sel;
        }
        dapt_batch b = {n, L, ids, att, NULL, labels, NULL, (uint64_t)idx[0], NULL};
        st = dapt_model_forward(m, ws, &b, NULL, &opts);
        if (st == DAPT_ERR_NUMERIC) {
            dapt_error_clear();
            st = DAPT_OK;
            sums[2] += 1;
            continue;
        }
        if (st != DAPT_OK) break;
        sums[0] += dapt_ws_mlm_loss(ws, NULL);
        sums[1] += (double)sel_total;
    }
    free(ids);
    free(att);
    free(labels);
    free(idx);
    dapt_workspace_free(own);
    DAPT_CHECK(dapt_status_agree(comm, st));
    double tot[3];
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(sums, tot, 3, MPI_DOUBLE, MPI_SUM, comm)));
    *masked = (int64_t)tot[1];
    *loss = tot[2] > 0 ? NAN : tot[1] > 0 ? tot[0] / tot[1] : NAN;
    return DAPT_OK;
}
