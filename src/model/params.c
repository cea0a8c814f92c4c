/* Model configuration checks and the parameter table. */
#include "dapt/params.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dapt_status dapt_model_config_validate(const dapt_model_config *mc)
{
    struct {
        const char *name;
        int64_t value;
    } sizes[] = {{"vocab_size", mc->vocab_size},   {"hidden_size", mc->hidden},
                 {"num_hidden_layers", mc->layers}, {"num_attention_heads", mc->heads},
                 {"intermediate_size", mc->intermediate}, {"max_position_embeddings", mc->max_position},
                 {"type_vocab_size", mc->type_vocab_size}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value <= 0)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "model %s: %lld must be positive", sizes[i].name,
                              (long long)sizes[i].value);
    if (mc->hidden % mc->heads)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "model hidden_size %lld is not divisible by num_attention_heads %lld",
                          (long long)mc->hidden, (long long)mc->heads);
    if (mc->pad_token_id < 0 || mc->pad_token_id >= mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "model pad_token_id %lld is outside the vocabulary (%lld)",
                          (long long)mc->pad_token_id, (long long)mc->vocab_size);
    if (mc->arch == DAPT_ARCH_ROBERTA && mc->max_position <= mc->pad_token_id + 1)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "model max_position_embeddings %lld leaves no room after the "
                          "RoBERTa position offset (pad_token_id + 1)", (long long)mc->max_position);
    if (!(mc->layer_norm_eps > 0))
        return DAPT_ERROR(DAPT_ERR_CONFIG, "model layer_norm_eps must be positive");
    if (mc->num_labels < 0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "model num_labels %lld is negative", (long long)mc->num_labels);
    return DAPT_OK;
}

dapt_status dapt_model_config_from_run(const dapt_config *cfg, dapt_model_config *mc)
{
    memset(mc, 0, sizeof *mc);
    mc->arch = strcmp(cfg->model.arch, "roberta") ? DAPT_ARCH_BERT : DAPT_ARCH_ROBERTA;
    mc->vocab_size = cfg->model.vocab_size;
    mc->hidden = cfg->model.hidden;
    mc->layers = cfg->model.layers;
    mc->heads = cfg->model.heads;
    mc->intermediate = cfg->model.intermediate;
    mc->max_position = cfg->model.max_position;
    mc->type_vocab_size = mc->arch == DAPT_ARCH_ROBERTA ? 1 : 2;
    mc->pad_token_id = mc->arch == DAPT_ARCH_ROBERTA ? 1 : 0;
    mc->layer_norm_eps = mc->arch == DAPT_ARCH_ROBERTA ? 1e-5 : 1e-12;
    mc->hidden_dropout = cfg->model.dropout;
    mc->attention_dropout = cfg->model.attention_dropout;
    mc->initializer_range = cfg->model.init_std;
    mc->has_pooler = 1;
    mc->has_mlm_head = 1;
    mc->num_labels = 0;
    return dapt_model_config_validate(mc);
}

typedef struct table_builder {
    dapt_param_table *table;
    size_t capacity;
    dapt_status status;
} table_builder;

static void add(table_builder *b, unsigned flags, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add(table_builder *b, unsigned flags, int64_t rows, int64_t cols, const char *fmt, ...)
{
    if (b->status != DAPT_OK) return;
    dapt_param_table *t = b->table;
    if (t->count == b->capacity) {
        size_t cap = b->capacity ? 2 * b->capacity : 64;
        dapt_tensor *grown = realloc(t->tensors, cap * sizeof *grown);
        if (!grown) {
            b->status = DAPT_ERROR(DAPT_ERR_NOMEM, "cannot grow the parameter table");
            return;
        }
        t->tensors = grown;
        b->capacity = cap;
    }
    dapt_tensor *x = &t->tensors[t->count++];
    memset(x, 0, sizeof *x);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->name, sizeof x->name, fmt, ap);
    va_end(ap);
    x->ndim = cols > 0 ? 2 : 1;
    x->shape[0] = rows;
    x->shape[1] = cols > 0 ? cols : 1;
    x->numel = (size_t)rows * (size_t)x->shape[1];
    x->offset = t->total;
    x->flags = flags;
    /* 16 floats = 64 bytes: every tensor starts on a cache line. */
    t->total += (x->numel + 15) & ~(size_t)15;
}

