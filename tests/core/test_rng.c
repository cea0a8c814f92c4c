/* Philox-4x32-10 known answers (Random123's kat_vectors) and the properties
 * every random decision in dapt relies on. */
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dapt/rng.h"

static void check_kat(const uint32_t ctr[4], const uint32_t key[2], const uint32_t want[4])
{
    uint32_t out[4];
    dapt_philox4x32_10(ctr, key, out);
    for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(out[i], want[i]);
}

static void test_known_answers(void)
{
    const uint32_t zero_ctr[4] = {0, 0, 0, 0}, zero_key[2] = {0, 0};
    const uint32_t zero_out[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    check_kat(zero_ctr, zero_key, zero_out);

    const uint32_t ff_ctr[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    const uint32_t ff_key[2] = {0xffffffffu, 0xffffffffu};
    const uint32_t ff_out[4] = {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu};
    check_kat(ff_ctr, ff_key, ff_out);

    const uint32_t pi_ctr[4] = {0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u};
    const uint32_t pi_key[2] = {0xa4093822u, 0x299f31d0u};
    const uint32_t pi_out[4] = {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u};
    check_kat(pi_ctr, pi_key, pi_out);
}

/* Pure function: the same arguments give the same numbers; any change of
 * seed, stream, step, sample or position gives different ones. */
static void test_pure_and_distinct(void)
{
    dapt_rng a = dapt_rng_make(42, DAPT_RNG_DROPOUT, 7);
    dapt_rng b = dapt_rng_make(42, DAPT_RNG_DROPOUT, 7);
    CU_ASSERT_EQUAL(dapt_rng_u32(&a, 5, 9), dapt_rng_u32(&b, 5, 9));
    uint32_t base = dapt_rng_u32(&a, 5, 9);
    dapt_rng seed2 = dapt_rng_make(43, DAPT_RNG_DROPOUT, 7);
    dapt_rng stream2 = dapt_rng_make(42, DAPT_RNG_MLM_MASK, 7);
    dapt_rng step2 = dapt_rng_make(42, DAPT_RNG_DROPOUT, 8);
    dapt_rng step_hi = dapt_rng_make(42, DAPT_RNG_DROPOUT, 7 + (1ull << 32));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&seed2, 5, 9));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&stream2, 5, 9));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&step2, 5, 9));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&step_hi, 5, 9));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&a, 6, 9));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&a, 5 + (1ull << 32), 9));
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&a, 5, 10));
    /* Seeds differing only in the high word differ too. */
    dapt_rng hi = dapt_rng_make(42 + (1ull << 32), DAPT_RNG_DROPOUT, 7);
    CU_ASSERT_NOT_EQUAL(base, dapt_rng_u32(&hi, 5, 9));
}

/* u32 at position p is word p%4 of block p/4. */
static void test_block_layout(void)
{
    dapt_rng r = dapt_rng_make(1, DAPT_RNG_TEST, 0);
    uint32_t block[4];
    dapt_rng_block(&r, 3, 10, block);
    for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(dapt_rng_u32(&r, 3, 40 + (uint64_t)i), block[i]);
}

/* The vectorised blocks equal one-at-a-time blocks, for counts that are
 * and are not multiples of the 16 lanes, across a 2^32 carry of the block
 * counter and with a sample above 2^32. */
static void test_blocks_match_block(void)
{
    dapt_rng r = dapt_rng_make(5, DAPT_RNG_DROPOUT, 2);
    static uint32_t many[4 * 70];
    const uint64_t starts[] = {0, 13, 0xFFFFFFF8ull};
    const uint64_t samples[] = {0, 7, (1ull << 32) + 3};
    for (int si = 0; si < 3; si++)
        for (int bi = 0; bi < 3; bi++)
            for (size_t n = 0; n <= 70; n += 7) {
                dapt_rng_blocks(&r, samples[si], starts[bi], n, many);
                int same = 1;
                for (size_t b = 0; b < n; b++) {
                    uint32_t one[4];
                    dapt_rng_block(&r, samples[si], starts[bi] + b, one);
                    for (int k = 0; k < 4; k++) same &= many[4 * b + k] == one[k];
                }
                CU_ASSERT(same);
            }
}

/* The fast fill equals element-wise draws for every alignment. */
static void test_fill_matches_pointwise(void)
{
    dapt_rng r = dapt_rng_make(9, DAPT_RNG_DROPOUT, 3);
    float buf[37];
    for (uint64_t first = 0; first < 6; first++) {
        for (size_t n = 0; n <= 37; n += 3) {
            dapt_rng_fill_uniform(&r, 11, first, n, buf);
            for (size_t i = 0; i < n; i++)
                CU_ASSERT_EQUAL(buf[i], dapt_rng_uniform(&r, 11, first + i));
        }
    }
}

/* Uniforms lie in [0,1) with the right mean and variance; 100k draws give a
 * standard error of the mean of 0.0009, so 0.005 is > 5 sigma. */
