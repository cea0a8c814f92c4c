# tests/parallel: the process grid under 1, 2 and 4 ranks.
check_PROGRAMS += tests/parallel/test_grid
tests_parallel_test_grid_SOURCES = tests/parallel/test_grid.c
tests_parallel_test_grid_CFLAGS = $(TEST_CFLAGS)
tests_parallel_test_grid_LDADD = $(TEST_LIBS)
TESTS += tests/parallel/test_grid tests/parallel/grid.test
EXTRA_DIST += tests/parallel/grid.test
