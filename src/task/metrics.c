/* Classification metrics from a confusion matrix (see dapt/task.h for the
 * conventions, which are scikit-learn's with zero_division = 0), regression
 * metrics (scipy's Pearson and Spearman), and the names finetune.metric
 * selects by. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/task.h"
#include "task_internal.h"

dapt_status dapt_cls_metrics_init(dapt_cls_metrics *m, int64_t n_labels)
{
    memset(m, 0, sizeof *m);
    if (n_labels < 1) return DAPT_ERROR(DAPT_ERR_ARG, "metrics need at least one class (got %lld)", (long long)n_labels);
    m->n_labels = n_labels;
    const size_t C = (size_t)n_labels;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_calloc((void **)&m->confusion, C * C, sizeof *m->confusion, "confusion matrix"));
    DAPT_TRY(dapt_calloc((void **)&m->support, C, sizeof *m->support, "class support"));
    DAPT_TRY(dapt_calloc((void **)&m->predicted, C, sizeof *m->predicted, "class predictions"));
    DAPT_TRY(dapt_calloc((void **)&m->precision, C, sizeof *m->precision, "precision"));
    DAPT_TRY(dapt_calloc((void **)&m->recall, C, sizeof *m->recall, "recall"));
    DAPT_TRY(dapt_calloc((void **)&m->f1, C, sizeof *m->f1, "F1"));
    return DAPT_OK;
cleanup:
    dapt_cls_metrics_free(m);
    return st;
}

void dapt_cls_metrics_free(dapt_cls_metrics *m)
{
    free(m->confusion);
    free(m->support);
    free(m->predicted);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    memset(m, 0, sizeof *m);
}

dapt_status dapt_cls_metrics_add(dapt_cls_metrics *m, int32_t truth, int32_t prediction)
{
    if (truth < 0 || truth >= m->n_labels || prediction < 0 || prediction >= m->n_labels)
        return DAPT_ERROR(DAPT_ERR_ARG, "metrics: label %d / prediction %d outside 0..%lld", truth, prediction,
                          (long long)m->n_labels - 1);
    m->confusion[(int64_t)truth * m->n_labels + prediction]++;
    m->total++;
    return DAPT_OK;
}

dapt_status dapt_cls_metrics_allreduce(dapt_cls_metrics *m, MPI_Comm comm)
{
    const int64_t C2 = m->n_labels * m->n_labels;
    if (C2 > 0x7fffffff) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%lld classes are too many to reduce", (long long)m->n_labels);
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, m->confusion, (int)C2, MPI_INT64_T, MPI_SUM, comm)));
    m->total = 0;
    for (int64_t i = 0; i < C2; i++) m->total += m->confusion[i];
    return DAPT_OK;
}

static double ratio(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

void dapt_cls_metrics_finish(dapt_cls_metrics *m)
{
    const int64_t C = m->n_labels;
    int64_t correct = 0;
    m->total = 0;
    for (int64_t k = 0; k < C; k++) m->support[k] = m->predicted[k] = 0;
    for (int64_t t = 0; t < C; t++)
        for (int64_t p = 0; p < C; p++) {
            const int64_t n = m->confusion[t * C + p];
            m->support[t] += n;
            m->predicted[p] += n;
            m->total += n;
            if (t == p) correct += n;
        }
    double sp = 0, sr = 0, sf = 0, wf = 0;
    m->n_averaged = 0;
    for (int64_t k = 0; k < C; k++) {
        const int64_t tp = m->confusion[k * C + k];
        m->precision[k] = ratio(tp, m->predicted[k]);
        m->recall[k] = ratio(tp, m->support[k]);
        const double s = m->precision[k] + m->recall[k];
        m->f1[k] = s > 0 ? 2.0 * m->precision[k] * m->recall[k] / s : 0.0;
        wf += m->f1[k] * (double)m->support[k];
        if (m->support[k] == 0 && m->predicted[k] == 0) continue; /* absent from both: not averaged */
        m->n_averaged++;
        sp += m->precision[k];
        sr += m->recall[k];
        sf += m->f1[k];
    }
    const double na = m->n_averaged > 0 ? (double)m->n_averaged : 1.0;
    m->macro_precision = sp / na;
    m->macro_recall = sr / na;
    m->macro_f1 = sf / na;
    m->weighted_f1 = m->total > 0 ? wf / (double)m->total : 0.0;
    m->accuracy = ratio(correct, m->total);
    /* Single-label: every error is one false positive and one false
     * negative, so micro precision = micro recall = micro F1 = accuracy. */
    m->micro_f1 = m->accuracy;
}

