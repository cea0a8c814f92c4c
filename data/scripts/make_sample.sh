#!/bin/bash
# Cut data/sample/ (committed, ~1.1 MB) from the output of data/fetch.sh.
# Deterministic: every k-th document (k = file size / budget) of each
# corpus file within a byte budget per source, and every k-th line of each
# task split (300 train / 100 dev / 100 test); budgets in data/scripts/build.py
# (SAMPLE_*).  Writes data/sample/MANIFEST (sha256  bytes  lines  path).
set -euo pipefail
export LC_ALL=C.UTF-8
here=$(cd "$(dirname "$0")/.." && pwd)
[ -e "$here/MANIFEST" ] || { echo "make_sample.sh: error: run data/fetch.sh first (no data/MANIFEST)" >&2; exit 1; }
python3 "$here/scripts/build.py" sample "$here" "$here/sample"
(
    cd "$here/sample"
    echo "# dapt data/sample/MANIFEST: sha256  bytes  lines  path   (data/scripts/make_sample.sh)"
    find corpus tasks -type f | LC_ALL=C sort | while read -r f; do
        printf '%s  %s  %s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" \
            "$(stat -c %s "$f")" "$(wc -l < "$f")" "$f"
    done
) > "$here/sample/MANIFEST.tmp"
mv "$here/sample/MANIFEST.tmp" "$here/sample/MANIFEST"
echo "make_sample.sh: wrote $(du -sb "$here/sample" | cut -f1) bytes under data/sample/" >&2
