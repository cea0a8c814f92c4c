/* The --resume configuration check (src/checkpoint/resume_check.c,
 * resume_log.c): the key table covers the whole schema, classes of the keys
 * the issue names, the comparison against a stored configuration, and the
 * last logged value of a metrics file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dapt/checkpoint.h"
#include "harness.h"

/* Every key of config_schema.def is listed in the table: a new key must be
 * classified before --resume compares it. */
static void test_every_key_classified(void)
{
    const char *why = NULL;
#define DAPT_SECTION(sec, help)
#define DAPT_END(sec)
#define KEY(sec, key)                                                                                  \
    dapt_resume_key_class(#sec "." #key, DAPT_RESUME_TRAIN | DAPT_RESUME_FINETUNE, &why);            \
    if (!why) fprintf(stderr, "%s.%s is not classified for --resume\n", #sec, #key);                   \
    CU_ASSERT_PTR_NOT_NULL(why);
#define DAPT_INT(sec, key, def, lo, hi, help) KEY(sec, key)
#define DAPT_REAL(sec, key, def, lo, hi, help) KEY(sec, key)
#define DAPT_BOOL(sec, key, def, help) KEY(sec, key)
#define DAPT_STR(sec, key, def, help) KEY(sec, key)
#define DAPT_ENUM(sec, key, def, choices, help) KEY(sec, key)
#include "dapt/config_schema.def"
#undef KEY
#undef DAPT_SECTION
#undef DAPT_END
#undef DAPT_INT
#undef DAPT_REAL
#undef DAPT_BOOL
#undef DAPT_STR
#undef DAPT_ENUM
    dapt_resume_key_class("nosuch.key", DAPT_RESUME_TRAIN, &why);
    CU_ASSERT_PTR_NULL(why);
    CU_ASSERT_EQUAL(dapt_resume_key_class("nosuch.key", DAPT_RESUME_TRAIN, NULL), DAPT_RESUME_REFUSED);
}

/* The classes issue 18 names, per command. */
static void test_classes(void)
{
    const unsigned T = DAPT_RESUME_TRAIN, F = DAPT_RESUME_FINETUNE;
    const char *refused[] = {"data.corpus", "run.seed", "train.batch_size", "data.seq_len", "train.lr",
                             "train.schedule", "train.warmup_ratio", "train.method", "model.hidden", "das.contrast_tau",
                             "continual.corpora", "model.dropout"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        CU_ASSERT_EQUAL(dapt_resume_key_class(refused[i], T, NULL), DAPT_RESUME_REFUSED);
    const char *safe[] = {"checkpoint.every", "checkpoint.keep", "train.log_every", "train.eval_every",
                          "run.output_dir", "parallel.tensor", "parallel.bucket_mb", "train.grad_accum"};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        CU_ASSERT_EQUAL(dapt_resume_key_class(safe[i], T, NULL), DAPT_RESUME_SAFE);
    CU_ASSERT_EQUAL(dapt_resume_key_class("train.steps", T, NULL), DAPT_RESUME_LENGTH);
    CU_ASSERT_EQUAL(dapt_resume_key_class("finetune.epochs", F, NULL), DAPT_RESUME_LENGTH);
    /* What the other command reads is not compared. */
    CU_ASSERT_EQUAL(dapt_resume_key_class("train.steps", F, NULL), DAPT_RESUME_UNREAD);
    CU_ASSERT_EQUAL(dapt_resume_key_class("finetune.lr", T, NULL), DAPT_RESUME_UNREAD);
    CU_ASSERT_EQUAL(dapt_resume_key_class("finetune.lr", F, NULL), DAPT_RESUME_REFUSED);
    CU_ASSERT_EQUAL(dapt_resume_key_class("finetune.task", F, NULL), DAPT_RESUME_REFUSED);
    CU_ASSERT_EQUAL(dapt_resume_key_class("train.adam_beta2", F, NULL), DAPT_RESUME_REFUSED);
    CU_ASSERT_EQUAL(dapt_resume_key_class("finetune.inject_stop_step", F, NULL), DAPT_RESUME_SAFE);
    CU_ASSERT_EQUAL(dapt_resume_key_class("run.seed", F, NULL), DAPT_RESUME_REFUSED);
}

/* A file whose root carries cfg as dapt_config, as every dapt file does. */
static void write_stored(const char *path, const dapt_config *cfg)
{
    dapt_h5file f;
    CU_ASSERT_FATAL(dapt_h5_create(MPI_COMM_WORLD, path, 1, cfg, &f) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_h5_commit(&f) == DAPT_OK);
}

static void test_compare(void)
{
    static dapt_config stored, now;
    dapt_test_shared_dir("resume_check");
    dapt_config_defaults(&stored);
    CU_ASSERT(dapt_config_set(&stored, "data.corpus=a.h5") == DAPT_OK);
    const char *path = dapt_test_shared_path("resume_check.h5");
    write_stored(path, &stored);
    dapt_resume_spec spec = {DAPT_RESUME_TRAIN, 0, 10, NULL, NULL};
    now = stored;
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_OK);
    /* Safe and length keys pass. */
    CU_ASSERT(dapt_config_set(&now, "checkpoint.every=7") == DAPT_OK);
    CU_ASSERT(dapt_config_set(&now, "train.steps=2000") == DAPT_OK);
    CU_ASSERT(dapt_config_set(&now, "finetune.lr=0.5") == DAPT_OK); /* not read by dapt train */
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_OK);
    /* A refused key: one line with the key, both values and the hint. */
    CU_ASSERT(dapt_config_set(&now, "data.corpus=b.h5") == DAPT_OK);
    CU_ASSERT(dapt_config_set(&now, "train.lr=0.5") == DAPT_OK);
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_ERR_CONFIG);
    const char *msg = dapt_error_message();
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "data.corpus was 'a.h5' in resume_check.h5, is 'b.h5' now"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "--override-resume-check"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "(also changed: train.lr)"));
    CU_ASSERT_PTR_NULL(strchr(msg, '\n'));
    /* The same under finetune: data.corpus is not read, train.lr neither. */
    spec.command = DAPT_RESUME_FINETUNE;
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_ERR_CONFIG); /* finetune.lr */
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "finetune.lr was 3e-05"));
    /* --override-resume-check: warnings only. */
    spec.override = 1;
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_OK);
    /* A value the schema does not accept (a plug-in method) compares as text. */
    snprintf(stored.train.method, sizeof stored.train.method, "probe");
    write_stored(path, &stored);
    now = stored;
    spec = (dapt_resume_spec){DAPT_RESUME_TRAIN, 0, 10, NULL, NULL};
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_OK);
    snprintf(now.train.method, sizeof now.train.method, "mlm");
    CU_ASSERT_EQUAL(dapt_resume_check(MPI_COMM_WORLD, path, &now, &spec), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "train.method was 'probe'"));
}

