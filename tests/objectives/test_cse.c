/* MOMETAS's cse loss (src/objectives/cse.h) against the reference's loss
 * and its autograd gradient (tests/fixtures/objectives/cse.txt, made by
 * tools/fixtures/make_mometas_fixtures.py in float64 PyTorch), with the
 * rows split over however many ranks run it (cse.test: 1 and 2): the
 * negatives come from the global batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/objectives/cse.h"
#include "dapt/share.h"
#include "fixture_text.h"
#include "harness.h"

#define MAXN 64

static void test_cse_matches_reference(void)
{
    FILE *fp = fopen(dapt_test_path("tests/fixtures/objectives/cse.txt"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    char line[256];
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, fp));
    long long n = 0, dim = 0;
    double tau = 0, want_loss = 0;
    CU_ASSERT_FATAL(fscanf(fp, "%lld %lld %lf", &n, &dim, &tau) == 3 && n * dim <= MAXN);
    double za[MAXN], zb[MAXN], dza[MAXN], dzb[MAXN];
    CU_ASSERT_FATAL(fixture_doubles(fp, "za", za, n * dim) == 0 && fixture_doubles(fp, "zb", zb, n * dim) == 0);
    CU_ASSERT_FATAL(fixture_doubles(fp, "loss", &want_loss, 1) == 0);
    CU_ASSERT_FATAL(fixture_doubles(fp, "dza", dza, n * dim) == 0 && fixture_doubles(fp, "dzb", dzb, n * dim) == 0);
    fclose(fp);

    int64_t first, count;
    dapt_share(n, dapt_test_world_rank(), dapt_test_world_size(), &first, &count);
    float a[MAXN], b[MAXN], ga[MAXN], gb[MAXN], scratch[6 * MAXN];
    for (int64_t i = 0; i < count * dim; i++) {
        a[i] = (float)za[first * dim + i];
        b[i] = (float)zb[first * dim + i];
    }
    double loss = 0;
    CU_ASSERT_FATAL(dapt_cse_loss(a, b, count, dim, tau, MPI_COMM_WORLD, scratch, count > 0 ? count : 1, &loss, ga,
                                  gb) == DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, want_loss, 1e-9 * fabs(want_loss));
    double worst = 0;
    for (int64_t i = 0; i < count * dim; i++) {
        worst = fmax(worst, fabs(ga[i] - dza[first * dim + i]));
        worst = fmax(worst, fabs(gb[i] - dzb[first * dim + i]));
    }
    /* float32 gradients of entries of order 1e-1 */
    CU_ASSERT(worst < 1e-6);
    if (worst >= 1e-6) fprintf(stderr, "cse gradient off by %g\n", worst);
}

DAPT_TEST_MAIN("cse", {"the cse loss and gradient match the reference", test_cse_matches_reference})
