/* Draws the random decisions of a few training steps the way dapt's data
 * parallelism does (global permutation per epoch, contiguous block of the
 * global batch per rank, per-sample masks and dropout keyed by the global
 * sample index) and writes them, gathered on rank 0, to a file.
 * rng_ranks.test runs it with 1, 2 and 3 ranks and compares the files.
 *   usage: rng_ranks_draw SEED OUT */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/rng.h"

enum { SAMPLES = 500, BATCH = 37, STEPS = 5, POSITIONS = 64, PER_SAMPLE = 2 * POSITIONS };

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc != 3) {
        if (rank == 0) fprintf(stderr, "usage: rng_ranks_draw SEED OUT\n");
        MPI_Finalize();
        return 2;
    }
    uint64_t seed = strtoull(argv[1], NULL, 10);
    static uint64_t perm[SAMPLES];
    dapt_rng shuffle = dapt_rng_make(seed, DAPT_RNG_SHUFFLE, 0);
    dapt_rng_permutation(&shuffle, 0, perm, SAMPLES);

    /* Block of the global batch this rank owns. */
    int first = (int)((int64_t)BATCH * rank / size), last = (int)((int64_t)BATCH * (rank + 1) / size);
    int mine = last - first;
    uint32_t *local = malloc(sizeof(uint32_t) * (size_t)(mine > 0 ? mine : 1) * PER_SAMPLE);
    uint32_t *all = malloc(sizeof(uint32_t) * (size_t)BATCH * PER_SAMPLE);
    int *counts = malloc(sizeof(int) * (size_t)size), *displs = malloc(sizeof(int) * (size_t)size);
    if (!local || !all || !counts || !displs) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int r = 0; r < size; r++) {
        int f = (int)((int64_t)BATCH * r / size), l = (int)((int64_t)BATCH * (r + 1) / size);
        counts[r] = (l - f) * PER_SAMPLE;
        displs[r] = f * PER_SAMPLE;
    }
    FILE *out = rank == 0 ? fopen(argv[2], "wb") : NULL;
    if (rank == 0 && !out) {
        fprintf(stderr, "rng_ranks_draw: cannot open %s\n", argv[2]);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    for (uint64_t step = 0; step < STEPS; step++) {
        dapt_rng mask = dapt_rng_make(seed, DAPT_RNG_MLM_MASK, step);
        dapt_rng drop = dapt_rng_make(seed, DAPT_RNG_DROPOUT, step);
        for (int i = 0; i < mine; i++) {
            uint64_t sample = perm[(step * BATCH + (uint64_t)(first + i)) % SAMPLES];
            uint32_t *row = local + (size_t)i * PER_SAMPLE;
            for (uint64_t p = 0; p < POSITIONS; p++) {
                row[p] = dapt_rng_uniform(&mask, sample, p) < 0.15f ? (uint32_t)dapt_rng_below(&mask, sample, POSITIONS + p, 3) + 1 : 0;
                row[POSITIONS + p] = dapt_rng_u32(&drop, sample, p);
            }
        }
        MPI_Gatherv(local, mine * PER_SAMPLE, MPI_UINT32_T, all, counts, displs, MPI_UINT32_T, 0,
                    MPI_COMM_WORLD);
        if (rank == 0 && fwrite(all, sizeof(uint32_t), (size_t)BATCH * PER_SAMPLE, out) != (size_t)BATCH * PER_SAMPLE)
            MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (out && fclose(out) != 0) MPI_Abort(MPI_COMM_WORLD, 1);
    free(local);
    free(all);
    free(counts);
    free(displs);
    MPI_Finalize();
    return 0;
}
