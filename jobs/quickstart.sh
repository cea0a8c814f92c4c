#!/bin/sh
# dapt quickstart: the main job on the shipped sample data, on 2 ranks.
#
#   jobs/quickstart.sh [OUT_DIR]        (default runs/quickstart)
#
# Installs the Debian packages dapt needs (as root, when missing), builds
# dapt in build/, then, on data/sample/:
#   1. prepares the general and computing corpora into HDF5 token files
#      (bert-base-uncased WordPiece, 2 ranks);
#   2. trains a small general BERT from scratch with MLM (2 ranks);
#   3. post-trains it on the computing domain (the DAPT/MLM baseline),
#      resuming from the general model's final checkpoint;
#   4. exports the adapted model as a Hugging Face directory;
# and prints where everything is and the held-out losses before and after.
# A few minutes on 2 cores.  Sizes are toy sizes; see docs/ for real runs.
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

say "1. preparing the sample corpora on $ranks ranks"
for domain in general computing; do
    run "$ranks" prepare --force --tokenizer "$tok" --doc-sep blank \
        -o "$out/$domain.h5" "data/sample/corpus/$domain.txt"
done

# A small BERT: 2 layers, hidden 128, 2 heads, sequences of 64 tokens.
cat >"$out/general.ini" <<INI
[run]
seed = 1234
output_dir = $out/general
[data]
corpus = $out/general.h5
seq_len = 64
eval_fraction = 0.05
[tokenizer]
path = $tok
[model]
vocab_size = 30522
hidden = 128
layers = 2
heads = 2
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
say "2. training a small general model from scratch (MLM, $ranks ranks)"
run "$ranks" train --config "$out/general.ini" --force

general_ckpt="$out/general/checkpoints/$(cat "$out/general/checkpoints/latest")"
sed -e "s|output_dir = $out/general|output_dir = $out/computing|" \
    -e "s|corpus = $out/general.h5|corpus = $out/computing.h5|" \
    -e "s|^\[model\]|[model]\npath = $general_ckpt|" \
    -e "s|^steps = 60|steps = 40|" -e "s|^lr = 5e-4|lr = 2e-4|" "$out/general.ini" >"$out/computing.ini"
say "3. post-training on the computing domain (MLM baseline, $ranks ranks)"
run "$ranks" train --config "$out/computing.ini" --force

adapted="$out/computing/checkpoints/$(cat "$out/computing/checkpoints/latest")"
say "4. exporting the adapted model to Hugging Face format"
"$dapt" export "$adapted" "$out/hf-model" --force

say "summary"
last_eval() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "eval_loss") c = i; next }
                       c && $c != "" { v = $c } END { print v }' "$1"; }
first_eval() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "eval_loss") c = i; next }
                        c && $c != "" && v == "" { v = $c } END { print v }' "$1"; }
echo "general model:   held-out MLM loss $(first_eval "$out/general/metrics.csv") -> $(last_eval "$out/general/metrics.csv")"
echo "computing model: held-out MLM loss $(first_eval "$out/computing/metrics.csv") -> $(last_eval "$out/computing/metrics.csv") (computing corpus)"
echo "outputs:"
echo "  token files        $out/general.h5 $out/computing.h5"
echo "  metrics            $out/general/metrics.csv $out/computing/metrics.csv"
echo "  checkpoints        $general_ckpt $adapted"
echo "  Hugging Face model $out/hf-model/"
