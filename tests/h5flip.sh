# Sourced by tests that corrupt HDF5 files on purpose (needs a fail function).
# flip DATASET FILE [SKIP [BYTES]]: overwrite 4 bytes SKIP bytes (default 64)
# into a contiguous dataset's data with BYTES (a printf format; default
# \377\377\177\177, a NaN pattern for floats, a huge value for integers).
flip() {
    off=$(h5dump -p -H -d "$1" "$2" | awk '/OFFSET/ {print $2; exit}')
    [ -n "$off" ] || fail "no offset for $1 in $2"
    # shellcheck disable=SC2059
    printf "${4:-\\377\\377\\177\\177}" | dd of="$2" bs=1 seek=$((off + ${3:-64})) conv=notrunc status=none
}
