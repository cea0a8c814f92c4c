/* The ATD and DTD corruptions of a row (token_detection.h has the
 * definitions, docs/algorithms.md the differences from the reference). */
#include <stdlib.h>

#include "dapt/model.h"
#include "dapt/rng.h"
#include "token_detection.h"

static int is_special(const dapt_td_spec *s, int32_t id)
{
    for (size_t i = 0; i < s->n_special; i++)
        if (s->special[i] == id) return 1;
    return 0;
}

/* Non-padding prefix of a row. */
static int64_t row_tokens(const int32_t *att, int64_t len)
{
    int64_t nv = 0;
    while (nv < len && att[nv]) nv++;
    return nv;
}

/* Bernoulli(p) from word 0 of position j's block; the block in w. */
static int drawn(const dapt_rng *r, uint64_t sample, int64_t j, double p, uint32_t w[4])
{
    dapt_rng_block(r, sample, (uint64_t)j, w);
    return (double)(w[0] >> 8) * (1.0 / 16777216.0) < p;
}

dapt_status dapt_td_pool(const dapt_mlm_spec *mlm, int32_t **pool, int64_t *n)
{
    dapt_td_spec s = {0.0, mlm->special, mlm->n_special, NULL, 0, 0};
    DAPT_CHECK(dapt_calloc((void **)pool, (size_t)(mlm->vocab_size > 0 ? mlm->vocab_size : 1), sizeof **pool,
                           "token-detection pool"));
    *n = 0;
    for (int64_t id = 0; id < mlm->vocab_size; id++)
        if (!is_special(&s, (int32_t)id)) (*pool)[(*n)++] = (int32_t)id;
    if (*n == 0) {
        free(*pool);
        *pool = NULL;
        return DAPT_ERROR(DAPT_ERR_CONFIG, "token detection: the vocabulary holds special tokens only");
    }
    return DAPT_OK;
}

int64_t dapt_atd_row(const dapt_td_spec *spec, uint64_t seed, uint64_t step, uint64_t sample, const int32_t *clean,
                     int32_t *ids, const int32_t *att, int64_t len, int32_t *labels)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_ATD, step);
    const int64_t nv = row_tokens(att, len);
    /* A final special ([SEP], </s>) stays last, as the reference forces. */
    const int keep_last = nv >= 1 && is_special(spec, clean[nv - 1]);
    const int64_t limit = keep_last ? nv - 1 : nv;
    int64_t k = 0;
    uint32_t w[4];
    for (int64_t j = 0; j < limit; j++) {
        /* Insert only in front of a text token: never between documents
         * nor before the block's first token. */
        if (j >= 1 && !is_special(spec, clean[k]) && drawn(&r, sample, j, spec->probability, w)) {
            const uint64_t x = (uint64_t)w[2] << 32 | w[3];
            ids[j] = spec->pool[(uint64_t)(((unsigned __int128)x * (uint64_t)spec->pool_size) >> 64)];
            labels[j] = 1;
        } else {
            ids[j] = clean[k++];
            labels[j] = 0;
        }
    }
    if (keep_last) {
        ids[nv - 1] = clean[nv - 1];
        labels[nv - 1] = 0;
    }
    for (int64_t j = nv; j < len; j++) {
        ids[j] = clean[j];
        labels[j] = DAPT_IGNORE_LABEL;
    }
    return nv;
}

int64_t dapt_dtd_row(const dapt_td_spec *spec, uint64_t seed, uint64_t step, uint64_t sample, const int32_t *clean,
                     int32_t *ids, int32_t *att, int64_t len, int32_t *labels)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_DTD, step);
    const int64_t nv = row_tokens(att, len);
    int64_t m = 0;
    int gap = 0; /* a deletion since the last kept token */
    uint32_t w[4];
    for (int64_t j = 0; j < nv; j++) {
        /* The first token stays, so no row becomes empty. */
        if (j >= 1 && !is_special(spec, clean[j]) && drawn(&r, sample, j, spec->probability, w)) {
            gap = 1;
            continue;
        }
        ids[m] = clean[j];
        labels[m++] = gap;
        gap = 0;
    }
    for (int64_t j = 0; j < len; j++) att[j] = j < m;
    for (int64_t j = m; j < len; j++) {
        ids[j] = spec->pad_id;
        labels[j] = DAPT_IGNORE_LABEL;
    }
    return m;
}
