/* The data-parallel training loop (see dapt/train.h). */
#include "dapt/train.h"

#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dapt/batches.h"
#include "dapt/checkpoint.h"
#include "dapt/fsio.h"
#include "dapt/grid.h"
#include "dapt/log.h"
#include "dapt/modelfile.h"
#include "dapt/optim.h"
#include "dapt/tokenizer.h"
#include "train_internal.h"

/* Held-out masks use this step key, which no training step reaches, so every
 * evaluation sees the same masks and they differ from any training masks. */
#define EVAL_MASK_STEP UINT64_MAX

/* ---- preemption ---------------------------------------------------------- */

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

void dapt_train_request_stop(void) { stop_requested = 1; }

/* ---- the data communicator ------------------------------------------------ */

/* The process grid.  Tensor parallelism (the model sharded by
 * dapt_tp_shard_model) is wired for the MLM step; the other methods keep
 * whole models (domain model files, importance, Fisher) and need T = 1. */
static dapt_status make_grid(const dapt_config *cfg, dapt_grid *g)
{
    DAPT_CHECK(dapt_grid_create(MPI_COMM_WORLD, cfg->parallel.tensor, g));
    const char *m = cfg->train.method;
    if (g->tensor_size != 1 && strcmp(m, "mlm") && strcmp(m, "one") && strcmp(m, "das") && strcmp(m, "dga")) {
        dapt_grid_free(g);
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "parallel.tensor = %lld: tensor parallelism is implemented for train.method = mlm, one, dga and das, not %s (use 1)",
                          (long long)cfg->parallel.tensor, cfg->train.method);
    }
    return DAPT_OK;
}

/* ---- objectives ---------------------------------------------------------- */

static dapt_status mlm_micro_step(void *state, dapt_train_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    (void)state;
    dapt_run_opts opts = {0};
    opts.train = 1;
    opts.seed = ctx->seed;
    opts.step = (uint64_t)ctx->step;
    opts.mlm_denominator = ctx->mlm_denominator;
    DAPT_CHECK(dapt_model_forward(ctx->model, ctx->ws, &mb->batch, NULL, &opts));
    *loss += dapt_ws_mlm_loss(ctx->ws, NULL);
    return dapt_model_backward(ctx->model, ctx->ws, 1.0, NULL, NULL);
}

const dapt_objective_ops dapt_objective_mlm = {
    .name = "mlm",
    .micro_step = mlm_micro_step,
};

const dapt_objective_ops dapt_objective_one = {
    .name = "one",
    .micro_step = mlm_micro_step,
};

const dapt_objective_ops *dapt_objective_find(const char *method)
{
    static const dapt_objective_ops *const all[] = {&dapt_objective_mlm, &dapt_objective_one, &dapt_objective_kd,
                                                    &dapt_objective_ewc, &dapt_objective_dga, &dapt_objective_das};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(all[i]->name, method)) return all[i];
    return NULL;
}

/* ---- the run's state ----------------------------------------------------- */

typedef struct run {
    const dapt_config *cfg;
    dapt_grid grid;
    int have_grid;
    dapt_tp_group tpg;  /* parallel.tensor > 1: the model is this rank's shard */
    dapt_tp_layout tpl;
    int have_tpl;
    MPI_Comm comm;
    int rank, size;
    char out[DAPT_CONFIG_STR_MAX], ckpt_dir[DAPT_CONFIG_STR_MAX + 16], metrics[DAPT_CONFIG_STR_MAX + 16];
    dapt_mlm_spec mlm;
    dapt_model model;
    int have_model;
    dapt_model_meta meta; /* tokenizer files and HF name, carried into checkpoints */
    dapt_workspace *ws;
    dapt_sequences *seqs;
    dapt_order order;
    dapt_adamw adam;
    dapt_lr_schedule sched;
    float *exp_avg, *exp_avg_sq;
    const dapt_objective_ops *obj;
    void *obj_state;
    dapt_train_ctx ctx;
    int64_t B, L, accum, local_begin, local_count, micro_max;
    int32_t *clean, *ids, *att, *labels;
    int64_t *seq_idx;
    int64_t step, position, bad_run, last_ckpt_step;
    FILE *metrics_fp;
    dapt_seq_spec ss;
    dapt_domain_state dom; /* filled by the domain driver before the objective's init */
    dapt_micro_batch *mbs; /* this rank's micro-batches of the step */
} run;

static dapt_status agree(run *r, dapt_status st)
{
    int mine = (int)st, worst = 0;
    /* Over every rank: tensor ranks of a data rank must agree too. */
    if (MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, r->have_grid ? r->grid.world : r->comm) != MPI_SUCCESS)
        return DAPT_ERROR(DAPT_ERR_MPI, "MPI_Allreduce failed while agreeing on a status");
    if (worst != DAPT_OK && st == DAPT_OK)
        return DAPT_ERROR((dapt_status)worst, "train: another rank failed (%s); see its message",
                          dapt_status_name((dapt_status)worst));
    return st;
}


/* The one rank that writes shared files (metrics, output directories): data
 * rank 0 of tensor rank 0. */
static int leader(const run *r) { return r->rank == 0 && (!r->have_grid || r->grid.tensor_rank == 0); }

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

/* Writes the model file's tokenizer files into OUT/tokenizer (rank 0) so the
 * tokenizer can be loaded from there.  Collective over r->comm. */
static dapt_status unpack_tokenizer(run *r, char *dir, size_t len)
{
    snprintf(dir, len, "%s/tokenizer", r->out);
    dapt_status st = DAPT_OK;
    if (leader(r)) {
        st = dapt_fs_mkdir_p(dir);
        for (size_t i = 0; st == DAPT_OK && i < r->meta.ntokenizer; i++) {
            char file[3 * DAPT_CONFIG_STR_MAX];
            snprintf(file, sizeof file, "%s/%s", dir, r->meta.tokenizer[i].name);
            st = dapt_fs_write_atomic(file, r->meta.tokenizer[i].data, r->meta.tokenizer[i].size, 1);
        }
    }
    return agree(r, st);
}

/* The tokenizer (tokenizer.path, else the model file's), its special ids
 * and the MLM spec.  Collective over r->comm. */
static dapt_status setup_specials(run *r, int32_t *begin, int32_t *end, int32_t *pad, int64_t *vocab)
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
    dapt_special_ids sp = dapt_tokenizer_specials(tok);
    *vocab = (int64_t)dapt_tokenizer_vocab_size(tok);
    /* The corpus must have been tokenized by the same tokenizer. */
    dapt_h5file cf;
    dapt_status st = dapt_h5_open(MPI_COMM_SELF, cfg->data.corpus, &cf);
    if (st == DAPT_OK && dapt_h5_attr_exists(&cf, "/", "tokenizer_checksum")) {
        char *sum = NULL;
        st = dapt_h5_attr_get_string(&cf, "/", "tokenizer_checksum", &sum);
        if (st == DAPT_OK && strcmp(sum, dapt_tokenizer_checksum(tok)))
            st = DAPT_ERROR(DAPT_ERR_CONFIG, "%s was prepared with another tokenizer than %s (checksum %.12s..., this one %.12s...)",
                            cfg->data.corpus, path, sum, dapt_tokenizer_checksum(tok));
        free(sum);
    }
    dapt_h5_close(&cf);
    dapt_tokenizer_free(tok);
    DAPT_CHECK(st);
    if (sp.mask < 0)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "tokenizer %s has no mask token, so MLM cannot run", path);
    memset(&r->mlm, 0, sizeof r->mlm);
    r->mlm.probability = cfg->train.mlm_probability;
    r->mlm.mask_id = sp.mask;
    r->mlm.vocab_size = *vocab;
    const int32_t all[] = {sp.cls, sp.sep, sp.pad, sp.mask, sp.unk, sp.bos, sp.eos};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) DAPT_CHECK(dapt_mlm_spec_add_special(&r->mlm, all[i]));
    DAPT_CHECK(dapt_mlm_spec_check(&r->mlm));
    *begin = sp.cls >= 0 ? sp.cls : sp.bos;
    *end = sp.sep >= 0 ? sp.sep : sp.eos;
    *pad = sp.pad;
    return DAPT_OK;
}

