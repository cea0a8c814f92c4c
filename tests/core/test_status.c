/* Status records: DAPT_MPI's one line (rank and function), the cleanup
 * warnings that leave the record alone, status agreement across ranks, and
 * the one even split dapt_share. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/share.h"
#include "dapt/status.h"

static void test_mpi_failure_line(void)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    CU_ASSERT_EQUAL(DAPT_MPI(MPI_SUCCESS), DAPT_OK);
    char want[64];
    snprintf(want, sizeof want, "rank %d: MPI_Allreduce failed: ", rank);
    CU_ASSERT_EQUAL(dapt_mpi_status(MPI_ERR_COMM, "src/x/y.c", 7, "MPI_Allreduce(a, b, 1, MPI_INT, MPI_SUM, c)"),
                    DAPT_ERR_MPI);
    const char *m = dapt_error_message();
    CU_ASSERT_PTR_NOT_NULL(strstr(m, "y.c:7: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(m, want));
    CU_ASSERT_PTR_NULL(strstr(m, "MPI_SUM")); /* the function, not the arguments */
    CU_ASSERT_PTR_NULL(strchr(m, '\n'));
    /* A real failure through MPI: an invalid root, with errors returned. */
    CU_ASSERT_EQUAL(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), MPI_SUCCESS);
    int x = 0;
    CU_ASSERT_EQUAL(DAPT_MPI(MPI_Bcast(&x, 1, MPI_INT, -5, MPI_COMM_WORLD)), DAPT_ERR_MPI);
    snprintf(want, sizeof want, "rank %d: MPI_Bcast failed: ", rank);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), want));
    CU_ASSERT_EQUAL(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL), MPI_SUCCESS);
}

/* Cleanup paths warn and keep the error that led to the cleanup. */
static void test_cleanup_warnings(void)
{
    DAPT_ERROR(DAPT_ERR_IO, "the first failure");
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    dapt_log_set_stream(f);
    CU_ASSERT_EQUAL(DAPT_MPI_WARN(MPI_SUCCESS), 0);
    CU_ASSERT_EQUAL(DAPT_MPI_WARN(MPI_ERR_COMM), 1);
    dapt_log_set_stream(NULL);
    rewind(f);
    char text[1024] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "MPI_ERR_COMM failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "the first failure"));
}

/* The lowest failing rank's status and message reach every rank. */
static void test_agree(void)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CU_ASSERT_EQUAL(dapt_status_agree(MPI_COMM_WORLD, DAPT_OK), DAPT_OK);
    dapt_status st = DAPT_OK;
    if (rank == size - 1) st = DAPT_ERROR(DAPT_ERR_FORMAT, "bad thing on the last rank");
    CU_ASSERT_EQUAL(dapt_status_agree(MPI_COMM_WORLD, st), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "bad thing on the last rank"));
}

/* The old dapt_block / dapt_share rule: first n mod R parts one more. */
static void test_share(void)
{
    for (int64_t n = 0; n <= 40; n++)
        for (int R = 1; R <= 9; R++) {
            int64_t next = 0;
            for (int r = 0; r < R; r++) {
                int64_t b = -1, c = -1;
                dapt_share(n, r, R, &b, &c);
                CU_ASSERT_EQUAL(c, n / R + (r < n % R ? 1 : 0));
                if (c > 0) CU_ASSERT_EQUAL(b, next);
                next += c;
            }
            CU_ASSERT_EQUAL(next, n);
        }
    int64_t b = -1, c = -1;
    dapt_share(10, 3, 3, &b, &c); /* a rank outside the split owns nothing */
    CU_ASSERT(b == 0 && c == 0);
    dapt_share(10, -1, 3, &b, &c);
    CU_ASSERT(b == 0 && c == 0);
    dapt_share(INT64_MAX / 2, 8, 9, &b, &c);
    CU_ASSERT_EQUAL(b + c, INT64_MAX / 2);
}

DAPT_TEST_MAIN("status", {"MPI failures are one line naming rank and call", test_mpi_failure_line},
               {"cleanup warnings keep the recorded error", test_cleanup_warnings},
               {"status agreement", test_agree}, {"dapt_share", test_share})
