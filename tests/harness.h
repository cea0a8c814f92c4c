/* Shared CUnit harness for dapt's test programs.
 *
 * A test program lists its cases and ends with
 *     DAPT_TEST_MAIN("suite name", {"case", fn}, ...)
 * main() initialises MPI (a singleton when not under mpirun, so the same
 * program runs serially or as `mpirun -n 2 prog`), runs the suite with
 * CUnit's basic interface and exits non-zero if any assertion failed on any
 * rank.  Fixture paths: dapt_test_path("tests/fixtures/x") resolves against
 * $top_srcdir (set by `make check`) or the current directory. */
#ifndef DAPT_TESTS_HARNESS_H
#define DAPT_TESTS_HARNESS_H

#include <CUnit/Basic.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/params.h"

typedef struct dapt_test_case {
    const char *name;
    void (*fn)(void);
} dapt_test_case;

static inline const char *dapt_test_path(const char *relative)
{
    static char buf[8][4096];
    static int next = 0;
    const char *top = getenv("top_srcdir");
    char *out = buf[next++ % 8];
    snprintf(out, sizeof buf[0], "%s/%s", top && *top ? top : ".", relative);
    return out;
}

/* A scratch directory for files a test writes: $TMPDIR or /tmp. */
static inline const char *dapt_test_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* --- Shared helpers (bodies in tests/harness.c, linked through TEST_LIBS) --- */

/* This process's rank and the number of ranks in MPI_COMM_WORLD. */
int dapt_test_world_rank(void);
int dapt_test_world_size(void);

/* A scratch file name private to this process:
 * "$TMPDIR/dapt_test_<tag>_<pid>_<name>".  The result lives in one of 8
 * rotating buffers (valid until 8 further calls). */
const char *dapt_test_tmpfile(const char *tag, const char *name);

/* A directory shared by every rank of MPI_COMM_WORLD,
 * "$TMPDIR/dapt-test-<tag>-<pid of rank 0>", created by rank 0.  Collective
 * on the first call (every rank must make it); later calls return the same
 * directory.  dapt_test_shared_path(name) is "<that directory>/<name>" (8
 * rotating buffers). */
const char *dapt_test_shared_dir(const char *tag);
const char *dapt_test_shared_path(const char *name);

/* rm -rf PATH; returns system()'s status (0 on success). */
int dapt_test_remove_tree(const char *path);

/* A model configuration with the given sizes and Hugging Face's defaults for
 * the architecture: BERT type_vocab_size 2, pad id 0, LayerNorm eps 1e-12;
 * RoBERTa 1, 1, 1e-5.  Pooler and MLM head present; no dropout, no
 * classifier, initializer_range 0 (the library's default).  Tests set what
 * they need beyond that. */
dapt_model_config dapt_test_model_config(dapt_arch arch, int64_t vocab_size, int64_t hidden, int64_t layers,
                                         int64_t heads, int64_t intermediate, int64_t max_position);

static inline int dapt_test_run(const char *suite_name, const dapt_test_case *cases, size_t n)
{
    int provided;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    for (size_t i = 0; i < n; i++) CU_add_test(suite, cases[i].name, cases[i].fn);
    /* Only rank 0 prints CUnit's report; every rank's failures count. */
    CU_basic_set_mode(rank == 0 ? CU_BRM_VERBOSE : CU_BRM_SILENT);
    CU_basic_run_tests();
    int failed = (int)CU_get_number_of_failures() + (int)CU_get_number_of_tests_failed();
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CU_cleanup_registry();
    MPI_Finalize();
    return any ? 1 : 0;
}

#define DAPT_TEST_MAIN(suite_name, ...)                                          \
    int main(void)                                                              \
    {                                                                           \
        static const dapt_test_case cases[] = {__VA_ARGS__};                    \
        return dapt_test_run(suite_name, cases, sizeof cases / sizeof cases[0]); \
    }

#endif