dapt_status dapt_train_tokenizer_spec(const char *path, double p, dapt_mlm_spec *mlm, int32_t *begin,
                                      int32_t *end, int32_t *pad)
{
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_tokenizer_load(path, &tok));
    dapt_special_ids sp = dapt_tokenizer_specials(tok);
    memset(mlm, 0, sizeof *mlm);
    mlm->probability = p;
    mlm->mask_id = sp.mask;
    mlm->vocab_size = (int64_t)dapt_tokenizer_vocab_size(tok);
    dapt_tokenizer_free(tok);
    if (sp.mask < 0) return DAPT_ERROR(DAPT_ERR_CONFIG, "tokenizer %s has no mask token, so MLM cannot run", path);
    const int32_t all[] = {sp.cls, sp.sep, sp.pad, sp.mask, sp.unk, sp.bos, sp.eos};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) DAPT_CHECK(dapt_mlm_spec_add_special(mlm, all[i]));
    DAPT_CHECK(dapt_mlm_spec_check(mlm));
    *begin = sp.cls >= 0 ? sp.cls : sp.bos;
    *end = sp.sep >= 0 ? sp.sep : sp.eos;
    *pad = sp.pad;
    return DAPT_OK;
}

/* The starting model: model.path (a model file or a checkpoint), else
 * random initialisation from [model].  Collective over r->comm. */
static dapt_status setup_model(run *r, dapt_model_config *mc, int32_t pad)
{
    const dapt_config *cfg = r->cfg;
    if (!cfg->model.path[0]) {
        DAPT_CHECK(dapt_model_config_from_run(cfg, mc));
        if (pad >= 0) mc->pad_token_id = pad;
        snprintf(r->meta.hf_architecture, sizeof r->meta.hf_architecture, "%s",
                 mc->arch == DAPT_ARCH_ROBERTA ? "RobertaForMaskedLM" : "BertForMaskedLM");
        DAPT_CHECK(dapt_model_create(mc, &r->model));
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
    if (st == DAPT_OK) st = dapt_model_create(mc, &r->model);
    if (st == DAPT_OK) {
        r->have_model = 1;
        for (size_t i = 0; i < r->model.table.count; i++) {
            const dapt_tensor *t = &r->model.table.tensors[i];
            const dapt_tensor *src = dapt_param_find(&table, t->name);
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

/* Removes checkpoints and metrics of an earlier run (--force), and temporary
 * files a killed writer left behind (always).  Rank 0 only. */
static dapt_status clean_output(run *r, int everything)
{
    DIR *d = opendir(r->ckpt_dir);
    if (!d) return DAPT_OK;
    struct dirent *e;
    char path[2 * DAPT_CONFIG_STR_MAX];
    while ((e = readdir(d)) != NULL) {
        int tmp = strstr(e->d_name, ".tmp.") != NULL;
        int ours = !strncmp(e->d_name, "step-", 5) || !strcmp(e->d_name, "latest");
        if (!(tmp || (everything && ours))) continue;
        snprintf(path, sizeof path, "%s/%s", r->ckpt_dir, e->d_name);
        if (unlink(path) != 0) dapt_warn("cannot remove %s: %s", path, strerror(errno));
    }
    closedir(d);
    if (everything && unlink(r->metrics) != 0 && errno != ENOENT)
        return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot remove: %s", r->metrics, strerror(errno));
    return DAPT_OK;
}

static dapt_status prepare_output(run *r, const dapt_train_opts *opts)
{
    if (!leader(r)) return DAPT_OK;
    DAPT_CHECK(dapt_fs_mkdir_p(r->ckpt_dir));
    char latest[DAPT_CONFIG_STR_MAX + 32];
    snprintf(latest, sizeof latest, "%s/latest", r->ckpt_dir);
    int previous = dapt_fs_exists(r->metrics) || dapt_fs_exists(latest);
    if (previous && !opts->resume && !opts->force)
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s holds a previous run (metrics.csv or checkpoints/latest): use --resume to continue it or --force to start afresh",
                          r->out);
    return clean_output(r, previous && !opts->resume);
}

/* Keeps the header and the rows of steps <= step (resume).  Rank 0. */
static dapt_status truncate_metrics(run *r, int64_t step)
{
    if (!dapt_fs_exists(r->metrics)) return DAPT_OK;
    unsigned char *data = NULL;
    size_t len = 0;
    DAPT_CHECK(dapt_fs_read_file(r->metrics, (size_t)1 << 32, &data, &len));
    size_t keep = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = (const char *)data + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t next = nl ? (size_t)(nl - (const char *)data) + 1 : len;
        long long s;
        if (pos > 0 && (sscanf(line, "%lld,", &s) != 1 || s > step)) break;
        keep = next;
        pos = next;
    }
    dapt_status st = dapt_fs_write_atomic(r->metrics, data, keep, 1);
    free(data);
    return st;
}

static dapt_status open_metrics(run *r)
{
    if (!leader(r)) return DAPT_OK;
    int fresh = !dapt_fs_exists(r->metrics);
    r->metrics_fp = fopen(r->metrics, "a");
    if (!r->metrics_fp) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open for writing: %s", r->metrics, strerror(errno));
    if (fresh) fprintf(r->metrics_fp, "step,loss,lr,grad_norm,tokens_per_s,eval_loss,eval_ppl\n");
    fflush(r->metrics_fp);
    return DAPT_OK;
}

static void metrics_row(run *r, int64_t step, const double *train5, double eval_loss)
{
    if (!r->metrics_fp) return;
    fprintf(r->metrics_fp, "%lld", (long long)step);
    for (int i = 0; i < 4; i++) {
        if (train5) fprintf(r->metrics_fp, i == 3 ? ",%.1f" : ",%.9g", train5[i]);
        else fputc(',', r->metrics_fp);
    }
    if (isnan(eval_loss) && train5) fprintf(r->metrics_fp, ",,\n");
    else fprintf(r->metrics_fp, ",%.9g,%.9g\n", eval_loss, exp(eval_loss));
    fflush(r->metrics_fp);
}

/* ---- setup ----------------------------------------------------------------- */

static dapt_status setup(run *r, const dapt_train_opts *opts)
{
    const dapt_config *cfg = r->cfg;
    DAPT_CHECK(make_grid(cfg, &r->grid));
    r->have_grid = 1;
    r->comm = r->grid.data;
    MPI_Comm_rank(r->comm, &r->rank);
    MPI_Comm_size(r->comm, &r->size);
    snprintf(r->out, sizeof r->out, "%s", cfg->run.output_dir);
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/checkpoints", r->out);
    snprintf(r->metrics, sizeof r->metrics, "%s/metrics.csv", r->out);
    r->obj = dapt_objective_find(cfg->train.method);
    if (!r->obj)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "train.method = %s is not implemented", cfg->train.method);
    if (!cfg->data.corpus[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "data.corpus: dapt train needs a prepared corpus file");

    int32_t begin = -1, end = -1, pad = -1;
    int64_t tok_vocab = 0;
    dapt_model_config mc;
    /* A model file's tokenizer is needed before the specials; random init
     * needs the pad id first: load the file first, init after. */
    if (cfg->model.path[0]) {
        DAPT_CHECK(agree(r, setup_model(r, &mc, -1)));
        DAPT_CHECK(setup_specials(r, &begin, &end, &pad, &tok_vocab));
        if (pad >= 0 && pad != mc.pad_token_id)
            dapt_warn("model.path %s has pad_token_id %lld, the tokenizer's pad id is %d", cfg->model.path,
                      (long long)mc.pad_token_id, (int)pad);
    } else {
        DAPT_CHECK(setup_specials(r, &begin, &end, &pad, &tok_vocab));
        DAPT_CHECK(setup_model(r, &mc, pad));
    }
    if (mc.vocab_size < tok_vocab)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "the model's vocabulary (%lld) is smaller than the tokenizer's (%lld)",
                          (long long)mc.vocab_size, (long long)tok_vocab);
    DAPT_CHECK(dapt_grid_check_batch(&r->grid, cfg->train.batch_size));
    DAPT_CHECK(dapt_grid_log(&r->grid, &mc));
    if (r->grid.tensor_size > 1) {
        dapt_grid_tp_group(&r->grid, &r->tpg);
        DAPT_CHECK(dapt_tp_shard_model(&r->grid, &r->tpg, &r->model, &r->tpl));
        r->have_tpl = 1;
    }
    r->B = cfg->train.batch_size;
    r->L = cfg->data.seq_len;
    r->accum = cfg->train.grad_accum;
    if (r->L > mc.max_position)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "data.seq_len = %lld exceeds the model's %lld positions", (long long)r->L,
                          (long long)mc.max_position);

    dapt_seq_spec ss = {r->L, strcmp(cfg->data.packing, "document") ? DAPT_PACK_CONCAT : DAPT_PACK_DOCUMENT,
                        cfg->data.eval_fraction, (uint64_t)cfg->run.seed, begin, end, pad};
    r->ss = ss;
    DAPT_CHECK(dapt_sequences_open(cfg->data.corpus, &ss, &r->seqs));
    int64_t file_vocab = dapt_sequences_vocab(r->seqs);
    if (file_vocab > mc.vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s declares vocab_size %lld, larger than the model's %lld", cfg->data.corpus,
                          (long long)file_vocab, (long long)mc.vocab_size);
    DAPT_CHECK(dapt_order_init(&r->order, (uint64_t)cfg->run.seed, dapt_sequences_count(r->seqs, DAPT_SPLIT_TRAIN)));

    /* This rank's block of every global batch and its micro-batches. */
    dapt_share(r->B, r->rank, r->size, &r->local_begin, &r->local_count);
    int64_t first_block = (r->B + r->size - 1) / r->size;
    r->micro_max = (first_block + r->accum - 1) / r->accum;
    if (r->micro_max < 1) r->micro_max = 1;
    int64_t rows = r->micro_max * r->L;
    /* Labelled rows: p n + 8 standard deviations + slack; a batch beyond it
     * (probability < 1e-15) is refused by the engine with a clear message. */
    double p = cfg->train.mlm_probability, nn = (double)rows;
    int64_t mlm_rows = (int64_t)ceil(p * nn + 8.0 * sqrt(nn * p * (1 - p)) + 16);
    dapt_workspace_spec wspec = {r->micro_max, r->L, mlm_rows < rows ? mlm_rows : rows, 1, (int)cfg->model.recompute};
    DAPT_CHECK(dapt_workspace_create(&r->model, &wspec, &r->ws));
    size_t lrows = (size_t)(first_block > 0 ? first_block : 1) * (size_t)r->L;
    DAPT_CHECK(dapt_alloc((void **)&r->clean, lrows * sizeof(int32_t), "batch ids"));
    DAPT_CHECK(dapt_alloc((void **)&r->ids, lrows * sizeof(int32_t), "batch inputs"));
    DAPT_CHECK(dapt_alloc((void **)&r->att, lrows * sizeof(int32_t), "batch attention"));
    DAPT_CHECK(dapt_alloc((void **)&r->labels, lrows * sizeof(int32_t), "batch labels"));
    DAPT_CHECK(dapt_alloc((void **)&r->seq_idx, (size_t)(first_block > 0 ? first_block : 1) * sizeof(int64_t), "batch sequence list"));
    DAPT_CHECK(dapt_calloc((void **)&r->exp_avg, r->model.table.total, sizeof(float), "AdamW first moment"));
    DAPT_CHECK(dapt_calloc((void **)&r->exp_avg_sq, r->model.table.total, sizeof(float), "AdamW second moment"));
    dapt_adamw_from_config(cfg, &r->adam);
    DAPT_CHECK(dapt_adamw_validate(&r->adam));
    DAPT_CHECK(dapt_lr_schedule_from_config(cfg, &r->sched));

    r->ctx.cfg = cfg;
    r->ctx.data_comm = r->comm;
    r->ctx.data_rank = r->rank;
    r->ctx.data_size = r->size;
    r->ctx.model = &r->model;
    r->ctx.ws = r->ws;
    r->ctx.mlm = &r->mlm;
    r->ctx.seed = (uint64_t)cfg->run.seed;
    r->ctx.global_rows = r->B;
    r->ctx.micro_max = r->micro_max;
    r->ctx.domain = &r->dom;
    DAPT_CHECK(dapt_calloc((void **)&r->mbs, (size_t)r->accum, sizeof *r->mbs, "micro-batch list"));
    (void)opts;
    return DAPT_OK;
}

