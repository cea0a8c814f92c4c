/* DAS building blocks: importance accumulation and normalisation, soft-masked
 * gradients, mean pooling and the contrastive loss (finite differences and a
 * PyTorch fixture).  Runs serially and under `mpirun -n 2`: the collective
 * parts must give the single-process numbers for any number of ranks. */
#include "harness.h"

#include <hdf5.h>
#include <math.h>
#include <string.h>

#include "dapt/das.h"
#include "dapt/params.h"

static dapt_model_config tiny_config(void)
{
    return dapt_test_model_config(DAPT_ARCH_BERT, 11, 8, 2, 2, 6, 16);
}

/* (x - mean)/std with n-1, then |tanh|: [1,2,3] -> |tanh(-1)|, 0, tanh(1). */
static void test_normalize_by_hand(void)
{
    const float in[6] = {1, 2, 3, 5, 5, 5};
    float out[6];
    dapt_importance_normalize(in, 2, 3, DAPT_NORM_TANH_Z, out);
    CU_ASSERT_DOUBLE_EQUAL(out[0], tanh(1.0), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(out[2], tanh(1.0), 1e-6);
    /* A layer whose units are all equal carries no ranking: importance 0. */
    for (int i = 3; i < 6; i++) CU_ASSERT_EQUAL(out[i], 0.0f);
    float acc[3] = {0.5f, 0.1f, 0.9f};
    const float other[3] = {0.2f, 0.4f, 0.95f};
    dapt_importance_combine_max(acc, other, 3);
    CU_ASSERT_EQUAL(acc[0], 0.5f);
    CU_ASSERT_EQUAL(acc[1], 0.4f);
    CU_ASSERT_EQUAL(acc[2], 0.95f);
}

/* Reads a float64/float32 dataset of the fixture into doubles. */
static void read_fixture(hid_t f, const char *name, double *out)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    CU_ASSERT_FATAL(d >= 0);
    CU_ASSERT(H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    H5Dclose(d);
}

static void test_normalize_vs_torch(void)
{
    hid_t f = H5Fopen(dapt_test_path("tests/fixtures/das/contrastive.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    double raw[15], want[15];
    read_fixture(f, "importance_raw", raw);
    read_fixture(f, "importance_normalized", want);
    H5Fclose(f);
    float in[15], out[15];
    for (int i = 0; i < 15; i++) in[i] = (float)raw[i];
    dapt_importance_normalize(in, 3, 5, DAPT_NORM_TANH_Z, out);
    for (int i = 0; i < 15; i++) CU_ASSERT_DOUBLE_EQUAL(out[i], want[i], 1e-6);
}

/* Two global batches with known head gradients, split over the ranks in
 * uneven parts: signed and absolute accumulations equal the hand-computed
 * global values whatever the number of ranks. */
static void test_importance_layout_invariant(void)
{
    dapt_model_config mc = tiny_config();
    const float g1[4] = {1, -2, 0.5f, 4}, g2[4] = {-3, 1, 0.5f, -1}; /* [layers=2, heads=2] */
    const double tokens1 = 10, tokens2 = 30;
    int r = dapt_test_world_rank(), p = dapt_test_world_size();
    double share = (double)(r + 1) / (p * (p + 1) / 2.0); /* uneven, sums to 1 */
    for (int mode = 0; mode < 2; mode++) {
        dapt_importance imp;
        CU_ASSERT_EQUAL_FATAL(dapt_importance_create(&mc, (dapt_importance_mode)mode, &imp), DAPT_OK);
        for (int b = 0; b < 2; b++) {
            const float *g = b ? g2 : g1;
            dapt_unit_mask_grads grads = dapt_importance_batch_grads(&imp);
            for (int i = 0; i < 4; i++) grads.head[i] += (float)(g[i] * share);
            grads.intermediate[0] += (float)share;
            CU_ASSERT_EQUAL(dapt_importance_add_batch(&imp, (b ? tokens2 : tokens1) * share, MPI_COMM_WORLD), DAPT_OK);
        }
        float raw[4];
        CU_ASSERT_EQUAL(dapt_importance_raw(&imp, DAPT_UNIT_HEAD, raw), DAPT_OK);
        for (int i = 0; i < 4; i++) {
            double want = mode == DAPT_IMPORTANCE_SIGNED ? (g1[i] + g2[i]) / 40.0 : (fabs(g1[i]) + fabs(g2[i])) / 40.0;
            CU_ASSERT_DOUBLE_EQUAL(raw[i], want, 1e-6);
        }
        float inter[12];
        CU_ASSERT_EQUAL(dapt_importance_raw(&imp, DAPT_UNIT_INTERMEDIATE, inter), DAPT_OK);
        CU_ASSERT_DOUBLE_EQUAL(inter[0], 2.0 / 40.0, 1e-6);
        CU_ASSERT_EQUAL(inter[1], 0.0f);
        CU_ASSERT_DOUBLE_EQUAL(imp.tokens, 40.0, 1e-9);
        dapt_importance_free(&imp);
    }
    dapt_importance empty;
    CU_ASSERT_EQUAL_FATAL(dapt_importance_create(&mc, DAPT_IMPORTANCE_SIGNED, &empty), DAPT_OK);
    float raw[4];
    CU_ASSERT_EQUAL(dapt_importance_raw(&empty, DAPT_UNIT_HEAD, raw), DAPT_ERR_ARG);
    dapt_importance_free(&empty);
}

/* Gradient element (r, c) of a named tensor. */
static float grad_at(const dapt_param_table *t, const float *g, const char *name, int64_t r, int64_t c)
{
    const dapt_tensor *x = dapt_param_find(t, name);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    return g[x->offset + (size_t)(r * x->shape[1] + c)];
}

/* Every gradient starts at 1; after soft-masking each element must equal the
 * (1 - importance) of the unit that owns it, and 1 outside the masked
 * tensors.  Importance 1 gives exactly zero, importance 0 leaves it alone. */
static void test_softmask(void)
{
    dapt_model_config mc = tiny_config();
    dapt_param_table t;
    CU_ASSERT_EQUAL_FATAL(dapt_param_table_build(&mc, &t), DAPT_OK);
    float *g = malloc(sizeof(float) * t.total);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    const float head[4] = {1.0f, 0.0f, 0.25f, 0.5f}; /* [layer][head] */
    float inter[12], out[16];
    for (int i = 0; i < 12; i++) inter[i] = (float)i / 12.0f;
    for (int i = 0; i < 16; i++) out[i] = (float)(15 - i) / 15.0f;
    const int64_t d = 4; /* head size */

    for (int style = 0; style < 2; style++) {
        for (size_t i = 0; i < t.total; i++) g[i] = 1.0f;
        CU_ASSERT_EQUAL_FATAL(dapt_softmask_apply(&mc, &t, g, head, inter, out, (dapt_softmask_style)style), DAPT_OK);
        for (int64_t l = 0; l < 2; l++) {
            char name[64];
            for (int64_t r = 0; r < 8; r++)
                for (int64_t c = 0; c < 8; c++) {
                    float row_head = 1.0f - head[l * 2 + r / d], col_head = 1.0f - head[l * 2 + c / d];
                    snprintf(name, sizeof name, "layer.%lld.attn.k.weight", (long long)l);
                    CU_ASSERT_EQUAL(grad_at(&t, g, name, r, c), style == DAPT_SOFTMASK_PAPER ? row_head : col_head);
                    snprintf(name, sizeof name, "layer.%lld.attn.out.weight", (long long)l);
                    CU_ASSERT_EQUAL(grad_at(&t, g, name, r, c), col_head);
                }
            for (int64_t r = 0; r < 8; r++) {
                snprintf(name, sizeof name, "layer.%lld.attn.v.bias", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, r, 0), 1.0f - head[l * 2 + r / d]);
                snprintf(name, sizeof name, "layer.%lld.attn.out.bias", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, r, 0),
                                style == DAPT_SOFTMASK_PAPER ? 1.0f : 1.0f - head[l * 2 + r / d]);
                snprintf(name, sizeof name, "layer.%lld.ffn.out.bias", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, r, 0), 1.0f - out[l * 8 + r]);
                snprintf(name, sizeof name, "layer.%lld.ffn.out.weight", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, r, 5), 1.0f - out[l * 8 + r]);
                snprintf(name, sizeof name, "layer.%lld.attn.ln.weight", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, r, 0), 1.0f);
            }
            for (int64_t i = 0; i < 6; i++) {
                snprintf(name, sizeof name, "layer.%lld.ffn.in.weight", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, i, 7), 1.0f - inter[l * 6 + i]);
                snprintf(name, sizeof name, "layer.%lld.ffn.in.bias", (long long)l);
                CU_ASSERT_EQUAL(grad_at(&t, g, name, i, 0), 1.0f - inter[l * 6 + i]);
            }
        }
        /* Head 0 of layer 0 has importance 1: its query rows get exactly 0. */
        CU_ASSERT_EQUAL(grad_at(&t, g, "layer.0.attn.q.bias", 0, 0), style == DAPT_SOFTMASK_PAPER ? 0.0f : 0.0f);
        CU_ASSERT_EQUAL(grad_at(&t, g, "embeddings.word", 3, 2), 1.0f);
        CU_ASSERT_EQUAL(grad_at(&t, g, "mlm.bias", 4, 0), 1.0f);
    }
    /* NULL importances leave gradients alone. */
    for (size_t i = 0; i < t.total; i++) g[i] = 1.0f;
    CU_ASSERT_EQUAL(dapt_softmask_apply(&mc, &t, g, NULL, NULL, NULL, DAPT_SOFTMASK_PAPER), DAPT_OK);
    int changed = 0;
    for (size_t i = 0; i < t.total; i++) changed += g[i] != 1.0f;
    CU_ASSERT_EQUAL(changed, 0);
    free(g);
    dapt_param_table_free(&t);
}

