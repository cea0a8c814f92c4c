/* Passes over a corpus outside the training order: unit importance (DGA/DAS,
 * dapt importance), the Fisher diagonal (ewc) and the held-out
 * representations of DGA/DAS. */
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/batches.h"
#include "dapt/das.h"
#include "dapt/corpus_pass.h"
#include "dapt/optim.h"
#include "dapt/rng.h"

dapt_status dapt_corpus_batches_init(dapt_corpus_batches *cb, dapt_sequences *seqs, const dapt_mlm_spec *mlm,
                                     dapt_split split, uint64_t seed, int64_t seq_len, int64_t global_batch,
                                     int64_t samples, int rank, int size)
{
    memset(cb, 0, sizeof *cb);
    cb->seqs = seqs;
    cb->mlm = mlm;
    cb->split = split;
    cb->seed = seed;
    cb->seq_len = seq_len;
    cb->global_batch = global_batch;
    cb->samples = samples;
    cb->rank = rank;
    cb->size = size;
    const int64_t n = dapt_sequences_count(seqs, split);
    if (n == 0) return DAPT_ERROR(DAPT_ERR_CONFIG, "no %s sequences in the corpus for an importance, Fisher or representation pass",
                                  split == DAPT_SPLIT_TRAIN ? "train" : "held-out");
    if (global_batch < 1) return DAPT_ERROR(DAPT_ERR_ARG, "corpus batches: batch %lld", (long long)global_batch);
    if (split == DAPT_SPLIT_TRAIN) {
        DAPT_CHECK(dapt_order_init(&cb->order, seed ^ dapt_rng_stream_tag(DAPT_RNG_IMPORTANCE_ORDER), n));
        cb->have_order = 1;
    } else if (samples > n) {
        cb->samples = n;
    }
    const size_t per = (size_t)((global_batch + size - 1) / size), cells = per * (size_t)seq_len;
    DAPT_CHECK(dapt_alloc((void **)&cb->clean, cells * sizeof(int32_t), "pass ids"));
    DAPT_CHECK(dapt_alloc((void **)&cb->ids, cells * sizeof(int32_t), "pass inputs"));
    DAPT_CHECK(dapt_alloc((void **)&cb->att, cells * sizeof(int32_t), "pass attention"));
    DAPT_CHECK(dapt_alloc((void **)&cb->labels, cells * sizeof(int32_t), "pass labels"));
    DAPT_CHECK(dapt_alloc((void **)&cb->idx, per * sizeof(int64_t), "pass sequence list"));
    return DAPT_OK;
}

void dapt_corpus_batches_free(dapt_corpus_batches *cb)
{
    if (cb->have_order) dapt_order_free(&cb->order);
    free(cb->clean);
    free(cb->ids);
    free(cb->att);
    free(cb->labels);
    free(cb->idx);
    memset(cb, 0, sizeof *cb);
}

int64_t dapt_corpus_batches_count(const dapt_corpus_batches *cb)
{
    return (cb->samples + cb->global_batch - 1) / cb->global_batch;
}

dapt_status dapt_corpus_batches_get(dapt_corpus_batches *cb, int64_t i, dapt_batch *masked, const int32_t **clean,
                                    double *tokens)
{
    int64_t g0 = i * cb->global_batch, rows = cb->samples - g0, begin, count;
    if (rows > cb->global_batch) rows = cb->global_batch;
    if (rows < 0) rows = 0;
    dapt_share(rows, (int)cb->rank, (int)cb->size, &begin, &count);
    const int64_t L = cb->seq_len;
    for (int64_t k = 0; k < count; k++) {
        uint64_t g = (uint64_t)(g0 + begin + k);
        cb->idx[k] = cb->have_order ? dapt_order_at(&cb->order, g, NULL) : (int64_t)g;
    }
    if (count > 0) DAPT_CHECK(dapt_sequences_read(cb->seqs, cb->split, cb->idx, count, cb->clean, cb->att));
    memcpy(cb->ids, cb->clean, sizeof(int32_t) * (size_t)(count * L));
    double t = 0;
    for (int64_t k = 0; k < count; k++) {
        int64_t sel;
        dapt_mlm_mask(cb->mlm, cb->seed, UINT64_MAX - 2 - (uint64_t)i, (uint64_t)(g0 + begin + k), cb->ids + k * L,
                      cb->att + k * L, L, cb->labels + k * L, &sel);
        for (int64_t j = 0; j < L; j++) t += cb->att[k * L + j] != 0;
    }
    memset(masked, 0, sizeof *masked);
    masked->batch = count;
    masked->seq_len = L;
    masked->input_ids = cb->ids;
    masked->attention_mask = cb->att;
    masked->mlm_labels = cb->labels;
    masked->first_sample = (uint64_t)(g0 + begin);
    if (clean) *clean = cb->clean;
    if (tokens) *tokens = t;
    return DAPT_OK;
}

