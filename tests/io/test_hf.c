/* Hugging Face import/export: every fixture architecture imports with the
 * right name mapping and dtype conversion; import -> export -> import is
 * bit-identical (model files and, for float32 sources, the safetensors and
 * config.json bytes too); each malformed checkpoint is refused with its
 * cause. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/hf.h"
#include "dapt/modelfile.h"
#include "dapt/safetensors.h"
#include "harness.h"

static const char *const fixtures[] = {"bert_mlm",     "bert_mlm_decoder", "bert_mlm_f16", "bert_mlm_bf16",
                                       "bert_mlm_buffers", "bert_cls",     "bert_base",    "roberta_mlm",
                                       "roberta_mlm_decoder", "roberta_cls", "roberta_base", "bert_reg",
                                       "roberta_reg"};
#define NFIX (sizeof fixtures / sizeof fixtures[0])

static const char *fixture(const char *name)
{
    static char buf[4][1024];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s", dapt_test_path("tests/fixtures/hf/"));
    strncat(b, name, sizeof buf[0] - strlen(b) - 1);
    return b;
}

static const char *scratch(const char *name) { return dapt_test_tmpfile("hf", name); }

static int same_file(const char *a, const char *b)
{
    unsigned char *x = NULL, *y = NULL;
    size_t lx = 0, ly = 0;
    int same = dapt_fs_read_file(a, 1 << 26, &x, &lx) == DAPT_OK && dapt_fs_read_file(b, 1 << 26, &y, &ly) == DAPT_OK &&
               lx == ly && !memcmp(x, y, lx);
    free(x);
    free(y);
    return same;
}

/* Every dapt tensor equals the Hugging Face tensor of the mapped name,
 * converted to float32. */
static void test_import_mapping(void)
{
    for (size_t k = 0; k < NFIX; k++) {
        dapt_model_config mc;
        dapt_param_table table;
        dapt_model_meta meta;
        float *params = NULL;
        dapt_status s = dapt_hf_import(fixture(fixtures[k]), &mc, &table, &params, &meta);
        if (s != DAPT_OK) fprintf(stderr, "\n%s: %s\n", fixtures[k], dapt_error_message());
        CU_ASSERT_EQUAL_FATAL(s, DAPT_OK);
        int roberta = !strncmp(fixtures[k], "roberta", 7), base = strstr(fixtures[k], "_base") != NULL;
        int reg = strstr(fixtures[k], "_reg") != NULL; /* a regression head: one output */
        int cls = strstr(fixtures[k], "_cls") != NULL || reg;
        CU_ASSERT_EQUAL(mc.arch, roberta ? DAPT_ARCH_ROBERTA : DAPT_ARCH_BERT);
        CU_ASSERT_EQUAL(mc.has_mlm_head, !base && !cls);
        CU_ASSERT_EQUAL(mc.num_labels, reg ? 1 : cls ? 3 : 0);
        CU_ASSERT_EQUAL(mc.has_pooler, base || (cls && !roberta));
        CU_ASSERT_EQUAL(mc.hidden, 8);
        CU_ASSERT_EQUAL(mc.pad_token_id, roberta ? 1 : 0);
        CU_ASSERT_EQUAL(mc.layer_norm_eps, roberta ? 1e-5 : 1e-12);
        CU_ASSERT_EQUAL(meta.ntokenizer, roberta ? 4u : 3u);
        if (cls && !reg) CU_ASSERT_STRING_EQUAL(meta.labels[2], "positive");
        if (reg) CU_ASSERT_STRING_EQUAL(meta.labels[0], "LABEL_0");
        char path[1100];
        snprintf(path, sizeof path, "%s/model.safetensors", fixture(fixtures[k]));
        dapt_safetensors st;
        CU_ASSERT_EQUAL_FATAL(dapt_st_open(path, &st), DAPT_OK);
        int all = 1;
        for (size_t i = 0; i < table.count; i++) {
            const dapt_tensor *t = &table.tensors[i];
            char hf[256];
            CU_ASSERT_EQUAL(dapt_hf_tensor_name(mc.arch, base ? "" : roberta ? "roberta." : "bert.", t->name, hf,
                                                sizeof hf), DAPT_OK);
            const dapt_st_tensor *x = dapt_st_find(&st, hf);
            float *want = malloc(t->numel * sizeof *want);
            all &= x && x->numel == t->numel && dapt_st_to_f32(&st, x, want) == DAPT_OK &&
                   !memcmp(want, params + t->offset, t->numel * sizeof *want);
            free(want);
        }
        CU_ASSERT_TRUE(all);
        dapt_st_close(&st);
        free(params);
        dapt_param_table_free(&table);
        dapt_model_meta_free(&meta);
    }
    /* A spot check of the mapping itself. */
    char hf[256];
    dapt_hf_tensor_name(DAPT_ARCH_BERT, "bert.", "layer.1.attn.k.bias", hf, sizeof hf);
    CU_ASSERT_STRING_EQUAL(hf, "bert.encoder.layer.1.attention.self.key.bias");
    dapt_hf_tensor_name(DAPT_ARCH_ROBERTA, "roberta.", "mlm.ln.weight", hf, sizeof hf);
    CU_ASSERT_STRING_EQUAL(hf, "lm_head.layer_norm.weight");
    dapt_hf_tensor_name(DAPT_ARCH_ROBERTA, "roberta.", "cls.out.bias", hf, sizeof hf);
    CU_ASSERT_STRING_EQUAL(hf, "classifier.out_proj.bias");
    dapt_hf_tensor_name(DAPT_ARCH_BERT, "bert.", "cls.weight", hf, sizeof hf);
    CU_ASSERT_STRING_EQUAL(hf, "classifier.weight");
    dapt_hf_tensor_name(DAPT_ARCH_BERT, "", "layer.0.ffn.ln.bias", hf, sizeof hf);
    CU_ASSERT_STRING_EQUAL(hf, "encoder.layer.0.output.LayerNorm.bias");
}

