# tests/cli: the command-line grammar every command shares (docs/cli.md)
# and MPI failures reported as dapt errors.
check_PROGRAMS += tests/cli/mpi_fail
tests_cli_mpi_fail_SOURCES = tests/cli/mpi_fail.c src/cli/common.c
tests_cli_mpi_fail_CFLAGS = $(TEST_CFLAGS)
tests_cli_mpi_fail_LDADD = $(TEST_LIBS)
TESTS += tests/cli/options.test tests/cli/mpi_errors.test tests/cli/errors.test tests/cli/memory_hint.test
EXTRA_DIST += tests/cli/options.test tests/cli/mpi_errors.test tests/cli/errors.test tests/cli/memory_hint.test
