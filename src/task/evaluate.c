/* Evaluation: a classifier on a task split, and held-out MLM loss on a
 * prepared corpus (the same numbers dapt train logs). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/batches.h"
#include "dapt/h5io.h"
#include "dapt/mlm.h"
#include "dapt/share.h"
#include "dapt/tokenizer.h"
#include "dapt/train.h"
#include "task_internal.h"

int64_t dapt_model_max_input(const dapt_model_config *mc)
{
    return mc->arch == DAPT_ARCH_ROBERTA ? mc->max_position - mc->pad_token_id - 1 : mc->max_position;
}

/* Gathers each rank's rows (width floats/ints per row) into every rank's
 * full array; counts are this rank's share of n rows. */
static dapt_status allgather_rows(MPI_Comm comm, const void *mine, int64_t my_rows, void *all, int64_t n, int64_t width,
                                  MPI_Datatype type)
{
    int R = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &R)));
    int *counts = NULL, *displs = NULL;
    dapt_status st = DAPT_OK;
    if (n * width > 0x7fffffff) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%lld rows of %lld are too many to gather", (long long)n, (long long)width);
    DAPT_TRY(dapt_alloc((void **)&counts, (size_t)R * sizeof *counts, "gather counts"));
    DAPT_TRY(dapt_alloc((void **)&displs, (size_t)R * sizeof *displs, "gather offsets"));
    for (int r = 0; r < R; r++) {
        int64_t b, c;
        dapt_share(n, r, R, &b, &c);
        counts[r] = (int)(c * width);
        displs[r] = (int)(b * width);
    }
    DAPT_TRY(DAPT_MPI(MPI_Allgatherv(mine, (int)(my_rows * width), type, all, counts, displs, type, comm)));
cleanup:
    free(counts);
    free(displs);
    return st;
}

