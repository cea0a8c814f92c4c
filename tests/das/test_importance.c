/* The importance pass against an independent computation: central
 * differences of the proxy loss with respect to the unit masks g, for the KL
 * robustness proxy (dropout on, two different dropout passes; g in the
 * model's pass only, or in both passes, in either KL direction) and the MLM
 * proxy; and the same importances whether 1 or several ranks hold the rows.
 *
 * Tolerances: the proxies are computed from float32 hidden states, so one
 * evaluation carries ~1e-6 relative rounding; divided by 2 eps (eps = 1e-2)
 * that is ~1e-4 of the loss.  Truncation error eps^2 |L'''| / 6 is ~1e-5.
 * We accept |fd - g| <= 5e-4 + 2e-2 |g|: a wrong or missing term is off by
 * O(|g|), and the test checks |g| is not tiny for most units. */
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/das.h"
#include "dapt/rng.h"
#include "harness.h"

enum { B = 4, S = 8 };

typedef struct problem {
    dapt_model m;
    dapt_workspace *ws, *ws_frozen;
    int32_t ids[B * S], mask[B * S], labels[B * S];
    int64_t first, last; /* rows this rank supplies */
} problem;

static void setup(problem *p)
{
    memset(p, 0, sizeof *p);
    dapt_model_config mc = dapt_test_model_config(DAPT_ARCH_BERT, 23, 12, 2, 3, 16, 16);
    mc.layer_norm_eps = 1e-5;
    mc.hidden_dropout = 0.1;
    mc.attention_dropout = 0.1;
    mc.initializer_range = 0.3;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &p->m) == DAPT_OK);
    dapt_model_init_random(&p->m, 7);
    dapt_rng r = dapt_rng_make(3, DAPT_RNG_TEST, 0);
    const int lengths[B] = {8, 5, 7, 3};
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            int t = b * S + s;
            p->mask[t] = s < lengths[b];
            p->ids[t] = p->mask[t] ? 1 + (int32_t)(dapt_rng_u32(&r, 1, (uint64_t)t) % 22) : 0;
            p->labels[t] = p->mask[t] && s % 3 == 0 ? (int32_t)(dapt_rng_u32(&r, 2, (uint64_t)t) % 23)
                                                     : DAPT_IGNORE_LABEL;
        }
    dapt_workspace_spec spec = {B, S, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&p->m, &spec, &p->ws) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_workspace_create(&p->m, &spec, &p->ws_frozen) == DAPT_OK);
    p->first = 0;
    p->last = B;
}

static void teardown(problem *p)
{
    dapt_workspace_free(p->ws);
    dapt_workspace_free(p->ws_frozen);
    dapt_model_free(&p->m);
}

static dapt_batch rows(const problem *p, int64_t first, int64_t last)
{
    dapt_batch b = {0};
    b.batch = last - first;
    b.seq_len = S;
    b.input_ids = p->ids + first * S;
    b.attention_mask = p->mask + first * S;
    b.mlm_labels = p->labels + first * S;
    b.first_sample = (uint64_t)first;
    return b;
}

static dapt_status source(void *ctx, int64_t index, dapt_batch *batch, double *tokens)
{
    (void)index;
    const problem *p = ctx;
    *batch = rows(p, p->first, p->last);
    *tokens = 0;
    for (int64_t i = p->first * S; i < p->last * S; i++) *tokens += p->mask[i];
    return DAPT_OK;
}

/* What a check runs: the proxy, and for the KL proxy the passes g enters
 * and the direction. */
typedef struct proxy_case {
    dapt_proxy_kind proxy;
    dapt_proxy_passes passes;
    dapt_kl_direction direction;
    const char *name;
} proxy_case;

/* The proxy loss at unit masks (head, intermediate, output), recomputed
 * from scratch the way the pass defines it: with passes = BOTH the second
 * (DAPT_RNG_FROZEN) pass runs with the same masks g as the model's. */