static dapt_status import_to(const char *dir, const char *out)
{
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    DAPT_CHECK(dapt_hf_import(dir, &mc, &table, &params, &meta));
    dapt_status st = dapt_modelfile_save(MPI_COMM_SELF, out, 1, &cfg, &mc, &table, params, &meta);
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

static dapt_status export_from(const char *model, const char *dir)
{
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    DAPT_CHECK(dapt_modelfile_load(MPI_COMM_SELF, model, &mc, &table, &params, &meta));
    const dapt_hf_export_opts opts = {.force = 1};
    dapt_status st = dapt_hf_export(dir, &opts, &mc, &table, params, &meta);
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

static void test_roundtrip(void)
{
    for (size_t k = 0; k < NFIX; k++) {
        const char *a = scratch("a.h5"), *b = scratch("b.h5"), *dir = scratch("exported");
        CU_ASSERT_EQUAL_FATAL(import_to(fixture(fixtures[k]), a), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(export_from(a, dir), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(import_to(dir, b), DAPT_OK);
        CU_ASSERT_TRUE(same_file(a, b)); /* import -> export -> import: the same bytes */
        /* The exported safetensors and config.json reproduce Hugging Face's
         * own files byte for byte when nothing had to be converted or dropped. */
        int pristine = !strstr(fixtures[k], "f16") && !strstr(fixtures[k], "decoder") && !strstr(fixtures[k], "buffers");
        char x[1200], y[1200];
        const char *files[] = {"model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json"};
        for (int i = 0; i < 4; i++) {
            if (i == 2 && !strncmp(fixtures[k], "roberta", 7)) files[2] = "merges.txt";
            snprintf(x, sizeof x, "%s/%s", dir, files[i]);
            snprintf(y, sizeof y, "%s/%s", fixture(fixtures[k]), files[i]);
            /* A regression head's export adds num_labels 1, which
             * save_pretrained leaves implicit in id2label. */
            if ((pristine && !(i == 1 && strstr(fixtures[k], "_reg"))) || i >= 2) {
                if (!same_file(x, y)) fprintf(stderr, "\n%s: %s differs\n", fixtures[k], files[i]);
                CU_ASSERT_TRUE(same_file(x, y));
            }
        }
        /* Converted sources: the exported tensors equal the originals
         * converted to float32, under the same names. */
        snprintf(x, sizeof x, "%s/model.safetensors", dir);
        snprintf(y, sizeof y, "%s/model.safetensors", fixture(fixtures[k]));
        dapt_safetensors ex, orig;
        CU_ASSERT_EQUAL_FATAL(dapt_st_open(x, &ex), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(dapt_st_open(y, &orig), DAPT_OK);
        int all = 1;
        size_t skipped = 0;
        for (size_t i = 0; i < orig.count; i++) {
            const dapt_st_tensor *o = &orig.tensors[i], *e = dapt_st_find(&ex, o->name);
            if (!e) {
                /* Only the tied decoder and the integer buffers are dropped. */
                all &= strstr(o->name, "decoder") || strstr(o->name, "_ids");
                skipped++;
                continue;
            }
            float *u = malloc(o->numel * sizeof *u), *v = malloc(e->numel * sizeof *v);
            all &= e->dtype == DAPT_ST_F32 && o->numel == e->numel && dapt_st_to_f32(&orig, o, u) == DAPT_OK &&
                   dapt_st_to_f32(&ex, e, v) == DAPT_OK && !memcmp(u, v, o->numel * sizeof *u);
            free(u);
            free(v);
        }
        CU_ASSERT_TRUE(all);
        CU_ASSERT_EQUAL(ex.count + skipped, orig.count);
        dapt_st_close(&ex);
        dapt_st_close(&orig);
        dapt_fs_remove_tree(dir);
        unlink(a);
        unlink(b);
    }
    /* A checkpoint that stores the tied decoder gives the same model file as
     * one that omits it (same weights, seed 11). */
    const char *a = scratch("tied.h5"), *b = scratch("stored.h5");
    CU_ASSERT_EQUAL(import_to(fixture("bert_mlm"), a), DAPT_OK);
    CU_ASSERT_EQUAL(import_to(fixture("bert_mlm_decoder"), b), DAPT_OK);
    CU_ASSERT_TRUE(same_file(a, b));
    unlink(a);
    unlink(b);
}

/* ---- refusals ---------------------------------------------------------- */

/* Copies a fixture directory to scratch; returns its path. */
static const char *copy_fixture(const char *name)
{
    const char *dir = scratch("bad");
    dapt_fs_remove_tree(dir);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", fixture(name), dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    return dir;
}

static void expect_import_fails(const char *dir, dapt_status code, const char *fragment)
{
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    dapt_status s = dapt_hf_import(dir, &mc, &table, &params, &meta);
    CU_ASSERT_EQUAL(s, code);
    if (s == DAPT_OK) {
        free(params);
        dapt_param_table_free(&table);
        dapt_model_meta_free(&meta);
    }
    if (!strstr(dapt_error_message(), fragment)) {
        fprintf(stderr, "\n  expected '%s' in: %s\n", fragment, dapt_error_message());
        CU_FAIL("refusal does not name the cause");
    }
    dapt_fs_remove_tree(dir);
}

/* Rewrites dir/model.safetensors from the fixture's tensors after edit(). */
typedef void (*edit_fn)(dapt_st_entry *e, size_t *n, void *scratch_buf);

static void rewrite(const char *dir, edit_fn edit)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    dapt_safetensors st;
    CU_ASSERT_EQUAL_FATAL(dapt_st_open(path, &st), DAPT_OK);
    dapt_st_entry *e = calloc(st.count + 1, sizeof *e);
    for (size_t i = 0; i < st.count; i++) {
        e[i].name = st.tensors[i].name;
        e[i].dtype = st.tensors[i].dtype;
        e[i].ndim = st.tensors[i].ndim;
        memcpy(e[i].shape, st.tensors[i].shape, sizeof e[i].shape);
        e[i].data = dapt_st_bytes(&st, &st.tensors[i]);
    }
    size_t n = st.count;
    static unsigned char buf[1 << 16];
    edit(e, &n, buf);
    const char *tmp = scratch("edited.safetensors");
    CU_ASSERT_EQUAL(dapt_st_write(tmp, e, n, NULL, 0, 1), DAPT_OK);
    dapt_st_close(&st);
    free(e);
    CU_ASSERT_EQUAL(rename(tmp, path), 0);
}

static size_t find_entry(dapt_st_entry *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(e[i].name, name)) return i;
    CU_FAIL("fixture tensor not found");
    return 0;
}

static void drop_query_bias(dapt_st_entry *e, size_t *n, void *buf)
{
    (void)buf;
    size_t i = find_entry(e, *n, "bert.encoder.layer.1.attention.self.query.bias");
    e[i] = e[--*n];
}

static void add_extra(dapt_st_entry *e, size_t *n, void *buf)
{
    memset(buf, 0, 32);
    e[*n] = (dapt_st_entry){"bert.encoder.layer.2.attention.self.query.bias", DAPT_ST_F32, 1, {8}, buf};
    ++*n;
}

static void bad_shape(dapt_st_entry *e, size_t *n, void *buf)
{
    (void)buf;
    size_t i = find_entry(e, *n, "bert.embeddings.LayerNorm.weight");
    e[i].ndim = 2;
    e[i].shape[0] = 2;
    e[i].shape[1] = 4;
}

static void int_weights(dapt_st_entry *e, size_t *n, void *buf)
{
    size_t i = find_entry(e, *n, "bert.pooler.dense.bias");
    memset(buf, 0, 64);
    e[i].dtype = DAPT_ST_I64;
    e[i].data = buf;
}

static void untie_decoder(dapt_st_entry *e, size_t *n, void *buf)
{
    size_t i = find_entry(e, *n, "cls.predictions.decoder.weight");
    size_t bytes = (size_t)(e[i].shape[0] * e[i].shape[1]) * 4;
    memcpy(buf, e[i].data, bytes);
    ((float *)buf)[5] += 1.0f;
    e[i].data = buf;
}

static void add_nsp(dapt_st_entry *e, size_t *n, void *buf)
{
    memset(buf, 0, 64);
    e[*n] = (dapt_st_entry){"cls.seq_relationship.bias", DAPT_ST_F32, 1, {2}, buf};
    ++*n;
}

static void edit_config(const char *dir, const char *from, const char *to)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unsigned char *text = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(dapt_fs_read_file(path, 1 << 20, &text, &len), DAPT_OK);
    char *at = strstr((char *)text, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    char *out = malloc(len + strlen(to) + 1);
    size_t head = (size_t)(at - (char *)text);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    CU_ASSERT_EQUAL(dapt_fs_write_atomic(path, out, strlen(out), 1), DAPT_OK);
    free(out);
    free(text);
}

/* Byte surgery on model.safetensors: truncate, or patch bytes at offset. */
static void patch_file(const char *dir, long truncate_by, long offset, const void *bytes, size_t nbytes)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unsigned char *data = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(dapt_fs_read_file(path, 1 << 24, &data, &len), DAPT_OK);
    if (offset >= 0) memcpy(data + offset, bytes, nbytes);
    CU_ASSERT_EQUAL(dapt_fs_write_atomic(path, data, len - (size_t)truncate_by, 1), DAPT_OK);
    free(data);
}

static void test_refusals(void)
{
    const char *d;
    d = copy_fixture("bert_mlm");
    patch_file(d, 1, -1, NULL, 0);
    expect_import_fails(d, DAPT_ERR_FORMAT, "run past the end of the data");
    d = copy_fixture("bert_mlm");
    const unsigned char huge[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    patch_file(d, 0, 0, huge, 8);
    expect_import_fails(d, DAPT_ERR_FORMAT, "header length 65535 runs past the end of the file");
    d = copy_fixture("bert_mlm");
    patch_file(d, 0, 9, "!", 1); /* the first key's opening quote */
    expect_import_fails(d, DAPT_ERR_FORMAT, "header is not valid JSON");
    d = copy_fixture("bert_mlm");
    /* Header offsets: "data_offsets":[0,32] of the first tensor -> [0,36]
     * would change the length; instead turn the first F32 into F31. */
    {
        char path[1100];
        snprintf(path, sizeof path, "%s/model.safetensors", d);
        unsigned char *data = NULL;
        size_t len = 0;
        dapt_fs_read_file(path, 1 << 24, &data, &len);
        char *at = strstr((char *)data + 8, "\"F32\"");
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        patch_file(d, 0, (long)(at - (char *)data) + 3, "1", 1);
        free(data);
    }
    expect_import_fails(d, DAPT_ERR_FORMAT, "unknown dtype 'F31'");
    d = copy_fixture("bert_mlm");
    {
        /* Overlap: the second tensor's begin moved back by 4 bytes (same text length). */
        char path[1100];
        snprintf(path, sizeof path, "%s/model.safetensors", d);
        unsigned char *data = NULL;
        size_t len = 0;
        dapt_fs_read_file(path, 1 << 24, &data, &len);
        char *at = strstr((char *)data + 8, "\"data_offsets\":[32,64]");
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        patch_file(d, 0, (long)(at - (char *)data) + 16, "28,60", 5);
        free(data);
    }
    expect_import_fails(d, DAPT_ERR_FORMAT, "overlap tensor");
    d = copy_fixture("bert_mlm");
    edit_config(d, "BertForMaskedLM", "BertForTokenClassification");
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "unknown architecture 'BertForTokenClassification'");
    d = copy_fixture("bert_mlm");
    edit_config(d, "\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"");
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "model_type 'gpt2' is not supported");
    d = copy_fixture("bert_mlm");
    edit_config(d, "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"relu\"");
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "hidden_act 'relu' is not supported");
    d = copy_fixture("bert_mlm");
    edit_config(d, "\"vocab_size\": 39", "\"vocab_size\": 40");
    expect_import_fails(d, DAPT_ERR_FORMAT,
                        "tensor 'bert.embeddings.word_embeddings.weight' has shape [39, 8], config.json implies [40, 8]");
    d = copy_fixture("bert_mlm");
    edit_config(d, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 10000000");
    expect_import_fails(d, DAPT_ERR_FORMAT, "num_hidden_layers 10000000, hidden_size 8, intermediate_size 12 and "
                                            "vocab_size 39 imply at least 4.48e+09 parameters (17.9 GB)");
    d = copy_fixture("bert_mlm");
    edit_config(d, "{", "{ \"broken\": ");
    expect_import_fails(d, DAPT_ERR_FORMAT, "config.json: not a JSON object");
    d = copy_fixture("bert_cls");
    rewrite(d, drop_query_bias);
    expect_import_fails(d, DAPT_ERR_FORMAT,
                        "missing tensor 'bert.encoder.layer.1.attention.self.query.bias' (dapt's layer.1.attn.q.bias)");
    d = copy_fixture("bert_cls");
    rewrite(d, add_extra);
    expect_import_fails(d, DAPT_ERR_FORMAT, "unexpected tensor 'bert.encoder.layer.2.attention.self.query.bias'");
    d = copy_fixture("bert_cls");
    rewrite(d, bad_shape);
    expect_import_fails(d, DAPT_ERR_FORMAT, "tensor 'bert.embeddings.LayerNorm.weight' has shape [2, 4]");
    d = copy_fixture("bert_cls");
    rewrite(d, int_weights);
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "tensor 'bert.pooler.dense.bias': dtype I64 is not supported");
    d = copy_fixture("bert_mlm_decoder");
    rewrite(d, untie_decoder);
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "'cls.predictions.decoder.weight' differs from dapt's embeddings.word");
    d = copy_fixture("bert_mlm");
    char path[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", d);
    unlink(path);
    expect_import_fails(d, DAPT_ERR_IO, "no model.safetensors");
    /* Tolerated: the next-sentence head of a pre-training checkpoint. */
    d = copy_fixture("bert_mlm");
    rewrite(d, add_nsp);
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    CU_ASSERT_EQUAL(dapt_hf_import(d, &mc, &table, &params, &meta), DAPT_OK);
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    dapt_fs_remove_tree(d);
}

/* The JSON writer matches Python's json.dumps(indent=2, sort_keys=True). */
/* ---- regression heads (num_labels = 1) ----------------------------------- */

/* bert_cls with a one-output classifier (its first row and bias). */
static void one_output(dapt_st_entry *e, size_t *n, void *buf)
{
    (void)buf;
    e[find_entry(e, *n, "classifier.weight")].shape[0] = 1;
    e[find_entry(e, *n, "classifier.bias")].shape[0] = 1;
}

/* A copy of bert_cls made a regression model as Hugging Face saves one
 * (problem_type as given, NULL = absent; id2label {"0": "LABEL_0"}). */
static const char *regression_fixture(const char *problem)
{
    const char *d = copy_fixture("bert_cls");
    rewrite(d, one_output);
    edit_config(d, "\"0\": \"negative\",\n    \"1\": \"neutral\",\n    \"2\": \"positive\"", "\"0\": \"LABEL_0\"");
    edit_config(d, "\"negative\": 0,\n    \"neutral\": 1,\n    \"positive\": 2", "\"LABEL_0\": 0");
    if (problem) {
        char to[128];
        snprintf(to, sizeof to, "\"problem_type\": \"%s\",\n  \"torch_dtype\"", problem);
        edit_config(d, "\"torch_dtype\"", to);
    }
    return d;
}

static int config_has(const char *dir, const char *text)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unsigned char *t = NULL;
    size_t len = 0;
    int has = dapt_fs_read_file(path, 1 << 20, &t, &len) == DAPT_OK && strstr((char *)t, text) != NULL;
    free(t);
    return has;
}

