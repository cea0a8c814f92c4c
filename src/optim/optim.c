/* AdamW, learning-rate schedules, gradient clipping and accumulation on the
 * flat buffers of a parameter table (see include/dapt/optim.h). */
#include "dapt/optim.h"

#include <math.h>
#include <string.h>

#if defined(__SSE__)
#include <immintrin.h>
#endif

/* The part of tensor t inside [begin, end), as [*lo, *hi); 0 if empty. */
static int clip_range(const dapt_tensor *t, size_t begin, size_t end, size_t *lo, size_t *hi)
{
    size_t a = t->offset, b = t->offset + t->numel;
    if (a < begin) a = begin;
    if (b > end) b = end;
    *lo = a;
    *hi = b;
    return a < b;
}

void dapt_adamw_from_config(const dapt_config *cfg, dapt_adamw *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->beta1 = cfg->train.adam_beta1;
    opt->beta2 = cfg->train.adam_beta2;
    opt->eps = cfg->train.adam_eps;
    opt->weight_decay = cfg->train.weight_decay;
    opt->step = 0;
}

dapt_status dapt_adamw_validate(const dapt_adamw *opt)
{
    if (!(opt->beta1 >= 0 && opt->beta1 < 1))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.adam_beta1 %g must be in [0, 1)", opt->beta1);
    if (!(opt->beta2 >= 0 && opt->beta2 < 1))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.adam_beta2 %g must be in [0, 1)", opt->beta2);
    if (!(opt->eps >= 0))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.adam_eps %g must be >= 0", opt->eps);
    if (!(opt->weight_decay >= 0))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.weight_decay %g must be >= 0", opt->weight_decay);
    if (opt->step < 0)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "AdamW step count %lld is negative", (long long)opt->step);
    return DAPT_OK;
}

int64_t dapt_adamw_advance(dapt_adamw *opt)
{
    return ++opt->step;
}

/* Scalars of one AdamW step, rounded to float as PyTorch rounds them. */
typedef struct adamw_coef {
    float b1, one_b1, b2, one_b2, neg_step, bc2s, eps;
} adamw_coef;

/* Elements per work item of the threaded loop (a multiple of the SIMD
 * width, large enough to amortise scheduling). */
enum { ADAMW_BLOCK = 4096 };

static inline void adamw_one(const adamw_coef *c, float d, float *p, const float *g, float *m,
                             float *v, size_t i)
{
    float gi = g[i];
    float pi = p[i] * d;
    float mi = m[i] * c->b1 + c->one_b1 * gi;
    float vi = v[i] * c->b2 + c->one_b2 * gi * gi;
    float denom = sqrtf(vi) / c->bc2s + c->eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + c->neg_step * (mi / denom);
}

/* The update on [a, e).  With SSE, four elements at a time: sqrtps and
 * divps are correctly rounded like sqrtf and '/', and the operations are
 * the scalar ones in the same order (no FMA contraction), so both paths
 * give the same bits.  (A plain loop does not vectorise: sqrtf may set
 * errno, which the C library's -fmath-errno default keeps observable.) */
static void adamw_kernel(const adamw_coef *c, float d, float *restrict p, const float *restrict g,
                         float *restrict m, float *restrict v, size_t a, size_t e)
{
    size_t i = a;
#if defined(__SSE__)
    const __m128 b1 = _mm_set1_ps(c->b1), one_b1 = _mm_set1_ps(c->one_b1);
    const __m128 b2 = _mm_set1_ps(c->b2), one_b2 = _mm_set1_ps(c->one_b2);
    const __m128 neg_step = _mm_set1_ps(c->neg_step), bc2s = _mm_set1_ps(c->bc2s);
    const __m128 eps = _mm_set1_ps(c->eps), dd = _mm_set1_ps(d);
    for (; i + 4 <= e; i += 4) {
        __m128 gi = _mm_loadu_ps(g + i);
        __m128 pi = _mm_mul_ps(_mm_loadu_ps(p + i), dd);
        __m128 mi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(m + i), b1), _mm_mul_ps(one_b1, gi));
        __m128 vi = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(v + i), b2),
                               _mm_mul_ps(_mm_mul_ps(one_b2, gi), gi));
        __m128 denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(vi), bc2s), eps);
        _mm_storeu_ps(m + i, mi);
        _mm_storeu_ps(v + i, vi);
        _mm_storeu_ps(p + i, _mm_add_ps(pi, _mm_mul_ps(neg_step, _mm_div_ps(mi, denom))));
    }
