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
#include "dapt/model.h"
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

/* The helpers below split with dapt_share (share.h): balanced blocks, the
 * first n mod parts blocks one item more. */

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

/* ---- The parameter table of one tensor rank ----
 *
 * Megatron-style split of each tensor of the global table (params.h):
 *   rows (dim 0) split:  embeddings.word and mlm.bias (vocab-parallel, rows
 *                        of the padded vocabulary), attn.{q,k,v}.weight/bias
 *                        (the rank's heads: column-parallel), ffn.in.weight/
 *                        bias (its FFN columns: column-parallel);
 *   columns (dim 1) split: attn.out.weight, ffn.out.weight (row-parallel:
 *                        the inputs from the rank's heads / FFN columns);
 *   replicated:          everything else (position and token-type
 *                        embeddings, LayerNorms, the biases of row-parallel
 *                        layers, pooler, MLM transform, classifier).
 * The local table keeps the global table's names and order, with local
 * shapes and its own offsets (16-float aligned), so optimizer and kernels
 * run on it unchanged. */
typedef enum {
    DAPT_SHARD_REPLICATED = 0, /* every tensor rank holds all of it */
    DAPT_SHARD_ROWS = 1,       /* dim 0 split */
    DAPT_SHARD_COLS = 2        /* dim 1 split */
} dapt_shard_kind;

typedef struct dapt_shard {
    dapt_shard_kind kind;
    /* The global hyperslab this rank's copy holds: rows [row0, row0 +
     * rows) and columns [col0, col0 + cols) of the global tensor.  For
     * vocab-parallel tensors only the real rows count; the local tensor has
     * local_rows >= rows, the rest being padding rows (zero, never read
     * back into the global tensor). */
    int64_t row0, rows, col0, cols;
    int64_t local_rows;
} dapt_shard;

/* Builds tensor rank t's table from the global one; shards (malloc'd, one
 * per tensor, free() it) says where each local tensor sits in the global
 * one.  Requires the divisibility dapt_grid_check_model checks (refuses
 * otherwise, naming the tensor).  Not collective. */
dapt_status dapt_shard_table_build(const dapt_model_config *mc, const dapt_param_table *global,
                                   int tensor_rank, int tensor_size, dapt_param_table *local,
                                   dapt_shard **shards);

/* Copies this rank's part of a global flat buffer into its local buffer
 * (padding rows of vocab-parallel tensors set to 0; the padding between
 * tensors is left alone).  Not collective. */
void dapt_shard_scatter(const dapt_param_table *global, const float *global_buf,
                        const dapt_param_table *local, const dapt_shard *shards, float *local_buf);

/* The reverse: writes this rank's real elements into their places in a
 * global buffer (replicated tensors included).  Not collective. */
void dapt_shard_gather(const dapt_param_table *global, float *global_buf,
                       const dapt_param_table *local, const dapt_shard *shards,
                       const float *local_buf);

/* ---- Tensor-parallel models (src/parallel/tp.c) ----
 *
 * dapt_tp_shard_model turns a whole model (every rank holding the same one,
 * e.g. randomly initialised with the same seed or read from a model file)
 * into this rank's shard; training then runs on the shard's local buffers
 * (the optimizer and the data-parallel gradient all-reduce are unchanged:
 * ranks of grid.data hold the same shard).  Replicated tensors hold the same
 * values and receive the same gradients on every tensor rank. */

/* The engine's tensor-parallel group (model.h) over g->tensor: in-place
 * MPI_Allreduce.  g must outlive tp.  Not collective. */
void dapt_grid_tp_group(const dapt_grid *g, dapt_tp_group *tp);

typedef struct dapt_tp_layout {
    dapt_param_table global; /* the whole model's table */
    dapt_shard *shards;      /* per tensor of the shard's table: its place in the global one */
    int tensor_rank, tensor_size;
    MPI_Comm tensor;         /* the tensor-parallel communicator (not owned) */
} dapt_tp_layout;

/* Replaces the whole model *m by tensor rank g->tensor_rank's shard of it
 * (params scattered, grads zero, m->tp = tp) and describes the split in *lay.
 * Requires dapt_grid_check_model.  Not collective (every tensor rank calls it
 * on its copy). */
dapt_status dapt_tp_shard_model(const dapt_grid *g, const dapt_tp_group *tp, dapt_model *m,
                                dapt_tp_layout *lay);
void dapt_tp_layout_free(dapt_tp_layout *lay);

/* Sum of squares of a buffer laid out like the shard's table (gradients for
 * global-norm clipping): split tensors summed over the tensor group,
 * replicated ones counted once.  Collective over lay->tensor. */
dapt_status dapt_tp_sumsq(const dapt_tp_layout *lay, const dapt_param_table *local, const float *buf,
                          double *sumsq);

/* The whole buffer (laid out like lay->global) on every rank of the tensor
 * group, from the shards' buffers (parameters or optimizer moments for a
 * checkpoint or an export).  Exact: every element is summed from one owner
 * and zeros.  Collective over lay->tensor. */
dapt_status dapt_tp_allgather(const dapt_tp_layout *lay, const dapt_param_table *local,
                              const float *local_buf, float *global_buf);

#endif
