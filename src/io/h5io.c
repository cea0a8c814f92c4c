/* Parallel HDF5 helpers (see include/dapt/h5io.h). */
#include "dapt/h5io.h"

#include "dapt/log.h"
#include "dapt/provenance.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------ */

/* Records "FILE: OBJECT: what failed: <innermost HDF5 message>". */
static dapt_status h5fail(const char *file, const char *obj, const char *what, int line)
{
    char cause[256];
    dapt_h5_error_cause(cause, sizeof cause);
    return dapt_error_set(DAPT_ERR_HDF5, __FILE__, line, "%s: %s: %s failed: %s", file, obj ? obj : "/",
                          what, cause);
}
#define H5FAIL(f, obj, what) h5fail((f)->path, (obj), (what), __LINE__)

/* A failed write or flush of dataset data: most often a full disk. */
static dapt_status write_fail(const char *file, const char *obj, const char *what, int line)
{
    char cause[256];
    dapt_h5_error_cause(cause, sizeof cause);
    return dapt_error_set(DAPT_ERR_IO, __FILE__, line, "%s: %s: %s failed (disk full?): %s", file, obj, what,
                          cause);
}
#define WRITEFAIL(f, obj, what) write_fail((f)->path, (obj), (what), __LINE__)

/* HDF5 prints its error stack by default; dapt reports one line instead. */
static void quiet_hdf5(void) { DAPT_H5_WARN(H5Eset_auto2(H5E_DEFAULT, NULL, NULL)); }

/* Closing on a path that cannot propagate a failure (the object was only
 * read, or an error is already on its way): a failure is logged. */
#define CLOSE(fn, id)                                                         \
    do {                                                                      \
        if ((id) >= 0) DAPT_H5_WARN(fn(id));                                  \
    } while (0)


/* ---- types ------------------------------------------------------------- */

size_t dapt_h5_type_size(dapt_h5_type t)
{
    static const size_t sizes[DAPT_H5_TYPE_COUNT] = {4, 8, 4, 8, 1, 2, 4};
    return (int)t >= 0 && t < DAPT_H5_TYPE_COUNT ? sizes[t] : 0;
}

const char *dapt_h5_type_name(dapt_h5_type t)
{
    static const char *const names[DAPT_H5_TYPE_COUNT] = {"float32", "float64", "int32", "int64",
                                                           "uint8",   "uint16",  "uint32"};
    return (int)t >= 0 && t < DAPT_H5_TYPE_COUNT ? names[t] : "unknown";
}

/* Little-endian file types: files are the same bytes on every machine. */
static hid_t file_type(dapt_h5_type t)
{
    switch (t) {
    case DAPT_H5_F32: return H5T_IEEE_F32LE;
    case DAPT_H5_F64: return H5T_IEEE_F64LE;
    case DAPT_H5_I32: return H5T_STD_I32LE;
    case DAPT_H5_I64: return H5T_STD_I64LE;
    case DAPT_H5_U8: return H5T_STD_U8LE;
    case DAPT_H5_U16: return H5T_STD_U16LE;
    case DAPT_H5_U32: return H5T_STD_U32LE;
    default: return H5I_INVALID_HID;
    }
}

static hid_t mem_type(dapt_h5_type t)
{
    switch (t) {
    case DAPT_H5_F32: return H5T_NATIVE_FLOAT;
    case DAPT_H5_F64: return H5T_NATIVE_DOUBLE;
    case DAPT_H5_I32: return H5T_NATIVE_INT32;
    case DAPT_H5_I64: return H5T_NATIVE_INT64;
    case DAPT_H5_U8: return H5T_NATIVE_UINT8;
    case DAPT_H5_U16: return H5T_NATIVE_UINT16;
    case DAPT_H5_U32: return H5T_NATIVE_UINT32;
    default: return H5I_INVALID_HID;
    }
}

static int is_float_type(dapt_h5_type t) { return t == DAPT_H5_F32 || t == DAPT_H5_F64; }

/* ---- property lists ---------------------------------------------------- */

static dapt_status make_fapl(const char *path, MPI_Comm comm, hid_t *out)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return h5fail(path, NULL, "H5Pcreate(file access)", __LINE__);
    /* Fixed bounds: the on-disk format does not depend on the library's
     * defaults, and 1.10 readers (h5py on Debian 12) read it.  Datasets of
     * 64 KiB and more start on a 4 KiB page: a buffered write of 31 MB at an
     * unaligned file offset took 0.1 s on ext4 where the aligned one took
     * 0.008 s (docs/performance.md, "Checkpoint writes"). */
    if (H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0 ||
        H5Pset_alignment(fapl, (hsize_t)64 << 10, (hsize_t)4 << 10) < 0) {
        dapt_status st = h5fail(path, NULL, "setting the MPI-IO driver", __LINE__);
        CLOSE(H5Pclose, fapl);
        return st;
    }
    *out = fapl;
    return DAPT_OK;
}

static hid_t object_cpl(hid_t cls)
{
    hid_t p = H5Pcreate(cls);
    if (p < 0) return p;
    if (H5Pset_obj_track_times(p, 0) < 0) {
        CLOSE(H5Pclose, p);
        return H5I_INVALID_HID;
    }
    return p;
}

/* ---- files ------------------------------------------------------------- */

/* The build identity always; the run's command line, rank count, time and
 * host when the driver recorded them (provenance.h).  All are rank 0's
 * (MPI does not promise every rank the same argv), so every rank writes the
 * same attribute values, as parallel HDF5 requires. */
static dapt_status put_provenance(dapt_h5file *f, int rank)
{
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "dapt_version", dapt_provenance_version()));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "git_commit", dapt_provenance_git_commit()));
    if (!dapt_provenance_command()) return DAPT_OK;
    char stamp[2][256] = {{0}}; /* created, host */
    int len = 0;                /* of the command line, with its NUL */
    dapt_status st = DAPT_OK;
    if (rank == 0) {
        st = dapt_provenance_now(stamp[0], sizeof stamp[0]);
        if (st == DAPT_OK) st = dapt_provenance_host(stamp[1], sizeof stamp[1]);
        len = (int)strlen(dapt_provenance_command()) + 1;
    }
    DAPT_CHECK(dapt_status_agree(f->comm, st));
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(stamp, (int)sizeof stamp, MPI_CHAR, 0, f->comm)));
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&len, 1, MPI_INT, 0, f->comm)));
    char *command = NULL;
    DAPT_CHECK(dapt_alloc((void **)&command, (size_t)len, "the command line"));
    if (rank == 0) memcpy(command, dapt_provenance_command(), (size_t)len);
    st = DAPT_MPI(MPI_Bcast(command, len, MPI_CHAR, 0, f->comm));
    if (st == DAPT_OK) st = dapt_h5_attr_set_string(f, "/", "command", command);
    free(command);
    DAPT_CHECK(st);
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", "mpi_ranks", dapt_provenance_ranks()));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "created", stamp[0]));
    return dapt_h5_attr_set_string(f, "/", "host", stamp[1]);
}

static void init_handle(dapt_h5file *f, MPI_Comm comm)
{
    memset(f, 0, sizeof *f);
    f->id = H5I_INVALID_HID;
    f->comm = comm;
}

