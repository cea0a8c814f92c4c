/* Run configuration: good files, every kind of bad file, --set overrides,
 * and the round trip through `dapt config show`'s INI text. */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dapt/config.h"
#include "dapt/status.h"

/* Loads text as file "t.ini"; returns the status. */
static dapt_status load(dapt_config *cfg, const char *text)
{
    dapt_config_defaults(cfg);
    dapt_error_clear();
    return dapt_config_load_string(cfg, text, "t.ini");
}

/* Asserts that text is rejected with a message containing want. */
static void expect_reject(const char *text, const char *want)
{
    dapt_config cfg;
    dapt_status st = load(&cfg, text);
    CU_ASSERT_EQUAL(st, DAPT_ERR_CONFIG);
    const char *msg = dapt_error_message();
    if (!strstr(msg, want)) fprintf(stderr, "\n  message '%s' lacks '%s'\n", msg, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, want));
    /* One line, no source location of config.c leaking in for file errors. */
    CU_ASSERT_PTR_NULL(strchr(msg, '\n'));
}

static void test_defaults(void)
{
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    CU_ASSERT_EQUAL(cfg.run.seed, 1234);
    CU_ASSERT_EQUAL(cfg.data.seq_len, 128);
    CU_ASSERT_DOUBLE_EQUAL(cfg.train.lr, 1e-4, 1e-18);
    CU_ASSERT_STRING_EQUAL(cfg.train.method, "mlm");
    CU_ASSERT_EQUAL(cfg.model.recompute, 0);
}

static void test_good_file(void)
{
    dapt_config cfg;
    const char *text = "; a comment\n"
                       "[run]\nseed = 7\noutput_dir = runs/x y\n\n"
                       "[train]\nlr = 3e-5   ; inline comment\nmethod = das\nsteps=0\n"
                       "[model]\nrecompute = yes\nhidden = 768\n"
                       "[data]\neval_fraction = 0.5\n";
    CU_ASSERT_EQUAL_FATAL(load(&cfg, text), DAPT_OK);
    CU_ASSERT_EQUAL(cfg.run.seed, 7);
    CU_ASSERT_STRING_EQUAL(cfg.run.output_dir, "runs/x y");
    CU_ASSERT_DOUBLE_EQUAL(cfg.train.lr, 3e-5, 1e-18);
    CU_ASSERT_STRING_EQUAL(cfg.train.method, "das");
    CU_ASSERT_EQUAL(cfg.train.steps, 0);
    CU_ASSERT_EQUAL(cfg.model.recompute, 1);
    CU_ASSERT_EQUAL(cfg.model.hidden, 768);
    CU_ASSERT_DOUBLE_EQUAL(cfg.data.eval_fraction, 0.5, 0);
    /* Keys not mentioned keep their defaults. */
    CU_ASSERT_EQUAL(cfg.data.seq_len, 128);
}

static void test_empty_file(void)
{
    dapt_config cfg;
    CU_ASSERT_EQUAL(load(&cfg, ""), DAPT_OK);
    CU_ASSERT_EQUAL(cfg.run.seed, 1234);
}

/* Keys that moved out of [das] name where they went. */
static void test_moved_keys(void)
{
    expect_reject("[das]\ndomains = a,b\n", "t.ini:2: das.domains is now continual.domains");
    expect_reject("[das]\nkd_lambda = 2\n", "t.ini:2: das.kd_lambda is now kd.lambda");
    expect_reject("[das]\newc_samples = 10\n", "t.ini:2: das.ewc_samples is now ewc.samples");
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    CU_ASSERT_EQUAL(dapt_config_set(&cfg, "das.ewc_lambda=1"), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "das.ewc_lambda is now ewc.lambda"));
    CU_ASSERT_EQUAL(dapt_config_set(&cfg, "continual.domains=a,b"), DAPT_OK);
    CU_ASSERT_STRING_EQUAL(cfg.continual.domains, "a,b");
}

static void test_unknown_section(void)
{
    expect_reject("[run]\nseed = 1\n[bogus]\nx = 1\n", "t.ini:3: unknown section [bogus]");
}

