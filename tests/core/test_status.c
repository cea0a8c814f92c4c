/* Status records: DAPT_MPI's one line (rank and function), the cleanup
 * warnings that leave the record alone, status agreement across ranks, and
 * the one even split dapt_share. */
#include "harness.h"

#include <stdint.h>
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
    CU_ASSERT_EQUAL(dapt_mpi_status(MPI_ERR_COMM, "src/x/y.c", 7, "MPI_Allreduce(a, b, 1, MPI_INT, MPI_SUM, c)"),
                    DAPT_ERR_MPI);
    const char *m = dapt_error_message();
    /* The location is the developer's, apart from the user's message. */
    CU_ASSERT_STRING_EQUAL(dapt_error_location(), "y.c:7");
    CU_ASSERT_PTR_NULL(strstr(m, "y.c"));
    CU_ASSERT_EQUAL(strncmp(m, "MPI_Allreduce failed: ", 22), 0);
    /* The report names the rank (when there are several). */
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char want[64], text[2048];
    CU_ASSERT_EQUAL(dapt_error_report(DAPT_ERR_MPI, 0, text, sizeof text), 1);
    snprintf(want, sizeof want, " [rank %d]\n", rank);
    if (size > 1) CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
    if (size == 1) CU_ASSERT_PTR_NULL(strchr(text, '['));
    CU_ASSERT_PTR_NULL(strstr(m, "MPI_SUM")); /* the function, not the arguments */
    CU_ASSERT_PTR_NULL(strchr(m, '\n'));
    /* A real failure through MPI: an invalid root, with errors returned. */
    CU_ASSERT_EQUAL(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), MPI_SUCCESS);
    int x = 0;
    CU_ASSERT_EQUAL(DAPT_MPI(MPI_Bcast(&x, 1, MPI_INT, -5, MPI_COMM_WORLD)), DAPT_ERR_MPI);
    CU_ASSERT_EQUAL(strncmp(dapt_error_message(), "MPI_Bcast failed: ", 18), 0);
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

/* A cause may quote the one before it. */
static void test_message_quotes_previous(void)
{
    DAPT_ERROR(DAPT_ERR_IO, "disk full");
    DAPT_ERROR(DAPT_ERR_IO, "x.h5: writing /params: %s", dapt_error_message());
    CU_ASSERT_STRING_EQUAL(dapt_error_message(), "x.h5: writing /params: disk full");
}

/* A failure recorded without a cause is reported by its status name, on
 * every rank. */
static void test_report_without_message(void)
{
    dapt_error_clear();
    CU_ASSERT_EQUAL(dapt_status_agree(MPI_COMM_WORLD, DAPT_ERR_NUMERIC), DAPT_ERR_NUMERIC);
    char text[1024];
    CU_ASSERT_EQUAL(dapt_error_report(DAPT_ERR_NUMERIC, 0, text, sizeof text), 1);
    CU_ASSERT_STRING_EQUAL(text, "numerical error\n");
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

/* The same failure on every rank is one line without ranks; the source
 * location only on request. */
static void test_report_same_everywhere(void)
{
    DAPT_ERROR(DAPT_ERR_IO, "run.ini: cannot open: disk on fire");
    CU_ASSERT_EQUAL(dapt_status_agree(MPI_COMM_WORLD, DAPT_ERR_IO), DAPT_ERR_IO);
    char text[4096];
    CU_ASSERT_EQUAL(dapt_error_report(DAPT_ERR_IO, 0, text, sizeof text), 1);
    CU_ASSERT_STRING_EQUAL(text, "run.ini: cannot open: disk on fire\n");
    CU_ASSERT_EQUAL(dapt_error_report(DAPT_ERR_IO, 1, text, sizeof text), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "disk on fire (at test_status.c:"));
}

/* Different failures: each message once, with the world ranks that hit it,
 * in the order of the lowest rank; the code is the lowest failing rank's. */
