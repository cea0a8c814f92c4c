/* Shared by loop.c and objectives_*.c: batches of a corpus outside the
 * training order (importance, Fisher, representations). */
#ifndef DAPT_TRAIN_INTERNAL_H
#define DAPT_TRAIN_INTERNAL_H

#include "dapt/train.h"

/* XORed into the seed of the sample order of importance and Fisher passes
 * ("imprt"), so they do not follow the training order. */
#define DAPT_IMPORTANCE_ORDER_TAG 0x696d707274ull

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

/* split TRAIN: samples in a permutation keyed by seed ^ the tag; EVAL:
 * held-out sequences in file order.  Not collective. */
dapt_status dapt_corpus_batches_init(dapt_corpus_batches *cb, dapt_sequences *seqs, const dapt_mlm_spec *mlm,
                                     dapt_split split, uint64_t seed, int64_t seq_len, int64_t global_batch,
                                     int64_t samples, int rank, int size);
void dapt_corpus_batches_free(dapt_corpus_batches *cb);
int64_t dapt_corpus_batches_count(const dapt_corpus_batches *cb);
/* Global batch i: this rank's rows (clean ids and MLM-masked ids keyed
 * (seed, step = 2^64 - 2 - i, sample)); *tokens = non-padding tokens,
 * *first = global index of row 0.  Not collective. */
dapt_status dapt_corpus_batches_get(dapt_corpus_batches *cb, int64_t i, dapt_batch *masked, const int32_t **clean,
                                    double *tokens);

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