static void test_unknown_key(void)
{
    expect_reject("[train]\nlr = 1e-4\nlearning_rate = 1\n", "t.ini:3: train.learning_rate: unknown key");
}

/* Asserts that the whole message is want (nothing appended or missing). */
static void expect_message(dapt_status st, const char *want)
{
    CU_ASSERT_EQUAL(st, DAPT_ERR_CONFIG);
    if (strcmp(dapt_error_message(), want)) fprintf(stderr, "\n  message '%s', expected '%s'\n", dapt_error_message(), want);
    CU_ASSERT_STRING_EQUAL(dapt_error_message(), want);
}

/* Mistyped names get the closest schema name; far-off ones get none. */
static void test_did_you_mean(void)
{
    dapt_config cfg;
    expect_message(load(&cfg, "[train]\nstps = 3\n"), "t.ini:2: train.stps: unknown key; did you mean train.steps?");
    expect_message(load(&cfg, "[train]\nbatchsize = 3\n"),
                   "t.ini:2: train.batchsize: unknown key; did you mean train.batch_size?");
    expect_message(load(&cfg, "[trian]\nsteps = 3\n"), "t.ini:1: unknown section [trian]; did you mean [train]?");
    expect_message(load(&cfg, "[bogus]\nx = 1\n"), "t.ini:1: unknown section [bogus]");
    expect_message(load(&cfg, "[train]\nlearning_rate = 1\n"), "t.ini:2: train.learning_rate: unknown key");
    dapt_config_defaults(&cfg);
    expect_message(dapt_config_set(&cfg, "train.stesp=3"),
                   "--set train.stesp=3: train.stesp: unknown key; did you mean train.steps?");
    expect_message(dapt_config_set(&cfg, "trian.steps=3"),
                   "--set trian.steps=3: unknown section [trian]; did you mean train.steps?");
    /* A key of another section, far from every full name: the same key there. */
    expect_message(dapt_config_set(&cfg, "train.vocab_size=8"),
                   "--set train.vocab_size=8: train.vocab_size: unknown key; did you mean model.vocab_size?");
}

static void test_key_outside_section(void)
{
    expect_reject("seed = 1\n", "t.ini:1: seed: key outside any [section]");
}

static void test_malformed_numbers(void)
{
    expect_reject("[run]\nseed = 12abc\n", "t.ini:2: run.seed: '12abc' is not an integer");
    expect_reject("[run]\nseed = \n", "run.seed: '' is not an integer");
    expect_reject("[run]\nseed = 1.5\n", "is not an integer");
    expect_reject("[run]\nseed = 99999999999999999999999\n", "run.seed");
    expect_reject("[train]\nlr = fast\n", "t.ini:2: train.lr: 'fast' is not a finite number");
    expect_reject("[train]\nlr = nan\n", "train.lr: 'nan' is not a finite number");
    expect_reject("[train]\nlr = inf\n", "is not a finite number");
    expect_reject("[model]\nrecompute = maybe\n", "model.recompute: 'maybe' is not a boolean");
}

static void test_out_of_range(void)
{
    expect_reject("[data]\nseq_len = 4\n", "t.ini:2: data.seq_len: 4 is out of range [8, 65536]");
    expect_reject("[run]\nseed = -1\n", "run.seed: -1 is out of range");
    expect_reject("[data]\neval_fraction = 0.75\n", "data.eval_fraction: 0.75 is out of range");
    expect_reject("[train]\nlr = -1e-4\n", "train.lr: -0.0001 is out of range");
}

static void test_bad_enum(void)
{
    expect_reject("[train]\nmethod = sgd\n", "t.ini:2: train.method: 'sgd' is not one of mlm|");
    /* A prefix of a valid choice is not a valid choice. */
    expect_reject("[train]\nmethod = da\n", "'da' is not one of");
}

static void test_duplicate_key(void)
{
    expect_reject("[run]\nseed = 1\nseed = 2\n", "t.ini:3: run.seed: duplicate key");
}

