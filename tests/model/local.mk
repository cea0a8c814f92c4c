# tests/model: build fragment (included by Makefile.am)
check_PROGRAMS += tests/model/test_model_fixtures tests/model/test_model_grad tests/model/test_kernels_math
tests_model_test_kernels_math_SOURCES = tests/model/test_kernels_math.c
tests_model_test_kernels_math_CFLAGS = $(TEST_CFLAGS)
tests_model_test_kernels_math_LDADD = $(TEST_LIBS)
tests_model_test_model_grad_SOURCES = tests/model/test_model_grad.c
tests_model_test_model_grad_CFLAGS = $(TEST_CFLAGS)
tests_model_test_model_grad_LDADD = $(TEST_LIBS)
tests_model_test_model_fixtures_SOURCES = tests/model/test_model_fixtures.c
tests_model_test_model_fixtures_CFLAGS = $(TEST_CFLAGS)
tests_model_test_model_fixtures_LDADD = $(TEST_LIBS)
TESTS += tests/model/test_model_fixtures tests/model/test_model_grad tests/model/test_kernels_math
EXTRA_DIST += tests/fixtures/model/bert_tiny.h5 tests/fixtures/model/roberta_tiny.h5 \
	tests/fixtures/model/bert_tiny_regression.h5 tests/fixtures/model/roberta_tiny_regression.h5 \
	tools/fixtures/make_model_fixtures.py
