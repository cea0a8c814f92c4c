# tests/das: importance, soft-masking, contrastive loss (serial and 2/4 ranks).
check_PROGRAMS += tests/das/test_das
tests_das_test_das_SOURCES = tests/das/test_das.c
tests_das_test_das_CFLAGS = $(TEST_CFLAGS)
tests_das_test_das_LDADD = $(TEST_LIBS)
TESTS += tests/das/test_das tests/das/das_ranks.test
EXTRA_DIST += tests/das/das_ranks.test tests/fixtures/das/contrastive.h5 tools/fixtures/make_das_fixtures.py