dapt_status dapt_h5_create(MPI_Comm comm, const char *path, int force, const dapt_config *cfg,
                           dapt_h5file *f)
{
    init_handle(f, comm);
    quiet_hdf5();
    if (!cfg) return DAPT_ERROR(DAPT_ERR_ARG, "%s: no run configuration to record", path);
    if (strlen(path) + 1 > sizeof f->path)
        return DAPT_ERROR(DAPT_ERR_ARG, "output path too long: %.80s...", path);
    memcpy(f->path, path, strlen(path) + 1); /* length checked above */
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));

    /* Rank 0 decides whether the name is free and which temporary name to
     * use; the others learn both by broadcast. */
    dapt_status st = DAPT_OK;
    if (rank == 0) {
        struct stat sb;
        if (stat(path, &sb) == 0 && !force)
            st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", path);
        else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s is a directory", path);
        snprintf(f->tmp_path, sizeof f->tmp_path, "%s.tmp.%ld", path, (long)getpid());
    }
    DAPT_CHECK(dapt_status_agree(comm, st));
    st = DAPT_MPI(MPI_Bcast(f->tmp_path, (int)sizeof f->tmp_path, MPI_CHAR, 0, comm));
    DAPT_CHECK(dapt_status_agree(comm, st));

    hid_t fapl = H5I_INVALID_HID, fcpl = H5I_INVALID_HID;
    char *ini = NULL;
    DAPT_TRY(make_fapl(path, comm, &fapl));
    fcpl = object_cpl(H5P_FILE_CREATE); /* the root group's timestamps too */
    if (fcpl < 0) DAPT_THROW(DAPT_ERR_HDF5, "%s: cannot make file creation properties", path);
    f->id = H5Fcreate(f->tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    if (f->id < 0) {
        st = h5fail(f->tmp_path, NULL, "creating the file (does the directory exist and is it writable?)",
                    __LINE__);
        goto cleanup;
    }
    f->writable = 1;
    DAPT_TRY(dapt_config_to_ini(cfg, 0, &ini));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "dapt_config", ini));
    DAPT_TRY(put_provenance(f, rank));
cleanup:
    free(ini);
    CLOSE(H5Pclose, fapl);
    CLOSE(H5Pclose, fcpl);
    st = dapt_status_agree(comm, st);
    if (st != DAPT_OK && f->id >= 0) dapt_h5_abort(f);
    return st;
}

dapt_status dapt_h5_open(MPI_Comm comm, const char *path, dapt_h5file *f)
{
    init_handle(f, comm);
    quiet_hdf5();
    if (strlen(path) + 1 > sizeof f->path)
        return DAPT_ERROR(DAPT_ERR_ARG, "input path too long: %.80s...", path);
    memcpy(f->path, path, strlen(path) + 1); /* length checked above */
    dapt_status st = DAPT_OK;
    if (access(path, R_OK) != 0) st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    DAPT_CHECK(dapt_status_agree(comm, st));
    hid_t fapl = H5I_INVALID_HID;
    DAPT_TRY(make_fapl(path, comm, &fapl));
    f->id = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f->id < 0) {
        st = h5fail(path, NULL, "opening as HDF5", __LINE__);
        st = DAPT_ERR_FORMAT;
    }
cleanup:
    CLOSE(H5Pclose, fapl);
    return dapt_status_agree(comm, st);
}

static dapt_status fsync_path(const char *path, int directory)
{
    int fd = open(path, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems refuse fsync on directories (EINVAL): the rename is
     * still atomic there, only not yet durable. */
    if (rc != 0 && !(directory && (err == EINVAL || err == EBADF)))
        return DAPT_ERROR(DAPT_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    return DAPT_OK;
}

static void parent_dir(const char *path, char *dir, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, len, ".");
    else if (slash == path) snprintf(dir, len, "/");
    else snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

dapt_status dapt_h5_commit(dapt_h5file *f)
{
    if (!f->writable || f->id < 0)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: commit of a file not open for writing", f->path);
    /* Checksums and descriptions go on last, when every dataset exists. */
    dapt_status st = dapt_h5_seal_all(f);
    if (st == DAPT_OK) st = dapt_status_agree(f->comm, dapt_h5_describe(f));
    if (st != DAPT_OK) {
        dapt_h5_abort(f);
        return st;
    }
    if (H5Fclose(f->id) < 0) st = H5FAIL(f, NULL, "closing");
    f->id = H5I_INVALID_HID;
    st = dapt_status_agree(f->comm, st); /* also the barrier: every rank's data is out */
    int rank = -1;
    dapt_status rank_st = DAPT_MPI(MPI_Comm_rank(f->comm, &rank));
    if (rank_st != DAPT_OK) rank = -1;
    if (st == DAPT_OK) st = rank_st;
    if (rank == 0) {
        if (st == DAPT_OK) st = fsync_path(f->tmp_path, 0);
        if (st == DAPT_OK && rename(f->tmp_path, f->path) != 0)
            st = DAPT_ERROR(DAPT_ERR_IO, "%s: cannot rename %s into place: %s", f->path, f->tmp_path,
                            strerror(errno));
        if (st == DAPT_OK) {
            char dir[4096];
            parent_dir(f->path, dir, sizeof dir);
            st = fsync_path(dir, 1);
        } else if (unlink(f->tmp_path) != 0 && errno != ENOENT) {
            dapt_warn("%s: cannot remove %s: %s", f->path, f->tmp_path, strerror(errno));
        }
    }
    st = dapt_status_agree(f->comm, st);
    f->writable = 0;
    return st;
}

void dapt_h5_abort(dapt_h5file *f)
{
    if (f->writable && f->id >= 0) {
        /* Empty the temporary file first, so that HDF5's closing metadata
         * flush succeeds even on a full disk: otherwise the file stays
         * open and HDF5 crashes at MPI_Finalize.  Best effort: it is
         * removed below anyway. */
        int rank = 0;
        if (DAPT_MPI_WARN(MPI_Comm_rank(f->comm, &rank))) rank = -1;
        DAPT_MPI_WARN(MPI_Barrier(f->comm));
        if (rank == 0 && f->tmp_path[0] && truncate(f->tmp_path, 0) != 0)
            dapt_warn("%s: cannot empty %s before removing it: %s", f->path, f->tmp_path, strerror(errno));
        DAPT_MPI_WARN(MPI_Barrier(f->comm));
    }
    CLOSE(H5Fclose, f->id);
    f->id = H5I_INVALID_HID;
    DAPT_H5_WARN(H5Eclear2(H5E_DEFAULT));
    if (f->writable) {
        /* Every rank has closed the file before rank 0 removes it, and the
         * name is free when any rank returns. */
        DAPT_MPI_WARN(MPI_Barrier(f->comm));
        int rank = 0;
        if (!DAPT_MPI_WARN(MPI_Comm_rank(f->comm, &rank)) && rank == 0 && unlink(f->tmp_path) != 0 &&
            errno != ENOENT)
            dapt_warn("%s: cannot remove %s: %s", f->path, f->tmp_path, strerror(errno));
        DAPT_MPI_WARN(MPI_Barrier(f->comm));
    }
    f->writable = 0;
}

void dapt_h5_close(dapt_h5file *f)
{
    if (f->writable) {
        dapt_h5_abort(f);
        return;
    }
    CLOSE(H5Fclose, f->id);
    f->id = H5I_INVALID_HID;
}

/* ---- groups ------------------------------------------------------------ */

/* Creates the missing groups on the way to name (all of it when
 * include_last), with timestamps off. */
static dapt_status make_groups(dapt_h5file *f, const char *name, int include_last)
{
    char buf[1024];
    if (strlen(name) >= sizeof buf) return DAPT_ERROR(DAPT_ERR_ARG, "%s: object name too long: %s", f->path, name);
    snprintf(buf, sizeof buf, "%s", name);
    dapt_status st = DAPT_OK;
    hid_t gcpl = object_cpl(H5P_GROUP_CREATE);
    if (gcpl < 0) return H5FAIL(f, name, "making group properties");
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        int at_end = i == len;
        if (buf[i] != '/' && !at_end) continue;
        if (at_end && !include_last) break;
        char saved = buf[i];
        buf[i] = '\0';
        if (buf[0] != '\0' && strcmp(buf, "/") != 0) {
            htri_t ex = H5Lexists(f->id, buf, H5P_DEFAULT);
            if (ex < 0) {
                st = H5FAIL(f, buf, "checking for group");
            } else if (!ex) {
                hid_t g = H5Gcreate2(f->id, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT);
                if (g < 0) st = H5FAIL(f, buf, "creating group");
                else if (H5Gclose(g) < 0) st = H5FAIL(f, buf, "closing group");
            }
        }
        buf[i] = saved;
        if (st != DAPT_OK) break;
    }
    CLOSE(H5Pclose, gcpl);
    return st;
}

dapt_status dapt_h5_group(dapt_h5file *f, const char *name) { return make_groups(f, name, 1); }

int dapt_h5_exists(const dapt_h5file *f, const char *name)
{
    if (!strcmp(name, "/")) return 1;
    /* Walk the path: H5Lexists fails (rather than returning 0) when an
     * intermediate group is missing. */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && i != len) continue;
        char saved = buf[i];
        buf[i] = '\0';
        htri_t ex = H5Lexists(f->id, buf, H5P_DEFAULT);
        buf[i] = saved;
        if (ex <= 0) {
            if (ex < 0) DAPT_H5_WARN(H5Eclear2(H5E_DEFAULT));
            return 0;
        }
    }
    return 1;
}

