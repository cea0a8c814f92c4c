/* The ops tables the registry lists, and what several objectives share.
 * Internal to src/objectives. */
#ifndef DAPT_OBJECTIVES_INTERNAL_H
#define DAPT_OBJECTIVES_INTERNAL_H

#include "dapt/objective.h"

extern const dapt_objective_ops dapt_objective_mlm, dapt_objective_one; /* mlm.c */
extern const dapt_objective_ops dapt_objective_kd;                      /* kd.c */
extern const dapt_objective_ops dapt_objective_ewc;                     /* ewc.c */
extern const dapt_objective_ops dapt_objective_dga, dapt_objective_das; /* das.c */
extern const dapt_objective_ops dapt_objective_cls;                     /* cls.c */
extern const dapt_objective_ops dapt_objective_smart;                   /* smart.c */
extern const dapt_objective_ops dapt_objective_atd, dapt_objective_dtd; /* token_detection.c */
extern const dapt_objective_ops dapt_objective_cse;                     /* cse.c */
extern const dapt_objective_ops dapt_objective_emlm;                    /* emlm.c */
extern const dapt_objective_ops dapt_objective_mometas;                 /* sampler.c */

/* Masks every row of a block with spec (dapt_mlm_mask keyed by (seed,
 * key_step, global sample)), or with dapt_mlm_mask_guided when guide is not
 * NULL; local_denominators[0] = selected positions.  Not collective. */
void dapt_objective_mask_rows(const dapt_objective_ctx *ctx, const dapt_mlm_spec *spec, const uint8_t *guide,
                              dapt_rows *blk, double *local_denominators);

/* dapt_objective_mask_rows with ctx->mlm (the MLM objective's prepare hook). */
dapt_status dapt_objective_mlm_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk,
                                       double *local_denominators);

#endif
