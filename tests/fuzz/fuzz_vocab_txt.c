/* vocab.txt (WordPiece, one token per line) loaded with dapt_tokenizer_load,
 * then used (fuzz_tokenizer). */
#include "fuzz_common.h"

FUZZ_TARGET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_tokenizer(fuzz_write("vocab.txt", data, size));
    return 0;
}