/* ---- regression ------------------------------------------------------------- */

static double pearson(const double *x, const double *y, int64_t n)
{
    double mx = 0.0, my = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0.0, sxx = 0.0, syy = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0.0 || syy <= 0.0) return NAN;
    return sxy / sqrt(sxx * syy);
}

typedef struct ranked {
    double v;
    int64_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* 1-based ranks of v in r, ties sharing the mean of their ranks. */
static void average_ranks(const double *v, int64_t n, ranked *tmp, double *r)
{
    for (int64_t i = 0; i < n; i++) tmp[i] = (ranked){v[i], i};
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_ranked);
    for (int64_t a = 0; a < n;) {
        int64_t b = a;
        while (b + 1 < n && tmp[b + 1].v == tmp[a].v) b++;
        const double mean = 0.5 * (double)(a + b) + 1.0;
        for (int64_t k = a; k <= b; k++) r[tmp[k].i] = mean;
        a = b + 1;
    }
}

dapt_status dapt_reg_metrics_compute(const float *truth, const float *prediction, int64_t n, dapt_reg_metrics *r)
{
    memset(r, 0, sizeof *r);
    if (n < 1) return DAPT_ERROR(DAPT_ERR_ARG, "regression metrics need at least one example");
    double *buf = NULL;
    ranked *tmp = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_alloc((void **)&buf, (size_t)n * 4 * sizeof *buf, "regression metrics"));
    DAPT_TRY(dapt_alloc((void **)&tmp, (size_t)n * sizeof *tmp, "regression ranks"));
    double *y = buf, *p = buf + n, *ry = buf + 2 * n, *rp = buf + 3 * n, se = 0.0, ae = 0.0;
    for (int64_t i = 0; i < n; i++) {
        y[i] = truth[i];
        p[i] = prediction[i];
        se += (p[i] - y[i]) * (p[i] - y[i]);
        ae += fabs(p[i] - y[i]);
    }
    r->n = n;
    r->mse = se / (double)n;
    r->rmse = sqrt(r->mse);
    r->mae = ae / (double)n;
    r->pearson = pearson(p, y, n);
    average_ranks(y, n, tmp, ry);
    average_ranks(p, n, tmp, rp);
    r->spearman = pearson(rp, ry, n);
cleanup:
    free(buf);
    free(tmp);
    return st;
}

/* ---- metric names ----------------------------------------------------------- */

static const char *const CLS_METRICS[] = {"accuracy", "macro_f1", "micro_f1", "weighted_f1", NULL};
static const char *const REG_METRICS[] = {"mse", "rmse", "mae", "pearson", "spearman", NULL};

static int listed(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (!strcmp(*list, name)) return 1;
    return 0;
}

/* "auto" resolved for the kind of task. */
static const char *resolve(int regression, const char *name)
{
    return strcmp(name, "auto") ? name : regression ? "mse" : "macro_f1";
}