typedef struct list_ctx {
    dapt_status (*fn)(const char *, void *);
    void *user;
    dapt_status st;
} list_ctx;

static herr_t list_one(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    (void)group;
    (void)info;
    list_ctx *c = data;
    c->st = c->fn(name, c->user);
    return c->st == DAPT_OK ? 0 : 1;
}

dapt_status dapt_h5_list(const dapt_h5file *f, const char *group,
                         dapt_status (*fn)(const char *name, void *user), void *user)
{
    hid_t g = H5Gopen2(f->id, group, H5P_DEFAULT);
    if (g < 0) return H5FAIL(f, group, "opening group");
    list_ctx c = {fn, user, DAPT_OK};
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, list_one, &c);
    CLOSE(H5Gclose, g);
    if (c.st != DAPT_OK) return c.st;
    if (rc < 0) return H5FAIL(f, group, "listing group");
    return DAPT_OK;
}

/* ---- datasets ---------------------------------------------------------- */

static dapt_status check_shape(const dapt_h5file *f, const char *name, int ndim, const int64_t *dims,
                               const int64_t *start, const int64_t *count)
{
    if (ndim < 0 || ndim > DAPT_H5_MAX_DIMS)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: %d dimensions (0..%d supported)", f->path, name, ndim,
                          DAPT_H5_MAX_DIMS);
    for (int d = 0; d < ndim; d++) {
        if (dims && dims[d] < 0)
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: negative dimension %lld", f->path, name,
                              (long long)dims[d]);
        if (start && count &&
            (start[d] < 0 || count[d] < 0 || (dims && start[d] + count[d] > dims[d])))
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: slab start %lld count %lld outside dimension %d (%lld)",
                              f->path, name, (long long)start[d], (long long)count[d], d,
                              dims ? (long long)dims[d] : -1LL);
    }
    return DAPT_OK;
}

/* Selects start/count in fspace and makes the matching memory space; an
 * empty slab selects nothing (the rank still takes part). */
static dapt_status select_slab(const dapt_h5file *f, const char *name, hid_t fspace, int ndim,
                               const int64_t *start, const int64_t *count, int participate, hid_t *mspace,
                               size_t *numel)
{
    hsize_t hs[DAPT_H5_MAX_DIMS], hc[DAPT_H5_MAX_DIMS];
    size_t n = 1;
    for (int d = 0; d < ndim; d++) {
        hs[d] = (hsize_t)start[d];
        hc[d] = (hsize_t)count[d];
        n *= (size_t)count[d];
    }
    if (!participate) n = 0;
    *numel = n;
    if (n == 0) {
        hsize_t one = 1;
        *mspace = H5Screate_simple(1, &one, NULL);
        if (*mspace < 0 || H5Sselect_none(*mspace) < 0 || H5Sselect_none(fspace) < 0)
            return H5FAIL(f, name, "selecting an empty slab");
        return DAPT_OK;
    }
    if (ndim == 0) {
        *mspace = H5Screate(H5S_SCALAR);
        if (*mspace < 0) return H5FAIL(f, name, "making a scalar space");
        return DAPT_OK;
    }
    *mspace = H5Screate_simple(ndim, hc, NULL);
    if (*mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, hs, NULL, hc, NULL) < 0)
        return H5FAIL(f, name, "selecting a hyperslab");
    return DAPT_OK;
}

static hid_t make_dxpl(dapt_h5_xfer xfer)
{
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    if (dxpl >= 0 &&
        H5Pset_dxpl_mpio(dxpl, xfer == DAPT_H5_INDEPENDENT ? H5FD_MPIO_INDEPENDENT : H5FD_MPIO_COLLECTIVE) < 0) {
        CLOSE(H5Pclose, dxpl);
        return H5I_INVALID_HID;
    }
    return dxpl;
}

/* Creates dataset name of file type ftype (ndim 0 = scalar).  Collective. */
static dapt_status create_impl(dapt_h5file *f, const char *name, hid_t ftype, int ndim, const int64_t *dims,
                               hid_t *dset_out)
{
    *dset_out = H5I_INVALID_HID;
    if (!f->writable) return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: file not open for writing", f->path, name);
    if (ftype < 0) return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: bad element type", f->path, name);
    DAPT_CHECK(check_shape(f, name, ndim, dims, NULL, NULL));
    DAPT_CHECK(make_groups(f, name, 0));
    dapt_status st = DAPT_OK;
    hid_t fspace = H5I_INVALID_HID, dcpl = H5I_INVALID_HID, dset = H5I_INVALID_HID;
    hsize_t hd[DAPT_H5_MAX_DIMS];
    for (int d = 0; d < ndim; d++) hd[d] = (hsize_t)dims[d];
    fspace = ndim == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(ndim, hd, NULL);
    if (fspace < 0) {
        st = H5FAIL(f, name, "making the dataspace");
        goto cleanup;
    }
    dcpl = object_cpl(H5P_DATASET_CREATE);
    /* Every element is written by some rank: no fill pass (and no
     * rank-count-dependent fill writes). */
    if (dcpl < 0 || H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) < 0 ||
        H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY) < 0) {
        st = H5FAIL(f, name, "making dataset properties");
        goto cleanup;
    }
    dset = H5Dcreate2(f->id, name, ftype, fspace, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dset < 0) st = H5FAIL(f, name, "creating dataset");
cleanup:
    CLOSE(H5Pclose, dcpl);
    CLOSE(H5Sclose, fspace);
    *dset_out = dset;
    return st;
}

/* Writes this rank's selection (numel elements; the dataset has total) of
 * an open dataset.  A dataset without elements has no storage to write to;
 * in independent mode a rank with nothing to write makes no call. */