static void teardown(run *r)
{
    if (r->obj && r->obj->destroy && r->obj_state) r->obj->destroy(r->obj_state);
    if (r->metrics_fp) fclose(r->metrics_fp);
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
    free(r->mbs);
    if (r->have_tpl) dapt_tp_layout_free(&r->tpl);
    r->have_tpl = 0;
    if (r->have_grid) dapt_grid_free(&r->grid);
}

/* ---- checkpoints ------------------------------------------------------------ */

static dapt_status obj_save(void *ctx, dapt_h5file *f)
{
    run *r = ctx;
    return r->obj->save(r->obj_state, &r->ctx, f);
}

static dapt_status obj_load(void *ctx, const dapt_h5file *f)
{
    run *r = ctx;
    return r->obj->load(r->obj_state, &r->ctx, f);
}

/* Tensor parallelism: every rank writes (and on resume reads) only its own
 * hyperslabs of the global-shape datasets, so the file is the same as a
 * T = 1 run's and resumes on any layout, without gathering anything.
 * Collective over the world. */
static dapt_ckpt_layout tp_ckpt_layout(const run *r)
{
    return (dapt_ckpt_layout){&r->tpl.global, &r->model.table, r->tpl.shards, r->grid.tensor_rank,
                              r->grid.tensor_size, r->grid.data_rank, r->grid.data_size};
}

static dapt_status save_checkpoint_tp(run *r, const dapt_ckpt_state *cs)
{
    const dapt_ckpt_layout lay = tp_ckpt_layout(r);
    return dapt_checkpoint_save_layout(r->grid.world, r->ckpt_dir, r->cfg, &r->model.config, &lay, r->model.params,
                                       r->exp_avg, r->exp_avg_sq, &r->meta, cs, r->cfg->checkpoint.keep,
                                       r->obj->save ? obj_save : NULL, r);
}

/* Loads this rank's shard of the newest good checkpoint.  Collective over
 * the world. */
static dapt_status resume_tp(run *r, dapt_ckpt_state *cs, char *path, size_t len)
{
    const dapt_ckpt_layout lay = tp_ckpt_layout(r);
    return dapt_checkpoint_resume_layout(r->grid.world, r->ckpt_dir, &lay, r->model.params, r->exp_avg,
                                         r->exp_avg_sq, cs, r->obj->load ? obj_load : NULL, r, path, len);
}

static dapt_status save_checkpoint(run *r)
{
    dapt_ckpt_state cs = {r->step, r->position, r->adam.step, r->bad_run, (uint64_t)r->cfg->run.seed};
    double t0 = dapt_now();
    if (r->have_tpl)
        DAPT_CHECK(save_checkpoint_tp(r, &cs));
    else
        DAPT_CHECK(dapt_checkpoint_save(r->comm, r->ckpt_dir, r->cfg, &r->model, &r->meta, r->exp_avg, r->exp_avg_sq, &cs,
                                        r->cfg->checkpoint.keep, r->obj->save ? obj_save : NULL, r));
    r->last_ckpt_step = r->step;
    double bytes = 3.0 * (double)(r->have_tpl ? r->tpl.global.total : r->model.table.total) * sizeof(float);
    double dt = dapt_now() - t0;
    dapt_info("checkpoint step %lld written in %.2f s (%.1f MB/s); largest checkpoint buffer %zu bytes",
              (long long)r->step, dt, dt > 0 ? bytes / dt / 1e6 : 0.0, dapt_checkpoint_peak_alloc());
    return DAPT_OK;
}

static dapt_status resume(run *r)
{
    char path[2 * DAPT_CONFIG_STR_MAX];
    dapt_ckpt_state cs;
    int64_t *steps = NULL;
    size_t n = 0;
    long long have = 0;
    if (r->rank == 0) {
        dapt_status st = dapt_checkpoint_list(r->ckpt_dir, &steps, &n);
        free(steps);
        have = st == DAPT_OK ? (long long)n : -1;
    }
    MPI_Bcast(&have, 1, MPI_LONG_LONG, 0, r->comm);
    if (have < 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list checkpoints", r->ckpt_dir);
    if (have == 0) {
        dapt_info("--resume: no checkpoint in %s, starting from step 0", r->ckpt_dir);
        return DAPT_OK;
    }
    if (r->have_tpl)
        DAPT_CHECK(resume_tp(r, &cs, path, sizeof path));
    else
        DAPT_CHECK(dapt_checkpoint_resume(r->comm, r->ckpt_dir, &r->model, r->exp_avg, r->exp_avg_sq, &cs,
                                          r->obj->load ? obj_load : NULL, r, path, sizeof path));
    if (cs.seed != (uint64_t)r->cfg->run.seed)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "run.seed = %lld differs from the checkpoint's %llu (%s): the data order and masks would change",
                          (long long)r->cfg->run.seed, (unsigned long long)cs.seed, path);
    r->step = r->last_ckpt_step = cs.step;
    r->position = cs.samples;
    r->adam.step = cs.adam_step;
    r->bad_run = cs.bad_run;
    dapt_info("resumed from %s: step %lld, %lld sequences consumed", path, (long long)cs.step, (long long)cs.samples);
    return DAPT_OK;
}

/* ---- one step ----------------------------------------------------------------- */

/* Reads and masks this rank's block of global samples [first, first + n)
 * (train order) or held-out sequences [first, first + n) (eval). */
