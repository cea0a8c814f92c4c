#!/bin/sh
# Replays the findings run.sh saved (build-fuzz/crashes/TARGET/) and prints
# one line each: the target, the file, the error, where it happened (the
# first frame outside the sanitizers and libFuzzer: "libhdf5" when inside
# libhdf5, whose bugs issue 17 records and does not chase) and the first
# frame in dapt's own sources.
#   tests/fuzz/triage.sh [TARGET...]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${DAPT_FUZZ_BUILD:-$top/build-fuzz}
. "$top/tests/fuzz/targets.sh"
[ $# -gt 0 ] && fuzz_targets=$*
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for t in $fuzz_targets; do
    [ -d "$out/crashes/$t" ] || continue
    for f in "$out/crashes/$t"/*; do
        [ -f "$f" ] || continue
        # shellcheck disable=SC2046
        log=$(timeout 120 "$out/$t" $(fuzz_options "$t" "$out") "$f" 2>&1 || true)
        err=$(printf '%s\n' "$log" | sed -n 's/.*ERROR: \(AddressSanitizer\|LeakSanitizer\|libFuzzer\): \([A-Za-z-]*\( after [0-9]* seconds\)\{0,1\}\).*/\2/p;
            s/.*runtime error: \(.*\)/ubsan: \1/p' | head -n 1)
        [ -n "$err" ] || err="no error on replay"
        frames=$(printf '%s\n' "$log" | grep -E '^ +#[0-9]+ 0x' |
            grep -Ev '__asan|__interceptor|__sanitizer|__lsan|fuzzer::|in (malloc|calloc|realloc|free|strdup|memcpy|memmove)\b' |
            grep -Ev '0x[0-9a-f]+ +\(/[^ ]*/libc\.so' || true) # the signal frame of a timeout
        where=$(printf '%s\n' "$frames" | head -n 1 | sed -n 's/.* in \([^ ]*\).*/\1/p')
        [ -n "$where" ] || where=$(printf '%s\n' "$frames" | head -n 1 | sed -n 's|.*(/[^ ]*/\([^/ +]*\)+0x.*|\1|p')
        ubsan=$(printf '%s\n' "$log" | sed -n "s|^$top/\([^ ]*\): runtime error.*|\1|p" | head -n 1)
        [ -z "$ubsan" ] || where=$ubsan
        case $(printf '%s\n' "$frames" | head -n 1) in *libhdf5*) where="libhdf5 ($where)" ;; esac
        dapt=$(printf '%s\n' "$frames" | grep -m 1 "$top/src/" | sed -n "s|.* in \([^ ]*\) $top/\(.*\)|\1 \2|p")
        printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$(basename "$f")" "$err" "${where:-?}" "${dapt:--}"
    done
done
