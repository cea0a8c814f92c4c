/* Tokenizer throughput: encodes every line of a UTF-8 file (no special
 * tokens, one reused state = one core) and prints MB/s and tokens/s per
 * second of CPU time of this process (so that a shared, oversubscribed
 * machine does not count other jobs' time slices), and wall-clock MB/s.
 *   bench_tokenize TOKENIZER_PATH TEXT_FILE [REPEATS]
 * Best of REPEATS (default 5) passes; the first pass also warms the BPE
 * cache, as a long `dapt prepare` run would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dapt/tokenizer.h"

static double clock_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_PATH TEXT_FILE [REPEATS]\n", argv[0]);
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: read error\n", argv[2]);
        return 1;
    }
    fclose(f);
    dapt_tokenizer *tok = NULL;
    dapt_tok_state *st = NULL;
    if (dapt_tokenizer_load(argv[1], &tok) || dapt_tok_state_new(tok, &st)) {
        fprintf(stderr, "%s\n", dapt_error_message());
        return 1;
    }
    dapt_ids ids = {0};
    double best = 1e30, best_wall = 1e30;
    size_t ntok = 0;
    for (int r = 0; r < repeats; r++) {
        ntok = 0;
        double t0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC);
        for (long i = 0; i < size;) {
            char *nl = memchr(text + i, '\n', (size_t)(size - i));
            long e = nl ? nl - text : size;
            ids.len = 0;
            if (dapt_tokenizer_encode(tok, st, text + i, (size_t)(e - i), &ids)) {
                fprintf(stderr, "%s\n", dapt_error_message());
                return 1;
            }
            ntok += ids.len;
            i = e + 1;
        }
        double dt = clock_s(CLOCK_PROCESS_CPUTIME_ID) - t0, dw = clock_s(CLOCK_MONOTONIC) - w0;
        if (dt < best) best = dt;
        if (dw < best_wall) best_wall = dw;
    }
    printf("dapt %s\t%.1f MB/s cpu\t%.1f MB/s wall\t%.2f Mtokens/s cpu\t%zu tokens\t%.2f MB\n",
           dapt_tokenizer_kind_of(tok) == DAPT_TOK_WORDPIECE ? "wordpiece" : "bpe", (double)size / best / 1e6,
           (double)size / best_wall / 1e6, (double)ntok / best / 1e6, ntok, (double)size / 1e6);
    dapt_ids_free(&ids);
    dapt_tok_state_free(st);
    dapt_tokenizer_free(tok);
    free(text);
    return 0;
}
