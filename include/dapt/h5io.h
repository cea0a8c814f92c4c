/* Parallel HDF5 helpers: every HDF5 file dapt reads or writes goes through
 * these.
 *
 * Writing: dapt_h5_create opens "OUT.h5.tmp.<id>" next to OUT.h5 with the
 * MPI-IO driver; datasets are written collectively, each rank supplying its
 * hyperslab (ranks with nothing to write still call, with zero counts);
 * dapt_h5_commit closes, fsyncs and renames the file into place, and
 * dapt_h5_abort removes it.  Files are deterministic: no object timestamps,
 * fixed library-version bounds, no fill pass, so the same content gives
 * byte-identical files whatever the number of ranks that wrote it.
 *
 * Every file written records the resolved run configuration as the string
 * attribute "dapt_config" (INI text) on its root group, and its provenance
 * (dapt_version, git_commit; with a recorded command line also command,
 * mpi_ranks, created, host: include/dapt/provenance.h).  A file names what
 * it is with the root attributes "format" and "format_version"
 * (dapt_h5_set_format); at commit every dataset of a known format gets the
 * attribute "description" (and "units" where meaningful) from that format's
 * table (src/io/h5formats.c, docs/formats.md).
 *
 * Object paths are absolute or relative to the root ("params/embeddings.word");
 * missing parent groups are created.  Errors are one line naming the file
 * and the object.  Unless a comment says otherwise, a function is collective
 * over the communicator the file was created or opened with, and every rank
 * must pass the same names, shapes, types and attribute values. */
#ifndef DAPT_H5IO_H
#define DAPT_H5IO_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/config.h"
#include "dapt/status.h"

#define DAPT_H5_MAX_DIMS 4

typedef enum dapt_h5_type {
    DAPT_H5_F32 = 0,
    DAPT_H5_F64,
    DAPT_H5_I32,
    DAPT_H5_I64,
    DAPT_H5_U8,
    DAPT_H5_U16,
    DAPT_H5_U32,
    DAPT_H5_TYPE_COUNT
} dapt_h5_type;

typedef struct dapt_h5file {
    hid_t id;            /* HDF5 file id; H5I_INVALID_HID when closed */
    MPI_Comm comm;       /* the caller's communicator (not duplicated) */
    int writable;
    char path[4096];     /* final name */
    char tmp_path[4160]; /* temporary name while writing */
} dapt_h5file;

/* Status agreement after work some ranks did alone: dapt_status_agree
 * (status.h). */

/* Bytes of one element; "float32", "int64", ... for messages and docs.
 * Not collective. */
size_t dapt_h5_type_size(dapt_h5_type t);
const char *dapt_h5_type_name(dapt_h5_type t);

/* Creates the temporary file for path.  Refuses (DAPT_ERR_EXISTS) when path
 * exists and force is 0; with force the old file is only replaced at commit.
 * cfg (required) is stored as the root attribute "dapt_config". */
dapt_status dapt_h5_create(MPI_Comm comm, const char *path, int force, const dapt_config *cfg,
                           dapt_h5file *f);

/* Opens an existing file read-only. */
dapt_status dapt_h5_open(MPI_Comm comm, const char *path, dapt_h5file *f);

/* Finishes a created file: close, barrier, rank 0 fsyncs and renames it
 * over the final name and fsyncs the directory, barrier.  Every rank gets
 * rank 0's status.  f is closed afterwards, whatever the outcome (on failure
 * the temporary file is removed). */
dapt_status dapt_h5_commit(dapt_h5file *f);

/* Closes a created file and removes the temporary file, or closes a file
 * opened for reading.  Safe on a closed or zeroed handle.  Collective. */
void dapt_h5_abort(dapt_h5file *f);
void dapt_h5_close(dapt_h5file *f);

/* Creates dataset name of global shape dims[0..ndim) (ndim 0..4; 0 = scalar)
 * and writes this rank's hyperslab start[]/count[] from data (row-major,
 * prod(count) elements).  Overlapping hyperslabs are the caller's error. */
