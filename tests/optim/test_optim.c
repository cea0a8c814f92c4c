/* AdamW, schedules, clipping and accumulation against PyTorch.
 *
 * The fixture (tools/fixtures/make_adamw_fixture.py, torch 1.13) holds ten
 * steps of torch.optim.AdamW on a tiny BERT's parameters with two
 * accumulated micro-batches, clip_grad_norm_(1.0) and a linear warm-up
 * schedule.  dapt is fed the same micro-batch gradients and must follow the
 * same parameter trajectory.
 *
 * Tolerance: both sides run the same float32 operations with the same
 * rounded scalars, so the only differences are (a) the gradient norm, which
 * torch sums in another order (relative error ~1e-7 on the clip factor),
 * (b) averaging (g1 + g2) / 2 vs torch's g1/2 + g2/2 (exact in binary, both
 * are a power-of-two scaling), and (c) fused multiply-add contraction in
 * either side's vectorised loops (one rounding, 6e-8 relative).  An Adam
 * update moves a parameter by at most ~lr (1e-3) per step and the update is
 * a ratio m / sqrt(v) whose relative sensitivity to such errors is O(1), so
 * after ten steps the parameters can differ by ~10 * 1e-3 * 1e-6 absolute on
 * top of one float ulp of the value (|p| <= ~2, ulp 2.4e-7).  We allow
 * 1e-6 * max(1, |p|) and check that it is far below what one wrong detail
 * would cause: weight decay on a no-decay tensor changes p by lr * wd * p
 * ~ 1e-5 * |p| per step, a missing bias correction by ~lr.  Measured when
 * written: 1.5e-8 (half an ulp at 1) against torch; 5e-5 with every tensor
 * decayed (the test prints both). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/h5io.h"
#include "dapt/optim.h"
#include "dapt/params.h"
#include "harness.h"

#define FIXTURE "tests/fixtures/optim/adamw_trajectory.h5"
#define TOL 1e-6

static dapt_model_config tiny_config(void)
{
    return dapt_test_model_config(DAPT_ARCH_BERT, 10, 4, 1, 2, 8, 6);
}

typedef struct fixture {
    dapt_h5file f;
    int64_t steps, micro, warmup;
    double lr, wd, b1, b2, eps, max_norm;
    double *lrs, *norms;
} fixture;

static int fixture_open(fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    if (dapt_h5_open(MPI_COMM_SELF, dapt_test_path(FIXTURE), &fx->f) != DAPT_OK) {
        fprintf(stderr, "%s\n", dapt_error_message());
        return 0;
    }
    int ok = dapt_h5_attr_get_int64(&fx->f, "/", "steps", &fx->steps) == DAPT_OK &&
             dapt_h5_attr_get_int64(&fx->f, "/", "micro", &fx->micro) == DAPT_OK &&
             dapt_h5_attr_get_int64(&fx->f, "/", "warmup_steps", &fx->warmup) == DAPT_OK &&
             dapt_h5_attr_get_double(&fx->f, "/", "lr", &fx->lr) == DAPT_OK &&
             dapt_h5_attr_get_double(&fx->f, "/", "weight_decay", &fx->wd) == DAPT_OK &&
             dapt_h5_attr_get_double(&fx->f, "/", "beta1", &fx->b1) == DAPT_OK &&
             dapt_h5_attr_get_double(&fx->f, "/", "beta2", &fx->b2) == DAPT_OK &&
             dapt_h5_attr_get_double(&fx->f, "/", "eps", &fx->eps) == DAPT_OK &&
             dapt_h5_attr_get_double(&fx->f, "/", "max_grad_norm", &fx->max_norm) == DAPT_OK &&
             dapt_h5_read_all(&fx->f, "lr", DAPT_H5_F64, (void **)&fx->lrs, NULL, NULL) == DAPT_OK &&
             dapt_h5_read_all(&fx->f, "grad_norm", DAPT_H5_F64, (void **)&fx->norms, NULL, NULL) ==
                 DAPT_OK;
    if (!ok) fprintf(stderr, "%s\n", dapt_error_message());
    return ok;
}

static void fixture_close(fixture *fx)
{
    free(fx->lrs);
    free(fx->norms);
    dapt_h5_close(&fx->f);
}

/* Reads /tensors/<name>/<what> (float32) into a malloc'd buffer. */
static float *fixture_tensor(fixture *fx, const char *name, const char *what, int64_t *numel)
{
    char path[256];
    snprintf(path, sizeof path, "tensors/%s/%s", name, what);
    void *data = NULL;
    int ndim = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    if (dapt_h5_read_all(&fx->f, path, DAPT_H5_F32, &data, &ndim, dims) != DAPT_OK) {
        fprintf(stderr, "%s\n", dapt_error_message());
        return NULL;
    }
    if (numel) *numel = dims[ndim - 1];
    return data;
}

