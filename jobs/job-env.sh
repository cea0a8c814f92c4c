# Sourced by the job scripts of jobs/ (and jobs/pipeline.sh), never run:
#
#   . "$(dirname "$(scontrol show job "$SLURM_JOB_ID" | sed -n 's/^ *Command=\([^ ]*\).*/\1/p' | head -n 1)")/job-env.sh"
#
# sbatch runs a copy of the script from its spool, so a script finds its
# siblings through the path SLURM recorded (Command=), which works for a
# checkout and for the copies `make install` puts in $(pkgdatadir)/jobs.
#
# Sets DAPT (unless given) to the first of: build/dapt in the submit
# directory, build/dapt next to this jobs/ directory, dapt on PATH; and the
# OpenMP/OpenBLAS threads to --cpus-per-task so that a rank's BLAS threads
# never oversubscribe its cores.
dapt_jobs_dir=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
if [ -z "${DAPT:-}" ]; then
    for d in "${SLURM_SUBMIT_DIR:-$PWD}/build/dapt" "$dapt_jobs_dir/../build/dapt" "$(command -v dapt || true)"; do
        [ -n "$d" ] && [ -x "$d" ] && { DAPT=$d; break; }
    done
    [ -n "${DAPT:-}" ] || { echo "dapt: no dapt found (build/dapt in $SLURM_SUBMIT_DIR, or on PATH); set DAPT=" >&2; exit 2; }
fi
export DAPT
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1} OPENBLAS_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
# Segments a job killed outright left on this node (jobs/shm-clean.sh; the
# other nodes of a multi-node job need it as a SLURM epilogue).
sh "$dapt_jobs_dir/shm-clean.sh" || true

# dapt_job_log DIR: when SLURM writes the job's output into the submit
# directory (the #SBATCH --output of the scripts), the rest of it (standard
# output and error) is appended to DIR/logs/JOBNAME-JOBID.out instead (JOBID
# as ARRAYID_TASK in a job array), so logs gather with the run they belong to
# rather than pile up where jobs are submitted; appended, so a requeued job
# continues its log.  #SBATCH --output cannot name the run's directory (it
# expands only %j, %x, %u ...), so SLURM's own file gets what happens before
# this call (a usage or configuration error) and is removed here when it is
# still empty.  A job submitted with --output elsewhere (jobs/pipeline.sh
# passes RUN/logs/%x-%j.out) keeps that file, which then also holds SLURM's
# own messages (time limit, cancellation).
dapt_job_log() { # DIR
    # A task of an array is ARRAYID_TASK: `scontrol show job` of its plain
    # job id may list the whole array.
    local id=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
    id=${id:-$SLURM_JOB_ID}
    local log="$1/logs/${SLURM_JOB_NAME}-$id.out" slurm_out
    slurm_out=$(scontrol show job "$id" 2>/dev/null | sed -n 's/^ *StdOut=//p' | head -n 1)
    [ "$(dirname "$slurm_out")" -ef "$SLURM_SUBMIT_DIR" ] || return 0
    mkdir -p "$1/logs"
    exec >>"$log" 2>&1
    if [ -f "$slurm_out" ] && [ ! -s "$slurm_out" ]; then rm -f "$slurm_out"; fi
    echo "dapt: job $SLURM_JOB_ID on $(hostname -s) at $(date -u +%FT%TZ), log $log"
}
