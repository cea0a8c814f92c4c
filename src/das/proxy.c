/* The KL robustness proxy of DGA/DAS over the token axis. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"

dapt_status dapt_token_kl_loss(const float *student, const float *teacher, const int32_t *mask, int64_t batch,
                               int64_t seq_len, int64_t hidden, double temperature, double *loss,
                               float *d_student)
{
    if (!(temperature > 0)) return DAPT_ERROR(DAPT_ERR_ARG, "KL proxy: temperature %g must be positive", temperature);
    if (batch <= 0 || seq_len <= 0 || hidden <= 0)
        return DAPT_ERROR(DAPT_ERR_ARG, "KL proxy: bad sizes %lld x %lld x %lld", (long long)batch,
                          (long long)seq_len, (long long)hidden);
    double *ps = NULL, *pt = NULL;
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_alloc((void **)&ps, sizeof(double) * (size_t)seq_len, "KL softmax"));
    DAPT_TRY(dapt_alloc((void **)&pt, sizeof(double) * (size_t)seq_len, "KL softmax"));
    if (d_student) memset(d_student, 0, sizeof(float) * (size_t)(batch * seq_len * hidden));
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
            double log_zs = log(zs), log_zt = log(zt);
            for (int64_t s = 0; s < seq_len; s++) {
                if (m && !m[s]) continue;
                size_t at = (size_t)((b * seq_len + s) * hidden + k);
                double log_ps = student[at] / T - top_s - log_zs, log_pt = teacher[at] / T - top_t - log_zt;
                double p_t = pt[s] / zt, p_s = ps[s] / zs;
                if (p_t > 0) total += p_t * (log_pt - log_ps);
                /* d/dy_s of T^2/B * KL = T/B * (p_s - p_t). */
                if (d_student) d_student[at] = (float)(scale / T * (p_s - p_t));
            }
        }
    }
    *loss = total * scale;
cleanup:
    free(ps);
    free(pt);
    return st;
}
