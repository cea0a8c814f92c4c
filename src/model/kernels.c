/* Engine kernels: CBLAS linear layers, LayerNorm, GELU, dropout. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void k_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
             int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    const CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans, tb = trans_b ? CblasTrans : CblasNoTrans;
    const int nt = omp_get_max_threads();
    if (nt <= 1 || omp_in_parallel() || (double)m * (double)n * (double)k < 4e6) {
        cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c,
                    (int)ldc);
        return;
    }
    /* One thread pool for everything: OpenMP threads each run a
     * single-threaded sgemm on a block of C (rows if C is tall, else
     * columns, rounded to 16 for whole vector tiles). */
    const int split_rows = m >= n;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), T = omp_get_num_threads();
        const int64_t total = split_rows ? m : n;
        int64_t lo = (total * t / T) & ~(int64_t)15, hi = t == T - 1 ? total : (total * (t + 1) / T) & ~(int64_t)15;
        if (hi > lo) {
            if (split_rows) {
                const float *ap = trans_a ? a + lo : a + lo * lda;
                cblas_sgemm(CblasRowMajor, ta, tb, (int)(hi - lo), (int)n, (int)k, alpha, ap, (int)lda, b, (int)ldb,
                            beta, c + lo * ldc, (int)ldc);
            } else {
                const float *bp = trans_b ? b + lo * ldb : b + lo;
                cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)(hi - lo), (int)k, alpha, a, (int)lda, bp, (int)ldb,
                            beta, c + lo, (int)ldc);
            }
        }
    }
}

void k_linear_fwd(int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                  const float *bias, float *y, int accumulate)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        /* Seeding y with the bias and letting sgemm accumulate saves a pass. */
        if (accumulate) {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < out; j++) y[i * out + j] += bias[j];
        } else {
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; i++) memcpy(y + i * out, bias, (size_t)out * sizeof *y);
        }
        beta = 1.0f;
    }
    k_sgemm(0, 1, n, out, in, 1.0f, x, in, w, in, beta, y, out);
}

/* acc[j] += x[j]; acc[j] += a[j] * b[j]: the rows of the column sums. */
K_SIMD_CLONES static void add_row(int64_t n, const float *x, float *acc)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) acc[j] += x[j];
}

K_SIMD_CLONES static void add_prod_row(int64_t n, const float *a, const float *b, float *acc)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) acc[j] += a[j] * b[j];
}

void k_colsum_acc(int64_t n, int64_t cols, const float *x, float *acc)
{
    int nt = omp_get_max_threads();
    if (nt > 1 && cols >= 64) {
        /* Split columns across threads: each thread owns a contiguous block. */
#pragma omp parallel
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t c0 = cols * t / T, c1 = cols * (t + 1) / T;
            for (int64_t i = 0; i < n; i++) add_row(c1 - c0, x + i * cols + c0, acc + c0);
        }
    } else {
        for (int64_t i = 0; i < n; i++) add_row(cols, x + i * cols, acc);
    }
}

void k_coldot_acc(int64_t n, int64_t cols, const float *a, const float *b, float *acc)
{
#pragma omp parallel
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t c0 = cols * t / T, c1 = cols * (t + 1) / T;
        for (int64_t i = 0; i < n; i++) add_prod_row(c1 - c0, a + i * cols + c0, b + i * cols + c0, acc + c0);
    }
}

