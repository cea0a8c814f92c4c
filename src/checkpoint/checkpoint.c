/* Training checkpoints (see dapt/checkpoint.h). */
#include "dapt/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "dapt/crc32.h"
#include "dapt/fsio.h"
#include "dapt/log.h"

#define CKPT_FORMAT "dapt-checkpoint-1"

void dapt_checkpoint_path(const char *dir, int64_t step, char *out, size_t len)
{
    snprintf(out, len, "%s/step-%08lld.h5", dir, (long long)step);
}

static int parse_step_name(const char *name, int64_t *step)
{
    long long s;
    int used = 0;
    if (sscanf(name, "step-%lld.h5%n", &s, &used) != 1 || name[used] != '\0' || s < 0) return 0;
    *step = s;
    return 1;
}

/* Exactly a name dapt_checkpoint_path makes ("step-5.h5" is not). */
static int own_step_name(const char *name)
{
    int64_t s;
    char want[64];
    if (!parse_step_name(name, &s)) return 0;
    snprintf(want, sizeof want, "step-%08lld.h5", (long long)s);
    return !strcmp(name, want);
}

/* "<own name>.tmp.<digits>": a save's temporary file (h5io, fsio). */
static int own_temp_name(const char *name)
{
    const char *t = strstr(name, ".tmp.");
    if (!t || strstr(t + 1, ".tmp.")) return 0;
    const char *digits = t + 5;
    if (!*digits || strspn(digits, "0123456789") != strlen(digits)) return 0;
    char base[256];
    const size_t n = (size_t)(t - name);
    if (n >= sizeof base) return 0;
    memcpy(base, name, n);
    base[n] = '\0';
    return own_step_name(base) || !strcmp(base, "latest");
}

dapt_status dapt_checkpoint_clean(const char *dir, int everything)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0) {
        if (errno == ENOENT) return DAPT_OK;
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot inspect: %s", dir, strerror(errno));
    }
    const int link = S_ISLNK(sb.st_mode);
    DIR *d = opendir(dir);
    if (!d) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list checkpoints: %s", dir, strerror(errno));
    dapt_status st = DAPT_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const int ours = own_temp_name(e->d_name) ||
                         (everything && (own_step_name(e->d_name) || !strcmp(e->d_name, "latest")));
        if (!ours) continue;
        if (link) {
            st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s is a symbolic link: dapt does not remove %s or other files through it (make it a directory of the run)",
                            dir, e->d_name);
            break;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT) dapt_warn("cannot remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

dapt_status dapt_checkpoint_list(const char *dir, int64_t **steps, size_t *n)
{
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return DAPT_OK;
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list checkpoints: %s", dir, strerror(errno));
    }
    size_t cap = 0;
    struct dirent *e;
    dapt_status st = DAPT_OK;
    while ((e = readdir(d)) != NULL) {
        int64_t s;
        if (!parse_step_name(e->d_name, &s)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *p = realloc(*steps, cap * sizeof *p);
            if (!p) {
                st = DAPT_ERROR(DAPT_ERR_NOMEM, "%s: out of memory listing checkpoints", dir);
                break;
            }
            *steps = p;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (st != DAPT_OK) {
        free(*steps);
        *steps = NULL;
        *n = 0;
        return st;
    }
    if (*n) qsort(*steps, *n, sizeof **steps, cmp_i64);
    return DAPT_OK;
}

/* ---- layouts and checksums -------------------------------------------- */

static const char *const groups[3] = {"params", "optim/exp_avg", "optim/exp_avg_sq"};

static size_t peak_alloc;

size_t dapt_checkpoint_peak_alloc(void)
{
    return peak_alloc;
}

static dapt_status ckpt_alloc(void **p, size_t bytes, const char *what)
{
    if (bytes > peak_alloc) peak_alloc = bytes;
    return dapt_alloc(p, bytes ? bytes : 1, what);
}

dapt_ckpt_layout dapt_ckpt_layout_whole(MPI_Comm comm, const dapt_param_table *table)
{
    int rank = 0, size = 1;
    /* A failure leaves rank 0 of 1: the caller's next collective reports it. */
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS) rank = 0, size = 1;
    return (dapt_ckpt_layout){table, table, NULL, 0, 1, rank, size, NULL};
}

/* The part of global tensor k this rank holds (the whole tensor without
 * shards). */
static dapt_shard held(const dapt_ckpt_layout *lay, size_t k)
{
    if (lay->shards) return lay->shards[k];
    const dapt_tensor *t = &lay->global->tensors[k];
    return (dapt_shard){DAPT_SHARD_REPLICATED, 0, t->shape[0], 0, t->shape[1], t->shape[0]};
}

/* Rows [*begin, *begin + *count) of the held part this rank writes and
 * checksums: the held rows in contiguous blocks over the ranks that hold
 * the same part (the data ranks of a shard, every rank for a replicated
 * tensor), so each element of a dataset is written exactly once. */
static void owned_rows(const dapt_ckpt_layout *lay, const dapt_shard *s, int64_t *begin, int64_t *count)
{
    int64_t idx = lay->data_rank, n = lay->data_size;
    if (s->kind == DAPT_SHARD_REPLICATED) {
        n = (int64_t)lay->data_size * lay->tensor_size;
        idx = (int64_t)lay->data_rank * lay->tensor_size + lay->tensor_rank;
    }
    const int64_t q = s->rows / n, rem = s->rows % n;
    *begin = idx * q + (idx < rem ? idx : rem);
    *count = q + (idx < rem);
}

/* CRC-32s of contiguous pieces of datasets: 4 words per piece (dataset
 * id = nb * tensor + buffer, element offset in the global tensor, element
 * count, CRC). */
typedef struct crc_pieces {
    uint64_t *v;
    size_t n, cap; /* pieces */
    size_t peak;   /* largest allocation, merged into peak_alloc by the owner */
} crc_pieces;

static dapt_status add_piece(crc_pieces *p, uint64_t id, int64_t offset, int64_t count, const float *data)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        if (4 * cap * sizeof(uint64_t) > p->peak) p->peak = 4 * cap * sizeof(uint64_t);
        uint64_t *v = realloc(p->v, 4 * cap * sizeof *v);
        if (!v) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for checkpoint checksum pieces");
        p->v = v;
        p->cap = cap;
    }
    uint64_t *e = p->v + 4 * p->n++;
    e[0] = id;
    e[1] = (uint64_t)offset;
    e[2] = (uint64_t)count;
    e[3] = dapt_crc32(data, (size_t)count * sizeof(float));
    return DAPT_OK;
}

