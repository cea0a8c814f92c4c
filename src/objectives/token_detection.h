/* MOMETAS's token-detection corruptions (Wu et al. 2022; gingasan/mometas
 * processor.py add_tokens / delete_tokens) and the binary token head both
 * objectives train.  docs/algorithms.md ("MOMETAS") defines them and lists
 * where dapt departs from the reference.  Internal to src/objectives.
 *
 * A row is [tokens][padding]: attention_mask 1 on a prefix of nv
 * positions.  Draws: one Philox block per position j from
 * dapt_rng_make(seed, stream, step), sample = global sample, block = j:
 * word 0 -> Bernoulli(p) ((w0 >> 8) / 2^24 < p); words 2, 3 (ATD only)
 * -> the inserted id pool[(x * pool_size) >> 64], x = w2 << 32 | w3.
 *
 * ATD (stream DAPT_RNG_ATD): output positions j = 0 .. nv-1 walk the clean
 * row with a pointer k; at j >= 1, when clean[k] is not special and the
 * draw of j succeeds, a pool id is inserted (label 1), otherwise clean[k]
 * is copied (label 0) and k advances.  When the row's last token is
 * special it stays the last token (no draw at nv-1).  The mask is kept.
 * DTD (stream DAPT_RNG_DTD): position j >= 1 of a non-special token is
 * deleted when the draw of j succeeds; the kept tokens move left, label 1
 * on a kept token that directly follows one or more deleted ones, 0 on the
 * others; the freed tail gets the pad id and mask 0.
 * Padding is never labelled (DAPT_IGNORE_LABEL).  Nothing here is
 * collective. */
#ifndef DAPT_OBJECTIVES_TOKEN_DETECTION_H
#define DAPT_OBJECTIVES_TOKEN_DETECTION_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/mlm.h"
#include "dapt/objective.h"
#include "dapt/status.h"

typedef struct dapt_td_spec {
    double probability;
    const int32_t *special; /* ids never corrupted (the tokenizer's specials) */
    size_t n_special;
    const int32_t *pool;    /* ids ATD inserts: the vocabulary without the specials */
    int64_t pool_size;
    int32_t pad_id;         /* what DTD pads with */
} dapt_td_spec;

/* pool[0..*n) = the ids of [0, mlm->vocab_size) that are not special, in
 * increasing order (*pool malloc'ed; the caller frees it).  Refuses a
 * vocabulary of specials only. */
dapt_status dapt_td_pool(const dapt_mlm_spec *mlm, int32_t **pool, int64_t *n);

/* One row of len positions in place: ids (input, starts as clean), att
 * (DTD shortens it), labels (all len written); returns the labelled
 * positions (the row's non-padding tokens after corruption). */
int64_t dapt_atd_row(const dapt_td_spec *spec, uint64_t seed, uint64_t step, uint64_t sample, const int32_t *clean,
                     int32_t *ids, const int32_t *att, int64_t len, int32_t *labels);
int64_t dapt_dtd_row(const dapt_td_spec *spec, uint64_t seed, uint64_t step, uint64_t sample, const int32_t *clean,
                     int32_t *ids, int32_t *att, int64_t len, int32_t *labels);

/* The binary token head Linear(hidden, 2) (tensors <prefix>.weight [2,
 * hidden] and <prefix>.bias [2], auxiliary) on the last hidden state h
 * [n, len, hidden] of a forward: cross-entropy summed over the labelled
 * positions (labels 0/1, DAPT_IGNORE_LABEL skipped) / denominator.  Adds
 * the head's gradient to the model's and writes dh [n, len, hidden]
 * (zero at unlabelled positions) for the encoder's backward; returns the
 * loss in *loss (set, not added).  dh NULL: the loss only, no gradient.
 * Not collective. */
dapt_status dapt_td_head(dapt_model *m, const char *prefix, const float *h, const int32_t *labels, int64_t n,
                         int64_t len, double denominator, float *dh, double *loss);

#endif
