/* An objective's loss on fixed held-out rows, for objectives that evaluate
 * others (the MOMETAS sampler's meta-steps).  Internal to src/objectives. */
#ifndef DAPT_OBJECTIVES_OBJECTIVE_HELDOUT_H
#define DAPT_OBJECTIVES_OBJECTIVE_HELDOUT_H

#include <stdint.h>

#include "dapt/objective.h"

/* This rank's share of `rows` held-out rows and its buffers. */
typedef struct dapt_heldout {
    int64_t rows, first, count; /* rows in all; this rank's [first, first + count) */
    int32_t *clean, *ids, *att, *labels; /* [count, seq_len] */
    int64_t *idx;                        /* [count] */
    dapt_micro_batch *mbs;
} dapt_heldout;

/* Takes this data rank's even share of `rows` rows; refuses a corpus
 * without held-out sequences.  Not collective. */
dapt_status dapt_heldout_alloc(dapt_heldout *h, const dapt_objective_ctx *ctx, int64_t rows);
void dapt_heldout_free(dapt_heldout *h);

/* o's global loss on held-out sequences first_seq .. first_seq + rows - 1
 * (wrapping around the held-out split): o's prepare corrupts them under a
 * fixed step key (so every evaluation sees the same inputs and a change
 * of loss is the model's), its local denominators are summed over the data
 * ranks into ctx->denominators for the call (restored afterwards), and
 * o's eval_loss runs without dropout or gradients in ctx->ws.  Collective
 * over ctx->data_comm. */
dapt_status dapt_heldout_loss(dapt_heldout *h, dapt_objective *o, dapt_objective_ctx *ctx, int64_t first_seq,
                              double *loss);

#endif