static dapt_status load_block(run *r, dapt_split split, int64_t first, int64_t n, uint64_t mask_step,
                              int64_t counts[2])
{
    for (int64_t i = 0; i < n; i++)
        r->seq_idx[i] = split == DAPT_SPLIT_TRAIN ? dapt_order_at(&r->order, (uint64_t)(first + i), NULL) : first + i;
    DAPT_CHECK(dapt_sequences_read(r->seqs, split, r->seq_idx, n, r->clean, r->att));
    memcpy(r->ids, r->clean, (size_t)(n * r->L) * sizeof *r->ids);
    counts[0] = counts[1] = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t sel;
        int32_t *row = r->ids + i * r->L;
        /* Train masks: sample = global sample index; eval: held-out index. */
        dapt_mlm_mask(&r->mlm, r->ctx.seed, mask_step, (uint64_t)(first + i), row, r->att + i * r->L, r->L,
                      r->labels + i * r->L, &sel);
        counts[0] += sel;
        for (int64_t j = 0; j < r->L; j++) counts[1] += r->att[i * r->L + j] != 0;
    }
    return DAPT_OK;
}

static int injected_nan(const run *r)
{
    const dapt_config *cfg = r->cfg;
    const int64_t numbered = r->step + 1; /* steps are numbered from 1 in logs and metrics */
    return cfg->train.inject_nan_step > 0 && r->rank == cfg->train.inject_nan_rank &&
           numbered >= cfg->train.inject_nan_step && numbered < cfg->train.inject_nan_step + cfg->train.inject_nan_steps;
}

/* Sums the gradients over the data ranks: buckets of parallel.bucket_mb,
 * all in flight at once. */
static dapt_status allreduce_grads(run *r)
{
    if (r->size == 1) return DAPT_OK;
    size_t total = r->model.table.total;
    size_t bucket = (size_t)(r->cfg->parallel.bucket_mb * 1048576.0 / sizeof(float));
    if (bucket < 1024) bucket = 1024;
    size_t nb = (total + bucket - 1) / bucket;
    MPI_Request *req = NULL;
    DAPT_CHECK(dapt_alloc((void **)&req, nb * sizeof *req, "all-reduce requests"));
    dapt_status st = DAPT_OK;
    for (size_t b = 0; b < nb && st == DAPT_OK; b++) {
        size_t off = b * bucket, cnt = total - off < bucket ? total - off : bucket;
        st = DAPT_MPI(MPI_Iallreduce(MPI_IN_PLACE, r->model.grads + off, (int)cnt, MPI_FLOAT, MPI_SUM, r->comm, &req[b]));
        if (st != DAPT_OK) nb = b;
    }
    if (nb) {
        dapt_status w = DAPT_MPI(MPI_Waitall((int)nb, req, MPI_STATUSES_IGNORE));
        if (st == DAPT_OK) st = w;
    }
    free(req);
    return st;
}

typedef struct step_result {
    double loss, lr, grad_norm, tokens_per_s;
    int bad;       /* update skipped */
    int bad_rank;  /* lowest rank that saw a non-finite value */
} step_result;

static dapt_status train_step(run *r, step_result *out)
{
    const double t0 = dapt_now();
    r->ctx.step = r->step;
    r->ctx.lr = dapt_lr_at(&r->sched, r->step);
    int64_t counts[2], global[2];
    DAPT_CHECK(load_block(r, DAPT_SPLIT_TRAIN, r->position + r->local_begin, r->local_count, (uint64_t)r->step, counts));
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(counts, global, 2, MPI_INT64_T, MPI_SUM, r->comm)));
    r->ctx.mlm_denominator = (double)global[0];
    r->ctx.token_denominator = (double)global[1];

    dapt_model_zero_grads(&r->model);
    double loss = 0.0;
    int bad = 0;
    int64_t nmb = 0;
    for (int64_t k = 0; k < r->accum && !bad; k++) {
        int64_t mb, mc;
        dapt_share(r->local_count, (int)k, (int)r->accum, &mb, &mc);
        if (mc == 0) continue;
        dapt_micro_batch m;
        memset(&m, 0, sizeof m);
        m.batch.batch = mc;
        m.batch.seq_len = r->L;
        m.batch.input_ids = r->ids + mb * r->L;
        m.batch.attention_mask = r->att + mb * r->L;
        m.batch.mlm_labels = r->labels + mb * r->L;
        m.batch.first_sample = (uint64_t)(r->position + r->local_begin + mb);
        m.clean_ids = r->clean + mb * r->L;
        r->mbs[nmb++] = m;
        dapt_status st = r->obj->micro_step(r->obj_state, &r->ctx, &m, &loss);
        if (st == DAPT_ERR_NUMERIC) {
            dapt_debug("step %lld: %s", (long long)r->step, dapt_error_message());
            dapt_error_clear();
            bad = 1;
        } else if (st != DAPT_OK) {
            return st;
        }
    }
    if (r->obj->step_end) {
        /* Collective: every rank calls, a rank with a bad micro-step too. */
        dapt_status st = r->obj->step_end(r->obj_state, &r->ctx, r->mbs, nmb, &loss);
        if (st == DAPT_ERR_NUMERIC) {
            dapt_debug("step %lld: %s", (long long)r->step, dapt_error_message());
            dapt_error_clear();
            bad = 1;
        } else if (st != DAPT_OK) {
            return st;
        }
    }
    if (injected_nan(r)) r->model.grads[0] = NAN;
    /* A non-finite local gradient is this rank's fault; find it before the sum. */
    if (!bad && !isfinite(dapt_grad_sumsq(&r->model.table, 0, r->model.table.total, r->model.grads))) bad = 1;
    DAPT_CHECK(allreduce_grads(r));
    double gloss = 0.0;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&loss, &gloss, 1, MPI_DOUBLE, MPI_SUM, r->comm)));
    int mine = bad ? r->rank : r->size, first_bad = r->size;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&mine, &first_bad, 1, MPI_INT, MPI_MIN, r->comm)));
    if (r->have_tpl) /* a skip on one tensor rank is a skip on all */
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, r->grid.tensor)));

    if (first_bad == r->size && r->obj->transform_grads) DAPT_CHECK(r->obj->transform_grads(r->obj_state, &r->ctx));
    /* Every rank holds the summed gradient, so the local sum of squares is
     * the global one; with tensor parallelism sharded tensors are summed over
     * the tensor group and replicated ones counted once. */
    double norm = NAN;
    float factor = 1.0f;
    if (first_bad == r->size) {
        double sumsq = 0.0;
        if (r->have_tpl)
            DAPT_CHECK(dapt_tp_sumsq(&r->tpl, &r->model.table, r->model.grads, &sumsq));
        else
            sumsq = dapt_grad_sumsq(&r->model.table, 0, r->model.table.total, r->model.grads);
        factor = dapt_grad_clip_factor(sumsq, r->cfg->train.max_grad_norm, &norm);
    }
    out->bad = first_bad < r->size || !isfinite(norm) || !isfinite(gloss);
    out->bad_rank = first_bad < r->size ? first_bad : -1;
    if (!out->bad) {
        if (factor != 1.0f) dapt_grad_scale(&r->model.table, 0, r->model.table.total, r->model.grads, factor);
        dapt_adamw_advance(&r->adam);
        DAPT_CHECK(dapt_adamw_update(&r->adam, r->ctx.lr, &r->model.table, 0, r->model.table.total, r->model.params,
                                     r->model.grads, r->exp_avg, r->exp_avg_sq));
        if (r->obj->after_update) DAPT_CHECK(r->obj->after_update(r->obj_state, &r->ctx));
    }
    out->loss = out->bad && !isfinite(gloss) ? NAN : gloss;
    if (first_bad < r->size) out->loss = NAN;
    out->lr = r->ctx.lr;
    out->grad_norm = norm;
    double dt = dapt_now() - t0;
    out->tokens_per_s = dt > 0 ? (double)global[1] / dt : 0.0;
    r->position += r->B;
    r->step++;
    return DAPT_OK;
}

/* Held-out loss with fixed masks; NaN when there is no held-out sequence. */
static dapt_status evaluate(run *r, double *eval_loss)
{
    *eval_loss = NAN;
    int64_t n_eval = dapt_sequences_count(r->seqs, DAPT_SPLIT_EVAL);
    int64_t want = r->cfg->train.eval_batches * r->B;
    if (want > n_eval) want = n_eval;
    if (want == 0) return DAPT_OK;
    int64_t begin, count;
    dapt_share(want, r->rank, r->size, &begin, &count);
    double sums[2] = {0.0, 0.0}, tot[2];
    int nonfinite = 0;
    dapt_run_opts opts = {0};
    opts.mlm_denominator = 1.0; /* the engine returns the plain sum */
    for (int64_t off = 0; off < count; off += r->micro_max) {
        int64_t n = count - off < r->micro_max ? count - off : r->micro_max, c[2];
        DAPT_CHECK(load_block(r, DAPT_SPLIT_EVAL, begin + off, n, EVAL_MASK_STEP, c));
        dapt_batch b = {n, r->L, r->ids, r->att, NULL, r->labels, NULL, (uint64_t)(begin + off)};
        dapt_status st = dapt_model_forward(&r->model, r->ws, &b, NULL, &opts);
        if (st == DAPT_ERR_NUMERIC) {
            dapt_error_clear();
            nonfinite = 1;
            continue;
        }
        DAPT_CHECK(st);
        sums[0] += dapt_ws_mlm_loss(r->ws, NULL);
        sums[1] += (double)c[0];
    }
    if (nonfinite) sums[0] = NAN;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(sums, tot, 2, MPI_DOUBLE, MPI_SUM, r->comm)));
    *eval_loss = tot[1] > 0 ? tot[0] / tot[1] : NAN;
    return DAPT_OK;
}

