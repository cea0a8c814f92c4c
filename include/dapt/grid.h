/* The process grid: data-parallel x tensor-parallel communicators, and what
 * each rank owns.
 *
 * The W ranks of the job's communicator form D x T with T =
 * [parallel] tensor and D = W / T.  Tensor groups are T consecutive ranks
 * (on a cluster, consecutive ranks share a node, so the per-sub-layer
 * all-reduces of tensor parallelism stay on the node):
 *     tensor rank t = world rank % T,   data rank d = world rank / T.
 * grid.tensor holds the T ranks with the same d (one model replica, split);
 * grid.data holds the D ranks with the same t (same shard, different
 * samples; gradients are all-reduced here).
 *
 * Sharding (docs/parallel.md):
 *  - attention heads: tensor rank t owns heads [t H/T, (t+1) H/T);
 *  - FFN intermediate columns: [t I/T, (t+1) I/T);
 *  - vocabulary: padded to a multiple of 64 T (Vp); rank t owns rows
 *    [t Vp/T, (t+1) Vp/T), of which those < V are real;
 *  - samples of a global batch of B: data rank d owns a contiguous block;
 *    blocks are balanced (the first B mod D ranks have one more).
 * The sharding helpers are pure functions of their arguments and not
 * collective. */
#ifndef DAPT_GRID_H
#define DAPT_GRID_H

#include <mpi.h>
#include <stdint.h>

#include "dapt/config.h"
#include "dapt/params.h"
#include "dapt/status.h"

/* Vocabulary padding quantum per tensor rank: each shard is a whole number
 * of 64-row blocks. */
#define DAPT_VOCAB_PAD 64

typedef struct dapt_grid {
    MPI_Comm world;  /* duplicate of the communicator the grid was made from */
    MPI_Comm data;   /* same tensor rank: D ranks */
    MPI_Comm tensor; /* same data rank: T consecutive ranks */
    int world_rank, world_size;
    int data_rank, data_size;
    int tensor_rank, tensor_size;
} dapt_grid;

/* Splits world into D x T.  Fails (DAPT_ERR_CONFIG, every rank the same
 * message) when T < 1 or T does not divide the world size, and
 * (DAPT_ERR_MPI) when ranks were given different T.  Collective over world.
 * On failure *g holds no communicators. */
dapt_status dapt_grid_create(MPI_Comm world, int64_t tensor, dapt_grid *g);

/* Frees the communicators.  Collective over g->world; safe on a zeroed or
 * freed grid. */
void dapt_grid_free(dapt_grid *g);

/* Checks that the model can be split T ways: heads and FFN width divisible
 * by T (the padded vocabulary always is).  The message names the config
 * field, its value and T.  Not collective (every rank reaches the same
 * verdict from the same inputs). */
dapt_status dapt_grid_check_model(const dapt_grid *g, const dapt_model_config *mc);

/* Checks that every data rank gets samples: global_batch >= D.  Not
 * collective. */
dapt_status dapt_grid_check_batch(const dapt_grid *g, int64_t global_batch);

/* dapt_grid_create + dapt_grid_check_model (mc may be NULL) +
 * dapt_grid_check_batch(cfg->train.batch_size) + dapt_grid_log: what a
 * command calls at start.  Collective over world. */
dapt_status dapt_grid_setup(MPI_Comm world, const dapt_config *cfg, const dapt_model_config *mc,
                            dapt_grid *g);

/* Logs the layout once (rank 0): the grid's shape, then one line per rank
 * with its world, data and tensor ranks, host, and — when mc is not NULL —
 * the heads, FFN columns and vocabulary rows it owns.  Collective over
 * g->world (host names are gathered). */
dapt_status dapt_grid_log(const dapt_grid *g, const dapt_model_config *mc);

/* A half-open range [begin, begin + count). */
typedef struct dapt_range {
    int64_t begin, count;
} dapt_range;

/* Block `part` of `parts` of n items, balanced: the first n mod parts blocks
 * have one item more.  The building block of the helpers below. */
dapt_range dapt_block(int64_t n, int64_t parts, int64_t part);

/* The attention heads / FFN intermediate columns tensor rank t of T owns.
 * Require divisibility (dapt_grid_check_model). */
dapt_range dapt_shard_heads(const dapt_model_config *mc, int tensor_rank, int tensor_size);
dapt_range dapt_shard_ffn(const dapt_model_config *mc, int tensor_rank, int tensor_size);

/* Vocabulary size padded to a multiple of DAPT_VOCAB_PAD * T. */
int64_t dapt_padded_vocab(int64_t vocab_size, int tensor_size);

/* Rows of the padded vocabulary tensor rank t owns; *real (if not NULL)
 * receives how many of them are real tokens (< vocab_size), the rest are
 * padding rows that are never a label and get -inf logits. */
dapt_range dapt_shard_vocab(int64_t vocab_size, int tensor_rank, int tensor_size, int64_t *real);

/* The samples of a global batch of global_batch that data rank d of D
 * owns, as offsets into the batch: the global sample at position
 * step * global_batch + offset of the epoch's order. */
dapt_range dapt_shard_samples(int64_t global_batch, int data_rank, int data_size);

#endif
