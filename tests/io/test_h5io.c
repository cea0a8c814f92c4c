/* Parallel HDF5 helpers: slab writes and reads on any number of ranks,
 * attributes, the temporary-name/commit/abort protocol and error lines.
 * Runs serially and under `mpirun -n 2/3` (see h5io_ranks.test). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dapt/h5io.h"
#include "harness.h"

static int rank, nranks;

static void setup(void)
{
    rank = dapt_test_world_rank();
    nranks = dapt_test_world_size();
    dapt_test_shared_dir("h5io");
}

static const char *path_in_dir(const char *name) { return dapt_test_shared_path(name); }

static int exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Rows [begin, begin + count) of n rows for this rank: uneven, and some
 * ranks get none when n < nranks. */
static void my_rows(int64_t n, int64_t *begin, int64_t *count)
{
    int64_t base = n / nranks, extra = n % nranks;
    *begin = rank * base + (rank < extra ? rank : extra);
    *count = base + (rank < extra ? 1 : 0);
}

static void test_roundtrip_types(void)
{
    setup();
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    dapt_h5file f;
    const char *out = path_in_dir("types.h5");
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 1, &cfg, &f), DAPT_OK);
    /* 2-D float [7, 5] by rows; 1-D int64 [2] (fewer rows than ranks at 3);
     * 3-D uint16; scalar double; empty int32 dataset. */
    const int64_t fd[2] = {7, 5};
    int64_t b, c;
    my_rows(fd[0], &b, &c);
    float fl[35];
    for (int64_t i = 0; i < c * 5; i++) fl[i] = (float)(b * 5 + i) * 0.5f - 3.0f;
    CU_ASSERT_EQUAL(dapt_h5_write_rows(&f, "a/b/floats", DAPT_H5_F32, 2, fd, b, c, fl), DAPT_OK);
    const int64_t id[1] = {2};
    my_rows(id[0], &b, &c);
    int64_t iv[2];
    for (int64_t i = 0; i < c; i++) iv[i] = (int64_t)1 << 40 | (b + i);
    CU_ASSERT_EQUAL(dapt_h5_write_rows(&f, "ints", DAPT_H5_I64, 1, id, b, c, iv), DAPT_OK);
    const int64_t ud[3] = {3, 2, 2};
    uint16_t u16[12];
    for (int i = 0; i < 12; i++) u16[i] = (uint16_t)(60000 + i);
    CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "a/u16", DAPT_H5_U16, 3, ud, u16), DAPT_OK);
    double sc = 2.718281828459045;
    CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "scalar", DAPT_H5_F64, 0, NULL, &sc), DAPT_OK);
    const int64_t ed[1] = {0};
    CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "empty", DAPT_H5_I32, 1, ed, NULL), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_attr_set_string(&f, "a/b/floats", "note", "héllo"), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_attr_set_int64(&f, "/", "answer", -42), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_attr_set_double(&f, "a", "eps", 1e-12), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_attr_set_int64(&f, "/", "answer", 43), DAPT_OK); /* replaces */
    CU_ASSERT_FALSE(exists(out) && 0);
    CU_ASSERT_TRUE(exists(f.tmp_path));
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
    CU_ASSERT_TRUE(exists(out));
    CU_ASSERT_FALSE(exists(f.tmp_path));

    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out, &f), DAPT_OK);
    int nd;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type t;
    CU_ASSERT_EQUAL(dapt_h5_info(&f, "a/b/floats", &nd, dims, &t), DAPT_OK);
    CU_ASSERT(nd == 2 && dims[0] == 7 && dims[1] == 5 && t == DAPT_H5_F32);
    /* Read a column slab [2..6) x [1..4) on every rank. */
    float part[12];
    const int64_t st[2] = {2, 1}, ct[2] = {4, 3};
    CU_ASSERT_EQUAL(dapt_h5_read(&f, "a/b/floats", DAPT_H5_F32, 2, st, ct, part), DAPT_OK);
    int ok = 1;
    for (int r = 0; r < 4; r++)
        for (int k = 0; k < 3; k++) ok &= part[r * 3 + k] == (float)((2 + r) * 5 + 1 + k) * 0.5f - 3.0f;
    CU_ASSERT_TRUE(ok);
    void *all = NULL;
    CU_ASSERT_EQUAL(dapt_h5_read_all(&f, "ints", DAPT_H5_I64, &all, &nd, dims), DAPT_OK);
    CU_ASSERT(nd == 1 && dims[0] == 2 && ((int64_t *)all)[1] == ((int64_t)1 << 40 | 1));
    free(all);
    CU_ASSERT_EQUAL(dapt_h5_read_all(&f, "a/u16", DAPT_H5_U16, &all, &nd, dims), DAPT_OK);
    CU_ASSERT(nd == 3 && dims[2] == 2 && ((uint16_t *)all)[11] == 60011);
    free(all);
    double got;
    CU_ASSERT_EQUAL(dapt_h5_read(&f, "scalar", DAPT_H5_F64, 0, NULL, NULL, &got), DAPT_OK);
    CU_ASSERT_EQUAL(got, sc);
    CU_ASSERT_EQUAL(dapt_h5_info(&f, "empty", &nd, dims, &t), DAPT_OK);
    CU_ASSERT(nd == 1 && dims[0] == 0 && t == DAPT_H5_I32);
    char *s = NULL;
    CU_ASSERT_EQUAL(dapt_h5_attr_get_string(&f, "a/b/floats", "note", &s), DAPT_OK);
    CU_ASSERT_STRING_EQUAL(s ? s : "", "héllo");
    free(s);
    int64_t ans = 0;
    CU_ASSERT_EQUAL(dapt_h5_attr_get_int64(&f, "/", "answer", &ans), DAPT_OK);
    CU_ASSERT_EQUAL(ans, 43);
    double eps = 0;
    CU_ASSERT_EQUAL(dapt_h5_attr_get_double(&f, "a", "eps", &eps), DAPT_OK);
    CU_ASSERT_EQUAL(eps, 1e-12);
    /* The run configuration rides along in every file. */
    char *ini = NULL, *want = NULL;
    CU_ASSERT_EQUAL(dapt_h5_attr_get_string(&f, "/", "dapt_config", &ini), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_config_to_ini(&cfg, 0, &want), DAPT_OK);
    CU_ASSERT_STRING_EQUAL(ini ? ini : "", want ? want : "x");
    free(ini);
    free(want);
    CU_ASSERT_TRUE(dapt_h5_exists(&f, "a/b"));
    CU_ASSERT_FALSE(dapt_h5_exists(&f, "a/nope/deeper"));
    /* Wrong kind of read: one line naming file and dataset. */
    int64_t wrong[35];
    const int64_t z[2] = {0, 0}, c1[2] = {1, 5};
    CU_ASSERT_EQUAL(dapt_h5_read(&f, "a/b/floats", DAPT_H5_I64, 2, z, c1, wrong), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "types.h5: a/b/floats: stored as float32"));
    CU_ASSERT_EQUAL(dapt_h5_read_all(&f, "missing/ds", DAPT_H5_F32, &all, NULL, NULL), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "types.h5: no dataset missing/ds"));
    CU_ASSERT_EQUAL(dapt_h5_attr_get_int64(&f, "a", "eps", &ans), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "attribute eps is not an integer"));
    dapt_h5_close(&f);
}

