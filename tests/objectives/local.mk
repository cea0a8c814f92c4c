# tests/objectives: MOMETAS's objectives (token detection: corruptions
# against the Python reference, the head by finite differences; the cse
# loss and the sampler's step against PyTorch; training on 1 and 2 ranks,
# resume, bad [objectives] values).
check_PROGRAMS += tests/objectives/test_token_detection
tests_objectives_test_token_detection_SOURCES = tests/objectives/test_token_detection.c tests/objectives/fixture_text.h
tests_objectives_test_token_detection_CFLAGS = $(TEST_CFLAGS)
tests_objectives_test_token_detection_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/objectives/test_cse
tests_objectives_test_cse_SOURCES = tests/objectives/test_cse.c tests/objectives/fixture_text.h
tests_objectives_test_cse_CFLAGS = $(TEST_CFLAGS)
tests_objectives_test_cse_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/objectives/test_sampler
tests_objectives_test_sampler_SOURCES = tests/objectives/test_sampler.c tests/objectives/fixture_text.h
tests_objectives_test_sampler_CFLAGS = $(TEST_CFLAGS)
tests_objectives_test_sampler_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/objectives/test_emlm
tests_objectives_test_emlm_SOURCES = tests/objectives/test_emlm.c tests/objectives/fixture_text.h
tests_objectives_test_emlm_CFLAGS = $(TEST_CFLAGS)
tests_objectives_test_emlm_LDADD = $(TEST_LIBS)
OBJECTIVES_TESTS = tests/objectives/train_token_detection.test tests/objectives/cse.test tests/objectives/mometas.test \
	tests/objectives/emlm.test tests/objectives/das_mometas.test
TESTS += tests/objectives/test_token_detection tests/objectives/test_sampler tests/objectives/test_emlm $(OBJECTIVES_TESTS)
EXTRA_DIST += $(OBJECTIVES_TESTS) tests/fixtures/objectives/token_detection.txt \
	tests/fixtures/objectives/cse.txt tests/fixtures/objectives/sampler.txt tools/fixtures/make_mometas_fixtures.py \
	tests/fixtures/objectives/emlm.txt tools/fixtures/salient_reference.py
