/* A prepared task file (dapt_task_file_open: attributes, label names,
 * split list; dapt_task_split_read of every split) on any bytes.
 * Per-input timeout: see fuzz_h5_model.c. */
#include <string.h>

#include "dapt/task.h"
#include "fuzz_common.h"

FUZZ_TARGET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dapt_task_file t;
    memset(&t, 0, sizeof t);
    dapt_status st = dapt_task_file_open(fuzz_write("task.h5", data, size), &t);
    fuzz_done(st);
    if (st != DAPT_OK) return 0;
    /* t.splits holds one split name per line. */
    for (const char *p = t.splits; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char name[64];
        if (n < sizeof name) {
            memcpy(name, p, n);
            name[n] = 0;
            dapt_task_split s;
            memset(&s, 0, sizeof s);
            st = dapt_task_split_read(&t, name, &s);
            fuzz_done(st);
            if (st == DAPT_OK) dapt_task_split_free(&s);
        }
        p = nl ? nl + 1 : p + n;
    }
    dapt_task_file_free(&t);
    return 0;
}
