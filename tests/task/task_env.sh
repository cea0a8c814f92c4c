# Sourced by the tests/task/*.test scripts: a scratch directory, a tiny BERT
# model file (one MLM step from random init on the sample general corpus,
# bert-base-uncased vocabulary), and helpers.  Needs top_srcdir,
# top_builddir, DAPT and DAPT_VOCAB_DIR (set by make check).
set -eu
: "${top_srcdir:?}" "${top_builddir:?}" "${DAPT:?}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d "${TMPDIR:-/tmp}/dapt-task-XXXXXX")
trap 'rm -rf "$work"' EXIT
vocab=${DAPT_VOCAB_DIR:-$top_builddir/vocab}/bert-base-uncased/vocab.txt
[ -f "$vocab" ] || { echo "no vocabulary at $vocab (make check unpacks it)" >&2; exit 1; }

fail() { echo "FAIL: $*" >&2; exit 1; }

# ref_diff [H5DIFF OPTION]... DAPT_FILE OTHER OBJ OBJ: h5diff of the numbers
# only.  dapt describes and checksums every dataset it writes
# (description/units/crc32 attributes, docs/formats.md); the references,
# written by PyTorch scripts, have none, a run on other ranks has checksums
# of numbers equal only within the tolerance, and h5diff counts any
# attribute difference, so the attributes of DAPT_FILE's datasets are left
# out.
ref_diff() {
    eval "dapt_file=\${$(($# - 3))}"
    # shellcheck disable=SC2046
    h5diff $(h5ls -r "$dapt_file" | awk '$2 == "Dataset" { print "--exclude-attribute " $1 }') "$@"
}

# dapt_n N ARGS...: dapt on N ranks (1 rank without mpirun).
dapt_n() {
    n=$1; shift
    if [ "$n" -eq 1 ]; then "$DAPT" "$@"; else sh "$top_srcdir/tests/mpi_run.sh" "$n" "$DAPT" "$@"; fi
}

# make_model: $work/model.h5, a 2-layer BERT (hidden 32) with the MLM head,
# pooler and the tokenizer files.
make_model() {
    "$DAPT" prepare --tokenizer "$vocab" --doc-sep blank -o "$work/general.h5" \
        "$top_srcdir/data/sample/corpus/general.txt" >"$work/prepare.log" 2>&1 || { cat "$work/prepare.log"; fail "prepare corpus"; }
    cat >"$work/general.ini" <<EOF
[run]
seed = 3
output_dir = $work/general
[data]
corpus = $work/general.h5
seq_len = 32
eval_fraction = 0.2
[tokenizer]
path = $vocab
[model]
hidden = 32
layers = 2
heads = 2
intermediate = 64
max_position = 64
[train]
steps = 2
batch_size = 8
lr = 1e-3
eval_every = 2
eval_batches = 3
[checkpoint]
every = 0
EOF
    "$DAPT" train --config "$work/general.ini" >"$work/train.log" 2>&1 || { cat "$work/train.log"; fail "train"; }
    cp "$work/general/checkpoints/$(cat "$work/general/checkpoints/latest")" "$work/model.h5"
}

# make_easy_task N_TRAIN N_DEV: three classes told apart by one keyword in
# otherwise random filler ($work/easy/{train,dev}.tsv -> $work/easy.h5).
make_easy_task() {
    mkdir -p "$work/easy"
    for split in train dev; do
        n=$1; [ $split = dev ] && n=$2
        awk -v n="$n" -v seed=$([ $split = train ] && echo 1 || echo 2) 'BEGIN {
            srand(seed)
            split("the a one some this that big small old new red green", filler, " ")
            split("cat dog horse cow sheep", animal, " ")
            split("car bus truck train bicycle", vehicle, " ")
            split("bread apple rice cheese soup", food, " ")
            for (i = 0; i < n; i++) {
                c = i % 3; text = ""
                k = 1 + int(rand() * 5)
                word = c == 0 ? animal[k] : c == 1 ? vehicle[k] : food[k]
                pos = int(rand() * 6)
                for (j = 0; j < 6; j++) {
                    text = text (j ? " " : "") filler[1 + int(rand() * 12)]
                    if (j == pos) text = text " " word
                }
                printf "%s\t%s\n", text, c == 0 ? "animal" : c == 1 ? "vehicle" : "food"
            }
        }' >"$work/easy/$split.tsv"
    done
    "$DAPT" prepare --task --tokenizer "$vocab" -o "$work/easy.h5" "$work/easy/train.tsv" "$work/easy/dev.tsv" \
        >"$work/prepare_task.log" 2>&1 || { cat "$work/prepare_task.log"; fail "prepare easy task"; }
}

# csv_col FILE ROW COLUMN_NAME: one value of a CSV with a header (ROW from 1).
csv_col() {
    awk -F, -v row="$2" -v name="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == name) c = i; next }
        NR == row + 1 { print $c }' "$1"
}

# json_num FILE KEY: a top-level number of a dapt eval JSON file.
json_num() { sed -n "s/^  \"$2\": \([-0-9.eE+]*\),\{0,1\}\$/\1/p" "$1"; }
