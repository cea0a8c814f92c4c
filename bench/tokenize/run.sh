#!/bin/sh
# Tokenizer throughput on the King James Bible (Debian bible-kjv): dapt's
# WordPiece and byte-level BPE, and in the same run the JavaScript
# references (@huggingface/tokenizers 0.2.0, gpt-tokenizer 4.0.0).
#   bench/tokenize/run.sh BUILD_DIR NODE_MODULES [VOCAB_DIR] [REPEATS]
# BUILD_DIR: a configured build where `make bench/tokenize/bench_tokenize`
# works; NODE_MODULES: where tools/reference/package.json was installed
# (npm install --prefix DIR tools/reference); VOCAB_DIR defaults to
# ../shared/vocab beside the source tree.
set -eu
BUILD=${1:?usage: run.sh BUILD_DIR NODE_MODULES [VOCAB_DIR] [REPEATS]}
NM=${2:?usage: run.sh BUILD_DIR NODE_MODULES [VOCAB_DIR] [REPEATS]}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
V=${3:-$SRC/../shared/vocab}
R=${4:-5}
TXT=${TMPDIR:-/tmp}/dapt_bench_kjv.txt
command -v bible >/dev/null || { echo "needs Debian bible-kjv (apt-get install bible-kjv)"; exit 1; }
bible -f 'Gen1:1-Rev22:21' | sed 's/^[^ ]* //' > "$TXT"
make -C "$BUILD" -s bench/tokenize/bench_tokenize
echo "# $(wc -c < "$TXT") bytes, $(wc -l < "$TXT") lines of KJV; best of $R passes; $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in bert-base-uncased gpt2 roberta-base; do
    printf '%s\t' "$m"
    "$BUILD/bench/tokenize/bench_tokenize" "$V/$m" "$TXT" "$R"
done
node "$SRC/bench/tokenize/js_bench.mjs" "$NM" "$V" "$TXT" "$R"