/* The pieces of rows [b, b + c) of held part s of global tensor g; rows
 * points at row b (rows of s->cols floats). */
static dapt_status add_slab_pieces(crc_pieces *p, uint64_t id, const dapt_tensor *g, const dapt_shard *s,
                                   int64_t b, int64_t c, const float *rows)
{
    const int64_t gcols = g->shape[1];
    if (c <= 0) return DAPT_OK;
    if (s->cols == gcols) return add_piece(p, id, (s->row0 + b) * gcols, c * gcols, rows);
    for (int64_t i = 0; i < c; i++)
        DAPT_CHECK(add_piece(p, id, (s->row0 + b + i) * gcols + s->col0, s->cols, rows + i * s->cols));
    return DAPT_OK;
}

static int cmp_piece(const void *x, const void *y)
{
    const uint64_t *a = x, *b = y;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

/* Rank 0 gathers every rank's pieces, checks that they tile each dataset
 * exactly and combines them in global order (crc32_combine) into crc[id];
 * the result is broadcast.  Collective over comm. */
static dapt_status combine_crcs(MPI_Comm comm, const crc_pieces *p, const dapt_param_table *g, const char *const *names,
                                size_t nb, int64_t *crc)
{
    int rank, size;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    dapt_status st = DAPT_OK;
    int *counts = NULL, *displs = NULL;
    uint64_t *all = NULL;
    if (4 * p->n > (size_t)INT_MAX)
        st = DAPT_ERROR(DAPT_ERR_INTERNAL, "checkpoint: %zu checksum pieces on one rank", p->n);
    int mine = st == DAPT_OK ? (int)(4 * p->n) : 0;
    if (rank == 0 && st == DAPT_OK) {
        st = ckpt_alloc((void **)&counts, 2 * (size_t)size * sizeof *counts, "checksum piece counts");
        if (st == DAPT_OK) displs = counts + size;
    }
    DAPT_TRY(dapt_status_agree(comm, st));
    DAPT_TRY(DAPT_MPI(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, comm)));
    size_t total = 0;
    if (rank == 0) {
        for (int r = 0; r < size; r++) {
            if (total + (size_t)counts[r] > (size_t)INT_MAX) {
                st = DAPT_ERROR(DAPT_ERR_INTERNAL, "checkpoint: too many checksum pieces to gather");
                break;
            }
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
        if (st == DAPT_OK) st = ckpt_alloc((void **)&all, total * sizeof *all, "checksum pieces");
    }
    DAPT_TRY(dapt_status_agree(comm, st));
    DAPT_TRY(DAPT_MPI(MPI_Gatherv(p->v, mine, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, 0, comm)));
    if (rank == 0) {
        const size_t n = total / 4;
        qsort(all, n, 4 * sizeof *all, cmp_piece);
        size_t i = 0;
        for (size_t k = 0; st == DAPT_OK && k < g->count; k++)
            for (uint64_t w = 0; st == DAPT_OK && w < nb; w++) {
                const uint64_t id = nb * k + w;
                uLong c = crc32(0L, Z_NULL, 0);
                uint64_t next = 0;
                for (; i < n && all[4 * i] == id; i++) {
                    const uint64_t *e = all + 4 * i;
                    if (e[1] != next) break;
                    c = crc32_combine(c, (uLong)e[3], (z_off_t)(e[2] * sizeof(float)));
                    next += e[2];
                }
                if (next != g->tensors[k].numel || (i < n && all[4 * i] == id))
                    st = DAPT_ERROR(DAPT_ERR_INTERNAL, "checkpoint: %s/%s: the ranks' pieces cover %llu of %zu elements "
                                    "without gaps or overlaps", names[w], g->tensors[k].name,
                                    (unsigned long long)next, g->tensors[k].numel);
                crc[id] = (int64_t)c;
            }
    }
    DAPT_TRY(dapt_status_agree(comm, st));
    DAPT_TRY(DAPT_MPI(MPI_Bcast(crc, (int)(nb * g->count), MPI_INT64_T, 0, comm)));
cleanup:
    free(counts);
    free(all);
    return st;
}

static dapt_status check_layout(const dapt_ckpt_layout *lay)
{
    if (lay->local->count != lay->global->count || (!lay->shards && lay->tensor_size != 1))
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "checkpoint: the local table (%zu tensors) does not match the global one (%zu)",
                          lay->local->count, lay->global->count);
    if (lay->optim_rows && lay->shards)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "checkpoint: sharded optimizer moments with tensor parallelism");
    return DAPT_OK;
}

