/* The engine against PyTorch: tests/fixtures/model/{bert,roberta}_tiny.h5
 * and their regression-head (num_labels = 1, MSE) twins *_tiny_regression.h5,
 * made by tools/fixtures/make_model_fixtures.py (a float64 PyTorch statement
 * of the same architecture and weights).  Compares hidden states, pooler,
 * MLM and class logits, both losses, every parameter gradient and the
 * gradients of the three unit masks.
 *
 * Tolerance: the reference is float64, so the difference is dapt's own
 * float32 rounding.  Each value passes through ~40 dependent float ops
 * (2 layers of matmul + softmax + LayerNorm, then the heads and their
 * backward), each with relative error <= 6e-8 on O(1) magnitudes and
 * sums of <= 40 terms; a worst-case bound is ~40 * 40 * 6e-8 ~= 1e-4 of the
 * tensor's scale.  We require max |dapt - ref| <= 1e-4 * max(1, max |ref|)
 * per tensor (observed: ~1e-6).  A wrong formula (missing mask, transposed
 * head, wrong LN term) gives errors of order 1e-2 .. 1. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/model.h"
#include "harness.h"

#define REL_TOL 1e-4

typedef struct fixture {
    hid_t file;
    dapt_model model;
    int64_t B, S;
    int32_t *ids, *mask, *tt, *labels, *cls;
    float *reg; /* regression targets (num_labels = 1 fixtures) instead of cls */
    float *hm, *im, *om;
} fixture;

static int64_t attr_int(hid_t obj, const char *name)
{
    long long v = 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_LLONG, &v);
    H5Aclose(a);
    return (int64_t)v;
}

static double attr_double(hid_t obj, const char *name)
{
    double v = 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    return v;
}

/* Reads a whole dataset as mem_type; returns the element count (0 on error). */
static size_t read_all(hid_t file, const char *path, hid_t mem_type, void **out, size_t elem)
{
    *out = NULL;
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return 0;
    hid_t d = H5Dopen2(file, path, H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    void *buf = malloc((size_t)n * elem);
    herr_t rc = H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(d);
    if (rc < 0) {
        free(buf);
        return 0;
    }
    *out = buf;
    return (size_t)n;
}

static int load(fixture *fx, const char *rel)
{
    memset(fx, 0, sizeof *fx);
    fx->file = H5Fopen(dapt_test_path(rel), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fx->file < 0) return 0;
    hid_t g = H5Gopen2(fx->file, "config", H5P_DEFAULT);
    char arch[16] = {0};
    hid_t a = H5Aopen(g, "arch", H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t)); /* h5py writes UTF-8 */
        H5Aread(a, mt, &s);
        snprintf(arch, sizeof arch, "%s", s);
        H5free_memory(s);
        H5Tclose(mt);
    }
    H5Tclose(t);
    H5Aclose(a);
    dapt_model_config mc;
    memset(&mc, 0, sizeof mc);
    mc.arch = strcmp(arch, "roberta") ? DAPT_ARCH_BERT : DAPT_ARCH_ROBERTA;
    mc.vocab_size = attr_int(g, "vocab_size");
    mc.hidden = attr_int(g, "hidden");
    mc.layers = attr_int(g, "layers");
    mc.heads = attr_int(g, "heads");
    mc.intermediate = attr_int(g, "intermediate");
    mc.max_position = attr_int(g, "max_position");
    mc.type_vocab_size = attr_int(g, "type_vocab_size");
    mc.pad_token_id = attr_int(g, "pad_token_id");
    mc.layer_norm_eps = attr_double(g, "layer_norm_eps");
    mc.num_labels = attr_int(g, "num_labels");
    mc.has_pooler = (int)attr_int(g, "has_pooler");
    mc.has_mlm_head = (int)attr_int(g, "has_mlm_head");
    H5Gclose(g);
    if (dapt_model_create(&mc, &fx->model) != DAPT_OK) return 0;
    for (size_t i = 0; i < fx->model.table.count; i++) {
        const dapt_tensor *x = &fx->model.table.tensors[i];
        char path[128];
        snprintf(path, sizeof path, "params/%s", x->name);
        float *buf;
        size_t n = read_all(fx->file, path, H5T_NATIVE_FLOAT, (void **)&buf, sizeof(float));
        if (n != x->numel) {
            fprintf(stderr, "fixture %s: %s has %zu values, table wants %zu\n", rel, x->name, n, x->numel);
            free(buf);
            return 0;
        }
        memcpy(fx->model.params + x->offset, buf, n * sizeof *buf);
        free(buf);
    }
    size_t n = read_all(fx->file, "inputs/input_ids", H5T_NATIVE_INT32, (void **)&fx->ids, 4);
    hid_t d = H5Dopen2(fx->file, "inputs/input_ids", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2];
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    fx->B = (int64_t)dims[0];
    fx->S = (int64_t)dims[1];
    if (n != (size_t)(fx->B * fx->S)) return 0;
    read_all(fx->file, "inputs/attention_mask", H5T_NATIVE_INT32, (void **)&fx->mask, 4);
    read_all(fx->file, "inputs/token_type_ids", H5T_NATIVE_INT32, (void **)&fx->tt, 4);
    read_all(fx->file, "inputs/mlm_labels", H5T_NATIVE_INT32, (void **)&fx->labels, 4);
    read_all(fx->file, "inputs/class_labels", H5T_NATIVE_INT32, (void **)&fx->cls, 4);
    read_all(fx->file, "inputs/regression_labels", H5T_NATIVE_FLOAT, (void **)&fx->reg, 4);
    read_all(fx->file, "inputs/head_mask", H5T_NATIVE_FLOAT, (void **)&fx->hm, 4);
    read_all(fx->file, "inputs/intermediate_mask", H5T_NATIVE_FLOAT, (void **)&fx->im, 4);
    read_all(fx->file, "inputs/output_mask", H5T_NATIVE_FLOAT, (void **)&fx->om, 4);
    return fx->mask && fx->tt && fx->labels && (fx->cls || fx->reg) && fx->hm && fx->im && fx->om;
}

