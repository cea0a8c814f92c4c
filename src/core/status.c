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

/* The per-thread error record.  The message is what the user reads; the
 * source location is kept apart and shown only with DAPT_DEBUG (see
 * dapt_error_report).  After a failed agreement, report holds every
 * distinct message of the communicator with the world ranks that hit it,
 * one "ranks\twhere\tmessage" line each; empty otherwise (the message is
 * this rank's own). */
typedef struct error_record {
    char msg[1024];
    char where[96];
    size_t alloc_bytes;
    char report[8192];
} error_record;

static _Thread_local error_record rec;

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
    const char *base = strrchr(file, '/');
    snprintf(rec.where, sizeof rec.where, "%s:%d", base ? base + 1 : file, line);
    /* Format aside first: a cause may quote the previous one
     * (dapt_error_message() as an argument). */
    char text[sizeof rec.msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(rec.msg, text, sizeof text);
    /* One line, and no tab: the agreement's report uses both as separators. */
    for (char *c = rec.msg; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    rec.alloc_bytes = 0;
    rec.report[0] = '\0';
    return st;
}

const char *dapt_error_message(void) { return rec.msg; }

const char *dapt_error_location(void) { return rec.where; }

size_t dapt_error_alloc_bytes(void) { return rec.alloc_bytes; }

void dapt_error_clear(void)
{
    rec.msg[0] = rec.where[0] = rec.report[0] = '\0';
    rec.alloc_bytes = 0;
}

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

/* "MPI_Xxx failed: <MPI_Error_string>" into buf.  The rank is not part of
 * the text: the same failure on several ranks is one message, and the
 * agreement's report names the ranks. */
static void mpi_failure(char *buf, size_t len, int mpi_rc, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(mpi_rc, text, &n) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", mpi_rc);
    /* DAPT_MPI passes the whole call expression: name only the function. */
    int name_len = (int)strcspn(call, "( \t");
    snprintf(buf, len, "%.*s failed: %s", name_len, call, text);
}

dapt_status dapt_mpi_status(int mpi_rc, const char *file, int line, const char *call)
{
    if (mpi_rc == MPI_SUCCESS) return DAPT_OK;
    char msg[MPI_MAX_ERROR_STRING + 160];
    mpi_failure(msg, sizeof msg, mpi_rc, call);
    return dapt_error_set(DAPT_ERR_MPI, file, line, "%s", msg);
}

int dapt_error_debug(void)
{
    const char *v = getenv("DAPT_DEBUG");
    return v && *v && strcmp(v, "0") != 0;
}

/* A cleanup warning: the cause, and its source location with DAPT_DEBUG. */
static void warn_at(const char *file, int line, const char *msg)
{
    const char *base = strrchr(file, '/');
    if (dapt_error_debug()) dapt_warn("%s (at %s:%d)", msg, base ? base + 1 : file, line);
    else dapt_warn("%s", msg);
}

int dapt_mpi_warn(int mpi_rc, const char *file, int line, const char *call)
{
    if (mpi_rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING + 160];
    mpi_failure(msg, sizeof msg, mpi_rc, call);
    warn_at(file, line, msg);
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
    char msg[512];
    snprintf(msg, sizeof msg, "%s failed: %s", call, cause);
    warn_at(file, line, msg);
    return 1;
}

void dapt_format_bytes(double bytes, char *buf, size_t len)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    size_t u = 0;
    while (bytes >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(buf, len, "%.0f bytes", bytes);
    else snprintf(buf, len, "%.1f %s", bytes, units[u]);
}

/* DAPT_ERR_NOMEM for count x size bytes (count * size may overflow). */
static dapt_status alloc_failed(size_t count, size_t size, const char *what, const char *file, int line)
{
    char amount[32];
    dapt_format_bytes((double)count * (double)size, amount, sizeof amount);
    dapt_error_set(DAPT_ERR_NOMEM, file, line, "cannot allocate %s for %s: out of memory", amount, what);
    rec.alloc_bytes = count && size > SIZE_MAX / count ? SIZE_MAX : count * size;
    return DAPT_ERR_NOMEM;
}

dapt_status dapt_alloc_at(void **out, size_t bytes, const char *what, const char *file, int line)
{
    *out = malloc(bytes ? bytes : 1);
    if (!*out) return alloc_failed(1, bytes, what, file, line);
    return DAPT_OK;
}

dapt_status dapt_calloc_at(void **out, size_t count, size_t size, const char *what, const char *file, int line)
{
    *out = calloc(count ? count : 1, size ? size : 1);
    if (!*out) return alloc_failed(count, size, what, file, line);
    return DAPT_OK;
}

/* Size of MPI_COMM_WORLD, or 1 outside MPI. */
static int world_size(void)
{
    int size = 1;
    if (world_rank() < 0 || MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS) return 1;
    return size;
}

/* Sets of world ranks travel as text, "0-3,5": short for the usual case of
 * every rank, and unions need no allocation.  A span is lo..hi. */
typedef struct rank_span {
    long lo, hi;
} rank_span;

#define SPANS_MAX 256

static size_t parse_spans(const char *text, rank_span *out, size_t n, size_t max)
{
    for (const char *c = text; *c && n < max;) {
        char *end = NULL;
        long lo = strtol(c, &end, 10), hi = lo;
        if (end == c) break;
        if (*end == '-') {
            c = end + 1;
            hi = strtol(c, &end, 10);
            if (end == c) break;
        }
        out[n++] = (rank_span){lo, hi};
        c = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int span_order(const void *a, const void *b)
{
    const rank_span *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* The union of spans as text; a list too long for buf ends in ",...". */
static void format_spans(rank_span *s, size_t n, char *buf, size_t len)
{
    qsort(s, n, sizeof *s, span_order);
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n;) {
        long lo = s[i].lo, hi = s[i].hi;
        for (i++; i < n && s[i].lo <= hi + 1; i++)
            if (s[i].hi > hi) hi = s[i].hi;
        char one[48];
        if (lo == hi) snprintf(one, sizeof one, "%s%ld", used ? "," : "", lo);
        else snprintf(one, sizeof one, "%s%ld%s%ld", used ? "," : "", lo, hi == lo + 1 ? "," : "-", hi);
        if (used + strlen(one) + 5 >= len) {
            snprintf(buf + used, len - used, ",...");
            return;
        }
        used += (size_t)snprintf(buf + used, len - used, "%s", one);
    }
}

/* Distinct messages kept by an agreement; more are counted, not listed. */
#define REPORT_ENTRIES 16
#define CONTRIB_MAX 4096

typedef struct report_entry {
    char ranks[256];
    const char *where, *msg;
} report_entry;

/* Appends "ranks\twhere\tmsg\n" to rec.report if it fits whole (room is
 * kept for the count of the ones that do not); returns whether it did. */
static int report_append(const char *ranks, const char *where, const char *msg, size_t reserve)
{
    const size_t used = strlen(rec.report);
    const size_t need = strlen(ranks) + strlen(where) + strlen(msg) + 3;
    if (used + need + reserve >= sizeof rec.report) return 0;
    snprintf(rec.report + used, sizeof rec.report - used, "%s\t%s\t%s\n", ranks, where, msg);
    return 1;
}

/* What one rank sends to a failed agreement: "code alloc_bytes\n" and its
 * report (its own message when it has none); "" when it succeeded. */
static void contribution(dapt_status st, char *buf, size_t len)
{
    buf[0] = '\0';
    if (st == DAPT_OK) return;
    size_t used = (size_t)snprintf(buf, len, "%d %zu\n", (int)st, rec.alloc_bytes);
    if (!rec.report[0]) {
        snprintf(buf + used, len - used, "%d\t%s\t%s\n", world_rank(), rec.where,
                 *rec.msg ? rec.msg : dapt_status_name(st));
        return;
    }
    for (const char *line = rec.report; *line;) {
        const size_t n = strcspn(line, "\n") + 1;
        if (used + n >= len) break; /* whole lines only */
        memcpy(buf + used, line, n);
        used += n;
        buf[used] = '\0';
        line += n;
    }
}

/* Merges the contributions blocks[0..n) (CONTRIB_MAX bytes each, in rank
 * order, the one at index first being the lowest failing rank's) into this
 * rank's record: the same message from several ranks becomes one entry
 * with the union of their ranks.  Returns the lowest failing rank's code. */
static dapt_status merge_contributions(char *blocks, int n, int first)
{
    report_entry e[REPORT_ENTRIES];
    int ne = 0, more = 0, code = DAPT_ERR_INTERNAL;
    size_t bytes = 0;
    if (sscanf(blocks + (size_t)first * CONTRIB_MAX, "%d %zu", &code, &bytes) != 2) code = DAPT_ERR_INTERNAL;
    for (int b = 0; b < n; b++) {
        char *line = blocks + (size_t)b * CONTRIB_MAX;
        line[CONTRIB_MAX - 1] = '\0';
        if (!*line) continue;
        line = strchr(line, '\n'); /* past the code */
        while (line && *++line) {
            char *ranks = line, *where = strchr(ranks, '\t'), *msg = where ? strchr(where + 1, '\t') : NULL;
            char *end = msg ? strchr(msg + 1, '\n') : NULL;
            if (!end) break;
            *where++ = *msg++ = *end = '\0';
            line = end;
            int k = 0;
            while (k < ne && strcmp(e[k].msg, msg)) k++;
            if (k == ne && ne == REPORT_ENTRIES) {
                more++;
                continue;
            }
            rank_span s[SPANS_MAX];
            size_t ns = k < ne ? parse_spans(e[k].ranks, s, 0, SPANS_MAX) : 0;
            ns = parse_spans(ranks, s, ns, SPANS_MAX);
            if (k == ne) e[ne++] = (report_entry){.where = where, .msg = msg};
            format_spans(s, ns, e[k].ranks, sizeof e[k].ranks);
        }
    }
    rec.report[0] = '\0';
    for (int k = 0; k < ne; k++) more += !report_append(e[k].ranks, e[k].where, e[k].msg, 64);
    if (more) {
        char text[64];
        snprintf(text, sizeof text, "(and %d more different messages)", more);
        report_append("", "", text, 0);
    }
    snprintf(rec.msg, sizeof rec.msg, "%s", ne ? e[0].msg : dapt_status_name((dapt_status)code));
    snprintf(rec.where, sizeof rec.where, "%s", ne ? e[0].where : "");
    rec.alloc_bytes = bytes;
    return (dapt_status)code;
}

dapt_status dapt_status_agree(MPI_Comm comm, dapt_status st)
{
    int rank = 0, size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    int mine = st != DAPT_OK ? rank : size, first = size;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm)));
    if (first == size) return DAPT_OK;
    /* Every rank learns every failing rank's messages, so the driver can
     * print each distinct one once, with the ranks that hit it. */
    static _Thread_local char own[CONTRIB_MAX];
    contribution(st, own, sizeof own);
    char *all = malloc((size_t)size * CONTRIB_MAX);
    int ok = all != NULL, all_ok = 0;
    dapt_status mst = DAPT_MPI(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm));
    if (mst == DAPT_OK && all_ok)
        mst = DAPT_MPI(MPI_Allgather(own, CONTRIB_MAX, MPI_BYTE, all, CONTRIB_MAX, MPI_BYTE, comm));
    else if (mst == DAPT_OK) /* short of memory somewhere: the lowest failing rank's messages only */
        mst = DAPT_MPI(MPI_Bcast(own, CONTRIB_MAX, MPI_BYTE, first, comm));
    dapt_status agreed = mst;
    if (mst == DAPT_OK) agreed = all_ok ? merge_contributions(all, size, first) : merge_contributions(own, 1, 0);
    free(all);
    return agreed;
}

