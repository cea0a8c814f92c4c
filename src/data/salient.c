/* Domain-salient tokens: counts of two prepared corpora, the guide set, and
 * the /salient group of the domain corpus (dapt/corpus.h, docs/formats.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/batches.h"
#include "dapt/corpus.h"
#include "dapt/h5io.h"
#include "dapt/share.h"

/* Ids read per call while counting: bounds the memory on a large corpus. */
#define COUNT_CHUNK ((int64_t)1 << 20)

/* This rank's share of the ids of an open corpus file into counts. */
static dapt_status count_share(const dapt_h5file *f, int rank, int size, int64_t vocab, int64_t *counts)
{
    int ndim = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type type;
    DAPT_CHECK(dapt_h5_info(f, DAPT_CORPUS_TOKENS, &ndim, dims, &type));
    if (ndim != 1) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: /tokens is not one-dimensional", f->path);
    int64_t first = 0, count = 0;
    dapt_share(dims[0], rank, size, &first, &count);
    uint32_t *buf = NULL;
    DAPT_CHECK(dapt_alloc((void **)&buf, (size_t)COUNT_CHUNK * sizeof *buf, "token counts"));
    dapt_status st = DAPT_OK;
    for (int64_t at = first; at < first + count && st == DAPT_OK; at += COUNT_CHUNK) {
        const int64_t n = first + count - at < COUNT_CHUNK ? first + count - at : COUNT_CHUNK;
        st = dapt_h5_read_blocks(f, DAPT_CORPUS_TOKENS, DAPT_H5_U32, 1, &at, &n, buf);
        for (int64_t i = 0; i < n && st == DAPT_OK; i++) {
            if ((int64_t)buf[i] >= vocab)
                st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: token %lld is id %u, outside the vocabulary of %lld ids", f->path,
                                (long long)(at + i), buf[i], (long long)vocab);
            else
                counts[buf[i]]++;
        }
    }
    free(buf);
    return st;
}

dapt_status dapt_corpus_token_counts(MPI_Comm comm, const char *path, int64_t vocab, int64_t *counts)
{
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    memset(counts, 0, (size_t)vocab * sizeof *counts);
    dapt_h5file f;
    dapt_status st = dapt_h5_open(MPI_COMM_SELF, path, &f);
    if (st == DAPT_OK) {
        st = count_share(&f, rank, size, vocab, counts);
        dapt_h5_close(&f);
    }
    DAPT_CHECK(dapt_status_agree(comm, st));
    return DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, counts, (int)vocab, MPI_INT64_T, MPI_SUM, comm));
}

typedef struct candidate {
    int32_t id;
    int64_t num, den; /* c_d + 1, c_g + 1 */
} candidate;