dapt_status dapt_h5_write(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                          const int64_t *dims, const int64_t *start, const int64_t *count,
                          const void *data);

/* Two-step form for data produced in pieces: create the dataset, then any
 * number of collective slab writes (every rank calls each write, with an
 * empty count when it has nothing for it).  Every element must be written
 * by some rank before commit: unwritten elements are undefined (no fill). */
dapt_status dapt_h5_create_dataset(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                                   const int64_t *dims);
dapt_status dapt_h5_write_slab(dapt_h5file *f, const char *name, dapt_h5_type type, const int64_t *start,
                               const int64_t *count, const void *data);

/* Convenience: the dataset holds whole blocks of the first dimension; this
 * rank writes rows [row_begin, row_begin + row_count). */
dapt_status dapt_h5_write_rows(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                               const int64_t *dims, int64_t row_begin, int64_t row_count,
                               const void *data);

/* Convenience for small or replicated data: every rank passes the same
 * whole array; rank 0 writes it, the others take part with empty slabs. */
dapt_status dapt_h5_write_all(dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                              const int64_t *dims, const void *data);

/* How a write's data reaches the file: one collective MPI-IO write, or each
 * rank's own independent writes (for a few large contiguous blocks per
 * rank, where collective buffering would only add a shuffle). */
typedef enum dapt_h5_xfer { DAPT_H5_COLLECTIVE = 0, DAPT_H5_INDEPENDENT } dapt_h5_xfer;

/* Creates a 1-D dataset of n elements and writes this rank's nb ascending,
 * disjoint blocks [starts[k], starts[k] + counts[k]) from the consecutive
 * elements of data (blocks with count 0 are skipped; a rank may have none).
 * Collective: every rank calls, whatever xfer; with DAPT_H5_INDEPENDENT a
 * rank with no elements makes no MPI-IO write. */
dapt_status dapt_h5_write_blocks(dapt_h5file *f, const char *name, dapt_h5_type type, int64_t n, size_t nb,
                                 const int64_t *starts, const int64_t *counts, const void *data,
                                 dapt_h5_xfer xfer);

/* Reads this rank's nb ascending, disjoint blocks [starts[k], starts[k] +
 * counts[k]) of the 1-D dataset name into consecutive elements of data, in
 * one read (a union selection).  Not collective (independent I/O, fine on a
 * file opened with MPI_COMM_SELF). */
dapt_status dapt_h5_read_blocks(const dapt_h5file *f, const char *name, dapt_h5_type type, size_t nb,
                                const int64_t *starts, const int64_t *counts, void *data);

/* ---- raw extents ---------------------------------------------------------
 * Many datasets moved as plain byte ranges: checkpoints hold hundreds of
 * tensors, and one collective HDF5 write or read per dataset is bounded by
 * per-call overhead, not the disk (docs/performance.md, issue 16).  A
 * dataset qualifies when it is contiguous and allocated with no filters,
 * its file type is the memory type byte for byte (dapt's little-endian
 * types on a little-endian host) and the file has no user block: then its
 * elements are bytes [offset, offset + numel * size) of the file, and dapt
 * writes and reads them there with pwrite / pread, the file's metadata
 * still HDF5's.  Every dataset dapt_h5_create_dataset makes qualifies. */

/* *offset = the file offset of dataset name's first element when it
 * qualifies (stored type `type`), else -1 (use dapt_h5_read/write_slab).
 * Not collective: the answer is the same on every rank of one file. */
dapt_status dapt_h5_raw_offset(const dapt_h5file *f, const char *name, dapt_h5_type type, int64_t *offset);

/* One contiguous byte range of the file and where it lives in memory. */
typedef struct dapt_h5_extent {
    int64_t offset; /* file offset in bytes (from dapt_h5_raw_offset) */
    int64_t bytes;
    void *mem;      /* source of a write, destination of a read */
} dapt_h5_extent;

