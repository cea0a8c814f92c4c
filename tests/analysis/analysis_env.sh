# Sourced by the tests/analysis/*.test scripts: a scratch directory with the
# reference matrices (tools/reference/analysis_reference.py make) and
# helpers.  Needs top_srcdir and DAPT (set by make check).
set -eu
: "${top_srcdir:?}" "${DAPT:?}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
py=/usr/bin/python3
ref="$py $top_srcdir/tools/reference/analysis_reference.py"
awork=$(mktemp -d "${TMPDIR:-/tmp}/dapt-analysis-XXXXXX")
trap 'rm -rf "$awork"' EXIT
$ref make "$awork" >/dev/null

fail() { echo "FAIL: $*" >&2; exit 1; }

# analyze GRID ARGS...: dapt analyze on rows x cols ranks with --grid GRID
# (one rank runs without mpirun: a singleton starts faster).
analyze() {
    grid=$1; shift
    n=$(( ${grid%x*} * ${grid#*x} ))
    if [ "$n" -eq 1 ]; then
        "$DAPT" analyze "$@" --grid "$grid"
    else
        sh "$top_srcdir/tests/mpi_run.sh" "$n" "$DAPT" analyze "$@" --grid "$grid"
    fi
}

# refused "MESSAGE" GRID ARGS...: the command fails, and its error is one
# line "dapt: error: ..." containing MESSAGE.
refused() {
    want=$1; shift
    if analyze "$@" >"$awork/out" 2>"$awork/err"; then fail "accepted: dapt analyze $*"; fi
    line=$(grep "^dapt: error:" "$awork/err" || true)
    [ "$(printf '%s\n' "$line" | grep -c .)" -eq 1 ] || fail "not one error line for dapt analyze $*: $(cat "$awork/err")"
    case $line in *"$want"*) ;; *) fail "error for dapt analyze $* does not say '$want': $line" ;; esac
    echo "refused: $line"
}
