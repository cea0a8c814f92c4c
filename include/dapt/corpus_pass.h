/* Passes over a prepared corpus outside the training order: global batches
 * of it spread over the data ranks, unit importance (DGA/DAS and
 * `dapt importance`), the Fisher diagonal (EWC) and the held-out
 * representations of DGA/DAS.
 *
 * Train-split passes follow a permutation of their own (seed ^
 * dapt_rng_stream_tag(DAPT_RNG_IMPORTANCE_ORDER)), so they do not follow the
 * training order; their MLM masks are keyed (seed, step = 2^64 - 2 - batch
 * index, global sample), a step no training run reaches. */
#ifndef DAPT_CORPUS_PASS_H
#define DAPT_CORPUS_PASS_H

#include <mpi.h>
#include <stdint.h>

#include "dapt/batches.h"
#include "dapt/das.h"
#include "dapt/mlm.h"
#include "dapt/model.h"
#include "dapt/status.h"

/* This rank's rows of global batches over a corpus. */
typedef struct dapt_corpus_batches {
    dapt_sequences *seqs;
    const dapt_mlm_spec *mlm;
    dapt_order order;
    int have_order;
    dapt_split split;
    uint64_t seed;
    int64_t seq_len, global_batch, samples, rank, size;
    int32_t *clean, *ids, *att, *labels;
    int64_t *idx;
} dapt_corpus_batches;

/* split TRAIN: `samples` samples of the pass's permutation (wrapping
 * around); EVAL: the first `samples` held-out sequences in file order.  Not
 * collective. */
dapt_status dapt_corpus_batches_init(dapt_corpus_batches *cb, dapt_sequences *seqs, const dapt_mlm_spec *mlm,
                                     dapt_split split, uint64_t seed, int64_t seq_len, int64_t global_batch,
                                     int64_t samples, int rank, int size);
void dapt_corpus_batches_free(dapt_corpus_batches *cb);
int64_t dapt_corpus_batches_count(const dapt_corpus_batches *cb);
/* Global batch i: this rank's rows (clean ids and MLM-masked ids); *tokens =
 * non-padding tokens.  Not collective. */
dapt_status dapt_corpus_batches_get(dapt_corpus_batches *cb, int64_t i, dapt_batch *masked, const int32_t **clean,
                                    double *tokens);

/* Importance of model m over `samples` train sequences of a corpus, in
 * global batches of `global_batch` rows: proxy KL or MLM
 * (dapt_importance_pass).  Collective over comm (the data communicator). */
typedef struct dapt_corpus_importance_opts {
    dapt_proxy_kind proxy;
    int64_t samples, global_batch;
    uint64_t seed;
    double temperature;
    int64_t seq_len; /* the sequences' length (data.seq_len) */
    int recompute;   /* model.recompute for the workspace */
    dapt_proxy_passes passes;    /* KL proxy (das.proxy_passes); 0 = both */
    dapt_kl_direction direction; /* KL proxy (das.proxy_direction); 0 = dapt's */
} dapt_corpus_importance_opts;
dapt_status dapt_importance_from_corpus(dapt_model *m, dapt_sequences *seqs, const dapt_mlm_spec *mlm,
                                        const dapt_corpus_importance_opts *opts, dapt_importance *imp,
                                        MPI_Comm comm);

/* Fisher diagonal of the MLM loss: mean over global batches of the squared
 * global-batch gradient, added (+=) to fisher (table.total floats).
 * Collective over comm. */
dapt_status dapt_fisher_from_corpus(dapt_model *m, dapt_corpus_batches *cb, uint64_t seed, int recompute,
                                    float *fisher, MPI_Comm comm);

/* Mean-pooled last hidden states (dropout off) of this rank's share of
 * cb's samples (cb made with global_batch = samples): plain (z1) and with
 * every unit multiplied by masks (z3), [*rows, hidden] (malloc'd), their
 * document ids, and the global index of the first row.  Not collective. */
dapt_status dapt_representations(dapt_model *m, dapt_corpus_batches *cb, const dapt_unit_masks *masks, float **z1,
                                 float **z3, int64_t **doc_ids, int64_t *first_row, int64_t *rows);

#endif
