/* Training checkpoints in parallel HDF5: one file per checkpoint,
 * DIR/step-%08d.h5, holding
 *   (model file)                configuration attributes, /params/<name> at
 *                               global shape and /tokenizer/ exactly as in a
 *                               model file (modelfile.h), so dapt export and
 *                               dapt train's model.path read a checkpoint
 *   /optim/exp_avg/<name>       AdamW first moment, same shape
 *   /optim/exp_avg_sq/<name>    AdamW second moment, same shape
 *   /objective/...              the training objective's own state (if any)
 * Every parameter and moment dataset carries the CRC-32 (zlib) of its
 * whole global contents in row-major order as the attribute "crc32"; the
 * root carries checkpoint_format, the step, the data position, the optimizer step, the count of bad
 * steps in a row, the seed (the counter-based RNG needs nothing else), the
 * model architecture and the resolved configuration ("dapt_config").
 *
 * Files are written under a temporary name and renamed when complete; then
 * DIR/latest (one line: the file name) is replaced atomically; then the
 * oldest checkpoints beyond `keep` are removed.  A crash at any point leaves
 * the previous good checkpoint and a `latest` naming a complete file.
 *
 * Each rank writes and reads only its own hyperslabs (collective parallel
 * HDF5 I/O); no rank allocates a global-size buffer: a tensor-parallel
 * shard (dapt_shard, grid.h) is split by rows over the D data ranks that
 * hold it, a replicated tensor over all D x T ranks.  The checksum of a
 * dataset is assembled from the CRC-32s of the contiguous pieces the ranks
 * wrote (or, on loading, a tiling of what they read), combined in global
 * order with zlib's crc32_combine on rank 0: it does not depend on the
 * layout, so a file written on 2 x 2 verifies on 4 x 1 or 1 x 1.
 *
 * Functions that take a communicator are collective over it; the others
 * run on the calling process only. */
#ifndef DAPT_CHECKPOINT_H
#define DAPT_CHECKPOINT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/config.h"
#include "dapt/crc32.h"
#include "dapt/grid.h"
#include "dapt/h5io.h"
#include "dapt/model.h"
#include "dapt/modelfile.h"
#include "dapt/optim.h"
#include "dapt/status.h"

typedef struct dapt_ckpt_state {
    int64_t step;      /* optimizer steps completed = the next step to run */
    int64_t samples;   /* global sequences consumed (data position) */
    int64_t adam_step; /* AdamW's t */
    int64_t bad_run;   /* non-finite steps in a row at the time of saving */
    uint64_t seed;
} dapt_ckpt_state;

/* Extra state written into / read from the open checkpoint file (collective
 * over the file's communicator); NULL when there is none. */
typedef dapt_status (*dapt_ckpt_save_fn)(void *ctx, dapt_h5file *f);
typedef dapt_status (*dapt_ckpt_load_fn)(void *ctx, const dapt_h5file *f);

/* Where this rank's flat buffers sit in the file's global tensors.  comm
 * (the checkpoint functions' communicator) holds data_size x tensor_size
 * ranks, rank = data_rank * tensor_size + tensor_rank (grid.h's order). */
typedef struct dapt_ckpt_layout {
    const dapt_param_table *global; /* the file's tensors, global shape */
    const dapt_param_table *local;  /* this rank's buffers (same tensor order) */
    const dapt_shard *shards;       /* local tensor k is shards[k] of global tensor k; NULL: local == global */
    int tensor_rank, tensor_size, data_rank, data_size;
    /* parallel.shard_optimizer (dapt_zero, optim.h; whole models only): the
     * AdamW moment buffers hold rows optim_rows[3k] .. + optim_rows[3k+1]
     * of tensor k at offset optim_rows[3k+2] (dapt_zero_rows), and this
     * rank writes and reads exactly those rows of the moments; NULL: the
     * moments are laid out like the parameters.  Parameters and objective
     * buffers never are. */
    const int64_t *optim_rows;
} dapt_ckpt_layout;

/* The layout of a whole model on every rank of comm (data parallelism
 * only).  Not collective. */
dapt_ckpt_layout dapt_ckpt_layout_whole(MPI_Comm comm, const dapt_param_table *table);

/* DIR/step-%08d.h5 for a step. Not collective. */
void dapt_checkpoint_path(const char *dir, int64_t step, char *out, size_t len);

