/* Counter-based random numbers (Philox-4x32-10, Salmon et al., SC'11).
 *
 * Every random decision in dapt is a pure function of
 *   (seed, stream, step, global sample index, position)
 * so results do not depend on how samples are spread over ranks.  A stream
 * id separates independent uses (dropout, masking, shuffling, ...); the key
 * is derived from (seed, stream, step), the counter from (sample, position).
 * Nothing here is collective or has hidden state. */
#ifndef DAPT_RNG_H
#define DAPT_RNG_H

#include <stddef.h>
#include <stdint.h>

/* Stream ids: one per kind of random decision.  Append, never renumber:
 * checkpoints and fixtures depend on these values. */
enum dapt_rng_stream_id {
    DAPT_RNG_SHUFFLE = 1,   /* epoch permutation of samples */
    DAPT_RNG_SPLIT = 2,     /* held-out split of documents */
    DAPT_RNG_MLM_MASK = 3,  /* which tokens are masked, 80/10/10 choice */
    DAPT_RNG_DROPOUT = 4,   /* dropout masks (position = layer-specific index) */
    DAPT_RNG_INIT = 5,      /* parameter initialisation */
    DAPT_RNG_ADVERSARIAL = 6, /* SMART perturbation noise */
    DAPT_RNG_OBJECTIVE = 7, /* MOMETAS objective sampling */
    /* Derived-seed streams: the engine's dropout (or a sample order) run with
     * seed ^ dapt_rng_stream_tag(id) instead of the run seed, so these passes
     * draw masks of their own.  The tags are the ASCII names below (kept so
     * that existing runs and fixtures reproduce). */
    DAPT_RNG_VIEW1 = 8,            /* DGA/DAS contrastive view z1 ("view1u") */
    DAPT_RNG_VIEW2 = 9,            /* view z2 ("view2u") */
    DAPT_RNG_VIEW3 = 10,           /* view z3, importance-masked ("view3u") */
    DAPT_RNG_IMPORTANCE_ORDER = 11, /* sample order of importance / Fisher passes ("imprt") */
    DAPT_RNG_FROZEN = 12,          /* the frozen pass of the KL importance proxy ("frozen") */
    DAPT_RNG_KD_STUDENT = 13,      /* kd.input = clean: the student's pass on the clean input ("kdstud") */
    DAPT_RNG_KD_TEACHER = 14,      /* kd.teacher_dropout: the teacher's dropout ("kdteach") */
    /* Plain streams again (no tag). */
    DAPT_RNG_ATD = 15, /* MOMETAS added-token detection: insertions and the inserted ids */
    DAPT_RNG_DTD = 16, /* MOMETAS deleted-token detection: deletions */
    /* Derived-seed stream. */
    DAPT_RNG_CSE_VIEW_B = 17, /* MOMETAS cse: the dropout of view b ("csevb") */
    /* Plain streams. */
    DAPT_RNG_EMLM = 18, /* MOMETAS guided masking: which guide tokens are masked, 80/10/10 */
    DAPT_RNG_TEST = 99
};

/* The 64-bit tag XORed into the seed by a derived-seed stream (0 for the
 * others). */
uint64_t dapt_rng_stream_tag(int stream);

/* The raw block cipher: 10 rounds of Philox-4x32 on ctr under key. */
void dapt_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A key bound to (seed, stream, step).  Cheap to make; make one per step. */
typedef struct dapt_rng {
    uint32_t key[2];
} dapt_rng;

dapt_rng dapt_rng_make(uint64_t seed, uint32_t stream, uint64_t step);

/* Four 32-bit words for (sample, block); block = position / 4. */
void dapt_rng_block(const dapt_rng *r, uint64_t sample, uint64_t block, uint32_t out[4]);

/* The blocks block0 .. block0 + n - 1 of (sample), four words each, into
 * out[4 n]: the same words as n calls of dapt_rng_block, computed 16 blocks
 * at a time in vector lanes (dropout draws one word per element).  Not
 * collective. */
void dapt_rng_blocks(const dapt_rng *r, uint64_t sample, uint64_t block0, size_t n, uint32_t *out);

/* One 32-bit word for (sample, position). */
uint32_t dapt_rng_u32(const dapt_rng *r, uint64_t sample, uint64_t position);

/* Uniform float in [0, 1) with 24 random bits, for (sample, position). */
float dapt_rng_uniform(const dapt_rng *r, uint64_t sample, uint64_t position);

/* Uniform double in [0, 1) with 53 random bits (uses positions 2p, 2p+1). */
double dapt_rng_uniform_double(const dapt_rng *r, uint64_t sample, uint64_t position);

/* out[i] = dapt_rng_uniform(r, sample, first + i) for i < n, fast. */
void dapt_rng_fill_uniform(const dapt_rng *r, uint64_t sample, uint64_t first,
                           size_t n, float *out);

/* Standard normal (Box-Muller on positions 2p, 2p+1). */
float dapt_rng_normal(const dapt_rng *r, uint64_t sample, uint64_t position);

/* Unbiased integer in [0, n) (n > 0), by rejection on successive positions
 * starting at position * 8. */
uint64_t dapt_rng_below(const dapt_rng *r, uint64_t sample, uint64_t position, uint64_t n);

/* perm[0..n) = a permutation of 0..n-1 that depends only on (r, sample):
 * Fisher-Yates with dapt_rng_below. */
void dapt_rng_permutation(const dapt_rng *r, uint64_t sample, uint64_t *perm, uint64_t n);

#endif