/* A Hugging Face classifier with one label (problem_type "regression" or
 * unset) imports as dapt's regression head; export writes problem_type
 * "regression", num_labels 1 and id2label {"0": "LABEL_0"}, and imports
 * back to the same model file. */
static void test_regression_roundtrip(void)
{
    const char *names[2] = {"regression", NULL};
    for (int k = 0; k < 2; k++) {
        const char *src = regression_fixture(names[k]);
        dapt_model_config mc;
        dapt_param_table table;
        dapt_model_meta meta;
        float *params = NULL;
        CU_ASSERT_EQUAL_FATAL(dapt_hf_import(src, &mc, &table, &params, &meta), DAPT_OK);
        CU_ASSERT_EQUAL(mc.num_labels, 1);
        CU_ASSERT_STRING_EQUAL(meta.labels[0], "LABEL_0");
        const dapt_tensor *w = dapt_param_find(&table, "cls.weight");
        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        CU_ASSERT_EQUAL(w->shape[0], 1);
        free(params);
        dapt_param_table_free(&table);
        dapt_model_meta_free(&meta);
        const char *a = scratch("ra.h5"), *b = scratch("rb.h5"), *dir = scratch("rexported");
        CU_ASSERT_EQUAL_FATAL(import_to(src, a), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(export_from(a, dir), DAPT_OK);
        CU_ASSERT(config_has(dir, "\"problem_type\": \"regression\""));
        CU_ASSERT(config_has(dir, "\"num_labels\": 1"));
        CU_ASSERT(config_has(dir, "\"0\": \"LABEL_0\""));
        CU_ASSERT(config_has(dir, "BertForSequenceClassification"));
        char x[1200], y[1200];
        snprintf(x, sizeof x, "%s/model.safetensors", dir);
        snprintf(y, sizeof y, "%s/model.safetensors", src);
        /* Every tensor exported equals the source's, bit for bit. */
        dapt_safetensors ex, orig;
        CU_ASSERT_EQUAL_FATAL(dapt_st_open(x, &ex), DAPT_OK);
        CU_ASSERT_EQUAL_FATAL(dapt_st_open(y, &orig), DAPT_OK);
        CU_ASSERT_EQUAL(ex.count, orig.count);
        for (size_t i = 0; i < orig.count; i++) {
            const dapt_st_tensor *o = &orig.tensors[i], *e = dapt_st_find(&ex, o->name);
            CU_ASSERT_PTR_NOT_NULL_FATAL(e);
            CU_ASSERT(e->numel == o->numel && e->dtype == o->dtype &&
                      !memcmp(dapt_st_bytes(&ex, e), dapt_st_bytes(&orig, o), o->numel * sizeof(float)));
        }
        dapt_st_close(&ex);
        dapt_st_close(&orig);
        CU_ASSERT_EQUAL_FATAL(import_to(dir, b), DAPT_OK);
        if (names[k]) CU_ASSERT_TRUE(same_file(a, b));
        dapt_fs_remove_tree(dir);
        dapt_fs_remove_tree(src);
        unlink(a);
        unlink(b);
    }
    /* One label declared a single-label classifier is meaningless, and
     * regression with three outputs is not a head dapt has: refused. */
    expect_import_fails(regression_fixture("single_label_classification"), DAPT_ERR_FORMAT,
                        "problem_type 'single_label_classification' with one label is meaningless");
    const char *d = copy_fixture("bert_cls");
    edit_config(d, "\"torch_dtype\"", "\"problem_type\": \"regression\",\n  \"torch_dtype\"");
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "problem_type 'regression' with 3 labels");
    d = copy_fixture("bert_cls");
    edit_config(d, "\"torch_dtype\"", "\"problem_type\": \"multi_label_classification\",\n  \"torch_dtype\"");
    expect_import_fails(d, DAPT_ERR_UNSUPPORTED, "problem_type 'multi_label_classification' is not supported");
}

