/* Classification and regression metrics against hand-computed cases, their
 * reduction over ranks, and the task-file reader's checks (labels out of range, missing
 * split).  Runs on any number of ranks (tests/task/metrics_ranks.test: 2). */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/corpus.h"
#include "dapt/task.h"
#include "harness.h"

#define NEAR(a, b) CU_ASSERT_DOUBLE_EQUAL((a), (b), 1e-12)

/* Each rank counts the examples i with i % size == rank, then the matrices
 * are summed: the result must not depend on the number of ranks. */
static void fill(dapt_cls_metrics *m, const int32_t *truth, const int32_t *pred, int n)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 0; i < n; i++)
        if (i % size == rank) CU_ASSERT_EQUAL(dapt_cls_metrics_add(m, truth[i], pred[i]), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_cls_metrics_allreduce(m, MPI_COMM_WORLD), DAPT_OK);
    dapt_cls_metrics_finish(m);
}

/* 5 classes: 2 is present but never predicted, 3 is predicted but never
 * present, 4 is neither (left out of the macro averages, as scikit-learn's
 * default label set does).  By hand:
 *   class 0: tp 2, predicted 4, support 4 -> P 1/2, R 1/2, F1 1/2
 *   class 1: tp 2, predicted 4, support 4 -> P 1/2, R 1/2, F1 1/2
 *   class 2: tp 0, predicted 0, support 2 -> P 0 (zero division), R 0, F1 0
 *   class 3: tp 0, predicted 2, support 0 -> P 0, R 0 (zero division), F1 0
 *   macro over 4 classes: P = R = F1 = (1/2 + 1/2 + 0 + 0) / 4 = 1/4
 *   accuracy = micro-F1 = 4/10; weighted F1 = (1/2*4 + 1/2*4) / 10 = 2/5 */
static void test_absent_classes(void)
{
    const int32_t truth[] = {0, 0, 0, 1, 1, 1, 2, 2, 0, 1};
    const int32_t pred[] = {0, 0, 1, 1, 1, 0, 0, 1, 3, 3};
    dapt_cls_metrics m;
    CU_ASSERT_EQUAL_FATAL(dapt_cls_metrics_init(&m, 5), DAPT_OK);
    fill(&m, truth, pred, 10);
    CU_ASSERT_EQUAL(m.total, 10);
    const int64_t conf[25] = {2, 1, 0, 1, 0, /**/ 1, 2, 0, 1, 0, /**/ 1, 1, 0, 0, 0, /**/ 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0};
    for (int i = 0; i < 25; i++) CU_ASSERT_EQUAL(m.confusion[i], conf[i]);
    const int64_t support[5] = {4, 4, 2, 0, 0}, predicted[5] = {4, 4, 0, 2, 0};
    const double p[5] = {0.5, 0.5, 0, 0, 0}, r[5] = {0.5, 0.5, 0, 0, 0}, f[5] = {0.5, 0.5, 0, 0, 0};
    for (int k = 0; k < 5; k++) {
        CU_ASSERT_EQUAL(m.support[k], support[k]);
        CU_ASSERT_EQUAL(m.predicted[k], predicted[k]);
        NEAR(m.precision[k], p[k]);
        NEAR(m.recall[k], r[k]);
        NEAR(m.f1[k], f[k]);
    }
    CU_ASSERT_EQUAL(m.n_averaged, 4);
    NEAR(m.macro_precision, 0.25);
    NEAR(m.macro_recall, 0.25);
    NEAR(m.macro_f1, 0.25);
    NEAR(m.accuracy, 0.4);
    NEAR(m.micro_f1, 0.4);
    NEAR(m.weighted_f1, 0.4);
    double v = 0;
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&m, "macro_f1", &v), DAPT_OK);
    NEAR(v, 0.25);
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&m, "bleu", &v), DAPT_ERR_CONFIG);
    dapt_cls_metrics_free(&m);
}

/* Precision and recall that differ.  truth 0 0 0 1 1 2, pred 0 0 1 1 2 2:
 *   class 0: P 2/2 = 1,  R 2/3, F1 = 2 * (2/3) / (5/3) = 4/5
 *   class 1: P 1/2,      R 1/2, F1 1/2
 *   class 2: P 1/2,      R 1/1, F1 = 2 * (1/2) / (3/2) = 2/3
 *   macro P (1 + 1/2 + 1/2) / 3 = 2/3, macro R (2/3 + 1/2 + 1) / 3 = 13/18,
 *   macro F1 (4/5 + 1/2 + 2/3) / 3 = 59/90, accuracy 4/6,
 *   weighted F1 (4/5*3 + 1/2*2 + 2/3*1) / 6 = 61/90 */
