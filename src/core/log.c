/* Rank-aware logging and progress lines. */
#include "dapt/log.h"

#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_rank = 0;
static int log_all_ranks = 0;
static dapt_log_level log_level = DAPT_LOG_INFO;
static FILE *log_stream = NULL;

void dapt_log_setup(int rank, int all_ranks, dapt_log_level level)
{
    log_rank = rank;
    log_all_ranks = all_ranks;
    log_level = level;
}

void dapt_log_set_stream(FILE *stream) { log_stream = stream; }

static const char *const level_tags[] = {"error: ", "warning: ", "", "debug: "};

void dapt_log(dapt_log_level level, const char *fmt, ...)
{
    if (level > log_level) return;
    /* Errors and warnings are worth seeing from any rank; chatter only from 0. */
    if (level >= DAPT_LOG_INFO && log_rank != 0 && !log_all_ranks) return;
    FILE *out = log_stream ? log_stream : stderr;
    char stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    /* Format into one buffer so lines from different ranks do not interleave. */
    char line[4096];
    int n = snprintf(line, sizeof line, "[%s r%d] %s", stamp, log_rank, level_tags[level]);
    if (n < 0) return;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(out, "%s\n", line);
    fflush(out);
}

double dapt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dapt_progress_start(dapt_progress *p, const char *label, const char *unit, int64_t total,
                         double interval_seconds)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->start = dapt_now();
    p->last_print = p->start;
    p->interval = interval_seconds;
    p->printed_done = -1;
}

static void format_hms(double seconds, char *buf, size_t len)
{
    if (!(seconds >= 0) || seconds > 359999) {
        snprintf(buf, len, "--:--:--");
        return;
    }
    long s = (long)(seconds + 0.5);
    snprintf(buf, len, "%02ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

void dapt_progress_format(const dapt_progress *p, int64_t done, double now, const char *extra,
                          char *buf, size_t len)
{
    double elapsed = now - p->start;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    char eta[48], took[48];
    format_hms(elapsed, took, sizeof took);
    int n;
    if (p->total > 0) {
        double remaining = rate > 0 ? (double)(p->total - done) / rate : -1;
        format_hms(remaining, eta, sizeof eta);
        n = snprintf(buf, len, "%s: %lld/%lld (%.1f%%) %.3g %s/s elapsed %s ETA %s", p->label,
                     (long long)done, (long long)p->total, 100.0 * (double)done / (double)p->total,
                     rate, p->unit, took, eta);
    } else {
        n = snprintf(buf, len, "%s: %lld %.3g %s/s elapsed %s", p->label, (long long)done, rate,
                     p->unit, took);
    }
    if (extra && *extra && n >= 0 && (size_t)n < len) snprintf(buf + n, len - (size_t)n, " | %s", extra);
}

int dapt_progress_update(dapt_progress *p, int64_t done, const char *extra)
{
    double now = dapt_now();
    int last = p->total > 0 && done >= p->total;
    if (!last && now - p->last_print < p->interval) return 0;
    if (done == p->printed_done) return 0;
    char line[512];
    dapt_progress_format(p, done, now, extra, line, sizeof line);
    dapt_info("%s", line);
    p->last_print = now;
    p->printed_done = done;
    return 1;
}

static _Atomic unsigned long long heartbeats;
static _Atomic(const char *) heartbeat_doing;

void dapt_heartbeat(const char *doing)
{
    atomic_store_explicit(&heartbeat_doing, doing, memory_order_relaxed);
    atomic_fetch_add_explicit(&heartbeats, 1, memory_order_release);
}

static _Atomic unsigned long long deadline_ms; /* dapt_now() * 1000 of the deadline, 0 = none */
static char deadline_what[512];
static _Atomic unsigned deadline_seq; /* odd while deadline_what is being written */

void dapt_deadline_begin(const char *what, double seconds)
{
    const char *env = getenv("DAPT_DEADLINE_S");
    if (env && *env) seconds = strtod(env, NULL);
    if (!(seconds > 0)) return;
    atomic_fetch_add_explicit(&deadline_seq, 1, memory_order_acq_rel);
    snprintf(deadline_what, sizeof deadline_what, "%s", what);
    atomic_fetch_add_explicit(&deadline_seq, 1, memory_order_acq_rel);
    atomic_store_explicit(&deadline_ms, (unsigned long long)((dapt_now() + seconds) * 1000.0), memory_order_release);
}

void dapt_deadline_end(void) { atomic_store_explicit(&deadline_ms, 0, memory_order_release); }

double dapt_deadline_get(char *what, size_t n)
{
    const unsigned long long ms = atomic_load_explicit(&deadline_ms, memory_order_acquire);
    if (ms == 0) return 0.0;
    /* A torn copy is only a garbled message; retry a few times for a clean one. */
    for (int tries = 0; tries < 8; tries++) {
        const unsigned s0 = atomic_load_explicit(&deadline_seq, memory_order_acquire);
        if (s0 & 1u) continue;
        snprintf(what, n, "%s", deadline_what);
        if (atomic_load_explicit(&deadline_seq, memory_order_acquire) == s0) break;
    }
    return (double)ms / 1000.0;
}

unsigned long long dapt_heartbeat_count(const char **doing)
{
    const unsigned long long n = atomic_load_explicit(&heartbeats, memory_order_acquire);
    const char *d = atomic_load_explicit(&heartbeat_doing, memory_order_relaxed);
    *doing = d ? d : "starting";
    return n;
}
