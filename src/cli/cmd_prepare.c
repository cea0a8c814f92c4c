/* dapt prepare: raw text (or labelled examples with --task) -> one HDF5 file.
 * All ranks take part; see include/dapt/corpus.h and docs/formats.md. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/corpus.h"
#include "dapt/log.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt prepare [--tokenizer PATH] [--force] [--doc-sep line|blank] -o OUT.h5 INPUT...\n"
           "       dapt prepare --task [--tokenizer PATH] [--force] [--format tsv|jsonl] -o OUT.h5 SPLIT...\n\n"
           "Corpus mode: UTF-8 text files (plain or .gz) -> token ids and document offsets.\n"
           "  --doc-sep line   one document per line (default)\n"
           "  --doc-sep blank  documents are runs of lines separated by an empty line\n"
           "Task mode (--task): each SPLIT file (train.tsv, dev.tsv, ...) becomes a group named\n"
           "after it, with ids encoded with the model's template, truncated to\n"
           "tokenizer.max_length, and label ids from the sorted union of label names.\n"
           "  TSV lines: text<TAB>label or text_a<TAB>text_b<TAB>label\n"
           "  JSONL: {\"text\": ..., [\"text_b\": ...,] \"label\": ...}  (.jsonl/.json by default)\n"
           "  --tokenizer PATH  tokenizer.json, vocab.txt or a model directory\n"
           "                    (default: [tokenizer] path of the configuration)\n"
           "  -o, --output OUT  the HDF5 file to write (written as OUT.tmp.*, renamed when complete)\n"
           "  --force           replace an existing OUT\n"
           "The file is identical whatever the number of ranks.  Invalid UTF-8, NUL bytes,\n"
           "truncated .gz and empty inputs are errors naming the file (and line).\n\n");
    dapt_cli_print_common_help();
}

/* Matches "--name" or "--name=value"; takes the value from the next
 * argument in the first case. */
static int take_value(const dapt_cli *cli, int *i, const char *name, const char **v, dapt_status *st)
{
    const char *a = cli->rest[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '=')) return 0;
    if (a[n] == '=') {
        *v = a + n + 1;
    } else if (*i + 1 < cli->nrest) {
        *v = cli->rest[++*i];
    } else {
        *st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: %s needs a value", name);
        *v = NULL;
    }
    return 1;
}

int dapt_cmd_prepare(int argc, char **argv)
{
    dapt_cli cli;
    if (dapt_cli_begin(argc, argv, &cli, usage)) return DAPT_EXIT_OK;
    dapt_status st = DAPT_OK;
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    dapt_prepare_opts o = {0};
    const char **inputs = calloc((size_t)cli.nrest + 1, sizeof *inputs);
    if (!inputs) dapt_cli_fail_all(DAPT_ERROR(DAPT_ERR_NOMEM, "dapt prepare: out of memory"));
    int task = 0;
    for (int i = 0; i < cli.nrest && st == DAPT_OK; i++) {
        const char *a = cli.rest[i], *v = NULL;
        if (take_value(&cli, &i, "--tokenizer", &v, &st)) {
            if (v) st = dapt_config_set_value(&cli.cfg, "tokenizer", "path", v, "--tokenizer");
        } else if (take_value(&cli, &i, "--output", &v, &st) || take_value(&cli, &i, "-o", &v, &st)) {
            o.output = v;
        } else if (take_value(&cli, &i, "--doc-sep", &v, &st)) {
            if (!v) break;
            if (!strcmp(v, "line")) o.doc_sep = DAPT_DOC_LINE;
            else if (!strcmp(v, "blank")) o.doc_sep = DAPT_DOC_BLANK;
            else st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: --doc-sep must be line or blank, not '%s'", v);
        } else if (take_value(&cli, &i, "--format", &v, &st)) {
            if (!v) break;
            if (!strcmp(v, "tsv")) o.format = DAPT_TASK_TSV;
            else if (!strcmp(v, "jsonl")) o.format = DAPT_TASK_JSONL;
            else st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: --format must be tsv or jsonl, not '%s'", v);
        } else if (!strcmp(a, "--force")) {
            o.force = 1;
        } else if (!strcmp(a, "--task")) {
            task = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: unknown option '%s' (see dapt prepare --help)", a);
        } else {
            inputs[o.n_inputs++] = a;
        }
    }
    if (st == DAPT_OK && !o.output) st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: -o OUT.h5 is required");
    if (st == DAPT_OK && o.n_inputs == 0) st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: no input files");
    if (st == DAPT_OK && !cli.cfg.tokenizer.path[0])
        st = DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: no tokenizer (--tokenizer PATH or [tokenizer] path)");
    if (st != DAPT_OK) dapt_cli_fail_all(st);

    /* Every rank loads the same files, so every rank gets the same status. */
    dapt_tokenizer *tok = NULL;
    st = dapt_tokenizer_load(cli.cfg.tokenizer.path, &tok);
    if (st != DAPT_OK) dapt_cli_fail_all(st);
    o.tok = tok;
    o.tokenizer_path = cli.cfg.tokenizer.path;
    o.inputs = inputs;
    o.cfg = &cli.cfg;

    dapt_prepare_stats s;
    double t0 = dapt_now();
    st = task ? dapt_prepare_task(MPI_COMM_WORLD, &o, &s) : dapt_prepare_corpus(MPI_COMM_WORLD, &o, &s);
    double dt = dapt_now() - t0;
    dapt_tokenizer_free(tok);
    if (st != DAPT_OK) dapt_cli_fail_all(st); /* the library agreed: same status on all ranks */
    if (task)
        dapt_log(DAPT_LOG_INFO,
                 "prepare: %s: %lld examples, %d labels, %lld ids (%lld truncated), %.1f MB in %.2f s on %d ranks",
                 o.output, (long long)s.n_docs, s.n_labels, (long long)s.n_tokens, (long long)s.n_truncated,
                 (double)s.n_bytes / 1e6, dt, size);
    else
        dapt_log(DAPT_LOG_INFO,
                 "prepare: %s: %lld documents, %lld tokens, %.1f MB in %.2f s (%.1f MB/s) on %d ranks "
                 "(scan %.2f s, tokenize %.2f s, write %.2f s)%s",
                 o.output, (long long)s.n_docs, (long long)s.n_tokens, (double)s.n_bytes / 1e6, dt,
                 dt > 0 ? (double)s.n_bytes / 1e6 / dt : 0.0, size, s.t_scan, s.t_tokenize, s.t_write,
                 s.n_skipped ? " (some whitespace-only documents skipped)" : "");
    free(inputs);
    dapt_cli_free(&cli);
    return DAPT_EXIT_OK;
}
