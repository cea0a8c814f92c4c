/* Reading a 2-D HDF5 dataset straight into a block-cyclic matrix: each rank
 * selects its own blocks and nothing else.
 *
 * The blocks a process owns along one dimension are the full blocks
 * p, p + P, p + 2P, ... (a regular hyperslab: start p*b, stride P*b, block b)
 * and possibly the last, partial block.  The 2-D selection is the product of
 * the row and column patterns: at most four regular hyperslabs OR'd
 * together.  HDF5 delivers the selected elements in the file's row-major
 * order, which is the local matrix's row-major order; a local transpose
 * gives ScaLAPACK's column-major array.  The read goes in chunks of whole
 * local row blocks (32 MB at most, one collective call
 * each, every rank making as many calls as the rank with the most), so the
 * transient buffer stays small whatever the matrix. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/analysis.h"

/* Bytes of the row-major staging buffer of one collective read (32 MB;
 * the environment variable DAPT_ANALYZE_READ_CHUNK overrides it, which the
 * tests use to exercise many chunks on small matrices). */
static size_t read_chunk_bytes(void)
{
    const char *e = getenv("DAPT_ANALYZE_READ_CHUNK");
    long long v = e && *e ? atoll(e) : 0;
    return v > 0 ? (size_t)v : (size_t)32 << 20;
}

/* The owned blocks of one dimension: `full` full blocks starting at start
 * with stride, and a partial tail [tail_start, tail_start + tail_len). */
typedef struct owned {
    hsize_t start, stride, full, block;
    hsize_t tail_start, tail_len;
} owned;

static owned owned_blocks(int64_t n, int b, int p, int np)
{
    owned o = {0, 0, 0, 0, 0, 0};
    int64_t nfull = n / b;
    o.block = (hsize_t)b;
    o.start = (hsize_t)p * (hsize_t)b;
    o.stride = (hsize_t)np * (hsize_t)b;
    o.full = nfull > p ? (hsize_t)((nfull - 1 - p) / np + 1) : 0;
    if (n % b && nfull % np == p) {
        o.tail_start = (hsize_t)(nfull * b);
        o.tail_len = (hsize_t)(n % b);
    }
    return o;
}

/* The part of o in local blocks [k0, k1) (local block k is the k-th owned
 * block; the partial tail, when owned, is the last one). */
static owned owned_range(owned o, hsize_t k0, hsize_t k1)
{
    owned r = o;
    hsize_t full_end = k1 < o.full ? k1 : o.full;
    r.full = full_end > k0 ? full_end - k0 : 0;
    r.start = o.start + k0 * o.stride;
    if (!(o.tail_len && k0 <= o.full && o.full < k1)) r.tail_len = 0;
    return r;
}

/* ORs one rectangle pattern (rows r, columns c, each either the full-block
 * pattern or the tail) into space. */
static dapt_status select_part(hid_t space, const owned *r, int r_tail, const owned *c, int c_tail, int *any)
{
    hsize_t start[2], stride[2], count[2], block[2];
    const owned *o[2] = {r, c};
    int tail[2] = {r_tail, c_tail};
    for (int d = 0; d < 2; d++) {
        if (tail[d]) {
            if (!o[d]->tail_len) return DAPT_OK;
            start[d] = o[d]->tail_start;
            stride[d] = 1;
            count[d] = 1;
            block[d] = o[d]->tail_len;
        } else {
            if (!o[d]->full) return DAPT_OK;
            start[d] = o[d]->start;
            stride[d] = o[d]->stride;
            count[d] = o[d]->full;
            block[d] = o[d]->block;
        }
    }
    DAPT_CHECK(DAPT_H5(H5Sselect_hyperslab(space, *any ? H5S_SELECT_OR : H5S_SELECT_SET, start, stride, count, block)));
    *any = 1;
    return DAPT_OK;
}

/* How a dataset is seen as a matrix: a 2-D [N, d] dataset as it is; a 3-D
 * or 4-D one, optionally indexed on its first dimension ("hidden_states[3]"
 * of dapt forward), as [product of the other leading sizes, last size]:
 * token rows of [B, S, H] hidden states. */
typedef struct layout {
    char name[256];   /* the dataset, without "[i]" */
    int ndim;
    hsize_t dims[DAPT_H5_MAX_DIMS];
    long long index;  /* first-dimension index, or -1 */
    int64_t rows, cols;
} layout;

