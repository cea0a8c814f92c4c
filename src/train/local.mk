# src/train: build fragment (included by Makefile.am)
libdapt_a_SOURCES += src/train/optim.c
