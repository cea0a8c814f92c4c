/* The sampler's draw, reward and REINFORCE + entropy step on the logits
 * (sampler.h).  The gradient is the closed form of the reference's
 * autograd (run_pretraining.py, Mometas.update), checked against PyTorch
 * by tests/objectives/test_sampler. */
#include <math.h>

#include "dapt/rng.h"
#include "sampler.h"

size_t dapt_sampler_draw(const double *z, size_t K, uint64_t seed, uint64_t step)
{
    const dapt_rng r = dapt_rng_make(seed, DAPT_RNG_OBJECTIVE, step);
    size_t best = 0;
    double top = -INFINITY;
    for (size_t i = 0; i < K; i++) {
        const double u = dapt_rng_uniform_double(&r, 0, i);
        /* u = 0 gives -inf: that objective is not drawn (chance 2^-53). */
        const double v = z[i] - log(-log(u));
        if (v > top) {
            top = v;
            best = i;
        }
    }
    return best;
}

void dapt_sampler_probs(const double *z, size_t K, double *p)
{
    double top = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < K; i++) top = z[i] > top ? z[i] : top;
    for (size_t i = 0; i < K; i++) sum += p[i] = exp(z[i] - top);
    for (size_t i = 0; i < K; i++) p[i] /= sum;
}

double dapt_sampler_reward(const double *old_loss, const double *new_loss, size_t K, double threshold)
{
    double reward = 0.0;
    for (size_t i = 0; i < K; i++) {
        const double d = old_loss[i] - new_loss[i];
        if (fabs(d) <= threshold || old_loss[i] == 0.0) continue;
        const double r = d / old_loss[i];
        reward += r > -1.0 ? r : -1.0;
    }
    return reward;
}

void dapt_sampler_update(double *z, size_t K, const int64_t *counts, double reward, double lr, double gamma)
{
    double p[DAPT_SAMPLER_MAX], lp[DAPT_SAMPLER_MAX], H = 0.0;
    int64_t T = 0;
    if (K > DAPT_SAMPLER_MAX) K = DAPT_SAMPLER_MAX; /* create refuses more */
    dapt_sampler_probs(z, K, p);
    for (size_t i = 0; i < K; i++) {
        lp[i] = p[i] > 0.0 ? log(p[i]) : 0.0; /* p log p -> 0 */
        H -= p[i] * lp[i];
        T += counts[i];
    }
    for (size_t i = 0; i < K; i++) {
        const double g = -reward * ((double)counts[i] - (double)T * p[i]) + gamma * p[i] * (lp[i] + H);
        z[i] -= lr * g;
    }
}
