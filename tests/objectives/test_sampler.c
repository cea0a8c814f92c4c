/* The MOMETAS sampler's pieces (src/objectives/sampler.h): the reward and
 * the closed-form REINFORCE + entropy step on the logits equal the
 * reference's autograd step (tests/fixtures/objectives/sampler.txt, made by
 * tools/fixtures/make_mometas_fixtures.py with PyTorch); the Gumbel-max draw
 * follows softmax(z). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../../src/objectives/sampler.h"
#include "fixture_text.h"
#include "harness.h"

static void test_update_matches_pytorch(void)
{
    FILE *fp = fopen(dapt_test_path("tests/fixtures/objectives/sampler.txt"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    char line[256], word[16];
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, fp));
    int cases = 0;
    while (fscanf(fp, "%15s", word) == 1) {
        CU_ASSERT_STRING_EQUAL_FATAL(word, "case");
        int K = 0;
        double lr, gamma, thr, z[DAPT_SAMPLER_MAX], c[DAPT_SAMPLER_MAX], old[DAPT_SAMPLER_MAX], now[DAPT_SAMPLER_MAX],
            reward, want[DAPT_SAMPLER_MAX];
        CU_ASSERT_FATAL(fscanf(fp, "%d %lf %lf %lf", &K, &lr, &gamma, &thr) == 4 && K <= DAPT_SAMPLER_MAX);
        CU_ASSERT_FATAL(fixture_doubles(fp, "z", z, K) == 0 && fixture_doubles(fp, "counts", c, K) == 0);
        CU_ASSERT_FATAL(fixture_doubles(fp, "old", old, K) == 0 && fixture_doubles(fp, "new", now, K) == 0);
        CU_ASSERT_FATAL(fixture_doubles(fp, "reward", &reward, 1) == 0 && fixture_doubles(fp, "z_new", want, K) == 0);
        int64_t counts[DAPT_SAMPLER_MAX];
        for (int i = 0; i < K; i++) counts[i] = (int64_t)c[i];
        const double r = dapt_sampler_reward(old, now, (size_t)K, thr);
        CU_ASSERT_DOUBLE_EQUAL(r, reward, 1e-14);
        dapt_sampler_update(z, (size_t)K, counts, r, lr, gamma);
        for (int i = 0; i < K; i++) CU_ASSERT_DOUBLE_EQUAL(z[i], want[i], 1e-13);
        cases++;
    }
    fclose(fp);
    CU_ASSERT_EQUAL(cases, 4);
}

/* 30000 steps: each objective's frequency within 0.01 of softmax(z) (about
 * 4 standard deviations), and a draw is a function of (seed, step). */
static void test_draw_follows_softmax(void)
{
    const double z[3] = {0.0, log(2.0), log(5.0)};
    double p[3];
    dapt_sampler_probs(z, 3, p);
    CU_ASSERT_DOUBLE_EQUAL(p[2], 0.625, 1e-12);
    int64_t n[3] = {0, 0, 0};
    const int steps = 30000;
    for (int t = 0; t < steps; t++) n[dapt_sampler_draw(z, 3, 42, (uint64_t)t)]++;
    for (int i = 0; i < 3; i++) CU_ASSERT_DOUBLE_EQUAL((double)n[i] / steps, p[i], 0.01);
    CU_ASSERT_EQUAL(dapt_sampler_draw(z, 3, 42, 77), dapt_sampler_draw(z, 3, 42, 77));
    /* Another seed, another sequence. */
    int differ = 0;
    for (int t = 0; t < 50; t++) differ += dapt_sampler_draw(z, 3, 42, (uint64_t)t) != dapt_sampler_draw(z, 3, 43, (uint64_t)t);
    CU_ASSERT(differ > 5);
}

DAPT_TEST_MAIN("sampler", {"reward and logit step match PyTorch", test_update_matches_pytorch},
               {"the draw follows softmax(z)", test_draw_follows_softmax})
