/* The held-out MLM loss: what dapt train reports every train.eval_every
 * steps and dapt eval --corpus reports for a model (forgetting), computed
 * one way for both. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/log.h"
#include "dapt/fsio.h"
#include "dapt/h5io.h"
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
        dapt_heartbeat("a held-out evaluation batch");
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

/* The split rule as include/dapt/batches.h states it, for readers of the
 * file who have neither the header nor dapt's RNG. */
#define HELD_OUT_RULE                                                                                              \
    "document d (file order, empty documents skipped) is held out when the Philox-4x32-10 draw "                \
    "dapt_rng(seed, stream 2 = DAPT_RNG_SPLIT, 0, sample = d, 0) < eval_fraction; held-out documents "            \
    "keep file order and are packed into seq_len sequences as `packing` says"

dapt_status dapt_heldout_write(MPI_Comm comm, const char *dir, const dapt_config *cfg, const dapt_sequences *seqs,
                               int64_t evaluated)
{
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    char path[DAPT_CONFIG_STR_MAX + 32];
    if (snprintf(path, sizeof path, "%s/heldout.h5", dir) >= (int)sizeof path)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "run.output_dir: %s is too long", dir);
    DAPT_CHECK(dapt_status_agree(comm, rank == 0 ? dapt_fs_mkdir_p(dir) : DAPT_OK));
    int64_t n_docs = 0;
    const int64_t *docs = dapt_sequences_split_docs(seqs, DAPT_SPLIT_EVAL, &n_docs);
    const int64_t n = dapt_sequences_count(seqs, DAPT_SPLIT_EVAL);
    int64_t *first = NULL;
    DAPT_CHECK(dapt_alloc((void **)&first, (size_t)(n > 0 ? n : 1) * sizeof *first, "held-out sequence list"));
    for (int64_t k = 0; k < n; k++) first[k] = dapt_sequences_doc(seqs, DAPT_SPLIT_EVAL, k);
    dapt_h5file f;
    dapt_status st = dapt_h5_create(comm, path, 1, cfg, &f);
    if (st != DAPT_OK) {
        free(first);
        return st;
    }
    const int64_t dn[1] = {n_docs}, sn[1] = {n};
    DAPT_TRY(dapt_h5_set_format(&f, "dapt-heldout"));
    DAPT_TRY(dapt_h5_attr_set_string(&f, "/", "corpus", cfg->data.corpus));
    DAPT_TRY(dapt_h5_attr_set_string(&f, "/", "rule", HELD_OUT_RULE));
    DAPT_TRY(dapt_h5_attr_set_double(&f, "/", "eval_fraction", cfg->data.eval_fraction));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "seed", cfg->run.seed));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "seq_len", dapt_sequences_seq_len(seqs)));
    DAPT_TRY(dapt_h5_attr_set_string(&f, "/", "packing", cfg->data.packing));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "evaluated", evaluated < n ? evaluated : n));
    DAPT_TRY(dapt_h5_write_all(&f, "documents", DAPT_H5_I64, 1, dn, docs));
    DAPT_TRY(dapt_h5_write_all(&f, "sequence_doc", DAPT_H5_I64, 1, sn, first));
    free(first);
    return dapt_h5_commit(&f);
cleanup:
    free(first);
    dapt_h5_abort(&f);
    return st;
}