static void unload(fixture *fx)
{
    dapt_model_free(&fx->model);
    free(fx->ids);
    free(fx->mask);
    free(fx->tt);
    free(fx->labels);
    free(fx->cls);
    free(fx->reg);
    free(fx->hm);
    free(fx->im);
    free(fx->om);
    if (fx->file >= 0) H5Fclose(fx->file);
}

/* max |got - ref| / max(1, max |ref|) over n values, got with stride. */
static double rel_err(const float *got, const double *ref, size_t n)
{
    double scale = 1.0, err = 0.0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) err = fmax(err, fabs((double)got[i] - ref[i]));
    return err / scale;
}

static double worst = 0.0;

static void expect_close(const fixture *fx, const char *path, const float *got, size_t n)
{
    double *ref;
    size_t m = read_all(fx->file, path, H5T_NATIVE_DOUBLE, (void **)&ref, sizeof(double));
    CU_ASSERT_EQUAL_FATAL(m, n);
    double e = rel_err(got, ref, n);
    if (e > worst) worst = e;
    if (e > REL_TOL) fprintf(stderr, "  %s: relative error %.3g\n", path, e);
    CU_ASSERT(e <= REL_TOL);
    free(ref);
}

static void run_fixture(const char *rel, int recompute)
{
    fixture fx;
    CU_ASSERT_FATAL(load(&fx, rel));
    dapt_model *m = &fx.model;
    const dapt_model_config *mc = &m->config;
    const int64_t B = fx.B, S = fx.S, T = B * S, H = mc->hidden, L = mc->layers, V = mc->vocab_size;
    dapt_workspace_spec spec = {B, S, 0, 1, recompute};
    dapt_workspace *ws = NULL;
    CU_ASSERT_FATAL(dapt_workspace_create(m, &spec, &ws) == DAPT_OK);
    dapt_batch b = {B, S, fx.ids, fx.mask, fx.tt, fx.labels, fx.cls, 0, fx.reg};
    dapt_unit_masks um = {fx.hm, fx.im, fx.om};
    dapt_run_opts opts = {0};
    opts.mlm_all_positions = 1;
    CU_ASSERT_FATAL(dapt_model_forward(m, ws, &b, &um, &opts) == DAPT_OK);

    for (int64_t i = 0; i <= L; i++) {
        double *ref;
        size_t n = read_all(fx.file, "expected/hidden_states", H5T_NATIVE_DOUBLE, (void **)&ref, 8);
        CU_ASSERT_EQUAL_FATAL(n, (size_t)((L + 1) * T * H));
        double e = rel_err(dapt_ws_hidden_state(ws, i), ref + i * T * H, (size_t)(T * H));
        if (e > worst) worst = e;
        CU_ASSERT(e <= REL_TOL);
        free(ref);
    }
    expect_close(&fx, "expected/pooler_output", dapt_ws_pooler(ws), (size_t)(B * H));
    int64_t rows;
    const int64_t *pos;
    const float *logits = dapt_ws_mlm_logits(ws, &rows, &pos);
    CU_ASSERT_EQUAL_FATAL(rows, T);
    for (int64_t r = 0; r < rows; r++) CU_ASSERT_EQUAL(pos[r], r);
    expect_close(&fx, "expected/mlm_logits", logits, (size_t)(T * V));
    expect_close(&fx, "expected/class_logits", dapt_ws_class_logits(ws), (size_t)(B * mc->num_labels));
    hid_t g = H5Gopen2(fx.file, "expected", H5P_DEFAULT);
    CU_ASSERT_DOUBLE_EQUAL(dapt_ws_mlm_loss(ws, NULL), attr_double(g, "mlm_loss"), 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(dapt_ws_cls_loss(ws), attr_double(g, "cls_loss"), 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(dapt_ws_loss(ws), attr_double(g, "loss"), 2e-4);
    H5Gclose(g);

    float *ghm = calloc((size_t)(L * mc->heads), sizeof(float));
    float *gim = calloc((size_t)(L * mc->intermediate), sizeof(float));
    float *gom = calloc((size_t)(L * H), sizeof(float));
    dapt_unit_mask_grads mg = {ghm, gim, gom};
    dapt_model_zero_grads(m);
    CU_ASSERT_FATAL(dapt_model_backward(m, ws, 1.0, NULL, &mg) == DAPT_OK);
    for (size_t i = 0; i < m->table.count; i++) {
        const dapt_tensor *x = &m->table.tensors[i];
        char path[128];
        snprintf(path, sizeof path, "expected/grads/%s", x->name);
        expect_close(&fx, path, m->grads + x->offset, x->numel);
    }
    expect_close(&fx, "expected/head_mask_grad", ghm, (size_t)(L * mc->heads));
    expect_close(&fx, "expected/intermediate_mask_grad", gim, (size_t)(L * mc->intermediate));
    expect_close(&fx, "expected/output_mask_grad", gom, (size_t)(L * H));
    free(ghm);
    free(gim);
    free(gom);
    dapt_workspace_free(ws);
    unload(&fx);
}

static void test_bert(void) { run_fixture("tests/fixtures/model/bert_tiny.h5", 0); }
static void test_roberta(void) { run_fixture("tests/fixtures/model/roberta_tiny.h5", 0); }
static void test_bert_recompute(void) { run_fixture("tests/fixtures/model/bert_tiny.h5", 1); }
static void test_roberta_recompute(void) { run_fixture("tests/fixtures/model/roberta_tiny.h5", 1); }
/* num_labels = 1: Hugging Face's regression, MSE to float labels. */
static void test_bert_regression(void) { run_fixture("tests/fixtures/model/bert_tiny_regression.h5", 0); }
static void test_roberta_regression(void) { run_fixture("tests/fixtures/model/roberta_tiny_regression.h5", 0); }

static void test_report(void)
{
    printf("\n  worst relative error against PyTorch float64: %.3g (tolerance %.0e)\n", worst, REL_TOL);
    CU_ASSERT(worst > 0.0); /* the comparisons did run */
}

DAPT_TEST_MAIN("model fixtures", {"BERT MLM + classification vs PyTorch", test_bert},
               {"RoBERTa MLM + classification vs PyTorch", test_roberta},
               {"BERT with per-layer recomputation", test_bert_recompute},
               {"RoBERTa with per-layer recomputation", test_roberta_recompute},
               {"BERT regression head (MSE) vs PyTorch", test_bert_regression},
               {"RoBERTa regression head (MSE) vs PyTorch", test_roberta_regression},
               {"error summary", test_report})