static dapt_status run_loop(run *r, const dapt_train_opts *opts, dapt_train_result *res)
{
    const dapt_config *cfg = r->cfg;
    const int64_t steps = cfg->train.steps;
    dapt_info("train: %s on %s, %d data rank%s, global batch %lld x %lld tokens (%lld per rank, %lld micro-batches), %lld train / %lld held-out sequences, %zu parameters",
              r->obj->name, cfg->data.corpus, r->size, r->size == 1 ? "" : "s", (long long)r->B, (long long)r->L,
              (long long)r->local_count, (long long)r->accum, (long long)dapt_sequences_count(r->seqs, DAPT_SPLIT_TRAIN),
              (long long)dapt_sequences_count(r->seqs, DAPT_SPLIT_EVAL), r->model.table.total);
    if (opts->resume) DAPT_CHECK(resume(r));
    /* Rows after the checkpoint are recomputed; at step 0 even row 0 is. */
    if (leader(r)) DAPT_CHECK(agree(r, opts->resume ? truncate_metrics(r, r->step ? r->step : -1) : DAPT_OK));
    else DAPT_CHECK(agree(r, DAPT_OK));
    DAPT_CHECK(agree(r, open_metrics(r)));
    const int64_t eval_every = cfg->train.eval_every;
    if (eval_every > 0 && dapt_sequences_count(r->seqs, DAPT_SPLIT_EVAL) == 0)
        dapt_warn("no held-out sequences (data.eval_fraction = %g): evaluation is skipped", cfg->data.eval_fraction);
    else if (r->step == 0 && eval_every > 0) {
        double el;
        DAPT_CHECK(evaluate(r, &el));
        metrics_row(r, 0, NULL, el);
        res->last_eval_loss = el;
        dapt_info("step 0: held-out loss %.4f perplexity %.2f", el, exp(el));
    }
    dapt_progress prog;
    char label[64];
    snprintf(label, sizeof label, r->step ? "train (resumed at %lld)" : "train", (long long)r->step);
    dapt_progress_start(&prog, label, "steps", steps - r->step, 0.0);
    const int64_t start = r->step;
    while (r->step < steps) {
        int flag = stop_requested, any = 0;
        DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&flag, &any, 1, MPI_INT, MPI_MAX, r->grid.world)));
        if (any) {
            dapt_info("stop signal received: checkpointing at step %lld", (long long)r->step);
            if (r->last_ckpt_step != r->step) DAPT_CHECK(save_checkpoint(r));
            res->steps_done = r->step;
            res->agreed = 1;
            return DAPT_ERROR(DAPT_ERR_INTERRUPTED, "preempted at step %lld: checkpoint written to %s, resume with --resume",
                              (long long)r->step, r->ckpt_dir);
        }
        step_result sr;
        DAPT_CHECK(train_step(r, &sr));
        res->last_loss = sr.loss;
        if (sr.bad) {
            r->bad_run++;
            res->bad_steps++;
            dapt_warn("step %lld: non-finite loss or gradient (first on rank %d): update skipped (%lld in a row, limit %lld)",
                      (long long)r->step, sr.bad_rank, (long long)r->bad_run, (long long)cfg->train.max_bad_steps);
            if (r->bad_run >= cfg->train.max_bad_steps) {
                res->steps_done = r->step;
                res->agreed = 1;
                return DAPT_ERROR(DAPT_ERR_NUMERIC, "step %lld: loss or gradients not finite (first on rank %d) for %lld steps in a row (train.max_bad_steps = %lld)",
                                  (long long)r->step, sr.bad_rank, (long long)r->bad_run, (long long)cfg->train.max_bad_steps);
            }
        } else {
            r->bad_run = 0;
        }
        double el = NAN;
        int last = r->step == steps;
        if (eval_every > 0 && (r->step % eval_every == 0 || last)) {
            DAPT_CHECK(evaluate(r, &el));
            res->last_eval_loss = el;
        }
        const double row[4] = {sr.loss, sr.lr, sr.grad_norm, sr.tokens_per_s};
        metrics_row(r, r->step, row, el);
        if (r->step % cfg->train.log_every == 0 || last || !isnan(el)) {
            char extra[256];
            int n = snprintf(extra, sizeof extra, "step %lld loss %.4f lr %.3g grad-norm %.3f tokens/s %.0f",
                             (long long)r->step, sr.loss, sr.lr, sr.grad_norm, sr.tokens_per_s);
            if (!isnan(el)) snprintf(extra + n, sizeof extra - (size_t)n, " held-out %.4f ppl %.2f", el, exp(el));
            prog.interval = 0.0;
            dapt_progress_update(&prog, r->step - start, extra);
        }
        if ((cfg->checkpoint.every > 0 && r->step % cfg->checkpoint.every == 0) || last)
            DAPT_CHECK(save_checkpoint(r));
    }
    res->steps_done = r->step;
    return DAPT_OK;
}

/* ---- continual domains --------------------------------------------------------- */

#define MAX_DOMAINS 32
#define MAX_SOURCES (2 * MAX_DOMAINS + 1)

typedef struct domain_reps {
    char name[128];
    int64_t step, first, rows, total;
    float *z1, *z3;
    int64_t *docs;
} domain_reps;

/* What the methods carry from one domain to the next (docs/training.md). */
typedef struct continual {
    const dapt_config *base;
    const dapt_train_opts *opts;
    int listed;      /* [das] domains given: OUT/<domain>/ per domain */
    int importance;  /* dga, das */
    int das;         /* das: heads + FFN units, continual; dga: heads, from the base each domain */
    size_t n;
    char names[MAX_DOMAINS][128];
    char corpora[MAX_DOMAINS][DAPT_CONFIG_STR_MAX];
    char out[DAPT_CONFIG_STR_MAX];
    dapt_importance_source src[MAX_SOURCES];
    size_t nsrc;
    dapt_importance_mask_entry masks[MAX_DOMAINS];
    float *mask_arr[MAX_DOMAINS][DAPT_UNIT_KINDS];
    size_t nmask;
    float *fisher, *anchor; /* ewc */
    dapt_model teacher;     /* kd */
    int have_teacher;
    domain_reps reps[MAX_DOMAINS];
    size_t nrep;
} continual;

/* Copies at most len - 1 bytes and terminates (names are checked short). */
static void set_str(char *dst, size_t len, const char *src)
{
    size_t n = strlen(src);
    if (n >= len) n = len - 1;
    memmove(dst, src, n);
    dst[n] = 0;
}

static void out_path(const continual *c, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", c->out, name);
}

static void domain_path(const continual *c, size_t t, const char *name, char *buf, size_t len)
{
    if (c->listed) snprintf(buf, len, "%s/%s/%s", c->out, c->names[t], name);
    else snprintf(buf, len, "%s/%s", c->out, name);
}

