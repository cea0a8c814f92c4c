/* Guided masking (`emlm`, MOMETAS's extension the reference leaves unused):
 * MLM at objectives.emlm_probability (0.5) restricted to the domain's
 * salient tokens, the guide set `dapt prepare --salient-against` stored in
 * the corpus (dapt/corpus.h).  80/10/10 and the loss as in `mlm`
 * (dapt_mlm_mask_guided); a row without a guide token has no label and
 * adds nothing to the loss or to its global denominator.  docs/algorithms.md. */
#include <stdlib.h>
#include <string.h>

#include "dapt/corpus.h"
#include "dapt/log.h"
#include "objectives.h"

typedef struct emlm_state {
    double probability;
    uint8_t *guide; /* [vocab]: 1 = a salient id of this domain's corpus */
    int64_t vocab;
} emlm_state;

static dapt_status emlm_create(void **state, const dapt_config *cfg)
{
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(emlm_state), "emlm state"));
    ((emlm_state *)*state)->probability = cfg->objectives.emlm_probability;
    return DAPT_OK;
}

static void emlm_release(void *state)
{
    emlm_state *s = state;
    free(s->guide);
    s->guide = NULL;
}

static void emlm_destroy(void *state)
{
    emlm_release(state);
    free(state);
}

/* The guide set of this domain's corpus (each domain has its own). */
static dapt_status emlm_begin(void *state, dapt_objective_ctx *ctx)
{
    emlm_state *s = state;
    emlm_release(s);
    s->vocab = ctx->mlm->vocab_size;
    DAPT_CHECK(dapt_alloc((void **)&s->guide, (size_t)s->vocab, "emlm guide set"));
    int64_t n = 0;
    DAPT_CHECK(dapt_corpus_read_guide(ctx->cfg->data.corpus, s->vocab, s->guide, &n));
    if (n == 0) dapt_warn("emlm: %s has an empty guide set: no token is ever masked", ctx->cfg->data.corpus);
    return DAPT_OK;
}

static dapt_status emlm_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local_denominators)
{
    emlm_state *s = state;
    if (!s->guide) return DAPT_ERROR(DAPT_ERR_INTERNAL, "emlm: prepare before begin_domain");
    dapt_mlm_spec spec = *ctx->mlm;
    spec.probability = s->probability;
    dapt_objective_mask_rows(ctx, &spec, s->guide, blk, local_denominators);
    return DAPT_OK;
}

/* The MLM term and its held-out loss are mlm's: only the masking differs. */
static dapt_status emlm_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    (void)state;
    return dapt_objective_mlm_term(ctx, mb, NULL, loss);
}

static dapt_status emlm_eval_loss(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                  double *loss)
{
    (void)state;
    return dapt_objective_mlm.eval_loss(NULL, ctx, mbs, count, loss);
}

/* Guided masking labels up to emlm_probability of the positions (a row of
 * salient tokens only), more than MLM's share. */
static double emlm_label_fraction(const dapt_config *cfg)
{
    return cfg->objectives.emlm_probability > cfg->train.mlm_probability ? cfg->objectives.emlm_probability
                                                                         : cfg->train.mlm_probability;
}

const dapt_objective_ops dapt_objective_emlm = {
    .name = "emlm",
    .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL,
    .n_denominators = 1,
    .create = emlm_create,
    .destroy = emlm_destroy,
    .begin_domain = emlm_begin,
    .release = emlm_release,
    .label_fraction = emlm_label_fraction,
    .prepare = emlm_prepare,
    .micro_step = emlm_micro_step,
    .eval_loss = emlm_eval_loss,
};
