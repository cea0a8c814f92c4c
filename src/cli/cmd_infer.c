/* dapt infer --model M.h5 [TEXT ...]: a quick look at a model: the top-k
 * tokens for each mask token of a sentence (MLM models) or the class
 * probabilities (classifiers).  Runs on rank 0. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/model.h"
#include "dapt/modelfile.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt infer --model M.h5 [--tokenizer PATH] [--top-k K] [TEXT ...]\n\n"
           "For each TEXT (or each line of standard input when none is given): with a\n"
           "masked-LM model, the K most probable tokens (default 5) at every mask token\n"
           "([MASK] / <mask>) in the text; with a classifier, every class with its\n"
           "probability.  The tokenizer is the one stored in the model file unless\n"
           "--tokenizer names a tokenizer.json, vocab.txt or tokenizer directory.\n"
           "Texts longer than the model's positions are truncated.  Output lines:\n"
           "  text: <the text>\n"
           "  mask at position P:            (MLM only; P counts from 0 with [CLS])\n"
           "      <rank>  <token or class>  <probability>\n"
           "A TEXT that starts with '-' goes after --.  Runs on rank 0; eval mode.\n\n");
    dapt_cli_print_common_help();
}

typedef struct infer_args {
    const char *model, *tokenizer;
    int64_t top_k;
} infer_args;

/* Ranks of the k largest of p[0..n) (k small: partial selection). */
static void top_k(const float *p, int64_t n, int64_t k, int64_t *idx)
{
    for (int64_t r = 0; r < k; r++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            int taken = 0;
            for (int64_t q = 0; q < r && !taken; q++) taken = idx[q] == i;
            if (!taken && (best < 0 || p[i] > p[best])) best = i;
        }
        idx[r] = best;
    }
}

static void softmax(const float *x, int64_t n, float *p)
{
    float m = x[0];
    for (int64_t i = 1; i < n; i++) m = fmaxf(m, x[i]);
    double z = 0;
    for (int64_t i = 0; i < n; i++) z += exp((double)x[i] - m);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(exp((double)x[i] - m) / z);
}

static dapt_status infer_one(const dapt_model *m, const dapt_tokenizer *tok, const dapt_model_meta *meta,
                             const char *text, int64_t k, FILE *out)
{
    const dapt_model_config *mc = &m->config;
    int64_t max_len = mc->max_position - (mc->arch == DAPT_ARCH_ROBERTA ? mc->pad_token_id + 1 : 0);
    dapt_encode_opts eo = {1, DAPT_TRUNC_LONGEST_FIRST, (size_t)max_len, 0};
    dapt_encoding enc;
    memset(&enc, 0, sizeof enc);
    dapt_workspace *ws = NULL;
    float *p = NULL;
    int64_t *idx = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_tokenizer_encode_full(tok, NULL, text, strlen(text), NULL, 0, &eo, &enc));
    const int64_t S = (int64_t)enc.ids.len;
    for (int64_t t = 0; t < S; t++)
        if (enc.ids.data[t] >= mc->vocab_size)
            DAPT_THROW(DAPT_ERR_ARG, "token id %d of '%s' is outside the model's vocabulary (%lld): wrong tokenizer?",
                       enc.ids.data[t], text, (long long)mc->vocab_size);
    dapt_workspace_spec spec = {1, S, 0, 0, 0};
    DAPT_TRY(dapt_workspace_create(m, &spec, &ws));
    dapt_batch b = {1, S, enc.ids.data, enc.attention_mask.data, enc.type_ids.data, NULL, NULL, 0, NULL};
    dapt_run_opts opts = {0};
    opts.mlm_all_positions = 1;
    DAPT_TRY(dapt_model_forward(m, ws, &b, NULL, &opts));
    fprintf(out, "text: %s\n", text);
    if (mc->has_mlm_head) {
        const int32_t mask = dapt_tokenizer_specials(tok).mask;
        int64_t rows = 0, nmask = 0;
        const int64_t *pos = NULL;
        const float *logits = dapt_ws_mlm_logits(ws, &rows, &pos);
        const int64_t V = mc->vocab_size, kk = k < V ? k : V;
        DAPT_TRY(dapt_alloc((void **)&p, (size_t)V * sizeof *p, "probabilities"));
        DAPT_TRY(dapt_alloc((void **)&idx, (size_t)kk * sizeof *idx, "top-k"));
        for (int64_t r = 0; r < rows; r++) {
            if (mask < 0 || enc.ids.data[pos[r]] != mask) continue;
            nmask++;
            softmax(logits + r * V, V, p);
            top_k(p, V, kk, idx);
            fprintf(out, "  mask at position %lld:\n", (long long)pos[r]);
            for (int64_t q = 0; q < kk; q++) {
                const char *name = dapt_tokenizer_id_to_token(tok, (int32_t)idx[q]);
                fprintf(out, "    %lld  %-16s  %.6f\n", (long long)q + 1, name ? name : "?", p[idx[q]]);
            }
        }
        if (nmask == 0) {
            const char *mname = mask >= 0 ? dapt_tokenizer_id_to_token(tok, mask) : NULL;
            DAPT_THROW(DAPT_ERR_ARG, "'%s' has no mask token %s to fill in", text, mname ? mname : "(none)");
        }
    } else if (mc->num_labels == 1) {
        /* A regression head: its one output is the prediction. */
        fprintf(out, "    prediction  %.6f\n", (double)dapt_ws_class_logits(ws)[0]);
    } else if (mc->num_labels > 0) {
        const int64_t C = mc->num_labels;
        DAPT_TRY(dapt_alloc((void **)&p, (size_t)C * sizeof *p, "probabilities"));
        DAPT_TRY(dapt_alloc((void **)&idx, (size_t)C * sizeof *idx, "ranking"));
        softmax(dapt_ws_class_logits(ws), C, p);
        top_k(p, C, C, idx);
        for (int64_t q = 0; q < C; q++) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "LABEL_%lld", (long long)idx[q]);
            const char *name = meta->labels && meta->labels[idx[q]] ? meta->labels[idx[q]] : fallback;
            fprintf(out, "    %lld  %-16s  %.6f\n", (long long)q + 1, name, p[idx[q]]);
        }
    }
