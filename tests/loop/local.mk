# tests/loop: masking, sequences, checkpoints; dapt train layout invariance,
# resume, corrupted checkpoints, preemption and NaN handling.
check_PROGRAMS += tests/loop/make_corpus
tests_loop_make_corpus_SOURCES = tests/loop/make_corpus.c tests/loop/corpus_fixture.h
tests_loop_make_corpus_CFLAGS = $(TEST_CFLAGS)
tests_loop_make_corpus_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/loop/test_loop
tests_loop_test_loop_SOURCES = tests/loop/test_loop.c tests/loop/corpus_fixture.h
tests_loop_test_loop_CFLAGS = $(TEST_CFLAGS)
tests_loop_test_loop_LDADD = $(TEST_LIBS)
LOOP_TESTS = tests/loop/loop_ranks.test tests/loop/train_layout.test tests/loop/train_resume.test \
	tests/loop/train_corrupt.test tests/loop/train_preempt.test tests/loop/train_nan.test \
	tests/loop/train_export.test tests/loop/train_das.test tests/loop/train_baselines.test
LOOP_TESTS += tests/loop/train_tp.test
LOOP_TESTS += tests/loop/ckpt_tp.test
TESTS += tests/loop/test_loop $(LOOP_TESTS)
EXTRA_DIST += $(LOOP_TESTS) tests/loop/train_env.sh tests/loop/check_das.py tests/loop/make_importance.py