static void test_logged(void)
{
    dapt_test_shared_dir("resume_check");
    const char *path = dapt_test_shared_path("metrics.csv");
    if (dapt_test_world_rank() == 0) {
        FILE *f = fopen(path, "w");
        CU_ASSERT_FATAL(f != NULL);
        fputs("step,loss,lr,eval_loss\n0,,,9.5\n1,4.25,0.1,\n2,4.125,0.2,8.5\n3,nan,0.3,\n4,,0.4,\n", f);
        fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double v = 0;
    int64_t k = 0;
    CU_ASSERT(dapt_resume_logged(MPI_COMM_WORLD, path, "loss", 2, &v, &k) == DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(v, 4.125, 0.0);
    CU_ASSERT_EQUAL(k, 2);
    /* Empty cells are skipped; a logged nan counts (a skipped step). */
    CU_ASSERT(dapt_resume_logged(MPI_COMM_WORLD, path, "loss", 100, &v, &k) == DAPT_OK);
    CU_ASSERT(isnan(v));
    CU_ASSERT_EQUAL(k, 3);
    CU_ASSERT(dapt_resume_logged(MPI_COMM_WORLD, path, "eval_loss", 1, &v, &k) == DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(v, 9.5, 0.0);
    CU_ASSERT_EQUAL(k, 0);
    CU_ASSERT(dapt_resume_logged(MPI_COMM_WORLD, path, "nosuch", 100, &v, &k) == DAPT_OK);
    CU_ASSERT(isnan(v));
    CU_ASSERT_EQUAL(k, -1);
    CU_ASSERT(dapt_resume_logged(MPI_COMM_WORLD, dapt_test_shared_path("missing.csv"), "loss", 100, &v, &k) == DAPT_OK);
    CU_ASSERT(isnan(v));
    CU_ASSERT_EQUAL(k, -1);
    MPI_Barrier(MPI_COMM_WORLD);
    if (dapt_test_world_rank() == 0) CU_ASSERT_EQUAL(dapt_test_remove_tree(dapt_test_shared_dir("resume_check")), 0);
}

DAPT_TEST_MAIN("resume_check", {"every configuration key is classified for --resume", test_every_key_classified},
               {"refused, safe and length keys per command", test_classes},
               {"a stored configuration against the current one", test_compare},
               {"the last value a metrics file logged", test_logged})