static void test_unequal_precision_recall(void)
{
    const int32_t truth[] = {0, 0, 0, 1, 1, 2}, pred[] = {0, 0, 1, 1, 2, 2};
    dapt_cls_metrics m;
    CU_ASSERT_EQUAL_FATAL(dapt_cls_metrics_init(&m, 3), DAPT_OK);
    fill(&m, truth, pred, 6);
    NEAR(m.precision[0], 1.0);
    NEAR(m.recall[0], 2.0 / 3.0);
    NEAR(m.f1[0], 0.8);
    NEAR(m.f1[1], 0.5);
    NEAR(m.precision[2], 0.5);
    NEAR(m.recall[2], 1.0);
    NEAR(m.f1[2], 2.0 / 3.0);
    NEAR(m.macro_precision, 2.0 / 3.0);
    NEAR(m.macro_recall, 13.0 / 18.0);
    NEAR(m.macro_f1, 59.0 / 90.0);
    NEAR(m.accuracy, 4.0 / 6.0);
    NEAR(m.weighted_f1, 61.0 / 90.0);
    dapt_cls_metrics_free(&m);
}

static void test_refuses_bad_labels(void)
{
    dapt_cls_metrics m;
    CU_ASSERT_EQUAL(dapt_cls_metrics_init(&m, 0), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL_FATAL(dapt_cls_metrics_init(&m, 3), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_cls_metrics_add(&m, 3, 0), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL(dapt_cls_metrics_add(&m, 0, -1), DAPT_ERR_ARG);
    CU_ASSERT_EQUAL(m.total, 0);
    dapt_cls_metrics_free(&m);
}

/* ---- task files ---------------------------------------------------------- */

static char dir[256];

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

/* A real prepared task (dapt_prepare_task, bert-base-uncased), rank 0's
 * scratch directory shared by broadcast. */
static int make_task_ex(char *path, size_t len, const char *train_text, const char *dev_text, int regression)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        snprintf(dir, sizeof dir, "%s/dapt-task-test-XXXXXX", dapt_test_tmpdir());
        if (!mkdtemp(dir)) dir[0] = '\0';
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (!dir[0]) return 0;
    char train[300], dev[300], vocab[600];
    snprintf(train, sizeof train, "%s/train.tsv", dir);
    snprintf(dev, sizeof dev, "%s/dev.tsv", dir);
    if (rank == 0) {
        write_text(train, train_text);
        write_text(dev, dev_text);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const char *vd = getenv("DAPT_VOCAB_DIR");
    snprintf(vocab, sizeof vocab, "%s/bert-base-uncased/vocab.txt", vd && *vd ? vd : "vocab");
    dapt_tokenizer *tok = NULL;
    if (dapt_tokenizer_load(vocab, &tok) != DAPT_OK) {
        fprintf(stderr, "cannot load %s: %s\n", vocab, dapt_error_message());
        return 0;
    }
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    const char *inputs[] = {train, dev};
    snprintf(path, len, "%s/task.h5", dir);
    dapt_prepare_opts o = {tok, vocab, inputs, 2, path, 1, &cfg, DAPT_DOC_LINE, DAPT_TASK_TSV, regression};
    dapt_prepare_stats stats;
    dapt_status st = dapt_prepare_task(MPI_COMM_WORLD, &o, &stats);
    dapt_tokenizer_free(tok);
    if (st != DAPT_OK) fprintf(stderr, "prepare: %s\n", dapt_error_message());
    return st == DAPT_OK;
}

static int make_task(char *path, size_t len)
{
    return make_task_ex(path, len, "the cat sat\tanimal\na red car\tvehicle\nthe dog ran\tanimal\na fast truck\tvehicle\n",
                        "a cat\tanimal\nthe bus\tvehicle\n", 0);
}

static void remove_dir(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
}

/* Overwrites train/labels[1] in place (rank 0, serial HDF5). */
static void poke_label(const char *path, int32_t value)
{
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Barrier(MPI_COMM_WORLD); /* every rank has finished reading the file */
    if (rank == 0) {
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        CU_ASSERT_FATAL(f >= 0);
        hid_t d = H5Dopen2(f, "train/labels", H5P_DEFAULT);
        hid_t space = H5Dget_space(d);
        hsize_t start = 1, count = 1;
        H5Sselect_hyperslab(space, H5S_SELECT_SET, &start, NULL, &count, NULL);
        hid_t mem = H5Screate_simple(1, &count, NULL);
        CU_ASSERT(H5Dwrite(d, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &value) >= 0);
        H5Sclose(mem);
        H5Sclose(space);
        H5Dclose(d);
        H5Fclose(f);
    }
    MPI_Barrier(MPI_COMM_WORLD);
}

static void test_task_file(void)
{
    char path[400];
    CU_ASSERT_FATAL(make_task(path, sizeof path));
    dapt_task_file t;
    CU_ASSERT_EQUAL_FATAL(dapt_task_file_open(path, &t), DAPT_OK);
    CU_ASSERT_EQUAL(t.n_labels, 2);
    CU_ASSERT_STRING_EQUAL(t.label_names[0], "animal");
    CU_ASSERT_STRING_EQUAL(t.label_names[1], "vehicle");
    CU_ASSERT_EQUAL(t.vocab_size, 30522);
    dapt_task_split s;
    CU_ASSERT_EQUAL_FATAL(dapt_task_split_read(&t, "train", &s), DAPT_OK);
    CU_ASSERT_EQUAL(s.n, 4);
    CU_ASSERT_EQUAL(s.labels[0], 0);
    CU_ASSERT_EQUAL(s.labels[1], 1);
    CU_ASSERT_EQUAL(s.ids[0], 101); /* [CLS] */
    CU_ASSERT_EQUAL(s.ids[s.offsets[1] - 1], 102); /* [SEP] */
    CU_ASSERT_EQUAL(s.offsets[1], 5);          /* [CLS] the cat sat [SEP] */
    CU_ASSERT_PTR_NULL(s.type_ids);
    dapt_task_split_free(&s);

    /* A split the file does not have: the error lists those it has. */
    CU_ASSERT_EQUAL(dapt_task_split_read(&t, "validation", &s), DAPT_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "no split 'validation' (it has: train,dev)"));

    /* A label outside 0..n_labels-1 names the split and the example. */
    poke_label(path, 2);
    CU_ASSERT_EQUAL(dapt_task_split_read(&t, "train", &s), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "/train example 1 has label 2 outside 0..1"));
    poke_label(path, -3);
    CU_ASSERT_EQUAL(dapt_task_split_read(&t, "train", &s), DAPT_ERR_FORMAT);
    CU_ASSERT_EQUAL(dapt_task_split_read(&t, "dev", &s), DAPT_OK);
    dapt_task_split_free(&s);
    dapt_task_file_free(&t);

    /* Not a task file. */
    char other[400];
    snprintf(other, sizeof other, "%s/train.tsv", dir);
    CU_ASSERT_NOT_EQUAL(dapt_task_file_open(other, &t), DAPT_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        CU_ASSERT_EQUAL(dapt_test_remove_tree(dir), 0);
    }
}

