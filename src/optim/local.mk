# src/optim: build fragment (included by Makefile.am)
libdapt_a_SOURCES += src/optim/optim.c src/optim/grad_allreduce.c src/optim/grad_sync.c src/optim/zero.c
