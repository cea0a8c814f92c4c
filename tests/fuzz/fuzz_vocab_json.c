/* vocab.json of a byte-level BPE directory, next to the tiny RoBERTa
 * fixture's merges.txt (dapt_tokenizer_load on the directory), then used
 * (fuzz_tokenizer). */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!fuzz_init(argc, argv)) return 0;
    fuzz_copy("tests/fixtures/hf/roberta_cls/merges.txt", "merges.txt");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("vocab.json", data, size);
    fuzz_tokenizer(fuzz_path("."));
    return 0;
}