/* MSE, RMSE, MAE, Pearson and Spearman (tied predictions share the mean
 * rank) against scipy.stats on the same five pairs:
 *   t = [1,2,3,4,5], p = [1.5,1.5,3.5,5,4]: mse 0.55, mae 0.7,
 *   pearsonr 0.8630442403635762 (= 8.5 / sqrt(97)), spearmanr 0.8720815992723809. */
static void test_regression_metrics(void)
{
    const float t[5] = {1, 2, 3, 4, 5}, p[5] = {1.5f, 1.5f, 3.5f, 5, 4};
    dapt_reg_metrics r;
    CU_ASSERT_EQUAL_FATAL(dapt_reg_metrics_compute(t, p, 5, &r), DAPT_OK);
    CU_ASSERT_EQUAL(r.n, 5);
    NEAR(r.mse, 0.55);
    NEAR(r.rmse, sqrt(0.55));
    NEAR(r.mae, 0.7);
    NEAR(r.pearson, 8.5 / sqrt(97.0));
    NEAR(r.spearman, 0.8720815992723809);
    /* A constant prediction has no correlation (scipy: nan). */
    const float c[5] = {2, 2, 2, 2, 2};
    CU_ASSERT_EQUAL_FATAL(dapt_reg_metrics_compute(t, c, 5, &r), DAPT_OK);
    CU_ASSERT(isnan(r.pearson) && isnan(r.spearman));
    NEAR(r.mse, 3.0);
    CU_ASSERT_EQUAL(dapt_reg_metrics_compute(t, p, 0, &r), DAPT_ERR_ARG);
}

/* finetune.metric: lower is better for mse, rmse, mae; "auto" is macro_f1
 * or mse; a metric of the other kind of task is refused in one line. */
