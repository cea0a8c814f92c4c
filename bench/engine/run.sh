#!/bin/sh
# Engine benchmark: dapt's training step and forward pass against PyTorch,
# for bert-base (8 x 128) and the small config (32 x 128), under both
# OpenBLAS kernel choices.  Usage, from a configured build directory:
#
#   make bench/engine/bench_engine
#   sh /path/to/dapt/bench/engine/run.sh [steps] [configs] [coretypes]
#
# defaults: 5 steps, "small base", "Haswell SkylakeX".  dapt and PyTorch
# alternate so that both see the same machine load; each prints the median
# and best step.  PyTorch is Debian's python3-torch with 2 threads.
# Results: stdout and bench/results/engine-<UTC time>.txt.
set -e
here=$(cd "$(dirname "$0")" && pwd)
steps=${1:-5}
configs=${2:-"small base"}
coretypes=${3:-"Haswell SkylakeX"}
bin=./bench/engine/bench_engine
[ -x "$bin" ] || { echo "run.sh: $bin not found; run 'make bench/engine/bench_engine' in the build directory" >&2; exit 1; }
mkdir -p "$here/../results"
out=$here/../results/engine-$(date -u +%Y%m%dT%H%M%S).txt
{
echo "# $(date -u '+%Y-%m-%d %H:%M UTC') $(uname -m), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# bench/engine/run.sh $steps \"$configs\" \"$coretypes\""
for core in $coretypes; do
    for cfg in $configs; do
        echo "## OPENBLAS_CORETYPE=$core config=$cfg"
        OPENBLAS_CORETYPE=$core OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 "$bin" "$cfg" "$steps"
        OPENBLAS_CORETYPE=$core OMP_NUM_THREADS=2 /usr/bin/python3 "$here/bench_torch.py" "$cfg" "$steps"
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