static void test_malformed_line(void)
{
    expect_reject("[run]\nseed 1\n", "t.ini:2: malformed line");
    expect_reject("[run\nseed = 1\n", "t.ini:1: malformed line");
}

static void test_long_line(void)
{
    char text[1024];
    memset(text, 'x', sizeof text);
    memcpy(text, "[run]\noutput_dir = ", 19);
    text[sizeof text - 1] = '\0';
    expect_reject(text, "t.ini:2: line longer than");
}

static void test_set_overrides(void)
{
    dapt_config cfg;
    CU_ASSERT_EQUAL_FATAL(load(&cfg, "[train]\nlr = 1e-3\n"), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_config_set(&cfg, "train.lr=2e-5"), DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(cfg.train.lr, 2e-5, 1e-18);
    CU_ASSERT_EQUAL(dapt_config_set(&cfg, "run.output_dir=a=b"), DAPT_OK);
    CU_ASSERT_STRING_EQUAL(cfg.run.output_dir, "a=b");

    const char *bad[][2] = {
        {"train.lr", "expected section.key=value"},
        {"lr=1", "expected section.key=value"},
        {".lr=1", "expected section.key=value"},
        {"train.=1", "expected section.key=value"},
        {"train.lr=abc", "--set train.lr=abc: train.lr: 'abc' is not a finite number"},
        {"nope.lr=1", "unknown section [nope]"},
        {"train.nope=1", "train.nope: unknown key"},
        {"data.seq_len=1", "data.seq_len: 1 is out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dapt_error_clear();
        CU_ASSERT_EQUAL(dapt_config_set(&cfg, bad[i][0]), DAPT_ERR_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), bad[i][1]));
    }
    /* A rejected override leaves the previous value in place. */
    CU_ASSERT_DOUBLE_EQUAL(cfg.train.lr, 2e-5, 1e-18);
}

/* A --set value that `dapt config show` could not print readably is refused
 * with one line naming the key; the longest value that fits is accepted and
 * reads back from the shown text, with and without --keys' help. */
static void test_set_refuses_unreadable_values(void)
{
    const char *bad[][2] = {
        {"data.corpus=;c.h5", "data.corpus: a value may not start with ';' or '#'"},
        {"data.corpus=#c.h5", "data.corpus: a value may not start with ';' or '#'"},
        {"data.corpus=a.h5 ;x", "data.corpus: a value may not hold ';' after white space"},
        {"data.corpus= a.h5", "data.corpus: a value may not start or end with white space"},
        {"data.corpus=a.h5 ", "data.corpus: a value may not start or end with white space"},
        {"data.corpus=a\nb", "data.corpus: a value may not hold a line break"},
    };
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dapt_error_clear();
        CU_ASSERT_EQUAL(dapt_config_set(&cfg, bad[i][0]), DAPT_ERR_CONFIG);
        const char *msg = dapt_error_message();
        if (!strstr(msg, bad[i][1])) fprintf(stderr, "\n  message '%s' lacks '%s'\n", msg, bad[i][1]);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, bad[i][1]));
        CU_ASSERT_PTR_NULL(strchr(msg, '\n'));
    }
    CU_ASSERT_STRING_EQUAL(cfg.data.corpus, "");

    /* "corpus = VALUE" may be 197 characters (the reader's limit): VALUE 188. */
    char set[600];
    for (size_t len = 188; len <= 511; len += 323) {
        int n = snprintf(set, sizeof set, "data.corpus=");
        memset(set + n, 'c', len);
        set[n + (int)len] = '\0';
        dapt_error_clear();
        if (len == 188) {
            CU_ASSERT_EQUAL_FATAL(dapt_config_set(&cfg, set), DAPT_OK);
        } else {
            CU_ASSERT_EQUAL(dapt_config_set(&cfg, set), DAPT_ERR_CONFIG);
            CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "data.corpus: a value of 511 characters is too long"));
            CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "so at most 188"));
        }
    }
    memset(set, 'c', 189);
    set[189] = '\0';
    CU_ASSERT_EQUAL(dapt_config_set_value(&cfg, "data", "corpus", set, "--corpus"), DAPT_ERR_CONFIG);
    CU_ASSERT_EQUAL(strlen(cfg.data.corpus), 188);
    for (int with_help = 0; with_help < 2; with_help++) {
        char *text = NULL;
        dapt_config back;
        CU_ASSERT_EQUAL_FATAL(dapt_config_to_ini(&cfg, with_help, &text), DAPT_OK);
        CU_ASSERT_EQUAL(load(&back, text), DAPT_OK);
        CU_ASSERT_EQUAL(memcmp(&cfg, &back, sizeof cfg), 0);
        free(text);
    }
}

