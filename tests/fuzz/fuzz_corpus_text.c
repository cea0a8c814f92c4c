/* Raw corpus text (dapt_prepare_corpus on one rank: gzip detection and
 * inflation, document splitting, UTF-8 and NUL checks, normalisation and
 * tokenisation of every document).  The first input byte picks the document
 * separator (bit 0: blank lines, else one per line) and the tokenizer
 * (bit 1: byte-level BPE, else WordPiece); the rest is the file.  A corpus
 * with tokens is then opened as training sequences (dapt_sequences_open). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/batches.h"
#include "dapt/config.h"
#include "dapt/corpus.h"
#include "dapt/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dapt_tokenizer *tok[2];
static dapt_config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!fuzz_init(argc, argv)) return 0;
    fuzz_load_tokenizers(tok);
    dapt_config_defaults(&cfg);
    return 0;
}

static void read_sequences(const char *path, const dapt_tokenizer *t)
{
    const dapt_special_ids sp = dapt_tokenizer_specials(t);
    const dapt_seq_spec spec = {.seq_len = 8, .packing = DAPT_PACK_DOCUMENT, .eval_fraction = 0.0, .seed = 1,
                                .begin_id = sp.cls, .end_id = sp.sep, .pad_id = sp.pad};
    dapt_sequences *s = NULL;
    dapt_status st = dapt_sequences_open(path, &spec, &s);
    if (st != DAPT_OK) {
        fprintf(stderr, "fuzz: a corpus dapt prepare wrote does not open: %s\n", dapt_error_message());
        abort();
    }
    if (dapt_sequences_count(s, DAPT_SPLIT_TRAIN) > 0) {
        const int64_t idx = 0;
        int32_t ids[8], att[8];
        st = dapt_sequences_read(s, DAPT_SPLIT_TRAIN, &idx, 1, ids, att);
        if (st != DAPT_OK) {
            fprintf(stderr, "fuzz: sequence 0 of a corpus dapt prepare wrote does not read: %s\n",
                    dapt_error_message());
            abort();
        }
    }
    dapt_sequences_close(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    char input[4200], output[4200];
    snprintf(input, sizeof input, "%s", fuzz_write("corpus.txt", data + 1, size - 1));
    snprintf(output, sizeof output, "%s", fuzz_path("corpus.h5"));
    const char *inputs[1] = {input};
    const dapt_tokenizer *t = tok[(data[0] >> 1) & 1];
    const dapt_prepare_opts o = {.tok = t, .tokenizer_path = "fuzz", .inputs = inputs, .n_inputs = 1,
                                 .output = output, .force = 1, .cfg = &cfg,
                                 .doc_sep = (data[0] & 1) ? DAPT_DOC_BLANK : DAPT_DOC_LINE};
    dapt_prepare_stats stats;
    dapt_status st = dapt_prepare_corpus(MPI_COMM_SELF, &o, &stats);
    fuzz_done(st);
    if (st == DAPT_OK && stats.n_tokens > 0) read_sequences(output, t);
    return 0;
}
