/* Engine-internal kernels on flat row-major float buffers: linear layers on
 * CBLAS, LayerNorm, GELU, dropout masks.  Private to src/model (the public
 * interface is include/dapt/model.h).  Nothing here is collective; loops are
 * threaded with OpenMP and never call BLAS inside a parallel region except
 * through dapt_blas_serial_begin/end. */
#ifndef DAPT_MODEL_KERNELS_H
#define DAPT_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <math.h>

#include "dapt/rng.h"

/* Row-major C = alpha op(A) op(B) + beta C, split over the OpenMP threads
 * (each runs a single-threaded sgemm: call inside k_blas_serial_begin/end). */
void k_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
             int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* y[n,out] = x[n,in] W[out,in]^T (+ bias[out] if bias), accumulate: y += ... */
void k_linear_fwd(int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                  const float *bias, float *y, int accumulate);
/* dW += dy^T x (if dw: NULL skips the GEMM), dbias += colsum(dy) (if dbias),
 * dx = / += dy W (if dx). */
void k_linear_bwd(int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                  const float *dy, float *dw, float *dbias, float *dx, int accumulate_dx);

/* colsum: acc[j] += sum_i x[i, j]. */
void k_colsum_acc(int64_t n, int64_t cols, const float *x, float *acc);
/* acc[j] += sum_i a[i, j] * b[i, j] (unit-mask gradients). */
void k_coldot_acc(int64_t n, int64_t cols, const float *a, const float *b, float *acc);

/* LayerNorm over rows: y = xhat * gamma + beta, keeps xhat and rstd.
 * x and y may alias. */
void k_layernorm_fwd(int64_t n, int64_t h, const float *x, const float *gamma, const float *beta,
                     double eps, float *xhat, float *rstd, float *y);
/* dx = (or +=) LN backward of dy; dgamma/dbeta accumulate (both NULL: not
 * computed). dx may alias dy only when accumulate is 0. */
void k_layernorm_bwd(int64_t n, int64_t h, const float *dy, const float *xhat, const float *rstd,
                     const float *gamma, float *dgamma, float *dbeta, float *dx, int accumulate);

float k_gelu(float x);
float k_gelu_grad(float x);
/* gelu(x) and gelu'(x) sharing one erf. */
static inline void k_gelu_both(float x, float *g, float *gp)
{
    const float phi_cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    *g = x * phi_cdf;
    *gp = phi_cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
}

/* Per-thread scratch of at least `floats` floats (grown on demand). */
float *k_thread_scratch(size_t floats);

/* A dropout site: keep each element with probability 1 - p, scale by
 * 1 / (1 - p).  Element e of sample s at site `site` is dropped when
 * uniform(rng, s, (site << 44) | e) < p. */
typedef struct k_dropout {
    const dapt_rng *rng; /* NULL: no dropout */
    float p, scale;
} k_dropout;

#define K_SITE_SHIFT 44

/* x[i] *= mask(sample, site, first + i) for i < n (no-op when off); keep
 * (if not NULL) records 1 for kept elements, 0 for dropped, so backward
 * need not run the generator again (one byte per element costs less than
 * a second Philox pass over every attention probability). */
void k_dropout_row(const k_dropout *d, uint64_t sample, uint64_t site, uint64_t first, int64_t n,
                   float *x, uint8_t *keep);
/* x[i] = keep[i] ? x[i] * scale : 0 (no-op when off). */
void k_dropout_apply(const k_dropout *d, const uint8_t *keep, int64_t n, float *x);

/* BLAS threads: the engine keeps one thread pool (OpenMP) and runs OpenBLAS
 * single-threaded inside it, so the two never spin against each other.
 * forward/backward bracket their work with serial_begin/serial_end, which
 * restore OpenBLAS's own thread count for the rest of the program. */
void k_blas_serial_begin(void);
void k_blas_serial_end(void);

#endif