#endif
    for (; i < e; i++) adamw_one(c, d, p, g, m, v, i);
}

dapt_status dapt_adamw_update(const dapt_adamw *opt, double lr, const dapt_param_table *table,
                              size_t begin, size_t end, float *params, const float *grads,
                              float *m, float *v)
{
    if (opt->step < 1)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "AdamW update before dapt_adamw_advance (step %lld)",
                          (long long)opt->step);
    if (end > table->total || begin > end)
        return DAPT_ERROR(DAPT_ERR_ARG, "AdamW range [%zu, %zu) outside the %zu-float buffer",
                          begin, end, table->total);
    if (!(lr >= 0) || !isfinite(lr))
        return DAPT_ERROR(DAPT_ERR_ARG, "AdamW learning rate %g is not a finite non-negative number", lr);
    /* Scalars as PyTorch forms them: in double, then rounded to float when
     * they meet a float tensor. */
    const double t = (double)opt->step;
    const double bc1 = 1.0 - pow(opt->beta1, t);
    const double bc2_sqrt = sqrt(1.0 - pow(opt->beta2, t));
    const float b1 = (float)opt->beta1, one_b1 = (float)(1.0 - opt->beta1);
    const float b2 = (float)opt->beta2, one_b2 = (float)(1.0 - opt->beta2);
    const float neg_step = (float)(-(lr / bc1));
    const float bc2s = (float)bc2_sqrt, eps = (float)opt->eps;
    const float decay = (float)(1.0 - lr * opt->weight_decay);

    const adamw_coef c = {b1, one_b1, b2, one_b2, neg_step, bc2s, eps};

#pragma omp parallel
    for (size_t k = 0; k < table->count; k++) {
        const dapt_tensor *tt = &table->tensors[k];
        size_t lo, hi;
        if (!clip_range(tt, begin, end, &lo, &hi)) continue;
        const float d = (tt->flags & DAPT_TENSOR_NO_DECAY) ? 1.0f : decay;
        const size_t nblocks = (hi - lo + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
#pragma omp for schedule(static) nowait
        for (size_t b = 0; b < nblocks; b++) {
            size_t a = lo + b * ADAMW_BLOCK;
            size_t e = a + ADAMW_BLOCK < hi ? a + ADAMW_BLOCK : hi;
            adamw_kernel(&c, d, params, grads, m, v, a, e);
        }
    }
    return DAPT_OK;
}

/* The update of element i with its step scaled by s and its decay by ds:
 * p <- p (1 - lr wd ds) - s lr m^/(sqrt(v^) + eps).  With s = ds = 1 the
 * same bits as adamw_one (the decay factor is formed in double, as there). */
static void adamw_scaled_kernel(const adamw_coef *c, double lrwd, float *restrict p, const float *restrict g,
                                float *restrict m, float *restrict v, const float *restrict s,
                                const float *restrict ds, size_t a, size_t e)
{
    for (size_t i = a; i < e; i++) {
        const float si = s ? s[i] : 1.0f;
        const float d = (float)(1.0 - lrwd * (double)(ds ? ds[i] : 1.0f));
        const float gi = g[i];
        const float pi = p[i] * d;
        const float mi = m[i] * c->b1 + c->one_b1 * gi;
        const float vi = v[i] * c->b2 + c->one_b2 * gi * gi;
        const float denom = sqrtf(vi) / c->bc2s + c->eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + (c->neg_step * si) * (mi / denom);
    }
}

dapt_status dapt_adamw_update_scaled(const dapt_adamw *opt, double lr, const dapt_param_table *table, size_t begin,
                                     size_t end, float *params, const float *grads, float *m, float *v,
                                     const float *step_scale, const float *decay_scale)
{
    if (!step_scale && !decay_scale) return dapt_adamw_update(opt, lr, table, begin, end, params, grads, m, v);
    if (opt->step < 1)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "AdamW update before dapt_adamw_advance (step %lld)", (long long)opt->step);
    if (end > table->total || begin > end)
        return DAPT_ERROR(DAPT_ERR_ARG, "AdamW range [%zu, %zu) outside the %zu-float buffer", begin, end, table->total);
    if (!(lr >= 0) || !isfinite(lr))
        return DAPT_ERROR(DAPT_ERR_ARG, "AdamW learning rate %g is not a finite non-negative number", lr);
    const double t = (double)opt->step;
    const double bc1 = 1.0 - pow(opt->beta1, t);
    const adamw_coef c = {(float)opt->beta1, (float)(1.0 - opt->beta1), (float)opt->beta2, (float)(1.0 - opt->beta2),
                          (float)(-(lr / bc1)), (float)sqrt(1.0 - pow(opt->beta2, t)), (float)opt->eps};
