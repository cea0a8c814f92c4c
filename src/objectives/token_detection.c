/* MOMETAS's added-token (atd) and deleted-token (dtd) detection objectives:
 * the prepare hook corrupts the rows (token_corrupt.c), a binary token head
 * the objective owns (aux.atd.* / aux.dtd.*, token_head.c) classifies every
 * non-padding position of the encoder's output, and the loss is the
 * cross-entropy summed over the global batch's labelled positions divided
 * by their global count (denominator 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objectives.h"
#include "token_detection.h"

typedef struct td_state {
    int deletion; /* 0: atd, 1: dtd */
    double probability;
    int32_t *pool;
    int64_t pool_size;
    float *dh; /* [micro_max, seq_len, hidden] */
} td_state;

static const char *td_prefix(const td_state *s) { return s->deletion ? "aux.dtd" : "aux.atd"; }

static dapt_status td_create(void **state, int deletion, double p)
{
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(td_state), "token-detection state"));
    td_state *s = *state;
    s->deletion = deletion;
    s->probability = p;
    return DAPT_OK;
}

static dapt_status atd_create(void **state, const dapt_config *cfg)
{
    return td_create(state, 0, cfg->objectives.atd_probability);
}

static dapt_status dtd_create(void **state, const dapt_config *cfg)
{
    return td_create(state, 1, cfg->objectives.dtd_probability);
}

static void td_release(void *state)
{
    td_state *s = state;
    free(s->dh);
    s->dh = NULL;
    free(s->pool);
    s->pool = NULL;
}

static void td_destroy(void *state)
{
    td_release(state);
    free(state);
}

static dapt_status td_aux(const char *prefix, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    memset(out, 0, 2 * sizeof *out);
    snprintf(out[0].name, sizeof out[0].name, "%s.weight", prefix);
    out[0].rows = 2;
    out[0].cols = mc->hidden;
    snprintf(out[1].name, sizeof out[1].name, "%s.bias", prefix);
    out[1].rows = 2;
    *n = 2;
    return DAPT_OK;
}

static dapt_status atd_aux(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    (void)cfg;
    return td_aux("aux.atd", mc, out, n);
}

static dapt_status dtd_aux(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    (void)cfg;
    return td_aux("aux.dtd", mc, out, n);
}

static dapt_status td_begin(void *state, dapt_objective_ctx *ctx)
{
    td_state *s = state;
    free(s->dh);
    const size_t cells = (size_t)(ctx->micro_max * ctx->seq_len * ctx->model->config.hidden);
    return dapt_calloc((void **)&s->dh, cells ? cells : 1, sizeof *s->dh, "token-detection gradient");
}

static dapt_status td_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local)
{
    td_state *s = state;
    if (!s->pool) DAPT_CHECK(dapt_td_pool(ctx->mlm, &s->pool, &s->pool_size));
    const dapt_td_spec spec = {s->probability, ctx->mlm->special, ctx->mlm->n_special, s->pool, s->pool_size,
                               ctx->seq_spec->pad_id};
    int64_t labelled = 0;
    for (int64_t i = 0; i < blk->rows; i++) {
        const int64_t at = i * blk->seq_len;
        const uint64_t sample = blk->first_sample + (uint64_t)i;
        if (s->deletion)
            labelled += dapt_dtd_row(&spec, ctx->seed, blk->key_step, sample, blk->clean_ids + at, blk->input_ids + at,
                                     blk->attention_mask + at, blk->seq_len, blk->labels + at);
        else
            labelled += dapt_atd_row(&spec, ctx->seed, blk->key_step, sample, blk->clean_ids + at, blk->input_ids + at,
                                     blk->attention_mask + at, blk->seq_len, blk->labels + at);
    }
    local[0] = (double)labelled;
    return DAPT_OK;
}

/* The encoder sees the corrupted rows without MLM labels; the head's loss
 * flows back through the last hidden state. */
static dapt_status td_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    td_state *s = state;
    if (!s->dh) return DAPT_ERROR(DAPT_ERR_INTERNAL, "token detection: micro_step before begin_domain");
    dapt_batch b = mb->batch;
    b.mlm_labels = NULL;
    const dapt_run_opts opts = dapt_objective_train_opts(ctx);
    DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &b, NULL, &opts));
    double l = 0.0;
    DAPT_CHECK(dapt_td_head(ctx->model, td_prefix(s), dapt_ws_last_hidden(mb->ws), mb->batch.mlm_labels, b.batch,
                            b.seq_len, ctx->denominators[0], s->dh, &l));
    *loss += l;
    return dapt_model_backward(ctx->model, mb->ws, 0.0, s->dh, NULL);
}

static dapt_status td_eval_loss(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                double *loss)
{
    td_state *s = state;
    const dapt_run_opts opts = dapt_objective_eval_opts(ctx);
    for (int64_t k = 0; k < count; k++) {
        dapt_batch b = mbs[k].batch;
        b.mlm_labels = NULL;
        DAPT_CHECK(dapt_model_forward(ctx->model, mbs[k].ws, &b, NULL, &opts));
        double l = 0.0;
        DAPT_CHECK(dapt_td_head(ctx->model, td_prefix(s), dapt_ws_last_hidden(mbs[k].ws), mbs[k].batch.mlm_labels,
                                b.batch, b.seq_len, ctx->denominators[0], NULL, &l));
        *loss += l;
    }
    return DAPT_OK;
}

/* atd and dtd share every hook; they differ in the corruption (create) and
 * the head they own. */
#define TD_OPS(NAME, AUX, CREATE)                                                                                  \
    {                                                                                                              \
        .name = NAME, .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL, .n_denominators = 1, .aux_tensors = AUX, \
        .create = CREATE,                                                                                          \
        .destroy = td_destroy, .begin_domain = td_begin, .resume_domain = td_begin, .release = td_release,         \
        .prepare = td_prepare, .micro_step = td_micro_step, .eval_loss = td_eval_loss,                             \
    }

const dapt_objective_ops dapt_objective_atd = TD_OPS("atd", atd_aux, atd_create);
const dapt_objective_ops dapt_objective_dtd = TD_OPS("dtd", dtd_aux, dtd_create);
