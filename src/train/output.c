/* The run directory of dapt train: refusing or clearing a previous run,
 * temporary files a killed writer left, and OUT/metrics.csv (one row per
 * step: the loop's columns, then the objective's own). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/log.h"
#include "train_internal.h"

/* Removes checkpoints and metrics of an earlier run (everything), and
 * temporary files a killed writer left behind (always).  Leader only. */
static dapt_status clean_output(train_run *r, int everything)
{
    /* Only the names checkpoints create, never through a symbolic link. */
    DAPT_CHECK(dapt_checkpoint_clean(r->ckpt_dir, everything));
    if (everything && unlink(r->metrics) != 0 && errno != ENOENT)
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot remove: %s", r->metrics, strerror(errno));
    return DAPT_OK;
}

static dapt_status prepare_leader(train_run *r, const dapt_train_opts *opts)
{
    DAPT_CHECK(dapt_fs_mkdir_p(r->ckpt_dir));
    char latest[DAPT_CONFIG_STR_MAX + 32];
    snprintf(latest, sizeof latest, "%s/latest", r->ckpt_dir);
    int previous = dapt_fs_exists(r->metrics) || dapt_fs_exists(latest);
    if (previous && !opts->resume && !opts->force)
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s holds a previous run (metrics.csv or checkpoints/latest): use --resume to continue it or --force to start afresh",
                          r->out);
    return clean_output(r, previous && !opts->resume);
}

dapt_status train_prepare_output(train_run *r, const dapt_train_opts *opts)
{
    return train_agree(r, train_leader(r) ? prepare_leader(r, opts) : DAPT_OK);
}

/* Keeps the header and the rows of steps <= step (resume).  Leader. */
dapt_status train_truncate_metrics(train_run *r, int64_t step) { return dapt_fs_csv_truncate(r->metrics, step); }

/* Opens metrics.csv for appending; a new file gets the header.  Leader. */
dapt_status train_open_metrics(train_run *r)
{
    if (!train_leader(r)) return DAPT_OK;
    int fresh = !dapt_fs_exists(r->metrics);
    r->metrics_fp = fopen(r->metrics, "a");
    if (!r->metrics_fp) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open for writing: %s", r->metrics, strerror(errno));
    if (fresh) {
        fprintf(r->metrics_fp, "step,loss,lr,grad_norm,tokens_per_s,eval_loss,eval_ppl");
        for (size_t i = 0; r->obj->ops->columns && r->obj->ops->columns[i]; i++)
            fprintf(r->metrics_fp, ",%s", r->obj->ops->columns[i]);
        fputc('\n', r->metrics_fp);
    }
    if (fflush(r->metrics_fp) != 0)
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot write: %s", r->metrics, strerror(errno));
    return DAPT_OK;
}

/* One row: sr NULL for the step-0 evaluation row.  A failed write (a full
 * disk) is an error, not a silent gap.  Leader. */
dapt_status train_metrics_row(train_run *r, int64_t step, const train_step_result *sr, double eval_loss)
{
    FILE *fp = r->metrics_fp;
    if (!fp) return DAPT_OK;
    fprintf(fp, "%lld", (long long)step);
    if (sr)
        fprintf(fp, ",%.9g,%.9g,%.9g,%.1f", sr->loss, sr->lr, sr->grad_norm, sr->tokens_per_s);
    else
        fprintf(fp, ",,,,");
    if (isnan(eval_loss) && sr) fprintf(fp, ",,");
    else fprintf(fp, ",%.9g,%.9g", eval_loss, exp(eval_loss));
    const size_t nc = dapt_objective_columns(r->obj);
    for (size_t i = 0; i < nc; i++) {
        if (sr) fprintf(fp, ",%.9g", sr->extra[i]);
        else fputc(',', fp);
    }
    fputc('\n', fp);
    if (fflush(fp) != 0 || ferror(fp))
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot write: %s", r->metrics, strerror(errno));
    return DAPT_OK;
}
