# src/parallel: build fragment (included by Makefile.am)
libdapt_a_SOURCES += src/parallel/grid.c src/parallel/shard.c src/parallel/tp.c
