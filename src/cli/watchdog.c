/* The driver's watchdog: ends a job that stopped making progress (cli.h). */
#define _POSIX_C_SOURCE 200809L
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dapt/cli.h"
#include "dapt/log.h"

static pthread_t watcher;
static atomic_int running;
static double limit;
static int watched_rank;

static void *watch(void *arg)
{
    (void)arg;
    const char *doing = NULL;
    unsigned long long seen = dapt_heartbeat_count(&doing);
    double since = dapt_now();
    /* Check often enough that the abort comes within ~10 % of the limit. */
    const double tick = limit / 10 < 1.0 ? limit / 10 : 1.0;
    const struct timespec ts = {(time_t)tick, (long)((tick - (double)(time_t)tick) * 1e9)};
    while (atomic_load(&running)) {
        nanosleep(&ts, NULL);
        const unsigned long long now_seen = dapt_heartbeat_count(&doing);
        const double now = dapt_now();
        if (now_seen != seen) {
            seen = now_seen;
            since = now;
        } else if (now - since > limit) {
            fprintf(stderr, "dapt: error: rank %d: no progress for %.0f s (last: %s; run.watchdog_s = %g): a stopped "
                    "or dead rank, or a hung file system; aborting the job\n", watched_rank, now - since, doing, limit);
            fflush(stderr);
            /* The main thread is stuck, likely inside MPI: only an abort ends the job. */
            MPI_Abort(MPI_COMM_WORLD, DAPT_EXIT_FAILURE);
        }
    }
    return NULL;
}

dapt_status dapt_cli_watchdog_start(const dapt_cli *cli)
{
    if (!(cli->cfg.run.watchdog_s > 0) || atomic_load(&running)) return DAPT_OK;
    limit = cli->cfg.run.watchdog_s;
    watched_rank = cli->rank;
    atomic_store(&running, 1);
    const int e = pthread_create(&watcher, NULL, watch, NULL);
    if (e != 0) {
        atomic_store(&running, 0);
        return DAPT_ERROR(DAPT_ERR_IO, "cannot start the watchdog thread: %s", strerror(e));
    }
    return DAPT_OK;
}

void dapt_cli_watchdog_stop(void)
{
    if (!atomic_exchange(&running, 0)) return;
    pthread_join(watcher, NULL);
}

/* ---- deadlines ---------------------------------------------------------- */

static pthread_t deadline_watcher;
static atomic_int deadline_running;
static int deadline_rank;

static void *watch_deadline(void *arg)
{
    (void)arg;
    const struct timespec ts = {0, 50000000L}; /* 50 ms: the stop at exit waits for at most one tick */
    while (atomic_load(&deadline_running)) {
        nanosleep(&ts, NULL);
        char what[512];
        const double due = dapt_deadline_get(what, sizeof what);
        if (due > 0 && dapt_now() > due) {
            fprintf(stderr, "dapt: error: rank %d: %s did not finish within its deadline (DAPT_DEADLINE_S, "
                    "default 120 s): the file is corrupted (libhdf5 loops on a damaged global heap) or its file system hangs; aborting the job\n",
                    deadline_rank, what);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, DAPT_EXIT_FAILURE);
        }
    }
    return NULL;
}

dapt_status dapt_cli_deadline_watch_start(int rank)
{
    if (atomic_load(&deadline_running)) return DAPT_OK;
    deadline_rank = rank;
    atomic_store(&deadline_running, 1);
    const int e = pthread_create(&deadline_watcher, NULL, watch_deadline, NULL);
    if (e != 0) {
        atomic_store(&deadline_running, 0);
        return DAPT_ERROR(DAPT_ERR_IO, "cannot start the deadline watcher thread: %s", strerror(e));
    }
    return DAPT_OK;
}

void dapt_cli_deadline_watch_stop(void)
{
    if (!atomic_exchange(&deadline_running, 0)) return;
    pthread_join(deadline_watcher, NULL);
}