/* The rows [*b, *b + *c) of held part s of tensor k that this rank writes
 * (and checksums) of buffer w, and where the first starts in it: the
 * moments of a sharded optimizer (buffers from `compact` on) are its own
 * rows, packed; the others, owned_rows of the local tensor. */
static size_t rows_of(const dapt_ckpt_layout *lay, size_t k, const dapt_shard *s, size_t w, size_t compact, int64_t *b,
                      int64_t *c)
{
    if (w >= compact && lay->optim_rows) {
        *b = lay->optim_rows[3 * k];
        *c = lay->optim_rows[3 * k + 1];
        return (size_t)lay->optim_rows[3 * k + 2];
    }
    owned_rows(lay, s, b, c);
    return lay->local->tensors[k].offset + (size_t)(*b * s->cols);
}

/* ---- parameter-shaped buffers ------------------------------------------ */

/* The byte ranges of one transfer (dapt_h5_write_extents / read_extents):
 * every tensor of every buffer moves as plain file I/O at its dataset's
 * offset instead of one HDF5 call per dataset (docs/performance.md, issue
 * 16 target 4). */
typedef struct extent_list {
    dapt_h5_extent *e;
    size_t n, cap;
} extent_list;

static dapt_status add_extent(extent_list *x, int64_t offset, int64_t bytes, const float *mem)
{
    if (bytes <= 0) return DAPT_OK;
    if (x->n == x->cap) {
        const size_t cap = x->cap ? 2 * x->cap : 256;
        if (cap * sizeof *x->e > peak_alloc) peak_alloc = cap * sizeof *x->e;
        dapt_h5_extent *e = realloc(x->e, cap * sizeof *e);
        if (!e) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for the checkpoint's transfer list");
        x->e = e;
        x->cap = cap;
    }
    x->e[x->n++] = (dapt_h5_extent){offset, bytes, (void *)mem};
    return DAPT_OK;
}

/* The file bytes of rows [b, b + c) of held part s of global tensor g, whose
 * dataset starts at file offset off; mem points at row b (rows of s->cols
 * floats).  One extent when the part has whole rows, else one per row. */
