/* Philox-4x32-10 and the (seed, stream, step, sample, position) mapping. */
#include "dapt/rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void philox_round(uint32_t c[4], const uint32_t k[2])
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c[1] ^ k[0];
    uint32_t n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

void dapt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

dapt_rng dapt_rng_make(uint64_t seed, uint32_t stream, uint64_t step)
{
    /* The key is itself a Philox output, so nearby (stream, step) pairs get
     * unrelated keys; the constant tags the derivation ("dapt"). */
    const uint32_t ctr[4] = {stream, (uint32_t)step, (uint32_t)(step >> 32), 0x64617074u};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t out[4];
    dapt_philox4x32_10(ctr, key, out);
    dapt_rng r = {{out[0], out[1]}};
    return r;
}

void dapt_rng_block(const dapt_rng *r, uint64_t sample, uint64_t block, uint32_t out[4])
{
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)sample,
                             (uint32_t)(sample >> 32)};
    dapt_philox4x32_10(ctr, r->key, out);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones) && !defined(__SANITIZE_ADDRESS__)
#define RNG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef RNG_CLONES
#define RNG_CLONES
#endif

/* Philox's rounds on 16 counters as four lane arrays, so that the 32 x 32
 * -> 64-bit products become vector multiplies (integer arithmetic: every
 * clone gives the same words). */
RNG_CLONES void dapt_rng_blocks(const dapt_rng *r, uint64_t sample, uint64_t block0, size_t n, uint32_t *out)
{
    enum { W = 16 };
    uint32_t c0[W], c1[W], c2[W], c3[W];
    for (size_t base = 0; base < n; base += W) {
        const size_t m = n - base < W ? n - base : W;
#pragma omp simd
        for (int i = 0; i < W; i++) {
            const uint64_t b = block0 + base + (uint64_t)i;
            c0[i] = (uint32_t)b;
            c1[i] = (uint32_t)(b >> 32);
            c2[i] = (uint32_t)sample;
            c3[i] = (uint32_t)(sample >> 32);
        }
        uint32_t k0 = r->key[0], k1 = r->key[1];
        for (int round = 0; round < 10; round++) {
            if (round > 0) {
                k0 += PHILOX_W0;
                k1 += PHILOX_W1;
            }
#pragma omp simd
            for (int i = 0; i < W; i++) {
                const uint64_t p0 = (uint64_t)PHILOX_M0 * c0[i], p1 = (uint64_t)PHILOX_M1 * c2[i];
                const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[i] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[i] ^ k1;
                c0[i] = n0;
                c1[i] = (uint32_t)p1;
                c2[i] = n2;
                c3[i] = (uint32_t)p0;
            }
        }
        for (size_t i = 0; i < m; i++) {
            uint32_t *o = out + 4 * (base + i);
            o[0] = c0[i];
            o[1] = c1[i];
            o[2] = c2[i];
            o[3] = c3[i];
        }
    }
}

uint32_t dapt_rng_u32(const dapt_rng *r, uint64_t sample, uint64_t position)
{
    uint32_t out[4];
    dapt_rng_block(r, sample, position >> 2, out);
    return out[position & 3];
}

static inline float u32_to_unit_float(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

float dapt_rng_uniform(const dapt_rng *r, uint64_t sample, uint64_t position)
{
    return u32_to_unit_float(dapt_rng_u32(r, sample, position));
}

double dapt_rng_uniform_double(const dapt_rng *r, uint64_t sample, uint64_t position)
{
    uint64_t hi = dapt_rng_u32(r, sample, 2 * position);
    uint64_t lo = dapt_rng_u32(r, sample, 2 * position + 1);
    uint64_t bits = ((hi << 32) | lo) >> 11;
    return (double)bits * (1.0 / 9007199254740992.0);
}

void dapt_rng_fill_uniform(const dapt_rng *r, uint64_t sample, uint64_t first, size_t n, float *out)
{
    size_t i = 0;
    uint32_t block[4];
    /* Leading partial block. */
    while (i < n && ((first + i) & 3) != 0) {
        out[i] = dapt_rng_uniform(r, sample, first + i);
        i++;
    }
    for (; i + 4 <= n; i += 4) {
        dapt_rng_block(r, sample, (first + i) >> 2, block);
        out[i] = u32_to_unit_float(block[0]);
        out[i + 1] = u32_to_unit_float(block[1]);
        out[i + 2] = u32_to_unit_float(block[2]);
        out[i + 3] = u32_to_unit_float(block[3]);
    }
    for (; i < n; i++) out[i] = dapt_rng_uniform(r, sample, first + i);
}

float dapt_rng_normal(const dapt_rng *r, uint64_t sample, uint64_t position)
{
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - dapt_rng_uniform_double(r, sample, 2 * position);
    double u2 = dapt_rng_uniform_double(r, sample, 2 * position + 1);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t dapt_rng_below(const dapt_rng *r, uint64_t sample, uint64_t position, uint64_t n)
{
    if (n <= 1) return 0;
    /* Rejection of the top (2^64 mod n) values makes the result unbiased.
     * Four 64-bit draws are available per position; the chance that all four
     * are rejected is below (n / 2^64)^4, and then the last draw is used. */
    uint64_t threshold = (0 - n) % n;
    uint64_t x = 0;
    for (uint64_t k = 0; k < 4; k++) {
        uint64_t hi = dapt_rng_u32(r, sample, 8 * position + 2 * k);
        uint64_t lo = dapt_rng_u32(r, sample, 8 * position + 2 * k + 1);
        x = (hi << 32) | lo;
        if (x >= threshold) break;
    }
    return x % n;
}

void dapt_rng_permutation(const dapt_rng *r, uint64_t sample, uint64_t *perm, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = dapt_rng_below(r, sample, i - 1, i);
        uint64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

uint64_t dapt_rng_stream_tag(int stream)
{
    switch (stream) {
    case DAPT_RNG_VIEW1: return 0x766965773175ull;            /* "view1u" */
    case DAPT_RNG_VIEW2: return 0x766965773275ull;            /* "view2u" */
    case DAPT_RNG_VIEW3: return 0x766965773375ull;            /* "view3u" */
    case DAPT_RNG_IMPORTANCE_ORDER: return 0x696d707274ull;   /* "imprt" */
    case DAPT_RNG_FROZEN: return 0x66726f7a656eull;           /* "frozen" */
    case DAPT_RNG_KD_STUDENT: return 0x6b6473747564ull;       /* "kdstud" */
    case DAPT_RNG_KD_TEACHER: return 0x6b647465616368ull;     /* "kdteach" */
    case DAPT_RNG_CSE_VIEW_B: return 0x6373657662ull;         /* "csevb" */
    default: return 0;
    }
}
