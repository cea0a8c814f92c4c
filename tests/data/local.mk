# tests/data: input splitting, dapt prepare end to end, bad input.
check_PROGRAMS += tests/data/test_source
tests_data_test_source_SOURCES = tests/data/test_source.c
tests_data_test_source_CFLAGS = $(TEST_CFLAGS) -I$(top_srcdir)/src/data
tests_data_test_source_LDADD = $(TEST_LIBS)
TESTS += tests/data/test_source
TESTS += tests/data/prepare.test
EXTRA_DIST += tests/data/prepare.test tests/data/check_prepared.py
TESTS += tests/data/bad_input.test
EXTRA_DIST += tests/data/bad_input.test
TESTS += tests/data/task_limits.test
EXTRA_DIST += tests/data/task_limits.test
TESTS += tests/data/salient.test
EXTRA_DIST += tests/data/salient.test
