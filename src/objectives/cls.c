/* Sequence classification (dapt finetune's default objective): the loss of
 * the classification head as Hugging Face's BertForSequenceClassification /
 * RobertaForSequenceClassification compute it -- cross-entropy, or the
 * squared error of a one-output regression head (the batch carries
 * regression_labels) -- summed over the global batch and divided by its
 * size, so the loss and its gradient do not depend on the layout. */
#include "objectives.h"

static dapt_status cls_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    (void)state;
    dapt_run_opts opts = dapt_objective_train_opts(ctx);
    opts.cls_denominator = (double)ctx->global_rows;
    DAPT_CHECK(dapt_model_forward(ctx->model, mb->ws, &mb->batch, NULL, &opts));
    *loss += dapt_ws_cls_loss(mb->ws);
    return dapt_model_backward(ctx->model, mb->ws, 1.0, NULL, NULL);
}

const dapt_objective_ops dapt_objective_cls = {
    .name = "cls",
    .flags = DAPT_OBJ_FINETUNE | DAPT_OBJ_TENSOR_PARALLEL | DAPT_OBJ_ONE_BACKWARD,
    .micro_step = cls_micro_step,
};
