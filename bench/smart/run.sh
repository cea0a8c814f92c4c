#!/bin/bash
# Cost of a SMART fine-tuning step against a plain one, on the same model,
# task and machine in one run (issue 12, docs/performance.md):
#
#   bench/smart/run.sh [BUILD_DIR] [--model M.h5] [--steps N] [--ranks R] [--smoke]
#
# Variants, each one epoch of `dapt finetune`, N optimizer steps (default
# 150), on the committed sample of debian_section (data/sample/tasks, its
# 300 training examples repeated to N x 32), max_length 64, global batch 32,
# no dev evaluation:
#   plain     finetune.objective = cls
#   smart     finetune.objective = smart (paper: lambda_s 1, mu 1, T = 1)
#   adv-only  smart with mu = 0 (no teacher forward)
#   mtdnn     smart with style = mtdnn (mu 0, mt-dnn's ascent)
# The model: --model (e.g. the general model of tools/general_model.sh), or
# by default a model of its shape (4 layers, hidden 256, 4 heads, FFN 1024,
# bert-base-uncased vocabulary) after one MLM step on the committed sample:
# only the shapes matter for speed.  Time per step: the rate dapt's last
# progress line reports (steps since the loop started over elapsed time, so
# set-up and start-up are excluded), best of 2.
# The pass-count floor: plain = forward F + backward B; SMART = clean F +
# teacher F (mu > 0) + T x (noisy F + input-only backward) + perturbed F +
# perturbed B + clean B.  With B = 2F and an input-only backward = F (no
# weight-gradient GEMMs) that is 9F / 3F = 3.0 for the paper's defaults and
# 8F / 3F = 2.67 without the teacher.
# --smoke: 2 layers of hidden 64, 6 steps: checks the script in seconds; its
# numbers mean nothing.  Run alone on the machine.  Results go to stdout and
# bench/results/smart-<UTC time>.txt.
set -euo pipefail
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build model= steps=150 ranks=2 smoke=0
layers=4 hidden=256 heads=4 ffn=1024
while [ $# -gt 0 ]; do
    case $1 in
        --model) model=$2; shift ;;
        --steps) steps=$2; shift ;;
        --ranks) ranks=$2; shift ;;
        --smoke) smoke=1 steps=6 layers=2 hidden=64 heads=4 ffn=256 ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
. "$top/tools/bootstrap.sh"
dapt_install_packages
[ -x "$build/dapt" ] || dapt_build "$build" CFLAGS="-g -O2"
dapt=$build/dapt
work=$(mktemp -d /tmp/dapt-bench-smart.XXXXXX)
trap 'rm -rf "$work"' EXIT
run() { mpirun -n "$ranks" --oversubscribe --bind-to none "$dapt" "$@"; }

tar -xJf "$top/tests/fixtures/vocab.tar.xz" -C "$work" vocab/bert-base-uncased/vocab.txt
tok=$work/vocab/bert-base-uncased/vocab.txt
tasks=$top/data/sample/tasks/debian_section
examples=$(( steps * 32 )); : >"$work/train.tsv"
while [ "$(wc -l <"$work/train.tsv" 2>/dev/null || echo 0)" -lt "$examples" ]; do cat "$tasks/train.tsv" >>"$work/train.tsv"; done
head -n "$examples" "$work/train.tsv" >"$work/t" && mv "$work/t" "$work/train.tsv"
run prepare --task --tokenizer "$tok" --set tokenizer.max_length=64 -o "$work/task.h5" \
    "$work/train.tsv" "$tasks/dev.tsv" "$tasks/test.tsv" >"$work/prepare.log" 2>&1 ||
    { cat "$work/prepare.log"; exit 1; }
if [ -z "$model" ]; then
    run prepare --tokenizer "$tok" --doc-sep blank -o "$work/corpus.h5" "$top/data/sample/corpus/general.txt" \
        >"$work/corpus.log" 2>&1 || { cat "$work/corpus.log"; exit 1; }
    run train --set data.corpus="$work/corpus.h5" --set run.output_dir="$work/init" --set tokenizer.path="$tok" \
        --set train.steps=1 --set train.batch_size=8 --set data.seq_len=64 --set model.max_position=64 \
        --set model.layers=$layers --set model.hidden=$hidden --set model.heads=$heads \
        --set model.intermediate=$ffn >"$work/init.log" 2>&1 || { cat "$work/init.log"; exit 1; }
    ln -s checkpoints/"$(cat "$work/init/checkpoints/latest")" "$work/init/model.h5"
    model=$work/init/model.h5
fi

# rate VARIANT ARGS...: steps/s of the best of two runs
rate() {
    local name=$1 best=0 r; shift
    for rep in 1 2; do
        run finetune --model "$model" --task "$work/task.h5" --output "$work/$name" --force --seed 7 \
            --set finetune.epochs=1 --set finetune.batch_size=32 --set finetune.dev_split= \
            --set finetune.max_length=64 --set finetune.log_every=1000000 "$@" >"$work/$name.log" 2>&1 ||
            { cat "$work/$name.log" >&2; exit 1; }
        r=$(grep -o '[0-9.]* steps/s' "$work/$name.log" | tail -1 | cut -d' ' -f1)
        [ -n "$r" ] || { echo "run.sh: no steps/s line in $name's log" >&2; cat "$work/$name.log" >&2; exit 1; }
        best=$(awk -v a="$best" -v b="$r" 'BEGIN { print (b > a ? b : a) }')
    done
    echo "$best"
}
plain=$(rate plain --set finetune.objective=cls)
smart=$(rate smart --set finetune.objective=smart)
adv=$(rate adv --set finetune.objective=smart --set smart.mu=0)
mtdnn=$(rate mtdnn --set finetune.objective=smart --set smart.style=mtdnn)

mkdir -p "$top/bench/results"
outfile=$top/bench/results/smart-$(date -u +%Y%m%dT%H%M%S).txt
{
    echo "# bench/smart/run.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc --all) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# $ranks ranks, model $layers layers hidden $hidden (or --model), batch 32 x 64 tokens, $steps steps$([ $smoke = 1 ] && echo ', SMOKE: numbers mean nothing')"
    printf '%-9s %10s %10s %12s %8s\n' variant steps/s s/step vs-plain floor
    for v in "plain $plain 1.00" "smart $smart 3.00" "adv-only $adv 2.67" "mtdnn $mtdnn 2.67"; do
        set -- $v
        awk -v n="$1" -v r="$2" -v p="$plain" -v f="$3" \
            'BEGIN { printf "%-9s %10.3f %10.3f %12.2f %8.2f\n", n, r, 1 / r, p / r, f }'
    done
} | tee "$outfile"