/* Mean pooling: padding excluded; backward is the adjoint of forward
 * (<d_out, pool(h)> = <pool^T(d_out), h> for every h). */
static void test_mean_pool(void)
{
    enum { B = 2, S = 3, D = 2 };
    const float h[B * S * D] = {1, 2, 3, 4, 100, 100, 5, 6, 7, 8, 9, 10};
    const int32_t mask[B * S] = {1, 1, 0, 1, 1, 1};
    float out[B * D];
    dapt_mean_pool_forward(h, mask, B, S, D, out);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 3.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[2], 7.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(out[3], 8.0, 1e-6);
    const float d_out[B * D] = {0.5f, -1.0f, 2.0f, 3.0f};
    float d_h[B * S * D] = {0};
    dapt_mean_pool_backward(d_out, mask, B, S, D, d_h);
    double lhs = 0, rhs = 0;
    for (int i = 0; i < B * D; i++) lhs += d_out[i] * out[i];
    for (int i = 0; i < B * S * D; i++) rhs += d_h[i] * h[i] * (mask[i / D] ? 1 : 0);
    CU_ASSERT_DOUBLE_EQUAL(lhs, rhs, 1e-4);
    CU_ASSERT_EQUAL(d_h[4], 0.0f); /* the padding position gets nothing */
}

