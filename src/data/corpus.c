/* dapt_prepare_corpus: raw text -> tokens + document offsets in HDF5.
 * Layout: docs/formats.md, "Prepared corpus". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dapt/corpus.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "data_internal.h"

/* A growable int64 array. */
typedef struct i64vec {
    int64_t *data;
    size_t len, cap;
} i64vec;

static dapt_status i64_push(i64vec *v, int64_t x)
{
    if (v->len == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 1024;
        int64_t *nd = realloc(v->data, ncap * sizeof *nd);
        if (!nd) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for %zu document offsets", ncap);
        v->data = nd;
        v->cap = ncap;
    }
    v->data[v->len++] = x;
    return DAPT_OK;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "sha256  bytes  path" per input (sha256sum-compatible), newline-ended. */
static dapt_status sources_text(const dapt_prepare_opts *o, const src_info *info, char **out)
{
    size_t cap = 1;
    for (size_t i = 0; i < o->n_inputs; i++) cap += strlen(o->inputs[i]) + 64 + 2 + 24 + 2 + 1;
    char *t = malloc(cap);
    if (!t) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing sources");
    size_t n = 0;
    for (size_t i = 0; i < o->n_inputs; i++)
        n += (size_t)snprintf(t + n, cap - n, "%s  %lld  %s\n", info[i].sha256, (long long)info[i].raw_size,
                              o->inputs[i]);
    t[n] = '\0';
    *out = t;
    return DAPT_OK;
}

dapt_status data_provenance_attrs(dapt_h5file *f, const dapt_prepare_opts *o, const src_info *info,
                                  const char *format)
{
    char *src = NULL;
    dapt_status st = DAPT_OK;
    size_t vocab = dapt_tokenizer_vocab_size(o->tok);
    int idb = dapt_corpus_id_bytes(vocab);
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "format", format));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "format_version", 1));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "tokenizer_path", o->tokenizer_path ? o->tokenizer_path : ""));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "tokenizer_identity", dapt_tokenizer_identity(o->tok)));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "tokenizer_checksum", dapt_tokenizer_checksum(o->tok)));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "vocab_size", (int64_t)vocab));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "token_dtype", idb == 1 ? "uint8" : idb == 2 ? "uint16" : "uint32"));
    DAPT_TRY(sources_text(o, info, &src));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "sources", src));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "n_sources", (int64_t)o->n_inputs));
cleanup:
    free(src);
    return st;
}

static dapt_status corpus_attrs(dapt_h5file *f, const dapt_prepare_opts *o, const src_info *info,
                                const int64_t tot[3], int64_t total_bytes)
{
    DAPT_CHECK(data_provenance_attrs(f, o, info, "dapt-corpus"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "doc_separator", o->doc_sep == DAPT_DOC_LINE ? "line" : "blank"));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", "n_docs", tot[1]));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", "n_tokens", tot[0]));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", "n_bytes", total_bytes));
    return dapt_h5_attr_set_int64(f, "/", "n_skipped", tot[2]);
}

