/* Status names and the per-thread error record. */
#include "dapt/status.h"

#include "dapt/log.h"

#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char error_record[1024];

static const char *const status_names[DAPT_STATUS_COUNT] = {
    [DAPT_OK] = "ok",
    [DAPT_ERR_ARG] = "bad argument",
    [DAPT_ERR_CONFIG] = "configuration error",
    [DAPT_ERR_NOMEM] = "out of memory",
    [DAPT_ERR_IO] = "I/O error",
    [DAPT_ERR_FORMAT] = "malformed input",
    [DAPT_ERR_UNSUPPORTED] = "unsupported",
    [DAPT_ERR_EXISTS] = "output exists",
    [DAPT_ERR_MPI] = "MPI error",
    [DAPT_ERR_HDF5] = "HDF5 error",
    [DAPT_ERR_NUMERIC] = "numerical error",
    [DAPT_ERR_INTERRUPTED] = "interrupted",
    [DAPT_ERR_INTERNAL] = "internal error",
};

const char *dapt_status_name(dapt_status st)
{
    if ((int)st < 0 || st >= DAPT_STATUS_COUNT) return "unknown status";
    return status_names[st];
}

dapt_status dapt_error_set(dapt_status st, const char *file, int line, const char *fmt, ...)
{
    /* Keep only the basename of the source file: the line must stay short. */
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    int n = snprintf(error_record, sizeof error_record, "%s:%d: ", base, line);
    if (n < 0 || (size_t)n >= sizeof error_record) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_record + n, sizeof error_record - (size_t)n, fmt, ap);
    va_end(ap);
    /* One line: fold any newline a cause might carry. */
    for (char *c = error_record; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return st;
}

const char *dapt_error_message(void) { return error_record; }

void dapt_error_clear(void) { error_record[0] = '\0'; }

/* This process's rank in MPI_COMM_WORLD, or -1 outside MPI (before
 * MPI_Init, after MPI_Finalize). */
static int world_rank(void)
{
    int up = 0, down = 0, rank = -1;
    if (MPI_Initialized(&up) != MPI_SUCCESS || !up) return -1;
    if (MPI_Finalized(&down) != MPI_SUCCESS || down) return -1;
    if (MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS) return -1;
    return rank;
}

/* "rank R: MPI_Xxx failed: <MPI_Error_string>" into buf. */
static void mpi_failure(char *buf, size_t len, int mpi_rc, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(mpi_rc, text, &n) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", mpi_rc);
    /* DAPT_MPI passes the whole call expression: name only the function. */
    int name_len = (int)strcspn(call, "( \t");
    snprintf(buf, len, "rank %d: %.*s failed: %s", world_rank(), name_len, call, text);
}

dapt_status dapt_mpi_status(int mpi_rc, const char *file, int line, const char *call)
{
    if (mpi_rc == MPI_SUCCESS) return DAPT_OK;
    char msg[MPI_MAX_ERROR_STRING + 160];
    mpi_failure(msg, sizeof msg, mpi_rc, call);
    return dapt_error_set(DAPT_ERR_MPI, file, line, "%s", msg);
}

int dapt_mpi_warn(int mpi_rc, const char *file, int line, const char *call)
{
    if (mpi_rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING + 160];
    mpi_failure(msg, sizeof msg, mpi_rc, call);
    const char *base = strrchr(file, '/');
    dapt_warn("%s:%d: %s", base ? base + 1 : file, line, msg);
    return 1;
}

/* Walks the HDF5 error stack to its innermost (first) entry: that one names
 * the real cause ("file signature not found"), the outer ones only repeat
 * "unable to open file". */
typedef struct h5_cause_buf {
    char *buf;
    size_t len;
} h5_cause_buf;

static herr_t innermost_h5_error(unsigned n, const H5E_error2_t *err, void *data)
{
    const h5_cause_buf *c = data;
    if (n == 0) snprintf(c->buf, c->len, "%s", err->desc ? err->desc : "unknown cause");
    return 0;
}

void dapt_h5_error_cause(char *buf, size_t len)
{
    if (!len) return;
    snprintf(buf, len, "unknown cause");
    h5_cause_buf c = {buf, len};
    /* Walking or clearing can only fail on a broken stack: the cause then
     * stays "unknown cause". */
    if (H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_h5_error, &c) < 0) snprintf(buf, len, "unknown cause");
    (void)H5Eclear2(H5E_DEFAULT);
}

dapt_status dapt_h5_status(long long h5_rc, const char *file, int line, const char *call)
{
    if (h5_rc >= 0) return DAPT_OK;
    char cause[256];
    dapt_h5_error_cause(cause, sizeof cause);
    return dapt_error_set(DAPT_ERR_HDF5, file, line, "%s failed: %s", call, cause);
}

int dapt_h5_warn(long long h5_rc, const char *file, int line, const char *call)
{
    if (h5_rc >= 0) return 0;
    char cause[256];
    dapt_h5_error_cause(cause, sizeof cause);
    const char *base = strrchr(file, '/');
    dapt_warn("%s:%d: %s failed: %s", base ? base + 1 : file, line, call, cause);
    return 1;
}

dapt_status dapt_alloc(void **out, size_t bytes, const char *what)
{
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot allocate %zu bytes for %s", bytes, what);
    return DAPT_OK;
}

dapt_status dapt_calloc(void **out, size_t count, size_t size, const char *what)
{
    *out = calloc(count ? count : 1, size ? size : 1);
    if (!*out)
        return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot allocate %zu x %zu bytes for %s", count, size, what);
    return DAPT_OK;
}

dapt_status dapt_status_agree(MPI_Comm comm, dapt_status st)
{
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    int mine = st != DAPT_OK ? rank : size, first = size;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm)));
    if (first == size) return DAPT_OK;
    struct {
        int code;
        char msg[1024];
    } rec = {(int)st, ""};
    if (rank == first) snprintf(rec.msg, sizeof rec.msg, "%s", dapt_error_message());
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&rec, (int)sizeof rec, MPI_BYTE, first, comm)));
    if (rank != first) DAPT_ERROR((dapt_status)rec.code, "on rank %d: %s", first, rec.msg);
    return (dapt_status)rec.code;
}
