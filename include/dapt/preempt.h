/* Preemption: SLURM (and a user's Ctrl-C) ask a job to stop with SIGTERM,
 * SIGUSR1 (`#SBATCH --signal=USR1@...`) or SIGINT.  The handler only sets a
 * flag; the loops ask at each step boundary whether any rank saw it, write a
 * checkpoint and return DAPT_ERR_INTERRUPTED, which the driver turns into
 * exit status 75 (the job scripts requeue on it).  A second SIGINT kills
 * the process as usual.  One arming at a time (a process runs one loop). */
#ifndef DAPT_PREEMPT_H
#define DAPT_PREEMPT_H

#include <mpi.h>
#include <signal.h>

#include "dapt/status.h"

typedef struct dapt_preempt_saved {
    struct sigaction term, usr1, intr;
} dapt_preempt_saved;

/* Clears the flag and installs the handler; *saved keeps the previous
 * handlers for dapt_preempt_disarm.  Not collective. */
void dapt_preempt_arm(dapt_preempt_saved *saved);
void dapt_preempt_disarm(const dapt_preempt_saved *saved);

/* Sets the flag as a signal would (tests).  Async-signal-safe. */
void dapt_preempt_request(void);

/* *stop = 1 on every rank of comm when any rank's flag is set.  Collective
 * over comm. */
dapt_status dapt_preempt_agree(MPI_Comm comm, int *stop);

#endif
