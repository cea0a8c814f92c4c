# src/core: status codes, logging, RNG, configuration, even splits, UTF-8, CRC-32.
libdapt_a_SOURCES += src/core/status.c src/core/log.c src/core/rng.c src/core/config.c src/core/platform.c src/core/share.c \
	src/core/utf8.c src/core/preempt.c src/core/provenance.c src/core/suggest.c src/core/crc32.c
