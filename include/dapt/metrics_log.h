/* The metrics log of a run: one row per step (dapt train) or per epoch
 * (dapt finetune), written twice from the same text as it happens:
 *
 *   NAME.csv    a header line, then one comma-separated row per line;
 *   NAME.jsonl  one JSON object per row with every column of the header as
 *               a key, in header order; a field is the CSV field's text as a
 *               JSON number, or null where the CSV field is empty (not
 *               evaluated on that row) or not a finite number (nan, inf).
 *
 * Both files are flushed after every row, so a running job can be watched
 * (tools/plot.py --follow).  On resume the CSV is cut back to the resumed
 * step and the JSONL is rebuilt from it, so the two always hold the same
 * rows, including for a run begun before the JSONL existed.
 *
 * Column names are plain identifiers ([a-z0-9_]); the first column is an
 * integer key (step, epoch).  Nothing here is collective: the run's leader
 * writes, and a failed write (a full disk) is an error, not a silent gap. */
#ifndef DAPT_METRICS_LOG_H
#define DAPT_METRICS_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "dapt/status.h"

#define DAPT_METRICS_MAX_COLUMNS 48
#define DAPT_METRICS_PATH_MAX 4096
#define DAPT_METRICS_ROW_MAX 2048

typedef struct dapt_metrics_log {
    char csv[DAPT_METRICS_PATH_MAX], jsonl[DAPT_METRICS_PATH_MAX];
    FILE *csv_fp, *jsonl_fp;
    const char *names[DAPT_METRICS_MAX_COLUMNS]; /* not copied: must outlive the log */
    size_t ncols;
    char row[DAPT_METRICS_ROW_MAX]; /* the row being built (CSV text) */
    size_t len;
    int overflow;
} dapt_metrics_log;

/* Names the two files: csv_path ("OUT/metrics.csv") and the same path with
 * ".jsonl" for its ".csv" suffix (which csv_path must have).  Opens nothing. */
dapt_status dapt_metrics_log_init(dapt_metrics_log *log, const char *csv_path);

/* Removes both files (--force); a missing file is not an error. */
dapt_status dapt_metrics_log_remove(const dapt_metrics_log *log);

/* Keeps the CSV's header and its rows with key <= last (dapt_fs_csv_truncate)
 * and rewrites the JSONL from those rows, both atomically.  A missing CSV
 * leaves both alone. */
dapt_status dapt_metrics_log_truncate(const dapt_metrics_log *log, int64_t last);

/* Opens both files for appending, with columns names[0..n-1].  An existing
 * CSV (a resumed run, truncated first) keeps its rows and must have exactly
 * these columns; a new one gets the header.  The JSONL is then rebuilt from
 * the CSV when it does not hold the same number of rows.  append = 0 starts
 * both files empty. */
dapt_status dapt_metrics_log_open(dapt_metrics_log *log, const char *const *names, size_t n, int append);

/* Appends one field to the row being built, printf-style (one value, no
 * comma); the first call after dapt_metrics_log_end_row starts a new row.
 * Errors (too long a row) are reported by end_row. */
void dapt_metrics_log_field(dapt_metrics_log *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends an empty field (a value this row does not have). */
void dapt_metrics_log_empty(dapt_metrics_log *log);

/* Writes the row (which must have one field per column) to both files and
 * flushes them.  A log that is not open (another rank) does nothing. */
dapt_status dapt_metrics_log_end_row(dapt_metrics_log *log);

/* Closes both files (no error: every row was already flushed and checked). */
void dapt_metrics_log_close(dapt_metrics_log *log);

/* The JSON object of one CSV row with these column names, into out (a
 * NUL-terminated line without the newline).  For the log and its tests. */
dapt_status dapt_metrics_json_row(const char *const *names, size_t n, const char *csv_row, char *out, size_t cap);

#endif
