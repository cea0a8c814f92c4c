/* tokenizer.json (WordPiece or BPE model, normalizer, added tokens, post-processor
 * template) loaded with dapt_tokenizer_load, then used (fuzz_tokenizer). */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)fuzz_init(argc, argv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tokenizer(fuzz_write("tokenizer.json", data, size));
    return 0;
}
