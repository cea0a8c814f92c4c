#!/bin/bash
# Cost of MOMETAS's objectives and of its meta-learned sampler (issue 13,
# docs/performance.md), on one model, corpus and machine in one run:
#
#   bench/mometas/run.sh [BUILD_DIR] [--model M.h5] [--steps N] [--ranks R] [--smoke]
#
# Each variant is `dapt train` for N steps (default 60) on the committed
# sample of the computing corpus (data/sample/corpus/computing.txt, its
# salient tokens against the general sample for emlm), sequences of 128
# tokens, global batch 32, no held-out evaluation, no checkpoint before the
# end:
#   mlm, atd, dtd, cse, emlm   train.method = that objective alone
#   no-meta                    train.method = mometas over mlm,atd,dtd,cse,
#                              meta_lr 0 and no meta-step within the run
#   mometas                    the same with a meta-step every 20 updates on
#                              64 held-out rows per objective (the paper's
#                              k = 100 would give no meta-step in a short
#                              run; the cost per meta-step is what scales)
# With meta_lr 0 the logits never move, and the draw is keyed by (seed,
# step), so both runs train on the same objective sequence: the sampler's
# overhead, 1 - rate(mometas) / rate(no-meta), is the meta-evaluations'
# cost alone, also given per meta-step.  Time per step: the rate of dapt's
# last progress line (steps since the loop began over elapsed time).
# The model: --model (e.g. the general model of tools/general_model.sh), or
# by default one of its shape (4 layers, hidden 256, 4 heads, FFN 1024,
# bert-base-uncased vocabulary) after one MLM step: only shapes matter here.
# --smoke: 2 layers of hidden 64, 8 steps, meta-step every 4: checks the
# script in seconds; its numbers mean nothing.  Run alone on the machine.
# Results go to stdout and bench/results/mometas-<UTC time>.txt.
set -euo pipefail
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build model= steps=60 ranks=2 smoke=0 every=20 heldout=64
layers=4 hidden=256 heads=4 ffn=1024
while [ $# -gt 0 ]; do
    case $1 in
        --model) model=$2; shift ;;
        --steps) steps=$2; shift ;;
        --ranks) ranks=$2; shift ;;
        --smoke) smoke=1 steps=8 every=4 heldout=8 layers=2 hidden=64 heads=4 ffn=256 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
. "$top/tools/bootstrap.sh"
dapt_install_packages
[ -x "$build/dapt" ] || dapt_build "$build" CFLAGS="-g -O2"
dapt=$build/dapt
work=$(mktemp -d /tmp/dapt-bench-mometas.XXXXXX)
trap 'rm -rf "$work"' EXIT
run() { mpirun -n "$ranks" --oversubscribe --bind-to none "$dapt" "$@"; }
quiet() { local log=$1; shift; "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }; }

tar -xJf "$top/tests/fixtures/vocab.tar.xz" -C "$work" vocab/bert-base-uncased/vocab.txt
tok=$work/vocab/bert-base-uncased/vocab.txt
sample=$top/data/sample/corpus
quiet "$work/p1.log" run prepare --tokenizer "$tok" --doc-sep blank -o "$work/general.h5" "$sample/general.txt"
quiet "$work/p2.log" run prepare --tokenizer "$tok" --doc-sep blank --salient-against "$work/general.h5" \
    -o "$work/computing.h5" "$sample/computing.txt"
common=(--set data.corpus="$work/computing.h5" --set tokenizer.path="$tok" --set data.seq_len=128
        --set train.batch_size=32 --set train.eval_every=0 --set checkpoint.every=0 --set run.seed=3)
if [ -z "$model" ]; then
    quiet "$work/init.log" run train "${common[@]}" --set run.output_dir="$work/init" --set train.steps=1 \
        --set model.layers=$layers --set model.hidden=$hidden --set model.heads=$heads --set model.intermediate=$ffn \
        --set model.max_position=128
    model=$work/init/checkpoints/$(cat "$work/init/checkpoints/latest")
fi

# rate NAME ARGS...: steps/s of dapt train's last progress line
rate() {
    local name=$1 r; shift
    quiet "$work/$name.log" run train "${common[@]}" --set model.path="$model" --set run.output_dir="$work/$name" \
        --set train.steps="$steps" --set train.log_every="$steps" "$@"
    r=$(grep -o '[0-9.]* steps/s' "$work/$name.log" | tail -1 | cut -d' ' -f1)
    [ -n "$r" ] || { echo "run.sh: no steps/s line in $name's log" >&2; cat "$work/$name.log" >&2; exit 1; }
    echo "$r"
}
declare -A rates
for o in mlm atd dtd cse emlm; do rates[$o]=$(rate "$o" --set train.method=$o); done
rates[no-meta]=$(rate no-meta --set train.method=mometas --set objectives.meta_lr=0 \
    --set objectives.meta_interval=$(( steps + 1 )) --set objectives.heldout_rows=$heldout)
rates[mometas]=$(rate mometas --set train.method=mometas --set objectives.meta_lr=0 \
    --set objectives.meta_interval=$every --set objectives.heldout_rows=$heldout)
meta_steps=$(( steps / every ))

mkdir -p "$top/bench/results"
outfile=$top/bench/results/mometas-$(date -u +%Y%m%dT%H%M%S).txt
{
    echo "# bench/mometas/run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc --all) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $ranks ranks, model $layers layers hidden $hidden (or --model), batch 32 x 128 tokens, $steps steps$([ $smoke = 1 ] && echo ', SMOKE: numbers mean nothing')"
    printf '%-8s %10s %10s %10s\n' variant steps/s s/step vs-mlm
    for v in mlm atd dtd cse emlm no-meta mometas; do
        awk -v n="$v" -v r="${rates[$v]}" -v m="${rates[mlm]}" \
            'BEGIN { printf "%-8s %10.3f %10.3f %10.2f\n", n, r, 1 / r, m / r }'
    done
    awk -v u="${rates[no-meta]}" -v m="${rates[mometas]}" -v n="$steps" -v k="$meta_steps" -v e="$every" -v h="$heldout" \
        'BEGIN { printf "sampler overhead: %.1f%% of training time, %.2f s per meta-step (%d meta-steps, one every %d updates, %d held-out rows per objective)\n", 100 * (1 - m / u), (n / m - n / u) / k, k, e, h }'
} | tee "$outfile"