static dapt_status parse_domains(continual *c, const dapt_config *cfg)
{
    snprintf(c->out, sizeof c->out, "%s", cfg->run.output_dir);
    const char *m = cfg->train.method;
    c->importance = !strcmp(m, "dga") || !strcmp(m, "das");
    c->das = !strcmp(m, "das");
    if (!cfg->das.domains[0]) {
        if (cfg->das.corpora[0])
            return DAPT_ERROR(DAPT_ERR_CONFIG, "das.corpora is given but das.domains is empty: name one domain per corpus");
        if (!cfg->data.corpus[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "data.corpus: dapt train needs a prepared corpus file");
        /* One domain on data.corpus, named after the file. */
        const char *slash = strrchr(cfg->data.corpus, '/'), *base = slash ? slash + 1 : cfg->data.corpus;
        set_str(c->names[0], sizeof c->names[0], base);
        char *dot = strrchr(c->names[0], '.');
        if (dot && dot != c->names[0]) *dot = 0;
        /* "general" names the general-proxy source: keep the domain's apart. */
        if (!strncmp(c->names[0], "general", 7)) {
            char tmp[sizeof c->names[0]];
            memcpy(tmp, c->names[0], sizeof tmp);
            snprintf(c->names[0], sizeof c->names[0], "corpus_%.100s", tmp);
        }
        set_str(c->corpora[0], sizeof c->corpora[0], cfg->data.corpus);
        c->n = 1;
        return DAPT_OK;
    }
    char buf1[DAPT_CONFIG_STR_MAX], buf2[DAPT_CONFIG_STR_MAX], *names[MAX_DOMAINS], *corp[MAX_DOMAINS];
    size_t nn = 0, nc = 0;
    DAPT_CHECK(dapt_config_split_list(cfg->das.domains, buf1, sizeof buf1, names, MAX_DOMAINS, &nn));
    DAPT_CHECK(dapt_config_split_list(cfg->das.corpora, buf2, sizeof buf2, corp, MAX_DOMAINS, &nc));
    if (nn != nc)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "das.domains names %zu domain%s but das.corpora lists %zu corpus file%s: give one prepared corpus per domain",
                          nn, nn == 1 ? "" : "s", nc, nc == 1 ? "" : "s");
    for (size_t t = 0; t < nn; t++) {
        if (!names[t][0] || strchr(names[t], '/') || !strcmp(names[t], ".") || !strcmp(names[t], "..") ||
            !strcmp(names[t], "general") || !strncmp(names[t], "general_", 8) || !strcmp(names[t], "checkpoints"))
            return DAPT_ERROR(DAPT_ERR_CONFIG, "das.domains: '%s' cannot name a domain (it becomes a directory and an importance source)", names[t]);
        for (size_t u = 0; u < t; u++)
            if (!strcmp(names[t], names[u])) return DAPT_ERROR(DAPT_ERR_CONFIG, "das.domains: '%s' appears twice", names[t]);
        set_str(c->names[t], sizeof c->names[t], names[t]);
        set_str(c->corpora[t], sizeof c->corpora[t], corp[t]);
    }
    if (cfg->parallel.tensor > 1)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "das.domains: continual domains write whole models between domains and need parallel.tensor = 1 (it is %lld)",
                          (long long)cfg->parallel.tensor);
    if (cfg->data.corpus[0]) dapt_warn("data.corpus (%s) is not used: das.domains trains on das.corpora", cfg->data.corpus);
    c->n = nn;
    c->listed = 1;
    return DAPT_OK;
}

static void continual_free(continual *c)
{
    for (size_t i = 0; i < c->nsrc; i++) dapt_importance_source_free(&c->src[i]);
    for (size_t i = 0; i < c->nmask; i++)
        for (int k = 0; k < DAPT_UNIT_KINDS; k++) free(c->mask_arr[i][k]);
    for (size_t i = 0; i < c->nrep; i++) {
        free(c->reps[i].z1);
        free(c->reps[i].z3);
        free(c->reps[i].docs);
    }
    free(c->fisher);
    free(c->anchor);
    if (c->have_teacher) dapt_model_free(&c->teacher);
}

static dapt_importance_source *find_source(continual *c, const char *name)
{
    for (size_t i = 0; i < c->nsrc; i++)
        if (!strcmp(c->src[i].name, name)) return &c->src[i];
    return NULL;
}

/* Tensor rank 0's data communicator writes shared files (every tensor rank
 * holds the same numbers); all ranks agree on the outcome. */
static int tensor_writer(const run *r) { return !r->have_grid || r->grid.tensor_rank == 0; }

static dapt_status write_importance(continual *c, run *r)
{
    char path[DAPT_CONFIG_STR_MAX + 32];
    out_path(c, "importance.h5", path, sizeof path);
    dapt_status st = DAPT_OK;
    if (tensor_writer(r)) st = dapt_importance_write(r->comm, path, c->base, c->src, c->nsrc, c->masks, c->nmask);
    return agree(r, st);
}

/* Importance of source `name`: already held, else (on --resume) read from
 * OUT/importance.h5, else computed with r's current model: MLM on
 * data.general_corpus (general sources, when given) or on r's corpus, KL
 * on r's corpus otherwise. */
static dapt_status ensure_source(continual *c, run *r, const char *name, int general)
{
    if (find_source(c, name)) return DAPT_OK;
    if (c->nsrc == MAX_SOURCES) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "too many importance sources");
    dapt_importance_source *s = &c->src[c->nsrc];
    char path[DAPT_CONFIG_STR_MAX + 32];
    out_path(c, "importance.h5", path, sizeof path);
    if (c->opts->resume) {
        int found = 0;
        DAPT_CHECK(dapt_importance_read_source(r->comm, path, name, &r->model.config, s, &found));
        if (found) {
            c->nsrc++;
            dapt_info("importance %s: read from %s (%.0f tokens)", name, path, s->tokens);
            return DAPT_OK;
        }
    }
    const dapt_config *cfg = c->base;
    if (general && cfg->das.general_importance[0]) {
        /* A precomputed general importance (dapt importance, or chosen values). */
        const char *file = cfg->das.general_importance;
        char use[128] = "general";
        int found = 0;
        DAPT_CHECK(dapt_importance_read_source(r->comm, file, use, &r->model.config, s, &found));
        if (!found) {
            if (!dapt_fs_exists(file)) return DAPT_ERROR(DAPT_ERR_IO, "das.general_importance: %s does not exist", file);
            DAPT_CHECK(dapt_importance_only_source(r->comm, file, use, sizeof use));
            DAPT_CHECK(dapt_importance_read_source(r->comm, file, use, &r->model.config, s, &found));
        }
        set_str(s->name, sizeof s->name, name);
        c->nsrc++;
        dapt_info("importance %s: source %s of %s", name, use, file);
        return DAPT_OK;
    }
    dapt_importance_mode mode = strcmp(cfg->das.accumulation, "signed") ? DAPT_IMPORTANCE_ABSOLUTE : DAPT_IMPORTANCE_SIGNED;
    const int use_general = general && cfg->data.general_corpus[0];
    dapt_corpus_importance_opts o = {general && !use_general ? DAPT_PROXY_KL : DAPT_PROXY_MLM,
                                     cfg->das.importance_samples, r->B,
                                     (uint64_t)cfg->run.seed, cfg->das.proxy_temperature, r->L,
                                     (int)cfg->model.recompute};
    dapt_sequences *gen = NULL;
    dapt_importance imp;
    DAPT_CHECK(dapt_importance_create(&r->model.config, mode, &imp));
    dapt_status st = DAPT_OK;
    if (use_general) DAPT_TRY(dapt_sequences_open(cfg->data.general_corpus, &r->ss, &gen));
    double t0 = dapt_now();
    DAPT_TRY(dapt_importance_from_corpus(&r->model, gen ? gen : r->seqs, &r->mlm, &o, &imp, r->comm));
    double dt = dapt_now() - t0;
    DAPT_TRY(dapt_importance_source_make(&imp, name, o.proxy, s));
    c->nsrc++;
    dapt_info("importance %s: %s proxy on %s, %lld batches, %.0f tokens in %.1f s (%.0f tokens/s)", name,
              o.proxy == DAPT_PROXY_KL ? "KL" : "MLM", use_general ? cfg->data.general_corpus : r->cfg->data.corpus,
              (long long)imp.batches, imp.tokens, dt, dt > 0 ? imp.tokens / dt : 0.0);
cleanup:
    dapt_sequences_close(gen);
    dapt_importance_free(&imp);
    return st;
}

static const char *general_name(const continual *c, size_t t, char *buf, size_t len)
{
    if (c->das || !c->listed) snprintf(buf, len, "general");
    else snprintf(buf, len, "general_%s", c->names[t]);
    return buf;
}

/* The soft-mask of domain t: max over [general, domains 0..t-1] (das) or
 * the general source (dga).  Records it for importance.h5. */
static dapt_status domain_mask(continual *c, size_t t, run *r)
{
    char gname[160];
    general_name(c, t, gname, sizeof gname);
    const dapt_importance_source *use[MAX_SOURCES];
    size_t nuse = 0;
    dapt_importance_mask_entry *e = &c->masks[c->nmask];
    memset(e, 0, sizeof *e);
    set_str(e->name, sizeof e->name, c->names[t]);
    const dapt_importance_source *g = find_source(c, gname);
    if (!g) return DAPT_ERROR(DAPT_ERR_INTERNAL, "importance source %s missing", gname);
    use[nuse++] = g;
    size_t at = (size_t)snprintf(e->sources, sizeof e->sources, "%s", gname);
    for (size_t u = 0; c->das && u < t; u++) {
        const dapt_importance_source *d = find_source(c, c->names[u]);
        if (!d) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s/importance.h5 has no importance of domain %s: run again with --force",
                                  c->out, c->names[u]);
        use[nuse++] = d;
        if (at < sizeof e->sources) at += (size_t)snprintf(e->sources + at, sizeof e->sources - at, ",%s", c->names[u]);
    }
    dapt_importance_source tmp[MAX_SOURCES];
    for (size_t i = 0; i < nuse; i++) tmp[i] = *use[i];
    DAPT_CHECK(dapt_importance_combine_sources(tmp, nuse, g->layers, g->units, c->mask_arr[c->nmask]));
    for (int k = 0; k < DAPT_UNIT_KINDS; k++) {
        e->norm[k] = c->das || k == DAPT_UNIT_HEAD ? c->mask_arr[c->nmask][k] : NULL;
        r->dom.importance[k] = e->norm[k];
    }
    c->nmask++;
    return DAPT_OK;
}

