/* The DGA / DAS objective's state (das.c: the step; das_domains.c: what
 * carries from one domain to the next).  Internal to src/objectives. */
#ifndef DAPT_DAS_STATE_H
#define DAPT_DAS_STATE_H

#include "dapt/das.h"
#include "objectives.h"

#define DAS_MAX_DOMAINS 32
#define DAS_MAX_SOURCES (2 * DAS_MAX_DOMAINS + 1)

typedef struct das_reps {
    char name[128];
    int64_t step, first, rows, total;
    float *z1, *z3;
    int64_t *docs;
} das_reps;

typedef struct das_state {
    const dapt_config *base; /* the run's configuration (stored in the shared files) */
    int all_units;           /* das: heads + FFN units, continual; dga: heads, each domain from the base */
    dapt_softmask_style style;
    int forward_mask;
    int update_space;        /* das.softmask_space = update */
    int mask_decay;          /* das.mask_decay (gradient space) */
    float *scale;            /* (1 - importance) per parameter element, this domain */
    double lambda, tau;
    /* across domains */
    char names[DAS_MAX_DOMAINS][128]; /* the domains seen so far, in order */
    dapt_importance_source src[DAS_MAX_SOURCES];
    size_t nsrc;
    dapt_importance_mask_entry masks[DAS_MAX_DOMAINS];
    float *mask_arr[DAS_MAX_DOMAINS][DAPT_UNIT_KINDS];
    size_t nmask;
    das_reps reps[DAS_MAX_DOMAINS];
    size_t nrep;
    const float *importance[DAPT_UNIT_KINDS]; /* this domain's soft-mask; NULL kinds are not used */
    /* this domain's step buffers */
    dapt_workspace *ws_view[3]; /* one micro-batch: z1 in the loop's workspace, z2, z3 here ([1], [2]) */
    dapt_workspace *ws_fwd;     /* several micro-batches: forward-only */
    float *z[3], *dz[3];        /* [rows this rank holds in a step, hidden] */
    float *dh;                  /* [micro_max, seq_len, hidden] */
    int64_t rows_cap;
    double term[2];             /* this rank's shares of the data (MLM) and contrastive terms */
    dapt_objective lm;          /* das.lm_objective when it is not mlm (ops NULL: the built-in MLM term) */
} das_state;

/* das_domains.c: the importance and soft-mask of the domain about to train
 * (begin), of a domain finished earlier (resume), and what a finished
 * domain leaves (end: its importance, representations). */
dapt_status das_domain_begin(das_state *s, dapt_objective_ctx *ctx);
dapt_status das_domain_resume(das_state *s, dapt_objective_ctx *ctx);
dapt_status das_domain_end(das_state *s, dapt_objective_ctx *ctx);
void das_domains_free(das_state *s);

#endif