static dapt_status count_name(const char *name, void *user)
{
    (void)name;
    ++*(size_t *)user;
    return DAPT_OK;
}

static void test_no_decay_flags_match_hf(void)
{
    dapt_model_config mc = tiny_config();
    dapt_param_table table;
    CU_ASSERT_FATAL(dapt_param_table_build(&mc, &table) == DAPT_OK);
    fixture fx;
    CU_ASSERT_FATAL(fixture_open(&fx));
    size_t groups = 0;
    CU_ASSERT_FATAL(dapt_h5_list(&fx.f, "tensors", count_name, &groups) == DAPT_OK);
    CU_ASSERT_EQUAL(groups, table.count);
    for (size_t k = 0; k < table.count; k++) {
        const dapt_tensor *t = &table.tensors[k];
        char obj[128];
        snprintf(obj, sizeof obj, "tensors/%s", t->name);
        int64_t no_decay = -1, numel = -1;
        CU_ASSERT_EQUAL_FATAL(dapt_h5_attr_get_int64(&fx.f, obj, "no_decay", &no_decay), DAPT_OK);
        float *p = fixture_tensor(&fx, t->name, "exp_avg", &numel);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        free(p);
        CU_ASSERT_EQUAL((size_t)numel, t->numel);
        if (!!(t->flags & DAPT_TENSOR_NO_DECAY) != !!no_decay)
            fprintf(stderr, "no-decay flag of %s differs from Hugging Face's rule\n", t->name);
        CU_ASSERT_EQUAL(!!(t->flags & DAPT_TENSOR_NO_DECAY), !!no_decay);
    }
    fixture_close(&fx);
    dapt_param_table_free(&table);
}

typedef struct run {
    dapt_param_table table;
    float *p, *g, *acc, *m, *v;
    float **ref_param, **ref_grad; /* per tensor: [steps+1][numel], [steps][micro][numel] */
} run;

static int run_load(run *r, fixture *fx)
{
    dapt_model_config mc = tiny_config();
    if (dapt_param_table_build(&mc, &r->table) != DAPT_OK) return 0;
    size_t n = r->table.total;
    r->p = calloc(n, sizeof(float));
    r->g = calloc(n, sizeof(float));
    r->acc = calloc(n, sizeof(float));
    r->m = calloc(n, sizeof(float));
    r->v = calloc(n, sizeof(float));
    r->ref_param = calloc(r->table.count, sizeof(float *));
    r->ref_grad = calloc(r->table.count, sizeof(float *));
    if (!r->p || !r->g || !r->acc || !r->m || !r->v || !r->ref_param || !r->ref_grad) return 0;
    for (size_t k = 0; k < r->table.count; k++) {
        const dapt_tensor *t = &r->table.tensors[k];
        r->ref_param[k] = fixture_tensor(fx, t->name, "param", NULL);
        r->ref_grad[k] = fixture_tensor(fx, t->name, "grad", NULL);
        if (!r->ref_param[k] || !r->ref_grad[k]) return 0;
        memcpy(r->p + t->offset, r->ref_param[k], t->numel * sizeof(float));
    }
    /* Padding between tensors holds garbage that nothing may read or change. */
    for (size_t k = 0; k + 1 <= r->table.count; k++) {
        const dapt_tensor *t = &r->table.tensors[k];
        size_t next = k + 1 < r->table.count ? r->table.tensors[k + 1].offset : n;
        for (size_t i = t->offset + t->numel; i < next; i++) r->p[i] = r->acc[i] = NAN;
    }
    return 1;
}