static dapt_status write_representations(continual *c, run *r)
{
    char path[DAPT_CONFIG_STR_MAX + 32], obj[256];
    out_path(c, "representations.h5", path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(r->comm, path, 1, c->base, &f));
    dapt_status st = DAPT_OK;
    const int64_t H = r->model.config.hidden;
    for (size_t i = 0; i < c->nrep; i++) {
        const domain_reps *d = &c->reps[i];
        const int64_t dims[2] = {d->total, H}, start[2] = {d->first, 0}, count[2] = {d->rows, H};
        snprintf(obj, sizeof obj, "/%s/z1", d->name);
        DAPT_TRY(dapt_h5_write(&f, obj, DAPT_H5_F32, 2, dims, start, count, d->z1));
        snprintf(obj, sizeof obj, "/%s/z3", d->name);
        DAPT_TRY(dapt_h5_write(&f, obj, DAPT_H5_F32, 2, dims, start, count, d->z3));
        snprintf(obj, sizeof obj, "/%s/doc_ids", d->name);
        DAPT_TRY(dapt_h5_write(&f, obj, DAPT_H5_I64, 1, dims, start, count, d->docs));
        snprintf(obj, sizeof obj, "/%s", d->name);
        DAPT_TRY(dapt_h5_attr_set_int64(&f, obj, "step", d->step));
        DAPT_TRY(dapt_h5_attr_set_string(&f, obj, "split", "held-out"));
        DAPT_TRY(dapt_h5_attr_set_int64(&f, obj, "first_sequence", 0));
    }
    return dapt_h5_commit(&f);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

/* z1 / z3 of the first das.representation_samples held-out sequences. */
static dapt_status domain_representations(continual *c, size_t t, run *r)
{
    int64_t n = c->base->das.representation_samples, have = dapt_sequences_count(r->seqs, DAPT_SPLIT_EVAL);
    if (n > have) n = have;
    if (n == 0) {
        dapt_warn("domain %s: no held-out sequences, so no representations are written", c->names[t]);
        return DAPT_OK;
    }
    domain_reps *d = &c->reps[c->nrep];
    memset(d, 0, sizeof *d);
    set_str(d->name, sizeof d->name, c->names[t]);
    dapt_corpus_batches cb;
    DAPT_CHECK(dapt_corpus_batches_init(&cb, r->seqs, &r->mlm, DAPT_SPLIT_EVAL, (uint64_t)c->base->run.seed, r->L, n, n,
                                        r->rank, r->size));
    dapt_unit_masks um = {r->dom.importance[DAPT_UNIT_HEAD], r->dom.importance[DAPT_UNIT_INTERMEDIATE],
                          r->dom.importance[DAPT_UNIT_OUTPUT]};
    dapt_status st = dapt_representations(&r->model, &cb, &um, &d->z1, &d->z3, &d->docs, &d->first, &d->rows);
    dapt_corpus_batches_free(&cb);
    DAPT_CHECK(st);
    d->total = n;
    d->step = r->step;
    c->nrep++;
    return agree(r, tensor_writer(r) ? write_representations(c, r) : DAPT_OK);
}

/* Reads back a finished domain's representations (resume). */
static dapt_status read_representations(continual *c, size_t t, run *r)
{
    char path[DAPT_CONFIG_STR_MAX + 32], obj[256];
    out_path(c, "representations.h5", path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(r->comm, path, &f));
    dapt_status st = DAPT_OK;
    domain_reps *d = &c->reps[c->nrep];
    memset(d, 0, sizeof *d);
    set_str(d->name, sizeof d->name, c->names[t]);
    snprintf(obj, sizeof obj, "/%s/z1", d->name);
    if (!dapt_h5_exists(&f, obj)) goto cleanup; /* no held-out data in that domain */
    int nd;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_h5_type ty;
    DAPT_TRY(dapt_h5_info(&f, obj, &nd, dims, &ty));
    const int64_t H = r->model.config.hidden;
    if (nd != 2 || dims[1] != H) DAPT_THROW(DAPT_ERR_FORMAT, "%s: %s is not [n, %lld]", path, obj, (long long)H);
    d->total = dims[0];
    dapt_share(d->total, r->rank, r->size, &d->first, &d->rows);
    DAPT_TRY(dapt_alloc((void **)&d->z1, sizeof(float) * (size_t)((d->rows + 1) * H), "representations"));
    DAPT_TRY(dapt_alloc((void **)&d->z3, sizeof(float) * (size_t)((d->rows + 1) * H), "representations"));
    DAPT_TRY(dapt_alloc((void **)&d->docs, sizeof(int64_t) * (size_t)(d->rows + 1), "document ids"));
    const int64_t start[2] = {d->first, 0}, count[2] = {d->rows, H};
    DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_F32, 2, start, count, d->z1));
    snprintf(obj, sizeof obj, "/%s/z3", d->name);
    DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_F32, 2, start, count, d->z3));
    snprintf(obj, sizeof obj, "/%s/doc_ids", d->name);
    DAPT_TRY(dapt_h5_read(&f, obj, DAPT_H5_I64, 1, start, count, d->docs));
    snprintf(obj, sizeof obj, "/%s", d->name);
    DAPT_TRY(dapt_h5_attr_get_int64(&f, obj, "step", &d->step));
    c->nrep++;
cleanup:
    if (st != DAPT_OK) {
        free(d->z1);
        free(d->z3);
        free(d->docs);
    }
    dapt_h5_close(&f);
    return st;
}

static dapt_status save_fisher(continual *c, size_t t, run *r)
{
    char path[DAPT_CONFIG_STR_MAX + 160];
    domain_path(c, t, "fisher.h5", path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(r->comm, path, 1, c->base, &f));
    const int64_t dims[1] = {(int64_t)r->model.table.total};
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_h5_write_all(&f, "fisher", DAPT_H5_F32, 1, dims, c->fisher));
    DAPT_TRY(dapt_h5_write_all(&f, "anchor", DAPT_H5_F32, 1, dims, c->anchor));
    return dapt_h5_commit(&f);
cleanup:
    dapt_h5_abort(&f);
    return st;
}

static dapt_status load_fisher(continual *c, size_t t, run *r)
{
    char path[DAPT_CONFIG_STR_MAX + 160];
    domain_path(c, t, "fisher.h5", path, sizeof path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(r->comm, path, &f));
    free(c->fisher);
    free(c->anchor);
    c->fisher = c->anchor = NULL;
    int nd;
    int64_t dims[DAPT_H5_MAX_DIMS];
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_h5_read_all(&f, "fisher", DAPT_H5_F32, (void **)&c->fisher, &nd, dims));
    if (nd != 1 || dims[0] != (int64_t)r->model.table.total)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: fisher has %lld values, the model %zu", path, (long long)dims[0], r->model.table.total);
    DAPT_TRY(dapt_h5_read_all(&f, "anchor", DAPT_H5_F32, (void **)&c->anchor, &nd, dims));
    if (nd != 1 || dims[0] != (int64_t)r->model.table.total)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: anchor has %lld values, the model %zu", path, (long long)dims[0], r->model.table.total);
cleanup:
    dapt_h5_close(&f);
    return st;
}

/* Before domain t trains (r set up with the domain's starting model). */
static dapt_status before_domain(continual *c, size_t t, run *r)
{
    const char *m = c->base->train.method;
    r->dom.index = (int64_t)t;
    r->dom.count = (int64_t)c->n;
    r->dom.name = c->names[t];
    if (c->importance) {
        char gname[160];
        DAPT_CHECK(ensure_source(c, r, general_name(c, t, gname, sizeof gname), 1));
        DAPT_CHECK(domain_mask(c, t, r));
        DAPT_CHECK(write_importance(c, r));
    } else if (!strcmp(m, "kd")) {
        /* The teacher is the model this domain starts from: the previous
         * domain's (the base model at domain 0), frozen. */
        if (c->have_teacher) dapt_model_free(&c->teacher);
        c->have_teacher = 0;
        DAPT_CHECK(dapt_model_create(&r->model.config, &c->teacher));
        c->have_teacher = 1;
        memcpy(c->teacher.params, r->model.params, sizeof(float) * r->model.table.total);
        r->dom.teacher = &c->teacher;
    } else if (!strcmp(m, "ewc")) {
        r->dom.fisher = c->fisher;
        r->dom.anchor = c->anchor;
    }
    return DAPT_OK;
}

