/* src/analysis building blocks: grid shapes, block-cyclic indices, the
 * HDF5 block reads and writes on every grid the job's ranks allow, column
 * and row reductions, anisotropy against a direct computation, effective
 * rank and Spearman.  Runs serially and under mpirun (analysis_ranks.test:
 * 2 and 4 ranks). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/analysis.h"
#include "dapt/config.h"
#include "harness.h"

/* The test matrix: 37 x 10 (37 is a multiple of no block size used). */
enum { M = 37, N = 10 };
static double value(int64_t i, int64_t j)
{
    return i == 5 ? 0.0 : sin(1.0 + 0.37 * (double)i) * (double)(j + 1) + 0.01 * (double)(i * j % 7);
}

static int size_of_world(void)
{
    int s = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

/* A shared scratch file name (rank 0's pid), in path[512]. */
static const char *scratch(const char *what, char *path)
{
    int pid = (int)getpid();
    MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
    snprintf(path, 512, "%s/dapt-analysis-%d-%s.h5", dapt_test_tmpdir(), pid, what);
    return path;
}

static void write_fixture(const char *path)
{
    static double a[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) a[i * N + j] = value(i, j);
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    dapt_h5file f;
    const int64_t dims[2] = {M, N};
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, path, 1, &cfg, &f), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_write_all(&f, "x", DAPT_H5_F64, 2, dims, a), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
}

static void test_grid_shape_is_most_square(void)
{
    int r, c;
    dapt_pgrid_shape(1, &r, &c);
    CU_ASSERT(r == 1 && c == 1);
    dapt_pgrid_shape(4, &r, &c);
    CU_ASSERT(r == 2 && c == 2);
    dapt_pgrid_shape(6, &r, &c);
    CU_ASSERT(r == 3 && c == 2);
    dapt_pgrid_shape(7, &r, &c);
    CU_ASSERT(r == 7 && c == 1);
    CU_ASSERT_EQUAL(dapt_pgrid_parse("2x3", &r, &c), DAPT_OK);
    CU_ASSERT(r == 2 && c == 3);
    CU_ASSERT_EQUAL(dapt_pgrid_parse("2", &r, &c), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL(dapt_pgrid_parse("0x2", &r, &c), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL(dapt_pgrid_parse("2x", &r, &c), DAPT_ERR_ARG);
}

static void test_grid_refuses_wrong_rank_count(void)
{
    dapt_pgrid g;
    int size = size_of_world();
    CU_ASSERT_EQUAL(dapt_pgrid_create(MPI_COMM_WORLD, size + 1, 1, &g), DAPT_ERR_ARG);
    CU_ASSERT(strstr(dapt_error_message(), "ranks") != NULL);
}

/* Every grid r x c with r c = size: blocks of 4 and 3, read in one
 * collective call or one per local row block, each element where
 * ScaLAPACK's indexing says, written back byte for byte. */
static void test_block_cyclic_read_write_every_grid(void)
{
    char in[512], out[512];
    scratch("in", in);
    scratch("out", out);
    write_fixture(in);
    int size = size_of_world();
    for (int r = 1; r <= size; r++) {
        if (size % r) continue;
        for (int variant = 0; variant < 4; variant++) {
            /* blocks of 3 and 4, read in one chunk or one row block per chunk */
            int block = 3 + (variant & 1);
            if (variant & 2) setenv("DAPT_ANALYZE_READ_CHUNK", "1", 1);
            else unsetenv("DAPT_ANALYZE_READ_CHUNK");
            dapt_pgrid g;
            CU_ASSERT_EQUAL_FATAL(dapt_pgrid_create(MPI_COMM_WORLD, r, size / r, &g), DAPT_OK);
            dapt_h5file f;
            dapt_dmat A;
            CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, in, &f), DAPT_OK);
            CU_ASSERT_EQUAL_FATAL(dapt_dmat_read_h5(&f, "x", &g, block, &A), DAPT_OK);
            dapt_h5_close(&f);
            long local = 0, bad = 0;
            for (int j = 0; j < A.locc; j++)
                for (int i = 0; i < A.locr; i++, local++)
                    bad += A.a[(size_t)j * A.lld + i] != value(dapt_dmat_grow(&A, i), dapt_dmat_gcol(&A, j));
            MPI_Allreduce(MPI_IN_PLACE, &local, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
            CU_ASSERT_EQUAL(bad, 0);
            CU_ASSERT_EQUAL(local, M * N); /* every element on exactly one rank */
            dapt_config cfg;
            dapt_config_defaults(&cfg);
            CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 1, &cfg, &f), DAPT_OK);
            CU_ASSERT_EQUAL(dapt_dmat_write_h5(&f, "y", &A), DAPT_OK);
            CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
            double *all = NULL;
            CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out, &f), DAPT_OK);
            CU_ASSERT_EQUAL_FATAL(dapt_h5_read_all(&f, "y", DAPT_H5_F64, (void **)&all, NULL, NULL), DAPT_OK);
            dapt_h5_close(&f);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) bad += all[i * N + j] != value(i, j);
            CU_ASSERT_EQUAL(bad, 0);
            free(all);
            dapt_dmat_free(&A);
            dapt_pgrid_free(&g);
        }
    }
    unsetenv("DAPT_ANALYZE_READ_CHUNK");
    if (getenv("DAPT_KEEP") == NULL) {
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        MPI_Barrier(MPI_COMM_WORLD);
        if (rank == 0) {
            remove(in);
            remove(out);
        }
    }
}

