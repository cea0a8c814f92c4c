/* dapt's model file (see include/dapt/modelfile.h). */
#include "dapt/modelfile.h"

#include <jansson.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/crc32.h"

void dapt_model_meta_free(dapt_model_meta *meta)
{
    free(meta->hf_extra_config);
    if (meta->labels) {
        /* labels is a NULL-terminated array (its length is num_labels). */
        for (char **l = meta->labels; *l; l++) free(*l);
        free(meta->labels);
    }
    for (size_t i = 0; i < meta->ntokenizer; i++) free(meta->tokenizer[i].data);
    memset(meta, 0, sizeof *meta);
}

/* ---- writing ----------------------------------------------------------- */

typedef struct int_attr {
    const char *name;
    int64_t value;
} int_attr;

dapt_status dapt_modelfile_put_header(dapt_h5file *f, const dapt_model_config *mc, const dapt_model_meta *meta)
{
    DAPT_CHECK(dapt_model_config_validate(mc));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "format", DAPT_MODELFILE_FORMAT));
    DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", "format_version", DAPT_MODELFILE_VERSION));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "arch", mc->arch == DAPT_ARCH_ROBERTA ? "roberta" : "bert"));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "hidden_act", "gelu"));
    const int_attr ints[] = {{"vocab_size", mc->vocab_size},
                             {"hidden_size", mc->hidden},
                             {"num_hidden_layers", mc->layers},
                             {"num_attention_heads", mc->heads},
                             {"intermediate_size", mc->intermediate},
                             {"max_position_embeddings", mc->max_position},
                             {"type_vocab_size", mc->type_vocab_size},
                             {"pad_token_id", mc->pad_token_id},
                             {"has_pooler", mc->has_pooler},
                             {"has_mlm_head", mc->has_mlm_head},
                             {"num_labels", mc->num_labels}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        DAPT_CHECK(dapt_h5_attr_set_int64(f, "/", ints[i].name, ints[i].value));
    DAPT_CHECK(dapt_h5_attr_set_double(f, "/", "layer_norm_eps", mc->layer_norm_eps));
    DAPT_CHECK(dapt_h5_attr_set_double(f, "/", "hidden_dropout_prob", mc->hidden_dropout));
    DAPT_CHECK(dapt_h5_attr_set_double(f, "/", "attention_probs_dropout_prob", mc->attention_dropout));
    DAPT_CHECK(dapt_h5_attr_set_double(f, "/", "initializer_range", mc->initializer_range));
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "hf_architecture", meta ? meta->hf_architecture : ""));
    if (meta && meta->hf_extra_config)
        DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "hf_extra_config", meta->hf_extra_config));
    if (mc->num_labels > 0) {
        json_t *arr = json_array();
        for (int64_t i = 0; arr && i < mc->num_labels; i++) {
            char fallback[32];
            snprintf(fallback, sizeof fallback, "LABEL_%lld", (long long)i);
            const char *name = meta && meta->labels && meta->labels[i] ? meta->labels[i] : fallback;
            json_array_append_new(arr, json_string(name));
        }
        char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
        json_decref(arr);
        if (!text) return DAPT_ERROR(DAPT_ERR_NOMEM, "%s: cannot serialise the class labels", f->path);
        dapt_status st = dapt_h5_attr_set_string(f, "/", "labels", text);
        free(text);
        DAPT_CHECK(st);
    }
    DAPT_CHECK(dapt_h5_group(f, "params"));
    DAPT_CHECK(dapt_h5_group(f, "tokenizer"));
    for (size_t i = 0; meta && i < meta->ntokenizer; i++) {
        char name[128];
        snprintf(name, sizeof name, "tokenizer/%s", meta->tokenizer[i].name);
        const int64_t n[1] = {(int64_t)meta->tokenizer[i].size};
        DAPT_CHECK(dapt_h5_write_all(f, name, DAPT_H5_U8, 1, n, meta->tokenizer[i].data));
        DAPT_CHECK(dapt_h5_attr_set_int64(f, name, "crc32", dapt_crc32(meta->tokenizer[i].data, meta->tokenizer[i].size)));
    }
    return DAPT_OK;
}