/* Larger (c_d + 1) / (c_g + 1) first, exactly; ties to the smaller id. */
static int by_salience(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    const __int128 l = (__int128)a->num * b->den, r = (__int128)b->num * a->den;
    if (l != r) return l > r ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int listed(const int32_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

dapt_status dapt_salient_select(const int64_t *dom, const int64_t *gen, int64_t vocab, const int32_t *special,
                                size_t n_special, const dapt_salient_opts *o, int32_t *ids, double *log_ratio,
                                int64_t *n)
{
    int64_t Nd = 0, Ng = 0;
    for (int64_t t = 0; t < vocab; t++) {
        Nd += dom[t];
        Ng += gen[t];
    }
    const int64_t zd = Nd + vocab, zg = Ng + vocab; /* the smoothed totals */
    candidate *c = NULL;
    DAPT_CHECK(dapt_alloc((void **)&c, (size_t)(vocab > 0 ? vocab : 1) * sizeof *c, "salient candidates"));
    int64_t m = 0;
    for (int64_t t = 0; t < vocab; t++) {
        if (dom[t] < o->min_count || listed(special, n_special, t)) continue;
        /* r > 1  <=>  (c_d + 1) * (N_g + V) > (c_g + 1) * (N_d + V) */
        if (!((__int128)(dom[t] + 1) * zg > (__int128)(gen[t] + 1) * zd)) continue;
        c[m++] = (candidate){(int32_t)t, dom[t] + 1, gen[t] + 1};
    }
    qsort(c, (size_t)m, sizeof *c, by_salience);
    if (m > o->top) m = o->top;
    for (int64_t i = 0; i < m; i++) {
        ids[i] = c[i].id;
        log_ratio[i] = log((double)c[i].num) - log((double)zd) - log((double)c[i].den) + log((double)zg);
    }
    *n = m;
    free(c);
    return DAPT_OK;
}

/* The datasets and attributes of /salient into an open writable file. */
static dapt_status put_salient(dapt_h5file *f, const dapt_salient_opts *o, int64_t vocab, const int64_t *dom,
                               const int64_t *gen, const int32_t *ids, const double *log_ratio, int64_t n)
{
    const char *g = DAPT_SALIENT_GROUP;
    const int64_t dv[1] = {vocab}, dn[1] = {n};
    int64_t Nd = 0, Ng = 0;
    for (int64_t t = 0; t < vocab; t++) {
        Nd += dom[t];
        Ng += gen[t];
    }
    DAPT_CHECK(dapt_h5_group(f, g));
    DAPT_CHECK(dapt_h5_write_all(f, "salient/domain_counts", DAPT_H5_I64, 1, dv, dom));
    DAPT_CHECK(dapt_h5_write_all(f, "salient/general_counts", DAPT_H5_I64, 1, dv, gen));
    DAPT_CHECK(dapt_h5_write_all(f, "salient/ids", DAPT_H5_I32, 1, dn, ids));
    DAPT_CHECK(dapt_h5_write_all(f, "salient/log_ratio", DAPT_H5_F64, 1, dn, log_ratio));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "salient/domain_counts", "description",
                                       "occurrences of each token id in /tokens of this file"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "salient/general_counts", "description",
                                       "occurrences of each token id in /tokens of the general corpus"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "salient/ids", "description",
                                       "the guide set of emlm: domain-salient token ids, most salient first"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "salient/log_ratio", "description",
                                       "natural log of ((c_d + 1) / (N_d + V)) / ((c_g + 1) / (N_g + V)) of each id"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, g, "description",
                                       "domain-salient tokens against a general corpus (docs/algorithms.md, emlm)"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, g, "general_corpus", o->general));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "vocab_size", vocab));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "top", o->top));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "min_count", o->min_count));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, g, "n_domain_tokens", Nd));
    return dapt_h5_attr_set_int64(f, g, "n_general_tokens", Ng);
}

/* Rank 0 alone: /salient into the finished corpus file at path.  h5io opens
 * files read-only or creates them, so the file is opened here read-write
 * with its driver and bounds and then handed to h5io's writers. */
