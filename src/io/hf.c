/* Hugging Face import and export (see include/dapt/hf.h). */
#include "dapt/hf.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/safetensors.h"
#include "dapt/utf8.h"

typedef enum { KIND_BASE = 0, KIND_MLM, KIND_CLS } hf_kind;

/* Files a Hugging Face tokenizer may consist of; copied byte for byte. */
static const char *const tokenizer_files[] = {"tokenizer.json",          "vocab.txt",
                                              "vocab.json",              "merges.txt",
                                              "tokenizer_config.json",   "special_tokens_map.json",
                                              "added_tokens.json",       NULL};

/* config.json fields import interprets (and export writes itself); every
 * other field is kept verbatim in hf_extra_config. */
static const char *const interpreted_fields[] = {
    "architectures",        "model_type",        "vocab_size",
    "hidden_size",          "num_hidden_layers", "num_attention_heads",
    "intermediate_size",    "max_position_embeddings", "type_vocab_size",
    "layer_norm_eps",       "hidden_act",        "hidden_dropout_prob",
    "attention_probs_dropout_prob", "initializer_range", "pad_token_id",
    "num_labels",           "id2label",          "label2id",
    "torch_dtype",          "position_embedding_type", "problem_type", NULL};

static const char *arch_prefix(dapt_arch a) { return a == DAPT_ARCH_ROBERTA ? "roberta." : "bert."; }

dapt_status dapt_hf_class_name(const dapt_model_config *mc, char *out, size_t len)
{
    const char *who = mc->arch == DAPT_ARCH_ROBERTA ? "Roberta" : "Bert";
    if (mc->has_mlm_head && mc->num_labels > 0)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "a model with both an MLM head and a classifier has no Hugging Face "
                          "class");
    snprintf(out, len, "%s%s", who,
             mc->has_mlm_head ? "ForMaskedLM" : mc->num_labels > 0 ? "ForSequenceClassification" : "Model");
    return DAPT_OK;
}

/* ---- names ------------------------------------------------------------- */

typedef struct name_pair {
    const char *dapt, *bert, *roberta;
} name_pair;

/* Within a layer ("layer.L." stripped). */
static const name_pair layer_names[] = {
    {"attn.q.", "attention.self.query.", NULL},
    {"attn.k.", "attention.self.key.", NULL},
    {"attn.v.", "attention.self.value.", NULL},
    {"attn.out.", "attention.output.dense.", NULL},
    {"attn.ln.", "attention.output.LayerNorm.", NULL},
    {"ffn.in.", "intermediate.dense.", NULL},
    {"ffn.out.", "output.dense.", NULL},
    {"ffn.ln.", "output.LayerNorm.", NULL},
};

/* Outside the layers.  An entry ending in '.' maps a prefix (weight/bias
 * follow); roberta NULL = same as BERT; the encoder-side names get the
 * model prefix, the heads do not (flag 'p'). */
static const struct {
    const char *dapt, *bert, *roberta;
    int prefixed;
} top_names[] = {
    {"embeddings.word", "embeddings.word_embeddings.weight", NULL, 1},
    {"embeddings.position", "embeddings.position_embeddings.weight", NULL, 1},
    {"embeddings.token_type", "embeddings.token_type_embeddings.weight", NULL, 1},
    {"embeddings.ln.", "embeddings.LayerNorm.", NULL, 1},
    {"pooler.", "pooler.dense.", NULL, 1},
    {"mlm.dense.", "cls.predictions.transform.dense.", "lm_head.dense.", 0},
    {"mlm.ln.", "cls.predictions.transform.LayerNorm.", "lm_head.layer_norm.", 0},
    {"mlm.bias", "cls.predictions.bias", "lm_head.bias", 0},
    {"cls.dense.", NULL, "classifier.dense.", 0},
    {"cls.out.", NULL, "classifier.out_proj.", 0},
    {"cls.", "classifier.", NULL, 0},
};

