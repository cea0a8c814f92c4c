# tests/loop: masking, sequences, checkpoints; dapt train layout invariance,
# resume, corrupted checkpoints, preemption and NaN handling.
check_PROGRAMS += tests/loop/make_corpus
tests_loop_make_corpus_SOURCES = tests/loop/make_corpus.c tests/loop/corpus_fixture.h
tests_loop_make_corpus_CFLAGS = $(TEST_CFLAGS)
tests_loop_make_corpus_LDADD = $(TEST_LIBS)