static dapt_status transfer_write(dapt_h5file *f, const char *name, hid_t dset, hid_t mtype, hid_t mspace,
                                  hid_t fspace, size_t numel, size_t total, dapt_h5_xfer xfer, const void *data)
{
    static const char dummy[8];
    if (total == 0 || (xfer == DAPT_H5_INDEPENDENT && numel == 0)) return DAPT_OK;
    hid_t dxpl = make_dxpl(xfer);
    if (dxpl < 0) return H5FAIL(f, name, "making transfer properties");
    dapt_status st = DAPT_OK;
    if (H5Dwrite(dset, mtype, mspace, fspace, dxpl, numel && data ? data : dummy) < 0)
        st = WRITEFAIL(f, name, "write");
    CLOSE(H5Pclose, dxpl);
    return st;
}

/* Shape of an open dataset's space: *ndim, dims and the element count. */
static dapt_status space_shape(const dapt_h5file *f, const char *name, hid_t space, int *ndim,
                               int64_t dims[DAPT_H5_MAX_DIMS], size_t *total)
{
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd < 0) return H5FAIL(f, name, "reading dataset rank");
    if (nd > DAPT_H5_MAX_DIMS)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: %d dimensions (at most %d supported)", f->path, name, nd,
                          DAPT_H5_MAX_DIMS);
    hsize_t hd[DAPT_H5_MAX_DIMS];
    if (H5Sget_simple_extent_dims(space, hd, NULL) < 0) return H5FAIL(f, name, "reading dataset shape");
    size_t n = 1;
    for (int d = 0; d < DAPT_H5_MAX_DIMS; d++) {
        dims[d] = d < nd ? (int64_t)hd[d] : 1;
        if (d < nd) n *= (size_t)hd[d];
    }
    *ndim = nd;
    if (total) *total = n;
    return DAPT_OK;
}

/* Collective write of this rank's slab into an open dataset. */
static dapt_status slab_impl(dapt_h5file *f, const char *name, hid_t dset, dapt_h5_type type, const int64_t *start,
                             const int64_t *count, int participate, const void *data)
{
    dapt_status st = DAPT_OK;
    hid_t fspace = H5Dget_space(dset), mspace = H5I_INVALID_HID;
    if (fspace < 0) return H5FAIL(f, name, "reading dataset shape");
    int ndim = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    size_t total = 0, numel = 0;
    st = space_shape(f, name, fspace, &ndim, dims, &total);
    if (st == DAPT_OK && ndim > 0) st = check_shape(f, name, ndim, dims, start, count);
    if (st == DAPT_OK) st = select_slab(f, name, fspace, ndim, start, count, participate, &mspace, &numel);
    /* A rank that cannot take part in the collective write says so first:
     * otherwise the others would wait in it forever. */
    DAPT_TRY(dapt_status_agree(f->comm, st));
    st = transfer_write(f, name, dset, mem_type(type), mspace, fspace, numel, total, DAPT_H5_COLLECTIVE, data);
cleanup:
    CLOSE(H5Sclose, mspace);
    CLOSE(H5Sclose, fspace);
    return st;
}

/* Selects nb ascending, disjoint blocks [starts[k], +counts[k]) of the 1-D
 * fspace and makes the matching memory space (nothing selected when the
 * blocks are empty; the rank still takes part). */
static dapt_status select_blocks(const dapt_h5file *f, const char *name, hid_t fspace, int64_t n, size_t nb,
                                 const int64_t *starts, const int64_t *counts, hid_t *mspace, size_t *numel)
{
    hsize_t total = 0;
    if (H5Sselect_none(fspace) < 0) return H5FAIL(f, name, "selecting blocks");
    for (size_t k = 0; k < nb; k++) {
        if (counts[k] <= 0) continue;
        if (starts[k] < 0 || starts[k] + counts[k] > n)
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: block [%lld, +%lld) outside %lld elements", f->path,
                              name, (long long)starts[k], (long long)counts[k], (long long)n);
        hsize_t off = (hsize_t)starts[k], cnt = (hsize_t)counts[k];
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_OR, &off, NULL, &cnt, NULL) < 0)
            return H5FAIL(f, name, "selecting a block");
        total += cnt;
    }
    hsize_t mdim = total ? total : 1;
    *mspace = H5Screate_simple(1, &mdim, NULL);
    if (*mspace < 0 || (total == 0 && H5Sselect_none(*mspace) < 0))
        return H5FAIL(f, name, "making the memory space");
    *numel = (size_t)total;
    return DAPT_OK;
}

/* Creates 1-D dataset name (file type ftype, n elements) and writes this
 * rank's blocks from data (memory type mtype). */
static dapt_status blocks_impl(dapt_h5file *f, const char *name, hid_t ftype, hid_t mtype, int64_t n, size_t nb,
                               const int64_t *starts, const int64_t *counts, const void *data, dapt_h5_xfer xfer)
{
    hid_t dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    size_t numel = 0;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_status_agree(f->comm, create_impl(f, name, ftype, 1, &n, &dset)));
    fspace = H5Dget_space(dset);
    st = fspace < 0 ? H5FAIL(f, name, "reading dataset shape")
                    : select_blocks(f, name, fspace, n, nb, starts, counts, &mspace, &numel);
    DAPT_TRY(dapt_status_agree(f->comm, st));
    st = transfer_write(f, name, dset, mtype, mspace, fspace, numel, (size_t)n, xfer, data);
cleanup:
    CLOSE(H5Sclose, mspace);
    CLOSE(H5Sclose, fspace);
    if (dset >= 0 && H5Dclose(dset) < 0 && st == DAPT_OK) st = WRITEFAIL(f, name, "closing the dataset");
    /* Every collective step ends agreed: a full disk on one rank is the same
     * error on all, and none goes on to the next collective call alone. */
    return dapt_status_agree(f->comm, st);
}

dapt_status dapt_h5_write_blocks(dapt_h5file *f, const char *name, dapt_h5_type type, int64_t n, size_t nb,
                                 const int64_t *starts, const int64_t *counts, const void *data, dapt_h5_xfer xfer)
{
    return blocks_impl(f, name, file_type(type), mem_type(type), n, nb, starts, counts, data, xfer);
}

dapt_status dapt_h5_read_blocks(const dapt_h5file *f, const char *name, dapt_h5_type type, size_t nb,
                                const int64_t *starts, const int64_t *counts, void *data)
{
    hid_t dset = H5I_INVALID_HID, fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID;
    size_t numel = 0;
    dapt_status st = DAPT_OK;
    dset = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (dset < 0) DAPT_THROW(DAPT_ERR_FORMAT, "%s: no dataset %s", f->path, name);
    fspace = H5Dget_space(dset);
    if (fspace < 0 || H5Sget_simple_extent_ndims(fspace) != 1)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s is not a 1-D dataset", f->path, name);
    hsize_t n = 0;
    if (H5Sget_simple_extent_dims(fspace, &n, NULL) < 0) DAPT_TRY(H5FAIL(f, name, "reading dataset shape"));
    DAPT_TRY(select_blocks(f, name, fspace, (int64_t)n, nb, starts, counts, &mspace, &numel));
    if (numel > 0 && H5Dread(dset, mem_type(type), mspace, fspace, H5P_DEFAULT, data) < 0)
        DAPT_TRY(H5FAIL(f, name, "reading blocks"));
cleanup:
    CLOSE(H5Sclose, mspace);
    CLOSE(H5Sclose, fspace);
    CLOSE(H5Dclose, dset);
    return st;
}

/* ---- raw extents ------------------------------------------------------- */

