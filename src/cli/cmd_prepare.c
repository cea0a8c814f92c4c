/* dapt prepare: raw text (or labelled examples with --task) -> one HDF5 file.
 * All ranks take part; see include/dapt/corpus.h and docs/formats.md. */
#include <errno.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dapt/batches.h"
#include "dapt/cli.h"
#include "dapt/corpus.h"
#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt prepare [--tokenizer PATH] [--force] [--doc-sep line|blank]\n"
           "                    [--salient-against GENERAL.h5 [--salient-top K] [--salient-min-count N]] -o OUT.h5 INPUT...\n"
           "       dapt prepare --task [--regression] [--tokenizer PATH] [--force] [--format tsv|jsonl] -o OUT.h5 SPLIT...\n\n"
           "Corpus mode: UTF-8 text files (plain or .gz) -> token ids and document offsets.\n"
           "  --doc-sep line   one document per line (default)\n"
           "  --doc-sep blank  documents are runs of lines separated by an empty line\n"
           "  --salient-against GENERAL.h5  also store the token counts of OUT and of the\n"
           "                   prepared GENERAL.h5 (same tokenizer) and the domain-salient ids\n"
           "                   (the guide set of objective emlm) as /salient in OUT\n"
           "  --salient-top K  at most K salient ids (default 1000)\n"
           "  --salient-min-count N  an id needs N occurrences in OUT (default 5)\n"
           "Task mode (--task): each SPLIT file (train.tsv, dev.tsv, ...) becomes a group named\n"
           "after it, with ids encoded with the model's template, truncated to\n"
           "tokenizer.max_length, and label ids from the sorted union of label names.\n"
           "  TSV lines: text<TAB>label or text_a<TAB>text_b<TAB>label\n"
           "  JSONL: {\"text\": ..., [\"text_b\": ...,] \"label\": ...}  (.jsonl/.json by default)\n"
           "  --regression      labels are numbers (float32 targets of a one-output\n"
           "                    regression head); a non-numeric label is an error\n"
           "  --tokenizer PATH  tokenizer.json, vocab.txt or a model directory\n"
           "                    (default: [tokenizer] path of the configuration)\n"
           "  -o, --output OUT  the HDF5 file to write (written as OUT.tmp.*, renamed when complete)\n"
           "  --force           replace an existing OUT\n"
           "The file is identical whatever the number of ranks.  Invalid UTF-8, NUL bytes,\n"
           "truncated .gz and empty inputs are errors naming the file (and line).\n\n");
    dapt_cli_print_common_help();
}

typedef struct prep_args {
    dapt_prepare_opts o;
    dapt_salient_opts salient; /* .general NULL: no statistics */
    int task, doc_sep, format; /* doc_sep, format: -1, or a choice of --doc-sep, --format */
} prep_args;

/* The corpus with /salient: prepared under a name of its own, the
 * statistics added, then renamed to OUT, so OUT never exists without them.
 * Collective over MPI_COMM_WORLD. */
static dapt_status prepare_salient(prep_args *a, dapt_prepare_stats *s)
{
    const char *out = a->o.output;
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
    if (dapt_fs_same_file(out, a->salient.general))
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: the output %s is the general corpus %s", out, a->salient.general);
    if (dapt_fs_exists(out) && !a->o.force) return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", out);
    /* Before tokenizing anything: the general corpus must exist and share the ids. */
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, dapt_sequences_check_tokenizer(a->salient.general, "this run's", a->o.tok)));
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.salient-tmp", out) >= sizeof tmp)
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: output path too long: %.80s...", out);
    dapt_prepare_opts o = a->o;
    o.output = tmp;
    o.force = 1; /* a temporary left by an interrupted run */
    DAPT_CHECK(dapt_prepare_corpus(MPI_COMM_WORLD, &o, s));
    dapt_status st = dapt_corpus_add_salient(MPI_COMM_WORLD, tmp, a->o.tok, &a->salient);
    if (rank == 0) {
        if (st == DAPT_OK) st = dapt_fs_sync(tmp, 0);
        if (st == DAPT_OK && rename(tmp, out) != 0)
            st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot rename %s to it: %s", out, tmp, strerror(errno));
        if (st != DAPT_OK) remove(tmp);
        char dir[4096];
        dapt_fs_parent(out, dir, sizeof dir);
        if (st == DAPT_OK) st = dapt_fs_sync(dir, 1);
    }
    return dapt_status_agree(MPI_COMM_WORLD, st);
}

