# src/model: build fragment (included by Makefile.am)
libdapt_a_SOURCES += src/model/params.c src/model/kernels.c src/model/model.c src/model/heads.c \
	src/model/kernels.h src/model/model_internal.h