/* The global loss and this rank's rows of the gradients match PyTorch's
 * autograd (float64 reference from float32 inputs; dapt computes in double
 * and returns float gradients, so 1e-5 relative covers the float rounding). */
static void test_contrastive_vs_torch(void)
{
    hid_t f = H5Fopen(dapt_test_path("tests/fixtures/das/contrastive.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    enum { N = 6, D = 16 };
    double z[3][N * D], dz[3][N * D], want_loss, tau;
    static const char *const names[3] = {"z1", "z2", "z3"}, *const dnames[3] = {"d_z1", "d_z2", "d_z3"};
    for (int k = 0; k < 3; k++) {
        read_fixture(f, names[k], z[k]);
        read_fixture(f, dnames[k], dz[k]);
    }
    read_fixture(f, "loss", &want_loss);
    hid_t a = H5Aopen(f, "tau", H5P_DEFAULT);
    CU_ASSERT(H5Aread(a, H5T_NATIVE_DOUBLE, &tau) >= 0);
    H5Aclose(a);
    H5Fclose(f);

    /* This rank's block of the global batch (uneven when 4 ranks share 6). */
    int r = dapt_test_world_rank(), p = dapt_test_world_size();
    int64_t first = (int64_t)N * r / p, last = (int64_t)N * (r + 1) / p, n = last - first;
    float mine[3][N * D], grads[3][N * D];
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < n * D; i++) mine[k][i] = (float)z[k][first * D + i];
    double loss = 0;
    CU_ASSERT_EQUAL_FATAL(dapt_contrastive_loss(mine[0], mine[1], mine[2], n, D, tau, MPI_COMM_WORLD, &loss,
                                                grads[0], grads[1], grads[2]), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, want_loss, 1e-6 * fabs(want_loss));
    double worst = 0;
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < n * D; i++) {
            double ref = dz[k][first * D + i], err = fabs(grads[k][i] - ref) / (fabs(ref) + 1e-3);
            if (err > worst) worst = err;
        }
    CU_ASSERT(worst < 1e-5);
    if (worst >= 1e-5) fprintf(stderr, "\n  worst relative gradient error %g\n", worst);
}

