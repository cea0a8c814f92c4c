/* Sequences from a prepared corpus, and the global sample order
 * (see dapt/batches.h). */
#include "dapt/batches.h"
#include "dapt/tokenizer.h"

#include <hdf5.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/rng.h"

typedef struct split_map {
    int64_t n_docs;
    int64_t *docs;   /* file document index of each document in the split */
    int64_t *wstart; /* [n_docs + 1] start of each wrapped document in the split's stream */
    int64_t n_seqs;
} split_map;

struct dapt_sequences {
    dapt_seq_spec spec;
    dapt_h5file file;
    int64_t n_docs_file, n_tokens, vocab;
    int64_t *offsets; /* [n_docs_file + 1] */
    split_map split[2];
    int nb, ne;       /* begin/end tokens per wrapped document (0 or 1) */
    /* scratch for reads */
    struct piece { int64_t start, len, dest; } *pieces;
    int64_t *run_start, *run_count; /* disjoint file runs of the pieces */
    size_t pieces_cap;
    int32_t *buf;
    size_t buf_cap;
};

static int64_t doc_len(const dapt_sequences *s, int64_t d) { return s->offsets[d + 1] - s->offsets[d]; }

static dapt_status build_split(dapt_sequences *s, split_map *m, const uint8_t *is_eval, int want)
{
    int64_t n = 0;
    for (int64_t d = 0; d < s->n_docs_file; d++)
        if (is_eval[d] == want && doc_len(s, d) > 0) n++;
    m->n_docs = n;
    DAPT_CHECK(dapt_alloc((void **)&m->docs, (size_t)(n ? n : 1) * sizeof *m->docs, "split document list"));
    DAPT_CHECK(dapt_alloc((void **)&m->wstart, (size_t)(n + 1) * sizeof *m->wstart, "split stream offsets"));
    int64_t k = 0, w = 0;
    for (int64_t d = 0; d < s->n_docs_file; d++) {
        if (is_eval[d] != want || doc_len(s, d) == 0) continue;
        m->docs[k] = d;
        m->wstart[k++] = w;
        w += doc_len(s, d) + s->nb + s->ne;
    }
    m->wstart[n] = w;
    m->n_seqs = s->spec.packing == DAPT_PACK_CONCAT ? w / s->spec.seq_len : n;
    return DAPT_OK;
}

dapt_status dapt_sequences_open(const char *path, const dapt_seq_spec *spec, dapt_sequences **out)
{
    *out = NULL;
    if (spec->seq_len < 2 + (spec->begin_id >= 0) + (spec->end_id >= 0))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "data.seq_len: %lld is too short", (long long)spec->seq_len);
    if (spec->packing == DAPT_PACK_DOCUMENT && spec->pad_id < 0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "data.packing = document needs a padding token, and the tokenizer has none");
    dapt_sequences *s = NULL;
    DAPT_CHECK(dapt_calloc((void **)&s, 1, sizeof *s, "corpus reader"));
    s->spec = *spec;
    s->nb = spec->begin_id >= 0;
    s->ne = spec->end_id >= 0;
    dapt_status st = DAPT_OK;
    uint8_t *is_eval = NULL;
    int ndim = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type type;
    DAPT_TRY(dapt_h5_open(MPI_COMM_SELF, path, &s->file));
    DAPT_TRY(dapt_h5_info(&s->file, DAPT_CORPUS_TOKENS, &ndim, dims, &type));
    if (ndim != 1 || type == DAPT_H5_F32 || type == DAPT_H5_F64)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: dataset %s: expected a 1-D integer array, found %d-D %s", path,
                   DAPT_CORPUS_TOKENS, ndim, dapt_h5_type_name(type));
    s->n_tokens = dims[0];
    DAPT_TRY(dapt_h5_read_all(&s->file, DAPT_CORPUS_OFFSETS, DAPT_H5_I64, (void **)&s->offsets, &ndim, dims));
    if (ndim != 1 || dims[0] < 1)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: dataset %s: expected a 1-D array of n_docs + 1 offsets", path,
                   DAPT_CORPUS_OFFSETS);
    s->n_docs_file = dims[0] - 1;
    if (s->offsets[0] != 0 || s->offsets[s->n_docs_file] != s->n_tokens)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s must run from 0 to the token count %lld (found %lld..%lld)", path,
                   DAPT_CORPUS_OFFSETS, (long long)s->n_tokens, (long long)s->offsets[0],
                   (long long)s->offsets[s->n_docs_file]);
    for (int64_t d = 0; d < s->n_docs_file; d++)
        if (s->offsets[d + 1] < s->offsets[d])
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s decreases at document %lld", path, DAPT_CORPUS_OFFSETS,
                       (long long)d);
    if (dapt_h5_attr_exists(&s->file, "/", "vocab_size"))
        DAPT_TRY(dapt_h5_attr_get_int64(&s->file, "/", "vocab_size", &s->vocab));

    DAPT_TRY(dapt_alloc((void **)&is_eval, (size_t)(s->n_docs_file ? s->n_docs_file : 1), "split flags"));
    const dapt_rng r = dapt_rng_make(spec->seed, DAPT_RNG_SPLIT, 0);
    for (int64_t d = 0; d < s->n_docs_file; d++)
        is_eval[d] = dapt_rng_uniform_double(&r, (uint64_t)d, 0) < spec->eval_fraction;
    DAPT_TRY(build_split(s, &s->split[DAPT_SPLIT_TRAIN], is_eval, 0));
    DAPT_TRY(build_split(s, &s->split[DAPT_SPLIT_EVAL], is_eval, 1));
    *out = s;
