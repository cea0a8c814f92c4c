/* The metrics log (dapt/metrics_log.h): the JSONL holds the CSV's rows as
 * typed JSON, truncation cuts both, reopening rebuilds a missing JSONL,
 * --force's removal takes both, and bad rows are refused. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/metrics_log.h"
#include "harness.h"

static const char *const names[] = {"step", "loss", "eval_loss", "mlm_loss"};

/* The whole file as a string (malloc'd). */
static char *slurp(const char *path)
{
    unsigned char *data = NULL;
    size_t len = 0;
    CU_ASSERT_FATAL(dapt_fs_read_file(path, 1 << 20, &data, &len) == DAPT_OK);
    return (char *)data;
}

static void assert_file(const char *path, const char *expected)
{
    char *got = slurp(path);
    CU_ASSERT_STRING_EQUAL(got, expected);
    free(got);
}

/* step 1..n rows: loss 2/step, eval only on even steps, a nan mlm_loss on step 3. */
static void write_rows(dapt_metrics_log *log, int first, int last)
{
    for (int s = first; s <= last; s++) {
        dapt_metrics_log_field(log, "%d", s);
        dapt_metrics_log_field(log, "%.9g", 2.0 / s);
        if (s % 2 == 0) dapt_metrics_log_field(log, "%.1f", 1e5 * s);
        else dapt_metrics_log_empty(log);
        dapt_metrics_log_field(log, "%.9g", s == 3 ? NAN : -0.25);
        CU_ASSERT_EQUAL(dapt_metrics_log_end_row(log), DAPT_OK);
    }
}

static const char csv3[] = "step,loss,eval_loss,mlm_loss\n1,2,,-0.25\n2,1,200000.0,-0.25\n3,0.666666667,,nan\n";
static const char jsonl3[] = "{\"step\":1,\"loss\":2,\"eval_loss\":null,\"mlm_loss\":-0.25}\n"
                             "{\"step\":2,\"loss\":1,\"eval_loss\":200000.0,\"mlm_loss\":-0.25}\n"
                             "{\"step\":3,\"loss\":0.666666667,\"eval_loss\":null,\"mlm_loss\":null}\n";

static void test_rows_and_types(void)
{
    dapt_metrics_log log;
    const char *csv = dapt_test_tmpfile("mlog", "metrics.csv");
    CU_ASSERT_FATAL(dapt_metrics_log_init(&log, csv) == DAPT_OK);
    const size_t n = strlen(csv) - 3;
    CU_ASSERT(strncmp(log.jsonl, csv, n) == 0 && strcmp(log.jsonl + n, "jsonl") == 0); /* beside the CSV */
    CU_ASSERT_FATAL(dapt_metrics_log_open(&log, names, 4, 0) == DAPT_OK);
    write_rows(&log, 1, 3);
    /* Flushed per row: readable before the log is closed. */
    assert_file(log.csv, csv3);
    assert_file(log.jsonl, jsonl3);
    dapt_metrics_log_close(&log);
    CU_ASSERT_EQUAL(dapt_metrics_log_remove(&log), DAPT_OK);
    CU_ASSERT_FALSE(dapt_fs_exists(log.csv));
    CU_ASSERT_FALSE(dapt_fs_exists(log.jsonl));
    CU_ASSERT_EQUAL(dapt_metrics_log_remove(&log), DAPT_OK); /* nothing there: fine */
}

