/* Status codes and error propagation.
 *
 * Library functions return a dapt_status; on failure the first function that
 * detects the problem records one line (the cause, and apart from it the
 * source location) with dapt_error_set().  Callers propagate the code
 * unchanged; only the driver prints the message (dapt_error_report) and ends
 * the job (dapt_cli_fail_all, or MPI_Abort in dapt_cli_fail).  The record is
 * per thread.  Only dapt_status_agree is collective. */
#ifndef DAPT_STATUS_H
#define DAPT_STATUS_H

#include <mpi.h>
#include <stddef.h>

typedef enum dapt_status {
    DAPT_OK = 0,
    DAPT_ERR_ARG,         /* bad argument or command-line option */
    DAPT_ERR_CONFIG,      /* malformed or out-of-range configuration */
    DAPT_ERR_NOMEM,       /* allocation failed */
    DAPT_ERR_IO,          /* open/read/write/rename failed (disk full included) */
    DAPT_ERR_FORMAT,      /* a file's content is malformed or inconsistent */
    DAPT_ERR_UNSUPPORTED, /* valid input that dapt does not handle */
    DAPT_ERR_EXISTS,      /* output exists and --force was not given */
    DAPT_ERR_MPI,         /* an MPI call failed or ranks disagree */
    DAPT_ERR_HDF5,        /* an HDF5 call failed */
    DAPT_ERR_NUMERIC,     /* NaN/Inf or another numerical failure */
    DAPT_ERR_INTERRUPTED, /* stopped by a signal (SIGTERM/SIGUSR1) */
    DAPT_ERR_INTERNAL,    /* a broken invariant: a bug in dapt */
    DAPT_STATUS_COUNT
} dapt_status;

/* Process exit codes the driver uses; job scripts rely on these. */
enum {
    DAPT_EXIT_OK = 0,
    DAPT_EXIT_FAILURE = 1,
    DAPT_EXIT_USAGE = 2,
    DAPT_EXIT_PREEMPTED = 75 /* EX_TEMPFAIL: checkpoint written, requeue me */
};

/* Short name of a status ("io error", ...). Never NULL. */
const char *dapt_status_name(dapt_status st);

/* Records the cause of a failure (printf-style) and its source location
 * and returns st, so that `return dapt_error_set(...)` reads naturally.  The
 * cause is what a user reads: "<what>: <cause>", naming the user's input
 * (file:line, option, key), never dapt's source.  A later call overwrites
 * the record. */
dapt_status dapt_error_set(dapt_status st, const char *file, int line,
                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The recorded cause (one line, without source location), or "" if none. */
const char *dapt_error_message(void);

/* The source location of the record ("config.c:42"), or "". */
const char *dapt_error_location(void);

/* The size asked for by the dapt_alloc/dapt_calloc whose failure is the
 * record (SIZE_MAX if count x size overflowed), or 0 for other records. */
size_t dapt_error_alloc_bytes(void);

/* Clears the recorded message. */
void dapt_error_clear(void);

/* Whether the environment asks for source locations (DAPT_DEBUG set to
 * anything but "" or "0"): developers' errors and warnings then carry
 * " (at file.c:42)". */
int dapt_error_debug(void);

/* Every rank of comm returns the status of the lowest failing rank (DAPT_OK
 * if none) and holds that rank's message as its own.  Each rank's record
 * also keeps every distinct message of the failing ranks with the world
 * ranks that hit it (also across nested agreements), for
 * dapt_error_report.  Collective over comm. */
dapt_status dapt_status_agree(MPI_Comm comm, dapt_status st);

/* The record as the lines a user reads, each ending in '\n', into buf:
 * "CAUSE" when every rank of MPI_COMM_WORLD (or the only one) hit it, else
 * "CAUSE [rank 1]", "CAUSE [ranks 1,3]" or "CAUSE [ranks 0-6,9]", one line per
 * distinct cause after an agreement; " (at file.c:42)" appended when
 * with_location.  st names the failure when no cause was recorded.
 * Returns the number of lines.  Not collective. */
int dapt_error_report(dapt_status st, int with_location, char *buf, size_t len);

/* Records a failure and returns its code. */
#define DAPT_ERROR(st, ...) dapt_error_set((st), __FILE__, __LINE__, __VA_ARGS__)

/* Propagates a failing status from expr (first message is kept). */
#define DAPT_CHECK(expr)                                                      \
    do {                                                                      \
        dapt_status dapt_check_st_ = (expr);                                  \
        if (dapt_check_st_ != DAPT_OK) return dapt_check_st_;                 \
    } while (0)

/* For functions with a local `dapt_status st` and a `cleanup:` label. */
#define DAPT_TRY(expr)                                                        \
    do {                                                                      \
        st = (expr);                                                          \
        if (st != DAPT_OK) goto cleanup;                                      \
    } while (0)

#define DAPT_THROW(code, ...)                                                 \
    do {                                                                      \
        st = dapt_error_set((code), __FILE__, __LINE__, __VA_ARGS__);         \
        goto cleanup;                                                         \
    } while (0)

/* Checks an MPI return code; on failure records one line naming the
 * function, with the MPI error string: "MPI_Allreduce failed:
 * <MPI_Error_string>" (the rank is the report's, dapt_error_report).
 * Every MPI call's return code goes through DAPT_MPI (or, on cleanup paths
 * that cannot propagate, DAPT_MPI_WARN). */
dapt_status dapt_mpi_status(int mpi_rc, const char *file, int line, const char *call);
#define DAPT_MPI(call) dapt_mpi_status((call), __FILE__, __LINE__, #call)

/* Checks an HDF5 return value (negative = failure) and records the innermost
 * message of the HDF5 error stack. */
dapt_status dapt_h5_status(long long h5_rc, const char *file, int line, const char *call);
#define DAPT_H5(call) dapt_h5_status((long long)(call), __FILE__, __LINE__, #call)

/* The innermost message of the HDF5 error stack (the real cause, "file
 * signature not found"; the outer entries only repeat "unable to open
 * file") into buf, and clears the stack. */
void dapt_h5_error_cause(char *buf, size_t len);

/* For cleanup paths that cannot propagate a failure (closing, freeing,
 * removing a temporary file): the same one line, logged as a warning
 * instead of recorded, so that the error that led to the cleanup keeps its
 * message.  Return 1 when the call failed. */
int dapt_mpi_warn(int mpi_rc, const char *file, int line, const char *call);
int dapt_h5_warn(long long h5_rc, const char *file, int line, const char *call);
#define DAPT_MPI_WARN(call) dapt_mpi_warn((call), __FILE__, __LINE__, #call)
#define DAPT_H5_WARN(call) dapt_h5_warn((long long)(call), __FILE__, __LINE__, #call)

/* malloc/calloc that record DAPT_ERR_NOMEM with the size in human units and
 * the purpose: "cannot allocate 3.0 GiB for model gradients: out of memory"
 * (and the size for dapt_error_alloc_bytes). */
dapt_status dapt_alloc_at(void **out, size_t bytes, const char *what, const char *file, int line);
dapt_status dapt_calloc_at(void **out, size_t count, size_t size, const char *what, const char *file, int line);
/* (Macros, so that DAPT_DEBUG shows the caller's location.) */
#define dapt_alloc(out, bytes, what) dapt_alloc_at((out), (bytes), (what), __FILE__, __LINE__)
#define dapt_calloc(out, count, size, what) dapt_calloc_at((out), (count), (size), (what), __FILE__, __LINE__)

/* A byte count in human units: "512 bytes", "3.0 GiB" (1024-based). */
void dapt_format_bytes(double bytes, char *buf, size_t len);

#endif
