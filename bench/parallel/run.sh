#!/bin/bash
# Data-parallel dapt train: step time on 1, 2 and 4 ranks (4 oversubscribed
# on a 2-core machine, labelled so), the share of the step spent in the
# gradient all-reduce, and checkpoint write/read bandwidth against the
# disk's plain sequential bandwidth measured in the same run.
#
#   bench/parallel/run.sh [BUILD_DIR] [STEPS] [RANKS]
#
# defaults: the source tree as build directory, 8 steps, "1 2 4".
# Environment: SCRATCH (directory for the runs and the dd file, default a
# new directory under ${TMPDIR:-/tmp}: point it at the file system the
# checkpoints go to), MODEL="hidden layers heads intermediate" (default
# "256 4 4 1024"), BATCH (global sequences per step, default 16), SEQ
# (default 128), MPIRUN_ARGS (extra mpirun options, e.g. "--mca io romio321"),
# CORPUS (a text file instead of data/corpus/computing/foldoc.txt), DAPT_SET
# (extra --set options for every dapt train, e.g. "parallel.overlap_grads=false" or
# "parallel.shard_optimizer=true").  Results: stdout and bench/results/parallel-<UTC time>.txt.
#
# How it measures (no changes to dapt): mpi_timer.c, a PMPI interposer
# loaded with LD_PRELOAD, sums per rank the time inside MPI calls (the
# gradient buckets' MPI_Iallreduce + MPI_Waitall, small agreement
# all-reduces, MPI-IO reads and writes); step times come from metrics.csv
# (tokens / tokens_per_s of each step; the first step, which warms up, is
# left out); checkpoint write time from dapt's own log line; checkpoint
# read = a --resume run with nothing left to train, its MPI-IO read time
# and bytes after the file's page cache was dropped (dd iflag=nocache).
set -euo pipefail
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top}
steps=${2:-8}
ranks=${3:-"1 2 4"}
read -r H L NH I <<<"${MODEL:-256 4 4 1024}"
batch=${BATCH:-16}
seq=${SEQ:-128}
dapt=$build/dapt
[ -x "$dapt" ] || { echo "run.sh: no dapt binary in $build" >&2; exit 1; }
corpus_txt=${CORPUS:-$top/data/corpus/computing/foldoc.txt}
[ -e "$corpus_txt" ] || { echo "run.sh: $corpus_txt missing: run data/fetch.sh (or set CORPUS to a text file)" >&2; exit 1; }
if [ -n "${SCRATCH:-}" ]; then
    scratch=$SCRATCH
    mkdir -p "$scratch"
    trap 'rm -rf "$scratch"/run-* "$scratch"/dd.bin "$scratch"/vocab' EXIT
