#!/bin/sh
# Makes the HDF5 seeds of the fuzz targets h5_model, h5_corpus and
# h5_checkpoint with the built driver, from the tiny BERT MLM fixture
# (tests/fixtures/hf/bert_mlm): a model file, a five-line corpus, and the
# checkpoint of one training step.  The committed seeds came from this
# script; rerun it when a file format changes.
#   tests/fuzz/make_h5_seeds.sh BUILD_DIR     (BUILD_DIR holds ./dapt)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
dapt=$(cd "$1" && pwd)/dapt
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d "${TMPDIR:-/tmp}/dapt-seeds-XXXXXX")
trap 'rm -rf "$work"' EXIT
hf=$top/tests/fixtures/hf/bert_mlm
seeds=$top/tests/fuzz/corpus

"$dapt" import "$hf" "$work/model.h5"
printf '%s\n' "the cat sat on the mat ." "a big red dog ran under the rug" "" \
    "she was in the garden , it is small" "the house is blue and the rug is red" >"$work/c.txt"
"$dapt" prepare --tokenizer "$hf" -o "$work/corpus.h5" "$work/c.txt"
cat >"$work/run.ini" <<INI
[run]
seed = 3
output_dir = $work/run
[data]
corpus = $work/corpus.h5
seq_len = 8
eval_fraction = 0
[model]
path = $work/model.h5
[train]
steps = 1
batch_size = 2
eval_every = 0
[checkpoint]
every = 1
INI
"$dapt" train --config "$work/run.ini"
mkdir -p "$seeds/h5_model" "$seeds/h5_corpus" "$seeds/h5_checkpoint"
cp "$work/model.h5" "$seeds/h5_model/bert_mlm.h5"
cp "$work/corpus.h5" "$seeds/h5_corpus/bert_mlm.h5"
cp "$work/run/checkpoints/step-00000001.h5" "$seeds/h5_checkpoint/step-00000001.h5"