static double proxy_loss(problem *p, const proxy_case *c, const dapt_unit_masks *g)
{
    const dapt_proxy_kind proxy = c->proxy;
    dapt_batch b = rows(p, 0, B);
    const uint64_t seed = 11;
    if (proxy == DAPT_PROXY_MLM) {
        dapt_run_opts o = {.train = 1, .seed = seed, .step = 0};
        CU_ASSERT_FATAL(dapt_model_forward(&p->m, p->ws, &b, g, &o) == DAPT_OK);
        return dapt_ws_loss(p->ws);
    }
    b.mlm_labels = NULL;
    dapt_run_opts frozen = {.train = 1, .seed = seed ^ dapt_rng_stream_tag(DAPT_RNG_FROZEN), .step = 0};
    dapt_run_opts model = {.train = 1, .seed = seed, .step = 0};
    const dapt_unit_masks *g2 = c->passes == DAPT_PROXY_PASSES_BOTH ? g : NULL;
    CU_ASSERT_FATAL(dapt_model_forward(&p->m, p->ws_frozen, &b, g2, &frozen) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_model_forward(&p->m, p->ws, &b, g, &model) == DAPT_OK);
    double loss = 0;
    CU_ASSERT(dapt_token_kl_loss_ex(dapt_ws_last_hidden(p->ws), dapt_ws_last_hidden(p->ws_frozen), p->mask, B, S,
                                    p->m.config.hidden, 1.0, c->direction, &loss, NULL, NULL) == DAPT_OK);
    return loss;
}

/* The importance of every unit after one batch (imp.sum), for case c. */
static void one_batch_importance(problem *p, const proxy_case *c, dapt_importance *imp)
{
    CU_ASSERT_FATAL(dapt_importance_create(&p->m.config, DAPT_IMPORTANCE_SIGNED, imp) == DAPT_OK);
    dapt_importance_pass_opts o = {.proxy = c->proxy, .batches = 1, .seed = 11, .temperature = 1.0,
                                   .passes = c->passes, .direction = c->direction};
    CU_ASSERT_FATAL(dapt_importance_pass(&p->m, p->ws, p->ws_frozen, source, p, &o, imp, MPI_COMM_SELF) == DAPT_OK);
}

static void check_proxy(const proxy_case *c)
{
    problem p;
    setup(&p);
    const dapt_model_config *mc = &p.m.config;
    dapt_importance imp;
    one_batch_importance(&p, c, &imp);
    CU_ASSERT(imp.tokens == 23.0);

    const int64_t counts[3] = {mc->layers * mc->heads, mc->layers * mc->intermediate, mc->layers * mc->hidden};
    float *g[3];
    for (int k = 0; k < 3; k++) {
        g[k] = malloc(sizeof(float) * (size_t)counts[k]);
        for (int64_t i = 0; i < counts[k]; i++) g[k][i] = 1.0f;
    }
    dapt_unit_masks masks = {g[0], g[1], g[2]};
    int bad = 0, checked = 0, sizeable = 0;
    double worst = 0;
    const double eps = 1e-2;
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < counts[k]; i += k == 0 ? 1 : 5) {
            g[k][i] = (float)(1 + eps);
            double up = proxy_loss(&p, c, &masks);
            g[k][i] = (float)(1 - eps);
            double down = proxy_loss(&p, c, &masks);
            g[k][i] = 1.0f;
            double fd = (up - down) / (2 * eps);
            double got = imp.sum[k][i]; /* one batch: the gradient itself */
            checked++;
            worst = fmax(worst, fabs(fd - got));
            sizeable += fabs(got) > 1e-3;
            if (fabs(fd - got) > 5e-4 + 2e-2 * fabs(got)) {
                bad++;
                fprintf(stderr, "\n  %s %s[%lld]: pass %.6g, finite difference %.6g", c->name,
                        dapt_unit_kind_name((dapt_unit_kind)k), (long long)i, got, fd);
            }
        }
    fprintf(stderr, "(max |fd - g| = %.2g) ", worst);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(sizeable > checked / 2);
    /* Parameter gradients are left zero. */
    double norm = 0;
    for (size_t i = 0; i < p.m.table.total; i++) norm += fabs(p.m.grads[i]);
    CU_ASSERT_EQUAL(norm, 0.0);
    for (int k = 0; k < 3; k++) free(g[k]);
    dapt_importance_free(&imp);
    teardown(&p);
}

