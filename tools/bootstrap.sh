# Shared set-up for tests/run.sh and jobs/quickstart.sh (sourced, not run):
# installs the Debian 12 packages dapt needs when they are missing, then
# configures and builds dapt in a build directory; the experiment scripts
# of tools/ also take their corpora through dapt_corpus_files.
#
#   dapt_install_packages [PKG...]  apt-get install what is missing of PKG...
#                                (default: all of DAPT_PACKAGES; as root)
#   dapt_build BUILD_DIR [configure args...]   autoreconf, configure, make

# Build and test dependencies, one Debian package per line of use.
DAPT_PACKAGES="
build-essential autoconf automake libtool pkg-config autoconf-archive xz-utils
openmpi-bin libopenmpi-dev
libopenblas-dev
libscalapack-openmpi-dev
libhdf5-openmpi-dev hdf5-tools
libcunit1-dev
libjansson-dev libutf8proc-dev libpcre2-dev libinih-dev zlib1g-dev libdeflate-dev
python3-h5py python3-numpy python3-matplotlib python3-torch
slurm-wlm munge
clang libclang-rt-14-dev libomp-dev
"

dapt_install_packages() {
    missing=""
    for p in ${*:-$DAPT_PACKAGES}; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "dapt: missing Debian packages:$missing; run as root or: sudo apt-get install$missing" >&2
        return 1
    fi
    echo "dapt: installing Debian packages:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || { echo "dapt: apt-get update failed" >&2; return 1; }
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        { echo "dapt: apt-get install failed for:$missing" >&2; return 1; }
}

dapt_build() {
    build_dir=$1; shift
    src_dir=$(cd "$(dirname "$0")/.." && pwd)
    if [ ! -x "$src_dir/configure" ] || [ "$src_dir/configure.ac" -nt "$src_dir/configure" ]; then
        (cd "$src_dir" && autoreconf -fi >/dev/null 2>&1) || { echo "dapt: autoreconf failed" >&2; return 1; }
    fi
    mkdir -p "$build_dir"
    stamp="$build_dir/.configure-args"
    args="$*"
    if [ ! -f "$build_dir/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$args" ]; then
        (cd "$build_dir" && "$src_dir/configure" -q "$@") || { echo "dapt: configure failed (see $build_dir/config.log)" >&2; return 1; }
        printf '%s' "$args" >"$stamp"
    fi
    make -C "$build_dir" -j"$(nproc)" >/dev/null || { make -C "$build_dir" 2>&1 | grep -E 'error|Error' | head -20 >&2; return 1; }
}

# Open MPI refuses root without these; tests oversubscribe the 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# dapt_corpus_files DATA DOMAIN: the text files of a domain's corpus under
# DATA: DATA/corpus/DOMAIN/*.txt (data/fetch.sh's real corpora) or
# DATA/corpus/DOMAIN.txt (the committed sample, data/sample), for the
# experiment scripts' DATA=data/sample smoke runs.
dapt_corpus_files() {
    if [ -d "$1/corpus/$2" ]; then echo "$1/corpus/$2"/*.txt; else echo "$1/corpus/$2.txt"; fi
}
