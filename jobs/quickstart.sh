#!/bin/sh
# dapt quickstart: the whole pipeline on the shipped sample data, on 2 ranks.
#
#   jobs/quickstart.sh [OUT_DIR]        (default runs/quickstart)
#
# Installs the Debian packages dapt needs (as root, when missing), builds
# dapt in build/, then, on data/sample/:
#   1. prepares the general and computing corpora into HDF5 token files and
#      the Debian-section task (bert-base-uncased WordPiece, 2 ranks);
#   2. trains a small general BERT from scratch with MLM (2 ranks);
#   3. post-trains it on the computing domain with DAS (importance of the
#      general model's units on the general corpus, soft-masked gradients,
#      contrastive loss; 2 ranks);
#   4. fine-tunes the adapted model on the Debian-section task and evaluates
#      it on the test split;
#   5. measures the general corpus's held-out MLM loss before and after
#      post-training (forgetting);
#   6. exports the adapted model as a Hugging Face directory;
#   7. draws the training and fine-tuning curves and the head importances
#      (tools/plot.py);
# and prints a summary that says what each figure means at these toy sizes
# (tools/quickstart_summary.py).  A few minutes on 2 cores.  The numbers say
# nothing about the methods; docs/results.md has a real run.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
. "$top/tools/bootstrap.sh"
out=${1:-runs/quickstart}
ranks=${DAPT_RANKS:-2}
# One thread per rank: 2 ranks already fill the 2 cores this is sized for.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

say() { printf '\n== %s\n' "$*"; }

say "setting up (packages, build)"
dapt_install_packages
dapt_build "$top/build" CFLAGS="-O2"
dapt="$top/build/dapt"
run() { n=$1; shift; mpirun -n "$n" --oversubscribe --bind-to none "$dapt" "$@"; }
"$dapt" version | sed -n '1,2p;5p'

mkdir -p "$out"
# The tokenizer: bert-base-uncased's vocabulary, from the test fixtures.
if [ ! -f "$out/vocab/bert-base-uncased/vocab.txt" ]; then
    tar -xJf tests/fixtures/vocab.tar.xz -C "$out" vocab/bert-base-uncased
fi
tok="$out/vocab/bert-base-uncased/vocab.txt"

say "1. preparing the sample corpora and the Debian-section task on $ranks ranks"
for domain in general computing; do
    run "$ranks" prepare --force --tokenizer "$tok" --doc-sep blank \
        -o "$out/$domain.h5" "data/sample/corpus/$domain.txt"
done
task=data/sample/tasks/debian_section
run "$ranks" prepare --task --force --tokenizer "$tok" --set tokenizer.max_length=64 \
    -o "$out/debian_section.h5" "$task/train.tsv" "$task/dev.tsv" "$task/test.tsv"

# A small BERT: 2 layers, hidden 128, sequences of 64 tokens; 4 heads, not 2:
# with 2 heads per layer DAS's normalised importance |tanh(z)| is 0.609 for
# every head whatever the raw values (docs/algorithms.md), a uniform plot.
cat >"$out/general.ini" <<INI
[run]
seed = 1234
output_dir = $out/general
[data]
corpus = $out/general.h5
general_corpus = $out/general.h5
seq_len = 64
eval_fraction = 0.05
[tokenizer]
path = $tok
[model]
vocab_size = 30522
hidden = 128
layers = 2
heads = 4
intermediate = 512
max_position = 64
[train]
steps = 60
batch_size = 16
lr = 5e-4
warmup_steps = 6
eval_every = 30
eval_batches = 4
log_every = 10
[checkpoint]
every = 30
keep = 2
INI
started=$(date +%s)
say "2. training a small general model from scratch (MLM, $ranks ranks)"
run "$ranks" train --config "$out/general.ini" --force
general_ckpt="$out/general/checkpoints/$(cat "$out/general/checkpoints/latest")"

say "3. post-training on the computing domain with DAS ($ranks ranks)"
run "$ranks" train --config "$out/general.ini" --force --set run.output_dir="$out/computing" \
    --set model.path="$general_ckpt" --set data.corpus="$out/computing.h5" --set train.method=das \
    --set train.steps=30 --set train.lr=2e-4 --set train.warmup_steps=3 --set train.eval_every=30 \
    --set das.importance_samples=64 --set das.representation_samples=16
# One domain: the run's final checkpoint is the adapted model.
adapted="$out/computing/checkpoints/$(cat "$out/computing/checkpoints/latest")"

say "4. fine-tuning the adapted model on the Debian-section task and evaluating it"
# 8 epochs at 2e-3: with 3 epochs at 1e-3 the toy model stayed at the
# majority-class baseline (test macro-F1 0.039); 8 epochs at 2e-3 reach test
# macro-F1 0.193 (this script, 2026-12-07; about 2 minutes of its time).
run "$ranks" finetune --force --model "$adapted" --task "$out/debian_section.h5" --output "$out/finetune" \
    --set finetune.epochs=8 --set finetune.lr=2e-3 --set finetune.warmup_ratio=0.1 --set finetune.max_length=64
run "$ranks" eval --force --model "$out/finetune/model.h5" --task "$out/debian_section.h5" --split test \
    --output "$out/finetune/test"

say "5. general-corpus held-out MLM loss before and after post-training"
for m in general:"$general_ckpt" computing:"$adapted"; do
    run "$ranks" eval --force --config "$out/general.ini" --model "${m#*:}" --corpus "$out/general.h5" \
        --output "$out/general-loss-${m%%:*}" | grep -v '^$'
done

say "6. exporting the adapted model to Hugging Face format"
"$dapt" export "$adapted" "$out/hf-model" --force

say "7. drawing the curves and the head importances"
plot() { /usr/bin/python3 tools/plot.py "$@" >/dev/null; }
plot curves "$out/general/metrics.jsonl" "$out/computing/metrics.jsonl" --labels general,computing -o "$out/curves.png"
plot curves "$out/finetune/finetune_metrics.jsonl" -o "$out/finetune-curves.png"
plot importance "$out/computing/importance.h5" -o "$out/importance.png"
echo "$out/curves.png $out/finetune-curves.png $out/importance.png"

say "summary ($ranks ranks)"
/usr/bin/python3 tools/quickstart_summary.py "$out" --seconds $(($(date +%s) - started))
echo "outputs:"
echo "  token files        $out/general.h5 $out/computing.h5 $out/debian_section.h5"
echo "  metrics            $out/general/metrics.{csv,jsonl} $out/computing/metrics.{csv,jsonl} $out/finetune/finetune_metrics.{csv,jsonl}"
echo "  models             $general_ckpt $adapted $out/finetune/model.h5"
echo "  importance         $out/computing/importance.h5"
echo "  evaluation         $out/finetune/test.json $out/general-loss-*.json"
echo "  Hugging Face model $out/hf-model/"
echo "  plots              $out/curves.png $out/finetune-curves.png $out/importance.png"