static int starts(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

dapt_status dapt_hf_tensor_name(dapt_arch arch, const char *prefix, const char *name, char *out, size_t len)
{
    int roberta = arch == DAPT_ARCH_ROBERTA;
    if (starts(name, "layer.")) {
        char *end = NULL;
        long l = strtol(name + 6, &end, 10);
        if (end && *end == '.' && l >= 0)
            for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
                if (starts(end + 1, layer_names[i].dapt)) {
                    snprintf(out, len, "%sencoder.layer.%ld.%s%s", prefix, l, layer_names[i].bert,
                             end + 1 + strlen(layer_names[i].dapt));
                    return DAPT_OK;
                }
    }
    for (size_t i = 0; i < sizeof top_names / sizeof top_names[0]; i++) {
        const char *d = top_names[i].dapt;
        size_t n = strlen(d);
        int is_prefix = d[n - 1] == '.';
        if (is_prefix ? !starts(name, d) : strcmp(name, d) != 0) continue;
        const char *hf = roberta && top_names[i].roberta ? top_names[i].roberta : top_names[i].bert;
        if (!hf || (!roberta && !top_names[i].bert)) continue; /* RoBERTa-only names on BERT */
        if (roberta && !top_names[i].roberta && !strcmp(d, "cls.")) continue; /* RoBERTa has cls.dense/out */
        snprintf(out, len, "%s%s%s", top_names[i].prefixed ? prefix : "", hf, is_prefix ? name + n : "");
        return DAPT_OK;
    }
    return DAPT_ERROR(DAPT_ERR_INTERNAL, "no Hugging Face name for dapt tensor '%s'", name);
}

/* ---- config.json ------------------------------------------------------- */

typedef struct import_ctx {
    const char *dir;
    char config_path[4200], st_path[4200];
    json_t *cfg;
    hf_kind kind;
    char prefix[16];
} import_ctx;

static dapt_status cfg_int(import_ctx *c, const char *key, int64_t def, int64_t *out)
{
    json_t *v = json_object_get(c->cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DAPT_OK;
    }
    if (!json_is_integer(v))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s is not an integer", c->config_path, key);
    *out = (int64_t)json_integer_value(v);
    return DAPT_OK;
}

static dapt_status cfg_real(import_ctx *c, const char *key, double def, double *out)
{
    json_t *v = json_object_get(c->cfg, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return DAPT_OK;
    }
    if (!json_is_number(v)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s is not a number", c->config_path, key);
    *out = json_number_value(v);
    return DAPT_OK;
}

static const char *cfg_str(import_ctx *c, const char *key)
{
    json_t *v = json_object_get(c->cfg, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static dapt_status read_labels(import_ctx *c, dapt_model_config *mc, dapt_model_meta *meta)
{
    json_t *id2label = json_object_get(c->cfg, "id2label");
    int64_t n = 2; /* Hugging Face's default num_labels */
    if (json_is_object(id2label)) n = (int64_t)json_object_size(id2label);
    else DAPT_CHECK(cfg_int(c, "num_labels", 2, &n));
    if (n < 1 || n > 1000000)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %lld class labels", c->config_path, (long long)n);
    mc->num_labels = n;
    DAPT_CHECK(dapt_calloc((void **)&meta->labels, (size_t)n + 1, sizeof *meta->labels, "class labels"));
    for (int64_t i = 0; i < n; i++) {
        char key[32], fallback[32];
        snprintf(key, sizeof key, "%lld", (long long)i);
        snprintf(fallback, sizeof fallback, "LABEL_%lld", (long long)i);
        json_t *v = json_is_object(id2label) ? json_object_get(id2label, key) : NULL;
        if (json_is_object(id2label) && !json_is_string(v))
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: id2label has no string for class %lld (keys must be 0..%lld)",
                              c->config_path, (long long)i, (long long)n - 1);
        meta->labels[i] = strdup(v ? json_string_value(v) : fallback);
        if (!meta->labels[i]) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot copy class labels");
    }
    return DAPT_OK;
}

/* As Hugging Face's sequence classification decides its loss: one label
 * (problem_type "regression" or unset) is a regression head, MSE on one
 * output -- the only head dapt has with one output.  "regression" with more
 * labels (multi-output regression) is not one dapt has; single-label
 * classification of one class is meaningless (softmax of one logit is 1). */
static dapt_status check_problem_type(import_ctx *c, const char *problem, int64_t n)
{
    if (problem && !strcmp(problem, "regression") && n != 1)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: problem_type 'regression' with %lld labels: dapt's regression head has "
                          "one output", c->config_path, (long long)n);
    if (problem && !strcmp(problem, "single_label_classification") && n == 1)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: problem_type 'single_label_classification' with one label is meaningless "
                          "(the softmax of one logit is always 1); a one-label head is a regression head "
                          "(problem_type 'regression')", c->config_path);
    return DAPT_OK;
}

static dapt_status parse_config(import_ctx *c, dapt_model_config *mc, dapt_model_meta *meta)
{
    const char *p = c->config_path;
    const char *mt = cfg_str(c, "model_type");
    if (!mt) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no model_type", p);
    if (!strcmp(mt, "bert")) mc->arch = DAPT_ARCH_BERT;
    else if (!strcmp(mt, "roberta")) mc->arch = DAPT_ARCH_ROBERTA;
    else
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported (dapt handles bert and roberta)",
                          p, mt);
    const char *who = mc->arch == DAPT_ARCH_ROBERTA ? "Roberta" : "Bert";
    json_t *archs = json_object_get(c->cfg, "architectures");
    const char *cls = NULL;
    if (json_is_array(archs) && json_array_size(archs) > 0) {
        if (json_array_size(archs) > 1)
            return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: more than one architecture listed", p);
        cls = json_string_value(json_array_get(archs, 0));
        if (!cls) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: architectures[0] is not a string", p);
    } else if (archs && !json_is_null(archs)) {
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: architectures is not a list", p);
    }
    char want[3][64];
    snprintf(want[0], 64, "%sModel", who);
    snprintf(want[1], 64, "%sForMaskedLM", who);
    snprintf(want[2], 64, "%sForSequenceClassification", who);
    if (!cls) c->kind = KIND_BASE;
    else if (!strcmp(cls, want[0])) c->kind = KIND_BASE;
    else if (!strcmp(cls, want[1])) c->kind = KIND_MLM;
    else if (!strcmp(cls, want[2])) c->kind = KIND_CLS;
    else
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: unknown architecture '%s' for model_type %s (dapt handles %s, %s, %s)",
                          p, cls, mt, want[1], want[2], want[0]);
    snprintf(meta->hf_architecture, sizeof meta->hf_architecture, "%s", cls ? cls : want[0]);

    const char *act = cfg_str(c, "hidden_act");
    if (act && strcmp(act, "gelu") != 0)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (dapt implements the exact erf "
                          "GELU, hidden_act \"gelu\")", p, act);
    if (json_object_get(c->cfg, "hidden_act") && !act)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: hidden_act is not a string", p);
    const char *pe = cfg_str(c, "position_embedding_type");
    if (pe && strcmp(pe, "absolute") != 0)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: position_embedding_type '%s' is not supported (absolute only)", p, pe);
    if (json_is_true(json_object_get(c->cfg, "is_decoder")) ||
        json_is_true(json_object_get(c->cfg, "add_cross_attention")))
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: decoder / cross-attention models are not supported", p);
    const char *problem = cfg_str(c, "problem_type");
    if (c->kind == KIND_CLS && problem && strcmp(problem, "single_label_classification") != 0 &&
        strcmp(problem, "regression") != 0)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: problem_type '%s' is not supported (single-label classification "
                          "or regression only)", p, problem);

    /* Defaults are Hugging Face's BertConfig / RobertaConfig defaults. */
    int roberta = mc->arch == DAPT_ARCH_ROBERTA;
    DAPT_CHECK(cfg_int(c, "vocab_size", roberta ? 50265 : 30522, &mc->vocab_size));
    DAPT_CHECK(cfg_int(c, "hidden_size", 768, &mc->hidden));
    DAPT_CHECK(cfg_int(c, "num_hidden_layers", 12, &mc->layers));
    DAPT_CHECK(cfg_int(c, "num_attention_heads", 12, &mc->heads));
    DAPT_CHECK(cfg_int(c, "intermediate_size", 3072, &mc->intermediate));
    DAPT_CHECK(cfg_int(c, "max_position_embeddings", 512, &mc->max_position));
    DAPT_CHECK(cfg_int(c, "type_vocab_size", 2, &mc->type_vocab_size));
    DAPT_CHECK(cfg_int(c, "pad_token_id", roberta ? 1 : 0, &mc->pad_token_id));
    DAPT_CHECK(cfg_real(c, "layer_norm_eps", 1e-12, &mc->layer_norm_eps));
    DAPT_CHECK(cfg_real(c, "hidden_dropout_prob", 0.1, &mc->hidden_dropout));
    DAPT_CHECK(cfg_real(c, "attention_probs_dropout_prob", 0.1, &mc->attention_dropout));
    DAPT_CHECK(cfg_real(c, "initializer_range", 0.02, &mc->initializer_range));
    mc->has_mlm_head = c->kind == KIND_MLM;
    mc->num_labels = 0;
    if (c->kind == KIND_CLS) {
        DAPT_CHECK(read_labels(c, mc, meta));
        DAPT_CHECK(check_problem_type(c, problem, mc->num_labels));
    }
    if (!(mc->hidden_dropout >= 0 && mc->hidden_dropout < 1) || !(mc->attention_dropout >= 0 && mc->attention_dropout < 1))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: dropout probabilities must be in [0, 1)", p);

    /* Keep the fields dapt does not interpret, for export. */
    json_t *extra = json_object();
    const char *key;
    json_t *value;
    json_object_foreach(c->cfg, key, value)
    {
        int known = 0;
        for (const char *const *k = interpreted_fields; *k && !known; k++) known = !strcmp(*k, key);
        if (!known) json_object_set(extra, key, value);
    }
    if (json_object_size(extra) > 0) {
        meta->hf_extra_config = json_dumps(extra, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
        if (!meta->hf_extra_config) {
            json_decref(extra);
            return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot keep the extra configuration fields");
        }
    }
    json_decref(extra);
    return DAPT_OK;
}

