# src/train: dapt train -- sequences, MLM masking, the step, checkpoints.
libdapt_a_SOURCES += src/train/mlm.c src/train/batches.c src/train/checkpoint.c src/train/loop.c \
	src/train/objectives_das.c src/train/objectives_base.c src/train/objectives_importance.c \
	src/train/train_internal.h
dapt_SOURCES += src/cli/cmd_train.c src/cli/cmd_importance.c