/* ---- importance ----------------------------------------------------------- */

typedef struct imp_source {
    dapt_corpus_batches *cb;
    dapt_proxy_kind proxy;
} imp_source;

static dapt_status imp_batch(void *ctx, int64_t index, dapt_batch *batch, double *tokens)
{
    imp_source *s = ctx;
    const int32_t *clean = NULL;
    DAPT_CHECK(dapt_corpus_batches_get(s->cb, index, batch, &clean, tokens));
    /* The KL proxy looks at the text itself, not at a masked copy. */
    if (s->proxy == DAPT_PROXY_KL) batch->input_ids = clean;
    return DAPT_OK;
}

dapt_status dapt_importance_from_corpus(dapt_model *m, dapt_sequences *seqs, const dapt_mlm_spec *mlm,
                                        const dapt_corpus_importance_opts *opts, dapt_importance *imp,
                                        MPI_Comm comm)
{
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    dapt_corpus_batches cb;
    dapt_workspace *ws = NULL, *wsf = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_corpus_batches_init(&cb, seqs, mlm, DAPT_SPLIT_TRAIN, opts->seed, opts->seq_len, opts->global_batch,
                                      opts->samples, rank, size));
    const int64_t per = (opts->global_batch + size - 1) / size;
    dapt_workspace_spec spec = {per, opts->seq_len, 0, 1, opts->recompute};
    DAPT_TRY(dapt_workspace_create(m, &spec, &ws));
    if (opts->proxy == DAPT_PROXY_KL) {
        /* The second pass is back-propagated too when the gradient flows through both. */
        const int both = opts->passes == DAPT_PROXY_PASSES_BOTH;
        dapt_workspace_spec fspec = {per, opts->seq_len, both ? 0 : 1, both, both ? opts->recompute : 0};
        DAPT_TRY(dapt_workspace_create(m, &fspec, &wsf));
    }
    imp_source src = {&cb, opts->proxy};
    dapt_importance_pass_opts po = {opts->proxy, dapt_corpus_batches_count(&cb), opts->seed, opts->temperature,
                                    opts->passes, opts->direction};
    DAPT_TRY(dapt_importance_pass(m, ws, wsf, imp_batch, &src, &po, imp, comm));
cleanup:
    dapt_workspace_free(ws);
    dapt_workspace_free(wsf);
    dapt_corpus_batches_free(&cb);
    return st;
}

/* ---- Fisher ----------------------------------------------------------------- */

