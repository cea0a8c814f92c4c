# src/text: tokenizers (WordPiece, byte-level BPE), SHA-256.
libdapt_a_SOURCES += src/text/sha256.c src/text/tok_common.c src/text/wordpiece.c src/text/bpe.c \
	src/text/tokenizer.c src/text/tokenizer_load.c src/text/tok_internal.h
dapt_SOURCES += src/cli/cmd_tokenize.c
