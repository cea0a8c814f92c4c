/* Masked language modelling (DAPT's baseline, Gururangan et al. 2020): the
 * tokens of a block are masked by dapt_mlm_mask (Hugging Face's collator
 * semantics, keyed by (seed, step, global sample)); the loss is summed over
 * every masked token of the global batch and divided by their global count,
 * so it does not depend on the layout.  `one` is the same objective with
 * every continual domain starting from the base model (DGA's ONE baseline). */
#include "objectives.h"

void dapt_objective_mask_rows(const dapt_objective_ctx *ctx, const dapt_mlm_spec *spec, const uint8_t *guide,
                              dapt_rows *blk, double *local_denominators)
{
    int64_t selected = 0;
    for (int64_t i = 0; i < blk->rows; i++) {
        int64_t sel = 0;
        const int64_t at = i * blk->seq_len;
        const uint64_t sample = blk->first_sample + (uint64_t)i;
        if (guide)
            dapt_mlm_mask_guided(spec, guide, ctx->seed, blk->key_step, sample, blk->input_ids + at,
                                 blk->attention_mask + at, blk->seq_len, blk->labels + at, &sel);
        else
            dapt_mlm_mask(spec, ctx->seed, blk->key_step, sample, blk->input_ids + at, blk->attention_mask + at,
                          blk->seq_len, blk->labels + at, &sel);
        selected += sel;
    }
    local_denominators[0] = (double)selected;
}

dapt_status dapt_objective_mlm_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk,
                                       double *local_denominators)
{
    (void)state;
    dapt_objective_mask_rows(ctx, ctx->mlm, NULL, blk, local_denominators);
    return DAPT_OK;
}

static dapt_status mlm_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    (void)state;
    return dapt_objective_mlm_term(ctx, mb, NULL, loss);
}

static dapt_status mlm_eval_loss(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                 double *loss)
{
    (void)state;
    dapt_run_opts opts = dapt_objective_eval_opts(ctx);
    opts.mlm_denominator = ctx->denominators[0];
    for (int64_t k = 0; k < count; k++) {
        DAPT_CHECK(dapt_model_forward(ctx->model, mbs[k].ws, &mbs[k].batch, NULL, &opts));
        *loss += dapt_ws_mlm_loss(mbs[k].ws, NULL);
    }
    return DAPT_OK;
}

const dapt_objective_ops dapt_objective_mlm = {
    .name = "mlm",
    .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL | DAPT_OBJ_ONE_BACKWARD,
    .n_denominators = 1,
    .prepare = dapt_objective_mlm_prepare,
    .micro_step = mlm_micro_step,
    .eval_loss = mlm_eval_loss,
};

const dapt_objective_ops dapt_objective_one = {
    .name = "one",
    .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL | DAPT_OBJ_FROM_BASE | DAPT_OBJ_ONE_BACKWARD,
    .n_denominators = 1,
    .prepare = dapt_objective_mlm_prepare,
    .micro_step = mlm_micro_step,
    .eval_loss = mlm_eval_loss,
};
