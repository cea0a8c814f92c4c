/* Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c, docs/fuzzing.md).
 *
 * Every harness hands its input to dapt's own parser, through a file when
 * the parser reads one, and frees what the parser returned.  Errors are
 * expected (most inputs are invalid): only sanitizer reports, crashes,
 * hangs and leaks are findings. */
#ifndef DAPT_FUZZ_COMMON_H
#define DAPT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

struct dapt_tokenizer;

/* MPI_Init (MPI_COMM_SELF-only use), quiet logging, and a private scratch
 * directory removed at exit.  Call from LLVMFuzzerInitialize; returns 0
 * (having done nothing) in a libFuzzer -fork parent, which runs no input,
 * and the harness then skips the rest of its set-up. */
int fuzz_init(int *argc, char ***argv);

/* libFuzzer's entry points declared (-Wmissing-prototypes) and the
 * initialisation every target without its own set-up uses. */
#define FUZZ_TARGET_INIT                                                                                           \
    int LLVMFuzzerInitialize(int *argc, char ***argv);                                                             \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);                                                  \
    int LLVMFuzzerInitialize(int *argc, char ***argv)                                                              \
    {                                                                                                              \
        (void)fuzz_init(argc, argv);                                                                               \
        return 0;                                                                                                  \
    }

/* Writes data[0..n) to <scratch>/name; returns the path (static storage,
 * valid until the next call). */
const char *fuzz_write(const char *name, const uint8_t *data, size_t n);

/* <scratch>/name without writing it (static storage, as above). */
const char *fuzz_path(const char *name);

/* The source tree's path (fixtures the harnesses read as fixed inputs). */
const char *fuzz_srcdir(const char *rel);

/* Copies a source-tree file into the scratch directory under name. */
void fuzz_copy(const char *rel, const char *name);

/* A harness set-up failure (not a finding): prints what and the recorded
 * error when st != DAPT_OK, and exits with status 2. */
void fuzz_fail(const char *what, dapt_status st) __attribute__((noreturn));

/* Forgets the error record of a rejected input. */
void fuzz_done(dapt_status st);



/* Loads a tokenizer from path (dapt_tokenizer_load) and, when it loads,
 * encodes a fixed text alone and as a truncated, padded pair, and decodes
 * the ids: an id the tokenizer produced that it cannot decode aborts (a
 * finding).  Frees everything. */
void fuzz_tokenizer(const char *path);

/* The tiny fixture tokenizers: [0] WordPiece (tests/fixtures/hf/bert_cls),
 * [1] byte-level BPE (tests/fixtures/hf/roberta_cls). */
void fuzz_load_tokenizers(struct dapt_tokenizer *tok[2]);

#endif