#pragma omp parallel
    for (size_t k = 0; k < table->count; k++) {
        const dapt_tensor *tt = &table->tensors[k];
        size_t lo, hi;
        if (!clip_range(tt, begin, end, &lo, &hi)) continue;
        const double lrwd = (tt->flags & DAPT_TENSOR_NO_DECAY) ? 0.0 : lr * opt->weight_decay;
        const size_t nblocks = (hi - lo + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
#pragma omp for schedule(static) nowait
        for (size_t b = 0; b < nblocks; b++) {
            size_t a = lo + b * ADAMW_BLOCK;
            size_t e = a + ADAMW_BLOCK < hi ? a + ADAMW_BLOCK : hi;
            adamw_scaled_kernel(&c, lrwd, params, grads, m, v, step_scale, decay_scale, a, e);
        }
    }
    return DAPT_OK;
}

dapt_status dapt_adamw_update_span(const dapt_adamw *opt, double lr, int no_decay, size_t n, float *p, const float *g,
                                   float *m, float *v, const float *step_scale, const float *decay_scale)
{
    if (opt->step < 1)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "AdamW update before dapt_adamw_advance (step %lld)", (long long)opt->step);
    if (!(lr >= 0) || !isfinite(lr))
        return DAPT_ERROR(DAPT_ERR_ARG, "AdamW learning rate %g is not a finite non-negative number", lr);
    if (n == 0) return DAPT_OK;
    /* The coefficients exactly as the table-wide functions form them. */
    const double t = (double)opt->step;
    const double bc1 = 1.0 - pow(opt->beta1, t);
    const adamw_coef c = {(float)opt->beta1, (float)(1.0 - opt->beta1), (float)opt->beta2, (float)(1.0 - opt->beta2),
                          (float)(-(lr / bc1)), (float)sqrt(1.0 - pow(opt->beta2, t)), (float)opt->eps};
    const int scaled = step_scale || decay_scale;
    const float d = no_decay ? 1.0f : (float)(1.0 - lr * opt->weight_decay);
    const double lrwd = no_decay ? 0.0 : lr * opt->weight_decay;
    const size_t nblocks = (n + ADAMW_BLOCK - 1) / ADAMW_BLOCK;
#pragma omp parallel for schedule(static) if (nblocks > 1)
    for (size_t b = 0; b < nblocks; b++) {
        const size_t a = b * ADAMW_BLOCK, e = a + ADAMW_BLOCK < n ? a + ADAMW_BLOCK : n;
        if (scaled)
            adamw_scaled_kernel(&c, lrwd, p, g, m, v, step_scale, decay_scale, a, e);
        else
            adamw_kernel(&c, d, p, g, m, v, a, e);
    }
    return DAPT_OK;
}

/* ---- schedules ---- */

dapt_status dapt_lr_schedule_from_config(const dapt_config *cfg, dapt_lr_schedule *s)
{
    memset(s, 0, sizeof *s);
    if (!strcmp(cfg->train.schedule, "linear"))
        s->kind = DAPT_SCHEDULE_LINEAR;
    else if (!strcmp(cfg->train.schedule, "constant"))
        s->kind = DAPT_SCHEDULE_CONSTANT;
    else
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.schedule: unknown schedule '%s' (linear|constant)",
                          cfg->train.schedule);
    s->base_lr = cfg->train.lr;
    s->total_steps = cfg->train.steps;
    if (cfg->train.warmup_steps > 0)
        s->warmup_steps = cfg->train.warmup_steps;
    else
        s->warmup_steps = (int64_t)ceil(cfg->train.warmup_ratio * (double)cfg->train.steps);
    if (s->total_steps < 0 || s->warmup_steps < 0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "train.steps/warmup_steps must not be negative");
    return DAPT_OK;
}

double dapt_lr_at(const dapt_lr_schedule *s, int64_t step)
{
    if (step < 0) step = 0;
    const double w = (double)s->warmup_steps;
    if (step < s->warmup_steps) return s->base_lr * ((double)step / (w > 1.0 ? w : 1.0));
    if (s->kind == DAPT_SCHEDULE_CONSTANT) return s->base_lr;
    const double rest = (double)(s->total_steps - s->warmup_steps);
    const double f = (double)(s->total_steps - step) / (rest > 1.0 ? rest : 1.0);
    return s->base_lr * (f > 0.0 ? f : 0.0);
}

