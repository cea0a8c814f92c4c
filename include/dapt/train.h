/* dapt train: the data-parallel post-training loop.
 *
 * One optimizer step s:
 *   1. the ranks agree whether a stop signal arrived (preempt.h: SIGTERM,
 *      SIGUSR1, SIGINT); if so they write a checkpoint and return
 *      DAPT_ERR_INTERRUPTED;
 *   2. global batch = global samples [s*B, (s+1)*B) of the epoch
 *      permutations (batches.h); data rank d takes a contiguous block and
 *      reads only those sequences, split into train.grad_accum micro-batches;
 *   3. the objective's prepare hook corrupts the rows (MLM: masks keyed by
 *      (seed, step s, global sample), mlm.h) and returns the local parts of
 *      its denominators (MLM: masked tokens); the loop sums them over the
 *      data ranks before any forward, so the loss (e.g. the sum over all
 *      masked tokens of the global batch / their global count) and its
 *      gradient do not depend on the number of ranks or micro-batches;
 *   4. the objective's micro_step runs forward/backward per micro-batch, its
 *      step_end once per step; gradients are summed over the data
 *      communicator (dapt_grad_allreduce, optim.h);
 *   5. objective transform_grads, global-norm clipping, a NaN/Inf check
 *      (a non-finite loss or gradient norm skips the update, counted; after
 *      train.max_bad_steps in a row the run stops naming the rank and step),
 *      AdamW with the learning-rate schedule;
 *   6. every train.log_every steps a progress line; every step a row of
 *      OUT/metrics.csv (the loop's columns, then the objective's: e.g. each
 *      term of the loss); every train.eval_every steps held-out MLM loss and
 *      perplexity with fixed masks; every checkpoint.every steps and at the
 *      end a checkpoint (checkpoint.h).
 *
 * The loop knows the method only through dapt/objective.h (src/objectives/):
 * it never names one.  Continual domains (continual.domains / corpora): each
 * domain is a run of its own in OUT/<domain>/ (checkpoints, metrics.csv,
 * model.h5 when finished), starting from the base model (objectives flagged
 * DAPT_OBJ_FROM_BASE, and domain 0) or the previous domain's model; what a
 * method carries between domains (importance, a teacher, a Fisher diagonal)
 * lives in the objective (src/train/continual.c). */
#ifndef DAPT_TRAIN_H
#define DAPT_TRAIN_H

#include <mpi.h>
#include <stdint.h>

#include "dapt/batches.h"
#include "dapt/config.h"
#include "dapt/mlm.h"
#include "dapt/model.h"
#include "dapt/status.h"

typedef struct dapt_train_opts {
    int resume; /* continue from OUT/checkpoints/latest */
    int force;  /* start afresh in an OUT that holds a previous run */
    int override_resume_check; /* --override-resume-check: a changed key --resume refuses is only a warning */
} dapt_train_opts;

typedef struct dapt_train_result {
    int64_t steps_done;    /* optimizer steps completed at return */
    int64_t bad_steps;     /* steps skipped for NaN/Inf in this process's run */
    double last_loss;      /* training loss of the last step */
    double last_eval_loss; /* NaN when no evaluation ran */
    int agreed;            /* on failure: 1 if every rank returned it together */
    int complete;          /* --resume found every step done: nothing was trained */
    int64_t steps_total;   /* train.steps (when complete) */
    int64_t last_loss_step; /* the metrics.csv row last_loss comes from (when complete; -1: none) */
} dapt_train_result;

/* Runs training as configured.  Collective over MPI_COMM_WORLD.  Returns
 * DAPT_ERR_INTERRUPTED (on every rank) after a preemption checkpoint. */
dapt_status dapt_train_run(const dapt_config *cfg, const dapt_train_opts *opts, dapt_train_result *res);

/* Writes DIR/heldout.h5 (format "dapt-heldout", docs/formats.md): the rule
 * that chose the held-out documents with its parameters, the held-out
 * documents and the first document of every held-out sequence, and how many
 * of those sequences the held-out loss evaluates (the first `evaluated`).
 * Creates DIR if missing; replaces an older heldout.h5 (a resumed run
 * writes the same content).  Collective over comm. */
dapt_status dapt_heldout_write(MPI_Comm comm, const char *dir, const dapt_config *cfg, const dapt_sequences *seqs,
                               int64_t evaluated);

/* The held-out MLM loss of model m: the first `want` held-out sequences of
 * seqs (fewer if it has fewer), spread over comm, in forwards of `batch`
 * rows (ws: a workspace for them, or NULL to make one), masks keyed (seed,
 * step = 2^64 - 1, held-out index) so every evaluation sees the same ones.
 * *loss = sum over masked tokens / their number (NaN when there are none or
 * a forward was not finite); *masked = that number.  Used by dapt train and
 * dapt eval --corpus.  Collective over comm. */
dapt_status dapt_heldout_mlm_loss(MPI_Comm comm, const dapt_model *m, dapt_workspace *ws, dapt_sequences *seqs,
                                  const dapt_mlm_spec *mlm, uint64_t seed, int64_t want, int64_t batch,
                                  double *loss, int64_t *masked);

#endif
