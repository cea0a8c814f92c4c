/* A prepared corpus file (dapt_sequences_open: attributes, document
 * offsets, the sequence map; dapt_sequences_read of the first sequences)
 * on any bytes.  Per-input timeout: see fuzz_h5_model.c. */
#include "dapt/batches.h"
#include "fuzz_common.h"

FUZZ_TARGET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* BERT's [CLS]/[SEP]/[PAD] ids; concat packing reads across documents. */
    const dapt_seq_spec spec = {.seq_len = 8, .packing = DAPT_PACK_CONCAT, .eval_fraction = 0.25, .seed = 7,
                                .begin_id = 2, .end_id = 3, .pad_id = 0};
    dapt_sequences *s = NULL;
    dapt_status st = dapt_sequences_open(fuzz_write("corpus.h5", data, size), &spec, &s);
    fuzz_done(st);
    if (st != DAPT_OK) return 0;
    for (int split = DAPT_SPLIT_TRAIN; split <= DAPT_SPLIT_EVAL; split++) {
        int64_t n = dapt_sequences_count(s, (dapt_split)split);
        for (int64_t k = 0; k < n && k < 16; k++) {
            int32_t ids[8], att[8];
            fuzz_done(dapt_sequences_read(s, (dapt_split)split, &k, 1, ids, att));
        }
    }
    dapt_sequences_close(s);
    return 0;
}
