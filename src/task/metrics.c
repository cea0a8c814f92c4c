/* Classification metrics from a confusion matrix (see dapt/task.h for the
 * conventions, which are scikit-learn's with zero_division = 0). */
#include <stdlib.h>
#include <string.h>

#include "dapt/task.h"

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

dapt_status dapt_cls_metrics_get(const dapt_cls_metrics *m, const char *name, double *value)
{
    if (!strcmp(name, "accuracy")) *value = m->accuracy;
    else if (!strcmp(name, "macro_f1")) *value = m->macro_f1;
    else if (!strcmp(name, "micro_f1")) *value = m->micro_f1;
    else if (!strcmp(name, "weighted_f1")) *value = m->weighted_f1;
    else return DAPT_ERROR(DAPT_ERR_CONFIG, "unknown metric '%s' (accuracy, macro_f1, micro_f1, weighted_f1)", name);
    return DAPT_OK;
}
