/* The objective sampler of MOMETAS (sampler.c): which objective a step
 * trains, and the meta-learned update of its logits z (Wu et al. 2022;
 * gingasan/mometas run_pretraining.py, class Mometas).  Pure functions,
 * internal to src/objectives; nothing here is collective. */
#ifndef DAPT_OBJECTIVES_SAMPLER_H
#define DAPT_OBJECTIVES_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* Objectives a sampler draws from, at most. */
#define DAPT_SAMPLER_MAX 8

/* The objective drawn at a step from logits z[0..K): the hard Gumbel-max
 * argmax_i z_i - log(-log u_i), u_i = dapt_rng_uniform_double(
 * dapt_rng_make(seed, DAPT_RNG_OBJECTIVE, step), sample 0, position i): a
 * draw from softmax(z) keyed by (seed, step) only, the same on every rank. */
size_t dapt_sampler_draw(const double *z, size_t K, uint64_t seed, uint64_t step);

/* p = softmax(z). */
void dapt_sampler_probs(const double *z, size_t K, double *p);

/* Sum over the objectives of max((old - new) / old, -1), a term being 0
 * when |old - new| <= threshold (or old is 0). */
double dapt_sampler_reward(const double *old_loss, const double *new_loss, size_t K, double threshold);

/* One gradient step z -= lr * d/dz [ -reward * sum_t log p(a_t) - gamma * H(p) ]
 * over a rollout in which objective i was drawn counts[i] times (T in all):
 *   d/dz_i = -reward (counts_i - T p_i) + gamma p_i (log p_i + H(p)). */
void dapt_sampler_update(double *z, size_t K, const int64_t *counts, double reward, double lr, double gamma);

#endif