dapt_status dapt_h5_raw_offset(const dapt_h5file *f, const char *name, dapt_h5_type type, int64_t *offset)
{
    *offset = -1;
    hid_t dset = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (dset < 0) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no dataset %s", f->path, name);
    dapt_status st = DAPT_OK;
    hid_t dcpl = H5Dget_create_plist(dset), ftype = H5Dget_type(dset), space = H5Dget_space(dset);
    hid_t fcpl = H5Fget_create_plist(f->id);
    hsize_t userblock = 1;
    if (dcpl < 0 || ftype < 0 || space < 0 || fcpl < 0 || H5Pget_userblock(fcpl, &userblock) < 0) {
        st = H5FAIL(f, name, "reading dataset properties");
        goto cleanup;
    }
    const hid_t mtype = mem_type(type);
    const hssize_t numel = H5Sget_simple_extent_npoints(space);
    if (mtype < 0 || numel <= 0 || userblock != 0 || H5Tequal(ftype, mtype) <= 0 ||
        H5Pget_layout(dcpl) != H5D_CONTIGUOUS || H5Pget_nfilters(dcpl) != 0 || H5Pget_external_count(dcpl) != 0)
        goto cleanup;
    /* Allocated storage of exactly the elements' bytes, nothing else. */
    const haddr_t a = H5Dget_offset(dset);
    if (a == HADDR_UNDEF || a > (haddr_t)(INT64_MAX / 2) ||
        H5Dget_storage_size(dset) != (hsize_t)numel * dapt_h5_type_size(type))
        goto cleanup;
    *offset = (int64_t)a;
cleanup:
    DAPT_H5_WARN(H5Eclear2(H5E_DEFAULT));
    CLOSE(H5Pclose, fcpl);
    CLOSE(H5Sclose, space);
    CLOSE(H5Tclose, ftype);
    CLOSE(H5Pclose, dcpl);
    CLOSE(H5Dclose, dset);
    return st;
}

static int cmp_extent(const void *x, const void *y)
{
    const dapt_h5_extent *a = x, *b = y;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Sorts this rank's extents by file offset and checks them: offsets come
 * from the file's own metadata, so in a read, datasets sharing bytes are
 * damage; in a write, a bug. */
static dapt_status sort_extents(const dapt_h5file *f, dapt_h5_extent *e, size_t n, int write)
{
    if (n) qsort(e, n, sizeof *e, cmp_extent);
    for (size_t i = 0; i < n; i++) {
        if (e[i].bytes < 0 || e[i].offset < 0 || e[i].bytes > INT64_MAX / 4 - e[i].offset)
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: a raw extent of %lld bytes at offset %lld", f->path,
                              (long long)e[i].bytes, (long long)e[i].offset);
        if (i && e[i].offset < e[i - 1].offset + e[i - 1].bytes)
            return write ? DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: raw extents overlap at byte %lld", f->path,
                                      (long long)e[i].offset)
                         : DAPT_ERROR(DAPT_ERR_FORMAT, "%s: datasets overlap at byte %lld: the file is corrupted",
                                      f->path, (long long)e[i].offset);
    }
    return DAPT_OK;
}

/* Each pwrite / pread moves at most this much: on this project's ext4 a
 * 31 MB pwrite took 0.05 s alone and 0.35-0.49 s while another rank wrote
 * the same file, where 1 MiB calls took 0.03 s either way
 * (docs/performance.md, "Checkpoint writes"). */
static const int64_t EXTENT_CALL = (int64_t)1 << 20;

/* This rank's sorted extents with plain pwrite / pread on a descriptor of
 * its own.  The bytes are the datasets' storage, which HDF5 allocated at
 * creation and never touches again (no fill pass), so they need no MPI-IO
 * coordination: each rank's calls go straight to the file system, at its
 * speed whatever MPI-IO component Open MPI picked (ompio's collective
 * write of the same extents took 0.3 s for 135 MB on one rank, and its
 * collective read returned wrong bytes for ranks' overlapping extents).
 * Not collective. */
static dapt_status move_extents(const dapt_h5file *f, const dapt_h5_extent *e, size_t n, int write)
{
    if (n == 0) return DAPT_OK;
    const char *path = write ? f->tmp_path : f->path;
    int fd = open(path, write ? O_WRONLY : O_RDONLY);
    if (fd < 0)
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open for %s: %s", path, write ? "writing" : "reading",
                          strerror(errno));
    dapt_status st = DAPT_OK;
    for (size_t i = 0; st == DAPT_OK && i < n; i++) {
        char *mem = e[i].mem;
        int64_t done = 0;
        while (st == DAPT_OK && done < e[i].bytes) {
            const int64_t rest = e[i].bytes - done;
            const size_t want = (size_t)(rest < EXTENT_CALL ? rest : EXTENT_CALL);
            const off_t at = (off_t)(e[i].offset + done);
            const ssize_t got = write ? pwrite(fd, mem + done, want, at) : pread(fd, mem + done, want, at);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0)
                st = DAPT_ERROR(DAPT_ERR_IO, "%s: %s %zu bytes at byte %lld failed%s: %s", path,
                                write ? "writing" : "reading", want, (long long)at, write ? " (disk full?)" : "",
                                strerror(errno));
            else if (got == 0 && write)
                st = DAPT_ERROR(DAPT_ERR_IO, "%s: no progress writing at byte %lld (disk full?)", path, (long long)at);
            else if (got == 0)
                st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: a dataset runs past byte %lld, the end of the file: the file "
                                "is truncated", path, (long long)at);
            else
                done += got;
        }
    }
    if (close(fd) != 0 && st == DAPT_OK)
        st = DAPT_ERROR(DAPT_ERR_IO, "%s: closing after writing failed (disk full?): %s", path, strerror(errno));
    return st;
}

dapt_status dapt_h5_write_extents(dapt_h5file *f, dapt_h5_extent *e, size_t n)
{
    dapt_status st = f->writable ? DAPT_OK
                                 : DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: raw write to a file not open for writing", f->path);
    if (st == DAPT_OK) st = sort_extents(f, e, n, 1);
    /* HDF5's own dirty metadata goes to other bytes of the file at the
     * next flush; the commit's sync makes both durable. */
    if (st == DAPT_OK) st = move_extents(f, e, n, 1);
    return dapt_status_agree(f->comm, st);
}

dapt_status dapt_h5_read_extents(const dapt_h5file *f, dapt_h5_extent *e, size_t n)
{
    dapt_status st = sort_extents(f, e, n, 0);
    if (st == DAPT_OK) st = move_extents(f, e, n, 0);
    return dapt_status_agree(f->comm, st);
}

/* Fixed-length UTF-8 strings of width bytes, NUL-terminated (h5py: bytes). */
static hid_t fixed_utf8(size_t width)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, width) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0) {
        CLOSE(H5Tclose, t);
        return H5I_INVALID_HID;
    }
    return t;
}

dapt_status dapt_h5_write_strings(dapt_h5file *f, const char *name, char *const *strs, size_t n)
{
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(f->comm, &rank)));
    size_t w = 1;
    for (size_t i = 0; i < n; i++)
        if (strlen(strs[i]) + 1 > w) w = strlen(strs[i]) + 1;
    char *flat = NULL;
    DAPT_CHECK(dapt_calloc((void **)&flat, n ? n : 1, w, name));
    for (size_t i = 0; i < n; i++) memcpy(flat + i * w, strs[i], strlen(strs[i]));
    dapt_status st = DAPT_OK;
    hid_t t = fixed_utf8(w);
    if (t < 0) {
        st = H5FAIL(f, name, "making a string type");
    } else {
        int64_t start = 0, count = rank == 0 ? (int64_t)n : 0;
        st = blocks_impl(f, name, t, t, (int64_t)n, 1, &start, &count, flat, DAPT_H5_COLLECTIVE);
    }
    CLOSE(H5Tclose, t);
    free(flat);
    return st;
}