static void test_exists_force_abort(void)
{
    setup();
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    const char *out = path_in_dir("guard.h5");
    dapt_h5file f;
    const int64_t d[1] = {3};
    const int32_t v1[3] = {1, 2, 3}, v2[3] = {7, 8, 9};
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 0, &cfg, &f), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "v", DAPT_H5_I32, 1, d, v1), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
    /* Existing output refused without force. */
    CU_ASSERT_EQUAL(dapt_h5_create(MPI_COMM_WORLD, out, 0, &cfg, &f), DAPT_ERR_EXISTS);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "guard.h5 exists"));
    /* With force, an aborted rewrite leaves the old file untouched. */
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 1, &cfg, &f), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "v", DAPT_H5_I32, 1, d, v2), DAPT_OK);
    char tmp[sizeof f.tmp_path];
    memcpy(tmp, f.tmp_path, sizeof tmp);
    dapt_h5_abort(&f);
    CU_ASSERT_FALSE(exists(tmp));
    int32_t got[3] = {0};
    const int64_t s0[1] = {0};
    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out, &f), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_read(&f, "v", DAPT_H5_I32, 1, s0, d, got), DAPT_OK);
    CU_ASSERT(got[0] == 1 && got[2] == 3);
    dapt_h5_close(&f);
    /* A committed forced rewrite replaces it. */
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 1, &cfg, &f), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "v", DAPT_H5_I32, 1, d, v2), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out, &f), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_read(&f, "v", DAPT_H5_I32, 1, s0, d, got), DAPT_OK);
    CU_ASSERT(got[0] == 7 && got[2] == 9);
    dapt_h5_close(&f);
    /* A missing directory is one line naming the temporary file. */
    CU_ASSERT_EQUAL(dapt_h5_create(MPI_COMM_WORLD, path_in_dir("no/such/dir/x.h5"), 0, &cfg, &f),
                    DAPT_ERR_HDF5);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "no/such/dir/x.h5.tmp."));
}