static void run_free(run *r)
{
    for (size_t k = 0; k < r->table.count; k++) {
        if (r->ref_param) free(r->ref_param[k]);
        if (r->ref_grad) free(r->ref_grad[k]);
    }
    free(r->ref_param);
    free(r->ref_grad);
    free(r->p);
    free(r->g);
    free(r->acc);
    free(r->m);
    free(r->v);
    dapt_param_table_free(&r->table);
}

/* Largest |dapt - torch| / max(1, |torch|) over all parameters at step s. */
static double param_error(const run *r, int64_t s)
{
    double worst = 0;
    for (size_t k = 0; k < r->table.count; k++) {
        const dapt_tensor *t = &r->table.tensors[k];
        const float *ref = r->ref_param[k] + (size_t)s * t->numel;
        for (size_t i = 0; i < t->numel; i++) {
            double e = fabs((double)r->p[t->offset + i] - ref[i]) / fmax(1.0, fabs(ref[i]));
            if (e > worst) worst = e;
        }
    }
    return worst;
}

/* Runs the fixture's ten steps with the buffer cut into nshards float
 * ranges (cuts fall inside tensors); the clipping norm is the sum of the
 * shards' sums of squares, as ranks would all-reduce it. */
static void trajectory(size_t nshards)
{
    fixture fx;
    CU_ASSERT_FATAL(fixture_open(&fx));
    run r;
    memset(&r, 0, sizeof r);
    CU_ASSERT_FATAL(run_load(&r, &fx));
    const size_t n = r.table.total;
    size_t cut[8];
    for (size_t s = 0; s <= nshards; s++) cut[s] = s * n / nshards + (s > 0 && s < nshards ? 3 : 0);

    dapt_adamw opt = {.beta1 = fx.b1, .beta2 = fx.b2, .eps = fx.eps, .weight_decay = fx.wd};
    CU_ASSERT_EQUAL(dapt_adamw_validate(&opt), DAPT_OK);
    dapt_lr_schedule sched = {DAPT_SCHEDULE_LINEAR, fx.lr, fx.warmup, fx.steps};
    double worst = 0;
    for (int64_t step = 0; step < fx.steps; step++) {
        for (size_t sh = 0; sh < nshards; sh++) dapt_grad_zero(cut[sh], cut[sh + 1], r.acc);
        for (int64_t mb = 0; mb < fx.micro; mb++) {
            for (size_t k = 0; k < r.table.count; k++) {
                const dapt_tensor *t = &r.table.tensors[k];
                memcpy(r.g + t->offset, r.ref_grad[k] + ((size_t)step * fx.micro + mb) * t->numel,
                       t->numel * sizeof(float));
            }
            for (size_t sh = 0; sh < nshards; sh++)
                dapt_grad_accumulate(&r.table, cut[sh], cut[sh + 1], r.acc, r.g);
        }
        double sumsq = 0;
        for (size_t sh = 0; sh < nshards; sh++) {
            dapt_grad_scale(&r.table, cut[sh], cut[sh + 1], r.acc, 1.0f / (float)fx.micro);
            sumsq += dapt_grad_sumsq(&r.table, cut[sh], cut[sh + 1], r.acc);
        }
        double norm;
        float factor = dapt_grad_clip_factor(sumsq, fx.max_norm, &norm);
        CU_ASSERT_DOUBLE_EQUAL(norm, fx.norms[step], 1e-6 * fx.norms[step]);
        CU_ASSERT_EQUAL(factor < 1.0f, fx.norms[step] > fx.max_norm);
        for (size_t sh = 0; sh < nshards; sh++)
            dapt_grad_scale(&r.table, cut[sh], cut[sh + 1], r.acc, factor);
        double lr = dapt_lr_at(&sched, step);
        CU_ASSERT_DOUBLE_EQUAL(lr, fx.lrs[step], 1e-15);
        CU_ASSERT_EQUAL(dapt_adamw_advance(&opt), step + 1);
        for (size_t sh = 0; sh < nshards; sh++)
            CU_ASSERT_EQUAL(dapt_adamw_update(&opt, lr, &r.table, cut[sh], cut[sh + 1], r.p, r.acc,
                                              r.m, r.v),
                            DAPT_OK);
        double e = param_error(&r, step + 1);
        if (e > worst) worst = e;
        CU_ASSERT(e <= TOL);
    }
    /* Optimizer state at the end. */
    double state_err = 0;
    for (size_t k = 0; k < r.table.count; k++) {
        const dapt_tensor *t = &r.table.tensors[k];
        float *m = fixture_tensor(&fx, t->name, "exp_avg", NULL);
        float *v = fixture_tensor(&fx, t->name, "exp_avg_sq", NULL);
        CU_ASSERT_FATAL(m && v);
        for (size_t i = 0; i < t->numel; i++) {
            double em = fabs(r.m[t->offset + i] - m[i]) / fmax(1e-3, fabs(m[i]));
            double ev = fabs(r.v[t->offset + i] - v[i]) / fmax(1e-6, fabs(v[i]));
            state_err = fmax(state_err, fmax(em, ev));
        }
        free(m);
        free(v);
    }
    CU_ASSERT(state_err <= 1e-5);
    /* Padding untouched (still NaN). */
    for (size_t k = 0; k + 1 < r.table.count; k++) {
        const dapt_tensor *t = &r.table.tensors[k];
        for (size_t i = t->offset + t->numel; i < r.table.tensors[k + 1].offset; i++)
            CU_ASSERT(isnan(r.p[i]));
    }
    /* The parameters moved far more than the tolerance: the comparison
     * can fail. */
    double moved = 0;
    for (size_t k = 0; k < r.table.count; k++) {
        const dapt_tensor *t = &r.table.tensors[k];
        for (size_t i = 0; i < t->numel; i++)
            moved = fmax(moved, fabs(r.ref_param[k][(size_t)fx.steps * t->numel + i] - r.ref_param[k][i]));
    }
    CU_ASSERT(moved > 1000 * TOL);
    printf("\n    %zu shard(s): max relative parameter error %.3g, state error %.3g, largest move %.3g ",
           nshards, worst, state_err, moved);
    run_free(&r);
    fixture_close(&fx);
}

