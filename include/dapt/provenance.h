/* Provenance: what every output file records about how it was made.
 *
 * The driver records the command line once, right after MPI_Init
 * (dapt_provenance_record); dapt_h5_create then stamps every HDF5 file with
 * the root attributes
 *   dapt_version, git_commit   always (constants of the build);
 *   command, mpi_ranks,        only when the driver recorded a command line,
 *   created, host              so library callers that record none (the unit
 *                              tests, tools) keep files that are byte-for-byte
 *                              reproducible.
 * created is ISO-8601 UTC to the second ("2026-12-07T05:30:00Z"), host and
 * created are rank 0's (h5io broadcasts them).
 *
 * Nothing here is collective; dapt_provenance_record calls MPI_Comm_size on
 * MPI_COMM_WORLD, so it needs MPI initialised. */
#ifndef DAPT_PROVENANCE_H
#define DAPT_PROVENANCE_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

/* Records argv[0..argc) as one shell-quoted line (arguments that need it in
 * single quotes, so the line can be pasted back into a shell) and the size
 * of MPI_COMM_WORLD.  A second call replaces the first. */
dapt_status dapt_provenance_record(int argc, char *const *argv);

/* The recorded command line, or NULL when none was recorded. */
const char *dapt_provenance_command(void);

/* MPI_COMM_WORLD's size at the time of recording (0 when none). */
int64_t dapt_provenance_ranks(void);

/* PACKAGE_VERSION and the commit the build found (`git describe --always
 * --dirty` of the checkout at build time, or the tarball's recorded value,
 * or "unknown"). */
const char *dapt_provenance_version(void);
const char *dapt_provenance_git_commit(void);

/* The current time as ISO-8601 UTC, "YYYY-MM-DDTHH:MM:SSZ" (len >= 21). */
dapt_status dapt_provenance_now(char *out, size_t len);

/* This machine's host name (truncated to len - 1 bytes). */
dapt_status dapt_provenance_host(char *out, size_t len);

#endif