cleanup:
    free(p);
    free(idx);
    dapt_workspace_free(ws);
    dapt_encoding_free(&enc);
    return st;
}

/* Runs on rank 0: the texts are cli->args, else the lines of stdin. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    const infer_args *a = ctx;
    if (!a->model) return DAPT_ERROR(DAPT_ERR_ARG, "dapt infer: --model is required");
    dapt_model m;
    memset(&m, 0, sizeof m);
    dapt_model_meta meta;
    memset(&meta, 0, sizeof meta);
    dapt_tokenizer *tok = NULL;
    char *line = NULL;
    size_t cap = 0;
    dapt_status st = DAPT_OK;
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_SELF, a->model, &f));
    dapt_model_config mc;
    st = dapt_modelfile_get_config(&f, &mc, &meta);
    if (st == DAPT_OK) st = dapt_model_create(&mc, &m);
    if (st == DAPT_OK) st = dapt_modelfile_get_params(&f, &m.table, m.params);
    dapt_h5_close(&f);
    DAPT_TRY(st);
    if (!mc.has_mlm_head && mc.num_labels <= 0)
        DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s has neither an MLM head nor a classifier (use dapt forward to look at "
                   "its hidden states)", a->model);
    if (a->tokenizer) DAPT_TRY(dapt_tokenizer_load(a->tokenizer, &tok));
    else if (meta.ntokenizer == 0) DAPT_THROW(DAPT_ERR_ARG, "%s has no tokenizer files; pass --tokenizer", a->model);
    else DAPT_TRY(dapt_model_tokenizer(&meta, a->model, &tok));
    for (int i = 0; i < cli->nargs; i++) DAPT_TRY(infer_one(&m, tok, &meta, cli->args[i], a->top_k, stdout));
    if (cli->nargs == 0) {
        ssize_t n;
        while ((n = getline(&line, &cap, stdin)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
            if (n == 0) continue;
            DAPT_TRY(infer_one(&m, tok, &meta, line, a->top_k, stdout));
        }
    }
    fflush(stdout);
cleanup:
    free(line);
    dapt_tokenizer_free(tok);
    dapt_model_meta_free(&meta);
    dapt_model_free(&m);
    return st;
}

int dapt_cmd_infer(int argc, char **argv)
{
    infer_args a = {.top_k = 5};
    const dapt_cli_option opts[] = {
        {.name = "model", .kind = DAPT_OPT_STRING, .dest = &a.model},
        {.name = "tokenizer", .kind = DAPT_OPT_STRING, .dest = &a.tokenizer},
        {.name = "top-k", .kind = DAPT_OPT_INT, .dest = &a.top_k, .min = 1, .max = 1000},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "infer", .usage = usage, .options = opts, .max_args = -1, .rank0 = 1,
                                  .run = run, .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
