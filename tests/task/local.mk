# tests/task: metrics against hand-computed cases, the task-file reader,
# dapt finetune (same run on 1 and 2 ranks, learns an easy task, clear
# errors) and dapt eval.
check_PROGRAMS += tests/task/test_metrics
tests_task_test_metrics_SOURCES = tests/task/test_metrics.c
tests_task_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_task_test_metrics_LDADD = $(TEST_LIBS)
TASK_TESTS = tests/task/metrics_ranks.test tests/task/finetune_learns.test tests/task/finetune_ranks.test \
	tests/task/finetune_errors.test tests/task/eval_mlm.test tests/task/finetune_reference.test \
	tests/task/finetune_roberta.test tests/task/finetune_regression.test
TESTS += tests/task/test_metrics $(TASK_TESTS)
EXTRA_DIST += $(TASK_TESTS) tests/task/task_env.sh tests/fixtures/task/init.h5 tests/fixtures/task/task.h5 \
	tests/fixtures/task/expected.h5 tools/fixtures/make_finetune_fixture.py
