/* The driver's hint after an allocation failure (include/dapt/cli.h): the
 * keys that lower the memory per rank, with values that follow from the
 * current ones, so the user can act on it without reading the docs. */
#include <stdio.h>
#include <string.h>

#include "dapt/cli.h"

/* Half of n, at least 1. */
static long long half(int64_t n) { return n / 2 > 0 ? (long long)(n / 2) : 1; }

void dapt_cli_memory_hint(const dapt_cli *cli, dapt_status st, size_t alloc_bytes, char *buf, size_t len)
{
    buf[0] = '\0';
    /* Small allocations failing mean the machine is full, not that the
     * model is too big for it. */
    if (st != DAPT_ERR_NOMEM || alloc_bytes < ((size_t)1 << 20)) return;
    const dapt_config *c = &cli->cfg;
    if (!strcmp(cli->command, "train")) {
        const int64_t accum = c->train.grad_accum * 2;
        const int64_t micro = c->train.batch_size / accum > 0 ? c->train.batch_size / accum : 1;
        snprintf(buf, len,
                 "to need less memory per rank, set train.grad_accum = %lld (micro-batches of %lld of the %lld "
                 "sequences)%s, a smaller train.batch_size, or run with more tensor-parallel ranks "
                 "(parallel.tensor = %lld)",
                 (long long)accum, (long long)micro, (long long)c->train.batch_size,
                 c->model.recompute ? "" : ", model.recompute = true", (long long)c->parallel.tensor * 2);
    } else if (!strcmp(cli->command, "finetune")) {
        /* Fine-tuning has neither recomputation nor tensor parallelism;
         * micro_batch 0 means a rank's whole share of the batch. */
        const int64_t share = c->finetune.batch_size / (cli->size > 0 ? cli->size : 1);
        const int64_t micro = c->finetune.micro_batch > 0 ? c->finetune.micro_batch : share;
        snprintf(buf, len,
                 "to need less memory per rank, set finetune.micro_batch = %lld (examples per forward on a rank, "
                 "now %lld) or a smaller finetune.batch_size",
                 half(micro), (long long)micro);
    }
}