static dapt_status add_slab_extents(extent_list *x, int64_t off, const dapt_tensor *g, const dapt_shard *s,
                                    int64_t b, int64_t c, const float *mem)
{
    const int64_t gcols = g->shape[1], f = (int64_t)sizeof(float);
    if (c <= 0) return DAPT_OK;
    if (s->cols == gcols) return add_extent(x, off + (s->row0 + b) * gcols * f, c * gcols * f, mem);
    for (int64_t i = 0; i < c; i++)
        DAPT_CHECK(add_extent(x, off + ((s->row0 + b + i) * gcols + s->col0) * f, s->cols * f, mem + i * s->cols));
    return DAPT_OK;
}

/* Which rank writes each replicated dataset (k, w) whole (owner[nb * k + w],
 * an index over every rank, -1 for the others): the datasets in file order
 * dealt in contiguous runs of about equal bytes, so each rank's writes are
 * one region of the file.  Rows split across ranks instead interleave the
 * ranks' writes at every dataset, which ran at a fifth of the disk's rate
 * on 2 ranks (docs/performance.md).  The same on every rank. */
static dapt_status deal_datasets(const dapt_ckpt_layout *lay, size_t nb, size_t compact, int **owner)
{
    const dapt_param_table *g = lay->global;
    const int64_t ranks = (int64_t)lay->data_size * lay->tensor_size;
    DAPT_CHECK(ckpt_alloc((void **)owner, (g->count ? g->count : 1) * nb * sizeof **owner, "checkpoint writers"));
    int64_t total = 0, at = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < g->count; k++)
            for (size_t w = 0; w < nb; w++) {
                const int dealt = held(lay, k).kind == DAPT_SHARD_REPLICATED && !(w >= compact && lay->optim_rows);
                const int64_t numel = (int64_t)g->tensors[k].numel;
                if (pass == 0) {
                    if (dealt) total += numel;
                    continue;
                }
                (*owner)[nb * k + w] = dealt ? (int)(at * ranks / (total ? total : 1)) : -1;
                if (dealt) at += numel;
            }
    return DAPT_OK;
}

/* The rows of dataset (k, w) this rank writes, and where they start in its
 * buffer: a dealt dataset whole or not at all, the others as rows_of. */
static size_t written_rows(const dapt_ckpt_layout *lay, size_t k, const dapt_shard *s, size_t w, size_t compact,
                           int owner, int64_t *b, int64_t *c)
{
    if (owner < 0) return rows_of(lay, k, s, w, compact, b, c);
    *b = 0;
    *c = owner == lay->data_rank * lay->tensor_size + lay->tensor_rank ? s->rows : 0;
    return lay->local->tensors[k].offset;
}

/* The CRC-32 pieces of the rows this rank wrote (owner from deal_datasets)
 * or, with owner NULL, of its owned rows (rows_of), after the bytes moved:
 * any tiling of the datasets over the ranks combines to the same CRCs. */
static dapt_status checksum_pieces(const dapt_ckpt_layout *lay, const float *const *bufs, size_t nb, size_t compact,
                                   const int *owner, crc_pieces *pieces)
{
    const dapt_param_table *g = lay->global;
    dapt_status st = DAPT_OK;
    for (size_t k = 0; st == DAPT_OK && k < g->count; k++) {
        const dapt_shard s = held(lay, k);
        for (size_t w = 0; st == DAPT_OK && w < nb; w++) {
            int64_t b, c;
            const float *rows = bufs[w] + written_rows(lay, k, &s, w, compact, owner ? owner[nb * k + w] : -1, &b, &c);
            st = add_slab_pieces(pieces, nb * k + w, &g->tensors[k], &s, b, c, rows);
        }
    }
    if (pieces->peak > peak_alloc) peak_alloc = pieces->peak;
    return st;
}

/* Writes nb flat buffers laid out by lay as names[w]/<tensor> at global
 * shape, each rank its own rows, with the layout-independent CRC-32 of each
 * dataset as its "crc32" attribute; buffers from `compact` on are optimizer
 * moments (only this rank's rows when lay->optim_rows is set).  The datasets
 * are created first, then every rank writes its bytes of all of them at
 * their file offsets, then checksums them.  Collective over comm. */
