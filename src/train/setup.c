/* Setting up one dapt train run: the process grid, the tokenizer and its
 * MLM spec, the starting model (sharded under tensor parallelism), the
 * corpus, this rank's share of each global batch, the optimizer and the
 * objective's view of all of it (dapt_objective_ctx). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dapt/fsio.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/tokenizer.h"
#include "train_internal.h"

dapt_status train_agree(const train_run *r, dapt_status st)
{
    return dapt_status_agree(r->have_grid ? r->grid.world : MPI_COMM_WORLD, st);
}

int train_leader(const train_run *r) { return r->rank == 0 && (!r->have_grid || r->grid.tensor_rank == 0); }

/* The process grid; tensor parallelism only for objectives that declare it. */
static dapt_status make_grid(train_run *r)
{
    DAPT_CHECK(dapt_grid_create(MPI_COMM_WORLD, r->cfg->parallel.tensor, &r->grid));
    r->have_grid = 1;
    if (r->grid.tensor_size != 1 && !(r->obj->ops->flags & DAPT_OBJ_TENSOR_PARALLEL)) {
        char names[256];
        dapt_objective_names(DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL, names, sizeof names);
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "parallel.tensor = %lld: tensor parallelism is implemented for train.method = %s, not %s (use 1)",
                          (long long)r->cfg->parallel.tensor, names, r->obj->ops->name);
    }
    r->comm = r->grid.data;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(r->comm, &r->rank)));
    return DAPT_MPI(MPI_Comm_size(r->comm, &r->size));
}

/* Tokenizer files to carry into checkpoints, from tokenizer.path (a file
 * or a directory), under the names Hugging Face uses.  Not collective. */
static dapt_status collect_tokenizer_files(const char *path, dapt_model_meta *meta)
{
    static const char *const names[] = {"tokenizer.json", "vocab.txt", "vocab.json", "merges.txt",
                                        "tokenizer_config.json", "special_tokens_map.json"};
    struct stat sb;
    if (stat(path, &sb) != 0) return DAPT_ERROR(DAPT_ERR_IO, "tokenizer.path %s: %s", path, strerror(errno));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char file[2 * DAPT_CONFIG_STR_MAX];
        const char *name = names[i];
        if (S_ISDIR(sb.st_mode)) {
            snprintf(file, sizeof file, "%s/%s", path, name);
            if (!dapt_fs_exists(file)) continue;
        } else {
            size_t n = strlen(path);
            int json = n >= 5 && !strcmp(path + n - 5, ".json");
            if (strcmp(name, json ? "tokenizer.json" : "vocab.txt")) continue;
            snprintf(file, sizeof file, "%s", path);
        }
        dapt_blob *b = &meta->tokenizer[meta->ntokenizer];
        DAPT_CHECK(dapt_fs_read_file(file, (size_t)1 << 30, &b->data, &b->size));
        snprintf(b->name, sizeof b->name, "%s", name);
        meta->ntokenizer++;
    }
    return DAPT_OK;
}

/* Writes the model file's tokenizer files into OUT/tokenizer (leader) so
 * the run's tokenizer can be read from there.  Collective over the world. */
static dapt_status unpack_tokenizer(train_run *r, char *dir, size_t len)
{
    snprintf(dir, len, "%s/tokenizer", r->out);
    dapt_status st = DAPT_OK;
    if (train_leader(r)) {
        st = dapt_fs_mkdir_p(dir);
        if (st == DAPT_OK) st = dapt_model_tokenizer_write(&r->meta, dir);
    }
    return train_agree(r, st);
}

/* The tokenizer (tokenizer.path, else the model file's), its special ids
 * and the MLM spec.  Collective over the world. */