static void test_metric_direction_and_kind(void)
{
    dapt_cls_metrics reg, cls;
    memset(&reg, 0, sizeof reg);
    memset(&cls, 0, sizeof cls);
    reg.regression = 1;
    reg.reg.mse = 0.25;
    reg.reg.pearson = 0.9;
    double v = 0.0;
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&reg, "auto", &v), DAPT_OK);
    NEAR(v, 0.25);
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&reg, "pearson", &v), DAPT_OK);
    NEAR(v, 0.9);
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&reg, "accuracy", &v), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "accuracy is a classification metric"));
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&cls, "mse", &v), DAPT_ERR_CONFIG);
    CU_ASSERT_EQUAL(dapt_cls_metrics_get(&cls, "nonsense", &v), DAPT_ERR_CONFIG);
    CU_ASSERT(dapt_metric_improves(&reg, "mse", 0.2, 0.25, 1));
    CU_ASSERT(!dapt_metric_improves(&reg, "mse", 0.3, 0.25, 1));
    CU_ASSERT(dapt_metric_improves(&reg, "auto", 0.2, 0.25, 1));
    CU_ASSERT(dapt_metric_improves(&reg, "mae", 9.0, 0.0, 0)); /* no best yet */
    CU_ASSERT(dapt_metric_improves(&reg, "pearson", 0.95, 0.9, 1));
    CU_ASSERT(!dapt_metric_improves(&reg, "spearman", 0.8, 0.9, 1));
    CU_ASSERT(!dapt_metric_improves(&reg, "pearson", NAN, 0.0, 0));
    CU_ASSERT(dapt_metric_improves(&cls, "auto", 0.6, 0.5, 1));
    CU_ASSERT(!dapt_metric_improves(&cls, "accuracy", 0.4, 0.5, 1));
    dapt_task_file t;
    memset(&t, 0, sizeof t);
    snprintf(t.path, sizeof t.path, "sts.h5");
    t.regression = 1;
    t.n_labels = 1;
    CU_ASSERT_EQUAL(dapt_task_metric_check(&t, "auto"), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_task_metric_check(&t, "spearman"), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_task_metric_check(&t, "macro_f1"), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "sts.h5 is a regression task"));
    CU_ASSERT_PTR_NULL(strchr(dapt_error_message(), '\n'));
    t.regression = 0;
    t.n_labels = 3;
    CU_ASSERT_EQUAL(dapt_task_metric_check(&t, "rmse"), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "rmse is a regression metric"));
}

/* dapt prepare --task --regression: float32 targets, n_labels 1,
 * task_type "regression"; a non-numeric label names the file and line. */
static void test_regression_task_file(void)
{
    char path[400];
    CU_ASSERT_FATAL(make_task_ex(path, sizeof path, "the cat sat\t0.5\na red car\t-1.25\nthe dog ran\t3\na fast truck\t1e-1\n",
                                 "a cat\t2.0\nthe bus\t0\n", 1));
    dapt_task_file t;
    CU_ASSERT_EQUAL_FATAL(dapt_task_file_open(path, &t), DAPT_OK);
    CU_ASSERT(t.regression);
    CU_ASSERT_EQUAL(t.n_labels, 1);
    CU_ASSERT_STRING_EQUAL(t.label_names[0], "LABEL_0");
    dapt_task_split s;
    CU_ASSERT_EQUAL_FATAL(dapt_task_split_read(&t, "train", &s), DAPT_OK);
    CU_ASSERT_EQUAL(s.n, 4);
    CU_ASSERT_PTR_NULL(s.labels);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s.values);
    CU_ASSERT_EQUAL(s.values[0], 0.5f);
    CU_ASSERT_EQUAL(s.values[1], -1.25f);
    CU_ASSERT_EQUAL(s.values[2], 3.0f);
    CU_ASSERT_EQUAL(s.values[3], 0.1f);
    CU_ASSERT_EQUAL(s.offsets[1], 5);
    dapt_task_split_free(&s);
    dapt_task_file_free(&t);
    remove_dir();
    /* A classification task written alongside is still one (no task_type). */
    CU_ASSERT_FATAL(make_task(path, sizeof path));
    CU_ASSERT_EQUAL_FATAL(dapt_task_file_open(path, &t), DAPT_OK);
    CU_ASSERT(!t.regression);
    dapt_task_file_free(&t);
    remove_dir();
    CU_ASSERT_FALSE(make_task_ex(path, sizeof path, "the cat sat\t0.5\na red car\tvehicle\n", "a cat\t2\n", 1));
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "train.tsv:2: label 'vehicle' is not a finite number"));
    remove_dir();
}

DAPT_TEST_MAIN("task metrics and files", {"absent and never-predicted classes", test_absent_classes},
               {"unequal precision and recall", test_unequal_precision_recall},
               {"out-of-range labels refused", test_refuses_bad_labels}, {"task file reader", test_task_file},
               {"regression metrics against scipy", test_regression_metrics},
               {"metric direction and kind", test_metric_direction_and_kind},
               {"regression task file", test_regression_task_file})
