# tests/task: metrics against hand-computed cases, the task-file reader,
# dapt finetune (same run on 1 and 2 ranks, learns an easy task, clear
# errors) and dapt eval; SMART (its pieces by finite differences, a PyTorch
# reference, 1 vs 2 ranks, bad [smart] values).
check_PROGRAMS += tests/task/test_metrics tests/task/test_smart tests/task/smart_probe
tests_task_test_metrics_SOURCES = tests/task/test_metrics.c
tests_task_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_task_test_metrics_LDADD = $(TEST_LIBS)
tests_task_test_smart_SOURCES = tests/task/test_smart.c
tests_task_test_smart_CFLAGS = $(TEST_CFLAGS)
tests_task_test_smart_LDADD = $(TEST_LIBS)
# Not a test: what SMART draws and computes, for its reference (smart_reference.test).
tests_task_smart_probe_SOURCES = tests/task/smart_probe.c
tests_task_smart_probe_CFLAGS = $(TEST_CFLAGS)
tests_task_smart_probe_LDADD = $(TEST_LIBS)
TASK_TESTS = tests/task/finetune_resume.test tests/task/metrics_ranks.test tests/task/finetune_learns.test tests/task/finetune_ranks.test \
	tests/task/finetune_errors.test tests/task/eval_mlm.test tests/task/finetune_reference.test \
	tests/task/finetune_roberta.test tests/task/smart_reference.test tests/task/smart_ranks.test \
	tests/task/smart_errors.test tests/task/finetune_regression.test tests/task/finetune_files.test \
	tests/task/finetune_jsonl.test
TASK_TESTS += tests/task/finetune_resume_check.test tests/task/input_integrity.test
TESTS += tests/task/test_metrics tests/task/test_smart $(TASK_TESTS)
EXTRA_DIST += $(TASK_TESTS) tests/task/task_env.sh tests/fixtures/task/init.h5 tests/fixtures/task/task.h5 \
	tests/fixtures/task/expected.h5 tools/fixtures/make_finetune_fixture.py \
	tests/fixtures/smart/paper_probe.h5 tests/fixtures/smart/paper_expected.h5 tests/fixtures/smart/mtdnn_probe.h5 \
	tests/fixtures/smart/mtdnn_expected.h5 tools/fixtures/make_smart_fixture.py
# The script that made the fine-tuning inputs: ships with the tarball.
EXTRA_DIST += tools/fixtures/make_finetune_inputs.sh