static dapt_status setup_tokenizer(train_run *r, int64_t *vocab)
{
    const dapt_config *cfg = r->cfg;
    char dir[2 * DAPT_CONFIG_STR_MAX];
    const char *path = cfg->tokenizer.path;
    if (!path[0]) {
        if (r->meta.ntokenizer == 0)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "tokenizer.path: dapt train needs the tokenizer the corpus was prepared with (for the [CLS]/[SEP]/[PAD]/[MASK] ids), and %s",
                              cfg->model.path[0] ? "the model file carries none" : "no model.path is given");
        DAPT_CHECK(unpack_tokenizer(r, dir, sizeof dir));
        path = dir;
    } else if (r->meta.ntokenizer == 0) {
        DAPT_CHECK(collect_tokenizer_files(path, &r->meta));
    }
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_tokenizer_load(path, &tok));
    *vocab = (int64_t)dapt_tokenizer_vocab_size(tok);
    dapt_status st = dapt_sequences_check_tokenizer(cfg->data.corpus, path, tok);
    if (st == DAPT_OK)
        st = dapt_mlm_spec_from_tokenizer(tok, path, cfg->train.mlm_probability, &r->mlm, &r->ss.begin_id,
                                          &r->ss.end_id, &r->ss.pad_id);
    dapt_tokenizer_free(tok);
    return st;
}

/* The objective's auxiliary tensors for a model of config mc. */
static dapt_status aux_specs(train_run *r, const dapt_model_config *mc)
{
    r->naux = 0;
    if (!r->obj->ops->aux_tensors) return DAPT_OK;
    DAPT_CHECK(r->obj->ops->aux_tensors(r->cfg, mc, r->aux, &r->naux));
    if (r->naux > DAPT_OBJ_MAX_AUX)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "objective %s asks for %zu auxiliary tensors (at most %d)",
                          r->obj->ops->name, r->naux, DAPT_OBJ_MAX_AUX);
    return DAPT_OK;
}

/* The starting model: model.path (a model file or a checkpoint), else
 * random initialisation from [model].  Collective over the world. */
static dapt_status setup_model(train_run *r, dapt_model_config *mc, int32_t pad)
{
    const dapt_config *cfg = r->cfg;
    if (!cfg->model.path[0]) {
        DAPT_CHECK(dapt_model_config_from_run(cfg, mc));
        if (pad >= 0) mc->pad_token_id = pad;
        snprintf(r->meta.hf_architecture, sizeof r->meta.hf_architecture, "%s",
                 mc->arch == DAPT_ARCH_ROBERTA ? "RobertaForMaskedLM" : "BertForMaskedLM");
        DAPT_CHECK(aux_specs(r, mc));
        DAPT_CHECK(dapt_model_create_aux(mc, r->aux, r->naux, &r->model));
        r->have_model = 1;
        dapt_model_init_random(&r->model, (uint64_t)cfg->run.seed);
        return DAPT_OK;
    }
    dapt_param_table table;
    float *params = NULL;
    dapt_model_meta meta;
    DAPT_CHECK(dapt_modelfile_load(r->comm, cfg->model.path, mc, &table, &params, &meta));
    /* The model file's tokenizer and names (tokenizer.path still decides
     * which tokenizer is used). */
    dapt_model_meta_free(&r->meta);
    r->meta = meta;
    dapt_status st = DAPT_OK;
    if (!mc->has_mlm_head)
        st = DAPT_ERROR(DAPT_ERR_CONFIG, "model.path %s has no MLM head, so MLM post-training cannot start from it",
                        cfg->model.path);
    mc->num_labels = 0; /* a classification head plays no part in MLM */
    if (st == DAPT_OK) st = aux_specs(r, mc);
    if (st == DAPT_OK) st = dapt_model_create_aux(mc, r->aux, r->naux, &r->model);
    if (st == DAPT_OK) {
        r->have_model = 1;
        /* The objective's tensors the file does not hold start as a fresh model's would. */
        dapt_model_init_random_flags(&r->model, (uint64_t)cfg->run.seed, DAPT_TENSOR_AUX);
        for (size_t i = 0; i < r->model.table.count; i++) {
            const dapt_tensor *t = &r->model.table.tensors[i];
            const dapt_tensor *src = dapt_param_find(&table, t->name);
            if (!src && (t->flags & DAPT_TENSOR_AUX)) continue;
            if (!src || src->numel != t->numel) {
                st = DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: tensor %s missing after loading", cfg->model.path, t->name);
                break;
            }
            memcpy(r->model.params + t->offset, params + src->offset, t->numel * sizeof(float));
        }
    }
    dapt_param_table_free(&table);
    free(params);
    return st;
}

/* Tokenizer and model (in the order each needs the other), checked
 * against each other and sharded over the tensor group. */