static void test_json_pretty(void)
{
    json_error_t err;
    json_t *v = json_loads("{\"b\": [1, 2.5, \"x\\u00e9\\t\\ud83d\\ude00\"], \"a\": {}, \"c\": 1e-12, \"d\": 1.0, \"e\": [], "
                           "\"f\": null, \"g\": {\"z\": true, \"y\": 0.1}}", 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    char *out = NULL;
    CU_ASSERT_EQUAL(dapt_hf_json_pretty(v, &out), DAPT_OK);
    CU_ASSERT_STRING_EQUAL(out, "{\n  \"a\": {},\n  \"b\": [\n    1,\n    2.5,\n    \"x\\u00e9\\t\\ud83d\\ude00\"\n  ],\n"
                                "  \"c\": 1e-12,\n  \"d\": 1.0,\n  \"e\": [],\n  \"f\": null,\n  \"g\": {\n"
                                "    \"y\": 0.1,\n    \"z\": true\n  }\n}\n");
    free(out);
    json_decref(v);
}

/* The pooler goes into an export only where the Hugging Face class builds
 * one (BertModel, RobertaModel, BertForSequenceClassification), or when
 * asked; never when the model has none. */
static void test_exports_pooler(void)
{
    const struct {
        dapt_arch arch;
        int mlm, has_pooler, keep;
        int64_t labels;
        int want;
    } cases[] = {
        {DAPT_ARCH_BERT, 1, 1, 0, 0, 0},    {DAPT_ARCH_ROBERTA, 1, 1, 0, 0, 0}, /* *ForMaskedLM */
        {DAPT_ARCH_BERT, 1, 1, 1, 0, 1},    {DAPT_ARCH_ROBERTA, 1, 1, 1, 0, 1}, /* --keep-pooler */
        {DAPT_ARCH_BERT, 0, 1, 0, 3, 1},    {DAPT_ARCH_BERT, 0, 1, 0, 1, 1},    /* BERT classifier, regression */
        {DAPT_ARCH_ROBERTA, 0, 1, 0, 3, 0}, {DAPT_ARCH_ROBERTA, 0, 1, 1, 3, 1}, /* RoBERTa classifier */
        {DAPT_ARCH_BERT, 0, 1, 0, 0, 1},    {DAPT_ARCH_ROBERTA, 0, 1, 0, 0, 1}, /* bare models */
        {DAPT_ARCH_BERT, 1, 0, 1, 0, 0},    {DAPT_ARCH_BERT, 0, 0, 0, 3, 0},    /* no pooler to write */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dapt_model_config mc = dapt_test_model_config(cases[i].arch, 40, 8, 1, 2, 16, 16);
        mc.has_mlm_head = cases[i].mlm;
        mc.has_pooler = cases[i].has_pooler;
        mc.num_labels = cases[i].labels;
        if (dapt_hf_exports_pooler(&mc, cases[i].keep) != cases[i].want) fprintf(stderr, "\ncase %zu\n", i);
        CU_ASSERT_EQUAL(dapt_hf_exports_pooler(&mc, cases[i].keep), cases[i].want);
    }
}

DAPT_TEST_MAIN("hf", {"import maps every tensor of the six architectures (and regression heads)", test_import_mapping},
               {"import -> export -> import is bit-identical", test_roundtrip},
               {"malformed checkpoints refused with the cause", test_refusals},
               {"regression head (num_labels = 1): import, export, refusals", test_regression_roundtrip},
               {"config.json written as Python writes it", test_json_pretty},
               {"the pooler is exported only where the class reads it", test_exports_pooler})