static void test_report_distinct(void)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    dapt_status st = DAPT_OK;
    if (rank > 0) st = rank % 2 ? DAPT_ERROR(DAPT_ERR_FORMAT, "odd thing") : DAPT_ERROR(DAPT_ERR_IO, "even thing");
    const dapt_status agreed = dapt_status_agree(MPI_COMM_WORLD, st);
    char text[4096];
    const int lines = dapt_error_report(agreed, 0, text, sizeof text);
    if (size == 1) {
        CU_ASSERT_EQUAL(agreed, DAPT_OK);
    } else if (size == 2) {
        CU_ASSERT_EQUAL(agreed, DAPT_ERR_FORMAT);
        CU_ASSERT_EQUAL(lines, 1);
        CU_ASSERT_STRING_EQUAL(text, "odd thing [rank 1]\n");
    } else if (size == 3) {
        CU_ASSERT_EQUAL(agreed, DAPT_ERR_FORMAT);
        CU_ASSERT_EQUAL(lines, 2);
        CU_ASSERT_STRING_EQUAL(text, "odd thing [rank 1]\neven thing [rank 2]\n");
        CU_ASSERT_STRING_EQUAL(dapt_error_message(), "odd thing");
    }
}

/* An agreement inside a sub-communicator, then over the world: the report
 * still names the rank where the failure happened, not every rank of the
 * group that adopted it. */
static void test_report_nested(void)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size == 1) return;
    MPI_Comm group;
    CU_ASSERT_EQUAL_FATAL(MPI_Comm_split(MPI_COMM_WORLD, rank == 0, rank, &group), MPI_SUCCESS);
    dapt_status st = rank == size - 1 ? DAPT_ERROR(DAPT_ERR_NUMERIC, "NaN in layer 3") : DAPT_OK;
    st = dapt_status_agree(group, st);
    CU_ASSERT_EQUAL(st, rank == 0 ? DAPT_OK : DAPT_ERR_NUMERIC);
    CU_ASSERT_EQUAL(dapt_status_agree(MPI_COMM_WORLD, st), DAPT_ERR_NUMERIC);
    char text[4096], want[64];
    CU_ASSERT_EQUAL(dapt_error_report(DAPT_ERR_NUMERIC, 0, text, sizeof text), 1);
    snprintf(want, sizeof want, "NaN in layer 3 [rank %d]\n", size - 1);
    CU_ASSERT_STRING_EQUAL(text, want);
    CU_ASSERT_EQUAL(MPI_Comm_free(&group), MPI_SUCCESS);
}

/* Allocation failures say how much, in human units, and what for. */
static void test_alloc_failure(void)
{
    char buf[32];
    dapt_format_bytes(512, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "512 bytes");
    dapt_format_bytes(1536, buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "1.5 KiB");
    dapt_format_bytes(3.0 * (1 << 30), buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "3.0 GiB");
#ifndef __SANITIZE_ADDRESS__ /* AddressSanitizer aborts on such a request */
    void *p = NULL;
    CU_ASSERT_EQUAL(dapt_alloc(&p, SIZE_MAX / 2, "the test's buffer"), DAPT_ERR_NOMEM);
    CU_ASSERT_STRING_EQUAL(dapt_error_message(), "cannot allocate 8.0 EiB for the test's buffer: out of memory");
    CU_ASSERT_EQUAL(dapt_error_alloc_bytes(), SIZE_MAX / 2);
    CU_ASSERT_EQUAL(strncmp(dapt_error_location(), "test_status.c:", 14), 0); /* the caller's, for DAPT_DEBUG */
    CU_ASSERT_EQUAL(dapt_calloc(&p, SIZE_MAX / 8, 4, "the test's table"), DAPT_ERR_NOMEM);
    CU_ASSERT_STRING_EQUAL(dapt_error_message(), "cannot allocate 8.0 EiB for the test's table: out of memory");
#endif
    DAPT_ERROR(DAPT_ERR_IO, "not an allocation");
    CU_ASSERT_EQUAL(dapt_error_alloc_bytes(), 0);
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
               {"a cause may quote the previous one", test_message_quotes_previous},
               {"status agreement", test_agree},
               {"a failure without a cause is named by its status", test_report_without_message},
               {"the same failure everywhere is one line without ranks", test_report_same_everywhere},
               {"different failures are listed once each with their ranks", test_report_distinct},
               {"nested agreements keep the rank that failed", test_report_nested},
               {"allocation failures in human units", test_alloc_failure}, {"dapt_share", test_share})
