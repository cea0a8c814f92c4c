#!/bin/sh
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/ (or $1):
# dapt's library sources compiled separately from the mpicc/gcc build, then
# one executable per harness.  Only what changed is recompiled.
#   tests/fuzz/build.sh [BUILD_DIR]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build-fuzz}
. "$top/tools/bootstrap.sh"

# What this build needs, not the whole suite's list: -fsanitize=fuzzer is
# in libclang-rt-14-dev and -fopenmp needs libomp-dev, both only recommended
# by clang (dapt_install_packages installs without recommendations).
DAPT_PACKAGES="clang libclang-rt-14-dev libomp-dev pkg-config libopenmpi-dev libopenblas-dev
libscalapack-openmpi-dev libhdf5-openmpi-dev libjansson-dev libutf8proc-dev libpcre2-dev libinih-dev zlib1g-dev libdeflate-dev"
dapt_install_packages || exit 1
command -v clang >/dev/null 2>&1 || { echo "build.sh: clang not found (Debian package clang)" >&2; exit 1; }
command -v mpicc >/dev/null 2>&1 || { echo "build.sh: mpicc not found (Debian package libopenmpi-dev)" >&2; exit 1; }

pkgs="openblas scalapack-openmpi hdf5-openmpi jansson libutf8proc libpcre2-8 inih zlib libdeflate"
# ASan and UBSan abort at the first error (a fuzzer finding); -O1 keeps the
# stack traces exact.  OpenMP stays on because model/kernels.c call omp_*.
# The harnesses build with -Werror; the library keeps its -Werror in the
# gcc build (clang warns here about omp simd loops it does not vectorise).
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cflags="-std=c11 -g -O1 $san -fopenmp -Wall -Wextra -Wno-unknown-pragmas -Wno-pass-failed \
 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -I$top/include -I$top/tests/fuzz \
 $(mpicc --showme:compile) $(pkg-config --cflags $pkgs)"
libs="$(pkg-config --libs $pkgs) $(mpicc --showme:link) -lm"

# The library modules the parsers live in and what they link against; the
# driver (src/cli) and dapt analyze (src/analysis) are not parsers.  core's
# provenance.c reads the version from configure's config.h and the commit
# from the build's git_commit.h: this build writes both (gen/), from
# configure.ac's AC_INIT and the checkout, without running configure.
modules="core model io text data parallel optim checkpoint das objectives train task"
mkdir -p "$out/obj" "$out/crashes" "$out/gen"
version=$(sed -n 's/^AC_INIT(\[dapt\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
commit=$(cd "$top" && { { test -e .git && git describe --always --dirty 2>/dev/null; } || cat build-aux/git-commit 2>/dev/null || echo unknown; })
printf '#define PACKAGE_VERSION "%s"\n' "${version:-unknown}" >"$out/gen/config.h.tmp"
printf '#define DAPT_GIT_COMMIT "%s"\n' "$commit" >"$out/gen/git_commit.h.tmp"
for h in config.h git_commit.h; do # rewritten only when changed: no needless rebuilds
    if cmp -s "$out/gen/$h.tmp" "$out/gen/$h"; then rm -f "$out/gen/$h.tmp"; else mv "$out/gen/$h.tmp" "$out/gen/$h"; fi
done
cflags="$cflags -I$out/gen"
newest_header=$(ls -t "$top"/include/dapt/*.h "$top"/include/dapt/*.def "$top"/src/*/*.h "$out"/gen/*.h | head -n 1)
objs=
for m in $modules; do
    for src in "$top"/src/$m/*.c; do
        obj="$out/obj/${m}_$(basename "$src" .c).o"
        objs="$objs $obj"
        if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ]; then
            printf '%s %s\n' "$src" "$obj"
        fi
    done
done | xargs -r -n 2 -P 2 sh -c "clang $cflags -fsanitize=fuzzer-no-link -c \"\$0\" -o \"\$1\""

lib="$out/libdapt-fuzz.a"
rm -f "$lib"
ar cr "$lib" "$out"/obj/*.o

common="$top/tests/fuzz/fuzz_common.c"
for h in "$top"/tests/fuzz/fuzz_*.c; do
    [ "$h" = "$common" ] && continue
    name=$(basename "$h" .c | sed 's/^fuzz_//')
    exe="$out/$name"
    if [ ! -e "$exe" ] || [ "$h" -nt "$exe" ] || [ "$common" -nt "$exe" ] || [ "$top/tests/fuzz/fuzz_common.h" -nt "$exe" ] || [ "$lib" -nt "$exe" ]; then
        echo "  CCLD     $name"
        # shellcheck disable=SC2086
        clang $cflags -Werror -DDAPT_FUZZ_SRCDIR="\"$top\"" -fsanitize=fuzzer "$h" "$common" "$lib" $libs -o "$exe"
    fi
done

# The INI dictionary: every section and key of the schema, so the fuzzer
# reaches the validation of values instead of "unknown key".
sed -n 's/^DAPT_SECTION(\([a-z_]*\),.*/"[\1]"/p; s/^DAPT_[A-Z]*([a-z_]*, \([a-z_]*\),.*/"\1 = "/p' \
    "$top/include/dapt/config_schema.def" | sort -u >"$out/ini.dict"
