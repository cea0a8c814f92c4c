/* tokenizer.json (WordPiece or BPE model, normalizer, added tokens, post-processor
 * template) loaded with dapt_tokenizer_load, then used (fuzz_tokenizer). */
#include "fuzz_common.h"

FUZZ_TARGET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tokenizer(fuzz_write("tokenizer.json", data, size));
    return 0;
}