cleanup:
    free(is_eval);
    if (st != DAPT_OK) dapt_sequences_close(s);
    return st;
}

void dapt_sequences_close(dapt_sequences *s)
{
    if (!s) return;
    dapt_h5_close(&s->file);
    free(s->offsets);
    for (int i = 0; i < 2; i++) {
        free(s->split[i].docs);
        free(s->split[i].wstart);
    }
    free(s->pieces);
    free(s->run_start);
    free(s->run_count);
    free(s->buf);
    free(s);
}

int64_t dapt_sequences_seq_len(const dapt_sequences *s) { return s->spec.seq_len; }

int64_t dapt_sequences_count(const dapt_sequences *s, dapt_split split) { return s->split[split].n_seqs; }
int64_t dapt_sequences_docs(const dapt_sequences *s, dapt_split split) { return s->split[split].n_docs; }
int64_t dapt_sequences_file_tokens(const dapt_sequences *s) { return s->n_tokens; }
int64_t dapt_sequences_vocab(const dapt_sequences *s) { return s->vocab; }

const int64_t *dapt_sequences_split_docs(const dapt_sequences *s, dapt_split split, int64_t *n)
{
    *n = s->split[split].n_docs;
    return s->split[split].docs;
}

int64_t dapt_sequences_doc(const dapt_sequences *s, dapt_split split, int64_t k)
{
    const split_map *m = &s->split[split];
    if (k < 0 || k >= m->n_seqs) return -1;
    if (s->spec.packing == DAPT_PACK_DOCUMENT) return m->docs[k];
    int64_t v = k * s->spec.seq_len, lo = 0, hi = m->n_docs - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (m->wstart[mid] <= v) lo = mid;
        else hi = mid - 1;
    }
    return m->docs[lo];
}

static dapt_status add_piece(dapt_sequences *s, size_t *n, int64_t start, int64_t len, int64_t dest)
{
    if (len <= 0) return DAPT_OK;
    if (*n == s->pieces_cap) {
        size_t cap = s->pieces_cap ? 2 * s->pieces_cap : 256;
        void *p = realloc(s->pieces, cap * sizeof *s->pieces);
        if (!p) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for %zu read pieces", cap);
        s->pieces = p;
        int64_t *a = realloc(s->run_start, cap * sizeof *a);
        if (a) s->run_start = a;
        int64_t *b = a ? realloc(s->run_count, cap * sizeof *b) : NULL;
        if (b) s->run_count = b;
        if (!a || !b) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for %zu read pieces", cap);
        s->pieces_cap = cap;
    }
    s->pieces[(*n)++] = (struct piece){start, len, dest};
    return DAPT_OK;
}

/* Lays out sequence k: special ids written into ids directly, token ranges
 * recorded as pieces to read. */
static dapt_status plan_sequence(dapt_sequences *s, const split_map *m, int64_t k, int32_t *ids,
                                 int32_t *att, int64_t dest0, size_t *np)
{
    const int64_t L = s->spec.seq_len;
    for (int64_t i = 0; i < L; i++) att[i] = 1;
    if (s->spec.packing == DAPT_PACK_DOCUMENT) {
        int64_t d = m->docs[k], len = doc_len(s, d);
        int64_t keep = len < L - s->nb - s->ne ? len : L - s->nb - s->ne;
        int64_t p = 0;
        if (s->nb) ids[p++] = s->spec.begin_id;
        DAPT_CHECK(add_piece(s, np, s->offsets[d], keep, dest0 + p));
        p += keep;
        if (s->ne) ids[p++] = s->spec.end_id;
        for (; p < L; p++) {
            ids[p] = s->spec.pad_id;
            att[p] = 0;
        }
        return DAPT_OK;
    }
    /* concat: stream positions [kL, (k+1)L); find the first document. */
    int64_t v = k * L, lo = 0, hi = m->n_docs - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (m->wstart[mid] <= v) lo = mid;
        else hi = mid - 1;
    }
    int64_t p = 0;
    for (int64_t j = lo; p < L && j < m->n_docs; j++) {
        int64_t d = m->docs[j], len = doc_len(s, d);
        int64_t w = v + p - m->wstart[j]; /* position inside the wrapped document */
        if (s->nb && w == 0 && p < L) {
            ids[p++] = s->spec.begin_id;
            w++;
        }
        int64_t t = w - s->nb; /* token index inside the document */
        if (t < len && p < L) {
            int64_t take = len - t < L - p ? len - t : L - p;
            DAPT_CHECK(add_piece(s, np, s->offsets[d] + t, take, dest0 + p));
            p += take;
            t += take;
        }
        if (s->ne && t == len && p < L) ids[p++] = s->spec.end_id;
    }
    if (p != L)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "sequence %lld ends after %lld of %lld ids", (long long)k,
                          (long long)p, (long long)L);
    return DAPT_OK;
}

