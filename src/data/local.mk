# src/data: corpus and task preparation (dapt prepare); training sequences
# from a prepared corpus, the sample order, MLM masking.
libdapt_a_SOURCES += src/data/source.c src/data/corpus.c src/data/task.c src/data/data_internal.h \
	src/data/batches.c src/data/mlm.c src/data/salient.c
dapt_SOURCES += src/cli/cmd_prepare.c