static void test_truncate_and_reopen(void)
{
    dapt_metrics_log log;
    CU_ASSERT_FATAL(dapt_metrics_log_init(&log, dapt_test_tmpfile("mlog", "finetune_metrics.csv")) == DAPT_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(log.jsonl, "_finetune_metrics.jsonl"));
    CU_ASSERT_FATAL(dapt_metrics_log_open(&log, names, 4, 0) == DAPT_OK);
    write_rows(&log, 1, 5);
    dapt_metrics_log_close(&log);
    /* Resume at step 3: rows 4 and 5 go from both files, then 4.. are written again. */
    CU_ASSERT_EQUAL(dapt_metrics_log_truncate(&log, 3), DAPT_OK);
    assert_file(log.csv, csv3);
    assert_file(log.jsonl, jsonl3);
    CU_ASSERT_FATAL(dapt_metrics_log_open(&log, names, 4, 1) == DAPT_OK);
    write_rows(&log, 4, 4);
    dapt_metrics_log_close(&log);
    char *csv = slurp(log.csv), *jsonl = slurp(log.jsonl);
    CU_ASSERT_STRING_EQUAL(csv + strlen(csv3), "4,0.5,400000.0,-0.25\n");
    CU_ASSERT_STRING_EQUAL(jsonl + strlen(jsonl3), "{\"step\":4,\"loss\":0.5,\"eval_loss\":400000.0,\"mlm_loss\":-0.25}\n");
    free(csv);
    free(jsonl);
    /* A run begun before the JSONL existed: reopening writes it from the CSV. */
    CU_ASSERT_EQUAL(unlink(log.jsonl), 0);
    CU_ASSERT_FATAL(dapt_metrics_log_open(&log, names, 4, 1) == DAPT_OK);
    dapt_metrics_log_close(&log);
    jsonl = slurp(log.jsonl);
    CU_ASSERT_EQUAL(strncmp(jsonl, jsonl3, strlen(jsonl3)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(jsonl, "{\"step\":4,"));
    free(jsonl);
    /* Resume to before the first row: header only, empty JSONL. */
    CU_ASSERT_EQUAL(dapt_metrics_log_truncate(&log, -1), DAPT_OK);
    assert_file(log.csv, "step,loss,eval_loss,mlm_loss\n");
    assert_file(log.jsonl, "");
    CU_ASSERT_EQUAL(dapt_metrics_log_remove(&log), DAPT_OK);
}

static void test_refused(void)
{
    dapt_metrics_log log;
    CU_ASSERT_EQUAL(dapt_metrics_log_init(&log, "/tmp/metrics.txt"), DAPT_ERR_ARG);
    dapt_error_clear();
    CU_ASSERT_FATAL(dapt_metrics_log_init(&log, dapt_test_tmpfile("mlog", "bad.csv")) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_metrics_log_open(&log, names, 4, 0) == DAPT_OK);
    dapt_metrics_log_field(&log, "%d", 1); /* 1 field for 4 columns */
    CU_ASSERT_EQUAL(dapt_metrics_log_end_row(&log), DAPT_ERR_ARG);
    dapt_error_clear();
    for (int i = 0; i < 5; i++) dapt_metrics_log_field(&log, "%d", i); /* 5 for 4 */
    CU_ASSERT_EQUAL(dapt_metrics_log_end_row(&log), DAPT_ERR_ARG);
    dapt_error_clear();
    for (int i = 0; i < 600; i++) dapt_metrics_log_field(&log, "%.9g", 1.0 / 3); /* longer than a row */
    CU_ASSERT_EQUAL(dapt_metrics_log_end_row(&log), DAPT_ERR_ARG);
    dapt_error_clear();
    write_rows(&log, 1, 1); /* the log goes on after a refused row */
    dapt_metrics_log_close(&log);
    assert_file(log.csv, "step,loss,eval_loss,mlm_loss\n1,2,,-0.25\n");
    /* Continuing a CSV whose columns are another run's. */
    static const char *const other[] = {"step", "loss"};
    CU_ASSERT_EQUAL(dapt_metrics_log_open(&log, other, 2, 1), DAPT_ERR_FORMAT);
    dapt_error_clear();
    CU_ASSERT_EQUAL(dapt_metrics_log_remove(&log), DAPT_OK);
}

static void test_json_numbers(void)
{
    static const char *const one[] = {"x"};
    static const struct {
        const char *field, *json;
    } cases[] = {{"0", "0"},       {"-0", "-0"},     {"1e-05", "1e-05"}, {"3.5E+12", "3.5E+12"}, {"", "null"},
                 {"nan", "null"},  {"-nan", "null"}, {"inf", "null"},    {"-inf", "null"},       {"01", "null"},
                 {"1.", "null"},   {".5", "null"},   {"1e", "null"},     {"0x10", "null"},       {"+1", "null"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[64], want[64];
        snprintf(want, sizeof want, "{\"x\":%s}", cases[i].json);
        CU_ASSERT_EQUAL(dapt_metrics_json_row(one, 1, cases[i].field, out, sizeof out), DAPT_OK);
        CU_ASSERT_STRING_EQUAL(out, want);
    }
}

DAPT_TEST_MAIN("metrics_log", {"rows in CSV and typed JSON lines, flushed, removed", test_rows_and_types},
               {"truncation cuts both files; reopening rebuilds the JSONL", test_truncate_and_reopen},
               {"rows of the wrong width, too long, other columns refused", test_refused},
               {"JSON numbers: what %g and %f print; null for nan, inf, empty", test_json_numbers})