static int cmp_piece(const void *a, const void *b)
{
    const struct piece *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

dapt_status dapt_sequences_read(dapt_sequences *s, dapt_split split, const int64_t *idx, int64_t n,
                                int32_t *ids, int32_t *attention)
{
    const split_map *m = &s->split[split];
    const int64_t L = s->spec.seq_len;
    size_t np = 0;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= m->n_seqs)
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "sequence %lld outside [0, %lld)", (long long)idx[i],
                              (long long)m->n_seqs);
        DAPT_CHECK(plan_sequence(s, m, idx[i], ids + i * L, attention + i * L, i * L, &np));
    }
    if (np == 0) return DAPT_OK;
    /* Disjoint sorted file ranges (pieces may repeat when a batch holds a
     * sequence twice, across an epoch border): one union read. */
    qsort(s->pieces, np, sizeof *s->pieces, cmp_piece);
    size_t nr = 0;
    int64_t total = 0, run_start = s->pieces[0].start, run_end = run_start;
    for (size_t i = 0; i <= np; i++) {
        if (i < np && s->pieces[i].start <= run_end) {
            int64_t e = s->pieces[i].start + s->pieces[i].len;
            if (e > run_end) run_end = e;
            continue;
        }
        s->run_start[nr] = run_start;
        s->run_count[nr++] = run_end - run_start;
        total += run_end - run_start;
        if (i < np) run_start = s->pieces[i].start, run_end = run_start + s->pieces[i].len;
    }
    if ((size_t)total > s->buf_cap) {
        free(s->buf);
        s->buf = NULL;
        s->buf_cap = 0;
        DAPT_CHECK(dapt_alloc((void **)&s->buf, (size_t)total * sizeof *s->buf, "token read buffer"));
        s->buf_cap = (size_t)total;
    }
    DAPT_CHECK(dapt_h5_read_blocks(&s->file, DAPT_CORPUS_TOKENS, DAPT_H5_I32, nr, s->run_start, s->run_count, s->buf));
    /* Copy each piece from the union buffer (filled in file order). */
    int64_t base = 0; /* buffer index of the current run's start */
    run_start = s->pieces[0].start;
    run_end = run_start;
    for (size_t i = 0; i < np; i++) {
        const struct piece *q = &s->pieces[i];
        if (q->start > run_end) {
            base += run_end - run_start;
            run_start = q->start;
            run_end = q->start;
        }
        if (q->start + q->len > run_end) run_end = q->start + q->len;
        memcpy(ids + q->dest, s->buf + base + (q->start - run_start), (size_t)q->len * sizeof *ids);
    }
    if (s->vocab > 0)
        for (int64_t i = 0; i < n * L; i++)
            if (ids[i] < 0 || ids[i] >= s->vocab)
                return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: token id %d outside the declared vocabulary of %lld",
                                  s->file.path, (int)ids[i], (long long)s->vocab);
    return DAPT_OK;
}

dapt_status dapt_order_init(dapt_order *o, uint64_t seed, int64_t n)
{
    o->seed = seed;
    o->n = n;
    o->epoch = -1;
    o->perm = NULL;
    if (n <= 0) return DAPT_ERROR(DAPT_ERR_CONFIG, "no training sequences: the corpus is empty or too short for data.seq_len");
    return dapt_alloc((void **)&o->perm, (size_t)n * sizeof *o->perm, "epoch permutation");
}

void dapt_order_free(dapt_order *o)
{
    free(o->perm);
    o->perm = NULL;
}

int64_t dapt_order_at(dapt_order *o, uint64_t g, int64_t *epoch)
{
    int64_t e = (int64_t)(g / (uint64_t)o->n);
    if (e != o->epoch) {
        const dapt_rng r = dapt_rng_make(o->seed, DAPT_RNG_SHUFFLE, (uint64_t)e);
        dapt_rng_permutation(&r, 0, o->perm, (uint64_t)o->n);
        o->epoch = e;
    }
    if (epoch) *epoch = e;
    return (int64_t)o->perm[g % (uint64_t)o->n];
}

dapt_status dapt_sequences_check_tokenizer(const char *path, const char *whose, const dapt_tokenizer *tok)
{
    dapt_h5file cf;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_SELF, path, &cf));
    dapt_status st = DAPT_OK;
    if (dapt_h5_attr_exists(&cf, "/", "tokenizer_checksum")) {
        char *sum = NULL;
        st = dapt_h5_attr_get_string(&cf, "/", "tokenizer_checksum", &sum);
        if (st == DAPT_OK && strcmp(sum, dapt_tokenizer_checksum(tok)))
            st = DAPT_ERROR(DAPT_ERR_CONFIG, "%s was prepared with another tokenizer than %s (the file's checksum %.12s..., the tokenizer's %.12s...)",
                            path, whose, sum, dapt_tokenizer_checksum(tok));
        free(sum);
    }
    dapt_h5_close(&cf);
    return st;
}