/* ---- tensors ----------------------------------------------------------- */

/* Finds an HF tensor, accepting the old LayerNorm gamma/beta spelling. */
static const dapt_st_tensor *find_hf(const dapt_safetensors *st, const char *name)
{
    const dapt_st_tensor *t = dapt_st_find(st, name);
    if (t) return t;
    char alt[256];
    size_t n = strlen(name);
    if (n > 17 && !strcmp(name + n - 17, "LayerNorm.weight")) {
        snprintf(alt, sizeof alt, "%.*sgamma", (int)(n - 6), name);
        return dapt_st_find(st, alt);
    }
    if (n > 15 && !strcmp(name + n - 15, "LayerNorm.bias")) {
        snprintf(alt, sizeof alt, "%.*sbeta", (int)(n - 4), name);
        return dapt_st_find(st, alt);
    }
    return NULL;
}

static int is_float_dtype(dapt_st_dtype d)
{
    return d == DAPT_ST_F32 || d == DAPT_ST_F16 || d == DAPT_ST_BF16 || d == DAPT_ST_F64;
}

static int is_int_dtype(dapt_st_dtype d)
{
    return d == DAPT_ST_I64 || d == DAPT_ST_I32 || d == DAPT_ST_I16 || d == DAPT_ST_I8 || d == DAPT_ST_U8 ||
           d == DAPT_ST_U16 || d == DAPT_ST_U32 || d == DAPT_ST_U64;
}

