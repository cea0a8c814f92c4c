/* The importance pass: unit-mask gradients of a proxy loss over a sample of
 * batches, reduced over the data-parallel ranks batch by batch. */
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/das.h"
#include "dapt/rng.h"


/* The KL proxy on one batch.  Both passes see the unit masks g = 1 (NULL).
 * opts->passes = BOTH: L = KL between the passes depends on g through each,
 * so each pass is back-propagated with its own gradient of L into the same
 * unit-mask accumulators (input gradients only: parameter gradients are not
 * wanted).  ONE: the second pass is a constant, as in dapt's first version
 * (kept bit for bit: the model's backward with parameter gradients, zeroed
 * afterwards). */
static dapt_status kl_batch(dapt_model *m, dapt_workspace *ws_model, dapt_workspace *ws_frozen,
                            const dapt_batch *b, int64_t global_rows, const dapt_importance_pass_opts *opts,
                            int64_t index, dapt_importance *imp)
{
    const dapt_model_config *mc = &m->config;
    const int both = opts->passes == DAPT_PROXY_PASSES_BOTH;
    size_t n = (size_t)(b->batch * b->seq_len * mc->hidden);
    float *d_hidden = NULL, *d_second = NULL;
    dapt_status st = DAPT_OK;
    dapt_run_opts frozen_opts = {.train = 1, .seed = opts->seed ^ dapt_rng_stream_tag(DAPT_RNG_FROZEN), .step = (uint64_t)index};
    dapt_batch unlabelled = *b;
    unlabelled.mlm_labels = NULL;
    unlabelled.class_labels = NULL;
    DAPT_TRY(dapt_model_forward(m, ws_frozen, &unlabelled, NULL, &frozen_opts));
    dapt_run_opts model_opts = {.train = 1, .seed = opts->seed, .step = (uint64_t)index};
    DAPT_TRY(dapt_model_forward(m, ws_model, &unlabelled, NULL, &model_opts));
    DAPT_TRY(dapt_alloc((void **)&d_hidden, sizeof(float) * n, "KL proxy gradient"));
    if (both) DAPT_TRY(dapt_alloc((void **)&d_second, sizeof(float) * n, "KL proxy gradient"));
    double loss = 0;
    DAPT_TRY(dapt_token_kl_loss_ex(dapt_ws_last_hidden(ws_model), dapt_ws_last_hidden(ws_frozen), b->attention_mask,
                                   b->batch, b->seq_len, mc->hidden, opts->temperature, opts->direction, &loss,
                                   d_hidden, d_second));
    /* The KL is averaged over the global batch, not this rank's rows. */
    const float rescale = (float)((double)b->batch / (double)global_rows);
    for (size_t i = 0; i < n; i++) d_hidden[i] *= rescale;
    dapt_unit_mask_grads g = dapt_importance_batch_grads(imp);
    if (!both) {
        DAPT_TRY(dapt_model_backward(m, ws_model, 0.0, d_hidden, &g));
    } else {
        for (size_t i = 0; i < n; i++) d_second[i] *= rescale;
        dapt_backward_opts bo = DAPT_BACKWARD_OPTS_INIT;
        bo.loss_scale = 0.0;
        bo.param_grads = 0;
        bo.mask_grads = &g;
        bo.d_last_hidden = d_hidden;
        DAPT_TRY(dapt_model_backward_ex(m, ws_model, &bo));
        bo.d_last_hidden = d_second;
        DAPT_TRY(dapt_model_backward_ex(m, ws_frozen, &bo));
    }
cleanup:
    free(d_hidden);
    free(d_second);
    return st;
}

static dapt_status mlm_batch(dapt_model *m, dapt_workspace *ws_model, const dapt_batch *b, double global_labelled,
                             const dapt_importance_pass_opts *opts, int64_t index, dapt_importance *imp)
{
    if (!b->mlm_labels) return DAPT_ERROR(DAPT_ERR_ARG, "importance (MLM proxy): batch %lld has no MLM labels",
                                          (long long)index);
    /* The loss is the mean over the global batch's labelled positions. */
    dapt_run_opts run = {.train = 1, .seed = opts->seed, .step = (uint64_t)index,
                         .mlm_denominator = global_labelled};
    DAPT_CHECK(dapt_model_forward(m, ws_model, b, NULL, &run));
    dapt_unit_mask_grads g = dapt_importance_batch_grads(imp);
    return dapt_model_backward(m, ws_model, 1.0, NULL, &g);
}

dapt_status dapt_importance_pass(dapt_model *m, dapt_workspace *ws_model, dapt_workspace *ws_frozen,
                                 dapt_batch_source_fn source, void *ctx, const dapt_importance_pass_opts *opts,
                                 dapt_importance *imp, MPI_Comm comm)
{
    if (opts->proxy == DAPT_PROXY_KL && !ws_frozen)
        return DAPT_ERROR(DAPT_ERR_ARG, "importance (KL proxy): needs a workspace for the frozen copy");
    if (opts->proxy == DAPT_PROXY_KL && opts->passes != DAPT_PROXY_PASSES_BOTH && opts->passes != DAPT_PROXY_PASSES_ONE)
        return DAPT_ERROR(DAPT_ERR_ARG, "importance (KL proxy): unknown passes %d", (int)opts->passes);
    if (opts->proxy != DAPT_PROXY_KL && opts->proxy != DAPT_PROXY_MLM)
        return DAPT_ERROR(DAPT_ERR_ARG, "importance: unknown proxy %d", (int)opts->proxy);
    for (int64_t i = 0; i < opts->batches; i++) {
        dapt_heartbeat("an importance batch");
        dapt_batch b;
        double tokens = 0;
        dapt_importance_zero_batch(imp);
        DAPT_CHECK(source(ctx, i, &b, &tokens));
        /* Global row and label counts: the losses are means over the global batch. */
        long long counts[2] = {b.batch, 0}, global[2] = {0, 0};
        if (opts->proxy == DAPT_PROXY_MLM && b.mlm_labels)
            for (int64_t t = 0; t < b.batch * b.seq_len; t++) counts[1] += b.mlm_labels[t] != DAPT_IGNORE_LABEL;
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(counts, global, 2, MPI_LONG_LONG, MPI_SUM, comm)));
        const long long global_rows = global[0];
        /* A rank with no rows this batch still joins the reductions. */
        if (b.batch > 0) {
            if (opts->proxy == DAPT_PROXY_KL)
                DAPT_CHECK(kl_batch(m, ws_model, ws_frozen, &b, global_rows, opts, i, imp));
            else DAPT_CHECK(mlm_batch(m, ws_model, &b, (double)global[1], opts, i, imp));
        }
        /* A tensor-parallel shard filled only its own heads / FFN columns. */
        dapt_unit_mask_grads g = dapt_importance_batch_grads(imp);
        DAPT_CHECK(dapt_model_gather_mask_grads(m, &g));
        DAPT_CHECK(dapt_importance_add_batch(imp, tokens, comm));
    }
    dapt_model_zero_grads(m);
    return DAPT_OK;
}

dapt_proxy_passes dapt_proxy_passes_of(const dapt_config *cfg)
{
    return strcmp(cfg->das.proxy_passes, "one") ? DAPT_PROXY_PASSES_BOTH : DAPT_PROXY_PASSES_ONE;
}

dapt_kl_direction dapt_proxy_direction_of(const dapt_config *cfg)
{
    return strcmp(cfg->das.proxy_direction, "reference") ? DAPT_KL_TEACHER_STUDENT : DAPT_KL_STUDENT_TEACHER;
}
