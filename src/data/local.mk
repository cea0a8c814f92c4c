# src/data: corpus and task preparation (dapt prepare).
libdapt_a_SOURCES += src/data/source.c src/data/corpus.c src/data/task.c src/data/data_internal.h
dapt_SOURCES += src/cli/cmd_prepare.c
