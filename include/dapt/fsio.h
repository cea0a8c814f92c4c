/* Plain-file helpers for outputs that are not HDF5 (safetensors, exported
 * Hugging Face directories) and for reading small inputs whole.
 *
 * Outputs follow the same rule as HDF5 files: written under a temporary
 * name in the destination directory, fsync'd, renamed into place, the
 * directory fsync'd; an existing output is refused unless force.  Nothing
 * here is collective: callers run these on one rank. */
#ifndef DAPT_FSIO_H
#define DAPT_FSIO_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

/* Opens path read-only, refusing anything but a regular file; *size is its
 * length.  The caller closes *fd. */
dapt_status dapt_fs_open_regular(const char *path, int *fd, size_t *size);

/* Reads a whole file (at most max_bytes) into a malloc'd buffer with a
 * terminating NUL after the data (not counted in *len). */
dapt_status dapt_fs_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len);

/* 1 if something exists at path. */
int dapt_fs_exists(const char *path);

/* 1 if a and b name the same existing file (st_dev and st_ino, links
 * followed), 0 otherwise (also when either does not exist). */
int dapt_fs_same_file(const char *a, const char *b);

/* Writes len bytes to path through "path.tmp.<pid>", fsync, rename. */
dapt_status dapt_fs_write_atomic(const char *path, const void *data, size_t len, int force);

/* Writes the whole buffer to fd (retrying short writes); path for messages. */
dapt_status dapt_fs_write_all(int fd, const void *data, size_t len, const char *path);

/* fsync of a file or directory by name. */
dapt_status dapt_fs_sync(const char *path, int directory);

/* Parent directory of path ("." when none) into dir. */
void dapt_fs_parent(const char *path, char *dir, size_t len);

/* Creates path and its missing parents (like mkdir -p). */
dapt_status dapt_fs_mkdir_p(const char *path);

/* Removes a file or a directory tree (used on temporary outputs). */
dapt_status dapt_fs_remove_tree(const char *path);

/* Makes a fresh temporary directory "final.tmp.<pid>" next to final,
 * refusing (DAPT_ERR_EXISTS) when final exists and force is 0. */
dapt_status dapt_fs_temp_dir(const char *final, int force, char *tmp, size_t len);

/* Moves a completed temporary directory into place: fsyncs it, renames an
 * existing final aside (force), renames tmp to final, fsyncs the parent and
 * removes the old copy.  On failure the old output is left in place. */
dapt_status dapt_fs_publish_dir(const char *tmp, const char *final, int force);

/* A CSV file with a header line and rows whose first field is an integer
 * (a step, an epoch): keeps the header and the rows up to the first whose
 * key exceeds last (or does not parse), rewritten atomically; a missing file
 * is left alone.  For metrics files cut back to a resumed checkpoint.  Not
 * collective. */
dapt_status dapt_fs_csv_truncate(const char *path, int64_t last);

/* Locks the run directory dir for this process (dir/.dapt.lock, a POSIX
 * record lock: the kernel drops it when the process ends, however it ends,
 * so a killed run leaves no stale lock).  A directory another live run holds
 * is refused (DAPT_ERR_EXISTS) naming its pid, host and start time, so two
 * jobs cannot delete each other's temporary files.  *fd is for
 * dapt_fs_unlock_dir.  Not collective: the driver calls it on one rank. */
dapt_status dapt_fs_lock_dir(const char *dir, int *fd);
void dapt_fs_unlock_dir(int fd);

#endif
