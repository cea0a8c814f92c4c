# src/model: build fragment (included by Makefile.am)
libdapt_a_SOURCES += src/model/params.c