static dapt_status put_buffers(dapt_h5file *f, MPI_Comm comm, const dapt_ckpt_layout *lay, const char *const *names,
                               const float *const *bufs, size_t nb, size_t compact)
{
    const dapt_param_table *g = lay->global;
    crc_pieces pieces = {0};
    extent_list ext = {0};
    int64_t *crc = NULL;
    int *owner = NULL;
    dapt_status st = DAPT_OK, local = DAPT_OK;
    DAPT_TRY(dapt_status_agree(comm, deal_datasets(lay, nb, compact, &owner)));
    for (size_t k = 0; k < g->count; k++) {
        dapt_heartbeat("writing a checkpoint");
        const dapt_tensor *gt = &g->tensors[k];
        const dapt_shard s = held(lay, k);
        for (size_t w = 0; w < nb; w++) {
            char name[160];
            snprintf(name, sizeof name, "%s/%s", names[w], gt->name);
            int64_t b, c, off = -1;
            const float *rows = bufs[w] + written_rows(lay, k, &s, w, compact, owner[nb * k + w], &b, &c);
            const int64_t start[2] = {s.row0 + b, s.col0}, count[2] = {c, s.cols};
            DAPT_TRY(dapt_h5_create_dataset(f, name, DAPT_H5_F32, gt->ndim, gt->shape));
            DAPT_TRY(dapt_status_agree(comm, dapt_h5_raw_offset(f, name, DAPT_H5_F32, &off)));
            /* Every rank sees the same metadata, so the same answer: an
             * empty tensor (no storage) goes through HDF5. */
            if (off < 0) DAPT_TRY(dapt_h5_write_slab(f, name, DAPT_H5_F32, start, count, rows));
            else if (local == DAPT_OK) local = add_slab_extents(&ext, off, gt, &s, b, c, rows); /* agreed below */
        }
    }
    DAPT_TRY(dapt_status_agree(comm, local));
    DAPT_TRY(dapt_h5_write_extents(f, ext.e, ext.n));
    local = checksum_pieces(lay, bufs, nb, compact, owner, &pieces);
    DAPT_TRY(dapt_status_agree(comm, local));
    DAPT_TRY(ckpt_alloc((void **)&crc, nb * (g->count ? g->count : 1) * sizeof *crc, "checkpoint checksums"));
    DAPT_TRY(combine_crcs(comm, &pieces, g, names, nb, crc));
    for (size_t k = 0; k < g->count; k++)
        for (size_t w = 0; w < nb; w++) {
            char name[160];
            snprintf(name, sizeof name, "%s/%s", names[w], g->tensors[k].name);
            DAPT_TRY(dapt_h5_attr_set_int64(f, name, "crc32", crc[nb * k + w]));
        }
cleanup:
    free(owner);
    free(pieces.v);
    free(ext.e);
    free(crc);
    return st;
}

/* Checks that dataset name holds global tensor gt as float32. */
static dapt_status check_stored(const dapt_h5file *f, const char *name, const dapt_tensor *gt)
{
    int ndim;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type type;
    DAPT_CHECK(dapt_h5_info(f, name, &ndim, dims, &type));
    if (ndim != gt->ndim || dims[0] != gt->shape[0] || (ndim == 2 && dims[1] != gt->shape[1]) || type != DAPT_H5_F32)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: stored as %d-D %s [%lld, %lld], the model needs float32 [%lld, %lld]",
                          f->path, name, ndim, dapt_h5_type_name(type), (long long)dims[0],
                          (long long)(ndim == 2 ? dims[1] : 1), (long long)gt->shape[0], (long long)gt->shape[1]);
    return DAPT_OK;
}

/* Reads nb flat buffers laid out by lay from names[w]/<tensor> (this rank's
 * hyperslabs; only the owned rows of compact moments, buffers from
 * `compact` on), verifying every dataset's shape and CRC-32: the shapes and
 * file offsets first, then one collective transfer of every rank's bytes,
 * then the checksums of what arrived.  A dataset without a raw extent (a
 * file another writer made) is read through HDF5.  Collective over comm. */
