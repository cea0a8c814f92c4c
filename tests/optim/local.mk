# tests/optim: build fragment (included by Makefile.am)
check_PROGRAMS += tests/optim/test_optim
tests_optim_test_optim_SOURCES = tests/optim/test_optim.c
tests_optim_test_optim_CFLAGS = $(TEST_CFLAGS)
tests_optim_test_optim_LDADD = $(TEST_LIBS)
TESTS += tests/optim/test_optim
EXTRA_DIST += tests/fixtures/optim/adamw_trajectory.h5 tools/fixtures/make_adamw_fixture.py
# Benchmark of the optimizer loops (built by make check, not run by it).
check_PROGRAMS += tests/optim/bench_optim
tests_optim_bench_optim_SOURCES = tests/optim/bench_optim.c
tests_optim_bench_optim_CFLAGS = $(TEST_CFLAGS)
tests_optim_bench_optim_LDADD = $(TEST_LIBS)
# The PyTorch side of bench_optim (run by hand): ships with the tarball.
EXTRA_DIST += tests/optim/bench_optim_torch.py
