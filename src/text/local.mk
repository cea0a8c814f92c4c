# src/text: tokenizers (WordPiece, byte-level BPE), SHA-256.
libdapt_a_SOURCES += src/text/sha256.c src/text/tok_common.c src/text/wordpiece.c src/text/bpe.c \
	src/text/tokenizer.c src/text/tokenizer_load.c src/text/tok_internal.h \
	src/text/model_tokenizer.c src/text/hf_tokenizer_files.c
dapt_SOURCES += src/cli/cmd_tokenize.c
# Throughput driver for bench/tokenize/run.sh (built by `make check`, not a test).
check_PROGRAMS += bench/tokenize/bench_tokenize
bench_tokenize_bench_tokenize_SOURCES = bench/tokenize/bench_tokenize.c
bench_tokenize_bench_tokenize_LDADD = libdapt.a $(DAPT_LIBS)