/* Central differences in double on the float interface: the loss is smooth
 * and O(1), so a step of 1e-3 leaves truncation error ~1e-6; the tolerance
 * 2e-3 absolute is far above that and far below the gradients checked. */
static void test_contrastive_finite_differences(void)
{
    enum { N = 4, D = 5 };
    float z[3][N * D], g[3][N * D];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < N * D; i++) z[k][i] = (float)sin(1.7 * i + 0.9 * k) + (k == 1 ? 0.3f * (float)cos(i) : 0.0f);
    double loss;
    const double tau = 0.5;
    CU_ASSERT_EQUAL_FATAL(dapt_contrastive_loss(z[0], z[1], z[2], N, D, tau, MPI_COMM_SELF, &loss, g[0], g[1], g[2]), DAPT_OK);
    int bad = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < N * D; i++) {
            const float h = 1e-3f, keep = z[k][i];
            double up, down;
            z[k][i] = keep + h;
            dapt_contrastive_loss(z[0], z[1], z[2], N, D, tau, MPI_COMM_SELF, &up, NULL, NULL, NULL);
            z[k][i] = keep - h;
            dapt_contrastive_loss(z[0], z[1], z[2], N, D, tau, MPI_COMM_SELF, &down, NULL, NULL, NULL);
            z[k][i] = keep;
            double fd = (up - down) / (2.0 * (double)h);
            if (fabs(fd - g[k][i]) > 2e-3) bad++;
        }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(dapt_contrastive_loss(z[0], z[1], z[2], N, D, 0.0, MPI_COMM_SELF, &loss, NULL, NULL, NULL),
                    DAPT_ERR_ARG);
}

/* The token-axis KL proxy and its gradient match PyTorch (float64 from
 * float32 inputs; dapt computes in double, returns float gradients). */
