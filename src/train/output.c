/* The run directory of dapt train: refusing or clearing a previous run,
 * temporary files a killed writer left, and the metrics log OUT/metrics.csv
 * + OUT/metrics.jsonl (one row per step: the loop's columns, then the
 * objective's own). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/log.h"
#include "train_internal.h"

/* Removes checkpoints and the metrics log of an earlier run (everything),
 * and temporary files a killed writer left behind (always).  Leader only. */
static dapt_status clean_output(train_run *r, int everything)
{
    /* Only the names checkpoints create, never through a symbolic link. */
    DAPT_CHECK(dapt_checkpoint_clean(r->ckpt_dir, everything));
    return everything ? dapt_metrics_log_remove(&r->mlog) : DAPT_OK;
}

static dapt_status prepare_leader(train_run *r, const dapt_train_opts *opts)
{
    DAPT_CHECK(dapt_fs_mkdir_p(r->ckpt_dir));
    char latest[DAPT_CONFIG_STR_MAX + 32];
    snprintf(latest, sizeof latest, "%s/latest", r->ckpt_dir);
    int previous = dapt_fs_exists(r->mlog.csv) || dapt_fs_exists(latest);
    if (previous && !opts->resume && !opts->force)
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s holds a previous run (metrics.csv or checkpoints/latest): use --resume to continue it or --force to start afresh",
                          r->out);
    return clean_output(r, previous && !opts->resume);
}

dapt_status train_prepare_output(train_run *r, const dapt_train_opts *opts)
{
    return train_agree(r, train_leader(r) ? prepare_leader(r, opts) : DAPT_OK);
}

/* Keeps the header and the rows of steps <= step, in both files (resume).
 * Leader. */
dapt_status train_truncate_metrics(train_run *r, int64_t step) { return dapt_metrics_log_truncate(&r->mlog, step); }

/* Opens the metrics log for appending; a new file gets the header: the
 * loop's columns, then the objective's.  Leader. */
dapt_status train_open_metrics(train_run *r)
{
    if (!train_leader(r)) return DAPT_OK;
    static const char *const loop_columns[] = {"step", "loss", "lr", "grad_norm", "tokens_per_s", "eval_loss", "eval_ppl"};
    enum { NL = sizeof loop_columns / sizeof *loop_columns };
    const char *names[NL + DAPT_OBJ_MAX_COLUMNS];
    const size_t nl = NL, nc = dapt_objective_columns(r->obj);
    if (nc > DAPT_OBJ_MAX_COLUMNS)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "%zu objective metrics columns (at most %d)", nc, DAPT_OBJ_MAX_COLUMNS);
    memcpy(names, loop_columns, sizeof loop_columns);
    for (size_t i = 0; i < nc; i++) names[nl + i] = r->obj->ops->columns[i];
    return dapt_metrics_log_open(&r->mlog, names, nl + nc, 1);
}

/* One row: sr NULL for the step-0 evaluation row.  Leader. */
dapt_status train_metrics_row(train_run *r, int64_t step, const train_step_result *sr, double eval_loss)
{
    dapt_metrics_log *m = &r->mlog;
    dapt_metrics_log_field(m, "%lld", (long long)step);
    if (sr) {
        dapt_metrics_log_field(m, "%.9g", sr->loss);
        dapt_metrics_log_field(m, "%.9g", sr->lr);
        dapt_metrics_log_field(m, "%.9g", sr->grad_norm);
        dapt_metrics_log_field(m, "%.1f", sr->tokens_per_s);
    } else {
        for (int i = 0; i < 4; i++) dapt_metrics_log_empty(m);
    }
    if (isnan(eval_loss) && sr) {
        dapt_metrics_log_empty(m);
        dapt_metrics_log_empty(m);
    } else {
        dapt_metrics_log_field(m, "%.9g", eval_loss);
        dapt_metrics_log_field(m, "%.9g", exp(eval_loss));
    }
    const size_t nc = dapt_objective_columns(r->obj);
    for (size_t i = 0; i < nc; i++) {
        if (sr) dapt_metrics_log_field(m, "%.9g", sr->extra[i]);
        else dapt_metrics_log_empty(m);
    }
    return dapt_metrics_log_end_row(m);
}
