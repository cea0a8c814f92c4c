/* SMART's numerical pieces (src/objectives/smart.c), internal to
 * src/objectives and its tests.  Shapes: logits [rows, k], embedding-shaped
 * buffers [rows, seq_len, hidden], masks [rows, seq_len] (1 = token, 0 =
 * padding).  Nothing here is collective. */
#ifndef DAPT_SMART_INTERNAL_H
#define DAPT_SMART_INTERNAL_H

#include <stdint.h>

/* How the divergence is differentiated.  FULL: the paper's gradients of
 * both KL terms with respect to both arguments.  DETACHED: mt-dnn's
 * SymKlCriterion, each KL term with its target detached, so d/da = p - q and
 * d/db = q - p (also the gradient of mt-dnn's inner loss KL(P||Q) in b). */
typedef enum { SMART_GRAD_FULL = 0, SMART_GRAD_DETACHED = 1 } smart_grad_kind;

typedef enum { SMART_STYLE_PAPER = 0, SMART_STYLE_MTDNN = 1 } smart_style;

/* scale * sum over rows of l_s(a_r, b_r): for k >= 2 the symmetric KL
 * KL(P||Q) + KL(Q||P) of P = softmax(a_r), Q = softmax(b_r); for k = 1
 * (regression) the squared error (a_r - b_r)^2.  da, db (either may be NULL)
 * are overwritten with scale * d/da, scale * d/db (of kind).  Computed in
 * double. */
double smart_divergence(const float *a, const float *b, int64_t rows, int64_t k, smart_grad_kind kind, double scale,
                        float *da, float *db);

/* The initial perturbation nu_0 ~ N(0, std^2) per element, keyed by
 * (seed, DAPT_RNG_ADVERSARIAL, step, first_sample + row, position = token *
 * hidden + h), zero where mask is 0. */
void smart_noise(uint64_t seed, uint64_t step, uint64_t first_sample, int64_t rows, int64_t seq_len, int64_t hidden,
                 const int32_t *mask, double std, float *nu);

/* One ascent step on nu from e = d loss / d nu, per token with
 * g = e / max_h |e|:
 *   paper: nu <- clip(nu + eta g, -eps, eps) (g = 0 where max_h |e| = 0);
 *   mtdnn: nu <- eta e / (max_h |e| + 1e-6) (mt-dnn: x~ = x + eta g).
 * Padding tokens stay 0. */
void smart_ascent(const float *e, const int32_t *mask, int64_t rows, int64_t seq_len, int64_t hidden, smart_style style,
                  double eta, double eps, float *nu);

/* What the last micro_step computed (for tests): pointers into the
 * objective's state, valid until its next micro_step; nu0 / nu
 * [rows, seq_len, hidden], a / b / t [rows, num_labels] (t NULL without a
 * Bregman term, b NULL without an adversarial term). */
typedef struct smart_record {
    int64_t rows, seq_len;
    const float *nu0, *nu, *a, *b, *t;
    double cls, adv, bregman; /* this rank's shares: L, lambda_s R_s, mu D */
} smart_record;

void smart_last(const void *state, smart_record *out);

#endif