static void test_open_errors(void)
{
    setup();
    dapt_h5file f;
    CU_ASSERT_EQUAL(dapt_h5_open(MPI_COMM_WORLD, path_in_dir("absent.h5"), &f), DAPT_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "absent.h5: cannot read"));
    const char *junk = path_in_dir("junk.h5");
    if (rank == 0) {
        FILE *fp = fopen(junk, "w");
        fputs("not an HDF5 file at all", fp);
        fclose(fp);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(dapt_h5_open(MPI_COMM_WORLD, junk, &f), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "junk.h5: /: opening as HDF5 failed"));
}

/* The same content written by one rank or split over all gives the same
 * bytes (no timestamps, no rank-dependent layout). */
static void test_deterministic(void)
{
    setup();
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    const int64_t d[2] = {50, 3};
    float v[150];
    for (int i = 0; i < 150; i++) v[i] = (float)i / 7.0f;
    const char *names[2] = {path_in_dir("det1.h5"), path_in_dir("det2.h5")};
    for (int k = 0; k < 2; k++) {
        dapt_h5file f;
        CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, names[k], 1, &cfg, &f), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_h5_attr_set_string(&f, "/", "kind", "test"), DAPT_OK);
        if (k == 0) {
            CU_ASSERT_EQUAL(dapt_h5_write_all(&f, "g/x", DAPT_H5_F32, 2, d, v), DAPT_OK);
        } else {
            int64_t b, c;
            my_rows(d[0], &b, &c);
            CU_ASSERT_EQUAL(dapt_h5_write_rows(&f, "g/x", DAPT_H5_F32, 2, d, b, c, v + b * 3), DAPT_OK);
        }
        CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
        if (k == 0) sleep(1); /* a timestamp would now differ */
    }
    if (rank == 0) {
        FILE *a = fopen(names[0], "rb"), *b = fopen(names[1], "rb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        int same = 1, ca, cb;
        do {
            ca = fgetc(a);
            cb = fgetc(b);
            same &= ca == cb;
        } while (ca != EOF && cb != EOF);
        CU_ASSERT_TRUE(same);
        fclose(a);
        fclose(b);
    }
}

/* Create once, then several collective slab writes: rank r fills rows
 * r, r + n, r + 2n, ... one round at a time; ranks out of rows still call. */
