/* dapt tokenize: UTF-8 lines on stdin -> one line of ids per input line.
 *
 * For users and scripts to see what the model sees.  Runs on rank 0 only
 * (the other ranks wait for its verdict).  A line with invalid UTF-8 stops the
 * command with an error naming the line: silently replacing bytes would
 * show ids the model never sees for that input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/cli.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt tokenize --tokenizer PATH [--no-special] [--pair] [--max-length N]\n"
           "                     [--truncation longest_first|only_first|only_second] [--pad] [--type-ids]\n\n"
           "Reads UTF-8 lines on standard input and writes one line of space-separated ids per\n"
           "input line.  PATH is a tokenizer.json, a vocab.txt, or a model directory holding one\n"
           "of those or vocab.json + merges.txt.\n"
           "  --no-special   no [CLS]/[SEP] or <s>/</s> template\n"
           "  --pair         each line holds two texts separated by a tab\n"
           "  --max-length N truncate (default longest_first) to N ids including special tokens\n"
           "  --pad          pad to --max-length with the pad token\n"
           "  --type-ids     after the ids, a tab and the token_type_ids\n"
           "Lines end at \\n; a \\r before it is dropped.  Invalid UTF-8 is an error naming the line.\n\n");
    dapt_cli_print_common_help();
}

static void put_ids(FILE *f, const int32_t *ids, size_t n)
{
    char buf[16];
    for (size_t i = 0; i < n; i++) {
        int k = 0;
        uint32_t v = (uint32_t)ids[i];
        if (ids[i] < 0) { fputc('-', f); v = (uint32_t)(-(int64_t)ids[i]); }
        do { buf[k++] = (char)('0' + v % 10); v /= 10; } while (v);
        if (i) fputc(' ', f);
        while (k) fputc(buf[--k], f);
    }
}

static dapt_status run(const char *path, int special, int pair, const dapt_encode_opts *o, int type_ids)
{
    dapt_tokenizer *tok = NULL;
    dapt_tok_state *ts = NULL;
    dapt_encoding enc = {0};
    char *line = NULL;
    size_t cap = 0;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_tokenizer_load(path, &tok));
    DAPT_TRY(dapt_tok_state_new(tok, &ts));
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    dapt_encode_opts opts = *o;
    opts.add_special = special;
    for (size_t lineno = 1;; lineno++) {
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        const char *b = NULL;
        size_t alen = len, blen = 0;
        if (pair) {
            char *tab = memchr(line, '\t', len);
            if (!tab) DAPT_THROW(DAPT_ERR_FORMAT, "stdin line %zu: --pair needs two texts separated by a tab", lineno);
            alen = (size_t)(tab - line);
            b = tab + 1;
            blen = len - alen - 1;
        }
        st = dapt_tokenizer_encode_full(tok, ts, line, alen, b, blen, &opts, &enc);
        if (st != DAPT_OK) {
            char why[512];
            const char *m = dapt_error_message(), *u = strstr(m, "invalid UTF-8");
            snprintf(why, sizeof why, "%s", u ? u : m);
            DAPT_THROW(st, "stdin line %zu: %s", lineno, why);
        }
        put_ids(stdout, enc.ids.data, enc.ids.len);
        if (type_ids) {
            fputc('\t', stdout);
            put_ids(stdout, enc.type_ids.data, enc.type_ids.len);
        }
        fputc('\n', stdout);
    }
    if (ferror(stdin)) DAPT_THROW(DAPT_ERR_IO, "stdin: read error");
    if (fflush(stdout) != 0 || ferror(stdout)) DAPT_THROW(DAPT_ERR_IO, "stdout: write error");
cleanup:
    fflush(stdout);
    free(line);
    dapt_encoding_free(&enc);
    dapt_tok_state_free(ts);
    dapt_tokenizer_free(tok);
    return st;
}

typedef struct tok_args {
    const char *path;
    int no_special, pair, pad, type_ids, truncation; /* truncation: -1, or a choice of --truncation */
    int64_t max_length;
} tok_args;

/* Runs on rank 0. */
static dapt_status run_tokenize(dapt_cli *cli, void *ctx)
{
    (void)cli;
    const tok_args *a = ctx;
    if (!a->path) return DAPT_ERROR(DAPT_ERR_ARG, "dapt tokenize: --tokenizer PATH is required");
    if (a->pad && !a->max_length) return DAPT_ERROR(DAPT_ERR_ARG, "dapt tokenize: --pad needs --max-length");
    dapt_encode_opts o = {0};
    o.max_length = (size_t)a->max_length;
    o.pad_to_max_length = a->pad;
    /* DAPT_TRUNC_* in the order of the --truncation choices, after NONE. */
    if (a->truncation >= 0) o.truncation = (dapt_truncation)(DAPT_TRUNC_LONGEST_FIRST + a->truncation);
    else if (a->max_length) o.truncation = DAPT_TRUNC_LONGEST_FIRST;
    return run(a->path, !a->no_special, a->pair, &o, a->type_ids);
}

int dapt_cmd_tokenize(int argc, char **argv)
{
    tok_args a = {.truncation = -1};
    const dapt_cli_option opts[] = {
        {.name = "tokenizer", .kind = DAPT_OPT_STRING, .dest = &a.path},
        {.name = "no-special", .kind = DAPT_OPT_FLAG, .dest = &a.no_special},
        {.name = "pair", .kind = DAPT_OPT_FLAG, .dest = &a.pair},
        {.name = "max-length", .kind = DAPT_OPT_INT, .dest = &a.max_length, .min = 1, .max = INT64_MAX},
        {.name = "truncation", .kind = DAPT_OPT_CHOICE, .dest = &a.truncation, .arg = "longest_first|only_first|only_second"},
        {.name = "pad", .kind = DAPT_OPT_FLAG, .dest = &a.pad},
        {.name = "type-ids", .kind = DAPT_OPT_FLAG, .dest = &a.type_ids},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "tokenize", .usage = usage, .options = opts, .max_args = 0, .rank0 = 1,
                                  .run = run_tokenize, .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
