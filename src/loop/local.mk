# src/loop: dapt train -- sequences, MLM masking, the step, checkpoints.
libdapt_a_SOURCES += src/loop/mlm.c src/loop/batches.c src/loop/checkpoint.c src/loop/loop.c \
	src/loop/objectives_das.c src/loop/objectives_base.c src/loop/objectives_importance.c \
	src/loop/objectives_internal.h
dapt_SOURCES += src/cli/cmd_train.c src/cli/cmd_importance.c
