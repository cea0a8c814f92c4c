/* Rank-aware logging and progress lines.
 *
 * Messages go to stderr as "[YYYY-mm-dd HH:MM:SS rR] text".  By default only
 * rank 0 of the log communicator prints info/debug; warnings and errors are
 * printed by whichever rank raises them; --verbose makes every rank print.
 * No function here is collective. */
#ifndef DAPT_LOG_H
#define DAPT_LOG_H

#include <stdint.h>
#include <stdio.h>

typedef enum { DAPT_LOG_ERROR = 0, DAPT_LOG_WARN, DAPT_LOG_INFO, DAPT_LOG_DEBUG } dapt_log_level;

/* Sets this process's rank (for the prefix), whether all ranks print, and the
 * highest level printed.  Before the call: rank 0, not verbose, INFO. */
void dapt_log_setup(int rank, int all_ranks, dapt_log_level level);

/* Redirects output (tests); NULL restores stderr. */
void dapt_log_set_stream(FILE *stream);

void dapt_log(dapt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define dapt_info(...) dapt_log(DAPT_LOG_INFO, __VA_ARGS__)
#define dapt_warn(...) dapt_log(DAPT_LOG_WARN, __VA_ARGS__)
#define dapt_debug(...) dapt_log(DAPT_LOG_DEBUG, __VA_ARGS__)

/* Monotonic wall clock in seconds. */
double dapt_now(void);

/* The heartbeat a watchdog watches (src/cli/watchdog.c): long loops call
 * dapt_heartbeat once per unit of work (a step, a batch, a checkpoint
 * tensor) with what they are doing, a string literal.  Cheap (two atomic
 * stores); not collective; any thread. */
void dapt_heartbeat(const char *doing);
/* Heartbeats so far, and the last one's doing ("starting" before any). */
unsigned long long dapt_heartbeat_count(const char **doing);

/* A deadline on one operation that must finish quickly however large the
 * data (reading a string attribute: libhdf5 loops forever on a corrupted
 * global heap).  The driver's deadline watcher (src/cli/watchdog.c) ends
 * the job with one line naming `what` if dapt_deadline_end has not been
 * called within `seconds` (DAPT_DEADLINE_S in the environment overrides
 * it; 0 or less disarms).  Not nested; not collective; the main thread. */
void dapt_deadline_begin(const char *what, double seconds);
void dapt_deadline_end(void);
/* The armed deadline (dapt_now() time) and its text into what[n]; 0 when
 * none is armed.  Any thread. */
double dapt_deadline_get(char *what, size_t n);

/* A progress line for long loops: "label: done/total (pct) rate unit/s ETA
 * hh:mm:ss | extra", printed at most once per interval seconds and on the
 * last item.  total <= 0 means unknown (no percentage or ETA). */
typedef struct dapt_progress {
    char label[64];
    char unit[16];
    int64_t total;
    double start, last_print, interval;
    int64_t printed_done;
} dapt_progress;

void dapt_progress_start(dapt_progress *p, const char *label, const char *unit,
                         int64_t total, double interval_seconds);
/* Returns 1 if a line was printed.  extra may be NULL. */
int dapt_progress_update(dapt_progress *p, int64_t done, const char *extra);
/* Formats the progress line into buf without printing (tests, metrics). */
void dapt_progress_format(const dapt_progress *p, int64_t done, double now,
                          const char *extra, char *buf, size_t len);

#endif
