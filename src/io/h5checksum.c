/* Chunk checksums of the datasets dapt writes (see dapt/h5io.h,
 * "checksums"): corpora, task files and every other output get the
 * integrity checkpoints already had, verified by the readers. */
#include "dapt/h5io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/crc32.h"

enum { MAX_CHUNKS = 4096 };
static const int64_t MIN_CHUNK_BYTES = (int64_t)4 << 20;

typedef struct chunking {
    int ndim;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type type;
    int64_t rows;          /* dims[0] */
    int64_t row_bytes;     /* bytes of one row (native) */
    int64_t rows_per_chunk; /* 0: nothing to seal */
    int64_t nchunks;
} chunking;

/* The shape and, for a non-empty array, the chunking the sealer uses. */
static dapt_status chunking_of(const dapt_h5file *f, const char *name, chunking *c)
{
    memset(c, 0, sizeof *c);
    DAPT_CHECK(dapt_h5_info(f, name, &c->ndim, c->dims, &c->type));
    if (c->ndim == 0) return DAPT_OK;
    int64_t row = (int64_t)dapt_h5_type_size(c->type);
    for (int d = 1; d < c->ndim; d++) row *= c->dims[d];
    c->rows = c->dims[0];
    c->row_bytes = row;
    if (c->rows == 0 || row == 0) return DAPT_OK;
    int64_t target = c->rows / MAX_CHUNKS * row + row; /* >= total / MAX_CHUNKS */
    if (target < MIN_CHUNK_BYTES) target = MIN_CHUNK_BYTES;
    c->rows_per_chunk = (target + row - 1) / row;
    c->nchunks = (c->rows + c->rows_per_chunk - 1) / c->rows_per_chunk;
    return DAPT_OK;
}

/* crc[k] for every chunk k of rows_per_chunk rows: rank r reads chunks r,
 * r + P, ... (collective reads, an empty slab when a rank has none left),
 * then the ranks' values are combined.  Collective over f->comm. */
static dapt_status chunk_crcs(const dapt_h5file *f, const char *name, const chunking *c, uint32_t *crc)
{
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(f->comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(f->comm, &size)));
    const int64_t rpc = c->rows_per_chunk < c->rows ? c->rows_per_chunk : c->rows;
    memset(crc, 0, (size_t)c->nchunks * sizeof *crc);
    void *buf = NULL;
    dapt_status st = dapt_alloc(&buf, (size_t)(rpc * c->row_bytes), "a checksum chunk");
    const int64_t rounds = (c->nchunks + size - 1) / size;
    for (int64_t r = 0; r < rounds; r++) {
        const int64_t k = r * size + rank;
        int64_t start[DAPT_H5_MAX_DIMS] = {0}, count[DAPT_H5_MAX_DIMS] = {0};
        for (int d = 1; d < c->ndim; d++) count[d] = c->dims[d];
        if (k < c->nchunks) {
            start[0] = k * c->rows_per_chunk;
            count[0] = c->rows - start[0] < c->rows_per_chunk ? c->rows - start[0] : c->rows_per_chunk;
        }
        /* Every rank takes part in each collective read, failed or not. */
        dapt_status rs = st == DAPT_OK ? dapt_h5_read(f, name, c->type, c->ndim, start, count, buf) : st;
        st = dapt_status_agree(f->comm, rs);
        if (st != DAPT_OK) break;
        if (k < c->nchunks) crc[k] = dapt_crc32(buf, (size_t)(count[0] * c->row_bytes));
    }
    free(buf);
    if (st != DAPT_OK) return st;
    return DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, crc, (int)c->nchunks, MPI_UINT32_T, MPI_BOR, f->comm));
}

dapt_status dapt_h5_seal(dapt_h5file *f, const char *name)
{
    chunking c;
    DAPT_CHECK(chunking_of(f, name, &c));
    if (c.nchunks == 0) return DAPT_OK;
    uint32_t *crc = NULL;
    DAPT_CHECK(dapt_alloc((void **)&crc, (size_t)c.nchunks * sizeof *crc, "chunk checksums"));
    dapt_status st = chunk_crcs(f, name, &c, crc);
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(f, name, "crc32_rows", c.rows_per_chunk);
    if (st == DAPT_OK) st = dapt_h5_attr_set_u32s(f, name, "crc32_chunks", (size_t)c.nchunks, crc);
    free(crc);
    return st;
}