static const proxy_case kl_one = {DAPT_PROXY_KL, DAPT_PROXY_PASSES_ONE, DAPT_KL_TEACHER_STUDENT, "KL (one pass)"};
static const proxy_case kl_both = {DAPT_PROXY_KL, DAPT_PROXY_PASSES_BOTH, DAPT_KL_TEACHER_STUDENT, "KL (both passes)"};
static const proxy_case kl_both_ref = {DAPT_PROXY_KL, DAPT_PROXY_PASSES_BOTH, DAPT_KL_STUDENT_TEACHER,
                                       "KL (both passes, reference direction)"};
static const proxy_case kl_one_ref = {DAPT_PROXY_KL, DAPT_PROXY_PASSES_ONE, DAPT_KL_STUDENT_TEACHER,
                                      "KL (one pass, reference direction)"};
static const proxy_case mlm = {DAPT_PROXY_MLM, DAPT_PROXY_PASSES_BOTH, DAPT_KL_TEACHER_STUDENT, "MLM"};

static void test_kl_proxy_finite_differences(void) { check_proxy(&kl_one); }
static void test_kl_both_passes_finite_differences(void) { check_proxy(&kl_both); }
static void test_kl_both_passes_reference_finite_differences(void) { check_proxy(&kl_both_ref); }
static void test_kl_one_pass_reference_finite_differences(void) { check_proxy(&kl_one_ref); }
static void test_mlm_proxy_finite_differences(void) { check_proxy(&mlm); }

/* The options change what they should: the second pass's term is not
 * negligible (both vs one differ by more than the finite-difference
 * tolerance for most units), and the direction matters. */
static void test_kl_options_differ(void)
{
    problem p;
    setup(&p);
    const proxy_case *cases[3] = {&kl_one, &kl_both, &kl_both_ref};
    dapt_importance imp[3];
    for (int c = 0; c < 3; c++) one_batch_importance(&p, cases[c], &imp[c]);
    int n = 0, passes_differ = 0, directions_differ = 0;
    for (int k = 0; k < DAPT_UNIT_KINDS; k++)
        for (int64_t i = 0; i < imp[0].layers * imp[0].units[k]; i++, n++) {
            double one = imp[0].sum[k][i], both = imp[1].sum[k][i], ref = imp[2].sum[k][i];
            passes_differ += fabs(both - one) > 5e-4 + 2e-2 * fabs(both);
            directions_differ += fabs(both - ref) > 5e-4 + 2e-2 * fabs(both);
        }
    fprintf(stderr, "(%d units: both != one for %d, reference != dapt for %d) ", n, passes_differ, directions_differ);
    CU_ASSERT(passes_differ > n / 2);
    CU_ASSERT(directions_differ > 0);
    for (int c = 0; c < 3; c++) dapt_importance_free(&imp[c]);
    teardown(&p);
}

/* Rows split over the ranks (dropout keyed by the global row) give the
 * importances of one process holding every row, to float rounding of the
 * different summation order. */