dapt_status dapt_modelfile_put(dapt_h5file *f, const dapt_model_config *mc, const dapt_param_table *table,
                               const float *params, const dapt_model_meta *meta)
{
    DAPT_CHECK(dapt_modelfile_put_header(f, mc, meta));
    int rank = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(f->comm, &rank)));
    for (size_t i = 0; i < table->count; i++) {
        const dapt_tensor *t = &table->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "params/%s", t->name);
        DAPT_CHECK(dapt_h5_write_all(f, name, DAPT_H5_F32, t->ndim, t->shape, params ? params + t->offset : NULL));
        /* Attributes are written collectively with one value: rank 0's. */
        int64_t crc = rank == 0 && params ? dapt_crc32(params + t->offset, t->numel * sizeof *params) : 0;
        DAPT_CHECK(DAPT_MPI(MPI_Bcast(&crc, 1, MPI_INT64_T, 0, f->comm)));
        DAPT_CHECK(dapt_h5_attr_set_int64(f, name, "crc32", crc));
    }
    return DAPT_OK;
}

dapt_status dapt_modelfile_save(MPI_Comm comm, const char *path, int force, const dapt_config *cfg,
                                const dapt_model_config *mc, const dapt_param_table *table, const float *params,
                                const dapt_model_meta *meta)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(comm, path, force, cfg, &f));
    dapt_status st = dapt_modelfile_put(&f, mc, table, params, meta);
    if (st != DAPT_OK) {
        dapt_h5_abort(&f);
        return st;
    }
    return dapt_h5_commit(&f);
}

/* ---- reading ----------------------------------------------------------- */

/* A dataset's bytes against its "crc32" attribute.  Files written before
 * dapt stored checksums in model files have none and are read as they are
 * (docs/formats.md). */
static dapt_status check_crc(const dapt_h5file *f, const char *name, const void *data, size_t bytes)
{
    if (!dapt_h5_attr_exists(f, name, "crc32")) return DAPT_OK;
    int64_t want = 0;
    DAPT_CHECK(dapt_h5_attr_get_int64(f, name, "crc32", &want));
    return dapt_crc32_verify(f->path, name, want, dapt_crc32(data, bytes));
}

typedef struct int_field {
    const char *name;
    int64_t *dst;
} int_field;

static dapt_status read_labels(const dapt_h5file *f, int64_t n, dapt_model_meta *meta)
{
    char *text = NULL;
    DAPT_CHECK(dapt_h5_attr_get_string(f, "/", "labels", &text));
    json_error_t err;
    json_t *arr = json_loads(text, 0, &err);
    free(text);
    dapt_status st = DAPT_OK;
    if (!json_is_array(arr) || (int64_t)json_array_size(arr) != n) {
        st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: attribute labels is not a JSON array of %lld names", f->path,
                        (long long)n);
        goto done;
    }
    st = dapt_calloc((void **)&meta->labels, (size_t)n + 1, sizeof *meta->labels, "class labels");
    for (int64_t i = 0; st == DAPT_OK && i < n; i++) {
        json_t *s = json_array_get(arr, (size_t)i);
        if (!json_is_string(s)) st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: label %lld is not a string", f->path, (long long)i);
        else if (!(meta->labels[i] = strdup(json_string_value(s))))
            st = DAPT_ERROR(DAPT_ERR_NOMEM, "%s: cannot copy a label", f->path);
    }
done:
    json_decref(arr);
    return st;
}

typedef struct blob_list {
    const dapt_h5file *f;
    dapt_model_meta *meta;
} blob_list;

static dapt_status collect_blob_name(const char *name, void *user)
{
    blob_list *b = user;
    if (b->meta->ntokenizer == DAPT_MODELFILE_MAX_BLOBS)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: more than %d files under /tokenizer", b->f->path,
                          DAPT_MODELFILE_MAX_BLOBS);
    if (strlen(name) >= sizeof b->meta->tokenizer[0].name)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tokenizer file name too long: %s", b->f->path, name);
    snprintf(b->meta->tokenizer[b->meta->ntokenizer++].name, sizeof b->meta->tokenizer[0].name, "%s", name);
    return DAPT_OK;
}