dapt_status dapt_fisher_from_corpus(dapt_model *m, dapt_corpus_batches *cb, uint64_t seed, int recompute,
                                    float *fisher, MPI_Comm comm)
{
    const int64_t per = (cb->global_batch + cb->size - 1) / cb->size;
    dapt_workspace *ws = NULL;
    dapt_workspace_spec spec = {per, cb->seq_len, 0, 1, recompute};
    DAPT_CHECK(dapt_workspace_create(m, &spec, &ws));
    dapt_status st = DAPT_OK;
    const int64_t nb = dapt_corpus_batches_count(cb);
    const size_t total = m->table.total;
    for (int64_t i = 0; i < nb; i++) {
        dapt_heartbeat("a Fisher batch");
        dapt_batch b;
        DAPT_TRY(dapt_corpus_batches_get(cb, i, &b, NULL, NULL));
        long long mine = 0, all = 0;
        for (int64_t t = 0; t < b.batch * b.seq_len; t++) mine += b.mlm_labels[t] != DAPT_IGNORE_LABEL;
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(&mine, &all, 1, MPI_LONG_LONG, MPI_SUM, comm)));
        dapt_model_zero_grads(m);
        if (b.batch > 0 && all > 0) {
            dapt_run_opts ro = {0};
            ro.train = 1;
            ro.seed = seed ^ dapt_rng_stream_tag(DAPT_RNG_IMPORTANCE_ORDER);
            ro.step = (uint64_t)i;
            ro.mlm_denominator = (double)all;
            DAPT_TRY(dapt_model_forward(m, ws, &b, NULL, &ro));
            DAPT_TRY(dapt_model_backward(m, ws, 1.0, NULL, NULL));
        }
        DAPT_TRY(dapt_grad_allreduce(m->grads, total, 25.0, comm));
        for (size_t k = 0; k < total; k++) fisher[k] += m->grads[k] * m->grads[k] / (float)nb;
    }
cleanup:
    dapt_model_zero_grads(m);
    dapt_workspace_free(ws);
    return st;
}

/* ---- representations --------------------------------------------------------- */

dapt_status dapt_representations(dapt_model *m, dapt_corpus_batches *cb, const dapt_unit_masks *masks, float **z1,
                                 float **z3, int64_t **doc_ids, int64_t *first_row, int64_t *rows)
{
    const int64_t H = m->config.hidden, L = cb->seq_len;
    dapt_batch b;
    *z1 = *z3 = NULL;
    *doc_ids = NULL;
    /* One global "batch" of all the rows (cb made with global_batch =
     * samples): each rank gets its contiguous share. */
    if (cb->global_batch < cb->samples)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "representations: the batch must hold every sample");
    DAPT_CHECK(dapt_corpus_batches_get(cb, 0, &b, NULL, NULL));
    *first_row = (int64_t)b.first_sample;
    *rows = b.batch;
    const int64_t n = b.batch, chunk = n < 16 ? (n > 0 ? n : 1) : 16;
    dapt_workspace *ws = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_alloc((void **)z1, sizeof(float) * (size_t)((n ? n : 1) * H), "representations"));
    DAPT_TRY(dapt_alloc((void **)z3, sizeof(float) * (size_t)((n ? n : 1) * H), "representations"));
    DAPT_TRY(dapt_alloc((void **)doc_ids, sizeof(int64_t) * (size_t)(n ? n : 1), "document ids"));
    dapt_workspace_spec spec = {chunk, L, 1, 0, 0};
    DAPT_TRY(dapt_workspace_create(m, &spec, &ws));
    for (int64_t off = 0; off < n; off += chunk) {
        dapt_heartbeat("a representation batch");
        dapt_batch c = {0};
        c.batch = n - off < chunk ? n - off : chunk;
        c.seq_len = L;
        c.input_ids = cb->clean + off * L;
        c.attention_mask = cb->att + off * L;
        c.first_sample = b.first_sample + (uint64_t)off;
        dapt_run_opts ro = {0};
        for (int v = 0; v < 2; v++) {
            DAPT_TRY(dapt_model_forward(m, ws, &c, v ? masks : NULL, &ro));
            dapt_mean_pool_forward(dapt_ws_last_hidden(ws), c.attention_mask, c.batch, L, H, (v ? *z3 : *z1) + off * H);
        }
    }
    for (int64_t k = 0; k < n; k++) (*doc_ids)[k] = dapt_sequences_doc(cb->seqs, cb->split, *first_row + k);
    dapt_workspace_free(ws);
    return DAPT_OK;
cleanup:
    dapt_workspace_free(ws);
    free(*z1);
    free(*z3);
    free(*doc_ids);
    *z1 = *z3 = NULL;
    *doc_ids = NULL;
    return st;
}