static void test_trajectory_whole(void) { trajectory(1); }
static void test_trajectory_sharded(void) { trajectory(3); }

/* Dropping the no-decay rule (decaying everything) must break the match:
 * evidence that the tolerance is tight enough to see it. */
static void test_trajectory_detects_wrong_decay(void)
{
    fixture fx;
    CU_ASSERT_FATAL(fixture_open(&fx));
    run r;
    memset(&r, 0, sizeof r);
    CU_ASSERT_FATAL(run_load(&r, &fx));
    for (size_t k = 0; k < r.table.count; k++) r.table.tensors[k].flags &= ~(unsigned)DAPT_TENSOR_NO_DECAY;
    dapt_adamw opt = {.beta1 = fx.b1, .beta2 = fx.b2, .eps = fx.eps, .weight_decay = fx.wd};
    dapt_lr_schedule sched = {DAPT_SCHEDULE_LINEAR, fx.lr, fx.warmup, fx.steps};
    for (int64_t step = 0; step < fx.steps; step++) {
        dapt_grad_zero(0, r.table.total, r.acc);
        for (int64_t mb = 0; mb < fx.micro; mb++) {
            for (size_t k = 0; k < r.table.count; k++) {
                const dapt_tensor *t = &r.table.tensors[k];
                memcpy(r.g + t->offset, r.ref_grad[k] + ((size_t)step * fx.micro + mb) * t->numel,
                       t->numel * sizeof(float));
            }
            dapt_grad_accumulate(&r.table, 0, r.table.total, r.acc, r.g);
        }
        dapt_grad_scale(&r.table, 0, r.table.total, r.acc, 0.5f);
        dapt_grad_clip(&r.table, r.acc, fx.max_norm, NULL);
        dapt_adamw_advance(&opt);
        dapt_adamw_update(&opt, dapt_lr_at(&sched, step), &r.table, 0, r.table.total, r.p, r.acc, r.m, r.v);
    }
    double e = param_error(&r, fx.steps);
    printf("\n    error with every tensor decayed: %.3g ", e);
    CU_ASSERT(e > 10 * TOL);
    run_free(&r);
    fixture_close(&fx);
}

