# Sourced by the tests/train/*.test scripts: a scratch directory with the
# synthetic corpus and vocabulary (corpus_fixture.h), a tiny model's run.ini,
# and helpers.  Needs top_srcdir, top_builddir and DAPT (set by make check).
set -eu
: "${top_srcdir:?}" "${top_builddir:?}" "${DAPT:?}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d "${TMPDIR:-/tmp}/dapt-train-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$top_builddir/tests/train/make_corpus" "$work" 400
cat >"$work/run.ini" <<EOF
[run]
seed = 11
[data]
corpus = $work/corpus.h5
seq_len = 32
eval_fraction = 0.1
[tokenizer]
path = $work/vocab.txt
[model]
vocab_size = 64
hidden = 32
layers = 2
heads = 2
intermediate = 64
max_position = 64
[train]
steps = 8
batch_size = 8
lr = 1e-3
warmup_steps = 2
eval_every = 4
eval_batches = 4
log_every = 2
[checkpoint]
every = 4
keep = 3
EOF

# train N OUT [--set ...]: dapt train on N ranks writing into OUT.
train() {
    n=$1; out=$2; shift 2
    sh "$top_srcdir/tests/mpi_run.sh" "$n" "$DAPT" train --config "$work/run.ini" \
        --set "run.output_dir=$out" "$@"
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# same_tensors A B: every parameter and Adam moment bit-identical.
same_tensors() {
    h5diff "$1" "$2" /params /params >/dev/null || fail "parameters differ: $1 $2"
    h5diff "$1" "$2" /optim /optim >/dev/null || fail "Adam moments differ: $1 $2"
}

# flip DATASET FILE [SKIP [BYTES]]: tests/h5flip.sh.
. "$top_srcdir/tests/h5flip.sh"
