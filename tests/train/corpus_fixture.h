/* A small synthetic corpus and WordPiece vocabulary for the loop tests.
 *
 * vocab.txt: [PAD] [UNK] [CLS] [SEP] [MASK] then 59 words (ids 5..63).
 * corpus.h5: the prepared-corpus layout (docs/formats.md): uint16 "tokens",
 * int64 "doc_offsets", root attribute vocab_size.  Document d is an
 * arithmetic progression mod 59 over the word ids with a start, stride and
 * length drawn from dapt_rng (seed, DAPT_RNG_TEST, 0, d, .), so an MLM can
 * learn it from the neighbours of a masked token; lengths 0..69 (some empty
 * documents on purpose). */
#ifndef DAPT_TESTS_LOOP_CORPUS_FIXTURE_H
#define DAPT_TESTS_LOOP_CORPUS_FIXTURE_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/h5io.h"
#include "dapt/rng.h"

#define FIXTURE_VOCAB 64
#define FIXTURE_WORDS 59

static inline int fixture_write_vocab(const char *path)
{
    FILE *fp = fopen(path, "w");
    if (!fp) return -1;
    fprintf(fp, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n");
    for (int i = 0; i < FIXTURE_WORDS; i++) fprintf(fp, "w%02d\n", i);
    return fclose(fp);
}

static inline int64_t fixture_doc_len(uint64_t seed, int64_t d)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_TEST, 0);
    int64_t len = (int64_t)dapt_rng_below(&r, (uint64_t)d, 0, 70);
    return len < 3 && len > 0 ? 0 : len; /* a few empty documents */
}

static inline int32_t fixture_token(uint64_t seed, int64_t d, int64_t i)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_TEST, 0);
    int64_t a = (int64_t)dapt_rng_below(&r, (uint64_t)d, 1, FIXTURE_WORDS);
    int64_t k = 1 + (int64_t)dapt_rng_below(&r, (uint64_t)d, 2, 4);
    return (int32_t)(5 + (a + i * k) % FIXTURE_WORDS);
}

/* Writes the corpus with n_docs documents (collective over comm). */
static inline dapt_status fixture_write_corpus(MPI_Comm comm, const char *path, int64_t n_docs, uint64_t seed)
{
    int64_t *off = malloc((size_t)(n_docs + 1) * sizeof *off);
    if (!off) return DAPT_ERR_NOMEM;
    off[0] = 0;
    for (int64_t d = 0; d < n_docs; d++) off[d + 1] = off[d] + fixture_doc_len(seed, d);
    uint16_t *tok = malloc((size_t)(off[n_docs] + 1) * sizeof *tok);
    if (!tok) {
        free(off);
        return DAPT_ERR_NOMEM;
    }
    for (int64_t d = 0; d < n_docs; d++)
        for (int64_t i = 0; i < off[d + 1] - off[d]; i++) tok[off[d] + i] = (uint16_t)fixture_token(seed, d, i);
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    dapt_h5file f;
    dapt_status st = dapt_h5_create(comm, path, 1, &cfg, &f);
    if (st == DAPT_OK) {
        int64_t nt = off[n_docs], no = n_docs + 1;
        st = dapt_h5_write_all(&f, "tokens", DAPT_H5_U16, 1, &nt, tok);
        if (st == DAPT_OK) st = dapt_h5_write_all(&f, "doc_offsets", DAPT_H5_I64, 1, &no, off);
        if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "vocab_size", FIXTURE_VOCAB);
        if (st == DAPT_OK) st = dapt_h5_commit(&f);
        else dapt_h5_abort(&f);
    }
    free(off);
    free(tok);
    return st;
}

#endif