static dapt_status setup_tokenizer_and_model(train_run *r, dapt_model_config *mc)
{
    const dapt_config *cfg = r->cfg;
    int64_t tok_vocab = 0;
    r->ss.begin_id = r->ss.end_id = r->ss.pad_id = -1;
    /* A model file's tokenizer is needed before the specials; random init
     * needs the pad id first: load the file first, init after. */
    if (cfg->model.path[0]) {
        DAPT_CHECK(train_agree(r, setup_model(r, mc, -1)));
        DAPT_CHECK(train_agree(r, setup_tokenizer(r, &tok_vocab)));
        if (r->ss.pad_id >= 0 && r->ss.pad_id != mc->pad_token_id)
            dapt_warn("model.path %s has pad_token_id %lld, the tokenizer's pad id is %d", cfg->model.path,
                      (long long)mc->pad_token_id, (int)r->ss.pad_id);
    } else {
        DAPT_CHECK(train_agree(r, setup_tokenizer(r, &tok_vocab)));
        DAPT_CHECK(train_agree(r, setup_model(r, mc, r->ss.pad_id)));
    }
    if (mc->vocab_size < tok_vocab)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "the model's vocabulary (%lld) is smaller than the tokenizer's (%lld)",
                          (long long)mc->vocab_size, (long long)tok_vocab);
    DAPT_CHECK(dapt_grid_check_batch(&r->grid, cfg->train.batch_size));
    DAPT_CHECK(dapt_grid_log(&r->grid, mc));
    if (r->grid.tensor_size > 1) {
        dapt_grid_tp_group(&r->grid, &r->tpg);
        DAPT_CHECK(dapt_tp_shard_model(&r->grid, &r->tpg, &r->model, &r->tpl));
        r->have_tpl = 1;
    }
    return DAPT_OK;
}

/* The corpus, the rank's block of every global batch and its buffers. */
static dapt_status setup_data(train_run *r, const dapt_model_config *mc)
{
    const dapt_config *cfg = r->cfg;
    r->B = cfg->train.batch_size;
    r->L = cfg->data.seq_len;
    r->accum = cfg->train.grad_accum;
    if (r->L > mc->max_position)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "data.seq_len = %lld exceeds the model's %lld positions", (long long)r->L,
                          (long long)mc->max_position);
    r->ss.seq_len = r->L;
    r->ss.packing = strcmp(cfg->data.packing, "document") ? DAPT_PACK_CONCAT : DAPT_PACK_DOCUMENT;
    r->ss.eval_fraction = cfg->data.eval_fraction;
    r->ss.seed = (uint64_t)cfg->run.seed;
    if (cfg->data.verify) DAPT_CHECK(dapt_h5_verify_file(r->comm, cfg->data.corpus));
    DAPT_CHECK(dapt_sequences_open(cfg->data.corpus, &r->ss, &r->seqs));
    int64_t file_vocab = dapt_sequences_vocab(r->seqs);
    if (file_vocab > mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s declares vocab_size %lld, larger than the model's %lld", cfg->data.corpus,
                          (long long)file_vocab, (long long)mc->vocab_size);
    DAPT_CHECK(dapt_order_init(&r->order, (uint64_t)cfg->run.seed, dapt_sequences_count(r->seqs, DAPT_SPLIT_TRAIN)));

    dapt_share(r->B, r->rank, r->size, &r->local_begin, &r->local_count);
    int64_t first_block = (r->B + r->size - 1) / r->size;
    r->micro_max = (first_block + r->accum - 1) / r->accum;
    if (r->micro_max < 1) r->micro_max = 1;
    int64_t rows = r->micro_max * r->L;
    /* Labelled rows: p n + 8 standard deviations + slack (p: the share the
     * objective may label); a batch beyond it
     * (probability < 1e-15) is refused by the engine with a clear message. */
    double p = dapt_objective_label_fraction(r->obj->ops, cfg), nn = (double)rows;
    int64_t mlm_rows = (int64_t)ceil(p * nn + 8.0 * sqrt(nn * p * (1 - p)) + 16);
    dapt_workspace_spec wspec = {r->micro_max, r->L, mlm_rows < rows ? mlm_rows : rows, 1, (int)cfg->model.recompute};
    DAPT_CHECK(dapt_workspace_create(&r->model, &wspec, &r->ws));
    size_t lrows = (size_t)(first_block > 0 ? first_block : 1) * (size_t)r->L;
    DAPT_CHECK(dapt_alloc((void **)&r->clean, lrows * sizeof(int32_t), "batch ids"));
    DAPT_CHECK(dapt_alloc((void **)&r->ids, lrows * sizeof(int32_t), "batch inputs"));
    DAPT_CHECK(dapt_alloc((void **)&r->att, lrows * sizeof(int32_t), "batch attention"));
    DAPT_CHECK(dapt_alloc((void **)&r->labels, lrows * sizeof(int32_t), "batch labels"));
    DAPT_CHECK(dapt_alloc((void **)&r->seq_idx, (size_t)(first_block > 0 ? first_block : 1) * sizeof(int64_t), "batch sequence list"));
    return dapt_calloc((void **)&r->mbs, (size_t)r->accum, sizeof *r->mbs, "micro-batch list");
}