static void test_layout_invariance(void)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const proxy_case *cases[4] = {&kl_one, &mlm, &kl_both, &kl_both_ref};
    for (int c = 0; c < 4; c++) {
        problem p;
        setup(&p);
        dapt_importance whole, split;
        CU_ASSERT_FATAL(dapt_importance_create(&p.m.config, DAPT_IMPORTANCE_ABSOLUTE, &whole) == DAPT_OK);
        CU_ASSERT_FATAL(dapt_importance_create(&p.m.config, DAPT_IMPORTANCE_ABSOLUTE, &split) == DAPT_OK);
        dapt_importance_pass_opts o = {.proxy = cases[c]->proxy, .batches = 2, .seed = 5, .temperature = 1.0,
                                       .passes = cases[c]->passes, .direction = cases[c]->direction};
        CU_ASSERT_FATAL(dapt_importance_pass(&p.m, p.ws, p.ws_frozen, source, &p, &o, &whole, MPI_COMM_SELF) == DAPT_OK);
        p.first = (int64_t)B * rank / size;
        p.last = (int64_t)B * (rank + 1) / size;
        CU_ASSERT_FATAL(dapt_importance_pass(&p.m, p.ws, p.ws_frozen, source, &p, &o, &split, MPI_COMM_WORLD) == DAPT_OK);
        CU_ASSERT_EQUAL(whole.tokens, split.tokens);
        int bad = 0;
        for (int k = 0; k < DAPT_UNIT_KINDS; k++)
            for (int64_t i = 0; i < whole.layers * whole.units[k]; i++)
                bad += fabs(whole.sum[k][i] - split.sum[k][i]) > 1e-5 + 1e-4 * fabs(whole.sum[k][i]);
        CU_ASSERT_EQUAL(bad, 0);
        dapt_importance_free(&whole);
        dapt_importance_free(&split);
        teardown(&p);
    }
}

/* ---- against PyTorch ------------------------------------------------------
 * tests/fixtures/das/kl_proxy.h5 (tools/fixtures/make_kl_proxy_fixture.py):
 * the same tiny BERT and batch in float64 with dapt's dropout masks
 * reimplemented from their definition, dL/dg by autograd with g shared by
 * both passes.  dapt runs in float32, so each gradient carries the rounding
 * of two forward and backward passes (~1e-6 relative per operation over a
 * few hundred operations); we accept |dapt - torch| <= 1e-4 (max |g| of the
 * kind) + 1e-3 |g|, measured max 3.6e-7 absolute -- while the one-pass and
 * both-pass gradients differ by O(max |g|) (checked), and a dropout mask
 * that differed from dapt's would move the loss by ~1e-2 (the loss is
 * checked to 1e-5 relative). */

static int read_floats(hid_t f, const char *name, float *out, size_t n)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return 0;
    hid_t sp = H5Dget_space(d);
    int ok = H5Sget_simple_extent_npoints(sp) == (hssize_t)n &&
             H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    H5Sclose(sp);
    H5Dclose(d);
    return ok;
}

static double read_attr(hid_t obj, const char *name)
{
    double v = NAN;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a >= 0) {
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) v = NAN;
        H5Aclose(a);
    }
    return v;
}

/* The fixture's model (its float32 weights) and batch in p. */
static void setup_from_fixture(problem *p, hid_t f)
{
    setup(p);
    dapt_model_config mc = p->m.config; /* the fixture was made for setup's sizes */
    mc.hidden_dropout = read_attr(f, "hidden_dropout");
    mc.attention_dropout = read_attr(f, "attention_dropout");
    teardown(p);
    CU_ASSERT_FATAL(dapt_model_create(&mc, &p->m) == DAPT_OK);
    dapt_workspace_spec spec = {B, S, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&p->m, &spec, &p->ws) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_workspace_create(&p->m, &spec, &p->ws_frozen) == DAPT_OK);
    for (size_t i = 0; i < p->m.table.count; i++) {
        const dapt_tensor *x = &p->m.table.tensors[i];
        char path[128];
        snprintf(path, sizeof path, "params/%s", x->name);
        CU_ASSERT_FATAL(read_floats(f, path, p->m.params + x->offset, x->numel));
    }
    float ids[B * S], mask[B * S];
    CU_ASSERT_FATAL(read_floats(f, "input_ids", ids, B * S) && read_floats(f, "attention_mask", mask, B * S));
    for (int t = 0; t < B * S; t++) {
        p->ids[t] = (int32_t)ids[t];
        p->mask[t] = (int32_t)mask[t];
        p->labels[t] = DAPT_IGNORE_LABEL;
    }
}

