# tests/train: masking, sequences, checkpoints; dapt train layout invariance,
# resume, corrupted checkpoints, preemption and NaN handling.
check_PROGRAMS += tests/train/make_corpus
tests_train_make_corpus_SOURCES = tests/train/make_corpus.c tests/train/corpus_fixture.h
tests_train_make_corpus_CFLAGS = $(TEST_CFLAGS)
tests_train_make_corpus_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/train/test_loop
tests_train_test_loop_SOURCES = tests/train/test_loop.c tests/train/corpus_fixture.h
tests_train_test_loop_CFLAGS = $(TEST_CFLAGS)
tests_train_test_loop_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/train/test_objective
tests_train_test_objective_SOURCES = tests/train/test_objective.c tests/train/corpus_fixture.h
tests_train_test_objective_CFLAGS = $(TEST_CFLAGS)
tests_train_test_objective_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/train/test_grad_sync
tests_train_test_grad_sync_SOURCES = tests/train/test_grad_sync.c
tests_train_test_grad_sync_CFLAGS = $(TEST_CFLAGS)
tests_train_test_grad_sync_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/train/test_metrics_log
tests_train_test_metrics_log_SOURCES = tests/train/test_metrics_log.c
tests_train_test_metrics_log_CFLAGS = $(TEST_CFLAGS)
tests_train_test_metrics_log_LDADD = $(TEST_LIBS)
check_PROGRAMS += tests/train/test_resume_check
tests_train_test_resume_check_SOURCES = tests/train/test_resume_check.c
tests_train_test_resume_check_CFLAGS = $(TEST_CFLAGS)
tests_train_test_resume_check_LDADD = $(TEST_LIBS)
TRAIN_TESTS = tests/train/objective.test tests/train/loop_ranks.test tests/train/train_layout.test tests/train/train_resume.test \
	tests/train/train_corrupt.test tests/train/train_preempt.test tests/train/train_nan.test \
	tests/train/train_export.test tests/train/train_das.test tests/train/train_baselines.test
TRAIN_TESTS += tests/train/train_tp.test
TRAIN_TESTS += tests/train/ckpt_tp.test
TRAIN_TESTS += tests/train/train_files.test
TRAIN_TESTS += tests/train/watchdog.test
TRAIN_TESTS += tests/train/metrics_jsonl.test tests/train/plot_follow.test
TRAIN_TESTS += tests/train/train_resume_check.test tests/train/disk_full.test
TRAIN_TESTS += tests/train/grad_sync_ranks.test tests/train/train_zero.test
TESTS += tests/train/test_loop tests/train/test_grad_sync tests/train/test_metrics_log tests/train/test_resume_check $(TRAIN_TESTS)
EXTRA_DIST += $(TRAIN_TESTS) tests/train/train_env.sh tests/train/check_das.py tests/train/make_importance.py \
	tests/train/check_jsonl.py
