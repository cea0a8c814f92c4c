# src/loop: dapt train -- sequences, MLM masking, the step, checkpoints.
libdapt_a_SOURCES += src/loop/mlm.c src/loop/batches.c src/loop/checkpoint.c src/loop/loop.c
dapt_SOURCES += src/cli/cmd_train.c