dapt_status dapt_h5_verify(const dapt_h5file *f, const char *name)
{
    if (!dapt_h5_attr_exists(f, name, "crc32_chunks")) return DAPT_OK;
    chunking c;
    DAPT_CHECK(chunking_of(f, name, &c));
    int64_t rpc = 0;
    DAPT_CHECK(dapt_h5_attr_get_int64(f, name, "crc32_rows", &rpc));
    /* The chunking is a function of the shape: anything else is damage (and
     * would size the read buffer). */
    if (c.nchunks == 0 || rpc != c.rows_per_chunk)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: attribute crc32_rows is %lld, the shape [%lld rows] gives %lld: the file is corrupted",
                          f->path, name, (long long)rpc, (long long)c.rows, (long long)c.rows_per_chunk);
    uint32_t *want = NULL, *got = NULL;
    size_t n = 0;
    DAPT_CHECK(dapt_h5_attr_get_u32s(f, name, "crc32_chunks", &want, &n));
    dapt_status st = DAPT_OK;
    if ((int64_t)n != c.nchunks)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s: %zu chunk checksums for %lld chunks: the file is corrupted", f->path, name,
                   n, (long long)c.nchunks);
    DAPT_TRY(dapt_alloc((void **)&got, n * sizeof *got, "chunk checksums"));
    DAPT_TRY(chunk_crcs(f, name, &c, got));
    for (int64_t k = 0; k < c.nchunks; k++) {
        if (got[k] == want[k]) continue;
        const int64_t first = k * c.rows_per_chunk;
        const int64_t last = first + c.rows_per_chunk < c.rows ? first + c.rows_per_chunk : c.rows;
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s: rows %lld-%lld: checksum mismatch (CRC-32 stored %08lx, computed %08lx): the file is corrupted",
                   f->path, name, (long long)first, (long long)last - 1, (unsigned long)want[k], (unsigned long)got[k]);
    }
cleanup:
    free(want);
    free(got);
    return st;
}

/* ---- every dataset of a file ------------------------------------------ */

typedef struct name_list {
    char **names;
    size_t n, cap;
} name_list;

static void name_list_free(name_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* Numeric datasets only: strings and other types are not sealed. */
static dapt_status collect(const char *name, int ndim, const int64_t *dims, const char *type, void *user)
{
    (void)ndim;
    (void)dims;
    name_list *l = user;
    if (!strcmp(type, "string") || !strcmp(type, "other")) return DAPT_OK;
    if (l->n == l->cap) {
        const size_t cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->names, cap * sizeof *grown);
        if (!grown) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing datasets");
        l->names = grown;
        l->cap = cap;
    }
    const size_t len = strlen(name) + 1;
    l->names[l->n] = malloc(len);
    if (!l->names[l->n]) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing datasets");
    memcpy(l->names[l->n++], name, len);
    return DAPT_OK;
}

/* The walk names the datasets first: attributes are added after it ends,
 * never while HDF5 iterates. */
dapt_status dapt_h5_seal_all(dapt_h5file *f)
{
    /* Everything written reaches the file before any rank reads it back. */
    if (dapt_status_agree(f->comm, H5Fflush(f->id, H5F_SCOPE_GLOBAL) < 0
                                       ? DAPT_ERROR(DAPT_ERR_IO, "%s: flushing before the checksums failed (disk full?)", f->path)
                                       : DAPT_OK) != DAPT_OK)
        return DAPT_ERR_IO;
    name_list l = {0};
    dapt_status st = dapt_status_agree(f->comm, dapt_h5_walk(f, collect, &l));
    for (size_t i = 0; st == DAPT_OK && i < l.n; i++) {
        if (dapt_h5_attr_exists(f, l.names[i], "crc32")) continue; /* a whole-tensor checksum already */
        st = dapt_h5_seal(f, l.names[i]);
    }
    name_list_free(&l);
    return dapt_status_agree(f->comm, st);
}

dapt_status dapt_h5_verify_file(MPI_Comm comm, const char *path)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_status_agree(comm, dapt_h5_open(comm, path, &f)));
    name_list l = {0};
    dapt_status st = dapt_status_agree(comm, dapt_h5_walk(&f, collect, &l));
    for (size_t i = 0; st == DAPT_OK && i < l.n; i++) st = dapt_status_agree(comm, dapt_h5_verify(&f, l.names[i]));
    name_list_free(&l);
    dapt_h5_close(&f);
    return st;
}