static dapt_status load_float(const dapt_safetensors *st, const dapt_st_tensor *t, int ndim, const int64_t *shape,
                              const char *dapt_name, float *out)
{
    if (!is_float_dtype(t->dtype))
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported for weights (F32, F16, "
                          "BF16, F64)", st->path, t->name, dapt_st_dtype_name(t->dtype));
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char got[128] = "", want[64];
        for (int d = 0; d < t->ndim; d++) {
            size_t l = strlen(got);
            snprintf(got + l, sizeof got - l, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        }
        if (ndim == 2) snprintf(want, sizeof want, "%lld, %lld", (long long)shape[0], (long long)shape[1]);
        else snprintf(want, sizeof want, "%lld", (long long)shape[0]);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s' has shape [%s], config.json implies [%s] (dapt's %s)",
                          st->path, t->name, got, want, dapt_name);
    }
    return dapt_st_to_f32(st, t, out);
}

/* Before anything is allocated from config.json's dimensions: a model with
 * that shape needs at least its layers' four attention and two FFN matrices
 * and its word embeddings, which the file must hold.  A 300-byte config.json
 * must not make dapt allocate gigabytes before a tensor is found missing. */
static dapt_status check_size(const import_ctx *c, const dapt_safetensors *sf, const dapt_model_config *mc)
{
    double have = 0;
    for (size_t i = 0; i < sf->count; i++) have += (double)sf->tensors[i].numel;
    const double h = (double)mc->hidden, need = (double)mc->layers * (4 * h * h + 2 * h * (double)mc->intermediate) +
                                                (double)mc->vocab_size * h;
    if (need > have)
        return DAPT_ERROR(DAPT_ERR_FORMAT,
                          "%s: num_hidden_layers %lld, hidden_size %lld, intermediate_size %lld and vocab_size %lld "
                          "imply at least %.4g parameters (%.3g GB), but %s holds %.4g values",
                          c->config_path, (long long)mc->layers, (long long)mc->hidden, (long long)mc->intermediate,
                          (long long)mc->vocab_size, need, need * 4 / 1e9, sf->path, have);
    return DAPT_OK;
}

