/* Helpers shared by the tokenizer tests: fixture files (gzip), vocabulary
 * directory, id-line parsing. */
#ifndef DAPT_TESTS_TOK_FIXTURE_H
#define DAPT_TESTS_TOK_FIXTURE_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dapt/tokenizer.h"
#include "harness.h"

/* The shared vocabularies (bert-base-uncased, gpt2, roberta-base as the hub
 * ships them; not in the repository): $DAPT_VOCAB_DIR, else
 * $top_srcdir/../shared/vocab.  A missing directory fails the tests with
 * the path in the message. */
static inline const char *tf_vocab(const char *model)
{
    static char buf[4][4096];
    static int next = 0;
    char *out = buf[next++ % 4];
    const char *env = getenv("DAPT_VOCAB_DIR");
    if (env && *env) snprintf(out, sizeof buf[0], "%s/%s", env, model);
    else snprintf(out, sizeof buf[0], "%s", dapt_test_path(""));
    if (!(env && *env)) {
        size_t n = strlen(out);
        snprintf(out + n, sizeof buf[0] - n, "../shared/vocab/%s", model);
    }
    return out;
}

/* Reads a gzip (or plain) text file into lines; returns the count. */
static inline size_t tf_read_lines(const char *path, char ***lines_out)
{
    gzFile f = gzopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        *lines_out = NULL;
        return 0;
    }
    size_t n = 0, cap = 1024, len = 0, bcap = 1 << 16;
    char **lines = malloc(cap * sizeof *lines);
    char *buf = malloc(bcap);
    int c;
    while ((c = gzgetc(f)) != -1) {
        if (len + 1 >= bcap) buf = realloc(buf, bcap *= 2);
        if (c != '\n') {
            buf[len++] = (char)c;
            continue;
        }
        buf[len] = '\0';
        if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[n++] = strdup(buf);
        len = 0;
    }
    if (len) {
        buf[len] = '\0';
        if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[n++] = strdup(buf);
    }
    free(buf);
    gzclose(f);
    *lines_out = lines;
    return n;
}

static inline void tf_free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* Parses space-separated ids from s up to a tab or the end. */
static inline void tf_parse_ids(const char *s, dapt_ids *out)
{
    out->len = 0;
    while (*s && *s != '\t') {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        dapt_ids_push(out, (int32_t)v);
        s = end;
        while (*s == ' ') s++;
    }
}

/* A JSON string line -> malloc'd bytes (may contain NUL) and length. */
static inline char *tf_json_text(const char *line, size_t *len)
{
    json_error_t err;
    *len = 0;
    json_t *j = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!j || !json_is_string(j)) {
        json_decref(j);
        return NULL;
    }
    *len = json_string_length(j);
    char *s = malloc(*len + 1);
    memcpy(s, json_string_value(j), *len + 1);
    json_decref(j);
    return s;
}

static inline void tf_print_ids(FILE *f, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%d", i ? " " : "", (int)ids[i]);
}

#endif
