#!/bin/sh
# Automake's test-driver with the test's duration on its result line:
#
#   timed-driver.sh DRIVER [DRIVER ARGS...]   ->   "PASS: tests/x/y.test (3.2 s)"
#
# Makefile.am sets it as LOG_DRIVER so that `make check` (and tests/run.sh,
# which shows these lines as tests finish) says which tests are slow without
# opening the logs.  DRIVER prints only the result line on standard output
# (the test's own output goes to its .log), so appending to that line is safe;
# its exit status is passed on.
start=$(date +%s%N)
line=$("$@")
rc=$?
tenths=$(( ($(date +%s%N) - start) / 100000000 ))
printf '%s (%d.%d s)\n' "$line" $((tenths / 10)) $((tenths % 10))
exit $rc
