#!/bin/sh
# Builds dapt and runs every test (`make check`): CUnit unit tests and MPI
# tests under mpirun.  Installs the Debian packages it needs when run as root
# on a fresh Debian 12 machine.
#
#   tests/run.sh              -Wall -Wextra -Werror build in build/
#   tests/run.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-sanitize/
#
# Prints each test's result and seconds as it finishes, and ends with one
# line "N passed, N failed" (skipped tests are listed apart); the exit status
# is 0 only when nothing failed (.ci/run relies on both).
set -u
cd "$(dirname "$0")/.." || exit 1
top=$(pwd)
. "$top/tools/bootstrap.sh"

mode=plain
for arg in "$@"; do
    case $arg in
        --sanitize) mode=sanitize ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "tests/run.sh: unknown option $arg" >&2; exit 2 ;;
    esac
done

dapt_install_packages || exit 1
if [ "$mode" = sanitize ]; then
    build="$top/build-sanitize"
    san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    # Open MPI and HDF5 keep allocations until exit by design; leaks inside
    # them are not dapt's, so leak detection is off and errors are fatal.
    export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:halt_on_error=1"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
    dapt_build "$build" --enable-werror CFLAGS="-g -O1 $san" LDFLAGS="$san" || exit 1
else
    build="$top/build"
    dapt_build "$build" --enable-werror CFLAGS="-g -O2" || exit 1
fi

start=$(date +%s)
# One line per test as it finishes ("[7/51] PASS: tests/core/x.test (3.2 s)",
# the seconds from tests/timed-driver.sh); the full make output stays in
# check.out.  The count comes from make itself, so it follows the local.mk files.
total=$(printf 'dapt-list-tests:\n\t@echo $(TESTS)\n' |
        make -s --no-print-directory -C "$build" -f Makefile -f - dapt-list-tests | wc -w)
echo "running $total tests in $build (make check; logs: $build/tests/*/*.log)"
{ make -C "$build" -j"$(nproc)" check 2>&1; echo $? >"$build/check.rc"; } | tee "$build/check.out" | {
    n=0
    while IFS= read -r line; do
        case $line in
            PASS:*|FAIL:*|SKIP:*|XFAIL:*|XPASS:*|ERROR:*) n=$((n + 1)); echo "[$n/$total] $line" ;;
        esac
    done
}
rc=$(cat "$build/check.rc")
log="$build/test-suite.log"
count() { grep -E "^# $1: +[0-9]+" "$log" 2>/dev/null | awk '{print $3}' | head -1; }
pass=$(count PASS); fail=$(count FAIL); xpass=$(count XPASS); err=$(count ERROR); skip=$(count SKIP)
pass=${pass:-0}; fail=$(( ${fail:-0} + ${xpass:-0} + ${err:-0} )); skip=${skip:-0}
if [ "$rc" -ne 0 ] || [ "$fail" -ne 0 ]; then
    # Show what failed: the harness's summary and each failing test's log.
    grep -E "^(FAIL|ERROR|XPASS):" "$build/check.out" || tail -30 "$build/check.out"
    [ -f "$log" ] && sed -n '/^FAIL\|^ERROR/,$p' "$log" | head -200
    [ "$fail" -eq 0 ] && fail=1   # the build of the tests itself failed
fi
grep -E "^SKIP:" "$build/check.out" | sed 's/^/skipped: /'
echo "tests took $(( $(date +%s) - start )) s ($mode build in $build)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