/* transformers' get_linear_schedule_with_warmup and
 * get_constant_schedule_with_warmup, written out by hand. */
static double hf_linear(int64_t s, int64_t w, int64_t total)
{
    if (s < w) return (double)s / (double)(w > 1 ? w : 1);
    double f = (double)(total - s) / (double)(total - w > 1 ? total - w : 1);
    return f > 0 ? f : 0;
}

static void test_schedules(void)
{
    const int64_t cases[][2] = {{0, 10}, {3, 10}, {1, 1}, {10, 10}, {100, 1000}, {5, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t w = cases[c][0], total = cases[c][1];
        dapt_lr_schedule lin = {DAPT_SCHEDULE_LINEAR, 2e-4, w, total};
        dapt_lr_schedule con = {DAPT_SCHEDULE_CONSTANT, 2e-4, w, total};
        for (int64_t s = 0; s <= total + 2; s++) {
            CU_ASSERT_DOUBLE_EQUAL(dapt_lr_at(&lin, s), 2e-4 * hf_linear(s, w, total), 1e-18);
            double cf = s < w ? (double)s / (double)(w > 1 ? w : 1) : 1.0;
            CU_ASSERT_DOUBLE_EQUAL(dapt_lr_at(&con, s), 2e-4 * cf, 1e-18);
        }
    }
    /* Spot values: warm-up 3 of 10 at lr 1e-3. */
    dapt_lr_schedule s = {DAPT_SCHEDULE_LINEAR, 1e-3, 3, 10};
    CU_ASSERT_EQUAL(dapt_lr_at(&s, 0), 0.0);
    CU_ASSERT_DOUBLE_EQUAL(dapt_lr_at(&s, 1), 1e-3 / 3, 1e-18);
    CU_ASSERT_DOUBLE_EQUAL(dapt_lr_at(&s, 3), 1e-3, 1e-18);
    CU_ASSERT_DOUBLE_EQUAL(dapt_lr_at(&s, 4), 1e-3 * 6 / 7, 1e-18);
    CU_ASSERT_EQUAL(dapt_lr_at(&s, 10), 0.0);
    CU_ASSERT_EQUAL(dapt_lr_at(&s, 11), 0.0);

    /* From the configuration: the Trainer's ceil(ratio * steps). */
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    cfg.train.steps = 1000;
    cfg.train.warmup_ratio = 0.0615;
    cfg.train.warmup_steps = 0;
    CU_ASSERT_EQUAL(dapt_lr_schedule_from_config(&cfg, &s), DAPT_OK);
    CU_ASSERT_EQUAL(s.warmup_steps, 62);
    CU_ASSERT_EQUAL(s.kind, DAPT_SCHEDULE_LINEAR);
    cfg.train.warmup_steps = 7;
    strcpy(cfg.train.schedule, "constant");
    CU_ASSERT_EQUAL(dapt_lr_schedule_from_config(&cfg, &s), DAPT_OK);
    CU_ASSERT_EQUAL(s.warmup_steps, 7);
    CU_ASSERT_EQUAL(s.kind, DAPT_SCHEDULE_CONSTANT);
    CU_ASSERT_EQUAL(dapt_lr_at(&s, 500), cfg.train.lr);
    strcpy(cfg.train.schedule, "cosine");
    CU_ASSERT_EQUAL(dapt_lr_schedule_from_config(&cfg, &s), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "train.schedule"));
}

