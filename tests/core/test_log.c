/* Rank-aware logging: prefix format, rank filtering, levels, and the
 * progress line's rate and ETA arithmetic. */
#include "harness.h"

#include <stdio.h>
#include <string.h>

#include "dapt/log.h"

/* Runs the logger into a temporary file and returns what it wrote. */
static char captured[8192];

static FILE *capture_begin(void)
{
    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL(f);
    dapt_log_set_stream(f);
    return f;
}

static const char *capture_end(FILE *f)
{
    dapt_log_set_stream(NULL);
    captured[0] = '\0';
    if (!f) return captured;
    rewind(f);
    size_t n = fread(captured, 1, sizeof captured - 1, f);
    captured[n] = '\0';
    fclose(f);
    return captured;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_prefix_format(void)
{
    dapt_log_setup(0, 0, DAPT_LOG_INFO);
    FILE *f = capture_begin();
    dapt_info("hello %d", 42);
    const char *out = capture_end(f);
    /* "[YYYY-mm-dd HH:MM:SS r0] hello 42\n" */
    int y, mo, d, h, mi, s, r, v;
    CU_ASSERT_EQUAL(sscanf(out, "[%4d-%2d-%2d %2d:%2d:%2d r%d] hello %d", &y, &mo, &d, &h, &mi, &s, &r, &v), 8);
    CU_ASSERT_EQUAL(r, 0);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT(y >= 2024 && mo >= 1 && mo <= 12);
    CU_ASSERT_EQUAL(count_lines(out), 1);
}

/* Info and debug come from rank 0 only unless --verbose; warnings and
 * errors come from whichever rank raises them. */
static void test_rank_filtering(void)
{
    dapt_log_setup(3, 0, DAPT_LOG_DEBUG);
    FILE *f = capture_begin();
    dapt_info("chatter");
    dapt_debug("details");
    dapt_warn("disk nearly full");
    dapt_log(DAPT_LOG_ERROR, "broken");
    const char *out = capture_end(f);
    CU_ASSERT_PTR_NULL(strstr(out, "chatter"));
    CU_ASSERT_PTR_NULL(strstr(out, "details"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "r3] warning: disk nearly full"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "r3] error: broken"));
    CU_ASSERT_EQUAL(count_lines(out), 2);

    dapt_log_setup(3, 1, DAPT_LOG_DEBUG); /* --verbose */
    f = capture_begin();
    dapt_info("chatter");
    dapt_debug("details");
    out = capture_end(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "r3] chatter"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "r3] debug: details"));
    dapt_log_setup(0, 0, DAPT_LOG_INFO);
}

static void test_levels(void)
{
    dapt_log_setup(0, 0, DAPT_LOG_INFO);
    FILE *f = capture_begin();
    dapt_debug("hidden");
    dapt_info("shown");
    const char *out = capture_end(f);
    CU_ASSERT_PTR_NULL(strstr(out, "hidden"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "shown"));
}

/* Long messages are cut, not overflowed, and stay one line. */
static void test_long_message(void)
{
    static char big[10000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    dapt_log_setup(0, 0, DAPT_LOG_INFO);
    FILE *f = capture_begin();
    dapt_info("%s", big);
    const char *out = capture_end(f);
    CU_ASSERT_EQUAL(count_lines(out), 1);
    CU_ASSERT(strlen(out) < 4200);
}

static void test_progress_format(void)
{
    dapt_progress p;
    dapt_progress_start(&p, "tokenize", "lines", 1000, 10.0);
    char line[256];
    /* 250 of 1000 after 50 s: 5 lines/s, 150 s left. */
    dapt_progress_format(&p, 250, p.start + 50.0, "loss 2.5", line, sizeof line);
    CU_ASSERT_STRING_EQUAL(line, "tokenize: 250/1000 (25.0%) 5 lines/s elapsed 00:00:50 ETA 00:02:30 | loss 2.5");
    dapt_progress_format(&p, 1000, p.start + 3725.0, NULL, line, sizeof line);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "(100.0%)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "elapsed 01:02:05 ETA 00:00:00"));
    /* Nothing done yet: no rate, so no ETA. */
    dapt_progress_format(&p, 0, p.start + 1.0, NULL, line, sizeof line);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "ETA --:--:--"));
    /* Unknown total: no percentage or ETA. */
    dapt_progress_start(&p, "read", "MB", 0, 10.0);
    dapt_progress_format(&p, 30, p.start + 10.0, NULL, line, sizeof line);
    CU_ASSERT_STRING_EQUAL(line, "read: 30 3 MB/s elapsed 00:00:10");
}

/* Updates are rate-limited, but the last item is always printed once. */
static void test_progress_update(void)
{
    dapt_log_setup(0, 0, DAPT_LOG_INFO);
    dapt_progress p;
    dapt_progress_start(&p, "steps", "steps", 3, 3600.0);
    FILE *f = capture_begin();
    int printed = 0;
    printed += dapt_progress_update(&p, 1, NULL);
    printed += dapt_progress_update(&p, 2, NULL);
    printed += dapt_progress_update(&p, 3, NULL);
    printed += dapt_progress_update(&p, 3, NULL);
    const char *out = capture_end(f);
    CU_ASSERT_EQUAL(printed, 1);
    CU_ASSERT_EQUAL(count_lines(out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "steps: 3/3 (100.0%)"));
}

DAPT_TEST_MAIN("log",
               {"prefix format", test_prefix_format},
               {"rank filtering", test_rank_filtering},
               {"levels", test_levels},
               {"long message", test_long_message},
               {"progress format", test_progress_format},
               {"progress update", test_progress_update})