static dapt_status parse_layout(const dapt_h5file *f, const char *spec, layout *lay)
{
    memset(lay, 0, sizeof *lay);
    lay->index = -1;
    snprintf(lay->name, sizeof lay->name, "%s", spec);
    char *open = strrchr(lay->name, '[');
    size_t len = strlen(lay->name);
    if (open && len && lay->name[len - 1] == ']') {
        char *end = NULL;
        lay->index = strtoll(open + 1, &end, 10);
        if (end != lay->name + len - 1 || lay->index < 0)
            return DAPT_ERROR(DAPT_ERR_ARG, "%s: '%s' is not DATASET or DATASET[index]", f->path, spec);
        *open = 0;
    }
    if (!dapt_h5_exists(f, lay->name)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no dataset '%s'", f->path, lay->name);
    int64_t dims[DAPT_H5_MAX_DIMS] = {0};
    dapt_h5_type type;
    DAPT_CHECK(dapt_h5_info(f, lay->name, &lay->ndim, dims, &type));
    const int need = lay->index >= 0 ? 3 : 2;
    if (lay->ndim < need)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: dataset '%s' has %d dimension%s; dapt analyze needs a [N, d] matrix%s",
                          f->path, lay->name, lay->ndim, lay->ndim == 1 ? "" : "s",
                          lay->index >= 0 ? " after the index" : " (2-D, or 3-/4-D whose leading sizes make the rows)");
    if (type != DAPT_H5_F32 && type != DAPT_H5_F64)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: dataset '%s' is %s; dapt analyze reads float32 or float64", f->path,
                          lay->name, dapt_h5_type_name(type));
    if (lay->index >= 0 && lay->index >= dims[0])
        return DAPT_ERROR(DAPT_ERR_ARG, "%s: index %lld is outside dataset '%s' (first dimension %lld)", f->path,
                          lay->index, lay->name, (long long)dims[0]);
    lay->rows = 1;
    for (int k = 0; k < lay->ndim; k++) lay->dims[k] = (hsize_t)dims[k];
    for (int k = lay->index >= 0 ? 1 : 0; k < lay->ndim - 1; k++) lay->rows *= dims[k];
    lay->cols = dims[lay->ndim - 1];
    if (lay->rows < 1 || lay->cols < 1)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: dataset '%s' is empty", f->path, spec);
    return DAPT_OK;
}

/* Selects, in an N-D dataspace seen as [rows, cols], the global rows
 * [g0, g0 + len) x the owned columns c: one hyperslab (pair) per run of rows
 * that stays inside one slice of the second-to-last dimension. */
static dapt_status select_flat_rows(hid_t fs, const layout *lay, int64_t g0, int64_t len, const owned *c, int *any)
{
    const int nd = lay->ndim;
    const int64_t S = (int64_t)lay->dims[nd - 2];
    for (int64_t r = g0; r < g0 + len;) {
        int64_t s = r % S, run = S - s < g0 + len - r ? S - s : g0 + len - r;
        hsize_t start[DAPT_H5_MAX_DIMS], stride[DAPT_H5_MAX_DIMS], count[DAPT_H5_MAX_DIMS], block[DAPT_H5_MAX_DIMS];
        int64_t outer = r / S;
        for (int k = nd - 3; k >= 0; k--) {
            if (k == 0 && lay->index >= 0) start[0] = (hsize_t)lay->index;
            else {
                start[k] = (hsize_t)(outer % (int64_t)lay->dims[k]);
                outer /= (int64_t)lay->dims[k];
            }
            stride[k] = count[k] = block[k] = 1;
        }
        start[nd - 2] = (hsize_t)s;
        stride[nd - 2] = count[nd - 2] = 1;
        block[nd - 2] = (hsize_t)run;
        for (int tail = 0; tail < 2; tail++) {
            if (tail ? !c->tail_len : !c->full) continue;
            start[nd - 1] = tail ? c->tail_start : c->start;
            stride[nd - 1] = tail ? 1 : c->stride;
            count[nd - 1] = tail ? 1 : c->full;
            block[nd - 1] = tail ? c->tail_len : c->block;
            DAPT_CHECK(DAPT_H5(H5Sselect_hyperslab(fs, *any ? H5S_SELECT_OR : H5S_SELECT_SET, start, stride, count, block)));
            *any = 1;
        }
        r += run;
    }
    return DAPT_OK;
}

/* Selects rows r x columns c of fs (nothing when either is empty). */
static dapt_status select_rows_cols(hid_t fs, const owned *r, const owned *c)
{
    int any = 0;
    for (int part = 0; part < 4; part++) DAPT_CHECK(select_part(fs, r, part & 1, c, part >> 1, &any));
    if (!any) DAPT_CHECK(DAPT_H5(H5Sselect_none(fs)));
    return DAPT_OK;
}