/* A hand-made table: two tensors with padding between them. */
static dapt_param_table two_tensors(dapt_tensor t[2], size_t n0, size_t n1)
{
    memset(t, 0, 2 * sizeof *t);
    strcpy(t[0].name, "a");
    t[0].ndim = 1;
    t[0].shape[0] = (int64_t)n0;
    t[0].shape[1] = 1;
    t[0].numel = n0;
    t[0].offset = 0;
    strcpy(t[1].name, "b");
    t[1].ndim = 1;
    t[1].shape[0] = (int64_t)n1;
    t[1].shape[1] = 1;
    t[1].numel = n1;
    t[1].offset = (n0 + 15) & ~(size_t)15;
    t[1].flags = DAPT_TENSOR_NO_DECAY;
    dapt_param_table table = {t, 2, t[1].offset + ((n1 + 15) & ~(size_t)15)};
    return table;
}

static void test_clipping(void)
{
    dapt_tensor t[2];
    dapt_param_table table = two_tensors(t, 1, 1);
    float g[32] = {0};
    g[0] = 3.0f;
    g[16] = 4.0f;
    g[1] = 100.0f; /* padding: ignored */
    double norm = 0;
    dapt_grad_clip(&table, g, 1.0, &norm);
    CU_ASSERT_DOUBLE_EQUAL(norm, 5.0, 1e-12);
    /* torch: g * (1 / (5 + 1e-6)) in float */
    float f = 1.0f / (5.0f + 1e-6f);
    CU_ASSERT_EQUAL(g[0], 3.0f * f);
    CU_ASSERT_EQUAL(g[16], 4.0f * f);
    CU_ASSERT_EQUAL(g[1], 100.0f);
    /* Below the threshold: unchanged. */
    g[0] = 3.0f;
    g[16] = 4.0f;
    dapt_grad_clip(&table, g, 10.0, &norm);
    CU_ASSERT_EQUAL(g[0], 3.0f);
    CU_ASSERT_EQUAL(g[16], 4.0f);
    /* Disabled. */
    dapt_grad_clip(&table, g, 0.0, &norm);
    CU_ASSERT_EQUAL(g[0], 3.0f);
    CU_ASSERT_DOUBLE_EQUAL(norm, 5.0, 1e-12);
    /* Non-finite: the norm says so and the gradients are left alone. */
    g[16] = INFINITY;
    dapt_grad_clip(&table, g, 1.0, &norm);
    CU_ASSERT(!isfinite(norm));
    CU_ASSERT_EQUAL(g[0], 3.0f);
    CU_ASSERT(isnan(dapt_grad_clip_factor(NAN, 1.0, &norm)));
    CU_ASSERT(isnan(norm));
}

/* The sum of squares is the same bits with 1 or 2 threads, on a tensor big
 * enough to be split into many blocks, and matches a long-double sum. */