void k_linear_bwd(int64_t n, int64_t in, int64_t out, const float *x, const float *w,
                  const float *dy, float *dw, float *dbias, float *dx, int accumulate_dx)
{
    if (dw) k_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
    if (dbias) k_colsum_acc(n, out, dy, dbias);
    if (dx)
        k_sgemm(0, 0, n, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
}

/* Sums in a fixed order (16 partial sums, then those in turn), so that the
 * clones agree bit for bit whatever their vector width. */
#define K_FIXED_SUM(type, n, expr, out)                                                                   \
    do {                                                                                                   \
        type part_[16] = {0};                                                                              \
        int64_t j_ = 0;                                                                                    \
        for (; j_ + 16 <= (n); j_ += 16)                                                                   \
            _Pragma("omp simd") for (int64_t k_ = 0; k_ < 16; k_++)                                        \
            {                                                                                              \
                const int64_t j = j_ + k_;                                                                 \
                part_[k_] += (expr);                                                                       \
            }                                                                                              \
        for (int64_t k_ = 0; j_ < (n); j_++, k_++) {                                                       \
            const int64_t j = j_;                                                                          \
            part_[k_] += (expr);                                                                           \
        }                                                                                                  \
        type sum_ = 0;                                                                                     \
        for (int k_ = 0; k_ < 16; k_++) sum_ += part_[k_];                                                 \
        (out) = sum_;                                                                                      \
    } while (0)

K_SIMD_CLONES static void layernorm_row(int64_t h, const float *xr, const float *gamma, const float *beta, double eps,
                                        float *xh, float *rstd, float *yr)
{
    /* Two passes in double: the mean and the biased variance PyTorch uses. */
    double s, v;
    K_FIXED_SUM(double, h, (double)xr[j], s);
    const double mean = s / (double)h;
    K_FIXED_SUM(double, h, ((double)xr[j] - mean) * ((double)xr[j] - mean), v);
    const float r = (float)(1.0 / sqrt(v / (double)h + eps));
    const float m = (float)mean;
    if (xh) {
#pragma omp simd
        for (int64_t j = 0; j < h; j++) {
            const float z = (xr[j] - m) * r;
            xh[j] = z;
            yr[j] = z * gamma[j] + beta[j];
        }
    } else {
#pragma omp simd
        for (int64_t j = 0; j < h; j++) yr[j] = (xr[j] - m) * r * gamma[j] + beta[j];
    }
    if (rstd) *rstd = r;
}

void k_layernorm_fwd(int64_t n, int64_t h, const float *x, const float *gamma, const float *beta,
                     double eps, float *xhat, float *rstd, float *y)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        layernorm_row(h, x + i * h, gamma, beta, eps, xhat ? xhat + i * h : NULL, rstd ? rstd + i : NULL, y + i * h);
}

K_SIMD_CLONES static void layernorm_param_row(int64_t n, const float *d, const float *xh, float *dgamma, float *dbeta)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        dgamma[j] += d[j] * xh[j];
        dbeta[j] += d[j];
    }
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. */
K_SIMD_CLONES static void layernorm_bwd_row(int64_t h, const float *d, const float *xh, float r, const float *gamma,
                                            float *o, int accumulate)
{
    float sg, sgx;
    K_FIXED_SUM(float, h, d[j] * gamma[j], sg);
    K_FIXED_SUM(float, h, d[j] * gamma[j] * xh[j], sgx);
    const float mg = sg / (float)h, mgx = sgx / (float)h;
    if (accumulate) {
#pragma omp simd
        for (int64_t j = 0; j < h; j++) o[j] += r * (d[j] * gamma[j] - mg - xh[j] * mgx);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < h; j++) o[j] = r * (d[j] * gamma[j] - mg - xh[j] * mgx);
    }
}

void k_layernorm_bwd(int64_t n, int64_t h, const float *dy, const float *xhat, const float *rstd,
                     const float *gamma, float *dgamma, float *dbeta, float *dx, int accumulate)
{
    /* Parameter gradients first: dx may overwrite dy. */
    if (dgamma && dbeta) {
        int nt = omp_get_max_threads();
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t c0 = h * t / T, c1 = h * (t + 1) / T;
            for (int64_t i = 0; i < n; i++)
                layernorm_param_row(c1 - c0, dy + i * h + c0, xhat + i * h + c0, dgamma + c0, dbeta + c0);
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        layernorm_bwd_row(h, dy + i * h, xhat + i * h, rstd[i], gamma, dx + i * h, accumulate);
}

/* Four loops, not one with `gate ? u * gate : u` inside: a load that may
 * be through NULL keeps GCC from vectorising the loop at all (measured:
 * the small step 400 -> 500 ms). */
K_SIMD_CLONES void k_gelu_row(int64_t n, const float *u, const float *gate, float *out, float *grad)
{
    if (gate && grad) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            const float x = u[j] * gate[j];
            float pdf;
            const float cdf = k_phi(x, &pdf);
            out[j] = x * cdf;
            grad[j] = cdf + x * pdf;
        }
    } else if (grad) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            const float x = u[j];
            float pdf;
            const float cdf = k_phi(x, &pdf);
            out[j] = x * cdf;
            grad[j] = cdf + x * pdf;
        }
    } else if (gate) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = k_gelu(u[j] * gate[j]);
    } else {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = k_gelu(u[j]);
    }
}

K_SIMD_CLONES void k_gelu_grad_mul_row(int64_t n, const float *u, float *d)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) d[j] *= k_gelu_grad(u[j]);
}