/* Writes the checkpoint of st->step (replacing one of the same step),
 * updates DIR/latest and keeps the newest `keep` checkpoints.  exp_avg and
 * exp_avg_sq are flat buffers laid out like m->params.  Each rank writes a
 * block of rows of every tensor (dapt_ckpt_layout_whole).  meta (may be NULL) supplies the tokenizer
 * files and Hugging Face architecture name. */
dapt_status dapt_checkpoint_save(MPI_Comm comm, const char *dir, const dapt_config *cfg,
                                 const dapt_model *m, const dapt_model_meta *meta,
                                 const float *exp_avg, const float *exp_avg_sq,
                                 const dapt_ckpt_state *st, int64_t keep, dapt_ckpt_save_fn save,
                                 void *save_ctx);

/* The same for buffers laid out by lay (tensor parallelism: params,
 * exp_avg, exp_avg_sq are this rank's shard, lay->local->total floats).
 * mc is the whole model's configuration.  Collective over comm. */
dapt_status dapt_checkpoint_save_layout(MPI_Comm comm, const char *dir, const dapt_config *cfg,
                                        const dapt_model_config *mc, const dapt_ckpt_layout *lay,
                                        const float *params, const float *exp_avg, const float *exp_avg_sq,
                                        const dapt_model_meta *meta, const dapt_ckpt_state *st, int64_t keep,
                                        dapt_ckpt_save_fn save, void *save_ctx);

/* Reads one checkpoint into m->params, exp_avg, exp_avg_sq and *st,
 * verifying the shapes against m's table and every dataset's CRC-32.
 * Errors (HDF5 failure on a truncated file, checksum mismatch, shape
 * mismatch) name the file and dataset. */
dapt_status dapt_checkpoint_load(MPI_Comm comm, const char *path, dapt_model *m, float *exp_avg,
                                 float *exp_avg_sq, dapt_ckpt_state *st, dapt_ckpt_load_fn load,
                                 void *load_ctx);

/* Loads the newest good checkpoint of DIR: the one `latest` names, else (or
 * if it fails to load, with a warning naming the cause) the older ones in
 * decreasing step order.  *path receives the file used.  DAPT_ERR_IO when
 * DIR has no checkpoint at all, DAPT_ERR_FORMAT when none loads. */
dapt_status dapt_checkpoint_resume(MPI_Comm comm, const char *dir, dapt_model *m, float *exp_avg,
                                   float *exp_avg_sq, dapt_ckpt_state *st, dapt_ckpt_load_fn load,
                                   void *load_ctx, char *path, size_t path_len);

/* Load and resume for buffers laid out by lay: every rank reads only its
 * own hyperslabs (padding rows of vocab-parallel shards zeroed); the
 * checksums are verified over the whole datasets as for a whole model.
 * Collective over comm. */
dapt_status dapt_checkpoint_load_layout(MPI_Comm comm, const char *path, const dapt_ckpt_layout *lay,
                                        float *params, float *exp_avg, float *exp_avg_sq, dapt_ckpt_state *st,
                                        dapt_ckpt_load_fn load, void *load_ctx);
dapt_status dapt_checkpoint_resume_layout(MPI_Comm comm, const char *dir, const dapt_ckpt_layout *lay,
                                          float *params, float *exp_avg, float *exp_avg_sq,
                                          dapt_ckpt_state *st, dapt_ckpt_load_fn load, void *load_ctx,
                                          char *path, size_t path_len);

/* A model file (modelfile.h: header, /params at global shape, each dataset
 * with its CRC-32) from parameters laid out by lay, e.g. a tensor-parallel
 * shard, every rank writing its own hyperslabs; replaces path (temporary
 * name, renamed when complete).  Collective over comm. */
dapt_status dapt_checkpoint_save_model(MPI_Comm comm, const char *path, const dapt_config *cfg,
                                       const dapt_model_config *mc, const dapt_ckpt_layout *lay, const float *params,
                                       const dapt_model_meta *meta);

/* Another flat buffer laid out like the parameters (lay), e.g. an
 * objective's teacher copy, into / out of an open checkpoint file as
 * group/<tensor> at global shape, each dataset with its CRC-32 (verified on
 * reading).  For an objective's save / load hooks (dapt_objective_save_params
 * in objective.h).  Collective over comm, the file's communicator. */
