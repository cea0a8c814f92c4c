# tests/das: importance, soft-masking, contrastive loss (serial and 2/4 ranks).
check_PROGRAMS += tests/das/test_das tests/das/test_importance
tests_das_test_importance_SOURCES = tests/das/test_importance.c
tests_das_test_importance_CFLAGS = $(TEST_CFLAGS)
tests_das_test_importance_LDADD = $(TEST_LIBS)
tests_das_test_das_SOURCES = tests/das/test_das.c
tests_das_test_das_CFLAGS = $(TEST_CFLAGS)
tests_das_test_das_LDADD = $(TEST_LIBS)
TESTS += tests/das/test_das tests/das/test_importance tests/das/das_ranks.test tests/das/importance_cli.test
EXTRA_DIST += tests/das/das_ranks.test tests/das/importance_cli.test tests/fixtures/das/contrastive.h5 tools/fixtures/make_das_fixtures.py \
	tests/fixtures/das/kl_proxy.h5 tools/fixtures/make_kl_proxy_fixture.py
