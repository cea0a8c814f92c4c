/* Dynamic MLM masking (see dapt/mlm.h). */
#include "dapt/mlm.h"

#include <string.h>

#include "dapt/tokenizer.h"

#include "dapt/model.h"
#include "dapt/rng.h"

dapt_status dapt_mlm_spec_check(const dapt_mlm_spec *spec)
{
    if (!(spec->probability >= 0.0 && spec->probability <= 1.0))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.mlm_probability: %g is outside [0, 1]", spec->probability);
    if (spec->vocab_size <= 0 || spec->mask_id < 0 || spec->mask_id >= spec->vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "MLM: mask id %d is outside the vocabulary [0, %lld)",
                          (int)spec->mask_id, (long long)spec->vocab_size);
    return DAPT_OK;
}

dapt_status dapt_mlm_spec_add_special(dapt_mlm_spec *spec, int32_t id)
{
    if (id < 0) return DAPT_OK;
    for (size_t i = 0; i < spec->n_special; i++)
        if (spec->special[i] == id) return DAPT_OK;
    if (spec->n_special == DAPT_MLM_MAX_SPECIAL)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "MLM: more than %d special ids", DAPT_MLM_MAX_SPECIAL);
    spec->special[spec->n_special++] = id;
    return DAPT_OK;
}

static int is_special(const dapt_mlm_spec *spec, int32_t id)
{
    for (size_t i = 0; i < spec->n_special; i++)
        if (spec->special[i] == id) return 1;
    return 0;
}

/* Top 24 bits of a word as a float in [0, 1), like dapt_rng_uniform. */
static double unit(uint32_t w) { return (double)(w >> 8) * (1.0 / 16777216.0); }

/* Both maskings: guide = NULL selects among every text token. */
static void mask_row(const dapt_mlm_spec *spec, const uint8_t *guide, const dapt_rng *r, uint64_t sample,
                     int32_t *ids, const int32_t *attention_mask, int64_t len, int32_t *labels, int64_t *n_selected)
{
    int64_t count = 0;
    for (int64_t p = 0; p < len; p++) {
        labels[p] = DAPT_IGNORE_LABEL;
        if ((attention_mask && !attention_mask[p]) || is_special(spec, ids[p])) continue;
        if (guide && (ids[p] < 0 || ids[p] >= spec->vocab_size || !guide[ids[p]])) continue;
        uint32_t w[4];
        dapt_rng_block(r, sample, (uint64_t)p, w);
        if (!(unit(w[0]) < spec->probability)) continue;
        labels[p] = ids[p];
        count++;
        double c = unit(w[1]);
        if (c < 0.8) {
            ids[p] = spec->mask_id;
        } else if (c < 0.9) {
            /* 64 random bits scaled to [0, vocab): bias below vocab / 2^64. */
            unsigned __int128 x = ((uint64_t)w[2] << 32) | w[3];
            ids[p] = (int32_t)((x * (unsigned __int128)(uint64_t)spec->vocab_size) >> 64);
        }
    }
    if (n_selected) *n_selected = count;
}

void dapt_mlm_mask(const dapt_mlm_spec *spec, uint64_t seed, uint64_t step, uint64_t sample,
                   int32_t *ids, const int32_t *attention_mask, int64_t len, int32_t *labels,
                   int64_t *n_selected)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_MLM_MASK, step);
    mask_row(spec, NULL, &r, sample, ids, attention_mask, len, labels, n_selected);
}

void dapt_mlm_mask_guided(const dapt_mlm_spec *spec, const uint8_t *guide, uint64_t seed, uint64_t step,
                          uint64_t sample, int32_t *ids, const int32_t *attention_mask, int64_t len,
                          int32_t *labels, int64_t *n_selected)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_EMLM, step);
    mask_row(spec, guide, &r, sample, ids, attention_mask, len, labels, n_selected);
}

dapt_status dapt_mlm_spec_from_tokenizer(const dapt_tokenizer *tok, const char *what, double p, dapt_mlm_spec *spec,
                                         int32_t *begin, int32_t *end, int32_t *pad)
{
    dapt_special_ids sp = dapt_tokenizer_specials(tok);
    memset(spec, 0, sizeof *spec);
    spec->probability = p;
    spec->mask_id = sp.mask;
    spec->vocab_size = (int64_t)dapt_tokenizer_vocab_size(tok);
    if (sp.mask < 0) return DAPT_ERROR(DAPT_ERR_CONFIG, "tokenizer %s has no mask token, so MLM cannot run", what);
    const int32_t all[] = {sp.cls, sp.sep, sp.pad, sp.mask, sp.unk, sp.bos, sp.eos};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) DAPT_CHECK(dapt_mlm_spec_add_special(spec, all[i]));
    DAPT_CHECK(dapt_mlm_spec_check(spec));
    *begin = sp.cls >= 0 ? sp.cls : sp.bos;
    *end = sp.sep >= 0 ? sp.sep : sp.eos;
    *pad = sp.pad;
    return DAPT_OK;
}

dapt_status dapt_mlm_spec_load(const char *path, double p, dapt_mlm_spec *mlm, int32_t *begin, int32_t *end,
                               int32_t *pad)
{
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_tokenizer_load(path, &tok));
    dapt_status st = dapt_mlm_spec_from_tokenizer(tok, path, p, mlm, begin, end, pad);
    dapt_tokenizer_free(tok);
    return st;
}
