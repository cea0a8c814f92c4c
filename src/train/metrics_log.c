/* The metrics log: each row is built once as CSV text and written to
 * NAME.csv and, converted field by field, to NAME.jsonl (dapt/metrics_log.h).
 * Converting the CSV text rather than formatting the numbers twice is what
 * keeps the two files equal, live and after a resume. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/metrics_log.h"

dapt_status dapt_metrics_log_init(dapt_metrics_log *log, const char *csv_path)
{
    memset(log, 0, sizeof *log);
    const size_t n = strlen(csv_path);
    if (n < 4 || strcmp(csv_path + n - 4, ".csv") != 0 || n >= sizeof log->csv)
        return DAPT_ERROR(DAPT_ERR_ARG, "%s: a metrics log is named NAME.csv", csv_path);
    memcpy(log->csv, csv_path, n + 1);
    snprintf(log->jsonl, sizeof log->jsonl, "%.*sjsonl", (int)(n - 3), csv_path);
    return DAPT_OK;
}

dapt_status dapt_metrics_log_remove(const dapt_metrics_log *log)
{
    const char *paths[] = {log->csv, log->jsonl};
    for (size_t i = 0; i < 2; i++)
        if (unlink(paths[i]) != 0 && errno != ENOENT)
            return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot remove: %s", paths[i], strerror(errno));
    return DAPT_OK;
}

/* A JSON number (RFC 8259 grammar), which every finite value printed with
 * %lld, %d, %.Nf or %.Ng is; "nan" and "inf" are not. */
static int is_json_number(const char *s, size_t n)
{
    size_t i = 0;
#define DIGITS(start) for (start = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
    size_t d;
    if (i < n && s[i] == '-') i++;
    DIGITS(d);
    if (i == d || (s[d] == '0' && i - d > 1)) return 0;
    if (i < n && s[i] == '.') {
        i++;
        DIGITS(d);
        if (i == d) return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        DIGITS(d);
        if (i == d) return 0;
    }
#undef DIGITS
    return i == n;
}

dapt_status dapt_metrics_json_row(const char *const *names, size_t n, const char *csv_row, char *out, size_t cap)
{
    size_t len = 0, k = 0;
    const char *field = csv_row;
    for (; k < n; k++) {
        const char *end = strchr(field, ',');
        const size_t flen = end ? (size_t)(end - field) : strlen(field);
        const int number = is_json_number(field, flen);
        const int w = snprintf(out + len, cap - len, "%s\"%s\":%.*s", k ? "," : "{", names[k], number ? (int)flen : 4,
                               number ? field : "null");
        if (w < 0 || (size_t)w >= cap - len) return DAPT_ERROR(DAPT_ERR_ARG, "metrics row too long for JSON: %s", csv_row);
        len += (size_t)w;
        if (!end) break;
        field = end + 1;
    }
    if (k + 1 != n || strchr(field, ',') || len + 2 > cap)
        return DAPT_ERROR(DAPT_ERR_ARG, "metrics row has a different number of fields than the %zu columns: %s", n,
                          csv_row);
    memcpy(out + len, "}", 2);
    return DAPT_OK;
}

/* The header line of a CSV split in place into names; *n columns. */
static dapt_status split_header(char *line, const char **names, size_t *n, const char *path)
{
    *n = 0;
    for (char *p = line;; p++) {
        if (*n == DAPT_METRICS_MAX_COLUMNS)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: more than %d columns", path, DAPT_METRICS_MAX_COLUMNS);
        names[(*n)++] = p;
        p = strchr(p, ',');
        if (!p) return DAPT_OK;
        *p = '\0';
    }
}

/* JSON lines of every row of the CSV text (modified in place) into a
 * malloc'd buffer. */
static dapt_status jsonl_of_csv(char *text, const char *path, char **out, size_t *out_len)
{
    const char *names[DAPT_METRICS_MAX_COLUMNS];
    size_t n = 0, len = 0, cap = 0;
    char *nl = strchr(text, '\n'), *buf = NULL;
    if (!nl) {
        *out = NULL, *out_len = 0;
        return DAPT_OK; /* no header yet: no rows */
    }
    *nl = '\0';
    DAPT_CHECK(split_header(text, names, &n, path));
    dapt_status st = DAPT_OK;
    for (char *line = nl + 1; st == DAPT_OK && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break; /* a row cut by a crash mid-write is not a row */
        *nl = '\0';
        if (cap - len < DAPT_METRICS_ROW_MAX * 2) {
            cap = cap * 2 + DAPT_METRICS_ROW_MAX * 4;
            char *grown = realloc(buf, cap);
            if (!grown) {
                st = DAPT_ERROR(DAPT_ERR_NOMEM, "%s: out of memory converting to JSON lines", path);
                break;
            }
            buf = grown;
        }
        st = dapt_metrics_json_row(names, n, line, buf + len, cap - len - 1);
        if (st == DAPT_OK) {
            len += strlen(buf + len);
            buf[len++] = '\n';
        }
    }
    if (st != DAPT_OK) {
        free(buf);
        return st;
    }
    *out = buf, *out_len = len;
    return DAPT_OK;
}