static dapt_status get_buffers(const dapt_h5file *f, MPI_Comm comm, const dapt_ckpt_layout *lay,
                               const char *const *names, float *const *bufs, size_t nb, size_t compact)
{
    const dapt_param_table *g = lay->global;
    crc_pieces pieces = {0};
    extent_list ext = {0};
    int64_t *crc = NULL;
    dapt_status st = DAPT_OK, local = DAPT_OK;
    for (size_t k = 0; k < g->count; k++) {
        dapt_heartbeat("reading a checkpoint");
        const dapt_tensor *gt = &g->tensors[k], *lt = &lay->local->tensors[k];
        const dapt_shard s = held(lay, k);
        for (size_t w = 0; w < nb; w++) {
            char name[160];
            snprintf(name, sizeof name, "%s/%s", names[w], gt->name);
            /* The whole held part, or only the rows of a sharded moment. */
            const int part = w >= compact && lay->optim_rows;
            int64_t b, c, off = -1;
            float *rows = bufs[w] + rows_of(lay, k, &s, w, compact, &b, &c);
            float *dst = part ? rows : bufs[w] + lt->offset;
            const int64_t rb = part ? b : 0, rc = part ? c : s.rows;
            /* Agreed after each dataset: no rank waits in a collective call
             * for one that failed. */
            dapt_status ds = check_stored(f, name, gt);
            if (ds == DAPT_OK) ds = dapt_h5_raw_offset(f, name, DAPT_H5_F32, &off);
            DAPT_TRY(dapt_status_agree(comm, ds));
            if (off < 0) {
                const int64_t start[2] = {s.row0 + rb, s.col0}, count[2] = {rc, s.cols};
                DAPT_TRY(dapt_status_agree(comm, dapt_h5_read(f, name, DAPT_H5_F32, gt->ndim, start, count, dst)));
            } else if (local == DAPT_OK) {
                local = add_slab_extents(&ext, off, gt, &s, rb, rc, dst); /* agreed below */
            }
            if (!part && s.local_rows > s.rows)
                memset(dst + s.rows * s.cols, 0, (size_t)(s.local_rows - s.rows) * (size_t)s.cols * sizeof *dst);
        }
    }
    DAPT_TRY(dapt_status_agree(comm, local));
    DAPT_TRY(dapt_h5_read_extents(f, ext.e, ext.n));
    local = checksum_pieces(lay, (const float *const *)bufs, nb, compact, NULL, &pieces);
    DAPT_TRY(dapt_status_agree(comm, local));
    DAPT_TRY(ckpt_alloc((void **)&crc, nb * (g->count ? g->count : 1) * sizeof *crc, "checkpoint checksums"));
    DAPT_TRY(combine_crcs(comm, &pieces, g, names, nb, crc));
    for (size_t k = 0; k < g->count; k++)
        for (size_t w = 0; w < nb; w++) {
            char name[160];
            snprintf(name, sizeof name, "%s/%s", names[w], g->tensors[k].name);
            int64_t want;
            DAPT_TRY(dapt_h5_attr_get_int64(f, name, "crc32", &want));
            DAPT_TRY(dapt_crc32_verify(f->path, name, want, crc[nb * k + w]));
        }
cleanup:
    free(pieces.v);
    free(ext.e);
    free(crc);
    return st;
}

dapt_status dapt_checkpoint_save_model(MPI_Comm comm, const char *path, const dapt_config *cfg,
                                       const dapt_model_config *mc, const dapt_ckpt_layout *lay, const float *params,
                                       const dapt_model_meta *meta)
{
    DAPT_CHECK(check_layout(lay));
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(comm, path, 1, cfg, &f));
    const char *group = "params";
    dapt_status st = dapt_modelfile_put_header(&f, mc, meta);
    if (st == DAPT_OK) st = put_buffers(&f, comm, lay, &group, &params, 1, 1);
    if (st != DAPT_OK) {
        dapt_h5_abort(&f);
        return st;
    }
    return dapt_h5_commit(&f);
}

dapt_status dapt_checkpoint_put_buffer(dapt_h5file *f, MPI_Comm comm, const dapt_ckpt_layout *lay, const char *group,
                                       const float *buf)
{
    DAPT_CHECK(check_layout(lay));
    return put_buffers(f, comm, lay, &group, &buf, 1, 1);
}

dapt_status dapt_checkpoint_get_buffer(const dapt_h5file *f, MPI_Comm comm, const dapt_ckpt_layout *lay,
                                       const char *group, float *buf)
{
    DAPT_CHECK(check_layout(lay));
    return get_buffers(f, comm, lay, &group, &buf, 1, 1);
}

/* ---- save --------------------------------------------------------------- */

