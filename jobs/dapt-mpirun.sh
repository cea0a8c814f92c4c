#!/bin/sh
# mpirun for dapt outside SLURM, with the preemption contract kept: SIGTERM,
# SIGINT and SIGHUP to this script become the SIGUSR1 that Open MPI forwards
# to every rank, so dapt checkpoints at the next step boundary and exits 75
# -- and so does this script.  (Plain mpirun answers SIGTERM by killing the
# ranks and returns 1 even when they wrote their checkpoint: issue 17,
# item 9.)  Under SLURM use srun, which forwards SIGTERM and returns 75.
#
#   jobs/dapt-mpirun.sh [mpirun options] dapt train ...
#
# MPIRUN names another mpirun.  A second signal is forwarded too.
: "${MPIRUN:=mpirun}"
"$MPIRUN" "$@" &
pid=$!
# A non-interactive shell starts background jobs with SIGINT ignored, so a
# ^C reaches mpirun only as the SIGUSR1 below.
trap 'kill -USR1 $pid 2>/dev/null' TERM INT HUP USR1
while :; do
    wait $pid
    rc=$?
    # 128 + n: the trap interrupted wait; wait again for mpirun itself.
    [ $rc -gt 128 ] && kill -0 $pid 2>/dev/null && continue
    break
done
exit $rc
