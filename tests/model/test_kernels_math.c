/* The engine's vectorisable math (src/model/kernels.h) against libm in
 * double: exp within 2 ulp over its domain and its edge cases (NaN, -inf,
 * underflow to 0), Phi / GELU / GELU' within 2.5e-7 (absolute, or relative
 * for |x| > 1), and the row kernels against the element functions bit for
 * bit, whichever clone (AVX-512, AVX2, baseline) the CPU picked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../src/model/kernels.h"
#include "harness.h"

static double ulp_err(float got, double want)
{
    const double ulp = ldexp(1.0, ilogb((float)want) - 23);
    return fabs((double)got - want) / ulp;
}

static void test_expf(void)
{
    double worst = 0;
    for (int64_t i = 0; i <= 2000000; i++) {
        const float x = -87.0f + (float)i * (175.0f / 2000000.0f);
        if (x > 88.0f) break;
        worst = fmax(worst, ulp_err(k_expf(x), exp((double)x)));
    }
    fprintf(stderr, "  k_expf: worst error %.2f ulp over [-87, 88]\n", worst);
    CU_ASSERT(worst <= 2.0);
    CU_ASSERT(k_expf(0.0f) == 1.0f);
    CU_ASSERT(isnan(k_expf(NAN)));
    CU_ASSERT(k_expf(-INFINITY) == 0.0f);
    CU_ASSERT(k_expf(-100.0f) == 0.0f);
    CU_ASSERT(isinf(k_expf(100.0f)) && k_expf(100.0f) > 0);
}

/* Phi(x) in double from libm's erfc. */
static double phi_ref(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static void test_gelu(void)
{
    double worst_cdf = 0, worst_g = 0, worst_gp = 0;
    for (int64_t i = 0; i <= 400000; i++) {
        const float x = -20.0f + (float)i * (40.0f / 400000.0f);
        const double xd = x, cdf = phi_ref(xd), pdf = exp(-0.5 * xd * xd) / sqrt(2.0 * M_PI);
        float p;
        const float c = k_phi(x, &p);
        const double scale = fmax(1.0, fabs(xd));
        worst_cdf = fmax(worst_cdf, fabs(c - cdf));
        worst_g = fmax(worst_g, fabs(k_gelu(x) - xd * cdf) / scale);
        worst_gp = fmax(worst_gp, fabs(k_gelu_grad(x) - (cdf + xd * pdf)) / scale);
    }
    fprintf(stderr, "  Phi %.3g, GELU %.3g, GELU' %.3g (worst absolute error, relative beyond |x| = 1)\n",
            worst_cdf, worst_g, worst_gp);
    CU_ASSERT(worst_cdf <= 2.5e-7);
    CU_ASSERT(worst_g <= 2e-7);
    CU_ASSERT(worst_gp <= 3e-7);
    CU_ASSERT(isnan(k_gelu(NAN)) && isnan(k_gelu_grad(NAN)));
    CU_ASSERT(k_gelu(-INFINITY) == 0.0f || isnan(k_gelu(-INFINITY)));
    CU_ASSERT(k_gelu(1e30f) == 1e30f);
}

static void test_rows_match_elements(void)
{
    enum { N = 1037 }; /* not a multiple of any vector width */
    static float u[N], gate[N], out[N], grad[N], d[N], row[N], add[N];
    for (int i = 0; i < N; i++) {
        u[i] = (float)sin(0.37 * i) * 6.0f;
        gate[i] = (float)(0.5 + 0.5 * cos(0.11 * i));
        add[i] = i % 7 == 0 ? -INFINITY : 0.0f;
        d[i] = 1.0f + (float)i / N;
    }
    k_gelu_row(N, u, gate, out, grad);
    int same = 1;
    for (int i = 0; i < N; i++)
        same &= out[i] == k_gelu(u[i] * gate[i]) && grad[i] == k_gelu_grad(u[i] * gate[i]);
    CU_ASSERT(same);
    k_gelu_row(N, u, NULL, out, NULL);
    same = 1;
    for (int i = 0; i < N; i++) same &= out[i] == k_gelu(u[i]);
    CU_ASSERT(same);
    k_gelu_grad_mul_row(N, u, d);
    same = 1;
    for (int i = 0; i < N; i++) same &= d[i] == (1.0f + (float)i / N) * k_gelu_grad(u[i]);
    CU_ASSERT(same);

    /* Softmax with a -inf mask: masked entries 0, the rest sum to 1 and
     * agree with double precision. */
    for (int i = 0; i < N; i++) row[i] = u[i];
    k_softmax_row(N, row, add);
    double mx = -INFINITY, z = 0, sum = 0, worst = 0;
    for (int i = 0; i < N; i++)
        if (add[i] == 0.0f) mx = fmax(mx, u[i]);
    for (int i = 0; i < N; i++)
        if (add[i] == 0.0f) z += exp((double)u[i] - mx);
    for (int i = 0; i < N; i++) {
        const double want = add[i] == 0.0f ? exp((double)u[i] - mx) / z : 0.0;
        worst = fmax(worst, fabs(row[i] - want) / fmax(want, 1e-30));
        sum += row[i];
        if (add[i] != 0.0f) CU_ASSERT(row[i] == 0.0f);
    }
    CU_ASSERT(fabs(sum - 1.0) < 1e-5);
    CU_ASSERT(worst < 2e-6);
    const double s = k_sum_exp_row(N, u, 3.0f);
    double sd = 0;
    for (int i = 0; i < N; i++) sd += exp((double)u[i] - 3.0);
    CU_ASSERT(fabs(s - sd) <= 1e-6 * sd);
    for (int i = 0; i < N; i++) row[i] = u[i];
    k_exp_scale_row(N, row, 3.0f, 0.5f);
    same = 1;
    for (int i = 0; i < N; i++) same &= row[i] == 0.5f * k_expf(u[i] - 3.0f);
    CU_ASSERT(same);
}

DAPT_TEST_MAIN("engine math", {"expf against libm", test_expf}, {"Phi, GELU and GELU' against erfc", test_gelu},
               {"row kernels equal the element functions", test_rows_match_elements})