static dapt_status load_tensors(import_ctx *c, const dapt_safetensors *sf, dapt_model_config *mc,
                                dapt_param_table *table, float **params)
{
    /* The model prefix: fixed for models with heads, detected for bare ones. */
    char probe[128];
    snprintf(c->prefix, sizeof c->prefix, "%s", arch_prefix(mc->arch));
    snprintf(probe, sizeof probe, "%sembeddings.word_embeddings.weight", c->prefix);
    if (c->kind == KIND_BASE && !dapt_st_find(sf, probe)) c->prefix[0] = '\0';
    char pw[128], pb[128];
    snprintf(pw, sizeof pw, "%spooler.dense.weight", c->prefix);
    snprintf(pb, sizeof pb, "%spooler.dense.bias", c->prefix);
    /* BERT's classifier reads the pooler; elsewhere it is kept when stored. */
    mc->has_pooler = (c->kind == KIND_CLS && mc->arch == DAPT_ARCH_BERT) || dapt_st_find(sf, pw) || dapt_st_find(sf, pb);
    dapt_status s = dapt_model_config_validate(mc);
    if (s != DAPT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dapt_error_message());
        return DAPT_ERROR(s, "%s: %s", c->config_path, msg);
    }
    DAPT_CHECK(check_size(c, sf, mc));
    DAPT_CHECK(dapt_param_table_build(mc, table));
    dapt_status st = DAPT_OK;
    unsigned char *used = NULL;
    float *tmp = NULL;
    DAPT_TRY(dapt_calloc((void **)params, table->total, sizeof **params, "model parameters"));
    DAPT_TRY(dapt_calloc((void **)&used, sf->count ? sf->count : 1, 1, "tensor bookkeeping"));
    for (size_t i = 0; i < table->count; i++) {
        const dapt_tensor *t = &table->tensors[i];
        char hf[256];
        DAPT_TRY(dapt_hf_tensor_name(mc->arch, c->prefix, t->name, hf, sizeof hf));
        const dapt_st_tensor *x = find_hf(sf, hf);
        if (!x)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: missing tensor '%s' (dapt's %s) for %s", sf->path, hf, t->name,
                       c->kind == KIND_MLM ? "a masked-LM model" : c->kind == KIND_CLS ? "a classifier" : "the model");
        DAPT_TRY(load_float(sf, x, t->ndim, t->shape, t->name, *params + t->offset));
        used[x - sf->tensors] = 1;
    }
    /* Tied decoder: absent (as Hugging Face saves it) or equal to its tie. */
    if (mc->has_mlm_head) {
        int roberta = mc->arch == DAPT_ARCH_ROBERTA;
        const char *dw = roberta ? "lm_head.decoder.weight" : "cls.predictions.decoder.weight";
        const char *db = roberta ? "lm_head.decoder.bias" : "cls.predictions.decoder.bias";
        const dapt_tensor *word = dapt_param_find(table, "embeddings.word"), *bias = dapt_param_find(table, "mlm.bias");
        const struct {
            const char *hf;
            const dapt_tensor *tie;
        } ties[2] = {{dw, word}, {db, bias}};
        for (int k = 0; k < 2; k++) {
            const dapt_st_tensor *x = dapt_st_find(sf, ties[k].hf);
            if (!x) continue;
            free(tmp);
            tmp = NULL;
            DAPT_TRY(dapt_alloc((void **)&tmp, ties[k].tie->numel * sizeof *tmp, "tied decoder check"));
            DAPT_TRY(load_float(sf, x, ties[k].tie->ndim, ties[k].tie->shape, "decoder", tmp));
            if (memcmp(tmp, *params + ties[k].tie->offset, ties[k].tie->numel * sizeof *tmp) != 0)
                DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: tensor '%s' differs from dapt's %s: dapt ties the MLM decoder "
                           "(untied decoders are not supported)", sf->path, ties[k].hf, ties[k].tie->name);
            used[x - sf->tensors] = 1;
        }
    }
    /* Buffers and heads that carry no weights dapt uses. */
    for (size_t i = 0; i < sf->count; i++) {
        if (used[i]) continue;
        const dapt_st_tensor *x = &sf->tensors[i];
        const char *n = x->name;
        size_t pl = strlen(c->prefix);
        if (!strncmp(n, c->prefix, pl) &&
            (!strcmp(n + pl, "embeddings.position_ids") || !strcmp(n + pl, "embeddings.token_type_ids"))) {
            if (!is_int_dtype(x->dtype))
                DAPT_THROW(DAPT_ERR_FORMAT, "%s: buffer '%s' has dtype %s, expected integers", sf->path, n,
                           dapt_st_dtype_name(x->dtype));
            used[i] = 1;
        } else if (mc->arch == DAPT_ARCH_BERT && starts(n, "cls.seq_relationship.")) {
            dapt_warn("%s: ignoring '%s' (the next-sentence head of BERT pre-training)", sf->path, n);
            used[i] = 1;
        }
    }
    for (size_t i = 0; i < sf->count; i++)
        if (!used[i])
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: unexpected tensor '%s' for %s", sf->path, sf->tensors[i].name,
                       c->kind == KIND_MLM ? "a masked-LM model" : c->kind == KIND_CLS ? "a classifier" : "a bare model");
cleanup:
    free(tmp);
    free(used);
    if (st != DAPT_OK) {
        free(*params);
        *params = NULL;
        dapt_param_table_free(table);
    }
    return st;
}

static dapt_status read_tokenizer_files(const char *dir, dapt_model_meta *meta)
{
    for (const char *const *name = tokenizer_files; *name; name++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, *name);
        if (!dapt_fs_exists(path)) continue;
        dapt_blob *b = &meta->tokenizer[meta->ntokenizer];
        snprintf(b->name, sizeof b->name, "%s", *name);
        /* 1 GB: far above any real tokenizer, below anything absurd. */
        DAPT_CHECK(dapt_fs_read_file(path, (size_t)1 << 30, &b->data, &b->size));
        meta->ntokenizer++;
    }
    return DAPT_OK;
}