static void test_token_kl_vs_torch(void)
{
    hid_t f = H5Fopen(dapt_test_path("tests/fixtures/das/contrastive.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    enum { B = 3, S = 5, H = 4, NE = B * S * H };
    double student_d[NE], teacher_d[NE], mask_d[B * S], want_grad[NE], want_loss, T;
    read_fixture(f, "kl_student", student_d);
    read_fixture(f, "kl_teacher", teacher_d);
    read_fixture(f, "kl_mask", mask_d);
    read_fixture(f, "kl_d_student", want_grad);
    read_fixture(f, "kl_loss", &want_loss);
    hid_t a = H5Aopen(f, "kl_temperature", H5P_DEFAULT);
    CU_ASSERT(H5Aread(a, H5T_NATIVE_DOUBLE, &T) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    float student[NE], teacher[NE], grad[NE];
    int32_t mask[B * S];
    for (int i = 0; i < NE; i++) {
        student[i] = (float)student_d[i];
        teacher[i] = (float)teacher_d[i];
    }
    for (int i = 0; i < B * S; i++) mask[i] = (int32_t)mask_d[i];
    double loss = 0;
    CU_ASSERT_EQUAL_FATAL(dapt_token_kl_loss(student, teacher, mask, B, S, H, T, &loss, grad), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, want_loss, 1e-9 + 1e-6 * fabs(want_loss));
    int bad = 0;
    for (int i = 0; i < NE; i++) bad += fabs(grad[i] - want_grad[i]) > 1e-6 + 1e-5 * fabs(want_grad[i]);
    CU_ASSERT_EQUAL(bad, 0);
    /* Padding positions get no gradient; identical inputs give zero loss
     * (dropout must differ between the passes for the proxy to mean
     * anything: the reference code's evaluation-mode passes are identical). */
    CU_ASSERT_EQUAL(grad[(1 * S + 4) * H + 2], 0.0f);
    CU_ASSERT_EQUAL(dapt_token_kl_loss(teacher, teacher, mask, B, S, H, T, &loss, NULL), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, 0.0, 1e-12);
    /* Without a mask, padding positions take part (the reference's behaviour). */
    double with_padding = 0;
    CU_ASSERT_EQUAL(dapt_token_kl_loss(student, teacher, NULL, B, S, H, T, &with_padding, NULL), DAPT_OK);
    CU_ASSERT(fabs(with_padding - want_loss) > 1e-3);
    CU_ASSERT_EQUAL(dapt_token_kl_loss(student, teacher, mask, B, S, H, 0.0, &loss, NULL), DAPT_ERR_ARG);
}

/* The KL's other argument and other direction (the KL proxy through both
 * passes; ContinualLM's KL(p_student || p_teacher)) match PyTorch autograd
 * with both arguments as leaves, within the tolerances of the test above
 * (float32 gradients: measured max 1.8e-9). */
static double kl_worst; /* largest |got - want| seen by count_off */

static int count_off(const float *got, const double *want, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        kl_worst = fmax(kl_worst, fabs(got[i] - want[i]));
        bad += fabs(got[i] - want[i]) > 1e-6 + 1e-5 * fabs(want[i]);
    }
    return bad;
}

enum { KB = 3, KS = 5, KH = 4, KNE = KB * KS * KH };

typedef struct kl_fixture {
    float student[KNE], teacher[KNE];
    int32_t mask[KB * KS];
    double T;
} kl_fixture;

static void read_kl_fixture(hid_t f, kl_fixture *k)
{
    double s[KNE], t[KNE], m[KB * KS];
    read_fixture(f, "kl_student", s);
    read_fixture(f, "kl_teacher", t);
    read_fixture(f, "kl_mask", m);
    for (int i = 0; i < KNE; i++) {
        k->student[i] = (float)s[i];
        k->teacher[i] = (float)t[i];
    }
    for (int i = 0; i < KB * KS; i++) k->mask[i] = (int32_t)m[i];
    hid_t a = H5Aopen(f, "kl_temperature", H5P_DEFAULT);
    CU_ASSERT(H5Aread(a, H5T_NATIVE_DOUBLE, &k->T) >= 0);
    H5Aclose(a);
}

static void test_token_kl_both_arguments_vs_torch(void)
{
    hid_t f = H5Fopen(dapt_test_path("tests/fixtures/das/contrastive.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    kl_fixture k;
    read_kl_fixture(f, &k);
    double want_ds[KNE], want_dt[KNE], ref_ds[KNE], ref_dt[KNE], want_loss, ref_loss;
    read_fixture(f, "kl_d_student", want_ds);
    read_fixture(f, "kl_d_teacher", want_dt);
    read_fixture(f, "kl_loss", &want_loss);
    read_fixture(f, "kl_ref_d_student", ref_ds);
    read_fixture(f, "kl_ref_d_teacher", ref_dt);
    read_fixture(f, "kl_ref_loss", &ref_loss);
    H5Fclose(f);
    float ds[KNE], dt[KNE], plain[KNE];
    double loss = 0, plain_loss = 0;
    /* dapt's direction: the student's gradient is dapt_token_kl_loss's bit for bit. */
    CU_ASSERT_EQUAL_FATAL(dapt_token_kl_loss_ex(k.student, k.teacher, k.mask, KB, KS, KH, k.T, DAPT_KL_TEACHER_STUDENT,
                                                &loss, ds, dt), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_token_kl_loss(k.student, k.teacher, k.mask, KB, KS, KH, k.T, &plain_loss, plain), DAPT_OK);
    CU_ASSERT_EQUAL(loss, plain_loss);
    CU_ASSERT_EQUAL(memcmp(ds, plain, sizeof ds), 0);
    CU_ASSERT_DOUBLE_EQUAL(loss, want_loss, 1e-9 + 1e-6 * fabs(want_loss));
    CU_ASSERT_EQUAL(count_off(dt, want_dt, KNE), 0);
    /* The reference direction. */
    CU_ASSERT_EQUAL_FATAL(dapt_token_kl_loss_ex(k.student, k.teacher, k.mask, KB, KS, KH, k.T, DAPT_KL_STUDENT_TEACHER,
                                                &loss, ds, dt), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, ref_loss, 1e-9 + 1e-6 * fabs(ref_loss));
    CU_ASSERT(fabs(ref_loss - want_loss) > 1e-3 * fabs(want_loss)); /* the directions differ here */
    CU_ASSERT_EQUAL(count_off(ds, ref_ds, KNE), 0);
    CU_ASSERT_EQUAL(count_off(dt, ref_dt, KNE), 0);
    CU_ASSERT_EQUAL(dt[(1 * KS + 4) * KH + 2], 0.0f); /* padding */
    fprintf(stderr, "(max |dapt - torch| = %.3g) ", kl_worst);
    CU_ASSERT_EQUAL(dapt_token_kl_loss_ex(k.student, k.teacher, k.mask, KB, KS, KH, k.T, (dapt_kl_direction)2, &loss,
                                          NULL, NULL), DAPT_ERR_ARG);
}

/* Central differences of the loss in each direction with respect to every
 * element of both arguments.  h = 1e-2 on values of size ~1 (T = 2): the
 * truncation error h^2 |L'''| / 6 is ~1e-6 and the loss is computed in
 * double, so |fd - g| <= 2e-5 separates a wrong term (off by O(|g|) ~ 1e-2)
 * from rounding (measured max 5.8e-7). */
static void test_token_kl_finite_differences(void)
{
    hid_t f = H5Fopen(dapt_test_path("tests/fixtures/das/contrastive.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    kl_fixture k;
    read_kl_fixture(f, &k);
    H5Fclose(f);
    double worst = 0;
    int bad = 0, sizeable = 0;
    for (int dir = 0; dir < 2; dir++) {
        float grad[2][KNE];
        double loss = 0, up = 0, down = 0;
        CU_ASSERT_EQUAL_FATAL(dapt_token_kl_loss_ex(k.student, k.teacher, k.mask, KB, KS, KH, k.T,
                                                    (dapt_kl_direction)dir, &loss, grad[0], grad[1]), DAPT_OK);
        for (int arg = 0; arg < 2; arg++) {
            float *x = arg ? k.teacher : k.student;
            for (int i = 0; i < KNE; i++) {
                const float keep = x[i], h = 1e-2f;
                x[i] = keep + h;
                dapt_token_kl_loss_ex(k.student, k.teacher, k.mask, KB, KS, KH, k.T, (dapt_kl_direction)dir, &up, NULL, NULL);
                x[i] = keep - h;
                dapt_token_kl_loss_ex(k.student, k.teacher, k.mask, KB, KS, KH, k.T, (dapt_kl_direction)dir, &down, NULL, NULL);
                x[i] = keep;
                double fd = (up - down) / ((double)(keep + h) - (double)(keep - h));
                double err = fabs(fd - grad[arg][i]);
                worst = fmax(worst, err);
                bad += err > 2e-5;
                sizeable += fabs(grad[arg][i]) > 1e-3;
            }
        }
    }
    fprintf(stderr, "(max |fd - g| = %.3g) ", worst);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(sizeable > 2 * KNE); /* most entries of the 4 gradients are not tiny */
}

/* Rank normalisation: the most important unit gets 1 whatever the number
 * of units (tanh_z caps 2 units at |tanh(1/sqrt 2)| = 0.6089), ties share
 * their average rank, the least important gets 0. */
static void test_normalize_rank(void)
{
    const float in[9] = {0.3f, 0.1f, 0.1f, 0.9f, /* layer 0: 4 units */ 7.0f, 2.0f, /* 2 units */ 4.0f, 4.0f, 4.0f};
    float out[4];
    dapt_importance_normalize(in, 1, 4, DAPT_NORM_RANK, out);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 2.0 / 3.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 0.5 / 3.0, 1e-7); /* tied for ranks 0 and 1 */
    CU_ASSERT_DOUBLE_EQUAL(out[2], 0.5 / 3.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(out[3], 1.0, 1e-7);
    float two[2], two_z[2];
    dapt_importance_normalize(in + 4, 1, 2, DAPT_NORM_RANK, two);
    dapt_importance_normalize(in + 4, 1, 2, DAPT_NORM_TANH_Z, two_z);
    CU_ASSERT_EQUAL(two[0], 1.0f);
    CU_ASSERT_EQUAL(two[1], 0.0f);
    CU_ASSERT_DOUBLE_EQUAL(two_z[0], tanh(1.0 / sqrt(2.0)), 1e-6);
    float same[3];
    dapt_importance_normalize(in + 6, 1, 3, DAPT_NORM_RANK, same);
    for (int i = 0; i < 3; i++) CU_ASSERT_DOUBLE_EQUAL(same[i], 0.5, 1e-7);
}

DAPT_TEST_MAIN("das",
               {"normalisation by hand", test_normalize_by_hand},
               {"rank normalisation", test_normalize_rank},
               {"normalisation vs torch", test_normalize_vs_torch},
               {"importance accumulation, any layout", test_importance_layout_invariant},
               {"soft-masked gradients", test_softmask},
               {"mean pooling", test_mean_pool},
               {"contrastive loss vs PyTorch", test_contrastive_vs_torch},
               {"contrastive loss finite differences", test_contrastive_finite_differences},
               {"token-axis KL proxy vs PyTorch", test_token_kl_vs_torch},
               {"token-axis KL: both arguments, both directions vs PyTorch", test_token_kl_both_arguments_vs_torch},
               {"token-axis KL: both arguments, both directions by finite differences", test_token_kl_finite_differences})
