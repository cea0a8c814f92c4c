#!/bin/sh
# Removes the shared-memory segments Open MPI leaves behind when a job is
# killed outright (SIGKILL of every rank and of mpirun/srun: the OOM killer,
# a node's time-limit kill): vader_segment.* and sm_segment.* files in DIR
# (default /dev/shm) that belong to this user and that no live process maps
# or holds open.  A job that ends on its own, or on SIGTERM/SIGUSR1, cleans
# up after itself; these files otherwise fill /dev/shm (RAM) one job at a
# time.  The segments of running jobs are left alone, so it is safe at any
# time; jobs/job-env.sh runs it when a job starts, and a site can run it as
# a SLURM epilogue on every node:
#
#   jobs/shm-clean.sh [DIR]
set -u
dir=${1:-/dev/shm}
me=$(id -u)
n=0
for f in "$dir"/vader_segment.* "$dir"/sm_segment.*; do
    [ -f "$f" ] || continue
    [ "$(stat -c %u "$f" 2>/dev/null)" = "$me" ] || continue
    # Mapped (the transport's use) or open by a live process of ours?
    grep -qsF -- "$f" /proc/[0-9]*/maps 2>/dev/null && continue
    for fd in /proc/[0-9]*/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "$f" ] && continue 2
    done
    rm -f -- "$f" && n=$((n + 1))
done
[ "$n" -gt 0 ] && echo "dapt: removed $n stale Open MPI shared-memory segment(s) from $dir (a job killed outright left them)" >&2
exit 0
