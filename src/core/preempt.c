/* Stop requests from signals (dapt/preempt.h). */
#include "dapt/preempt.h"

#include <string.h>

static volatile sig_atomic_t requested = 0;

void dapt_preempt_request(void) { requested = 1; }

static void on_signal(int sig)
{
    requested = 1;
    /* A second Ctrl-C ends the process the usual way. */
    if (sig == SIGINT) signal(SIGINT, SIG_DFL);
}

void dapt_preempt_arm(dapt_preempt_saved *saved)
{
    requested = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &saved->term);
    sigaction(SIGUSR1, &sa, &saved->usr1);
    sigaction(SIGINT, &sa, &saved->intr);
}

void dapt_preempt_disarm(const dapt_preempt_saved *saved)
{
    sigaction(SIGTERM, &saved->term, NULL);
    sigaction(SIGUSR1, &saved->usr1, NULL);
    sigaction(SIGINT, &saved->intr, NULL);
}

dapt_status dapt_preempt_agree(MPI_Comm comm, int *stop)
{
    int mine = requested, any = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm)));
    *stop = any;
    return DAPT_OK;
}