static void test_two_step(void)
{
    setup();
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    const char *out = path_in_dir("steps.h5");
    dapt_h5file f;
    const int64_t d[3] = {5, 2, 3};
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 1, &cfg, &f), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_create_dataset(&f, "x", DAPT_H5_I32, 3, d), DAPT_OK);
    int64_t rounds = (d[0] + nranks - 1) / nranks;
    for (int64_t k = 0; k < rounds; k++) {
        int64_t row = k * nranks + rank;
        int32_t v[6];
        for (int i = 0; i < 6; i++) v[i] = (int32_t)(row * 6 + i);
        const int64_t start[3] = {row < d[0] ? row : 0, 0, 0}, count[3] = {row < d[0] ? 1 : 0, 2, 3};
        CU_ASSERT_EQUAL(dapt_h5_write_slab(&f, "x", DAPT_H5_I32, start, count, v), DAPT_OK);
    }
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out, &f), DAPT_OK);
    void *all = NULL;
    CU_ASSERT_EQUAL(dapt_h5_read_all(&f, "x", DAPT_H5_I32, &all, NULL, NULL), DAPT_OK);
    int ok = all != NULL;
    for (int i = 0; ok && i < 30; i++) ok = ((int32_t *)all)[i] == i;
    CU_ASSERT_TRUE(ok);
    free(all);
    dapt_h5_close(&f);
}

/* Multi-block 1-D writes: rank r writes every nranks-th block of 3 (some
 * ranks none), independent and collective, uint32 beyond 16 bits; fixed-
 * length strings round-trip.  The same bytes as one rank writing it all. */
static void test_blocks_and_strings(void)
{
    setup();
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    enum { N = 20, B = 7 }; /* blocks [3k, 3k + 3), the last one short */
    uint32_t all[N];
    for (int i = 0; i < N; i++) all[i] = 70000u + (uint32_t)i * 3u;
    char *names[3] = {"animal", "", "vehicle \xc3\xa9"};
    const char *outs[2] = {path_in_dir("blocks1.h5"), path_in_dir("blocks2.h5")};
    for (int k = 0; k < 2; k++) {
        dapt_h5file f;
        CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, outs[k], 1, &cfg, &f), DAPT_OK);
        int64_t starts[B], counts[B];
        uint32_t mine[N];
        size_t nb = 0, used = 0;
        for (int b = 0; b < B; b++) {
            int owner = k == 0 ? 0 : b % nranks;
            if (owner != rank) continue;
            starts[nb] = 3 * b;
            counts[nb] = 3 * b + 3 <= N ? 3 : N - 3 * b;
            memcpy(mine + used, all + starts[nb], (size_t)counts[nb] * sizeof *mine);
            used += (size_t)counts[nb];
            nb++;
        }
        CU_ASSERT_EQUAL(dapt_h5_write_blocks(&f, "ids", DAPT_H5_U32, N, nb, starts, counts, mine,
                                             DAPT_H5_INDEPENDENT), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_h5_write_blocks(&f, "g/ids2", DAPT_H5_U32, N, nb, starts, counts, mine,
                                             DAPT_H5_COLLECTIVE), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_h5_write_strings(&f, "names", names, 3), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);
    }
    dapt_h5file f;
    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, outs[1], &f), DAPT_OK);
    dapt_h5_type t;
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    CU_ASSERT_EQUAL(dapt_h5_info(&f, "ids", &nd, dims, &t), DAPT_OK);
    CU_ASSERT(nd == 1 && dims[0] == N && t == DAPT_H5_U32);
    for (int k = 0; k < 2; k++) {
        void *got = NULL;
        CU_ASSERT_EQUAL(dapt_h5_read_all(&f, k ? "g/ids2" : "ids", DAPT_H5_I64, &got, NULL, NULL), DAPT_OK);
        int ok = got != NULL;
        for (int i = 0; ok && i < N; i++) ok = ((int64_t *)got)[i] == (int64_t)all[i];
        CU_ASSERT_TRUE(ok);
        free(got);
    }
    char **str = NULL;
    int64_t ns = 0;
    CU_ASSERT_EQUAL_FATAL(dapt_h5_read_strings(&f, "names", &str, &ns), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(ns, 3);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_STRING_EQUAL(str[i], names[i]);
        free(str[i]);
    }
    free(str);
    CU_ASSERT_EQUAL(dapt_h5_read_strings(&f, "ids", &str, &ns), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "ids is not an array of fixed-length strings"));
    CU_ASSERT_EQUAL(dapt_h5_read_strings(&f, "absent", &str, &ns), DAPT_ERR_FORMAT);
    dapt_h5_close(&f);
    if (rank == 0) {
        FILE *a = fopen(outs[0], "rb"), *b = fopen(outs[1], "rb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        int same = 1, ca, cb;
        do {
            ca = fgetc(a);
            cb = fgetc(b);
            same &= ca == cb;
        } while (ca != EOF && cb != EOF);
        CU_ASSERT_TRUE(same);
        fclose(a);
        fclose(b);
    }
}