/* After domain t trained: what later domains need, then OUT/<domain>/model.h5
 * last (it marks the domain finished for --resume). */
static dapt_status after_domain(continual *c, size_t t, run *r)
{
    const char *m = c->base->train.method;
    if (c->das) {
        DAPT_CHECK(ensure_source(c, r, c->names[t], 0));
        DAPT_CHECK(write_importance(c, r));
    }
    if (c->importance) DAPT_CHECK(domain_representations(c, t, r));
    if (!strcmp(m, "ewc")) {
        const size_t total = r->model.table.total;
        if (!c->fisher) DAPT_CHECK(dapt_calloc((void **)&c->fisher, total, sizeof(float), "Fisher diagonal"));
        if (!c->anchor) DAPT_CHECK(dapt_alloc((void **)&c->anchor, total * sizeof(float), "EWC anchor"));
        dapt_corpus_batches cb;
        DAPT_CHECK(dapt_corpus_batches_init(&cb, r->seqs, &r->mlm, DAPT_SPLIT_TRAIN, (uint64_t)c->base->run.seed, r->L,
                                            r->B, c->base->das.ewc_samples, r->rank, r->size));
        dapt_status st = dapt_fisher_from_corpus(&r->model, &cb, (uint64_t)c->base->run.seed, (int)c->base->model.recompute,
                                                 c->fisher, r->comm);
        dapt_corpus_batches_free(&cb);
        DAPT_CHECK(st);
        memcpy(c->anchor, r->model.params, total * sizeof(float));
        DAPT_CHECK(save_fisher(c, t, r));
    }
    if (c->listed) {
        char path[DAPT_CONFIG_STR_MAX + 160];
        domain_path(c, t, "model.h5", path, sizeof path);
        DAPT_CHECK(dapt_modelfile_save(r->comm, path, 1, r->cfg, &r->model.config, &r->model.table, r->model.params,
                                       &r->meta));
        if (t + 1 == c->n) {
            out_path(c, "model.h5", path, sizeof path);
            DAPT_CHECK(dapt_modelfile_save(r->comm, path, 1, r->cfg, &r->model.config, &r->model.table, r->model.params,
                                           &r->meta));
        }
        dapt_info("domain %s finished: %s", c->names[t], path);
    }
    return DAPT_OK;
}

/* A domain finished in an earlier run (--resume): take back what later
 * domains need. */
static dapt_status skip_domain(continual *c, size_t t, run *r)
{
    dapt_info("domain %s: finished in an earlier run, skipped", c->names[t]);
    r->dom.index = (int64_t)t;
    if (c->importance) {
        char gname[160];
        general_name(c, t, gname, sizeof gname);
        DAPT_CHECK(ensure_source(c, r, gname, 1));
        if (c->das) {
            int found = 0;
            char path[DAPT_CONFIG_STR_MAX + 32];
            out_path(c, "importance.h5", path, sizeof path);
            DAPT_CHECK(dapt_importance_read_source(r->comm, path, c->names[t], &r->model.config, &c->src[c->nsrc], &found));
            if (!found) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s has no importance of finished domain %s: run again with --force", path, c->names[t]);
            c->nsrc++;
        }
        DAPT_CHECK(domain_mask(c, t, r));
        DAPT_CHECK(read_representations(c, t, r));
    }
    if (!strcmp(c->base->train.method, "ewc")) DAPT_CHECK(load_fisher(c, t, r));
    return DAPT_OK;
}

static dapt_status new_run(run **out, const dapt_config *cfg)
{
    run *r = NULL;
    DAPT_CHECK(dapt_calloc((void **)&r, 1, sizeof *r, "training state"));
    r->cfg = cfg;
    r->comm = MPI_COMM_WORLD;
    r->order.epoch = -1;
    r->last_ckpt_step = -1;
    *out = r;
    return DAPT_OK;
}

/* Removes what marks domains finished and the shared outputs (--force). */
static void forget_previous(const continual *c)
{
    char path[DAPT_CONFIG_STR_MAX + 160];
    for (size_t t = 0; t < c->n && c->listed; t++) {
        domain_path(c, t, "model.h5", path, sizeof path);
        unlink(path);
        domain_path(c, t, "fisher.h5", path, sizeof path);
        unlink(path);
    }
    const char *const shared[] = {"model.h5", "importance.h5", "representations.h5", "fisher.h5"};
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        if (!c->listed && !strcmp(shared[i], "model.h5")) continue;
        out_path(c, shared[i], path, sizeof path);
        unlink(path);
    }
}

static dapt_status train_domains(continual *c, const dapt_train_opts *opts, dapt_train_result *res)
{
    const dapt_config *base = c->base;
    dapt_config *cfg = NULL;
    DAPT_CHECK(dapt_alloc((void **)&cfg, sizeof *cfg, "domain configuration"));
    dapt_status st = DAPT_OK;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (opts->force && !opts->resume && rank == 0) forget_previous(c);
    DAPT_TRY(DAPT_MPI(MPI_Barrier(MPI_COMM_WORLD)));
    const char *m = base->train.method;
    const int from_previous = !strcmp(m, "mlm") || !strcmp(m, "kd") || !strcmp(m, "ewc") || !strcmp(m, "das");
    for (size_t t = 0; t < c->n; t++) {
        *cfg = *base;
        snprintf(cfg->data.corpus, sizeof cfg->data.corpus, "%s", c->corpora[t]);
        if (c->listed) {
            char dir[sizeof cfg->run.output_dir + 160];
            snprintf(dir, sizeof dir, "%s/%s", c->out, c->names[t]);
            if (strlen(dir) >= sizeof cfg->run.output_dir) DAPT_THROW(DAPT_ERR_CONFIG, "run.output_dir: %s is too long", dir);
            memcpy(cfg->run.output_dir, dir, strlen(dir) + 1);
            if (t > 0 && from_previous) {
                char prev[sizeof cfg->model.path + 160];
                domain_path(c, t - 1, "model.h5", prev, sizeof prev);
                if (strlen(prev) >= sizeof cfg->model.path) DAPT_THROW(DAPT_ERR_CONFIG, "model path %s is too long", prev);
                memcpy(cfg->model.path, prev, strlen(prev) + 1);
            }
        }
        char done[DAPT_CONFIG_STR_MAX + 160];
        domain_path(c, t, "model.h5", done, sizeof done);
        int finished = c->listed && opts->resume && dapt_fs_exists(done);
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &finished, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD)));
        run *r = NULL;
        DAPT_TRY(new_run(&r, cfg));
        if (c->n > 1) dapt_info("domain %zu of %zu: %s (%s) from %s", t + 1, c->n, c->names[t], c->corpora[t],
                                cfg->model.path[0] ? cfg->model.path : "random initialisation");
        st = setup(r, opts);
        if (st == DAPT_OK && finished) {
            st = agree(r, skip_domain(c, t, r));
            if (st != DAPT_OK) res->agreed = 1;
        } else {
            st = agree(r, st == DAPT_OK ? prepare_output(r, opts) : st);
            if (st == DAPT_OK) st = agree(r, before_domain(c, t, r));
            if (st == DAPT_OK && r->obj->init) st = agree(r, r->obj->init(&r->obj_state, &r->ctx));
            if (st == DAPT_OK) {
                dapt_train_result one;
                memset(&one, 0, sizeof one);
                one.last_eval_loss = NAN;
                st = run_loop(r, opts, &one);
                res->steps_done = one.steps_done;
                res->bad_steps += one.bad_steps;
                res->last_loss = one.last_loss;
                res->last_eval_loss = one.last_eval_loss;
                res->agreed = one.agreed;
                if (st == DAPT_OK) {
                    st = agree(r, after_domain(c, t, r));
                    if (st != DAPT_OK) res->agreed = 1;
                }
            } else {
                res->agreed = 1;
            }
        }
        teardown(r);
        free(r);
        if (st != DAPT_OK) goto cleanup;
    }
cleanup:
    free(cfg);
    return st;
}

dapt_status dapt_train_run(const dapt_config *cfg, const dapt_train_opts *opts, dapt_train_result *res)
{
    memset(res, 0, sizeof *res);
    res->last_eval_loss = NAN;
    res->last_loss = NAN;
    stop_requested = 0;
    struct sigaction sa, old_term, old_usr1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);

    continual c;
    memset(&c, 0, sizeof c);
    c.base = cfg;
    c.opts = opts;
    dapt_status st = parse_domains(&c, cfg);
    if (st == DAPT_OK) st = train_domains(&c, opts, res);
    else res->agreed = 1;
    continual_free(&c);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    return st;
}