dapt_status dapt_task_evaluate(MPI_Comm comm, const dapt_model *model, const dapt_task_split *s, int64_t batch_size,
                               int64_t max_len, dapt_cls_metrics *m, double *loss, int32_t *predictions, float *logits)
{
    const int64_t C = model->config.num_labels;
    memset(m, 0, sizeof *m);
    if (C <= 0) return DAPT_ERROR(DAPT_ERR_ARG, "the model has no classification head");
    if (batch_size < 1) return DAPT_ERROR(DAPT_ERR_ARG, "evaluation batch size %lld", (long long)batch_size);
    const int64_t cap = dapt_model_max_input(&model->config);
    if (max_len <= 0 || max_len > cap) max_len = cap;
    int rank = 0, R = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &R)));
    int64_t begin, count;
    dapt_share(s->n, rank, R, &begin, &count);
    const int64_t B = batch_size < (count > 0 ? count : 1) ? batch_size : (count > 0 ? count : 1);
    task_ws_cache cache;
    task_ws_cache_init(&cache, model, B, 0);
    int32_t *ids = NULL, *att = NULL, *types = NULL, *labels = NULL, *pred = NULL;
    float *lg = NULL, *values = NULL, *all = NULL;
    int64_t *idx = NULL;
    dapt_status st = DAPT_OK;
    const int regression = s->values != NULL;
    if (regression != (C == 1))
        return DAPT_ERROR(DAPT_ERR_ARG, "split %s holds %s labels but the model's head has %lld output%s", s->name,
                          regression ? "regression" : "class", (long long)C, C == 1 ? " (a regression head)" : "s");
    if (regression) {
        m->regression = 1;
        m->n_labels = 1;
    } else {
        st = dapt_cls_metrics_init(m, C);
    }
    const size_t cells = (size_t)B * (size_t)max_len;
    if (st == DAPT_OK) st = dapt_alloc((void **)&ids, cells * sizeof *ids, "evaluation ids");
    if (st == DAPT_OK) st = dapt_alloc((void **)&att, cells * sizeof *att, "evaluation attention");
    if (st == DAPT_OK && s->type_ids) st = dapt_alloc((void **)&types, cells * sizeof *types, "evaluation type ids");
    if (st == DAPT_OK) st = dapt_alloc((void **)&labels, (size_t)B * sizeof *labels, "evaluation labels");
    if (st == DAPT_OK) st = dapt_alloc((void **)&values, (size_t)B * sizeof *values, "evaluation targets");
    if (st == DAPT_OK && regression)
        st = dapt_alloc((void **)&all, (size_t)s->n * sizeof *all, "regression predictions");
    if (st == DAPT_OK) st = dapt_alloc((void **)&idx, (size_t)B * sizeof *idx, "evaluation rows");
    if (st == DAPT_OK) st = dapt_alloc((void **)&pred, (size_t)(count > 0 ? count : 1) * sizeof *pred, "predictions");
    if (st == DAPT_OK) st = dapt_alloc((void **)&lg, (size_t)(count > 0 ? count : 1) * (size_t)C * sizeof *lg, "logits");
    double sum = 0.0;
    int nonfinite = 0;
    for (int64_t off = 0; st == DAPT_OK && off < count; off += B) {
        dapt_heartbeat("an evaluation batch");
        const int64_t n = count - off < B ? count - off : B;
        int64_t longest = 1;
        for (int64_t r = 0; r < n; r++) {
            idx[r] = begin + off + r;
            const int64_t len = task_example_len(s, idx[r], max_len);
            if (len > longest) longest = len;
        }
        const int64_t L = task_padded_len(longest, max_len);
        task_fill_batch(s, idx, n, L, (int32_t)model->config.pad_token_id, ids, att, types, labels, values);
        dapt_workspace *ws;
        if ((st = task_ws_get(&cache, L, &ws)) != DAPT_OK) break;
        dapt_batch b = {n, L, ids, att, types, NULL, labels, (uint64_t)(begin + off), NULL};
        task_batch_labels(&b, s, labels, values);
        dapt_run_opts opts = {0};
        opts.cls_denominator = 1.0; /* the engine returns the plain sum */
        st = dapt_model_forward(model, ws, &b, NULL, &opts);
        if (st == DAPT_ERR_NUMERIC) {
            dapt_error_clear();
            st = DAPT_OK;
            nonfinite = 1;
        }
        if (st != DAPT_OK) break;
        sum += dapt_ws_cls_loss(ws);
        const float *z = dapt_ws_class_logits(ws);
        for (int64_t r = 0; r < n; r++) {
            int32_t best = 0;
            for (int64_t k = 1; k < C; k++)
                if (z[r * C + k] > z[r * C + best]) best = (int32_t)k;
            pred[off + r] = best;
            memcpy(lg + (off + r) * C, z + r * C, (size_t)C * sizeof *lg);
            if (st == DAPT_OK && !regression) st = dapt_cls_metrics_add(m, labels[r], best);
        }
        if (st != DAPT_OK) break;
    }
    /* A rank that failed must not leave the others waiting in a collective. */
    DAPT_TRY(dapt_status_agree(comm, st));
    if (nonfinite) sum = NAN;
    if (regression) {
        /* Correlations need every prediction: gathered, then the same
         * computation on every rank. */
        DAPT_TRY(allgather_rows(comm, lg, count, all, s->n, 1, MPI_FLOAT));
        DAPT_TRY(dapt_reg_metrics_compute(s->values, all, s->n, &m->reg));
    } else {
        DAPT_TRY(dapt_cls_metrics_allreduce(m, comm));
        dapt_cls_metrics_finish(m);
    }
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, comm)));
    *loss = sum / (double)s->n;
    if (predictions) DAPT_TRY(allgather_rows(comm, pred, count, predictions, s->n, 1, MPI_INT32_T));
    if (logits) DAPT_TRY(allgather_rows(comm, lg, count, logits, s->n, C, MPI_FLOAT));