dapt_status dapt_prepare_corpus(MPI_Comm comm, const dapt_prepare_opts *o, dapt_prepare_stats *stats)
{
    int rank = 0, size = 1;
    memset(stats, 0, sizeof *stats);
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    dapt_status st = DAPT_OK;
    src_info *info = NULL;
    int64_t *foff = NULL, *file_docs = NULL, *all_file_docs = NULL, *starts = NULL;
    int64_t *ch_tok = NULL, *ch_all = NULL, *loc0 = NULL, *blocks = NULL;
    dapt_ids toks = {0};
    i64vec ends = {0};
    dapt_tok_state *ts = NULL;
    src_part part = {0};
    dapt_h5file f = {.id = H5I_INVALID_HID};
    int file_open = 0;
    const size_t n = o->n_inputs;

    if (n == 0) return DAPT_ERROR(DAPT_ERR_ARG, "prepare: no input files");
    if (rank == 0 && !o->force) {
        struct stat sb;
        if (stat(o->output, &sb) == 0)
            st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", o->output);
    }
    DAPT_TRY(dapt_status_agree(comm, st));

    info = calloc(n, sizeof *info);
    foff = calloc(n + 1, sizeof *foff);
    file_docs = calloc(n, sizeof *file_docs);
    all_file_docs = calloc(n + 1, sizeof *all_file_docs);
    if (!info || !foff || !file_docs || !all_file_docs)
        DAPT_THROW(DAPT_ERR_NOMEM, "prepare: out of memory for %zu inputs", n);
    double t0 = MPI_Wtime(), c0 = cpu_seconds();
    DAPT_TRY(src_scan(comm, o->inputs, n, info));
    double t1 = MPI_Wtime(), c1 = cpu_seconds();
    stats->t_scan = t1 - t0;
    for (size_t i = 0; i < n; i++) foff[i + 1] = foff[i] + info[i].size;
    int64_t total_bytes = foff[n];
    const int64_t nch = data_chunks(total_bytes, size);
    const size_t mych = (size_t)((nch - rank + size - 1) / size); /* chunks rank, rank + size, ... */
    /* Per chunk (global arrays, summed over ranks): tokens and documents;
     * per owned chunk: where its tokens and document ends start locally. */
    DAPT_TRY(dapt_alloc((void **)&ch_tok, 2 * (size_t)nch * sizeof *ch_tok, "chunk counts"));
    DAPT_TRY(dapt_alloc((void **)&ch_all, 2 * (size_t)nch * sizeof *ch_all, "chunk counts"));
    DAPT_TRY(dapt_alloc((void **)&loc0, 2 * (mych ? mych : 1) * sizeof *loc0, "chunk offsets"));
    memset(ch_tok, 0, 2 * (size_t)nch * sizeof *ch_tok);
    int64_t *ch_doc = ch_tok + nch;

    /* Tokenize this rank's documents.  English text averages 4-5 bytes per
     * token: reserving bytes / 4 up front spares the copies of a doubling
     * array (it still grows if the text needs more). */
    int64_t my_bytes = 0;
    for (size_t k = 0; k < mych; k++) {
        int64_t gs, ge;
        data_rank_range(total_bytes, rank + (int)k * size, (int)nch, &gs, &ge);
        my_bytes += ge - gs;
    }
    DAPT_TRY(dapt_ids_reserve(&toks, (size_t)(my_bytes / 4) + 1));
    st = dapt_tok_state_new(o->tok, &ts);
    for (size_t k = 0; k < mych && st == DAPT_OK; k++) {
        const int64_t c = rank + (int64_t)k * size;
        int64_t gs, ge;
        data_rank_range(total_bytes, (int)c, (int)nch, &gs, &ge);
        loc0[2 * k] = (int64_t)toks.len;
        loc0[2 * k + 1] = (int64_t)ends.len;
        for (size_t i = 0; i < n && st == DAPT_OK; i++) {
            int64_t s = (gs > foff[i] ? gs : foff[i]) - foff[i];
            int64_t e = (ge < foff[i + 1] ? ge : foff[i + 1]) - foff[i];
            if (s >= e) continue;
            st = src_load(o->inputs[i], &info[i], o->doc_sep, s, e, &part);
            if (st != DAPT_OK) break;
            size_t bad = 0;
            const char *why = NULL;
            if (!src_check_text(part.text, part.len, &bad, &why)) {
                int64_t at = part.base + (int64_t)bad;
                st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s:%lld: %s at byte %lld", o->inputs[i],
                                (long long)src_line_of(o->inputs[i], at), why, (long long)at);
                break;
            }
            size_t pos = 0, len = 0;
            const char *doc = NULL;
            while (st == DAPT_OK && src_next_doc(&part, o->doc_sep, &pos, &doc, &len)) {
                size_t before = toks.len;
                st = dapt_tokenizer_encode(o->tok, ts, doc, len, &toks);
                if (st != DAPT_OK) {
                    int64_t at = part.base + (doc - part.text);
                    char why2[600];
                    snprintf(why2, sizeof why2, "%s", dapt_error_message());
                    st = DAPT_ERROR(st, "%s:%lld: cannot tokenize: %s", o->inputs[i],
                                    (long long)src_line_of(o->inputs[i], at), why2);
                } else if (toks.len == before) {
                    stats->n_skipped++;
                } else {
                    st = i64_push(&ends, (int64_t)toks.len);
                    file_docs[i]++;
                }
            }
            src_part_free(&part);
        }
        ch_tok[c] = (int64_t)toks.len - loc0[2 * k];
        ch_doc[c] = (int64_t)ends.len - loc0[2 * k + 1];
    }
    /* CPU seconds beside wall seconds: on a shared machine they tell the
     * work of each rank apart from the time it waited for a core. */
    dapt_log(DAPT_LOG_DEBUG,
             "prepare: this rank tokenized %lld bytes in %zu of %lld ranges into %zu tokens in %.3f s "
             "(%.3f CPU s; scan %.3f CPU s)",
             (long long)my_bytes, mych, (long long)nch, toks.len, MPI_Wtime() - t1, cpu_seconds() - c1, c1 - c0);
    DAPT_TRY(dapt_status_agree(comm, st));
    double t2 = MPI_Wtime();
    stats->t_tokenize = t2 - t1;

    /* Global positions: each chunk's first token and document. */
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(ch_tok, ch_all, (int)(2 * nch), MPI_INT64_T, MPI_SUM, comm)));
    int64_t tot[3] = {0, 0, 0};
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(&stats->n_skipped, &tot[2], 1, MPI_INT64_T, MPI_SUM, comm)));
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(file_docs, all_file_docs + 1, (int)n, MPI_INT64_T, MPI_SUM, comm)));
    all_file_docs[0] = 0;
    for (size_t i = 0; i < n; i++) all_file_docs[i + 1] += all_file_docs[i];
    /* ch_tok/ch_doc become the global start of each chunk. */
    for (int64_t c = 0; c < nch; c++) {
        ch_tok[c] = tot[0];
        ch_doc[c] = tot[1];
        tot[0] += ch_all[c];
        tot[1] += ch_all[nch + c];
    }
    stats->n_tokens = tot[0];
    stats->n_docs = tot[1];
    stats->n_skipped = tot[2];
    stats->n_bytes = total_bytes;
    if (tot[1] == 0)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s%s: no document has any token (empty or whitespace-only input)",
                   o->inputs[0], n > 1 ? " ..." : "");

    /* Document start offsets, chunk by chunk; the owner of the last chunk
     * also writes the final total. */
    const int last_owner = (int)((nch - 1) % size);
    size_t nloc = ends.len + (rank == last_owner ? 1 : 0);
    DAPT_TRY(dapt_alloc((void **)&starts, (nloc ? nloc : 1) * sizeof *starts, "document offsets"));
    DAPT_TRY(dapt_alloc((void **)&blocks, 4 * (mych ? mych : 1) * sizeof *blocks, "write blocks"));
    int64_t *tok_start = blocks, *tok_count = blocks + mych, *doc_start = blocks + 2 * mych,
            *doc_count = blocks + 3 * mych;
    for (size_t k = 0; k < mych; k++) {
        const int64_t c = rank + (int64_t)k * size, t0k = loc0[2 * k], d0k = loc0[2 * k + 1];
        tok_start[k] = ch_tok[c];
        tok_count[k] = ch_all[c];
        doc_start[k] = ch_doc[c];
        doc_count[k] = ch_all[nch + c];
        for (int64_t j = d0k; j < d0k + doc_count[k]; j++)
            starts[j] = ch_tok[c] + (j > d0k ? ends.data[j - 1] - t0k : 0);
        if (c == nch - 1) {
            starts[d0k + doc_count[k]] = tot[0];
            doc_count[k]++;
        }
    }

    DAPT_TRY(dapt_h5_create(comm, o->output, o->force, o->cfg, &f));
    file_open = 1;
    st = corpus_attrs(&f, o, info, tot, total_bytes);
    DAPT_TRY(dapt_status_agree(comm, st));

    int idb = dapt_corpus_id_bytes(dapt_tokenizer_vocab_size(o->tok));
    st = data_write_id_blocks(&f, "tokens", idb, tot[0], mych, tok_start, tok_count, toks.data);
    DAPT_TRY(dapt_status_agree(comm, st));
    st = dapt_h5_write_blocks(&f, "doc_offsets", DAPT_H5_I64, tot[1] + 1, mych, doc_start, doc_count, starts,
                              DAPT_H5_INDEPENDENT);
    DAPT_TRY(dapt_status_agree(comm, st));
    int64_t sdims = (int64_t)n + 1;
    st = dapt_h5_write_all(&f, "source_doc_offsets", DAPT_H5_I64, 1, &sdims, all_file_docs);
    DAPT_TRY(dapt_status_agree(comm, st));
    file_open = 0;
    DAPT_TRY(dapt_h5_commit(&f));
    stats->t_write = MPI_Wtime() - t2;

cleanup:
    if (file_open) dapt_h5_abort(&f);
    src_part_free(&part);
    dapt_tok_state_free(ts);
    dapt_ids_free(&toks);
    free(ends.data);
    free(starts);
    free(info);
    free(foff);
    free(file_docs);
    free(all_file_docs);
    free(ch_tok);
    free(ch_all);
    free(loc0);
    free(blocks);
    return st;
}
