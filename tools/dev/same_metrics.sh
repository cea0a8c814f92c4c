#!/bin/sh
# Refactoring check: runs `dapt train` with every method and layout on a
# synthetic corpus with two binaries and compares metrics.csv (every column
# but tokens_per_s) and the final parameters bit for bit.
#
#   tools/dev/same_metrics.sh OLD_DAPT OLD_KEYS NEW_DAPT NEW_KEYS MAKE_CORPUS
#
# OLD_KEYS / NEW_KEYS: "das" when the continual, kd and ewc settings live in
# [das] (before issue 11), "split" when they have sections of their own.
# NEW_SET (environment): extra --set options for the new binary only, e.g.
# the flags that select an old behaviour after a default changed.
set -eu
old=$1 oldk=$2 new=$3 newk=$4 mk=$5
top=$(cd "$(dirname "$0")/../.." && pwd)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d /tmp/dapt-same-XXXXXX)
trap 'rm -rf "$work"' EXIT
"$mk" "$work" 400 >/dev/null
mkdir -p "$work/c2" && "$mk" "$work/c2" 300 >/dev/null
cat >"$work/run.ini" <<INI
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
heads = 4
intermediate = 64
max_position = 64
[train]
steps = 6
batch_size = 8
lr = 1e-3
warmup_steps = 2
eval_every = 3
eval_batches = 4
[checkpoint]
every = 0
INI
key() { # key KEYSET NAME -> section.key
    case $1:$2 in
        das:domains) echo das.domains ;; das:corpora) echo das.corpora ;;
        das:kd_lambda) echo das.kd_lambda ;; das:ewc_lambda) echo das.ewc_lambda ;; das:ewc_samples) echo das.ewc_samples ;;
        split:domains) echo continual.domains ;; split:corpora) echo continual.corpora ;;
        split:kd_lambda) echo kd.lambda ;; split:ewc_lambda) echo ewc.lambda ;; split:ewc_samples) echo ewc.samples ;;
    esac
}
run() { # run BIN KEYSET OUT NRANKS CASE
    bin=$1 ks=$2 out=$3 n=$4 case=$5
    set -- --set "run.output_dir=$out" --set das.importance_samples=32 --set "$(key "$ks" ewc_samples)=32" \
        --set "$(key "$ks" ewc_lambda)=1e4" --set "$(key "$ks" kd_lambda)=0.5"
    m=${case%%:*} rest=${case#*:}
    case $rest in
        one) ;;
        two) set -- "$@" --set "$(key "$ks" domains)=comp,bio" --set "$(key "$ks" corpora)=$work/corpus.h5,$work/c2/corpus.h5" --set data.corpus= ;;
        accum) set -- "$@" --set train.grad_accum=2 ;;
        tp) set -- "$@" --set parallel.tensor=2 ;;
    esac
    extra=; [ "$bin" = "$new" ] && extra=${NEW_SET:-}
    # shellcheck disable=SC2086
    mpirun --oversubscribe -n "$n" "$bin" train --config "$work/run.ini" --set train.method="$m" "$@" $extra >"$out.log" 2>&1 ||
        { echo "FAIL: $bin $case on $n ranks (see below)"; tail -5 "$out.log"; exit 1; }
}
# The columns both versions write (objectives may append their own).
cut_metrics() { cut -d, -f1-4,6-7 "$1"; }
cases="mlm:one one:one kd:one ewc:one dga:one das:one das:accum mlm:two one:two kd:two ewc:two dga:two das:two mlm:tp das:tp"
ok=0
for c in $cases; do
    for n in 1 2; do
        case $c in *:tp) [ "$n" = 2 ] || continue ;; esac
        tag=$(echo "$c" | tr : _)_$n
        run "$old" "$oldk" "$work/old_$tag" "$n" "$c"
        run "$new" "$newk" "$work/new_$tag" "$n" "$c"
        for f in $(cd "$work/old_$tag" && find . -name metrics.csv | sort); do
            cut_metrics "$work/old_$tag/$f" >"$work/a"; cut_metrics "$work/new_$tag/$f" >"$work/b"
            cmp -s "$work/a" "$work/b" || { echo "FAIL: $c on $n ranks: $f differs"; diff "$work/a" "$work/b" | head; exit 1; }
        done
        for last in $(find "$work/old_$tag" -name 'step-*.h5' | sort); do
            rel=${last#"$work/old_$tag"/}
            h5diff "$last" "$work/new_$tag/$rel" /params /params >/dev/null ||
                { echo "FAIL: $c on $n ranks: parameters differ ($rel)"; exit 1; }
        done
        ok=$((ok + 1))
        echo "same: $c on $n rank(s) (every metrics.csv and checkpoint /params)"
    done
done
echo "$ok runs bit-identical"