cleanup:
    task_ws_cache_free(&cache);
    free(ids);
    free(att);
    free(types);
    free(labels);
    free(values);
    free(all);
    free(idx);
    free(pred);
    free(lg);
    if (st != DAPT_OK) dapt_cls_metrics_free(m);
    return st;
}

/* The MLM spec and sequence specials as dapt train derives them. */
static dapt_status mlm_specials(const dapt_config *cfg, const dapt_tokenizer *tok, dapt_mlm_spec *mlm,
                                dapt_seq_spec *ss, const char *corpus)
{
    DAPT_CHECK(dapt_sequences_check_tokenizer(corpus, "the model's", tok));
    ss->seq_len = cfg->data.seq_len;
    ss->packing = strcmp(cfg->data.packing, "document") ? DAPT_PACK_CONCAT : DAPT_PACK_DOCUMENT;
    ss->eval_fraction = cfg->data.eval_fraction;
    ss->seed = (uint64_t)cfg->run.seed;
    return dapt_mlm_spec_from_tokenizer(tok, "of the model", cfg->train.mlm_probability, mlm, &ss->begin_id,
                                        &ss->end_id, &ss->pad_id);
}

dapt_status dapt_mlm_evaluate(MPI_Comm comm, const dapt_config *cfg, const dapt_model *model, const char *corpus,
                              const dapt_tokenizer *tok, int64_t max_sequences, int64_t batch_size, dapt_mlm_eval *out)
{
    memset(out, 0, sizeof *out);
    out->loss = out->perplexity = NAN;
    const dapt_model_config *mc = &model->config;
    if (!mc->has_mlm_head) return DAPT_ERROR(DAPT_ERR_ARG, "the model has no MLM head, so it has no MLM loss");
    if (batch_size < 1) return DAPT_ERROR(DAPT_ERR_ARG, "evaluation batch size %lld", (long long)batch_size);
    dapt_mlm_spec mlm;
    dapt_seq_spec ss;
    DAPT_CHECK(mlm_specials(cfg, tok, &mlm, &ss, corpus));
    if (ss.seq_len > dapt_model_max_input(mc))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "data.seq_len = %lld exceeds the model's %lld positions", (long long)ss.seq_len,
                          (long long)dapt_model_max_input(mc));
    if (mlm.vocab_size > mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "the tokenizer's vocabulary (%lld) is larger than the model's (%lld)",
                          (long long)mlm.vocab_size, (long long)mc->vocab_size);
    dapt_sequences *seqs = NULL;
    if (cfg->data.verify) DAPT_CHECK(dapt_h5_verify_file(comm, corpus));
    DAPT_CHECK(dapt_sequences_open(corpus, &ss, &seqs));
    dapt_status st = DAPT_OK;
    out->available = dapt_sequences_count(seqs, DAPT_SPLIT_EVAL);
    int64_t want = max_sequences > 0 && max_sequences < out->available ? max_sequences : out->available;
    if (want == 0)
        DAPT_THROW(DAPT_ERR_CONFIG, "%s has no held-out sequence of %lld tokens with data.eval_fraction = %g and run.seed = %lld",
                   corpus, (long long)ss.seq_len, cfg->data.eval_fraction, (long long)cfg->run.seed);
    if (dapt_sequences_vocab(seqs) > mc->vocab_size)
        DAPT_THROW(DAPT_ERR_CONFIG, "%s declares vocab_size %lld, larger than the model's %lld", corpus,
                   (long long)dapt_sequences_vocab(seqs), (long long)mc->vocab_size);
    DAPT_TRY(dapt_heldout_mlm_loss(comm, model, NULL, seqs, &mlm, ss.seed, want, batch_size, &out->loss, &out->masked));
    out->sequences = want;
    out->perplexity = exp(out->loss);
cleanup:
    dapt_sequences_close(seqs);
    return st;
}
