/* SMART's pieces (src/objectives/smart.h) by finite differences and by
 * their invariants, and the objective on a tiny random classifier:
 *  - the symmetric KL's full gradients in both arguments (the paper) and the
 *    detached ones (mt-dnn), the squared error of regression heads;
 *  - d l_s / d embedding output through the engine (what the ascent uses);
 *  - the noise is keyed by global sample, not by row, and 0 at padding;
 *  - the ascent's per-token inf-norm normalisation and projection;
 *  - one micro_step (dropout on): the perturbation stays in the box, the
 *    Bregman term is 0 while the teacher equals the model (the teacher's
 *    forward draws the same dropout masks), and after_update moves the teacher
 *    by (1 - beta) of the difference;
 *  - the teacher and its update count survive a checkpoint: a resumed
 *    objective computes the same Bregman term bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/objectives/smart.h"
#include "dapt/checkpoint.h"
#include "dapt/config.h"
#include "dapt/h5io.h"
#include "dapt/model.h"
#include "dapt/objective.h"
#include "dapt/rng.h"
#include "harness.h"

/* Central differences of smart_divergence in a (which = 0) or b (which = 1)
 * against its analytic gradient of the given kind; h = 1e-3 on float inputs
 * (the actual step is re-measured in float), the loss in double: the error
 * is O(h^2) ~ 1e-6 (measured <= 3.4e-8; allowed 5e-6). */
static void check_fd(const float *a0, const float *b0, int64_t rows, int64_t k)
{
    const int64_t n = rows * k;
    float a[64], b[64], da[64], db[64];
    memcpy(a, a0, sizeof(float) * (size_t)n);
    memcpy(b, b0, sizeof(float) * (size_t)n);
    const double scale = 0.5;
    smart_divergence(a, b, rows, k, SMART_GRAD_FULL, scale, da, db);
    double worst = 0.0;
    for (int which = 0; which < 2; which++) {
        float *x = which ? b : a;
        const float *g = which ? db : da;
        for (int64_t i = 0; i < n; i++) {
            const float keep = x[i];
            x[i] = keep + 1e-3f;
            const double up = smart_divergence(a, b, rows, k, SMART_GRAD_FULL, scale, NULL, NULL), hu = x[i] - keep;
            x[i] = keep - 1e-3f;
            const double dn = smart_divergence(a, b, rows, k, SMART_GRAD_FULL, scale, NULL, NULL), hd = keep - x[i];
            x[i] = keep;
            const double fd = (up - dn) / (hu + hd), err = fabs(fd - (double)g[i]);
            if (err > worst) worst = err;
            CU_ASSERT(err < 5e-6);
        }
    }
    printf("\n  rows %lld, classes %lld: largest finite-difference error %.2g\n", (long long)rows, (long long)k, worst);
}

static void test_sym_kl_gradients(void)
{
    dapt_rng r = dapt_rng_make(1, DAPT_RNG_TEST, 0);
    float a[40], b[40];
    for (int i = 0; i < 40; i++) {
        a[i] = 2.0f * dapt_rng_normal(&r, 0, (uint64_t)i);
        b[i] = a[i] + 0.7f * dapt_rng_normal(&r, 1, (uint64_t)i);
    }
    check_fd(a, b, 4, 3);  /* 4 rows of 3 classes */
    check_fd(a, b, 2, 10); /* 2 rows of 10 */
    check_fd(a, b, 8, 1);  /* regression: squared error */
    /* Identical arguments: no divergence, no gradient. */
    float da[12], db[12];
    CU_ASSERT_DOUBLE_EQUAL(smart_divergence(a, a, 4, 3, SMART_GRAD_FULL, 1.0, da, db), 0.0, 1e-15);
    for (int i = 0; i < 12; i++) CU_ASSERT(fabsf(da[i]) < 1e-7f && fabsf(db[i]) < 1e-7f);
}

/* mt-dnn's SymKlCriterion detaches each KL term's target: d/db = q - p,
 * d/da = p - q (scaled); the value is still KL(P||Q) + KL(Q||P). */
