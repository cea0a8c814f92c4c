/* Dynamic MLM masking with Hugging Face DataCollatorForLanguageModeling
 * semantics, drawn from the counter-based RNG so the masks of a sequence
 * depend only on (seed, step, global sample index, position).
 *
 * Each position that is not special and not padding is selected with
 * probability p; a selected position gets label = its original id and its
 * input becomes [MASK] with probability 0.8, a uniform random id in
 * [0, vocab) with probability 0.1, or stays unchanged with probability 0.1;
 * every other label is DAPT_IGNORE_LABEL (-100).
 *
 * Draws: one Philox block per position from
 *   dapt_rng_make(seed, DAPT_RNG_MLM_MASK, step), sample, block = position:
 *   word 0 -> selection, word 1 -> 80/10/10 choice, words 2,3 -> random id.
 * Nothing here is collective. */
#ifndef DAPT_MLM_H
#define DAPT_MLM_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

#define DAPT_MLM_MAX_SPECIAL 16

typedef struct dapt_mlm_spec {
    double probability;  /* train.mlm_probability */
    int32_t mask_id;     /* the [MASK] / <mask> id */
    int64_t vocab_size;  /* random replacements are drawn from [0, vocab_size) */
    int32_t special[DAPT_MLM_MAX_SPECIAL]; /* ids never selected (CLS, SEP, PAD, ...) */
    size_t n_special;
} dapt_mlm_spec;

/* Checks the spec (probability in [0,1], mask id inside the vocabulary). */
dapt_status dapt_mlm_spec_check(const dapt_mlm_spec *spec);

/* Adds id to the special set unless it is negative or already there. */
dapt_status dapt_mlm_spec_add_special(dapt_mlm_spec *spec, int32_t id);

struct dapt_tokenizer;

/* The MLM spec of a tokenizer (`what` names it in errors): its mask id and
 * vocabulary, every special id it has as never-masked, probability p; and
 * the ids that wrap a sequence and pad it ([CLS] / <s>, [SEP] / </s>, pad;
 * -1 when absent).  Refuses a tokenizer without a mask token. */
dapt_status dapt_mlm_spec_from_tokenizer(const struct dapt_tokenizer *tok, const char *what, double p,
                                         dapt_mlm_spec *spec, int32_t *begin, int32_t *end, int32_t *pad);

/* dapt_mlm_spec_from_tokenizer for the tokenizer at path (a file or a
 * directory, dapt_tokenizer_load). */
dapt_status dapt_mlm_spec_load(const char *path, double p, dapt_mlm_spec *spec, int32_t *begin, int32_t *end,
                               int32_t *pad);

/* Masks one sequence in place.  ids[0..len) are replaced by the model input,
 * labels[0..len) receive the targets; positions with attention_mask == 0
 * (NULL = none padded) or a special id are never selected.  Returns the
 * number of selected positions in *n_selected (may be NULL). */
void dapt_mlm_mask(const dapt_mlm_spec *spec, uint64_t seed, uint64_t step, uint64_t sample,
                   int32_t *ids, const int32_t *attention_mask, int64_t len, int32_t *labels,
                   int64_t *n_selected);

/* Guided masking (MOMETAS's emlm): dapt_mlm_mask restricted to the ids with
 * guide[id] != 0 (guide has spec->vocab_size entries; ids outside it are
 * never selected), drawn from stream DAPT_RNG_EMLM instead of
 * DAPT_RNG_MLM_MASK with the same words per position.  A row without a
 * guide token selects nothing. */
void dapt_mlm_mask_guided(const dapt_mlm_spec *spec, const uint8_t *guide, uint64_t seed, uint64_t step,
                          uint64_t sample, int32_t *ids, const int32_t *attention_mask, int64_t len,
                          int32_t *labels, int64_t *n_selected);

#endif