dapt_status dapt_h5_read_strings(const dapt_h5file *f, const char *name, char ***strs, int64_t *n)
{
    *strs = NULL;
    *n = 0;
    if (!dapt_h5_exists(f, name)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no dataset %s", f->path, name);
    dapt_status st = DAPT_OK;
    hid_t d = H5I_INVALID_HID, ft = H5I_INVALID_HID, mt = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    char *flat = NULL, **out = NULL;
    hssize_t count = 0;
    d = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (d < 0) DAPT_TRY(H5FAIL(f, name, "opening dataset"));
    ft = H5Dget_type(d);
    sp = H5Dget_space(d);
    if (ft < 0 || sp < 0) DAPT_TRY(H5FAIL(f, name, "reading dataset type"));
    if (H5Tget_class(ft) != H5T_STRING || H5Tis_variable_str(ft) != 0 ||
        H5Sget_simple_extent_ndims(sp) != 1)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s is not an array of fixed-length strings", f->path, name);
    count = H5Sget_simple_extent_npoints(sp);
    size_t w = H5Tget_size(ft);
    if (count < 0 || w == 0) DAPT_TRY(H5FAIL(f, name, "reading dataset shape"));
    mt = fixed_utf8(w + 1); /* room for the NUL a full-width string lacks */
    if (mt < 0) DAPT_TRY(H5FAIL(f, name, "making a string type"));
    DAPT_TRY(dapt_calloc((void **)&flat, count ? (size_t)count : 1, w + 1, name));
    if (count > 0 && H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, flat) < 0)
        DAPT_TRY(H5FAIL(f, name, "reading"));
    DAPT_TRY(dapt_calloc((void **)&out, count ? (size_t)count : 1, sizeof *out, name));
    for (hssize_t i = 0; i < count; i++) {
        out[i] = strdup(flat + (size_t)i * (w + 1));
        if (!out[i]) DAPT_THROW(DAPT_ERR_NOMEM, "%s: %s: out of memory for %lld strings", f->path, name,
                                (long long)count);
    }
    *strs = out;
    *n = (int64_t)count;
    out = NULL;
cleanup:
    for (hssize_t i = 0; out && i < count; i++) free(out[i]);
    free(out);
    free(flat);
    CLOSE(H5Tclose, mt);
    CLOSE(H5Tclose, ft);
    CLOSE(H5Sclose, sp);
    CLOSE(H5Dclose, d);
    return st;
}

static dapt_status write_impl(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                              const int64_t *dims, const int64_t *start, const int64_t *count,
                              int participate, const void *data)
{
    DAPT_CHECK(dapt_status_agree(f->comm, ndim > 0 ? check_shape(f, name, ndim, dims, start, count) : DAPT_OK));
    hid_t dset = H5I_INVALID_HID;
    dapt_status st = dapt_status_agree(f->comm, create_impl(f, name, file_type(type), ndim, dims, &dset));
    if (st == DAPT_OK) st = slab_impl(f, name, dset, type, start, count, participate, data);
    if (dset >= 0 && H5Dclose(dset) < 0 && st == DAPT_OK) st = WRITEFAIL(f, name, "closing the dataset");
    return dapt_status_agree(f->comm, st);
}

dapt_status dapt_h5_create_dataset(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                                   const int64_t *dims)
{
    hid_t dset = H5I_INVALID_HID;
    dapt_status st = create_impl(f, name, file_type(type), ndim, dims, &dset);
    if (dset >= 0 && H5Dclose(dset) < 0 && st == DAPT_OK) st = H5FAIL(f, name, "closing dataset");
    return dapt_status_agree(f->comm, st);
}

dapt_status dapt_h5_write_slab(dapt_h5file *f, const char *name, dapt_h5_type type, const int64_t *start,
                               const int64_t *count, const void *data)
{
    if (!f->writable) return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: file not open for writing", f->path, name);
    hid_t dset = H5Dopen2(f->id, name, H5P_DEFAULT);
    DAPT_CHECK(dapt_status_agree(f->comm, dset < 0 ? H5FAIL(f, name, "opening dataset") : DAPT_OK));
    dapt_status st = slab_impl(f, name, dset, type, start, count, 1, data);
    if (H5Dclose(dset) < 0 && st == DAPT_OK) st = WRITEFAIL(f, name, "closing the dataset");
    return dapt_status_agree(f->comm, st);
}

dapt_status dapt_h5_write(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                          const int64_t *dims, const int64_t *start, const int64_t *count,
                          const void *data)
{
    /* A scalar has no slab: the ranks that pass data write it. */
    int participate = ndim == 0 ? data != NULL : 1;
    return write_impl(f, name, type, ndim, dims, start, count, participate, data);
}

dapt_status dapt_h5_write_rows(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                               const int64_t *dims, int64_t row_begin, int64_t row_count,
                               const void *data)
{
    if (ndim < 1 || ndim > DAPT_H5_MAX_DIMS)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: row slabs need 1..%d dimensions", f->path, name,
                          DAPT_H5_MAX_DIMS);
    int64_t start[DAPT_H5_MAX_DIMS] = {row_begin}, count[DAPT_H5_MAX_DIMS] = {row_count};
    for (int d = 1; d < ndim; d++) count[d] = dims[d];
    return write_impl(f, name, type, ndim, dims, start, count, 1, data);
}

dapt_status dapt_h5_write_all(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                              const int64_t *dims, const void *data)
{
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(f->comm, &rank)));
    int64_t start[DAPT_H5_MAX_DIMS] = {0}, count[DAPT_H5_MAX_DIMS] = {0};
    for (int d = 0; d < ndim && d < DAPT_H5_MAX_DIMS; d++) count[d] = dims[d];
    return write_impl(f, name, type, ndim, dims, start, count, rank == 0, data);
}

static dapt_status type_of(const dapt_h5file *f, const char *name, hid_t ftype, dapt_h5_type *out)
{
    H5T_class_t cls = H5Tget_class(ftype);
    size_t size = H5Tget_size(ftype);
    if (cls == H5T_FLOAT && size == 4) *out = DAPT_H5_F32;
    else if (cls == H5T_FLOAT && size == 8) *out = DAPT_H5_F64;
    else if (cls == H5T_INTEGER) {
        H5T_sign_t sign = H5Tget_sign(ftype);
        if (sign == H5T_SGN_2 && size == 4) *out = DAPT_H5_I32;
        else if (sign == H5T_SGN_2 && size == 8) *out = DAPT_H5_I64;
        else if (sign == H5T_SGN_NONE && size == 1) *out = DAPT_H5_U8;
        else if (sign == H5T_SGN_NONE && size == 2) *out = DAPT_H5_U16;
        else if (sign == H5T_SGN_NONE && size == 4) *out = DAPT_H5_U32;
        else
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: %s %zu-byte integers are not supported", f->path, name,
                              sign == H5T_SGN_2 ? "signed" : "unsigned", size);
    } else
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: element type is not a number dapt reads", f->path, name);
    return DAPT_OK;
}