static void test_sumsq_thread_invariant(void)
{
    const size_t n0 = 3000001, n1 = 77777;
    dapt_tensor t[2];
    dapt_param_table table = two_tensors(t, n0, n1);
    float *g = malloc(table.total * sizeof *g);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    long double ref = 0;
    uint32_t x = 12345;
    for (size_t i = 0; i < table.total; i++) {
        x = x * 1664525u + 1013904223u;
        g[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 1e-2f;
        int pad = (i >= n0 && i < t[1].offset) || i >= t[1].offset + n1;
        if (pad) g[i] = 1e6f; /* must not count */
        else ref += (long double)g[i] * g[i];
    }
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    double s1 = dapt_grad_sumsq(&table, 0, table.total, g);
    omp_set_num_threads(2);
    double s2 = dapt_grad_sumsq(&table, 0, table.total, g);
    omp_set_num_threads(saved);
    CU_ASSERT_EQUAL(s1, s2);
    CU_ASSERT_DOUBLE_EQUAL(s1, (double)ref, 1e-12 * (double)ref);
    /* Shards add up to the whole. */
    size_t cut = 1234567;
    double a = dapt_grad_sumsq(&table, 0, cut, g), b = dapt_grad_sumsq(&table, cut, table.total, g);
    CU_ASSERT_DOUBLE_EQUAL(a + b, s1, 1e-12 * s1);
    free(g);
}

static void test_accumulate_and_average(void)
{
    dapt_tensor t[2];
    dapt_param_table table = two_tensors(t, 5, 3);
    float acc[32], g[32];
    for (int i = 0; i < 32; i++) {
        acc[i] = 7.0f;
        g[i] = (float)i;
    }
    dapt_grad_zero(0, table.total, acc);
    for (int k = 0; k < 4; k++) dapt_grad_accumulate(&table, 0, table.total, acc, g);
    dapt_grad_scale(&table, 0, table.total, acc, 1.0f / 4);
    for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(acc[i], (float)i);
    for (int i = 16; i < 19; i++) CU_ASSERT_EQUAL(acc[i], (float)i);
    /* Padding stays as zeroed; the range is respected. */
    CU_ASSERT_EQUAL(acc[5], 0.0f);
    CU_ASSERT_EQUAL(acc[19], 0.0f);
    dapt_grad_accumulate(&table, 2, 17, acc, g);
    CU_ASSERT_EQUAL(acc[1], 1.0f);
    CU_ASSERT_EQUAL(acc[2], 4.0f);
    CU_ASSERT_EQUAL(acc[16], 32.0f);
    CU_ASSERT_EQUAL(acc[17], 17.0f);
}

/* One step by hand on a single element, in double, against the float
 * implementation; and the no-decay flag. */
static void test_single_step_by_hand(void)
{
    dapt_tensor t[2];
    dapt_param_table table = two_tensors(t, 1, 1);
    float p[32] = {0}, g[32] = {0}, m[32] = {0}, v[32] = {0};
    p[0] = p[16] = 0.5f;
    g[0] = g[16] = 0.25f;
    dapt_adamw opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1};
    CU_ASSERT_EQUAL(dapt_adamw_update(&opt, 1e-2, &table, 0, table.total, p, g, m, v),
                    DAPT_ERR_INTERNAL);
    dapt_adamw_advance(&opt);
    CU_ASSERT_EQUAL(dapt_adamw_update(&opt, 1e-2, &table, 0, 33, p, g, m, v), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL(dapt_adamw_update(&opt, NAN, &table, 0, 32, p, g, m, v), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL(dapt_adamw_update(&opt, 1e-2, &table, 0, table.total, p, g, m, v), DAPT_OK);
    /* t = 1: m_hat = g, v_hat = g^2, update = lr * g / (|g| + eps) */
    double upd = 1e-2 * 0.25 / (0.25 + 1e-8);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.5 * (1 - 1e-2 * 0.1) - upd, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[16], 0.5 - upd, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(m[0], 0.1 * 0.25, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(v[0], 0.001 * 0.0625, 1e-11);

    dapt_adamw bad = opt;
    bad.beta2 = 1.0;
    CU_ASSERT_EQUAL(dapt_adamw_validate(&bad), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "adam_beta2"));
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    dapt_adamw_from_config(&cfg, &bad);
    CU_ASSERT_EQUAL(bad.step, 0);
    CU_ASSERT_EQUAL(bad.eps, cfg.train.adam_eps);
    CU_ASSERT_EQUAL(dapt_adamw_validate(&bad), DAPT_OK);
}

/* dapt_adamw_update_span on each tensor, with the moments packed in another
 * buffer (as parallel.shard_optimizer keeps them), gives the same bits as
 * the table-wide update, with and without per-element multipliers, over
 * three steps; and it checks its arguments. */
static void test_span_equals_table(void)
{
    const dapt_model_config mc = dapt_test_model_config(DAPT_ARCH_BERT, 37, 16, 2, 2, 24, 16);
    dapt_param_table t;
    CU_ASSERT_FATAL(dapt_param_table_build(&mc, &t) == DAPT_OK);
    const size_t n = t.total;
    for (int scaled = 0; scaled < 2; scaled++) {
        float *p = calloc(n, 4), *q = calloc(n, 4), *g = calloc(n, 4), *m = calloc(n, 4), *v = calloc(n, 4);
        float *mc2 = calloc(n, 4), *vc = calloc(n, 4), *s = calloc(n, 4), *d = calloc(n, 4);
        CU_ASSERT_FATAL(p && q && g && m && v && mc2 && vc && s && d);
        for (size_t i = 0; i < n; i++) {
            p[i] = q[i] = 0.1f * (float)sin(0.1 * (double)i);
            s[i] = (float)(i % 3) / 2.0f;
            d[i] = (float)(i % 5) / 4.0f;
        }
        dapt_adamw a = {0.9, 0.999, 1e-6, 0.01, 0}, b = a;
        for (int step = 0; step < 3; step++) {
            for (size_t i = 0; i < n; i++) g[i] = 0.01f * (float)cos(0.3 * (double)i + step);
            dapt_adamw_advance(&a);
            dapt_adamw_advance(&b);
            CU_ASSERT_FATAL(dapt_adamw_update_scaled(&a, 1e-2, &t, 0, n, p, g, m, v, scaled ? s : NULL,
                                                     scaled ? d : NULL) == DAPT_OK);
            size_t packed = 0;
            for (size_t k = 0; k < t.count; k++) {
                const dapt_tensor *tt = &t.tensors[k];
                const size_t o = tt->offset;
                CU_ASSERT_FATAL(dapt_adamw_update_span(&b, 1e-2, (tt->flags & DAPT_TENSOR_NO_DECAY) != 0, tt->numel,
                                                       q + o, g + o, mc2 + packed, vc + packed, scaled ? s + o : NULL,
                                                       scaled ? d + o : NULL) == DAPT_OK);
                for (size_t i = 0; i < tt->numel; i++)
                    if (m[o + i] != mc2[packed + i] || v[o + i] != vc[packed + i]) {
                        CU_FAIL("moments differ");
                        break;
                    }
                packed += tt->numel;
            }
        }
        CU_ASSERT_EQUAL(memcmp(p, q, n * sizeof *p), 0);
        free(p), free(q), free(g), free(m), free(v), free(mc2), free(vc), free(s), free(d);
    }
    float x = 0;
    dapt_adamw fresh = {0.9, 0.999, 1e-6, 0.01, 0};
    CU_ASSERT_EQUAL(dapt_adamw_update_span(&fresh, 1e-2, 0, 1, &x, &x, &x, &x, NULL, NULL), DAPT_ERR_INTERNAL);
    dapt_adamw_advance(&fresh);
    CU_ASSERT_EQUAL(dapt_adamw_update_span(&fresh, INFINITY, 0, 1, &x, &x, &x, &x, NULL, NULL), DAPT_ERR_ARG);
    dapt_param_table_free(&t);
}

DAPT_TEST_MAIN("optim",
               {"no-decay flags equal Hugging Face's grouping", test_no_decay_flags_match_hf},
               {"ten steps follow torch AdamW (whole buffer)", test_trajectory_whole},
               {"ten steps follow torch AdamW (3 shards)", test_trajectory_sharded},
               {"decaying every tensor breaks the match", test_trajectory_detects_wrong_decay},
               {"linear and constant schedules with warm-up", test_schedules},
               {"global-norm clipping", test_clipping},
               {"sum of squares independent of threads", test_sumsq_thread_invariant},
               {"accumulation and averaging", test_accumulate_and_average},
               {"one step by hand, argument checks", test_single_step_by_hand},
               {"per-tensor spans with packed moments equal the table-wide update", test_span_equals_table})
