/* safetensors: header JSON, dtypes, shapes, offsets and the data section
 * (dapt_st_open), then every tensor converted as import does. */
#include <stdlib.h>

#include "dapt/safetensors.h"
#include "fuzz_common.h"

FUZZ_TARGET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dapt_safetensors st = {0};
    dapt_status s = dapt_st_open(fuzz_write("model.safetensors", data, size), &st);
    fuzz_done(s);
    if (s != DAPT_OK) return 0;
    for (size_t i = 0; i < st.count; i++) {
        const dapt_st_tensor *t = &st.tensors[i];
        if (dapt_st_find(&st, t->name) == NULL) abort(); /* every listed tensor must be found by name */
        /* The data section is at most the input, so numel is bounded by it. */
        void *buf = malloc((t->numel ? t->numel : 1) * sizeof(int64_t));
        if (!buf) return 0;
        fuzz_done(dapt_st_to_f32(&st, t, buf));
        fuzz_done(dapt_st_to_i64(&st, t, buf));
        free(buf);
    }
    dapt_st_close(&st);
    return 0;
}