dapt_status dapt_hf_import(const char *dir, dapt_model_config *mc, dapt_param_table *table, float **params,
                           dapt_model_meta *meta)
{
    memset(mc, 0, sizeof *mc);
    memset(table, 0, sizeof *table);
    memset(meta, 0, sizeof *meta);
    *params = NULL;
    import_ctx c;
    memset(&c, 0, sizeof c);
    c.dir = dir;
    snprintf(c.config_path, sizeof c.config_path, "%s/config.json", dir);
    snprintf(c.st_path, sizeof c.st_path, "%s/model.safetensors", dir);
    dapt_status st = DAPT_OK;
    unsigned char *text = NULL;
    size_t len = 0;
    dapt_safetensors sf;
    memset(&sf, 0, sizeof sf);
    if (!dapt_fs_exists(c.st_path)) {
        char alt[4300];
        snprintf(alt, sizeof alt, "%s/model.safetensors.index.json", dir);
        if (dapt_fs_exists(alt))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: sharded checkpoints (model.safetensors.index.json) are not supported",
                       dir);
        snprintf(alt, sizeof alt, "%s/pytorch_model.bin", dir);
        if (dapt_fs_exists(alt))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: has pytorch_model.bin but no model.safetensors; dapt reads only "
                       "safetensors (save with safe_serialization=True)", dir);
        DAPT_THROW(DAPT_ERR_IO, "%s: no model.safetensors", dir);
    }
    DAPT_TRY(dapt_fs_read_file(c.config_path, (size_t)16 << 20, &text, &len));
    json_error_t err;
    c.cfg = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(c.cfg))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: not a JSON object (line %d: %s)", c.config_path, err.line,
                   c.cfg ? "top level is not an object" : err.text);
    DAPT_TRY(parse_config(&c, mc, meta));
    DAPT_TRY(dapt_st_open(c.st_path, &sf));
    DAPT_TRY(load_tensors(&c, &sf, mc, table, params));
    DAPT_TRY(read_tokenizer_files(dir, meta));
cleanup:
    if (sf.map) dapt_st_close(&sf);
    json_decref(c.cfg);
    free(text);
    if (st != DAPT_OK) {
        free(*params);
        *params = NULL;
        dapt_param_table_free(table);
        dapt_model_meta_free(meta);
    }
    return st;
}

/* ---- JSON as Python writes it ------------------------------------------ */

/* The shortest %.*g that reads back as the same double (Python's repr). */
static void shortest_double(double v, char *buf, size_t len)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* Keep it a JSON real: Python writes 1.0, not 1. */
    if (isfinite(v) && !strpbrk(buf, ".eE")) {
        size_t n = strlen(buf);
        if (n + 2 < len) memcpy(buf + n, ".0", 3);
    }
}

/* A JSON string as Python's json.dumps writes it (ensure_ascii): short
 * escapes for the usual controls, lower-case \uXXXX for the rest and for
 * non-ASCII (surrogate pairs above U+FFFF).  Input is valid UTF-8 (jansson
 * checks it). */
static void put_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        int32_t v = 0;
        size_t n = dapt_utf8_decode(u, len - i, &v);
        uint32_t cp = n ? (uint32_t)v : u[0]; /* invalid cannot happen: jansson checked it */
        i += n ? n : 1;
        switch (cp) {
        case '"': fputs("\\\"", out); continue;
        case '\\': fputs("\\\\", out); continue;
        case '\n': fputs("\\n", out); continue;
        case '\r': fputs("\\r", out); continue;
        case '\t': fputs("\\t", out); continue;
        case '\b': fputs("\\b", out); continue;
        case '\f': fputs("\\f", out); continue;
        default: break;
        }
        if (cp >= 0x20 && cp < 0x7f) fputc((int)cp, out);
        else if (cp < 0x10000) fprintf(out, "\\u%04x", (unsigned)cp);
        else {
            cp -= 0x10000;
            fprintf(out, "\\u%04x\\u%04x", (unsigned)(0xd800 + (cp >> 10)), (unsigned)(0xdc00 + (cp & 0x3ff)));
        }
    }
    fputc('"', out);
}