/* Datasets written and read as raw byte ranges in one collective
 * transfer: each rank's rows of one tensor, a vector from rank 0 only,
 * given out of order; read back through HDF5 and as extents that overlap
 * across ranks; a short read and overlapping extents refused. */
static void test_raw_extents(void)
{
    setup();
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    enum { R = 13, C = 5, V = 7 };
    float a[R * C], v[V];
    for (int i = 0; i < R * C; i++) a[i] = 0.5f * (float)i - 3.0f;
    for (int i = 0; i < V; i++) v[i] = 100.0f + (float)i;
    const char *out = path_in_dir("extents.h5");
    dapt_h5file f;
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out, 1, &cfg, &f), DAPT_OK);
    const int64_t da[2] = {R, C}, dv[1] = {V};
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create_dataset(&f, "t/a", DAPT_H5_F32, 2, da), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create_dataset(&f, "t/v", DAPT_H5_F32, 1, dv), DAPT_OK);
    int64_t oa = -1, ov = -1, other = 0;
    CU_ASSERT_EQUAL(dapt_h5_raw_offset(&f, "t/a", DAPT_H5_F32, &oa), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_raw_offset(&f, "t/v", DAPT_H5_F32, &ov), DAPT_OK);
    CU_ASSERT(oa > 0 && ov > 0 && (ov >= oa + R * C * 4 || oa >= ov + V * 4));
    /* Another memory type is not the stored bytes. */
    CU_ASSERT_EQUAL(dapt_h5_raw_offset(&f, "t/a", DAPT_H5_F64, &other), DAPT_OK);
    CU_ASSERT_EQUAL(other, -1);
    CU_ASSERT_EQUAL(dapt_h5_raw_offset(&f, "t/absent", DAPT_H5_F32, &other), DAPT_ERR_FORMAT);
    int64_t b, c;
    my_rows(R, &b, &c);
    dapt_h5_extent e[2];
    size_t n = 0;
    if (rank == 0) e[n++] = (dapt_h5_extent){ov, V * 4, v}; /* after a's in the file or not: sorted inside */
    if (c > 0) e[n++] = (dapt_h5_extent){oa + b * C * 4, c * C * 4, a + b * C};
    CU_ASSERT_EQUAL(dapt_h5_write_extents(&f, e, n), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&f), DAPT_OK);

    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out, &f), DAPT_OK);
    void *got = NULL;
    CU_ASSERT_EQUAL_FATAL(dapt_h5_read_all(&f, "t/a", DAPT_H5_F32, &got, NULL, NULL), DAPT_OK);
    CU_ASSERT_EQUAL(memcmp(got, a, sizeof a), 0);
    free(got);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_read_all(&f, "t/v", DAPT_H5_F32, &got, NULL, NULL), DAPT_OK);
    CU_ASSERT_EQUAL(memcmp(got, v, sizeof v), 0);
    free(got);
    /* Every rank reads everything: the same bytes in several ranks' reads. */
    int64_t ra = -1, rv = -1;
    CU_ASSERT_EQUAL(dapt_h5_raw_offset(&f, "t/a", DAPT_H5_F32, &ra), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_h5_raw_offset(&f, "t/v", DAPT_H5_F32, &rv), DAPT_OK);
    CU_ASSERT(ra == oa && rv == ov);
    float ba[R * C], bv[V];
    memset(ba, 0, sizeof ba);
    memset(bv, 0, sizeof bv);
    dapt_h5_extent r[2] = {{rv, V * 4, bv}, {ra, R * C * 4, ba}};
    CU_ASSERT_EQUAL(dapt_h5_read_extents(&f, r, 2), DAPT_OK);
    CU_ASSERT_EQUAL(memcmp(ba, a, sizeof a), 0);
    CU_ASSERT_EQUAL(memcmp(bv, v, sizeof v), 0);
    /* Past the end of the file: a short read, on rank 0 only, fails on all. */
    struct stat sb;
    CU_ASSERT_EQUAL_FATAL(stat(out, &sb), 0);
    dapt_h5_extent past = {(int64_t)sb.st_size - 4, 16, bv};
    dapt_status st = dapt_h5_read_extents(&f, &past, rank == 0);
    CU_ASSERT_NOT_EQUAL(st, DAPT_OK);
    if (rank == 0) {
        CU_ASSERT_EQUAL(st, DAPT_ERR_FORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "the file is truncated"));
    }
    /* Overlapping extents of one rank are a bug in the caller. */
    dapt_h5_extent overlap[2] = {{ra, 16, ba}, {ra + 8, 16, ba + 8}};
    CU_ASSERT_NOT_EQUAL(dapt_h5_read_extents(&f, overlap, 2), DAPT_OK);
    /* Many datasets, rows dealt round-robin: every rank's extents
     * interleave with every other's in the file. */
    enum { D = 20, RR = 17, CC = 3 };
    static float big[D][RR * CC];
    for (int d = 0; d < D; d++)
        for (int i = 0; i < RR * CC; i++) big[d][i] = (float)(1000 * d + i);
    const char *out2 = path_in_dir("extents2.h5");
    dapt_h5file g;
    CU_ASSERT_EQUAL_FATAL(dapt_h5_create(MPI_COMM_WORLD, out2, 1, &cfg, &g), DAPT_OK);
    static dapt_h5_extent many[D * RR];
    size_t nm = 0;
    const int64_t dd[2] = {RR, CC};
    for (int d = 0; d < D; d++) {
        char name[32];
        snprintf(name, sizeof name, "m/%02d", d);
        int64_t off = -1;
        CU_ASSERT_EQUAL_FATAL(dapt_h5_create_dataset(&g, name, DAPT_H5_F32, 2, dd), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(dapt_h5_raw_offset(&g, name, DAPT_H5_F32, &off), DAPT_OK);
        CU_ASSERT_FATAL(off > 0);
        for (int i = rank; i < RR; i += nranks) many[nm++] = (dapt_h5_extent){off + i * CC * 4, CC * 4, big[d] + i * CC};
    }
    CU_ASSERT_EQUAL(dapt_h5_write_extents(&g, many, nm), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_commit(&g), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_h5_open(MPI_COMM_WORLD, out2, &g), DAPT_OK);
    int same = 1;
    for (int d = 0; d < D; d++) {
        char name[32];
        snprintf(name, sizeof name, "m/%02d", d);
        CU_ASSERT_EQUAL_FATAL(dapt_h5_read_all(&g, name, DAPT_H5_F32, &got, NULL, NULL), DAPT_OK);
        same &= memcmp(got, big[d], sizeof big[d]) == 0;
        free(got);
    }
    CU_ASSERT_TRUE(same);
    dapt_h5_close(&g);
    /* The view is HDF5's again: a plain read still works. */
    CU_ASSERT_EQUAL_FATAL(dapt_h5_read_all(&f, "t/v", DAPT_H5_F32, &got, NULL, NULL), DAPT_OK);
    CU_ASSERT_EQUAL(memcmp(got, v, sizeof v), 0);
    free(got);
    dapt_h5_close(&f);
}

static void test_cleanup(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        CU_ASSERT_EQUAL(dapt_test_remove_tree(dapt_test_shared_dir("h5io")), 0);
    }
}

DAPT_TEST_MAIN("h5io", {"write and read every type by slabs", test_roundtrip_types},
               {"existing output, force and abort", test_exists_force_abort},
               {"open errors name the file", test_open_errors},
               {"byte-identical files whatever the split", test_deterministic},
               {"create, then write slabs in rounds", test_two_step},
               {"multi-block writes and fixed-length strings", test_blocks_and_strings},
               {"raw extents in one collective transfer", test_raw_extents},
               {"remove scratch files", test_cleanup})