static void test_uniform_moments(void)
{
    dapt_rng r = dapt_rng_make(2024, DAPT_RNG_TEST, 1);
    const int n = 100000;
    double sum = 0, sum2 = 0, dsum = 0;
    int out_of_range = 0;
    for (int i = 0; i < n; i++) {
        float u = dapt_rng_uniform(&r, (uint64_t)i / 100, (uint64_t)i % 100);
        double d = dapt_rng_uniform_double(&r, 7, (uint64_t)i);
        if (!(u >= 0.0f && u < 1.0f) || !(d >= 0.0 && d < 1.0)) out_of_range++;
        sum += u;
        sum2 += (double)u * u;
        dsum += d;
    }
    CU_ASSERT_EQUAL(out_of_range, 0);
    CU_ASSERT_DOUBLE_EQUAL(sum / n, 0.5, 0.005);
    CU_ASSERT_DOUBLE_EQUAL(sum2 / n - (sum / n) * (sum / n), 1.0 / 12.0, 0.003);
    CU_ASSERT_DOUBLE_EQUAL(dsum / n, 0.5, 0.005);
}

/* Normals: mean 0, variance 1 (standard errors 0.0032 and 0.0045 at 100k). */
static void test_normal_moments(void)
{
    dapt_rng r = dapt_rng_make(77, DAPT_RNG_INIT, 0);
    const int n = 100000;
    double sum = 0, sum2 = 0;
    int finite = 1;
    for (int i = 0; i < n; i++) {
        float x = dapt_rng_normal(&r, 0, (uint64_t)i);
        finite &= isfinite(x) != 0;
        sum += x;
        sum2 += (double)x * x;
    }
    CU_ASSERT(finite);
    CU_ASSERT_DOUBLE_EQUAL(sum / n, 0.0, 0.02);
    CU_ASSERT_DOUBLE_EQUAL(sum2 / n, 1.0, 0.03);
}

/* dapt_rng_below stays in range and is close to uniform: a chi-square test
 * over 7 bins (6 degrees of freedom; 22.5 is the 0.999 quantile). */
static void test_below(void)
{
    dapt_rng r = dapt_rng_make(5, DAPT_RNG_SHUFFLE, 0);
    CU_ASSERT_EQUAL(dapt_rng_below(&r, 0, 0, 0), 0);
    CU_ASSERT_EQUAL(dapt_rng_below(&r, 0, 0, 1), 0);
    long counts[7] = {0};
    const int n = 70000;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        uint64_t x = dapt_rng_below(&r, 1, (uint64_t)i, 7);
        if (x >= 7) bad++;
        else counts[x]++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    double chi2 = 0;
    for (int k = 0; k < 7; k++) chi2 += (counts[k] - n / 7.0) * (counts[k] - n / 7.0) / (n / 7.0);
    CU_ASSERT(chi2 < 22.5);
    /* Huge n: the top half of the range is reachable. */
    uint64_t big = (1ull << 63) + 12345, seen_high = 0;
    for (uint64_t i = 0; i < 64; i++) {
        uint64_t x = dapt_rng_below(&r, 2, i, big);
        CU_ASSERT(x < big);
        seen_high |= x >= (1ull << 62);
    }
    CU_ASSERT(seen_high);
}

/* A permutation holds each index once and depends only on (rng, sample). */
static void test_permutation(void)
{
    enum { N = 1000 };
    static uint64_t p[N], q[N];
    static unsigned char seen[N];
    dapt_rng r = dapt_rng_make(1234, DAPT_RNG_SHUFFLE, 3);
    dapt_rng_permutation(&r, 0, p, N);
    dapt_rng_permutation(&r, 0, q, N);
    CU_ASSERT_EQUAL(memcmp(p, q, sizeof p), 0);
    memset(seen, 0, sizeof seen);
    int fixed = 0, dup = 0;
    for (int i = 0; i < N; i++) {
        if (p[i] >= N || seen[p[i]]) dup++;
        else seen[p[i]] = 1;
        fixed += p[i] == (uint64_t)i;
    }
    CU_ASSERT_EQUAL(dup, 0);
    CU_ASSERT(fixed < 10); /* expected 1 fixed point; 10 has probability ~1e-7 */
    dapt_rng r2 = dapt_rng_make(1234, DAPT_RNG_SHUFFLE, 4);
    dapt_rng_permutation(&r2, 0, q, N);
    CU_ASSERT_NOT_EQUAL(memcmp(p, q, sizeof p), 0);
    uint64_t one = 99;
    dapt_rng_permutation(&r, 0, &one, 1);
    CU_ASSERT_EQUAL(one, 0);
}

DAPT_TEST_MAIN("rng",
               {"Philox-4x32-10 known answers", test_known_answers},
               {"pure function of (seed, stream, step, sample, position)", test_pure_and_distinct},
               {"block layout", test_block_layout},
               {"vectorised blocks equal single blocks", test_blocks_match_block},
               {"fill equals pointwise", test_fill_matches_pointwise},
               {"uniform moments", test_uniform_moments},
               {"normal moments", test_normal_moments},
               {"below: range and chi-square", test_below},
               {"permutation", test_permutation})