dapt_status dapt_h5_info(const dapt_h5file *f, const char *name, int *ndim, int64_t dims[DAPT_H5_MAX_DIMS],
                         dapt_h5_type *type)
{
    if (!dapt_h5_exists(f, name)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no dataset %s", f->path, name);
    hid_t dset = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (dset < 0) return H5FAIL(f, name, "opening dataset");
    dapt_status st = DAPT_OK;
    hid_t space = H5Dget_space(dset), ftype = H5Dget_type(dset);
    if (space < 0 || ftype < 0) {
        st = H5FAIL(f, name, "reading dataset shape");
        goto cleanup;
    }
    int nd = 0;
    int64_t d[DAPT_H5_MAX_DIMS];
    DAPT_TRY(space_shape(f, name, space, &nd, d, NULL));
    if (ndim) *ndim = nd;
    if (dims) memcpy(dims, d, sizeof d);
    if (type) DAPT_TRY(type_of(f, name, ftype, type));
cleanup:
    CLOSE(H5Tclose, ftype);
    CLOSE(H5Sclose, space);
    CLOSE(H5Dclose, dset);
    return st;
}

dapt_status dapt_h5_read(const dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                         const int64_t *start, const int64_t *count, void *data)
{
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type stored;
    DAPT_CHECK(dapt_h5_info(f, name, &nd, dims, &stored));
    if (nd != ndim)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: has %d dimensions, expected %d", f->path, name, nd, ndim);
    if (is_float_type(stored) != is_float_type(type))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: stored as %s, expected %s", f->path, name,
                          dapt_h5_type_name(stored), is_float_type(type) ? "floating point" : "integers");
    DAPT_CHECK(check_shape(f, name, ndim, dims, start, count));
    dapt_status st = DAPT_OK;
    hid_t dset = H5Dopen2(f->id, name, H5P_DEFAULT);
    hid_t fspace = H5I_INVALID_HID, mspace = H5I_INVALID_HID, dxpl = H5I_INVALID_HID;
    if (dset < 0) return H5FAIL(f, name, "opening dataset");
    fspace = H5Dget_space(dset);
    if (fspace < 0) {
        st = H5FAIL(f, name, "reading dataset shape");
        goto cleanup;
    }
    size_t numel = 0;
    DAPT_TRY(select_slab(f, name, fspace, ndim, start, count, 1, &mspace, &numel));
    dxpl = make_dxpl(DAPT_H5_COLLECTIVE);
    if (dxpl < 0) {
        st = H5FAIL(f, name, "making transfer properties");
        goto cleanup;
    }
    size_t total = 1;
    for (int d = 0; d < ndim; d++) total *= (size_t)dims[d];
    char dummy[8];
    if (total > 0 && H5Dread(dset, mem_type(type), mspace, fspace, dxpl, numel ? data : dummy) < 0)
        st = H5FAIL(f, name, "reading");
cleanup:
    CLOSE(H5Pclose, dxpl);
    CLOSE(H5Sclose, mspace);
    CLOSE(H5Sclose, fspace);
    CLOSE(H5Dclose, dset);
    return st;
}

dapt_status dapt_h5_read_all(const dapt_h5file *f, const char *name, dapt_h5_type type, void **data,
                             int *ndim, int64_t dims[DAPT_H5_MAX_DIMS])
{
    *data = NULL;
    int nd = 0;
    int64_t d[DAPT_H5_MAX_DIMS];
    DAPT_CHECK(dapt_h5_info(f, name, &nd, d, NULL));
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)d[i];
    int64_t start[DAPT_H5_MAX_DIMS] = {0};
    DAPT_CHECK(dapt_alloc(data, n * dapt_h5_type_size(type), name));
    dapt_status st = dapt_h5_read(f, name, type, nd, start, d, *data);
    if (st != DAPT_OK) {
        free(*data);
        *data = NULL;
        return st;
    }
    if (ndim) *ndim = nd;
    if (dims) memcpy(dims, d, sizeof d);
    return DAPT_OK;
}

/* ---- walking every dataset -------------------------------------------- */

typedef struct walk_ctx {
    const dapt_h5file *f;
    dapt_status (*fn)(const char *, int, const int64_t *, const char *, void *);
    void *user;
    dapt_status st;
} walk_ctx;

/* "float32", ... for the types dapt reads, else "string" or "other". */
static const char *stored_type_name(const dapt_h5file *f, const char *name, hid_t ftype)
{
    dapt_h5_type t;
    if (type_of(f, name, ftype, &t) == DAPT_OK) return dapt_h5_type_name(t);
    dapt_error_clear(); /* not a failure here: the type is only named */
    return H5Tget_class(ftype) == H5T_STRING ? "string" : "other";
}

static herr_t walk_one(hid_t root, const char *name, const H5O_info_t *info, void *data)
{
    walk_ctx *c = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t dset = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : H5I_INVALID_HID;
    hid_t ftype = dset >= 0 ? H5Dget_type(dset) : H5I_INVALID_HID;
    int nd = 0;
    int64_t d[DAPT_H5_MAX_DIMS];
    if (space < 0 || ftype < 0) c->st = H5FAIL(c->f, name, "reading dataset shape");
    else c->st = space_shape(c->f, name, space, &nd, d, NULL);
    if (c->st == DAPT_OK) c->st = c->fn(name, nd, d, stored_type_name(c->f, name, ftype), c->user);
    CLOSE(H5Tclose, ftype);
    CLOSE(H5Sclose, space);
    CLOSE(H5Dclose, dset);
    return c->st == DAPT_OK ? 0 : 1;
}

dapt_status dapt_h5_walk(const dapt_h5file *f,
                         dapt_status (*fn)(const char *name, int ndim, const int64_t *dims, const char *type,
                                           void *user),
                         void *user)
{
    walk_ctx c = {f, fn, user, DAPT_OK};
    herr_t rc = H5Ovisit2(f->id, H5_INDEX_NAME, H5_ITER_INC, walk_one, &c, H5O_INFO_BASIC);
    if (c.st != DAPT_OK) return c.st;
    if (rc < 0) return H5FAIL(f, NULL, "listing the datasets");
    return DAPT_OK;
}

/* ---- attributes -------------------------------------------------------- */

/* n == 0: a scalar attribute; else a 1-D array of n values.  This rank's
 * part; attr_write_n agrees on the outcome. */
static dapt_status attr_write_local(dapt_h5file *f, const char *obj, const char *attr, hid_t ftype, hid_t mtype,
                                    size_t n, const void *value)
{
    if (!f->writable)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: file not open for writing (attribute %s)", f->path, obj,
                          attr);
    if (!dapt_h5_exists(f, obj)) DAPT_CHECK(make_groups(f, obj, 1));
    dapt_status st = DAPT_OK;
    hid_t space = H5I_INVALID_HID, a = H5I_INVALID_HID;
    htri_t ex = H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT);
    if (ex < 0) return H5FAIL(f, obj, "checking for an attribute");
    if (ex > 0 && H5Adelete_by_name(f->id, obj, attr, H5P_DEFAULT) < 0)
        return H5FAIL(f, obj, "replacing an attribute");
    const hsize_t len = n;
    space = n ? H5Screate_simple(1, &len, NULL) : H5Screate(H5S_SCALAR);
    if (space < 0) return H5FAIL(f, obj, "making an attribute's space");
    a = H5Acreate_by_name(f->id, obj, attr, ftype, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, mtype, value) < 0) {
        char what[160];
        snprintf(what, sizeof what, "writing attribute %s", attr);
        st = H5FAIL(f, obj, what);
    }
    if (a >= 0 && H5Aclose(a) < 0 && st == DAPT_OK) st = H5FAIL(f, obj, "closing an attribute");
    CLOSE(H5Sclose, space);
    return st;
}