int dapt_error_report(dapt_status st, int with_location, char *buf, size_t len)
{
    char own[sizeof rec.msg + sizeof rec.where + 32];
    const char *text = rec.report;
    if (!*text) {
        snprintf(own, sizeof own, "%d\t%s\t%s\n", world_rank(), rec.where, *rec.msg ? rec.msg : dapt_status_name(st));
        text = own;
    }
    char everyone[32];
    rank_span world_span = {0, world_size() - 1};
    format_spans(&world_span, 1, everyone, sizeof everyone);
    int lines = 0;
    size_t used = 0;
    buf[0] = '\0';
    for (const char *line = text; *line && used < len; lines++) {
        const size_t n = strcspn(line, "\n");
        const char *tab1 = memchr(line, '\t', n), *tab2 = tab1 ? memchr(tab1 + 1, '\t', n - (size_t)(tab1 + 1 - line)) : NULL;
        if (!tab2) break;
        const int nr = (int)(tab1 - line), nw = (int)(tab2 - tab1 - 1), nm = (int)(line + n - tab2 - 1);
        char tag[300] = "", at[120] = "";
        /* No ranks when all of them (or the only one) hit the message. */
        const int all = world_size() == 1 || (nr == (int)strlen(everyone) && !strncmp(line, everyone, (size_t)nr));
        if (!all && nr > 0 && line[0] != '-')
            snprintf(tag, sizeof tag, " [rank%s %.*s]", strcspn(line, ",-\t") < (size_t)nr ? "s" : "", nr, line);
        if (with_location && nw > 0) snprintf(at, sizeof at, " (at %.*s)", nw, tab1 + 1);
        int w = snprintf(buf + used, len - used, "%.*s%s%s\n", nm, tab2 + 1, tag, at);
        if (w < 0) break;
        used += (size_t)w;
        line += n + (line[n] == '\n');
    }
    return lines;
}
