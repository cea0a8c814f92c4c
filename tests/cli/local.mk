# tests/cli: the command-line grammar every command shares (docs/cli.md)
# and MPI failures reported as dapt errors.
check_PROGRAMS += tests/cli/mpi_fail tests/cli/test_memory_hint
tests_cli_test_memory_hint_SOURCES = tests/cli/test_memory_hint.c src/cli/memory_hint.c
tests_cli_test_memory_hint_CFLAGS = $(TEST_CFLAGS)
tests_cli_test_memory_hint_LDADD = $(TEST_LIBS)
tests_cli_mpi_fail_SOURCES = tests/cli/mpi_fail.c src/cli/common.c src/cli/memory_hint.c
tests_cli_mpi_fail_CFLAGS = $(TEST_CFLAGS)
tests_cli_mpi_fail_LDADD = $(TEST_LIBS)
TESTS += tests/cli/options.test tests/cli/mpi_errors.test tests/cli/errors.test tests/cli/memory_hint.test \
	tests/cli/test_memory_hint
EXTRA_DIST += tests/cli/options.test tests/cli/mpi_errors.test tests/cli/errors.test tests/cli/memory_hint.test
# dapt inspect reuses tests/train's fixture run (make_corpus, train_env.sh).
TESTS += tests/cli/inspect.test
EXTRA_DIST += tests/cli/inspect.test