static int cmp_keys(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int pretty(FILE *out, json_t *v, int level)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        if (n == 0) return fputs("{}", out) < 0;
        const char **keys = malloc(n * sizeof *keys);
        if (!keys) return 1;
        const char *key;
        json_t *value;
        json_object_foreach(v, key, value) keys[i++] = key;
        qsort(keys, n, sizeof *keys, cmp_keys);
        fputs("{\n", out);
        int bad = 0;
        for (i = 0; i < n && !bad; i++) {
            fprintf(out, "%*s", 2 * (level + 1), "");
            put_string(out, keys[i], strlen(keys[i]));
            fputs(": ", out);
            bad = pretty(out, json_object_get(v, keys[i]), level + 1);
            fputs(i + 1 < n ? ",\n" : "\n", out);
        }
        fprintf(out, "%*s}", 2 * level, "");
        free(keys);
        return bad;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (n == 0) return fputs("[]", out) < 0;
        fputs("[\n", out);
        for (size_t i = 0; i < n; i++) {
            fprintf(out, "%*s", 2 * (level + 1), "");
            if (pretty(out, json_array_get(v, i), level + 1)) return 1;
            fputs(i + 1 < n ? ",\n" : "\n", out);
        }
        fprintf(out, "%*s]", 2 * level, "");
        return 0;
    }
    case JSON_REAL: {
        char buf[64];
        shortest_double(json_real_value(v), buf, sizeof buf);
        fputs(buf, out);
        return 0;
    }
    case JSON_STRING:
        put_string(out, json_string_value(v), json_string_length(v));
        return 0;
    default: {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        if (!s) return 1;
        fputs(s, out);
        free(s);
        return 0;
    }
    }
}

dapt_status dapt_hf_json_pretty(const void *json_value, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot open a memory stream for JSON");
    int bad = pretty(mem, (json_t *)json_value, 0);
    fputc('\n', mem);
    if (fclose(mem) != 0 || bad) {
        free(buf);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot serialise JSON");
    }
    *out = buf;
    return DAPT_OK;
}

/* ---- export ------------------------------------------------------------ */

static dapt_status build_config_json(const dapt_model_config *mc, const dapt_model_meta *meta, char **text)
{
    json_t *cfg = NULL;
    if (meta && meta->hf_extra_config) {
        json_error_t err;
        cfg = json_loads(meta->hf_extra_config, 0, &err);
        if (!json_is_object(cfg)) {
            json_decref(cfg);
            return DAPT_ERROR(DAPT_ERR_FORMAT, "model file: hf_extra_config is not a JSON object");
        }
    } else {
        cfg = json_object();
    }
    if (!cfg) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot build config.json");
    char cls[64];
    dapt_status st = dapt_hf_class_name(mc, cls, sizeof cls);
    if (st != DAPT_OK) {
        json_decref(cfg);
        return st;
    }
    int bad = 0;
    bad |= json_object_set_new(cfg, "architectures", json_pack("[s]", cls));
    bad |= json_object_set_new(cfg, "model_type", json_string(mc->arch == DAPT_ARCH_ROBERTA ? "roberta" : "bert"));
    bad |= json_object_set_new(cfg, "vocab_size", json_integer(mc->vocab_size));
    bad |= json_object_set_new(cfg, "hidden_size", json_integer(mc->hidden));
    bad |= json_object_set_new(cfg, "num_hidden_layers", json_integer(mc->layers));
    bad |= json_object_set_new(cfg, "num_attention_heads", json_integer(mc->heads));
    bad |= json_object_set_new(cfg, "intermediate_size", json_integer(mc->intermediate));
    bad |= json_object_set_new(cfg, "max_position_embeddings", json_integer(mc->max_position));
    bad |= json_object_set_new(cfg, "type_vocab_size", json_integer(mc->type_vocab_size));
    bad |= json_object_set_new(cfg, "pad_token_id", json_integer(mc->pad_token_id));
    bad |= json_object_set_new(cfg, "layer_norm_eps", json_real(mc->layer_norm_eps));
    bad |= json_object_set_new(cfg, "hidden_dropout_prob", json_real(mc->hidden_dropout));
    bad |= json_object_set_new(cfg, "attention_probs_dropout_prob", json_real(mc->attention_dropout));
    bad |= json_object_set_new(cfg, "initializer_range", json_real(mc->initializer_range));
    bad |= json_object_set_new(cfg, "hidden_act", json_string("gelu"));
    bad |= json_object_set_new(cfg, "position_embedding_type", json_string("absolute"));
    bad |= json_object_set_new(cfg, "torch_dtype", json_string("float32"));
    if (mc->num_labels > 0) {
        json_t *id2label = json_object(), *label2id = json_object();
        for (int64_t i = 0; id2label && label2id && i < mc->num_labels; i++) {
            char key[32], fallback[32];
            snprintf(key, sizeof key, "%lld", (long long)i);
            snprintf(fallback, sizeof fallback, "LABEL_%lld", (long long)i);
            const char *name = meta && meta->labels && meta->labels[i] ? meta->labels[i] : fallback;
            bad |= json_object_set_new(id2label, key, json_string(name));
            bad |= json_object_set_new(label2id, name, json_integer(i));
        }
        bad |= json_object_set_new(cfg, "id2label", id2label);
        bad |= json_object_set_new(cfg, "label2id", label2id);
    }
    /* One output is a regression head: say so, so that from_pretrained
     * rebuilds it with MSELoss (classifier exports stay as Hugging Face
     * writes them).  Never the imported problem_type: a model imported as
     * a regression and fine-tuned as a classifier must not keep it. */
    if (mc->num_labels == 1) {
        bad |= json_object_set_new(cfg, "num_labels", json_integer(1));
        bad |= json_object_set_new(cfg, "problem_type", json_string("regression"));
    }
    if (bad) {
        json_decref(cfg);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot build config.json");
    }
    st = dapt_hf_json_pretty(cfg, text);
    json_decref(cfg);
    return st;
}