/* Rewrites NAME.jsonl from NAME.csv (atomically). */
static dapt_status rebuild_jsonl(const dapt_metrics_log *log)
{
    unsigned char *data = NULL;
    size_t len = 0;
    char *json = NULL;
    size_t json_len = 0;
    DAPT_CHECK(dapt_fs_read_file(log->csv, (size_t)1 << 32, &data, &len));
    dapt_status st = jsonl_of_csv((char *)data, log->csv, &json, &json_len);
    if (st == DAPT_OK) st = dapt_fs_write_atomic(log->jsonl, json ? json : "", json_len, 1);
    free(json);
    free(data);
    return st;
}

dapt_status dapt_metrics_log_truncate(const dapt_metrics_log *log, int64_t last)
{
    if (!dapt_fs_exists(log->csv)) return DAPT_OK;
    DAPT_CHECK(dapt_fs_csv_truncate(log->csv, last));
    return rebuild_jsonl(log);
}

/* The header line of these columns. */
static dapt_status header_line(const char *const *names, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    for (size_t k = 0; k < n; k++) {
        const int w = snprintf(out + len, cap - len, "%s%s", k ? "," : "", names[k]);
        if (w < 0 || (size_t)w >= cap - len) return DAPT_ERROR(DAPT_ERR_ARG, "metrics header too long");
        len += (size_t)w;
    }
    return DAPT_OK;
}

/* An existing CSV must have exactly this header: its rows are continued. */
static dapt_status check_header(const dapt_metrics_log *log, const char *header)
{
    unsigned char *data = NULL;
    size_t len = 0;
    DAPT_CHECK(dapt_fs_read_file(log->csv, (size_t)1 << 32, &data, &len));
    const char *nl = memchr(data, '\n', len);
    const size_t hl = nl ? (size_t)(nl - (const char *)data) : len;
    const int same = hl == strlen(header) && memcmp(data, header, hl) == 0;
    free(data);
    if (!same) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: its columns are not this run's (%s): cannot continue it", log->csv, header);
    return DAPT_OK;
}

static dapt_status open_file(const char *path, const char *mode, FILE **fp)
{
    *fp = fopen(path, mode);
    if (!*fp) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    return DAPT_OK;
}

dapt_status dapt_metrics_log_open(dapt_metrics_log *log, const char *const *names, size_t n, int append)
{
    if (n == 0 || n > DAPT_METRICS_MAX_COLUMNS)
        return DAPT_ERROR(DAPT_ERR_ARG, "%s: %zu columns (1 to %d)", log->csv, n, DAPT_METRICS_MAX_COLUMNS);
    memcpy(log->names, names, n * sizeof *names);
    log->ncols = n;
    char header[DAPT_METRICS_ROW_MAX];
    DAPT_CHECK(header_line(names, n, header, sizeof header));
    const int keep = append && dapt_fs_exists(log->csv);
    if (keep) {
        DAPT_CHECK(check_header(log, header));
        DAPT_CHECK(rebuild_jsonl(log));
    }
    DAPT_CHECK(open_file(log->csv, keep ? "a" : "w", &log->csv_fp));
    DAPT_CHECK(open_file(log->jsonl, keep ? "a" : "w", &log->jsonl_fp));
    if (!keep) fprintf(log->csv_fp, "%s\n", header);
    if (fflush(log->csv_fp) != 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot write: %s", log->csv, strerror(errno));
    log->len = 0;
    return DAPT_OK;
}

void dapt_metrics_log_field(dapt_metrics_log *log, const char *fmt, ...)
{
    if (log->len && log->len < sizeof log->row) log->row[log->len++] = ',';
    va_list ap;
    va_start(ap, fmt);
    const int w = log->len < sizeof log->row ? vsnprintf(log->row + log->len, sizeof log->row - log->len, fmt, ap) : -1;
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof log->row - log->len) {
        log->overflow = 1;
        log->len = sizeof log->row;
    } else {
        log->len += (size_t)w;
    }
}

void dapt_metrics_log_empty(dapt_metrics_log *log) { dapt_metrics_log_field(log, "%s", ""); }

/* Writes line + '\n' to fp and flushes. */
static dapt_status write_line(FILE *fp, const char *line, const char *path)
{
    if (fprintf(fp, "%s\n", line) < 0 || fflush(fp) != 0 || ferror(fp))
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    return DAPT_OK;
}

dapt_status dapt_metrics_log_end_row(dapt_metrics_log *log)
{
    const int overflow = log->overflow;
    const size_t len = log->len;
    log->len = 0;
    log->overflow = 0;
    if (!log->csv_fp) return DAPT_OK;
    if (overflow) return DAPT_ERROR(DAPT_ERR_ARG, "%s: a row longer than %d characters", log->csv, DAPT_METRICS_ROW_MAX);
    log->row[len] = '\0';
    char json[DAPT_METRICS_ROW_MAX * 2];
    DAPT_CHECK(dapt_metrics_json_row(log->names, log->ncols, log->row, json, sizeof json));
    DAPT_CHECK(write_line(log->csv_fp, log->row, log->csv));
    return write_line(log->jsonl_fp, json, log->jsonl);
}

void dapt_metrics_log_close(dapt_metrics_log *log)
{
    if (log->csv_fp) fclose(log->csv_fp);
    if (log->jsonl_fp) fclose(log->jsonl_fp);
    log->csv_fp = log->jsonl_fp = NULL;
}
