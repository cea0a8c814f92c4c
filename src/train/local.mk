# src/train: dapt train -- the run (setup, output,
# step, loop), the metrics log, continual domains, held-out loss.
libdapt_a_SOURCES += src/train/setup.c \
	src/train/output.c src/train/metrics_log.c src/train/step.c src/train/loop.c src/train/continual.c src/train/heldout.c \
	src/train/train_internal.h
dapt_SOURCES += src/cli/cmd_train.c src/cli/cmd_importance.c
