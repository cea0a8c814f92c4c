# src/checkpoint: checkpoints in parallel HDF5 at global shape, any layout.
libdapt_a_SOURCES += src/checkpoint/checkpoint.c
libdapt_a_SOURCES += src/checkpoint/resume_check.c src/checkpoint/resume_log.c