/* Writes / reads this rank's n extents (reordered by file offset) with
 * pwrite / pread on a descriptor of the rank's own, in calls of at most
 * 1 MiB, n = 0 included.  A rank's extents must not overlap each other; in
 * a write, no two ranks' may overlap (reads may).  An extent past the end
 * of the file (a truncated file) is DAPT_ERR_FORMAT naming the file, a
 * failed write (a full disk) DAPT_ERR_IO.  Collective over the file's
 * communicator only to agree on the status: every rank gets the same. */
dapt_status dapt_h5_write_extents(dapt_h5file *f, dapt_h5_extent *e, size_t n);
dapt_status dapt_h5_read_extents(const dapt_h5file *f, dapt_h5_extent *e, size_t n);

/* Creates a 1-D dataset of n fixed-length UTF-8 strings, NUL-padded to the
 * longest + 1 bytes (h5py reads bytes); every rank passes the same list and
 * rank 0 writes it.  Collective. */
dapt_status dapt_h5_write_strings(dapt_h5file *f, const char *name, char *const *strs, size_t n);

/* Reads a 1-D dataset of fixed-length strings: *strs is a malloc'd array of
 * *n malloc'd strings (free each, then the array).  DAPT_ERR_FORMAT naming
 * file and dataset when it is missing or of another kind.  Not collective. */
dapt_status dapt_h5_read_strings(const dapt_h5file *f, const char *name, char ***strs, int64_t *n);

/* 1 if the object (dataset or group) exists, 0 if not.  Not collective. */
int dapt_h5_exists(const dapt_h5file *f, const char *name);

/* Shape and stored element type of a dataset; refuses types outside
 * dapt_h5_type.  Not collective. */
dapt_status dapt_h5_info(const dapt_h5file *f, const char *name, int *ndim,
                         int64_t dims[DAPT_H5_MAX_DIMS], dapt_h5_type *type);

/* Reads this rank's hyperslab into data as `type` (HDF5 converts between
 * widths, but an integer dataset is never read as float or vice versa).
 * ndim and the slab must fit the stored shape. */
dapt_status dapt_h5_read(const dapt_h5file *f, const char *name, dapt_h5_type type, int ndim,
                         const int64_t *start, const int64_t *count, void *data);

/* Reads a whole dataset on every rank into a malloc'd buffer (*data; free()
 * it); shape in ndim/dims when those are non-NULL. */
dapt_status dapt_h5_read_all(const dapt_h5file *f, const char *name, dapt_h5_type type,
                             void **data, int *ndim, int64_t dims[DAPT_H5_MAX_DIMS]);

/* Attributes on the object obj ("/" for the root group).  Setting replaces
 * an existing attribute.  Strings are stored as variable-length UTF-8
 * (h5py returns str).  Getters: DAPT_ERR_FORMAT naming file, object and
 * attribute when missing or of another kind; *out of get_string is
 * malloc'd.  Getters are not collective. */
dapt_status dapt_h5_attr_set_string(dapt_h5file *f, const char *obj, const char *attr,
                                    const char *value);
dapt_status dapt_h5_attr_set_int64(dapt_h5file *f, const char *obj, const char *attr, int64_t value);
dapt_status dapt_h5_attr_set_double(dapt_h5file *f, const char *obj, const char *attr, double value);
dapt_status dapt_h5_attr_get_string(const dapt_h5file *f, const char *obj, const char *attr, char **out);
dapt_status dapt_h5_attr_get_int64(const dapt_h5file *f, const char *obj, const char *attr, int64_t *out);
dapt_status dapt_h5_attr_get_double(const dapt_h5file *f, const char *obj, const char *attr, double *out);
/* Attribute arrays of unsigned 32-bit integers (the chunk checksums).
 * Setting replaces, is collective with the same values on every rank and
 * needs n >= 1; *values of the getter is malloc'd (not collective). */
dapt_status dapt_h5_attr_set_u32s(dapt_h5file *f, const char *obj, const char *attr, size_t n,
                                  const uint32_t *values);
dapt_status dapt_h5_attr_get_u32s(const dapt_h5file *f, const char *obj, const char *attr, uint32_t **values,
                                  size_t *n);