dapt_status dapt_param_table_build(const dapt_model_config *mc, dapt_param_table *table)
{
    DAPT_CHECK(dapt_model_config_validate(mc));
    memset(table, 0, sizeof *table);
    table_builder b = {table, 0, DAPT_OK};
    const int64_t H = mc->hidden, I = mc->intermediate, V = mc->vocab_size;
    const unsigned NB = DAPT_TENSOR_NO_DECAY, LN = DAPT_TENSOR_NO_DECAY | DAPT_TENSOR_LAYERNORM;
    add(&b, DAPT_TENSOR_EMBEDDING, V, H, "embeddings.word");
    add(&b, DAPT_TENSOR_EMBEDDING, mc->max_position, H, "embeddings.position");
    add(&b, DAPT_TENSOR_EMBEDDING, mc->type_vocab_size, H, "embeddings.token_type");
    add(&b, LN, H, 0, "embeddings.ln.weight");
    add(&b, LN, H, 0, "embeddings.ln.bias");
    for (int64_t l = 0; l < mc->layers; l++) {
        static const char *const qkv[] = {"q", "k", "v"};
        for (int i = 0; i < 3; i++) {
            add(&b, 0, H, H, "layer.%lld.attn.%s.weight", (long long)l, qkv[i]);
            add(&b, NB, H, 0, "layer.%lld.attn.%s.bias", (long long)l, qkv[i]);
        }
        add(&b, 0, H, H, "layer.%lld.attn.out.weight", (long long)l);
        add(&b, NB, H, 0, "layer.%lld.attn.out.bias", (long long)l);
        add(&b, LN, H, 0, "layer.%lld.attn.ln.weight", (long long)l);
        add(&b, LN, H, 0, "layer.%lld.attn.ln.bias", (long long)l);
        add(&b, 0, I, H, "layer.%lld.ffn.in.weight", (long long)l);
        add(&b, NB, I, 0, "layer.%lld.ffn.in.bias", (long long)l);
        add(&b, 0, H, I, "layer.%lld.ffn.out.weight", (long long)l);
        add(&b, NB, H, 0, "layer.%lld.ffn.out.bias", (long long)l);
        add(&b, LN, H, 0, "layer.%lld.ffn.ln.weight", (long long)l);
        add(&b, LN, H, 0, "layer.%lld.ffn.ln.bias", (long long)l);
    }
    if (mc->has_pooler) {
        add(&b, 0, H, H, "pooler.weight");
        add(&b, NB, H, 0, "pooler.bias");
    }
    if (mc->has_mlm_head) {
        add(&b, 0, H, H, "mlm.dense.weight");
        add(&b, NB, H, 0, "mlm.dense.bias");
        add(&b, LN, H, 0, "mlm.ln.weight");
        add(&b, LN, H, 0, "mlm.ln.bias");
        add(&b, NB, V, 0, "mlm.bias");
    }
    if (mc->num_labels > 0) {
        if (mc->arch == DAPT_ARCH_ROBERTA) {
            add(&b, 0, H, H, "cls.dense.weight");
            add(&b, NB, H, 0, "cls.dense.bias");
            add(&b, 0, mc->num_labels, H, "cls.out.weight");
            add(&b, NB, mc->num_labels, 0, "cls.out.bias");
        } else {
            add(&b, 0, mc->num_labels, H, "cls.weight");
            add(&b, NB, mc->num_labels, 0, "cls.bias");
        }
    }
    if (b.status != DAPT_OK) dapt_param_table_free(table);
    return b.status;
}

dapt_status dapt_param_table_add_aux(dapt_param_table *table, const dapt_tensor_spec *aux, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const dapt_tensor_spec *a = &aux[i];
        if (strncmp(a->name, "aux.", 4) || !a->name[4])
            return DAPT_ERROR(DAPT_ERR_ARG, "auxiliary tensor '%s': names start with \"aux.\"", a->name);
        if (a->rows <= 0 || a->cols < 0)
            return DAPT_ERROR(DAPT_ERR_ARG, "auxiliary tensor %s: shape [%lld, %lld]", a->name, (long long)a->rows,
                              (long long)a->cols);
        if (dapt_param_find(table, a->name))
            return DAPT_ERROR(DAPT_ERR_ARG, "auxiliary tensor %s: the name is taken", a->name);
        table_builder b = {table, table->count, DAPT_OK};
        add(&b, DAPT_TENSOR_AUX | (a->cols > 0 ? 0u : (unsigned)DAPT_TENSOR_NO_DECAY), a->rows, a->cols, "%s", a->name);
        DAPT_CHECK(b.status);
    }
    return DAPT_OK;
}

void dapt_param_table_free(dapt_param_table *table)
{
    free(table->tensors);
    memset(table, 0, sizeof *table);
}

const dapt_tensor *dapt_param_find(const dapt_param_table *table, const char *name)
{
    for (size_t i = 0; i < table->count; i++)
        if (!strcmp(table->tensors[i].name, name)) return &table->tensors[i];
    return NULL;
}
