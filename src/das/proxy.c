/* The KL robustness proxy of DGA/DAS over the token axis, in either
 * direction, with the gradient with respect to either argument. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"

const char *dapt_kl_direction_name(dapt_kl_direction d)
{
    return d == DAPT_KL_STUDENT_TEACHER ? "student_teacher" : "teacher_student";
}

dapt_status dapt_token_kl_loss(const float *student, const float *teacher, const int32_t *mask, int64_t batch,
                               int64_t seq_len, int64_t hidden, double temperature, double *loss,
                               float *d_student)
{
    return dapt_token_kl_loss_ex(student, teacher, mask, batch, seq_len, hidden, temperature,
                                 DAPT_KL_TEACHER_STUDENT, loss, d_student, NULL);
}

dapt_status dapt_token_kl_loss_ex(const float *student, const float *teacher, const int32_t *mask, int64_t batch,
                                  int64_t seq_len, int64_t hidden, double temperature, dapt_kl_direction dir,
                                  double *loss, float *d_student, float *d_teacher)
{
    if (!(temperature > 0)) return DAPT_ERROR(DAPT_ERR_ARG, "KL proxy: temperature %g must be positive", temperature);
    if (batch <= 0 || seq_len <= 0 || hidden <= 0)
        return DAPT_ERROR(DAPT_ERR_ARG, "KL proxy: bad sizes %lld x %lld x %lld", (long long)batch,
                          (long long)seq_len, (long long)hidden);
    if (dir != DAPT_KL_TEACHER_STUDENT && dir != DAPT_KL_STUDENT_TEACHER)
        return DAPT_ERROR(DAPT_ERR_ARG, "KL proxy: unknown direction %d", (int)dir);
    double *ps = NULL, *pt = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_alloc((void **)&ps, sizeof(double) * (size_t)seq_len, "KL softmax"));
    DAPT_TRY(dapt_alloc((void **)&pt, sizeof(double) * (size_t)seq_len, "KL softmax"));
    const size_t total_n = (size_t)(batch * seq_len * hidden);
    if (d_student) memset(d_student, 0, sizeof(float) * total_n);
    if (d_teacher) memset(d_teacher, 0, sizeof(float) * total_n);
    const int st_dir = dir == DAPT_KL_STUDENT_TEACHER;
    const double T = temperature, scale = T * T / (double)batch;
    double total = 0;
    for (int64_t b = 0; b < batch; b++) {
        const int32_t *m = mask ? mask + b * seq_len : NULL;
        for (int64_t k = 0; k < hidden; k++) {
            /* Column k of sample b, over the sequence: two stable softmaxes. */
            double top_s = -INFINITY, top_t = -INFINITY;
            for (int64_t s = 0; s < seq_len; s++) {
                if (m && !m[s]) continue;
                size_t at = (size_t)((b * seq_len + s) * hidden + k);
                top_s = fmax(top_s, student[at] / T);
                top_t = fmax(top_t, teacher[at] / T);
            }
            if (top_s == -INFINITY) continue; /* a row of padding only */
            double zs = 0, zt = 0;
            for (int64_t s = 0; s < seq_len; s++) {
                if (m && !m[s]) continue;
                size_t at = (size_t)((b * seq_len + s) * hidden + k);
                ps[s] = exp(student[at] / T - top_s);
                pt[s] = exp(teacher[at] / T - top_t);
                zs += ps[s];
                zt += pt[s];
            }
            const double log_zs = log(zs), log_zt = log(zt);
            /* This column's KL (the gradient of the softmax that is the KL's
             * first argument needs it): KL(p||q) = sum p (log p - log q). */
            double col = 0;
            for (int64_t s = 0; s < seq_len; s++) {
                if (m && !m[s]) continue;
                size_t at = (size_t)((b * seq_len + s) * hidden + k);
                double log_ps = student[at] / T - top_s - log_zs, log_pt = teacher[at] / T - top_t - log_zt;
                double p_t = pt[s] / zt, p_s = ps[s] / zs;
                if (!st_dir) {
                    if (p_t > 0) total += p_t * (log_pt - log_ps);
                    if (p_t > 0) col += p_t * (log_pt - log_ps);
                    /* d/dy_s of T^2/B * KL(p_t || p_s) = T/B * (p_s - p_t). */
                    if (d_student) d_student[at] = (float)(scale / T * (p_s - p_t));
                } else {
                    if (p_s > 0) total += p_s * (log_ps - log_pt);
                    if (p_s > 0) col += p_s * (log_ps - log_pt);
                    /* d/dy_t of T^2/B * KL(p_s || p_t) = T/B * (p_t - p_s). */
                    if (d_teacher) d_teacher[at] = (float)(scale / T * (p_t - p_s));
                }
            }
            /* The first argument p = softmax(x / T) of KL(p || q):
             * d/dx_s = T/B * p_s (log p_s - log q_s - KL(p || q)). */
            float *d_first = st_dir ? d_student : d_teacher;
            if (!d_first) continue;
            for (int64_t s = 0; s < seq_len; s++) {
                if (m && !m[s]) continue;
                size_t at = (size_t)((b * seq_len + s) * hidden + k);
                double log_ps = student[at] / T - top_s - log_zs, log_pt = teacher[at] / T - top_t - log_zt;
                double p = st_dir ? ps[s] / zs : pt[s] / zt;
                double d = st_dir ? log_ps - log_pt : log_pt - log_ps;
                d_first[at] = (float)(scale / T * p * (d - col));
            }
        }
    }
    *loss = total * scale;
cleanup:
    free(ps);
    free(pt);
    return st;
}