/* ---- clipping and accumulation ---- */

/* The sum of squares is formed from fixed blocks of the range (cut at
 * tensor boundaries and every SUMSQ_BLOCK floats), each summed in double,
 * and the block sums are added in order: the same bits whatever the number
 * of OpenMP threads.  Blocks are processed in batches, one parallel region
 * per batch, so a large model needs only a few regions. */
enum { SUMSQ_BLOCK = 8192, SUMSQ_BATCH = 2048 };

typedef struct sumsq_batch {
    size_t n;
    size_t start[SUMSQ_BATCH], stop[SUMSQ_BATCH];
    double partial[SUMSQ_BATCH];
} sumsq_batch;

static double sumsq_flush(sumsq_batch *bt, const float *g)
{
    const size_t n = bt->n;
#pragma omp parallel for schedule(static) if (n > 1)
    for (size_t b = 0; b < n; b++) {
        double s = 0.0;
        const size_t e = bt->stop[b];
#pragma omp simd reduction(+ : s)
        for (size_t i = bt->start[b]; i < e; i++) s += (double)g[i] * (double)g[i];
        bt->partial[b] = s;
    }
    double total = 0.0;
    for (size_t b = 0; b < n; b++) total += bt->partial[b];
    bt->n = 0;
    return total;
}

double dapt_grad_sumsq(const dapt_param_table *table, size_t begin, size_t end,
                       const float *grads)
{
    static _Thread_local sumsq_batch bt; /* 48 KiB: off the stack */
    bt.n = 0;
    double total = 0.0;
    for (size_t k = 0; k < table->count; k++) {
        size_t lo, hi;
        if (!clip_range(&table->tensors[k], begin, end, &lo, &hi)) continue;
        for (size_t a = lo; a < hi; a += SUMSQ_BLOCK) {
            bt.start[bt.n] = a;
            bt.stop[bt.n] = hi - a > SUMSQ_BLOCK ? a + SUMSQ_BLOCK : hi;
            if (++bt.n == SUMSQ_BATCH) total += sumsq_flush(&bt, grads);
        }
    }
    if (bt.n) total += sumsq_flush(&bt, grads);
    return total;
}

float dapt_grad_clip_factor(double global_sumsq, double max_norm, double *norm)
{
    double n = sqrt(global_sumsq);
    if (norm) *norm = n;
    if (!isfinite(n)) return NAN;
    if (!(max_norm > 0)) return 1.0f;
    /* torch forms max_norm / (total_norm + 1e-6) on float tensors. */
    float f = (float)max_norm / ((float)n + 1e-6f);
    return f < 1.0f ? f : 1.0f;
}

void dapt_grad_scale(const dapt_param_table *table, size_t begin, size_t end, float *grads,
                     float factor)
{
#pragma omp parallel
    for (size_t k = 0; k < table->count; k++) {
        size_t lo, hi;
        if (!clip_range(&table->tensors[k], begin, end, &lo, &hi)) continue;
#pragma omp for simd schedule(static) nowait
        for (size_t i = lo; i < hi; i++) grads[i] *= factor;
    }
}

void dapt_grad_clip(const dapt_param_table *table, float *grads, double max_norm, double *norm)
{
    double n;
    float f = dapt_grad_clip_factor(dapt_grad_sumsq(table, 0, table->total, grads), max_norm, &n);
    if (norm) *norm = n;
    /* torch multiplies even by a factor of 1 (a no-op); skip that. */
    if (f != 1.0f && isfinite(f)) dapt_grad_scale(table, 0, table->total, grads, f);
}

void dapt_grad_accumulate(const dapt_param_table *table, size_t begin, size_t end, float *acc,
                          const float *g)
{
#pragma omp parallel
    for (size_t k = 0; k < table->count; k++) {
        size_t lo, hi;
        if (!clip_range(&table->tensors[k], begin, end, &lo, &hi)) continue;
        float *restrict a = acc;
        const float *restrict b = g;
#pragma omp for simd schedule(static) nowait
        for (size_t i = lo; i < hi; i++) a[i] += b[i];
    }
}

void dapt_grad_zero(size_t begin, size_t end, float *acc)
{
    if (end > begin) memset(acc + begin, 0, (end - begin) * sizeof *acc);
}
