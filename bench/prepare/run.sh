#!/bin/bash
# dapt prepare throughput with 1 and 2 ranks on the real corpora of data/
# (run data/fetch.sh first), for WordPiece (bert-base-uncased) and byte-level
# BPE (roberta-base), and the byte-identity check on 1, 2 and 4 ranks.
#
#   bench/prepare/run.sh [BUILD_DIR] [REPEATS]
#
# MB/s = input bytes / the time dapt prepare reports for its work (scan,
# tokenize, write, commit; not MPI start-up or tokenizer loading), best of
# REPEATS (default 3).  Also prints whole-process wall time, and cpu_s: the
# busiest rank's CPU seconds for scanning and tokenizing (from the -v log),
# which is what the scaling comes to when every rank has a core of its own
# (on a shared machine the wall times mostly measure the other jobs).  Results go to
# stdout and bench/results/prepare-<UTC time>.txt.
set -euo pipefail
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$top}
reps=${2:-3}
dapt=$build/dapt
[ -x "$dapt" ] || { echo "run.sh: no dapt binary in $build" >&2; exit 1; }
corpus=("$top"/data/corpus/general/*.txt "$top"/data/corpus/computing/*.txt "$top"/data/corpus/biomedical/*.txt)
[ -e "${corpus[0]}" ] || { echo "run.sh: no corpus under data/corpus: run data/fetch.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar -xJf "$top/tests/fixtures/vocab.tar.xz" -C "$tmp"
mkdir -p "$top/bench/results"
out=$top/bench/results/prepare-$(date -u +%Y%m%dT%H%M%S).txt
bytes=$(cat "${corpus[@]}" | wc -c)

run() { # ranks tokenizer output -> prints "work_seconds wall_seconds cpu_seconds"
    local n=$1 tok=$2 o=$3 t0 t1 line cpu
    t0=$(date +%s.%N)
    mpirun -n "$n" --oversubscribe --bind-to none "$dapt" prepare -v --force --doc-sep blank \
        --tokenizer "$tok" -o "$o" "${corpus[@]}" 2> "$tmp/log"
    t1=$(date +%s.%N)
    line=$(grep 'r0\] prepare:' "$tmp/log")
    # the busiest rank's CPU seconds for scan + tokenize (from the -v lines)
    cpu=$(sed -nE 's/.*\(([0-9.]+) CPU s; scan ([0-9.]+) CPU s\).*/\1 \2/p' "$tmp/log" |
          awk '{c = $1 + $2; if (c > m) m = c} END {print m}')
    echo "$(echo "$line" | sed -E 's/.* in ([0-9.]+) s .*/\1/') $(awk -v a="$t0" -v b="$t1" 'BEGIN{print b - a}') $cpu"
    echo "$line" >> "$tmp/lines"
    grep 'debug: prepare: this rank' "$tmp/log" >> "$tmp/lines"
}

# How much of a second core this machine gives right now: a CPU-bound awk
# loop alone, then two at once; 2.00 means two free cores (the ceiling of
# any 2-rank scaling measured in the same minute).
spin() { awk 'BEGIN { for (i = 0; i < 2e7; i++) x += i; exit x < 0 }'; }
cores_free() {
    local t0 t1 t2
    t0=$(date +%s.%N); spin; t1=$(date +%s.%N)
    spin & spin & wait
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN{printf "%.2f", 2 * (b - a) / (c - b)}'
}

{
echo "# two concurrent CPU-bound processes ran at $(cores_free)x the throughput of one (2.00 = two free cores)"
echo "# dapt prepare benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# corpus: ${#corpus[@]} files of data/corpus, $bytes bytes, --doc-sep blank; best of $reps"
printf '%-18s %6s %10s %10s %10s %8s %8s %8s\n' tokenizer ranks work_s MB/s wall_s scaling cpu_s cpu_scal
for name in bert-base-uncased roberta-base; do
    tok=$tmp/vocab/$name
    [ $name = bert-base-uncased ] && tok=$tok/vocab.txt
    declare -A best=() cbest=()
    for n in 1 2; do
        b=""; w=""; c=""
        for ((r = 0; r < reps; r++)); do
            read -r t wall cpu < <(run $n "$tok" "$tmp/$name.$n.h5")
            if [ -z "$b" ] || awk -v t="$t" -v b="$b" 'BEGIN{exit !(t < b)}'; then b=$t; w=$wall; fi
            if [ -z "$c" ] || awk -v t="$cpu" -v b="$c" 'BEGIN{exit !(t < b)}'; then c=$cpu; fi
        done
        best[$n]=$b
        cbest[$n]=$c
        awk -v name=$name -v n=$n -v b="$b" -v one="${best[1]}" -v w="$w" -v bytes="$bytes" -v c="$c" -v c1="${cbest[1]}" \
            'BEGIN{printf "%-18s %6d %10.3f %10.1f %10.2f %8.2f %8.3f %8.2f\n", name, n, b, bytes / 1e6 / b, w, one / b, c, c1 / c}' 
    done
    run 4 "$tok" "$tmp/$name.4.h5" > /dev/null
    if cmp -s "$tmp/$name.1.h5" "$tmp/$name.2.h5" && cmp -s "$tmp/$name.1.h5" "$tmp/$name.4.h5"; then
        echo "# $name: 1, 2 and 4 ranks wrote byte-identical files ($(stat -c %s "$tmp/$name.1.h5") bytes, sha256 $(sha256sum < "$tmp/$name.1.h5" | cut -c1-16)...)"
    else
        echo "# $name: FILES DIFFER between 1, 2 and 4 ranks"
    fi
    unset best cbest
done
echo "# after the runs: two concurrent CPU-bound processes ran at $(cores_free)x the throughput of one"
echo "# per-run phase times (rank 0):"
sed 's/^/#   /' "$tmp/lines"
} | tee "$out"
