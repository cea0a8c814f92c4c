/* The last value a run logged in its metrics CSV file, for a resumed run
 * that finds nothing left to do: it reports where the run stands from what
 * the run wrote, not from a step it did not take (see dapt/checkpoint.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/checkpoint.h"
#include "dapt/fsio.h"

/* Field `col` (0-based) of the comma-separated line [p, end) as [*b, *e). */
static int field(const char *p, const char *end, size_t col, const char **b, const char **e)
{
    for (size_t c = 0; c < col; c++) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        if (!comma) return 0;
        p = comma + 1;
    }
    const char *comma = memchr(p, ',', (size_t)(end - p));
    *b = p;
    *e = comma ? comma : end;
    return 1;
}

/* Index of `column` in the header line [p, end), or -1. */
static long header_index(const char *p, const char *end, const char *column)
{
    const size_t n = strlen(column);
    for (size_t c = 0;; c++) {
        const char *b, *e;
        if (!field(p, end, c, &b, &e)) return -1;
        if ((size_t)(e - b) == n && !memcmp(b, column, n)) return (long)c;
    }
}

/* Scans the rows; the last one with first field <= upto and a number in
 * the column wins. */
static void scan(const char *text, const char *column, int64_t upto, double *value, int64_t *key)
{
    const char *p = text, *stop = text + strlen(text);
    const char *eol = memchr(p, '\n', (size_t)(stop - p));
    if (!eol) return;
    const long col = header_index(p, eol, column);
    if (col < 0) return;
    for (p = eol + 1; p < stop; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(stop - p));
        if (!eol) eol = stop;
        const char *b, *e;
        char buf[64], *endp;
        if (!field(p, eol, 0, &b, &e) || e - b <= 0 || (size_t)(e - b) >= sizeof buf) continue;
        memcpy(buf, b, (size_t)(e - b));
        buf[e - b] = 0;
        const long long k = strtoll(buf, &endp, 10);
        if (*endp || k > upto) continue;
        if (!field(p, eol, (size_t)col, &b, &e) || e - b <= 0 || (size_t)(e - b) >= sizeof buf) continue;
        memcpy(buf, b, (size_t)(e - b));
        buf[e - b] = 0;
        const double v = strtod(buf, &endp);
        if (*endp) continue;
        *value = v;
        *key = k;
    }
}

dapt_status dapt_resume_logged(MPI_Comm comm, const char *path, const char *column, int64_t upto, double *value,
                               int64_t *key)
{
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    double got[2] = {NAN, -1.0};
    dapt_status st = DAPT_OK;
    if (rank == 0 && dapt_fs_exists(path)) {
        unsigned char *text = NULL;
        size_t len = 0;
        st = dapt_fs_read_file(path, (size_t)1 << 30, &text, &len);
        if (st == DAPT_OK) {
            int64_t k = -1;
            scan((const char *)text, column, upto, &got[0], &k);
            got[1] = (double)k;
        }
        free(text);
    }
    DAPT_CHECK(dapt_status_agree(comm, st));
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(got, 2, MPI_DOUBLE, 0, comm)));
    *value = got[0];
    *key = (int64_t)got[1];
    return DAPT_OK;
}