static void test_detached_gradients(void)
{
    const float a[6] = {0.3f, -1.0f, 2.0f, 0.0f, 0.5f, 0.25f}, b[6] = {1.0f, -0.5f, 1.5f, 0.2f, 0.1f, -0.3f};
    float da[6], db[6], fa[6], fb[6];
    const double v = smart_divergence(a, b, 2, 3, SMART_GRAD_DETACHED, 0.25, da, db);
    CU_ASSERT_DOUBLE_EQUAL(v, smart_divergence(a, b, 2, 3, SMART_GRAD_FULL, 0.25, fa, fb), 1e-15);
    for (int r = 0; r < 2; r++) {
        double sa = 0, sb = 0, p[3], q[3];
        for (int j = 0; j < 3; j++) {
            sa += exp(a[3 * r + j]);
            sb += exp(b[3 * r + j]);
        }
        double kl = 0;
        for (int j = 0; j < 3; j++) {
            p[j] = exp(a[3 * r + j]) / sa;
            q[j] = exp(b[3 * r + j]) / sb;
            kl += p[j] * log(p[j] / q[j]) + q[j] * log(q[j] / p[j]);
        }
        for (int j = 0; j < 3; j++) {
            CU_ASSERT_DOUBLE_EQUAL(db[3 * r + j], 0.25 * (q[j] - p[j]), 1e-7);
            CU_ASSERT_DOUBLE_EQUAL(da[3 * r + j], 0.25 * (p[j] - q[j]), 1e-7);
        }
        (void)kl;
    }
}

/* A tiny BERT classifier (dropout 0.1) and a padded batch of 3. */
typedef struct tiny {
    dapt_model m;
    dapt_batch b;
    int32_t ids[24], mask[24], labels[3];
} tiny;

static void tiny_make(tiny *t)
{
    dapt_model_config mc = {0};
    mc.arch = DAPT_ARCH_BERT;
    mc.vocab_size = 29;
    mc.hidden = 12;
    mc.layers = 2;
    mc.heads = 3;
    mc.intermediate = 20;
    mc.max_position = 16;
    mc.type_vocab_size = 2;
    mc.layer_norm_eps = 1e-5;
    mc.initializer_range = 0.3;
    mc.hidden_dropout = 0.1; /* on in micro_step: every pass must draw the same masks */
    mc.attention_dropout = 0.1;
    mc.has_pooler = 1;
    mc.num_labels = 3;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &t->m) == DAPT_OK);
    dapt_model_init_random(&t->m, 42);
    const int lengths[3] = {8, 6, 3};
    dapt_rng r = dapt_rng_make(5, DAPT_RNG_TEST, 0);
    for (int i = 0; i < 24; i++) {
        t->mask[i] = i % 8 < lengths[i / 8];
        t->ids[i] = t->mask[i] ? 2 + (int32_t)(dapt_rng_u32(&r, 0, (uint64_t)i) % 27) : 0;
    }
    for (int i = 0; i < 3; i++) t->labels[i] = i % 3;
    t->b = (dapt_batch){3, 8, t->ids, t->mask, NULL, NULL, t->labels, 100, NULL};
}

/* l_s(a, f(x + nu)) with a fixed, through the engine. */
static double perturbed_loss(tiny *t, dapt_workspace *ws, const float *a, const float *nu, float *db)
{
    dapt_run_opts o = {0};
    o.embedding_delta = nu;
    dapt_batch nb = t->b;
    nb.class_labels = NULL;
    CU_ASSERT_FATAL(dapt_model_forward(&t->m, ws, &nb, NULL, &o) == DAPT_OK);
    return smart_divergence(a, dapt_ws_class_logits(ws), 3, 3, SMART_GRAD_FULL, 1.0, NULL, db);
}

/* d l_s / d nu from an input-only backward (the ascent direction) against
 * central differences in float32: h = 1e-2 on nu elements of size 0.3
 * gives errors of about 1e-4 relative to the largest gradient element
 * (measured 4.5e-5); allowed 2e-3. */