static dapt_status write_latest(const char *dir, int64_t step)
{
    char path[4200], line[64];
    snprintf(path, sizeof path, "%s/latest", dir);
    int n = snprintf(line, sizeof line, "step-%08lld.h5\n", (long long)step);
    return dapt_fs_write_atomic(path, line, (size_t)n, 1);
}

/* Removes the oldest checkpoints beyond keep (never `current`). */
static void prune(const char *dir, int64_t keep, int64_t current)
{
    int64_t *steps = NULL;
    size_t n = 0;
    if (dapt_checkpoint_list(dir, &steps, &n) != DAPT_OK) {
        dapt_warn("checkpoint retention skipped: %s", dapt_error_message());
        dapt_error_clear();
        return;
    }
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        if (steps[i] == current) continue;
        char path[4200];
        dapt_checkpoint_path(dir, steps[i], path, sizeof path);
        if (unlink(path) != 0) dapt_warn("cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
    free(steps);
}


dapt_status dapt_checkpoint_save_layout(MPI_Comm comm, const char *dir, const dapt_config *cfg,
                                        const dapt_model_config *mc, const dapt_ckpt_layout *lay,
                                        const float *params, const float *exp_avg, const float *exp_avg_sq,
                                        const dapt_model_meta *meta, const dapt_ckpt_state *state, int64_t keep,
                                        dapt_ckpt_save_fn save, void *save_ctx)
{
    int rank;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    dapt_status st = check_layout(lay);
    if (st == DAPT_OK && rank == 0 && mkdir(dir, 0777) != 0 && errno != EEXIST)
        st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot create the checkpoint directory: %s", dir, strerror(errno));
    DAPT_CHECK(dapt_status_agree(comm, st));
    char path[4200];
    dapt_checkpoint_path(dir, state->step, path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(comm, path, 1, cfg, &f));
    const float *bufs[3] = {params, exp_avg, exp_avg_sq};
    DAPT_TRY(dapt_modelfile_put_header(&f, mc, meta));
    DAPT_TRY(dapt_h5_attr_set_string(&f, "/", "checkpoint_format", CKPT_FORMAT));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "step", state->step));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "samples", state->samples));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "adam_step", state->adam_step));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "bad_run", state->bad_run));
    DAPT_TRY(dapt_h5_attr_set_int64(&f, "/", "seed", (int64_t)state->seed));
    DAPT_TRY(put_buffers(&f, comm, lay, groups, bufs, 3, 1));
    if (save) DAPT_TRY(save(save_ctx, &f));
    DAPT_CHECK(dapt_h5_commit(&f));
    /* The pointer moves only once the file is complete under its name. */
    if (rank == 0) {
        st = write_latest(dir, state->step);
        if (st == DAPT_OK) prune(dir, keep, state->step);
    }
    return dapt_status_agree(comm, st);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

dapt_status dapt_checkpoint_save(MPI_Comm comm, const char *dir, const dapt_config *cfg,
                                 const dapt_model *m, const dapt_model_meta *meta,
                                 const float *exp_avg, const float *exp_avg_sq,
                                 const dapt_ckpt_state *state, int64_t keep, dapt_ckpt_save_fn save,
                                 void *save_ctx)
{
    const dapt_ckpt_layout lay = dapt_ckpt_layout_whole(comm, &m->table);
    return dapt_checkpoint_save_layout(comm, dir, cfg, &m->config, &lay, m->params, exp_avg, exp_avg_sq, meta, state,
                                       keep, save, save_ctx);
}

/* ---- load --------------------------------------------------------------- */

dapt_status dapt_checkpoint_load_layout(MPI_Comm comm, const char *path, const dapt_ckpt_layout *lay,
                                        float *params, float *exp_avg, float *exp_avg_sq,
                                        dapt_ckpt_state *state, dapt_ckpt_load_fn load, void *load_ctx)
{
    DAPT_CHECK(check_layout(lay));
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    dapt_status st = DAPT_OK;
    char *format = NULL;
    int64_t seed = 0;
    float *const bufs[3] = {params, exp_avg, exp_avg_sq};
    /* Attributes read the same on every rank: failures are common. */
    if (!dapt_h5_attr_exists(&f, "/", "checkpoint_format"))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: not a dapt checkpoint (no checkpoint_format attribute)", path);
    DAPT_TRY(dapt_h5_attr_get_string(&f, "/", "checkpoint_format", &format));
    if (strcmp(format, CKPT_FORMAT))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: not a dapt checkpoint (format '%s', expected '%s')", path, format, CKPT_FORMAT);
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "step", &state->step));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "samples", &state->samples));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "adam_step", &state->adam_step));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "bad_run", &state->bad_run));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "seed", &seed));
    state->seed = (uint64_t)seed;
    DAPT_TRY(get_buffers(&f, comm, lay, groups, bufs, 3, 1));
    if (load) DAPT_TRY(load(load_ctx, &f));