/* The resolved INI text parses back to the same configuration. */
static void test_round_trip(void)
{
    dapt_config a, b;
    CU_ASSERT_EQUAL_FATAL(load(&a, "[train]\nlr = 3.3e-5\nmethod = dga\n[run]\nseed = 99\n"), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_config_set(&a, "train.adam_eps=1e-8"), DAPT_OK);
    for (int with_help = 0; with_help < 2; with_help++) {
        char *text = NULL;
        CU_ASSERT_EQUAL_FATAL(dapt_config_to_ini(&a, with_help, &text), DAPT_OK);
        CU_ASSERT_EQUAL(load(&b, text), DAPT_OK);
        CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof a), 0);
        free(text);
    }
}

static void test_file_errors(void)
{
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    CU_ASSERT_EQUAL(dapt_config_load_file(&cfg, "/nonexistent/dapt.ini"), DAPT_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "/nonexistent/dapt.ini: cannot open"));

    char path[4096];
    snprintf(path, sizeof path, "%s/dapt_test_config_%d.ini", dapt_test_tmpdir(), (int)getpid());
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite("[run]\nseed = 5\n\0garbage", 1, 23, f);
    fclose(f);
    CU_ASSERT_EQUAL(dapt_config_load_file(&cfg, path), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "contains NUL bytes"));

    f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("[run]\nseed = 5\n[train]\nsteps = ten\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(dapt_config_load_file(&cfg, path), DAPT_ERR_CONFIG);
    char want[4200];
    snprintf(want, sizeof want, "%s:4: train.steps: 'ten' is not an integer", path);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), want));
    remove(path);
}

static void test_split_list(void)
{
    char buf[128], *items[4];
    size_t n = 0;
    CU_ASSERT_EQUAL(dapt_config_split_list(" a, b ,c ", buf, sizeof buf, items, 4, &n), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_STRING_EQUAL(items[0], "a");
    CU_ASSERT_STRING_EQUAL(items[1], "b");
    CU_ASSERT_STRING_EQUAL(items[2], "c");
    CU_ASSERT_EQUAL(dapt_config_split_list("a,,b", buf, sizeof buf, items, 4, &n), DAPT_ERR_CONFIG);
    CU_ASSERT_EQUAL(dapt_config_split_list("a,b,c,d,e", buf, sizeof buf, items, 4, &n), DAPT_ERR_CONFIG);
}

DAPT_TEST_MAIN("config",
               {"defaults", test_defaults},
               {"good file", test_good_file},
               {"empty file", test_empty_file},
               {"unknown section", test_unknown_section},
               {"unknown key", test_unknown_key},
               {"did you mean: the closest key or section", test_did_you_mean},
               {"moved keys name their new place", test_moved_keys},
               {"key outside a section", test_key_outside_section},
               {"malformed numbers", test_malformed_numbers},
               {"out of range", test_out_of_range},
               {"bad enum", test_bad_enum},
               {"duplicate key", test_duplicate_key},
               {"malformed line", test_malformed_line},
               {"long line", test_long_line},
               {"--set overrides", test_set_overrides},
               {"--set refuses values that would not read back", test_set_refuses_unreadable_values},
               {"INI round trip", test_round_trip},
               {"file errors", test_file_errors},
               {"split list", test_split_list})