/* The one-line refusal of a name that is unknown or of the other kind. */
static dapt_status check_name(int regression, const char *name, const char *task)
{
    const char *n = resolve(regression, name);
    if (listed(regression ? REG_METRICS : CLS_METRICS, n)) return DAPT_OK;
    if (listed(regression ? CLS_METRICS : REG_METRICS, n))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "finetune.metric = %s is a %s metric but %s is a %s task (use %s)", n,
                          regression ? "classification" : "regression", task, regression ? "regression" : "classification",
                          regression ? "mse, rmse, mae, pearson or spearman" : "accuracy, macro_f1, micro_f1 or weighted_f1");
    return DAPT_ERROR(DAPT_ERR_CONFIG, "unknown metric '%s' (accuracy, macro_f1, micro_f1, weighted_f1; mse, rmse, mae, pearson, spearman)",
                      name);
}

dapt_status dapt_task_metric_check(const dapt_task_file *t, const char *name)
{
    return check_name(t->regression, name, t->path);
}

dapt_status dapt_cls_metrics_get(const dapt_cls_metrics *m, const char *name, double *value)
{
    DAPT_CHECK(check_name(m->regression, name, "the evaluated"));
    const char *n = resolve(m->regression, name);
    if (!strcmp(n, "accuracy")) *value = m->accuracy;
    else if (!strcmp(n, "macro_f1")) *value = m->macro_f1;
    else if (!strcmp(n, "micro_f1")) *value = m->micro_f1;
    else if (!strcmp(n, "weighted_f1")) *value = m->weighted_f1;
    else if (!strcmp(n, "mse")) *value = m->reg.mse;
    else if (!strcmp(n, "rmse")) *value = m->reg.rmse;
    else if (!strcmp(n, "mae")) *value = m->reg.mae;
    else if (!strcmp(n, "pearson")) *value = m->reg.pearson;
    else *value = m->reg.spearman;
    return DAPT_OK;
}

int dapt_metric_improves(const dapt_cls_metrics *m, const char *name, double value, double best, int have_best)
{
    if (isnan(value)) return 0;
    if (!have_best || isnan(best)) return 1;
    const char *n = resolve(m->regression, name);
    const int lower = !strcmp(n, "mse") || !strcmp(n, "rmse") || !strcmp(n, "mae");
    return lower ? value < best : value > best;
}

dapt_status dapt_task_check_finetune(const dapt_task_file *t, const char *metric)
{
    if (!t->regression && t->n_labels == 1)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s has one class label ('%s'): nothing to classify (for numeric targets prepare it with --regression)",
                          t->path, t->label_names[0]);
    return dapt_task_metric_check(t, metric);
}

size_t task_metrics_columns(int regression, const char **names)
{
    static const char *const cls[] = {"epoch", "step", "train_loss", "lr", "dev_loss", "dev_accuracy", "dev_macro_f1",
                                      "dev_micro_f1", "dev_weighted_f1", "best", "seconds"};
    static const char *const reg[] = {"epoch", "step", "train_loss", "lr", "dev_loss", "dev_mse", "dev_rmse",
                                      "dev_mae", "dev_pearson", "dev_spearman", "best", "seconds"};
    const size_t n = regression ? sizeof reg / sizeof *reg : sizeof cls / sizeof *cls;
    memcpy(names, regression ? reg : cls, n * sizeof *names);
    return n;
}

void task_metrics_dev_fields(dapt_metrics_log *log, int regression, const dapt_cls_metrics *m, double dev_loss)
{
    const double cls[] = {dev_loss, m ? m->accuracy : 0, m ? m->macro_f1 : 0, m ? m->micro_f1 : 0,
                          m ? m->weighted_f1 : 0};
    const double reg[] = {dev_loss, m ? m->reg.mse : 0, m ? m->reg.rmse : 0, m ? m->reg.mae : 0,
                          m ? m->reg.pearson : 0, m ? m->reg.spearman : 0};
    const size_t n = regression ? sizeof reg / sizeof *reg : sizeof cls / sizeof *cls;
    for (size_t i = 0; i < n; i++) {
        if (m) dapt_metrics_log_field(log, "%.9g", regression ? reg[i] : cls[i]);
        else dapt_metrics_log_empty(log);
    }
}