/* Column means, row and column sums of squares and the anisotropy equal
 * the direct sums on every grid. */
static void test_reductions_match_direct_sums(void)
{
    char in[512];
    scratch("red", in);
    write_fixture(in);
    double mean[N] = {0}, rows[M] = {0}, cols[N] = {0}, total = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double v = value(i, j);
            mean[j] += v / M;
            rows[i] += v * v;
            cols[j] += v * v;
            total += v * v;
        }
    double cos_sum = 0;
    int nz = 0;
    for (int i = 0; i < M; i++) {
        if (rows[i] == 0) continue;
        nz++;
        for (int k = 0; k < M; k++) {
            if (k == i || rows[k] == 0) continue;
            double d = 0;
            for (int j = 0; j < N; j++) d += value(i, j) * value(k, j);
            cos_sum += d / sqrt(rows[i] * rows[k]);
        }
    }
    int size = size_of_world();
    for (int r = 1; r <= size; r++) {
        if (size % r) continue;
        dapt_pgrid g;
        dapt_h5file f;
        dapt_dmat A;
        CU_ASSERT_EQUAL_FATAL(dapt_pgrid_create(MPI_COMM_WORLD, r, size / r, &g), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, in, &f), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(dapt_dmat_read_h5(&f, "x", &g, 4, &A), DAPT_OK);
        dapt_h5_close(&f);
        double got_rows[M], got_cols[N], got_mean[N], got_total = 0, aniso = 0;
        int64_t zero = 0;
        CU_ASSERT_EQUAL(dapt_dmat_row_sumsq(&A, got_rows), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_dmat_col_sumsq(&A, got_cols), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_dmat_sumsq(&A, &got_total), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_anisotropy(&A, &aniso, &zero), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_dmat_center(&A, 1, got_mean), DAPT_OK);
        for (int i = 0; i < M; i++) CU_ASSERT_DOUBLE_EQUAL(got_rows[i], rows[i], 1e-12 * (1 + rows[i]));
        for (int j = 0; j < N; j++) {
            CU_ASSERT_DOUBLE_EQUAL(got_cols[j], cols[j], 1e-12 * cols[j]);
            CU_ASSERT_DOUBLE_EQUAL(got_mean[j], mean[j], 1e-12);
        }
        CU_ASSERT_DOUBLE_EQUAL(got_total, total, 1e-12 * total);
        CU_ASSERT_DOUBLE_EQUAL(aniso, cos_sum / (nz * (double)(nz - 1)), 1e-12);
        CU_ASSERT_EQUAL(zero, 1);
        dapt_dmat_free(&A);
        dapt_pgrid_free(&g);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) remove(in);
}

static void test_effective_rank_and_participation(void)
{
    const double flat[4] = {2, 2, 2, 2}, one[3] = {5, 0, 0};
    CU_ASSERT_DOUBLE_EQUAL(dapt_effective_rank(flat, 4), 4.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(dapt_effective_rank(one, 3), 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(dapt_participation_ratio(flat, 4), 4.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(dapt_participation_ratio(one, 3), 1.0, 1e-12);
    const double two[2] = {3, 1}; /* p = (3/4, 1/4) */
    CU_ASSERT_DOUBLE_EQUAL(dapt_effective_rank(two, 2), exp(-(0.75 * log(0.75) + 0.25 * log(0.25))), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(dapt_participation_ratio(two, 2), 16.0 / 10.0, 1e-12);
}

static void test_spearman_ties_and_degenerate_cases(void)
{
    const double x[5] = {3, 1, 4, 1, 5}, y[5] = {30, 10, 40, 10, 50}, z[5] = {5, 4, 3, 2, 1};
    double r[5], rho = 0;
    dapt_rank_average(x, 5, r);
    CU_ASSERT_DOUBLE_EQUAL(r[1], 1.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(r[3], 1.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(r[4], 5.0, 0);
    CU_ASSERT_EQUAL(dapt_spearman(x, y, 5, &rho), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(rho, 1.0, 1e-15);
    const double up[5] = {1, 2, 3, 4, 5};
    CU_ASSERT_EQUAL(dapt_spearman(up, z, 5, &rho), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(rho, -1.0, 1e-15);
    const double flat[5] = {2, 2, 2, 2, 2};
    CU_ASSERT_EQUAL(dapt_spearman(flat, z, 5, &rho), DAPT_OK);
    CU_ASSERT(isnan(rho));
    CU_ASSERT_EQUAL(dapt_spearman(x, y, 1, &rho), DAPT_OK);
    CU_ASSERT(isnan(rho));
}

DAPT_TEST_MAIN("analysis", {"grid shape is the most square", test_grid_shape_is_most_square},
               {"grid refuses a wrong rank count", test_grid_refuses_wrong_rank_count},
               {"block-cyclic read and write on every grid", test_block_cyclic_read_write_every_grid},
               {"reductions match direct sums on every grid", test_reductions_match_direct_sums},
               {"effective rank and participation ratio", test_effective_rank_and_participation},
               {"spearman with ties and degenerate inputs", test_spearman_ties_and_degenerate_cases})