dapt_status dapt_modelfile_get_config(const dapt_h5file *f, dapt_model_config *mc, dapt_model_meta *meta)
{
    memset(mc, 0, sizeof *mc);
    if (meta) memset(meta, 0, sizeof *meta);
    char *s = NULL;
    if (!dapt_h5_attr_exists(f, "/", "format"))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: not a dapt model file (no format attribute; "
                          "make one with dapt import)", f->path);
    DAPT_CHECK(dapt_h5_attr_get_string(f, "/", "format", &s));
    int is_model = !strcmp(s, DAPT_MODELFILE_FORMAT);
    free(s);
    if (!is_model) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: not a dapt model file", f->path);
    int64_t version = 0;
    DAPT_CHECK(dapt_h5_attr_get_int64(f, "/", "format_version", &version));
    if (version != DAPT_MODELFILE_VERSION)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: model file format_version %lld; this dapt reads %d", f->path,
                          (long long)version, DAPT_MODELFILE_VERSION);
    DAPT_CHECK(dapt_h5_attr_get_string(f, "/", "arch", &s));
    int roberta = !strcmp(s, "roberta"), bert = !strcmp(s, "bert");
    free(s);
    if (!roberta && !bert) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: attribute arch is neither bert nor roberta", f->path);
    mc->arch = roberta ? DAPT_ARCH_ROBERTA : DAPT_ARCH_BERT;
    int64_t has_pooler = 0, has_mlm = 0;
    const int_field ints[] = {{"vocab_size", &mc->vocab_size},
                              {"hidden_size", &mc->hidden},
                              {"num_hidden_layers", &mc->layers},
                              {"num_attention_heads", &mc->heads},
                              {"intermediate_size", &mc->intermediate},
                              {"max_position_embeddings", &mc->max_position},
                              {"type_vocab_size", &mc->type_vocab_size},
                              {"pad_token_id", &mc->pad_token_id},
                              {"has_pooler", &has_pooler},
                              {"has_mlm_head", &has_mlm},
                              {"num_labels", &mc->num_labels}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        DAPT_CHECK(dapt_h5_attr_get_int64(f, "/", ints[i].name, ints[i].dst));
    mc->has_pooler = has_pooler != 0;
    mc->has_mlm_head = has_mlm != 0;
    DAPT_CHECK(dapt_h5_attr_get_double(f, "/", "layer_norm_eps", &mc->layer_norm_eps));
    DAPT_CHECK(dapt_h5_attr_get_double(f, "/", "hidden_dropout_prob", &mc->hidden_dropout));
    DAPT_CHECK(dapt_h5_attr_get_double(f, "/", "attention_probs_dropout_prob", &mc->attention_dropout));
    DAPT_CHECK(dapt_h5_attr_get_double(f, "/", "initializer_range", &mc->initializer_range));
    dapt_status st = dapt_model_config_validate(mc);
    if (st != DAPT_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dapt_error_message());
        return DAPT_ERROR(st, "%s: %s", f->path, msg);
    }
    if (!meta) return DAPT_OK;
    if (dapt_h5_attr_exists(f, "/", "hf_architecture")) {
        DAPT_TRY(dapt_h5_attr_get_string(f, "/", "hf_architecture", &s));
        snprintf(meta->hf_architecture, sizeof meta->hf_architecture, "%s", s);
        free(s);
    }
    if (dapt_h5_attr_exists(f, "/", "hf_extra_config"))
        DAPT_TRY(dapt_h5_attr_get_string(f, "/", "hf_extra_config", &meta->hf_extra_config));
    if (mc->num_labels > 0 && dapt_h5_attr_exists(f, "/", "labels")) DAPT_TRY(read_labels(f, mc->num_labels, meta));
    if (dapt_h5_exists(f, "tokenizer")) {
        blob_list bl = {f, meta};
        DAPT_TRY(dapt_h5_list(f, "tokenizer", collect_blob_name, &bl));
        for (size_t i = 0; i < meta->ntokenizer; i++) {
            char name[128];
            snprintf(name, sizeof name, "tokenizer/%s", meta->tokenizer[i].name);
            int nd = 0;
            int64_t dims[DAPT_H5_MAX_DIMS];
            DAPT_TRY(dapt_h5_read_all(f, name, DAPT_H5_U8, (void **)&meta->tokenizer[i].data, &nd, dims));
            if (nd != 1) DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s is not a 1-D byte array", f->path, name);
            meta->tokenizer[i].size = (size_t)dims[0];
            DAPT_TRY(check_crc(f, name, meta->tokenizer[i].data, meta->tokenizer[i].size));
        }
    }
cleanup:
    if (st != DAPT_OK) dapt_model_meta_free(meta);
    return st;
}

typedef struct param_check {
    const dapt_h5file *f;
    const dapt_param_table *table;
} param_check;

