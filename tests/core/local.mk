# tests/core: configuration, RNG, logging.
check_PROGRAMS += tests/core/test_config tests/core/test_rng tests/core/test_log \
	tests/core/rng_ranks_draw tests/core/test_status tests/core/test_suggest
tests_core_test_config_SOURCES = tests/core/test_config.c
tests_core_test_config_CFLAGS = $(TEST_CFLAGS)
tests_core_test_config_LDADD = $(TEST_LIBS)
tests_core_test_rng_SOURCES = tests/core/test_rng.c
tests_core_test_rng_CFLAGS = $(TEST_CFLAGS)
tests_core_test_rng_LDADD = $(TEST_LIBS)
tests_core_test_log_SOURCES = tests/core/test_log.c
tests_core_test_log_CFLAGS = $(TEST_CFLAGS)
tests_core_test_log_LDADD = $(TEST_LIBS)
tests_core_test_status_SOURCES = tests/core/test_status.c
tests_core_test_status_CFLAGS = $(TEST_CFLAGS)
tests_core_test_status_LDADD = $(TEST_LIBS)
tests_core_test_suggest_SOURCES = tests/core/test_suggest.c
tests_core_test_suggest_CFLAGS = $(TEST_CFLAGS)
tests_core_test_suggest_LDADD = $(TEST_LIBS)
tests_core_rng_ranks_draw_SOURCES = tests/core/rng_ranks_draw.c
tests_core_rng_ranks_draw_CFLAGS = $(TEST_CFLAGS)
tests_core_rng_ranks_draw_LDADD = $(TEST_LIBS)
TESTS += tests/core/test_config tests/core/test_rng tests/core/test_log \
	tests/core/rng_ranks.test tests/core/cli.test tests/core/test_status tests/core/status_ranks.test \
	tests/core/test_suggest
EXTRA_DIST += tests/core/rng_ranks.test tests/core/status_ranks.test tests/core/cli.test tests/harness.h tests/mpi_run.sh tests/h5same.py tests/h5flip.sh
