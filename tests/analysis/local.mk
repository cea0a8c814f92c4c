# tests/analysis: dapt analyze against numpy (tools/reference/analysis_reference.py)
# on every grid shape, bad input, and the analyses of a dapt train run.
check_PROGRAMS += tests/analysis/test_analysis
tests_analysis_test_analysis_SOURCES = tests/analysis/test_analysis.c
tests_analysis_test_analysis_CFLAGS = $(TEST_CFLAGS)
tests_analysis_test_analysis_LDADD = $(TEST_LIBS)
TESTS += tests/analysis/test_analysis tests/analysis/analysis_ranks.test tests/analysis/spectrum.test \
	tests/analysis/cka.test tests/analysis/bad_input.test tests/analysis/train_analyze.test
EXTRA_DIST += tests/analysis/analysis_env.sh tests/analysis/analysis_ranks.test tests/analysis/spectrum.test \
	tests/analysis/cka.test tests/analysis/bad_input.test tests/analysis/train_analyze.test \
	tools/reference/analysis_reference.py
