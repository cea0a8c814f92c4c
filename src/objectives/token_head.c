/* The binary token head of ATD / DTD: Linear(hidden, 2) and cross-entropy
 * over the labelled positions, as the reference's token classifier
 * (token_detection.h).  Small (2 outputs), so plain loops, in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dapt/model.h"
#include "token_detection.h"

dapt_status dapt_td_head(dapt_model *m, const char *prefix, const float *h, const int32_t *labels, int64_t n,
                         int64_t len, double denominator, float *dh, double *loss)
{
    char wn[64], bn[64];
    snprintf(wn, sizeof wn, "%s.weight", prefix);
    snprintf(bn, sizeof bn, "%s.bias", prefix);
    const float *W = dapt_model_param(m, wn), *b = dapt_model_param(m, bn);
    float *gW = dapt_model_grad(m, wn), *gb = dapt_model_grad(m, bn);
    if (!W || !b || (dh && (!gW || !gb))) return DAPT_ERROR(DAPT_ERR_INTERNAL, "token head: %s.* missing from the model", prefix);
    const int64_t H = m->config.hidden;
    if (dh) memset(dh, 0, (size_t)(n * len * H) * sizeof *dh);
    double sum = 0.0;
    if (denominator <= 0) denominator = 1.0; /* no labelled position anywhere: nothing to add */
    for (int64_t t = 0; t < n * len; t++) {
        const int32_t y = labels[t];
        if (y == DAPT_IGNORE_LABEL) continue;
        if (y != 0 && y != 1) return DAPT_ERROR(DAPT_ERR_INTERNAL, "token head: label %d is not 0 / 1", (int)y);
        const float *x = h + t * H;
        double z[2] = {b[0], b[1]};
        for (int64_t i = 0; i < H; i++) {
            z[0] += (double)W[i] * x[i];
            z[1] += (double)W[H + i] * x[i];
        }
        const double mx = z[0] > z[1] ? z[0] : z[1];
        const double lse = mx + log(exp(z[0] - mx) + exp(z[1] - mx));
        sum += lse - z[y];
        if (!dh) continue; /* loss only */
        /* d loss / d z = (softmax - onehot) / denominator */
        double g[2] = {exp(z[0] - lse), exp(z[1] - lse)};
        g[y] -= 1.0;
        g[0] /= denominator;
        g[1] /= denominator;
        gb[0] += (float)g[0];
        gb[1] += (float)g[1];
        float *d = dh + t * H;
        for (int64_t i = 0; i < H; i++) {
            gW[i] += (float)(g[0] * x[i]);
            gW[H + i] += (float)(g[1] * x[i]);
            d[i] = (float)(g[0] * W[i] + g[1] * W[H + i]);
        }
    }
    *loss = sum / denominator;
    return isfinite(*loss) ? DAPT_OK : DAPT_ERROR(DAPT_ERR_NUMERIC, "token head: non-finite loss");
}
