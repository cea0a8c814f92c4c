# tests/parallel: the process grid under 1, 2 and 4 ranks; the
# tensor-parallel engine against the whole model.
check_PROGRAMS += tests/parallel/test_grid tests/parallel/test_tp
tests_parallel_test_grid_SOURCES = tests/parallel/test_grid.c
tests_parallel_test_grid_CFLAGS = $(TEST_CFLAGS)
tests_parallel_test_grid_LDADD = $(TEST_LIBS)
tests_parallel_test_tp_SOURCES = tests/parallel/test_tp.c
tests_parallel_test_tp_CFLAGS = $(TEST_CFLAGS)
tests_parallel_test_tp_LDADD = $(TEST_LIBS)
TESTS += tests/parallel/test_grid tests/parallel/grid.test tests/parallel/test_tp tests/parallel/tp.test
EXTRA_DIST += tests/parallel/grid.test tests/parallel/tp.test
