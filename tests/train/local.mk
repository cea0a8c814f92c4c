# tests/train: build fragment (included by Makefile.am)
check_PROGRAMS += tests/train/test_optim
tests_train_test_optim_SOURCES = tests/train/test_optim.c
tests_train_test_optim_CFLAGS = $(TEST_CFLAGS)
tests_train_test_optim_LDADD = $(TEST_LIBS)
TESTS += tests/train/test_optim
EXTRA_DIST += tests/fixtures/optim/adamw_trajectory.h5 tools/fixtures/make_adamw_fixture.py
# Benchmark of the optimizer loops (built by make check, not run by it).
check_PROGRAMS += tests/train/bench_optim
tests_train_bench_optim_SOURCES = tests/train/bench_optim.c
tests_train_bench_optim_CFLAGS = $(TEST_CFLAGS)
tests_train_bench_optim_LDADD = $(TEST_LIBS)