static void fill_ctx(train_run *r)
{
    dapt_objective_ctx *c = &r->ctx;
    c->cfg = r->cfg;
    c->data_comm = r->comm;
    c->data_rank = r->rank;
    c->data_size = r->size;
    c->writer = !r->have_grid || r->grid.tensor_rank == 0;
    c->model = &r->model;
    c->ws = r->ws;
    c->mlm = &r->mlm;
    c->seq_spec = &r->ss;
    c->seqs = r->seqs;
    c->seed = (uint64_t)r->cfg->run.seed;
    c->global_rows = r->B;
    c->seq_len = r->L;
    c->micro_max = r->micro_max;
    c->total_steps = r->cfg->train.steps;
    c->domain = &r->domain;
}

dapt_status train_new(train_run **out, const dapt_config *cfg, dapt_objective *obj)
{
    train_run *r = NULL;
    DAPT_CHECK(dapt_calloc((void **)&r, 1, sizeof *r, "training state"));
    r->cfg = cfg;
    r->obj = obj;
    r->comm = MPI_COMM_WORLD;
    r->order.epoch = -1;
    r->last_ckpt_step = -1;
    *out = r;
    return DAPT_OK;
}

dapt_status train_setup(train_run *r)
{
    const dapt_config *cfg = r->cfg;
    DAPT_CHECK(make_grid(r));
    snprintf(r->out, sizeof r->out, "%s", cfg->run.output_dir);
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/checkpoints", r->out);
    char metrics[DAPT_CONFIG_STR_MAX + 16];
    snprintf(metrics, sizeof metrics, "%s/metrics.csv", r->out);
    DAPT_CHECK(dapt_metrics_log_init(&r->mlog, metrics));
    if (!cfg->data.corpus[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "data.corpus: dapt train needs a prepared corpus file");
    dapt_model_config mc;
    DAPT_CHECK(setup_tokenizer_and_model(r, &mc));
    DAPT_CHECK(setup_data(r, &mc));
    DAPT_CHECK(dapt_adamw_moments(cfg, &r->model.table, r->comm, r->have_tpl, &r->zero, &r->exp_avg, &r->exp_avg_sq));
    dapt_adamw_from_config(cfg, &r->adam);
    DAPT_CHECK(dapt_adamw_validate(&r->adam));
    DAPT_CHECK(dapt_lr_schedule_from_config(cfg, &r->sched));
    fill_ctx(r);
    return DAPT_OK;
}

void train_teardown(train_run *r)
{
    dapt_metrics_log_close(&r->mlog);
    dapt_workspace_free(r->ws);
    if (r->have_model) dapt_model_free(&r->model);
    dapt_model_meta_free(&r->meta);
    dapt_sequences_close(r->seqs);
    dapt_order_free(&r->order);
    free(r->clean);
    free(r->ids);
    free(r->att);
    free(r->labels);
    free(r->seq_idx);
    free(r->exp_avg);
    free(r->exp_avg_sq);
    dapt_grad_sync_free(r->sync);
    r->sync = NULL;
    dapt_zero_free(r->zero);
    r->zero = NULL;
    free(r->mbs);
    if (r->have_tpl) dapt_tp_layout_free(&r->tpl);
    r->have_tpl = 0;
    if (r->have_grid) dapt_grid_free(&r->grid);
    r->have_grid = 0;
}
