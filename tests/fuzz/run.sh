#!/bin/sh
# Runs every fuzz target (or the ones named) for SECONDS each, one at a
# time, after building what changed (build.sh).  The growing corpus of a
# target is build-fuzz/corpora/TARGET (seeded from fixtures, targets.sh);
# crashes, leaks and timeouts go to build-fuzz/crashes/TARGET/.  Prints one
# line per target: executions and the new artifacts of this run.
#   tests/fuzz/run.sh SECONDS [TARGET...]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${DAPT_FUZZ_BUILD:-$top/build-fuzz}
[ $# -ge 1 ] || { echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2; exit 2; }
seconds=$1; shift
. "$top/tests/fuzz/targets.sh"
[ $# -gt 0 ] && fuzz_targets=$*

"$top/tests/fuzz/build.sh" "$out"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

printf '%-16s %12s %8s %12s\n' target executions exec/s "new crashes"
status=0
for t in $fuzz_targets; do
    [ -x "$out/$t" ] || { echo "run.sh: no target $t" >&2; exit 2; }
    corpus=$out/corpora/$t crashes=$out/crashes/$t log=$out/logs/$t.log
    [ -d "$corpus" ] || fuzz_stage "$t" "$corpus"
    mkdir -p "$crashes" "$out/logs"
    before=$(ls "$crashes" | wc -l)
    # One worker process (-fork=1) that is restarted after a finding, so a
    # run collects every crash, leak and timeout of its time instead of
    # stopping at the first (the HDF5 targets meet libhdf5's own within
    # seconds).
    # shellcheck disable=SC2046
    (cd "$crashes" && "$out/$t" $(fuzz_options "$t" "$out") -max_total_time="$seconds" -fork=1 \
        -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -artifact_prefix="$crashes/" "$corpus") >"$log" 2>&1 ||
        status=1
    # Fork mode's progress lines: "#EXECS: cov: ... exec/s RATE ...".
    execs=$(sed -n 's/^#\([0-9]*\): cov:.*/\1/p' "$log" | tail -n 1)
    rate=$(sed -n 's/^#[0-9]*: cov:.* exec\/s \([0-9]*\).*/\1/p' "$log" | tail -n 1)
    new=$(( $(ls "$crashes" | wc -l) - before ))
    printf '%-16s %12s %8s %12s\n' "$t" "${execs:-?}" "${rate:-?}" "$new"
    [ "$new" -eq 0 ] || ls -t "$crashes" | head -n "$new" | sed 's/^/    /'
done
exit $status