dapt_status dapt_checkpoint_put_buffer(dapt_h5file *f, MPI_Comm comm, const dapt_ckpt_layout *lay, const char *group,
                                       const float *buf);
dapt_status dapt_checkpoint_get_buffer(const dapt_h5file *f, MPI_Comm comm, const dapt_ckpt_layout *lay,
                                       const char *group, float *buf);

/* Bytes of the largest buffer the checkpoint functions allocated in this
 * process so far (checksum pieces; never a tensor): lets tests check that
 * no global-size buffer is gathered.  Not collective. */
size_t dapt_checkpoint_peak_alloc(void);

/* Steps of the complete checkpoint files in DIR, ascending (*steps malloc'd).
 * Not collective. */
dapt_status dapt_checkpoint_list(const char *dir, int64_t **steps, size_t *n);

/* Removes from DIR only names the checkpoint functions create there: the
 * temporary files of an interrupted save ("step-%08lld.h5.tmp.<pid>",
 * "latest.tmp.<pid>") and, with everything, the checkpoints
 * ("step-%08lld.h5") and "latest"; any other name is left alone.  When DIR
 * is a symbolic link and holds such a name, nothing is removed and the
 * result is DAPT_ERR_EXISTS with one line naming DIR (dapt never deletes
 * through a link it did not make).  A missing DIR is fine.  Not collective. */
dapt_status dapt_checkpoint_clean(const char *dir, int everything);

/* ---- resuming: what may change between a checkpoint and the run resuming it
 * (resume_check.c, resume_log.c; docs/training.md, "Resuming") ---------- */

/* The commands that resume, as bits: which keys a command reads. */
enum { DAPT_RESUME_TRAIN = 1u, DAPT_RESUME_FINETUNE = 2u };

typedef enum dapt_resume_class {
    DAPT_RESUME_UNREAD = 0, /* the command does not read the key: never compared */
    DAPT_RESUME_REFUSED,    /* changes the run's mathematics: a change is refused */
    DAPT_RESUME_SAFE,       /* bookkeeping, outputs or the layout: a change is reported */
    DAPT_RESUME_LENGTH      /* the run's length: reported with how the schedule changes */
} dapt_resume_class;

/* The class of configuration key "section.key" for a command (one of the
 * bits above); *why (may be NULL) receives what the key stands for, or
 * NULL for a key the table does not list (such a key is refused: a new key
 * must be classified).  Not collective. */
dapt_resume_class dapt_resume_key_class(const char *key, unsigned command, const char **why);

/* The learning-rate schedule a configuration gives the resuming command
 * (for the notice on a LENGTH key). */
typedef dapt_status (*dapt_resume_schedule_fn)(const dapt_config *cfg, void *ctx, dapt_lr_schedule *out);

typedef struct dapt_resume_spec {
    unsigned command;                 /* DAPT_RESUME_TRAIN or DAPT_RESUME_FINETUNE */
    int override;                     /* --override-resume-check: refusals become warnings */
    int64_t step;                     /* the checkpoint's step: the next step's learning rate is reported */
    dapt_resume_schedule_fn schedule; /* NULL: the LENGTH notice names no learning rate */
    void *schedule_ctx;
} dapt_resume_spec;

/* Compares the configuration stored in checkpoint path (its root attribute
 * dapt_config) with cfg, key by key, for the keys spec->command reads: one
 * notice per changed SAFE or LENGTH key; a changed REFUSED key (or a stored
 * configuration this dapt cannot read) is DAPT_ERR_CONFIG with one line
 * naming the first such key, both values and --override-resume-check, the
 * others listed after it; with spec->override each is a warning instead.
 * Collective over comm (the file is opened with it); every rank returns the
 * same status. */
dapt_status dapt_resume_check(MPI_Comm comm, const char *path, const dapt_config *cfg, const dapt_resume_spec *spec);

/* The last value logged in column `column` of the CSV file path (a header
 * line, then rows whose first field is a step or an epoch): *value from the
 * last row whose first field is <= upto and whose column is not empty,
 * *key that row's first field.  A missing file, column or row gives NaN
 * and -1 (a finished run's log may have been removed).  Rank 0 of comm
 * reads the file.  Collective over comm. */
dapt_status dapt_resume_logged(MPI_Comm comm, const char *path, const char *column, int64_t upto, double *value,
                               int64_t *key);

#endif
