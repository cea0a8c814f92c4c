# src/checkpoint: checkpoints in parallel HDF5 at global shape, any layout.
libdapt_a_SOURCES += src/checkpoint/checkpoint.c