/* One collective read of local row blocks [k0, k1) (possibly none) into
 * rowmajor, then into A's local rows k0 * mb, ... (checking every value). */
static dapt_status read_chunk(const dapt_h5file *f, const layout *lay, hid_t ds, hid_t dxpl, dapt_dmat *A,
                              hsize_t k0, hsize_t k1, double *rowmajor)
{
    const char *name = lay->name;
    const dapt_pgrid *g = A->grid;
    owned r = owned_range(owned_blocks(A->m, A->mb, g->myrow, g->nprow), k0, k1);
    owned c = owned_blocks(A->n, A->nb, g->mycol, g->npcol);
    const int row0 = (int)(k0 * (hsize_t)A->mb);
    int row_end = (int)(k1 * (hsize_t)A->mb);
    if (row_end > A->locr) row_end = A->locr;
    const int rows = k1 > k0 ? row_end - row0 : 0;
    hsize_t n = (hsize_t)rows * (hsize_t)A->locc, mdim = n ? n : 1;
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    dapt_status st = DAPT_OK;
    DAPT_TRY(DAPT_H5(fs = H5Dget_space(ds)));
    DAPT_TRY(DAPT_H5(ms = H5Screate_simple(1, &mdim, NULL)));
    if (n && lay->ndim == 2) {
        DAPT_TRY(select_rows_cols(fs, &r, &c));
    } else if (n) {
        int any = 0;
        for (hsize_t k = k0; k < k1; k++) {
            int64_t g0 = ((int64_t)k * g->nprow + g->myrow) * A->mb, len = A->m - g0 < A->mb ? A->m - g0 : A->mb;
            DAPT_TRY(select_flat_rows(fs, lay, g0, len, &c, &any));
        }
    } else {
        DAPT_TRY(DAPT_H5(H5Sselect_none(fs)));
    }
    if (!n) DAPT_TRY(DAPT_H5(H5Sselect_none(ms)));
    hssize_t picked = H5Sget_select_npoints(fs);
    DAPT_TRY(DAPT_H5(picked));
    if ((hsize_t)picked != n)
        DAPT_THROW(DAPT_ERR_INTERNAL, "%s: '%s': selected %lld elements for %d x %d local rows", f->path, name,
                   (long long)picked, rows, A->locc);
    DAPT_TRY(DAPT_H5(H5Dread(ds, H5T_NATIVE_DOUBLE, ms, fs, dxpl, rowmajor)));
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < A->locc; j++) {
            double v = rowmajor[(size_t)i * A->locc + j];
            if (!isfinite(v) && st == DAPT_OK)
                st = DAPT_ERROR(DAPT_ERR_NUMERIC, "%s: dataset '%s' has %s at [%lld, %lld]", f->path, name,
                                isnan(v) ? "NaN" : "an infinity", (long long)dapt_dmat_grow(A, row0 + i),
                                (long long)dapt_dmat_gcol(A, j));
            A->a[(size_t)j * A->lld + row0 + i] = v;
        }
cleanup:
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return st;
}

/* Every rank reads its blocks in the same number of collective calls. */
static dapt_status read_blocks(const dapt_h5file *f, const layout *lay, dapt_dmat *A)
{
    const char *name = lay->name;
    const hsize_t local_blocks = (hsize_t)((A->locr + A->mb - 1) / A->mb);
    const size_t row_block_bytes = (size_t)A->mb * (size_t)(A->locc ? A->locc : 1) * sizeof(double);
    hsize_t per = read_chunk_bytes() / row_block_bytes;
    if (per < 1) per = 1;
    long long chunks = (long long)((local_blocks + per - 1) / per), most = 0;
    double *buf = NULL;
    hid_t ds = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    dapt_status st = DAPT_MPI(MPI_Allreduce(&chunks, &most, 1, MPI_LONG_LONG, MPI_MAX, A->grid->comm));
    if (st != DAPT_OK) return st;
    size_t cap = (size_t)(per < local_blocks ? per : (local_blocks ? local_blocks : 1)) * row_block_bytes;
    st = dapt_status_agree(A->grid->comm, dapt_alloc((void **)&buf, cap, "block read buffer"));
    if (st != DAPT_OK) return st;
    DAPT_TRY(DAPT_H5(ds = H5Dopen2(f->id, name, H5P_DEFAULT)));
    DAPT_TRY(DAPT_H5(dxpl = H5Pcreate(H5P_DATASET_XFER)));
    DAPT_TRY(DAPT_H5(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE)));
    for (long long k = 0; k < most; k++) {
        hsize_t k0 = (hsize_t)k * per, k1 = k0 + per;
        if (k0 > local_blocks) k0 = local_blocks;
        if (k1 > local_blocks) k1 = local_blocks;
        /* A NaN found here is reported after the remaining collective reads. */
        dapt_status one = read_chunk(f, lay, ds, dxpl, A, k0, k1, buf);
        if (one == DAPT_ERR_HDF5 || one == DAPT_ERR_INTERNAL) DAPT_TRY(one);
        if (st == DAPT_OK) st = one;
    }