/* --force replaces only what an export left: a directory (not a link) that
 * is empty or holds config.json and model.safetensors. */
static dapt_status check_replaceable(const char *dir)
{
    struct stat sb;
    if (lstat(dir, &sb) != 0) return DAPT_OK; /* nothing to replace */
    if (!S_ISDIR(sb.st_mode))
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s is not a directory: dapt export --force replaces only a previous export", dir);
    DIR *d = opendir(dir);
    if (!d) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    int entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
    closedir(d);
    char path[4300];
    struct stat fb;
    int exported = 1;
    const char *const marks[] = {"config.json", "model.safetensors"};
    for (size_t i = 0; i < 2 && exported; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, marks[i]);
        exported = lstat(path, &fb) == 0 && S_ISREG(fb.st_mode);
    }
    if (entries > 0 && !exported)
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s is not a previous export (no config.json and model.safetensors): dapt export --force replaces only an export or an empty directory",
                          dir);
    return DAPT_OK;
}

int dapt_hf_exports_pooler(const dapt_model_config *mc, int keep_pooler)
{
    if (!mc->has_pooler) return 0;
    const int bare = !mc->has_mlm_head && mc->num_labels == 0;
    const int bert_cls = mc->arch == DAPT_ARCH_BERT && mc->num_labels > 0;
    return bare || bert_cls || keep_pooler;
}

dapt_status dapt_hf_export(const char *dir, const dapt_hf_export_opts *opts, const dapt_model_config *mc,
                           const dapt_param_table *table, const float *params, const dapt_model_meta *meta)
{
    const int force = opts->force, pooler = dapt_hf_exports_pooler(mc, opts->keep_pooler);
    char tmp[4200], path[4300];
    char *config = NULL;
    dapt_st_entry *entries = NULL;
    char (*names)[256] = NULL;
    dapt_status st = DAPT_OK;
    if (force) DAPT_CHECK(check_replaceable(dir));
    DAPT_CHECK(build_config_json(mc, meta, &config));
    st = dapt_fs_temp_dir(dir, force, tmp, sizeof tmp);
    if (st != DAPT_OK) {
        free(config);
        return st;
    }
    snprintf(path, sizeof path, "%s/config.json", tmp);
    DAPT_TRY(dapt_fs_write_atomic(path, config, strlen(config), 1));
    DAPT_TRY(dapt_calloc((void **)&entries, table->count, sizeof *entries, "safetensors entries"));
    DAPT_TRY(dapt_calloc((void **)&names, table->count, sizeof *names, "tensor names"));
    const char *prefix = mc->has_mlm_head || mc->num_labels > 0 ? arch_prefix(mc->arch) : "";
    size_t ne = 0;
    for (size_t i = 0; i < table->count; i++) {
        const dapt_tensor *t = &table->tensors[i];
        if (t->flags & DAPT_TENSOR_AUX) continue; /* an objective's, not the model's */
        if (!pooler && starts(t->name, "pooler.")) continue;
        DAPT_TRY(dapt_hf_tensor_name(mc->arch, prefix, t->name, names[ne], sizeof names[ne]));
        entries[ne].name = names[ne];
        entries[ne].dtype = DAPT_ST_F32;
        entries[ne].ndim = t->ndim;
        entries[ne].shape[0] = t->shape[0];
        entries[ne].shape[1] = t->shape[1];
        entries[ne].data = params + t->offset;
        ne++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    const char *const meta_pairs[] = {"format", "pt"};
    DAPT_TRY(dapt_st_write(path, entries, ne, meta_pairs, 1, 1));
    for (size_t i = 0; meta && i < meta->ntokenizer; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp, meta->tokenizer[i].name);
        DAPT_TRY(dapt_fs_write_atomic(path, meta->tokenizer[i].data, meta->tokenizer[i].size, 1));
    }
    DAPT_TRY(dapt_fs_publish_dir(tmp, dir, force));
cleanup:
    if (st != DAPT_OK) dapt_fs_remove_tree(tmp);
    free(names);
    free(entries);
    free(config);
    return st;
}