cleanup:
    free(format);
    dapt_h5_close(&f);
    return dapt_status_agree(comm, st);
}

dapt_status dapt_checkpoint_load(MPI_Comm comm, const char *path, dapt_model *m, float *exp_avg,
                                 float *exp_avg_sq, dapt_ckpt_state *state, dapt_ckpt_load_fn load,
                                 void *load_ctx)
{
    const dapt_ckpt_layout lay = dapt_ckpt_layout_whole(comm, &m->table);
    return dapt_checkpoint_load_layout(comm, path, &lay, m->params, exp_avg, exp_avg_sq, state, load, load_ctx);
}

static int64_t read_latest(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    char line[256] = "";
    int64_t step = -1;
    if (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!parse_step_name(line, &step)) step = -1;
    }
    fclose(fp);
    return step;
}

dapt_status dapt_checkpoint_resume(MPI_Comm comm, const char *dir, dapt_model *m, float *exp_avg,
                                   float *exp_avg_sq, dapt_ckpt_state *state, dapt_ckpt_load_fn load,
                                   void *load_ctx, char *path, size_t path_len)
{
    const dapt_ckpt_layout lay = dapt_ckpt_layout_whole(comm, &m->table);
    return dapt_checkpoint_resume_layout(comm, dir, &lay, m->params, exp_avg, exp_avg_sq, state, load, load_ctx, path,
                                         path_len);
}

dapt_status dapt_checkpoint_resume_layout(MPI_Comm comm, const char *dir, const dapt_ckpt_layout *lay,
                                          float *params, float *exp_avg, float *exp_avg_sq,
                                          dapt_ckpt_state *state, dapt_ckpt_load_fn load, void *load_ctx,
                                          char *path, size_t path_len)
{
    /* Rank 0 decides the candidate order; everyone tries the same files. */
    int rank;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    int64_t *steps = NULL;
    size_t n = 0;
    int64_t latest = -1;
    dapt_status st = DAPT_OK;
    if (rank == 0) {
        st = dapt_checkpoint_list(dir, &steps, &n);
        latest = read_latest(dir);
    }
    DAPT_CHECK(dapt_status_agree(comm, st));
    long long nn = (long long)n;
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&nn, 1, MPI_LONG_LONG, 0, comm)));
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&latest, 1, MPI_INT64_T, 0, comm)));
    if (rank != 0 && nn > 0) {
        steps = malloc((size_t)nn * sizeof *steps);
        if (!steps) st = DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing checkpoints");
    }
    n = (size_t)nn;
    st = dapt_status_agree(comm, st);
    if (st != DAPT_OK) {
        free(steps);
        return st;
    }
    if (n && (st = DAPT_MPI(MPI_Bcast(steps, (int)n, MPI_INT64_T, 0, comm))) != DAPT_OK) {
        free(steps);
        return st;
    }
    if (n == 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: no checkpoint to resume from", dir);
    /* Candidates: `latest` first (it may be older than a newer complete file
     * written just before a crash; it is what the last run vouched for),
     * then every file newest first. */
    int64_t *order = malloc((n + 1) * sizeof *order);
    if (!order) {
        free(steps);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing checkpoints");
    }
    size_t k = 0;
    if (latest >= 0) order[k++] = latest;
    for (size_t i = n; i-- > 0;)
        if (steps[i] != latest) order[k++] = steps[i];
    free(steps);
    for (size_t i = 0; i < k; i++) {
        dapt_checkpoint_path(dir, order[i], path, path_len);
        st = dapt_checkpoint_load_layout(comm, path, lay, params, exp_avg, exp_avg_sq, state, load, load_ctx);
        if (st == DAPT_OK) {
            if (i > 0) dapt_warn("resumed from the older checkpoint %s", path);
            free(order);
            return DAPT_OK;
        }
        dapt_warn("checkpoint %s is unusable, trying an older one: %s", path, dapt_error_message());
        dapt_error_clear();
    }
    free(order);
    return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: none of the %zu checkpoints loads (see the warnings above)", dir, n);
}