cleanup:
    if (st == DAPT_ERR_HDF5 && !strstr(dapt_error_message(), f->path))
        st = DAPT_ERROR(st, "%s: reading the blocks of '%s': %s", f->path, name, dapt_error_message());
    if (dxpl >= 0) H5Pclose(dxpl);
    if (ds >= 0) H5Dclose(ds);
    free(buf);
    return st;
}

dapt_status dapt_dmat_read_h5(const dapt_h5file *f, const char *name, const dapt_pgrid *g, int block, dapt_dmat *A)
{
    layout lay;
    memset(A, 0, sizeof *A);
    /* Every rank sees the same file, so the shape checks agree by themselves;
     * agreeing anyway keeps a rank-local HDF5 failure from hanging the rest. */
    dapt_status st = dapt_status_agree(g->comm, parse_layout(f, name, &lay));
    if (st == DAPT_OK) st = dapt_status_agree(g->comm, dapt_dmat_create(g, lay.rows, lay.cols, block, block, A));
    if (st == DAPT_OK) st = dapt_status_agree(g->comm, read_blocks(f, &lay, A));
    if (st != DAPT_OK) dapt_dmat_free(A);
    return st;
}

/* Selects this rank's blocks of a 2-D dataspace (none if it owns nothing). */
static dapt_status select_owned(hid_t fs, const dapt_dmat *A)
{
    const dapt_pgrid *g = A->grid;
    owned r = owned_blocks(A->m, A->mb, g->myrow, g->nprow), c = owned_blocks(A->n, A->nb, g->mycol, g->npcol);
    return select_rows_cols(fs, &r, &c);
}

static dapt_status write_blocks(dapt_h5file *f, const char *name, const dapt_dmat *A, const double *rowmajor)
{
    hsize_t nlocal = (hsize_t)A->locr * (hsize_t)A->locc, mdim = nlocal ? nlocal : 1;
    hid_t ds = H5I_INVALID_HID, fs = H5I_INVALID_HID, ms = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    dapt_status st = DAPT_OK;
    DAPT_TRY(DAPT_H5(ds = H5Dopen2(f->id, name, H5P_DEFAULT)));
    DAPT_TRY(DAPT_H5(fs = H5Dget_space(ds)));
    DAPT_TRY(DAPT_H5(ms = H5Screate_simple(1, &mdim, NULL)));
    DAPT_TRY(select_owned(fs, A));
    if (!nlocal) DAPT_TRY(DAPT_H5(H5Sselect_none(ms)));
    DAPT_TRY(DAPT_H5(dxpl = H5Pcreate(H5P_DATASET_XFER)));
    DAPT_TRY(DAPT_H5(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE)));
    DAPT_TRY(DAPT_H5(H5Dwrite(ds, H5T_NATIVE_DOUBLE, ms, fs, dxpl, rowmajor)));
cleanup:
    if (st != DAPT_OK) st = DAPT_ERROR(st, "%s: writing the blocks of '%s': %s", f->path, name, dapt_error_message());
    if (dxpl >= 0) H5Pclose(dxpl);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

dapt_status dapt_dmat_write_h5(dapt_h5file *f, const char *name, const dapt_dmat *A)
{
    const int64_t dims[2] = {A->m, A->n};
    dapt_status st = dapt_h5_create_dataset(f, name, DAPT_H5_F64, 2, dims);
    if (st != DAPT_OK) return st;
    double *tmp = NULL;
    st = dapt_alloc((void **)&tmp, sizeof(double) * (size_t)(A->locr ? A->locr : 1) * (size_t)(A->locc ? A->locc : 1),
                    "block write buffer");
    if (st == DAPT_OK)
        for (int i = 0; i < A->locr; i++)
            for (int j = 0; j < A->locc; j++) tmp[(size_t)i * A->locc + j] = A->a[(size_t)j * A->lld + i];
    st = dapt_status_agree(A->grid->comm, st);
    if (st == DAPT_OK) st = dapt_status_agree(A->grid->comm, write_blocks(f, name, A, tmp));
    free(tmp);
    return st;
}