/* 1 if obj has attribute attr.  Not collective. */
int dapt_h5_attr_exists(const dapt_h5file *f, const char *obj, const char *attr);

/* Calls fn for every dataset of the file, recursively, in name order, with
 * its path (relative to the root), shape and stored type ("float32", ...,
 * "string" for strings, "other" for anything else).  Stops at the first
 * non-OK status.  Not collective. */
dapt_status dapt_h5_walk(const dapt_h5file *f,
                         dapt_status (*fn)(const char *name, int ndim, const int64_t *dims, const char *type,
                                           void *user),
                         void *user);

/* ---- checksums (src/io/h5checksum.c) ---- */

/* Every numeric dataset dapt writes is sealed at commit: cut along its
 * first dimension into chunks of crc32_rows rows (at least 4 MiB, at most
 * 4096 chunks), the CRC-32 of each chunk's bytes (native order) in the
 * attribute array crc32_chunks.  Datasets that already carry a whole-tensor
 * "crc32" (model parameters, optimizer moments, tokenizer files), strings,
 * scalars and empty datasets are left as they are.  The ranks of the
 * file's communicator read the chunks round-robin, so sealing and
 * verifying cost one read of the data shared among them. */

/* Seals one dataset / every dataset of an open writable file (dapt_h5_commit
 * calls the latter).  Collective over the file's communicator. */
dapt_status dapt_h5_seal(dapt_h5file *f, const char *name);
dapt_status dapt_h5_seal_all(dapt_h5file *f);

/* Recomputes a sealed dataset's chunk checksums: DAPT_ERR_FORMAT naming the
 * file, the dataset and the first bad chunk's rows on a mismatch, the same
 * on every rank.  A dataset without crc32_chunks (a file written before
 * dapt sealed its outputs) passes.  Collective over the file's
 * communicator. */
dapt_status dapt_h5_verify(const dapt_h5file *f, const char *name);

/* Opens path on comm and verifies every sealed dataset in it.  Collective
 * over comm. */
dapt_status dapt_h5_verify_file(MPI_Comm comm, const char *path);

/* ---- what a file is (src/io/h5formats.c) ---- */

/* One row of a format's dataset table: datasets whose path (relative to the
 * root) matches pattern (fnmatch with FNM_PATHNAME: '*' stays inside one
 * path component) get description and, when non-NULL, units.  The first
 * matching row wins. */
typedef struct dapt_h5_desc {
    const char *pattern;
    const char *description;
    const char *units;
} dapt_h5_desc;

typedef struct dapt_h5_format {
    const char *name;      /* the root attribute "format", e.g. "dapt-model" */
    int64_t version;       /* "format_version" written by this build */
    const char *summary;   /* one line: what such a file holds */
    const dapt_h5_desc *datasets; /* NULL-pattern terminated */
} dapt_h5_format;

/* The format called name, or NULL.  Not collective. */
const dapt_h5_format *dapt_h5_format_find(const char *name);

/* Sets the root attributes format and format_version of a registered
 * format (DAPT_ERR_INTERNAL for an unknown name). */
dapt_status dapt_h5_set_format(dapt_h5file *f, const char *name);

/* The row of fmt's table that describes dataset name, or NULL.  Not
 * collective. */
const dapt_h5_desc *dapt_h5_format_describe(const dapt_h5_format *fmt, const char *name);

/* Writes description / units on every dataset of a file of a registered
 * format (nothing for a file without one).  dapt_h5_commit calls it. */
dapt_status dapt_h5_describe(dapt_h5file *f);

/* Creates group name (and its parents) if missing. */
dapt_status dapt_h5_group(dapt_h5file *f, const char *name);

/* Calls fn(name, user) for every direct member of group (name relative to
 * that group), in name order.  Stops at the first non-OK status.
 * Not collective. */
dapt_status dapt_h5_list(const dapt_h5file *f, const char *group,
                         dapt_status (*fn)(const char *name, void *user), void *user);

#endif
