# src/task: end tasks -- task files, metrics, dapt finetune, dapt eval.
libdapt_a_SOURCES += src/task/metrics.c src/task/taskfile.c src/task/batch.c src/task/evaluate.c \
	src/task/report.c src/task/finetune.c src/task/task_internal.h \
	src/task/classifier.c src/task/finetune_step.c src/task/finetune_ckpt.c src/task/finetune_internal.h
dapt_SOURCES += src/cli/cmd_finetune.c src/cli/cmd_eval.c
