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
#include <string.h>

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

/* Vectorisable math.  The element functions below are inline so that the
 * row kernels' `omp simd` loops vectorise them (glibc's expf and erff are
 * scalar calls, which were 12% of a training step); each row kernel is
 * compiled for AVX-512, AVX2 and the baseline (K_SIMD_CLONES, GCC only:
 * clang 14 does not link its clones) and picks one at load time.  C11 mode
 * keeps floating-point contraction off, so the clones compute the same bits
 * and results do not depend on the node's vector width.  The polynomials'
 * accuracy is tested against libm in double
 * (tests/model/test_kernels_math.c); the erfc fit is tools/dev/fit_erfc.py. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(__SANITIZE_ADDRESS__)
#define K_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef K_SIMD_CLONES
#define K_SIMD_CLONES
#endif
/* Forced, so that the simd loops of every clone inline them. */
#if defined(__GNUC__)
#define K_INLINE static inline __attribute__((always_inline))
#else
#define K_INLINE static inline
#endif

/* exp(x) within 2 ulp for x in [-87, 88]; 0 below -87 (no subnormal
 * results), +inf above 88, NaN for NaN. */
K_INLINE float k_expf(float x)
{
    float xc = x < -87.0f ? -87.0f : x; /* comparisons keep NaN */
    xc = xc > 88.0f ? 88.0f : xc;
    const float shift = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const float t = xc * 1.44269504088896341f + shift, n = t - shift;
    /* r = x - n ln2 in two steps (Cody-Waite), |r| <= ln2 / 2. */
    const float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n from the integer sitting in t's low mantissa bits; unsigned
     * arithmetic, so a NaN's bits cannot overflow. */
    uint32_t bits, sb;
    memcpy(&bits, &t, sizeof bits);
    sb = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &sb, sizeof scale);
    const float y = p * scale;
    return x < -87.0f ? 0.0f : (x > 88.0f ? INFINITY : y);
}

/* Phi(x), the standard normal CDF, and *pdf = phi(x):
 * erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2), z = |x| / sqrt 2, with
 * P of degree 9 fitted to |log-error| < 7.3e-8 (tools/dev/fit_erfc.py);
 * absolute error of Phi below 2.5e-7 (4 ulp near 1). */
K_INLINE float k_erfc_poly(float t)
{
    float p = 0.17300200988132003f;
    p = p * t + -0.8314631327691214f;
    p = p * t + 1.505075636744673f;
    p = p * t + -1.1503160642865051f;
    p = p * t + 0.2859757351420447f;
    p = p * t + -0.18750230589509287f;
    p = p * t + 0.09647859759764732f;
    p = p * t + 0.3742632029639194f;
    p = p * t + 0.9999973166229557f;
    return p * t + -1.265510923003746f;
}

K_INLINE float k_phi(float x, float *pdf)
{
    const float z = fabsf(x) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.5f * z);
    /* The same expression as k_gelu's, so that a backward's recomputed
     * GELU equals the forward's bit for bit. */
    const float half_erfc = 0.5f * t * k_expf(-z * z + k_erfc_poly(t));
    *pdf = 0.39894228040143268f * k_expf(-z * z); /* exp(-x^2 / 2) */
    return x >= 0.0f ? 1.0f - half_erfc : half_erfc;
}

/* GELU (erf form, as BERT and PyTorch's default) and its derivative.  The
 * value alone needs one exponential: exp(-z^2 + P(t)). */
K_INLINE float k_gelu(float x)
{
    const float z = fabsf(x) * 0.70710678118654752f;
    const float t = 1.0f / (1.0f + 0.5f * z);
    const float half_erfc = 0.5f * t * k_expf(-z * z + k_erfc_poly(t));
    return x * (x >= 0.0f ? 1.0f - half_erfc : half_erfc);
}

K_INLINE float k_gelu_grad(float x)
{
    float pdf;
    const float cdf = k_phi(x, &pdf);
    return cdf + x * pdf;
}

/* out[j] = gelu(u[j] * gate[j]) (gate NULL: 1); with grad, also
 * grad[j] = gelu'(u[j] * gate[j]). */
void k_gelu_row(int64_t n, const float *u, const float *gate, float *out, float *grad);
/* d[j] *= gelu'(u[j]). */
void k_gelu_grad_mul_row(int64_t n, const float *u, float *d);
/* Softmax of row + add (add NULL: 0) in place; returns nothing, the row
 * sums to 1 (a row of -inf only gives NaN, as PyTorch). */
void k_softmax_row(int64_t n, float *row, const float *add);
/* max_j x[j] (-inf for n = 0; NaN entries are skipped). */
float k_max_row(int64_t n, const float *x);
/* sum_j exp(x[j] - shift) in double, in a fixed order (16 partial sums), so
 * the result does not depend on the vector width. */
double k_sum_exp_row(int64_t n, const float *x, float shift);
/* row[j] = scale * exp(row[j] - shift). */
void k_exp_scale_row(int64_t n, float *row, float shift, float scale);

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