/* Every rank takes part. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    prep_args *a = ctx;
    dapt_prepare_opts *o = &a->o;
    if (!o->output) return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: -o OUT.h5 is required");
    if (cli->nargs == 0) return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: no input files");
    if (o->regression && !a->task) return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: --regression needs --task");
    if (a->salient.general && a->task) return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: --salient-against is for a corpus, not --task");
    if (!a->salient.general && (a->salient.top >= 0 || a->salient.min_count >= 0))
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: --salient-top and --salient-min-count need --salient-against");
    for (int i = 0; i < cli->nargs; i++)
        if (dapt_fs_same_file(o->output, cli->args[i]))
            return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: the output %s is the input %s (it would replace it)",
                              o->output, cli->args[i]);
    if (!cli->cfg.tokenizer.path[0])
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt prepare: no tokenizer (--tokenizer PATH or [tokenizer] path)");
    if (a->salient.top < 0) a->salient.top = DAPT_SALIENT_TOP;
    if (a->salient.min_count < 0) a->salient.min_count = DAPT_SALIENT_MIN_COUNT;
    /* The choices are in the order of the enums (after DAPT_TASK_AUTO). */
    o->doc_sep = a->doc_sep == 1 ? DAPT_DOC_BLANK : DAPT_DOC_LINE;
    o->format = a->format < 0 ? DAPT_TASK_AUTO : (dapt_task_format)(DAPT_TASK_TSV + a->format);

    /* Every rank loads the same files, so every rank gets the same status. */
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_tokenizer_load(cli->cfg.tokenizer.path, &tok));
    o->tok = tok;
    o->tokenizer_path = cli->cfg.tokenizer.path;
    o->inputs = (const char *const *)cli->args;
    o->n_inputs = (size_t)cli->nargs;
    o->cfg = &cli->cfg;

    dapt_prepare_stats s;
    double t0 = dapt_now();
    dapt_status st = a->task ? dapt_prepare_task(MPI_COMM_WORLD, o, &s)
                     : a->salient.general ? prepare_salient(a, &s)
                                          : dapt_prepare_corpus(MPI_COMM_WORLD, o, &s);
    double dt = dapt_now() - t0;
    dapt_tokenizer_free(tok);
    DAPT_CHECK(st); /* the library agreed: same status on all ranks */
    if (a->task)
        dapt_log(DAPT_LOG_INFO,
                 "prepare: %s: %lld examples, %d labels, %lld ids (%lld truncated), %.1f MB in %.2f s on %d ranks",
                 o->output, (long long)s.n_docs, s.n_labels, (long long)s.n_tokens, (long long)s.n_truncated,
                 (double)s.n_bytes / 1e6, dt, cli->size);
    else
        dapt_log(DAPT_LOG_INFO,
                 "prepare: %s: %lld documents, %lld tokens, %.1f MB in %.2f s (%.1f MB/s) on %d ranks "
                 "(scan %.2f s, tokenize %.2f s, write %.2f s)%s",
                 o->output, (long long)s.n_docs, (long long)s.n_tokens, (double)s.n_bytes / 1e6, dt,
                 dt > 0 ? (double)s.n_bytes / 1e6 / dt : 0.0, cli->size, s.t_scan, s.t_tokenize, s.t_write,
                 s.n_skipped ? " (some whitespace-only documents skipped)" : "");
    return DAPT_OK;
}

int dapt_cmd_prepare(int argc, char **argv)
{
    prep_args a = {.doc_sep = -1, .format = -1, .salient = {NULL, -1, -1}}; /* -1: not given */
    const dapt_cli_option opts[] = {
        {.name = "tokenizer", .kind = DAPT_OPT_CONFIG, .arg = "tokenizer.path"},
        {.name = "output", .short_name = 'o', .kind = DAPT_OPT_STRING, .dest = &a.o.output},
        {.name = "doc-sep", .kind = DAPT_OPT_CHOICE, .dest = &a.doc_sep, .arg = "line|blank"},
        {.name = "format", .kind = DAPT_OPT_CHOICE, .dest = &a.format, .arg = "tsv|jsonl"},
        {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &a.o.force},
        {.name = "task", .kind = DAPT_OPT_FLAG, .dest = &a.task},
        {.name = "regression", .kind = DAPT_OPT_FLAG, .dest = &a.o.regression},
        {.name = "salient-against", .kind = DAPT_OPT_STRING, .dest = &a.salient.general},
        {.name = "salient-top", .kind = DAPT_OPT_INT, .dest = &a.salient.top, .min = 1, .max = INT32_MAX},
        {.name = "salient-min-count", .kind = DAPT_OPT_INT, .dest = &a.salient.min_count, .min = 0, .max = INT64_MAX},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "prepare", .usage = usage, .options = opts, .max_args = -1, .run = run,
                                  .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