static dapt_status known_param(const char *name, void *user)
{
    param_check *c = user;
    /* An objective's auxiliary tensors: read when the table has them. */
    if (!strncmp(name, "aux.", 4)) return DAPT_OK;
    if (!dapt_param_find(c->table, name))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: params/%s is not a tensor of this model's configuration", c->f->path,
                          name);
    return DAPT_OK;
}

dapt_status dapt_modelfile_get_params(const dapt_h5file *f, const dapt_param_table *table, float *params)
{
    param_check c = {f, table};
    DAPT_CHECK(dapt_h5_list(f, "params", known_param, &c));
    memset(params, 0, table->total * sizeof *params);
    /* Every tensor dapt wrote is a raw extent, read with the others as
     * plain file I/O (h5io.h); another writer's layout goes through HDF5. */
    dapt_h5_extent *ext = NULL;
    size_t n = 0;
    DAPT_CHECK(dapt_status_agree(f->comm, dapt_alloc((void **)&ext, (table->count ? table->count : 1) * sizeof *ext,
                                                     "the read list")));
    dapt_status st = DAPT_OK;
    for (size_t i = 0; i < table->count; i++) {
        const dapt_tensor *t = &table->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "params/%s", t->name);
        int nd = 0;
        int64_t dims[DAPT_H5_MAX_DIMS], off = -1;
        DAPT_TRY(dapt_h5_info(f, name, &nd, dims, NULL));
        if (nd != t->ndim || dims[0] != t->shape[0] || (nd == 2 && dims[1] != t->shape[1]))
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s has %d dimensions, first %lld; the configuration says "
                       "[%lld, %lld] (%d dimensions)", f->path, name, nd, (long long)dims[0],
                       (long long)t->shape[0], (long long)t->shape[1], t->ndim);
        DAPT_TRY(dapt_h5_raw_offset(f, name, DAPT_H5_F32, &off));
        if (off >= 0) {
            ext[n++] = (dapt_h5_extent){off, (int64_t)(t->numel * sizeof *params), params + t->offset};
        } else {
            const int64_t start[2] = {0, 0};
            DAPT_TRY(dapt_h5_read(f, name, DAPT_H5_F32, t->ndim, start, t->shape, params + t->offset));
        }
    }
    DAPT_TRY(dapt_h5_read_extents(f, ext, n));
    for (size_t i = 0; i < table->count; i++) {
        const dapt_tensor *t = &table->tensors[i];
        char name[128];
        snprintf(name, sizeof name, "params/%s", t->name);
        DAPT_TRY(check_crc(f, name, params + t->offset, t->numel * sizeof *params));
    }
cleanup:
    free(ext);
    return st;
}

/* The file's auxiliary tensors (params/aux.*), appended to the table. */
typedef struct aux_scan {
    const dapt_h5file *f;
    dapt_param_table *table;
} aux_scan;

static dapt_status add_aux_param(const char *name, void *user)
{
    aux_scan *a = user;
    if (strncmp(name, "aux.", 4)) return DAPT_OK;
    char obj[128];
    snprintf(obj, sizeof obj, "params/%s", name);
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    DAPT_CHECK(dapt_h5_info(a->f, obj, &nd, dims, NULL));
    if (nd != 1 && nd != 2) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %s has %d dimensions", a->f->path, obj, nd);
    dapt_tensor_spec spec;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "%s", name);
    spec.rows = dims[0];
    spec.cols = nd == 2 ? dims[1] : 0;
    return dapt_param_table_add_aux(a->table, &spec, 1);
}

dapt_status dapt_modelfile_load(MPI_Comm comm, const char *path, dapt_model_config *mc, dapt_param_table *table,
                                float **params, dapt_model_meta *meta)
{
    *params = NULL;
    memset(table, 0, sizeof *table);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_modelfile_get_config(&f, mc, meta));
    DAPT_TRY(dapt_param_table_build(mc, table));
    aux_scan scan = {&f, table};
    DAPT_TRY(dapt_h5_list(&f, "params", add_aux_param, &scan));
    DAPT_TRY(dapt_alloc((void **)params, table->total * sizeof **params, "model parameters"));
    DAPT_TRY(dapt_modelfile_get_params(&f, table, *params));
cleanup:
    dapt_h5_close(&f);
    if (st != DAPT_OK) {
        free(*params);
        *params = NULL;
        dapt_param_table_free(table);
        if (meta) dapt_model_meta_free(meta);
    }
    return st;
}