K_SIMD_CLONES void k_softmax_row(int64_t n, float *row, const float *add)
{
    float mx = -INFINITY;
    if (add) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) row[j] += add[j];
    }
    /* max is exact in any order; the sum below is in a fixed order. */
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) row[j] = k_expf(row[j] - mx);
    float part[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
#pragma omp simd
        for (int k = 0; k < 16; k++) part[k] += row[j + k];
    for (int k = 0; j < n; j++, k++) part[k] += row[j];
    float sum = 0.0f;
    for (int k = 0; k < 16; k++) sum += part[k];
    const float inv = 1.0f / sum;
#pragma omp simd
    for (int64_t c = 0; c < n; c++) row[c] *= inv;
}

K_SIMD_CLONES float k_max_row(int64_t n, const float *x)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

K_SIMD_CLONES double k_sum_exp_row(int64_t n, const float *x, float shift)
{
    double part[16] = {0};
    float e[16];
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
#pragma omp simd
        for (int k = 0; k < 16; k++) e[k] = k_expf(x[j + k] - shift);
#pragma omp simd
        for (int k = 0; k < 16; k++) part[k] += (double)e[k];
    }
    for (int k = 0; j < n; j++, k++) part[k] += (double)k_expf(x[j] - shift);
    double sum = 0.0;
    for (int k = 0; k < 16; k++) sum += part[k];
    return sum;
}

K_SIMD_CLONES void k_exp_scale_row(int64_t n, float *row, float shift, float scale)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) row[j] = scale * k_expf(row[j] - shift);
}

static _Thread_local float *scratch_buf;
static _Thread_local size_t scratch_len;

float *k_thread_scratch(size_t floats)
{
    if (floats > scratch_len) {
        /* Grows only to the largest row seen; freed at thread exit is not
         * needed: OpenMP keeps its pool for the process lifetime. */
        float *p = realloc(scratch_buf, floats * sizeof *p);
        if (!p) return NULL;
        scratch_buf = p;
        scratch_len = floats;
    }
    return scratch_buf;
}

K_SIMD_CLONES void k_dropout_row(const k_dropout *d, uint64_t sample, uint64_t site, uint64_t first, int64_t n,
                   float *x, uint8_t *keep)
{
    if (!d || !d->rng || d->p <= 0.0f) return;
    const uint64_t pos0 = (site << K_SITE_SHIFT) | first;
    /* uniform < p  <=>  24-bit integer < ceil(p * 2^24) */
    const uint32_t threshold = (uint32_t)ceil((double)d->p * 16777216.0);
    const float scale = d->scale;
    int64_t i = 0;
#define K_DROP_ONE(u, j)                                                                                 \
    do {                                                                                                 \
        const int kept_ = ((u) >> 8) >= threshold;                                                       \
        x[j] = kept_ ? x[j] * scale : 0.0f;                                                              \
        if (keep) keep[j] = (uint8_t)kept_;                                                              \
    } while (0)
    while (i < n && ((pos0 + (uint64_t)i) & 3) != 0) {
        K_DROP_ONE(dapt_rng_u32(d->rng, sample, pos0 + (uint64_t)i), i);
        i++;
    }
    /* Whole blocks, 64 at a time through the vectorised generator. */
    uint32_t words[256];
    while (i + 4 <= n) {
        const int64_t nb = (n - i) / 4 < 64 ? (n - i) / 4 : 64;
        dapt_rng_blocks(d->rng, sample, (pos0 + (uint64_t)i) >> 2, (size_t)nb, words);
#pragma omp simd
        for (int64_t k = 0; k < 4 * nb; k++) K_DROP_ONE(words[k], i + k);
        i += 4 * nb;
    }
    for (; i < n; i++) K_DROP_ONE(dapt_rng_u32(d->rng, sample, pos0 + (uint64_t)i), i);
#undef K_DROP_ONE
}

K_SIMD_CLONES void k_dropout_apply(const k_dropout *d, const uint8_t *keep, int64_t n, float *x)
{
    if (!d || !d->rng || d->p <= 0.0f) return;
    const float scale = d->scale;
#pragma omp simd
    for (int64_t i = 0; i < n; i++) x[i] = keep[i] ? x[i] * scale : 0.0f;
}

static int saved_blas_threads = 0;

void k_blas_serial_begin(void)
{
    saved_blas_threads = openblas_get_num_threads();
    if (saved_blas_threads > 1) openblas_set_num_threads(1);
}

void k_blas_serial_end(void)
{
    if (saved_blas_threads > 1) openblas_set_num_threads(saved_blas_threads);
}