static void test_embedding_gradient(void)
{
    tiny t;
    tiny_make(&t);
    dapt_workspace *ws = NULL;
    dapt_workspace_spec spec = {3, 8, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&t.m, &spec, &ws) == DAPT_OK);
    const int64_t n = 3 * 8 * 12;
    float *nu = calloc((size_t)n, sizeof(float)), *e = calloc((size_t)n, sizeof(float)), a[9], db[9];
    dapt_run_opts o = {0};
    CU_ASSERT_FATAL(dapt_model_forward(&t.m, ws, &t.b, NULL, &o) == DAPT_OK);
    memcpy(a, dapt_ws_class_logits(ws), sizeof a);
    smart_noise(7, 0, 100, 3, 8, 12, t.mask, 0.3, nu);
    perturbed_loss(&t, ws, a, nu, db);
    dapt_backward_opts bo = DAPT_BACKWARD_OPTS_INIT;
    bo.loss_scale = 0.0;
    bo.d_class_logits = db;
    bo.param_grads = 0;
    CU_ASSERT_FATAL(dapt_model_backward_ex(&t.m, ws, &bo) == DAPT_OK);
    memcpy(e, dapt_ws_embedding_grad(ws), sizeof(float) * (size_t)n);
    double big = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(e[i]));
    CU_ASSERT(big > 1e-4);
    for (int64_t i = 0; i < n; i += 7) {
        const float keep = nu[i];
        nu[i] = keep + 1e-2f;
        const double up = perturbed_loss(&t, ws, a, nu, NULL);
        nu[i] = keep - 1e-2f;
        const double dn = perturbed_loss(&t, ws, a, nu, NULL);
        nu[i] = keep;
        worst = fmax(worst, fabs((up - dn) / 2e-2 - e[i]) / big);
    }
    CU_ASSERT(worst < 2e-3);
    printf("\n  d l_s / d nu: largest finite-difference error %.2g of the largest element %.2g\n", worst, big);
    dapt_workspace_free(ws);
    dapt_model_free(&t.m);
    free(nu);
    free(e);
}

/* A sample's noise does not depend on its row or the padded length; padding is 0. */
static void test_noise_keying(void)
{
    const int32_t mask[2 * 4] = {1, 1, 0, 0, 1, 1, 1, 0};
    const int32_t mask16[16] = {1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0}; /* [2, 8] */
    float n4[2 * 4 * 5], n8[2 * 8 * 5];
    smart_noise(3, 2, 10, 2, 4, 5, mask, 1.0, n4);  /* samples 10, 11 */
    smart_noise(3, 2, 11, 2, 8, 5, mask16, 1.0, n8); /* samples 11, 12 */
    for (int s = 0; s < 3; s++)
        for (int h = 0; h < 5; h++) CU_ASSERT_EQUAL(n4[(4 + s) * 5 + h], n8[s * 5 + h]); /* sample 11 */
    for (int h = 0; h < 5; h++) CU_ASSERT_EQUAL(n4[(4 + 3) * 5 + h], 0.0f);
    for (int h = 0; h < 5; h++) CU_ASSERT_EQUAL(n4[2 * 5 + h], 0.0f);
    int nonzero = 0;
    for (int i = 0; i < 2 * 4 * 5; i++) nonzero += n4[i] != 0.0f;
    CU_ASSERT_EQUAL(nonzero, 5 * 5);
    /* The standard deviation scales the standard normal. */
    float half[2 * 4 * 5];
    smart_noise(3, 2, 10, 2, 4, 5, mask, 0.5, half);
    for (int i = 0; i < 40; i++) CU_ASSERT_DOUBLE_EQUAL(half[i], 0.5 * n4[i], 1e-7);
}

/* Per token: g = e / max |e|; paper adds eta g and clips to [-eps, eps],
 * mt-dnn replaces nu by eta e / (max |e| + 1e-6). */
static void test_ascent(void)
{
    const float e[2 * 3] = {2.0f, -4.0f, 1.0f, 0.0f, 0.0f, 0.0f};
    const int32_t mask[2] = {1, 1};
    float nu[6] = {0.1f, 0.1f, -0.3f, 0.05f, -0.05f, 0.0f};
    smart_ascent(e, mask, 1, 2, 3, SMART_STYLE_PAPER, 0.2, 0.25, nu);
    const float want[6] = {0.2f, -0.1f, -0.25f, 0.05f, -0.05f, 0.0f};
    for (int i = 0; i < 6; i++) CU_ASSERT_DOUBLE_EQUAL(nu[i], want[i], 1e-7);
    smart_ascent(e, mask, 1, 2, 3, SMART_STYLE_MTDNN, 0.2, 0.25, nu);
    for (int i = 0; i < 3; i++) CU_ASSERT_DOUBLE_EQUAL(nu[i], 0.2 * e[i] / (4.0 + 1e-6), 1e-8);
    for (int i = 3; i < 6; i++) CU_ASSERT_EQUAL(nu[i], 0.0f);
    const int32_t pad[2] = {1, 0};
    float nu2[6] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
    smart_ascent(e, pad, 1, 2, 3, SMART_STYLE_PAPER, 0.2, 0.25, nu2);
    for (int i = 3; i < 6; i++) CU_ASSERT_EQUAL(nu2[i], 0.0f);
}