static void test_kl_proxy_vs_torch(void)
{
    hid_t f = H5Fopen(dapt_test_path("tests/fixtures/das/kl_proxy.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT_FATAL(read_attr(f, "seed") == 11.0 && read_attr(f, "step") == 0.0 && read_attr(f, "temperature") == 1.0);
    problem p;
    setup_from_fixture(&p, f);
    const proxy_case *cases[4] = {&kl_both, &kl_both_ref, &kl_one, &kl_one_ref};
    const char *groups[4] = {"dapt_both", "reference_both", "dapt_one", "reference_one"};
    const char *kinds[DAPT_UNIT_KINDS] = {"head", "intermediate", "output"};
    double worst = 0, gap = 0;
    for (int c = 0; c < 4; c++) {
        dapt_importance imp;
        one_batch_importance(&p, cases[c], &imp);
        hid_t g = H5Gopen2(f, groups[c], H5P_DEFAULT);
        CU_ASSERT_FATAL(g >= 0);
        const double want_loss = read_attr(g, "loss");
        CU_ASSERT(fabs(proxy_loss(&p, cases[c], NULL) - want_loss) <= 1e-5 * want_loss);
        for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
            const size_t n = (size_t)(imp.layers * imp.units[k]);
            float *want = malloc(n * sizeof *want);
            CU_ASSERT_FATAL(want && read_floats(g, kinds[k], want, n));
            double top = 0;
            for (size_t i = 0; i < n; i++) top = fmax(top, fabs(want[i]));
            int bad = 0;
            for (size_t i = 0; i < n; i++) {
                double err = fabs(imp.sum[k][i] - want[i]);
                worst = fmax(worst, err);
                bad += err > 1e-4 * top + 1e-3 * fabs(want[i]);
            }
            if (bad) fprintf(stderr, "\n  %s %s: %d units off", groups[c], kinds[k], bad);
            CU_ASSERT_EQUAL(bad, 0);
            /* both vs one: the second pass's term is not negligible */
            if (c < 2) {
                float *one = malloc(n * sizeof *one);
                hid_t g1 = H5Gopen2(f, groups[c + 2], H5P_DEFAULT);
                CU_ASSERT_FATAL(one && read_floats(g1, kinds[k], one, n));
                for (size_t i = 0; i < n; i++) gap = fmax(gap, fabs(one[i] - want[i]) / top);
                H5Gclose(g1);
                free(one);
            }
            free(want);
        }
        H5Gclose(g);
        dapt_importance_free(&imp);
    }
    fprintf(stderr, "(max |dapt - torch| = %.2g; max |both - one| / max |g| = %.2g) ", worst, gap);
    CU_ASSERT(gap > 0.1);
    H5Fclose(f);
    teardown(&p);
}

DAPT_TEST_MAIN("importance pass",
               {"KL proxy (both passes, one pass; both directions) vs PyTorch", test_kl_proxy_vs_torch},
               {"KL proxy (one pass) vs finite differences", test_kl_proxy_finite_differences},
               {"KL proxy through both passes vs finite differences", test_kl_both_passes_finite_differences},
               {"KL proxy through both passes, reference direction, vs finite differences",
                test_kl_both_passes_reference_finite_differences},
               {"KL proxy (one pass), reference direction, vs finite differences",
                test_kl_one_pass_reference_finite_differences},
               {"KL proxy options change the importance", test_kl_options_differ},
               {"MLM proxy vs finite differences", test_mlm_proxy_finite_differences},
               {"same importances on any number of ranks", test_layout_invariance})
