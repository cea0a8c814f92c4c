/* AdamW, learning-rate schedules, gradient clipping and accumulation on the
 * flat buffers of a parameter table (see include/dapt/optim.h). */
#include "dapt/optim.h"

#include <math.h>
#include <string.h>

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

#pragma omp parallel
    for (size_t k = 0; k < table->count; k++) {
        const dapt_tensor *tt = &table->tensors[k];
        size_t lo, hi;
        if (!clip_range(tt, begin, end, &lo, &hi)) continue;
        const float d = (tt->flags & DAPT_TENSOR_NO_DECAY) ? 1.0f : decay;
        float *restrict p = params;
        float *restrict mm = m;
        float *restrict vv = v;
        const float *restrict g = grads;
#pragma omp for simd schedule(static) nowait
        for (size_t i = lo; i < hi; i++) {
            float gi = g[i];
            float pi = p[i] * d;
            float mi = mm[i] * b1 + one_b1 * gi;
            float vi = vv[i] * b2 + one_b2 * gi * gi;
            float denom = sqrtf(vi) / bc2s + eps;
            mm[i] = mi;
            vv[i] = vi;
            p[i] = pi + neg_step * (mi / denom);
        }
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

/* The sum of squares is formed from fixed blocks summed in block order, so
 * it is the same bits whatever the number of OpenMP threads. */
enum { SUMSQ_BLOCK = 8192, SUMSQ_BATCH = 256 };

static double sumsq_piece(const float *g, size_t lo, size_t hi)
{
    double total = 0.0;
    for (size_t start = lo; start < hi; start += (size_t)SUMSQ_BLOCK * SUMSQ_BATCH) {
        size_t stop = hi - start > (size_t)SUMSQ_BLOCK * SUMSQ_BATCH
                          ? start + (size_t)SUMSQ_BLOCK * SUMSQ_BATCH
                          : hi;
        size_t nblocks = (stop - start + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
        double partial[SUMSQ_BATCH];
#pragma omp parallel for schedule(static) if (nblocks > 1)
        for (size_t b = 0; b < nblocks; b++) {
            size_t a = start + b * SUMSQ_BLOCK;
            size_t e = a + SUMSQ_BLOCK < stop ? a + SUMSQ_BLOCK : stop;
            double s = 0.0;
#pragma omp simd reduction(+ : s)
            for (size_t i = a; i < e; i++) s += (double)g[i] * (double)g[i];
            partial[b] = s;
        }
        for (size_t b = 0; b < nblocks; b++) total += partial[b];
    }
    return total;
}

double dapt_grad_sumsq(const dapt_param_table *table, size_t begin, size_t end,
                       const float *grads)
{
    double total = 0.0;
    for (size_t k = 0; k < table->count; k++) {
        size_t lo, hi;
        if (clip_range(&table->tensors[k], begin, end, &lo, &hi))
            total += sumsq_piece(grads, lo, hi);
    }
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