/* ctx of the tiny model on one process. */
static dapt_objective_ctx tiny_ctx(const dapt_config *cfg, dapt_model *m)
{
    dapt_objective_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = cfg;
    ctx.data_comm = MPI_COMM_SELF;
    ctx.data_size = 1;
    ctx.model = m;
    ctx.seed = 4;
    ctx.global_rows = 3;
    ctx.micro_max = 3;
    ctx.total_steps = 10;
    return ctx;
}

/* The objective on the tiny model with a fresh teacher. */
static void test_micro_step(void)
{
    tiny t;
    tiny_make(&t);
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    CU_ASSERT_FATAL(dapt_config_set(&cfg, "smart.epsilon=0.05") == DAPT_OK);
    CU_ASSERT_FATAL(dapt_config_set(&cfg, "smart.noise_var=1e-2") == DAPT_OK);
    CU_ASSERT_FATAL(dapt_config_set(&cfg, "smart.adv_steps=2") == DAPT_OK);
    CU_ASSERT_FATAL(dapt_config_set(&cfg, "smart.beta_early=0.75") == DAPT_OK);
    const dapt_objective_ops *ops = dapt_objective_find("smart", DAPT_OBJ_FINETUNE | DAPT_OBJ_TENSOR_PARALLEL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
    dapt_objective obj;
    CU_ASSERT_FATAL(dapt_objective_create(ops, &cfg, &obj) == DAPT_OK);
    dapt_objective_ctx ctx = tiny_ctx(&cfg, &t.m);
    CU_ASSERT_FATAL(dapt_objective_begin_domain(&obj, &ctx) == DAPT_OK);
    dapt_workspace *ws = NULL;
    dapt_workspace_spec spec = {3, 8, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&t.m, &spec, &ws) == DAPT_OK);
    dapt_micro_batch mb = {t.b, t.ids, ws};
    double loss = 0.0;
    dapt_model_zero_grads(&t.m);
    CU_ASSERT_FATAL(dapt_objective_micro_step(&obj, &ctx, &mb, &loss) == DAPT_OK);
    smart_record rec;
    smart_last(obj.state, &rec);
    CU_ASSERT_EQUAL(rec.bregman, 0.0);
    CU_ASSERT(rec.adv > 0.0);
    CU_ASSERT_DOUBLE_EQUAL(loss, rec.cls + rec.adv + rec.bregman, 1e-12);
    for (int i = 0; i < 9; i++) CU_ASSERT_EQUAL(rec.a[i], rec.t[i]);
    for (int64_t i = 0; i < 3 * 8 * 12; i++) {
        CU_ASSERT(fabsf(rec.nu[i]) <= 0.05f);
        if (!t.mask[i / 12]) CU_ASSERT_EQUAL(rec.nu[i], 0.0f);
    }
    double metrics[3];
    CU_ASSERT_EQUAL(dapt_objective_metrics(&obj, &ctx, metrics), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(metrics[0] + metrics[1] + metrics[2], loss, 1e-12);
    /* One update of the model, then the teacher moves 1 - beta_early of the way. */
    for (size_t i = 0; i < t.m.table.total; i++) t.m.params[i] += 0.01f;
    CU_ASSERT_EQUAL(dapt_objective_after_update(&obj, &ctx), DAPT_OK);
    CU_ASSERT_FATAL(dapt_objective_micro_step(&obj, &ctx, &mb, &loss) == DAPT_OK);
    smart_last(obj.state, &rec);
    CU_ASSERT(rec.bregman > 0.0);
    dapt_objective_release(&obj);
    dapt_objective_destroy(&obj);
    dapt_workspace_free(ws);
    dapt_model_free(&t.m);
}

/* Save after one update, load into a fresh objective (whose teacher starts
 * as the current model), and compare the next step's terms. */
static void test_checkpoint_round_trip(void)
{
    tiny t;
    tiny_make(&t);
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    CU_ASSERT_FATAL(dapt_config_set(&cfg, "smart.beta_early=0.5") == DAPT_OK);
    const dapt_objective_ops *ops = dapt_objective_find("smart", DAPT_OBJ_FINETUNE);
    dapt_objective a, b;
    CU_ASSERT_FATAL(dapt_objective_create(ops, &cfg, &a) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_objective_create(ops, &cfg, &b) == DAPT_OK);
    dapt_objective_ctx ctx = tiny_ctx(&cfg, &t.m);
    CU_ASSERT_FATAL(dapt_objective_begin_domain(&a, &ctx) == DAPT_OK);
    dapt_workspace *ws = NULL;
    dapt_workspace_spec spec = {3, 8, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&t.m, &spec, &ws) == DAPT_OK);
    dapt_micro_batch mb = {t.b, t.ids, ws};
    double loss = 0.0;
    for (size_t i = 0; i < t.m.table.total; i++) t.m.params[i] *= 1.01f;
    CU_ASSERT_EQUAL(dapt_objective_after_update(&a, &ctx), DAPT_OK);
    for (size_t i = 0; i < t.m.table.total; i++) t.m.params[i] *= 1.01f;

    char path[600];
    snprintf(path, sizeof path, "%s/dapt-smart-ckpt-%d.h5", dapt_test_tmpdir(), (int)getpid());
    const dapt_ckpt_layout lay = dapt_ckpt_layout_whole(MPI_COMM_SELF, &t.m.table);
    ctx.ckpt_layout = &lay;
    ctx.ckpt_comm = MPI_COMM_SELF;
    dapt_h5file f;
    CU_ASSERT_FATAL(dapt_h5_create(MPI_COMM_SELF, path, 1, &cfg, &f) == DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(a.ops->save(a.state, &ctx, &f), DAPT_OK);
    CU_ASSERT_FATAL(dapt_h5_commit(&f) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_objective_begin_domain(&b, &ctx) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_h5_open(MPI_COMM_SELF, path, &f) == DAPT_OK);
    CU_ASSERT_EQUAL(b.ops->load(b.state, &ctx, &f), DAPT_OK);
    dapt_h5_close(&f);
    remove(path);

    smart_record ra, rb;
    CU_ASSERT_FATAL(dapt_objective_micro_step(&a, &ctx, &mb, &loss) == DAPT_OK);
    smart_last(a.state, &ra);
    const double breg = ra.bregman;
    CU_ASSERT(breg > 0.0);
    CU_ASSERT_FATAL(dapt_objective_micro_step(&b, &ctx, &mb, &loss) == DAPT_OK);
    smart_last(b.state, &rb);
    CU_ASSERT_EQUAL(rb.bregman, breg);
    /* The update count came back too: the next teacher update is the same. */
    CU_ASSERT_EQUAL(dapt_objective_after_update(&a, &ctx), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_objective_after_update(&b, &ctx), DAPT_OK);
    CU_ASSERT_FATAL(dapt_objective_micro_step(&a, &ctx, &mb, &loss) == DAPT_OK);
    smart_last(a.state, &ra);
    const double breg2 = ra.bregman;
    CU_ASSERT_FATAL(dapt_objective_micro_step(&b, &ctx, &mb, &loss) == DAPT_OK);
    smart_last(b.state, &rb);
    CU_ASSERT_EQUAL(rb.bregman, breg2);
    dapt_objective_release(&a);
    dapt_objective_release(&b);
    dapt_objective_destroy(&a);
    dapt_objective_destroy(&b);
    dapt_workspace_free(ws);
    dapt_model_free(&t.m);
}

DAPT_TEST_MAIN("smart", {"symmetric KL: full gradients by finite differences", test_sym_kl_gradients},
               {"symmetric KL: mt-dnn's detached gradients", test_detached_gradients},
               {"d l_s / d embedding output by finite differences", test_embedding_gradient},
               {"noise keyed by global sample, zero at padding", test_noise_keying},
               {"ascent: per-token inf-norm, projection, mt-dnn step", test_ascent},
               {"micro_step: box, zero Bregman term at theta~ = theta, teacher update", test_micro_step},
               {"teacher and update count survive a checkpoint", test_checkpoint_round_trip})