else
    scratch=$(mktemp -d "${TMPDIR:-/tmp}/dapt-bench-parallel-XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
fi
cores=$(nproc)
mkdir -p "$top/bench/results"
out=$top/bench/results/parallel-$(date -u +%Y%m%dT%H%M%S).txt

mpicc -O2 -shared -fPIC -o "$scratch/mpi_timer.so" "$top/bench/parallel/mpi_timer.c"
tar -xJf "$top/tests/fixtures/vocab.tar.xz" -C "$scratch"
vocab=$scratch/vocab/bert-base-uncased/vocab.txt
[ -e "$scratch/corpus.h5" ] ||
    mpirun -n 2 --oversubscribe "$dapt" prepare --tokenizer "$vocab" --doc-sep blank -o "$scratch/corpus.h5" \
        "$corpus_txt" >/dev/null 2>&1
cat >"$scratch/run.ini" <<INI
[run]
seed = 7
[data]
corpus = $scratch/corpus.h5
seq_len = $seq
eval_fraction = 0.01
[tokenizer]
path = $vocab
[model]
hidden = $H
layers = $L
heads = $NH
intermediate = $I
[train]
steps = $steps
batch_size = $batch
eval_every = 0
log_every = 1
[checkpoint]
every = 0
keep = 1
INI

# mpirun for n ranks; more ranks than cores are oversubscribed.
launch() {
    local n=$1
    shift
    # shellcheck disable=SC2086
    mpirun ${MPIRUN_ARGS:-} -n "$n" --oversubscribe --bind-to none -x LD_PRELOAD="$scratch/mpi_timer.so" -x OMP_NUM_THREADS \
        -x OPENBLAS_NUM_THREADS "$@"
}
sets=""
for kv in ${DAPT_SET:-}; do sets="$sets --set $kv"; done
field() { sed -nE "s/.* $1=([0-9.]+).*/\1/p" | sort -g | tail -1; } # max over ranks

{
echo "# dapt train data-parallel benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $cores cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# model: bert hidden $H, $L layers, $NH heads, FFN $I, vocab 30522; global batch $batch x $seq; $steps steps; corpus $(basename "$corpus_txt")"
echo "# mpirun options: ${MPIRUN_ARGS:-(none)}; dapt train options: ${DAPT_SET:-(none)}"
echo "# scratch: $scratch ($(df -T "$scratch" | awk 'NR == 2 {print $2 " on " $1}'))"

# Plain sequential write and read of a file the size of one checkpoint
# (3 x parameters x 4 bytes), measured first so it sees the same disk.
params=$(( 30522 * H + 512 * H + 2 * H + 2 * H + L * (4 * H * H + 4 * H + 2 * H * I + I + H + 4 * H) + H * H + H + H * H + H + 2 * H + 30522 ))
ckpt_mb=$(( 3 * params * 4 / 1048576 + 1 ))
# Best of 3 of each: the disk's capability, as a shared disk allows.
to_mbs() { awk -v v="$1" -v u="$2" 'BEGIN{f = u ~ /^GB/ ? 1000 : u ~ /^kB/ ? 0.001 : 1; printf "%.1f\n", v * f}'; }
dd_wm=0
dd_rm=0
for _ in 1 2 3; do
    w=$(to_mbs $(dd if=/dev/zero of="$scratch/dd.bin" bs=1M count="$ckpt_mb" conv=fdatasync 2>&1 | awk '/copied/ {print $(NF-1), $NF}'))
    r=$(to_mbs $(dd if="$scratch/dd.bin" of=/dev/null bs=1M iflag=direct 2>&1 | awk '/copied/ {print $(NF-1), $NF}'))
    dd_wm=$(awk -v a="$dd_wm" -v b="$w" 'BEGIN{print (b > a ? b : a)}')
    dd_rm=$(awk -v a="$dd_rm" -v b="$r" 'BEGIN{print (b > a ? b : a)}')
done
echo "# disk: dd of $ckpt_mb MiB, best of 3: write with conv=fdatasync $dd_wm MB/s, read with iflag=direct $dd_rm MB/s"
echo
printf '%-22s %10s %10s %11s %9s %9s %10s %10s %9s %9s %9s\n' ranks step_ms_med step_ms_min tokens/s speedup grad_ms grad_share sync_ms ckpt_w_MB/s ckpt_r_MB/s rss_MB
base=""
for n in $ranks; do
    label="$n"
    [ "$n" -gt "$cores" ] && label="$n (oversubscribed)"
    d=$scratch/run-$n
    rm -rf "$d"
    OMP_NUM_THREADS=$(( cores / n > 0 ? cores / n : 1 )) OPENBLAS_NUM_THREADS=1 \
        launch "$n" "$dapt" train --config "$scratch/run.ini" --set run.output_dir="$d" $sets >"$d.log" 2>&1 ||
        { cat "$d.log"; echo "run.sh: dapt train failed on $n ranks" >&2; exit 1; }
    # step times (ms), without the first step
    tail -n +2 "$d/metrics.csv" | awk -F, -v tok=$((batch * seq)) 'NR > 1 && $5 > 0 {print 1000 * tok / $5}' | sort -g >"$d.steps"
    med=$(awk '{v[NR] = $1} END {print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}' "$d.steps")
    min=$(head -1 "$d.steps")
    grad=$(grep mpi_timer "$d.log" | field grad_s)
    sync=$(grep mpi_timer "$d.log" | field sync_s)
    rss=$(grep mpi_timer "$d.log" | field maxrss_mb)
    ckw=$(sed -nE 's/.*checkpoint step [0-9]+ written in [0-9.]+ s \(([0-9.]+) MB\/s\).*/\1/p' "$d.log" | tail -1)
    # read: resume with nothing left to do, the checkpoint's cache dropped
    for f in "$d"/checkpoints/*.h5; do dd if="$f" iflag=nocache count=0 status=none; done
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 launch "$n" "$dapt" train --config "$scratch/run.ini" \
        --set run.output_dir="$d" --resume >"$d.resume.log" 2>&1 ||
        { cat "$d.resume.log"; echo "run.sh: resume failed on $n ranks" >&2; exit 1; }
    rmb=$(grep mpi_timer "$d.resume.log" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^fread_mb=/) {sub(/.*=/, "", $i); s += $i}} END {print s}')
    rs=$(grep mpi_timer "$d.resume.log" | field fread_s)
    # dapt's own line (the checkpoint's bytes / the whole load, checks
    # included), as for the write; a binary without it: the MPI-IO reads.
    ckr=$(sed -nE 's/.*resumed from .* read in [0-9.]+ s \(([0-9.]+) MB\/s\).*/\1/p' "$d.resume.log" | tail -1)
    [ -n "$ckr" ] || ckr=$(awk -v b="$rmb" -v s="$rs" 'BEGIN{printf "%.1f*", (s > 0 ? b / s : 0)}')
    [ -z "$base" ] && base=$med
    awk -v l="$label" -v med="$med" -v min="$min" -v tok=$((batch * seq)) -v base="$base" -v g="$grad" -v s="$sync" \
        -v st="$steps" -v w="$ckw" -v r="$ckr" -v rss="$rss" \
        'BEGIN{printf "%-22s %10.0f %10.0f %11.0f %9.2f %9.1f %9.1f%% %10.1f %9s %9s %9.0f\n", l, med, min, 1000 * tok / med,
               base / med, 1000 * g / st, 100 * (1000 * g / st) / med, 1000 * s / st, w, r, rss}'
    echo "#   $n ranks: $(grep -h mpi_timer "$d.log" | head -1)" >>"$scratch/notes"
    echo "#   $n ranks resume: $(grep -h mpi_timer "$d.resume.log" | head -1)" >>"$scratch/notes"
    grep -h "checkpoint step" "$d.log" | sed 's/^/#   /' >>"$scratch/notes"
done
echo
echo "# grad_ms: time per step inside the gradient all-reduce (MPI_Iallreduce + MPI_Waitall, max over ranks);"
echo "# grad_share: grad_ms / median step; sync_ms: small blocking all-reduces per step (mostly waiting for the"
echo "# slowest rank). ckpt_w: dapt's logged checkpoint write rate (3 x params x 4 bytes / time, fsync and rename"
echo "# included), compare with the dd write above; ckpt_r: dapt's logged checkpoint read rate in a --resume"
echo "# (3 x params x 4 bytes / the whole load, CRCs included; every rank reads what it holds), compare with"
echo "# the dd read; marked * where the binary does not log it: MPI-IO bytes read by all ranks / the slowest"
echo "# rank's MPI-IO read time; rss: peak resident memory of"
echo "# the largest rank (getrusage at MPI_Finalize)."
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# one rank's timers per run (the first line printed; the others are in the logs) and dapt's checkpoint lines:"
cat "$scratch/notes"
rm -f "$scratch/notes"
} | tee "$out"