static dapt_status write_salient(const char *path, const dapt_salient_opts *o, int64_t vocab, const int64_t *dom,
                                 const int64_t *gen, const int32_t *ids, const double *log_ratio, int64_t n)
{
    dapt_h5file f;
    memset(&f, 0, sizeof f);
    if ((size_t)snprintf(f.path, sizeof f.path, "%s", path) >= sizeof f.path)
        return DAPT_ERROR(DAPT_ERR_ARG, "path too long: %.80s...", path);
    f.comm = MPI_COMM_SELF;
    f.writable = 1;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return DAPT_ERROR(DAPT_ERR_HDF5, "%s: cannot make file access properties", path);
    if (H5Pset_fapl_mpio(fapl, MPI_COMM_SELF, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        H5Pclose(fapl);
        return DAPT_ERROR(DAPT_ERR_HDF5, "%s: cannot set the MPI-IO driver", path);
    }
    f.id = H5Fopen(path, H5F_ACC_RDWR, fapl);
    const herr_t pc = H5Pclose(fapl);
    if (f.id < 0) return DAPT_ERROR(DAPT_ERR_HDF5, "%s: cannot open for writing the salient tokens", path);
    dapt_status st = pc < 0 ? DAPT_ERROR(DAPT_ERR_HDF5, "%s: H5Pclose failed", path) : DAPT_OK;
    if (st == DAPT_OK) st = put_salient(&f, o, vocab, dom, gen, ids, log_ratio, n);
    /* Sealed as dapt_h5_commit seals the rest of the file. */
    static const char *const sealed[] = {"salient/domain_counts", "salient/general_counts", "salient/ids",
                                         "salient/log_ratio"};
    for (size_t i = 0; st == DAPT_OK && i < sizeof sealed / sizeof *sealed; i++) st = dapt_h5_seal(&f, sealed[i]);
    if (H5Fclose(f.id) < 0 && st == DAPT_OK) st = DAPT_ERROR(DAPT_ERR_HDF5, "%s: closing after the salient tokens", path);
    return st;
}

dapt_status dapt_corpus_add_salient(MPI_Comm comm, const char *path, const dapt_tokenizer *tok,
                                    const dapt_salient_opts *opts)
{
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    /* The general corpus must share the ids (every rank reads the attribute). */
    DAPT_CHECK(dapt_status_agree(comm, dapt_sequences_check_tokenizer(opts->general, "this run's", tok)));
    const int64_t V = (int64_t)dapt_tokenizer_vocab_size(tok);
    const dapt_special_ids sp = dapt_tokenizer_specials(tok);
    const int32_t special[] = {sp.cls, sp.sep, sp.pad, sp.mask, sp.unk, sp.bos, sp.eos};
    int64_t *dom = NULL, *gen = NULL, n = 0;
    int32_t *ids = NULL;
    double *lr = NULL;
    dapt_status st = dapt_calloc((void **)&dom, (size_t)V, sizeof *dom, "domain counts");
    if (st == DAPT_OK) st = dapt_calloc((void **)&gen, (size_t)V, sizeof *gen, "general counts");
    if (st == DAPT_OK) st = dapt_calloc((void **)&ids, (size_t)V, sizeof *ids, "salient ids");
    if (st == DAPT_OK) st = dapt_calloc((void **)&lr, (size_t)V, sizeof *lr, "salient ratios");
    st = dapt_status_agree(comm, st);
    if (st == DAPT_OK) st = dapt_corpus_token_counts(comm, path, V, dom);
    if (st == DAPT_OK) st = dapt_corpus_token_counts(comm, opts->general, V, gen);
    /* Every rank selects the same set from the same sums; rank 0 writes it. */
    if (st == DAPT_OK) st = dapt_salient_select(dom, gen, V, special, sizeof special / sizeof *special, opts, ids, lr, &n);
    if (st == DAPT_OK && rank == 0) st = write_salient(path, opts, V, dom, gen, ids, lr, n);
    free(dom);
    free(gen);
    free(ids);
    free(lr);
    return dapt_status_agree(comm, st);
}

dapt_status dapt_corpus_read_guide(const char *path, int64_t vocab, uint8_t *guide, int64_t *n)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_SELF, path, &f));
    dapt_status st = DAPT_OK;
    int64_t made_for = 0, count = 0, dims[DAPT_H5_MAX_DIMS];
    int32_t *ids = NULL;
    int ndim = 0;
    if (!dapt_h5_exists(&f, "salient/ids"))
        DAPT_THROW(DAPT_ERR_CONFIG, "%s has no salient tokens (/salient): prepare it with dapt prepare --salient-against GENERAL.h5",
                   path);
    DAPT_TRY(dapt_h5_attr_get_int64(&f, DAPT_SALIENT_GROUP, "vocab_size", &made_for));
    if (made_for != vocab)
        DAPT_THROW(DAPT_ERR_CONFIG, "%s: its salient tokens are over a vocabulary of %lld ids, the tokenizer has %lld",
                   path, (long long)made_for, (long long)vocab);
    DAPT_TRY(dapt_h5_read_all(&f, "salient/ids", DAPT_H5_I32, (void **)&ids, &ndim, dims));
    if (ndim != 1) DAPT_THROW(DAPT_ERR_FORMAT, "%s: /salient/ids is not one-dimensional", path);
    count = dims[0];
    memset(guide, 0, (size_t)vocab);
    for (int64_t i = 0; i < count; i++) {
        if (ids[i] < 0 || ids[i] >= vocab)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: /salient/ids holds id %d, outside the vocabulary", path, (int)ids[i]);
        guide[ids[i]] = 1;
    }
    *n = count;
cleanup:
    free(ids);
    dapt_h5_close(&f);
    return st;
}