static dapt_status attr_write_n(dapt_h5file *f, const char *obj, const char *attr, hid_t ftype, hid_t mtype,
                                size_t n, const void *value)
{
    return dapt_status_agree(f->comm, attr_write_local(f, obj, attr, ftype, mtype, n, value));
}

static dapt_status attr_write(dapt_h5file *f, const char *obj, const char *attr, hid_t ftype, hid_t mtype,
                              const void *value)
{
    return attr_write_n(f, obj, attr, ftype, mtype, 0, value);
}

dapt_status dapt_h5_attr_set_u32s(dapt_h5file *f, const char *obj, const char *attr, size_t n, const uint32_t *values)
{
    if (n == 0) return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: %s: empty attribute array %s", f->path, obj, attr);
    return attr_write_n(f, obj, attr, H5T_STD_U32LE, H5T_NATIVE_UINT32, n, values);
}

static hid_t vlen_utf8(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        CLOSE(H5Tclose, t);
        return H5I_INVALID_HID;
    }
    return t;
}

dapt_status dapt_h5_attr_set_string(dapt_h5file *f, const char *obj, const char *attr, const char *value)
{
    hid_t t = vlen_utf8();
    if (t < 0) return H5FAIL(f, obj, "making a string type");
    dapt_status st = attr_write(f, obj, attr, t, t, &value);
    CLOSE(H5Tclose, t);
    return st;
}

dapt_status dapt_h5_attr_set_int64(dapt_h5file *f, const char *obj, const char *attr, int64_t value)
{
    return attr_write(f, obj, attr, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

dapt_status dapt_h5_attr_set_double(dapt_h5file *f, const char *obj, const char *attr, double value)
{
    return attr_write(f, obj, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int dapt_h5_attr_exists(const dapt_h5file *f, const char *obj, const char *attr)
{
    if (!dapt_h5_exists(f, obj)) return 0;
    htri_t ex = H5Aexists_by_name(f->id, obj, attr, H5P_DEFAULT);
    if (ex < 0) DAPT_H5_WARN(H5Eclear2(H5E_DEFAULT));
    return ex > 0;
}

static dapt_status attr_open(const dapt_h5file *f, const char *obj, const char *attr, hid_t *a, hid_t *t)
{
    if (!dapt_h5_attr_exists(f, obj, attr))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: missing attribute %s", f->path, obj, attr);
    *a = H5Aopen_by_name(f->id, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    if (*a < 0) return H5FAIL(f, obj, "opening attribute");
    *t = H5Aget_type(*a);
    hid_t space = H5Aget_space(*a);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    CLOSE(H5Sclose, space);
    if (*t < 0 || n != 1) {
        CLOSE(H5Tclose, *t);
        CLOSE(H5Aclose, *a);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: attribute %s is not a single value", f->path, obj, attr);
    }
    return DAPT_OK;
}

dapt_status dapt_h5_attr_get_string(const dapt_h5file *f, const char *obj, const char *attr, char **out)
{
    *out = NULL;
    hid_t a, t;
    DAPT_CHECK(attr_open(f, obj, attr, &a, &t));
    dapt_status st = DAPT_OK;
    hid_t mt = H5I_INVALID_HID;
    if (H5Tget_class(t) != H5T_STRING)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s: attribute %s is not a string", f->path, obj, attr);
    if (H5Tis_variable_str(t) > 0) {
        mt = vlen_utf8();
        char *s = NULL;
        /* The string lives in the global heap, which has no checksum: a
         * damaged one makes libhdf5 loop forever, so the read gets a
         * deadline (the driver's watcher ends the job with this text). */
        char what[640];
        snprintf(what, sizeof what, "%.300s: reading the string attribute %.80s of %.100s", f->path, attr, obj);
        dapt_deadline_begin(what, 120.0);
        const herr_t rc = mt < 0 ? -1 : H5Aread(a, mt, &s);
        dapt_deadline_end();
        if (rc < 0) {
            st = H5FAIL(f, obj, "reading a string attribute");
            goto cleanup;
        }
        size_t n = s ? strlen(s) : 0;
        st = dapt_alloc((void **)out, n + 1, "a string attribute");
        if (st == DAPT_OK) memcpy(*out, s ? s : "", n + 1);
        if (s) DAPT_H5_WARN(H5free_memory(s));
    } else {
        /* Fixed-length strings (as other tools may write them). */
        size_t n = H5Tget_size(t);
        mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, n + 1) < 0) {
            st = H5FAIL(f, obj, "making a string type");
            goto cleanup;
        }
        DAPT_TRY(dapt_calloc((void **)out, n + 2, 1, "a string attribute"));
        if (H5Aread(a, mt, *out) < 0) {
            free(*out);
            *out = NULL;
            st = H5FAIL(f, obj, "reading a string attribute");
        }
    }
cleanup:
    CLOSE(H5Tclose, mt);
    CLOSE(H5Tclose, t);
    CLOSE(H5Aclose, a);
    return st;
}

static dapt_status attr_get_number(const dapt_h5file *f, const char *obj, const char *attr, H5T_class_t want,
                                   hid_t mtype, void *out)
{
    hid_t a, t;
    DAPT_CHECK(attr_open(f, obj, attr, &a, &t));
    dapt_status st = DAPT_OK;
    if (H5Tget_class(t) != want)
        st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: attribute %s is not %s", f->path, obj, attr,
                        want == H5T_INTEGER ? "an integer" : "a floating-point number");
    else if (H5Aread(a, mtype, out) < 0)
        st = H5FAIL(f, obj, "reading a numeric attribute");
    CLOSE(H5Tclose, t);
    CLOSE(H5Aclose, a);
    return st;
}

dapt_status dapt_h5_attr_get_int64(const dapt_h5file *f, const char *obj, const char *attr, int64_t *out)
{
    return attr_get_number(f, obj, attr, H5T_INTEGER, H5T_NATIVE_INT64, out);
}

dapt_status dapt_h5_attr_get_double(const dapt_h5file *f, const char *obj, const char *attr, double *out)
{
    return attr_get_number(f, obj, attr, H5T_FLOAT, H5T_NATIVE_DOUBLE, out);
}

dapt_status dapt_h5_attr_get_u32s(const dapt_h5file *f, const char *obj, const char *attr, uint32_t **values,
                                  size_t *n)
{
    *values = NULL;
    *n = 0;
    if (!dapt_h5_attr_exists(f, obj, attr))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s: missing attribute %s", f->path, obj, attr);
    hid_t a = H5Aopen_by_name(f->id, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return H5FAIL(f, obj, "opening attribute");
    dapt_status st = DAPT_OK;
    hid_t t = H5Aget_type(a), space = H5Aget_space(a);
    const hssize_t count = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (t < 0 || count < 1 || H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_ndims(space) != 1)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s: attribute %s is not an array of integers", f->path, obj, attr);
    DAPT_TRY(dapt_alloc((void **)values, (size_t)count * sizeof **values, attr));
    if (H5Aread(a, H5T_NATIVE_UINT32, *values) < 0) {
        free(*values);
        *values = NULL;
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s: attribute %s cannot be read as unsigned 32-bit integers", f->path, obj,
                   attr);
    }
    *n = (size_t)count;
cleanup:
    CLOSE(H5Sclose, space);
    CLOSE(H5Tclose, t);
    CLOSE(H5Aclose, a);
    return st;
}
