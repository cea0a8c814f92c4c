/* dapt finetune: a classification head on a prepared task, data parallel
 * over MPI_COMM_WORLD (see dapt/task.h for the invariants). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dapt/batches.h"
#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/objective.h"
#include "dapt/optim.h"
#include "dapt/tokenizer.h"
#include "task_internal.h"

/* ---- the starting model ---------------------------------------------------- */

dapt_status dapt_task_load_classifier(MPI_Comm comm, const char *path, int64_t n_labels, uint64_t seed,
                                      const dapt_tensor_spec *aux, size_t naux, dapt_model *m, dapt_model_meta *meta)
{
    dapt_model_config fmc, mc;
    dapt_param_table ftable;
    float *fparams = NULL;
    memset(m, 0, sizeof *m);
    DAPT_CHECK(dapt_modelfile_load(comm, path, &fmc, &ftable, &fparams, meta));
    mc = fmc;
    mc.num_labels = n_labels;
    mc.has_mlm_head = 0;
    /* BERT classifies the pooled [CLS]; RoBERTa's head reads <s> itself. */
    mc.has_pooler = mc.arch == DAPT_ARCH_BERT;
    dapt_status st = dapt_model_create_aux(&mc, aux, naux, m);
    if (st == DAPT_OK) {
        dapt_model_init_random(m, seed);
        int fresh_pooler = 0;
        for (size_t i = 0; i < m->table.count && st == DAPT_OK; i++) {
            const dapt_tensor *t = &m->table.tensors[i];
            if (!strncmp(t->name, "cls.", 4)) continue; /* always a fresh head */
            if ((t->flags & DAPT_TENSOR_AUX) && !dapt_param_find(&ftable, t->name)) continue;
            const dapt_tensor *src = dapt_param_find(&ftable, t->name);
            if (!src && !strncmp(t->name, "pooler.", 7)) {
                fresh_pooler = 1;
                continue;
            }
            if (!src || src->numel != t->numel)
                st = DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: tensor %s missing or of another size", path, t->name);
            else
                memcpy(m->params + t->offset, fparams + src->offset, t->numel * sizeof(float));
        }
        if (fresh_pooler) dapt_warn("%s has no pooler: BERT's classifier reads one, so it starts from random weights", path);
    }
    dapt_param_table_free(&ftable);
    free(fparams);
    if (st != DAPT_OK) {
        dapt_model_free(m);
        dapt_model_meta_free(meta);
    }
    return st;
}

/* ---- the run ---------------------------------------------------------------- */

typedef struct ft {
    const dapt_config *cfg;
    MPI_Comm comm;
    int rank, size;
    dapt_task_file task;
    dapt_task_split train, dev;
    int have_dev;
    dapt_model model;
    int have_model;
    dapt_model_meta meta;
    float *m1, *m2;
    dapt_adamw adam;
    dapt_lr_schedule sched;
    dapt_order order;
    task_ws_cache cache;
    int64_t B, micro, max_len, steps_per_epoch, total_steps, step;
    int32_t *ids, *att, *types, *labels;
    float *values; /* regression targets of a batch */
    int64_t *idx;
    char out[DAPT_CONFIG_STR_MAX], model_path[DAPT_CONFIG_STR_MAX + 32], metrics_path[DAPT_CONFIG_STR_MAX + 32];
    FILE *metrics;
    dapt_objective obj;
    dapt_objective_ctx ctx;
    dapt_domain_info domain;
} ft;

/* The model's tokenizer must be the one the task was prepared with.  Rank 0. */
static dapt_status check_tokenizer(const ft *r)
{
    if (r->meta.ntokenizer == 0 || !r->task.tokenizer_checksum) return DAPT_OK;
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_model_tokenizer(&r->meta, r->cfg->model.path, &tok));
    dapt_status st = DAPT_OK;
    if (strcmp(dapt_tokenizer_checksum(tok), r->task.tokenizer_checksum))
        st = DAPT_ERROR(DAPT_ERR_CONFIG, "%s was prepared with another tokenizer than %s carries (checksum %.12s..., the model's %.12s...)",
                        r->task.path, r->cfg->model.path, r->task.tokenizer_checksum, dapt_tokenizer_checksum(tok));
    dapt_tokenizer_free(tok);
    return st;
}

/* Output directory; refuses a previous run's files without force.  Rank 0. */
static dapt_status prepare_output(ft *r, int force)
{
    DAPT_CHECK(dapt_fs_mkdir_p(r->out));
    if (!force && (dapt_fs_exists(r->model_path) || dapt_fs_exists(r->metrics_path)))
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s holds a previous fine-tuning run (model.h5 or finetune_metrics.csv): use --force to replace it",
                          r->out);
    r->metrics = fopen(r->metrics_path, "w");
    if (!r->metrics) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open for writing: %s", r->metrics_path, strerror(errno));
    task_metrics_csv_header(r->metrics, r->task.regression);
    fflush(r->metrics);
    return DAPT_OK;
}

/* The architecture in a model file (for the objective's auxiliary tensors). */
static dapt_status peek_config(MPI_Comm comm, const char *path, dapt_model_config *mc)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    dapt_status st = dapt_modelfile_get_config(&f, mc, NULL);
    dapt_h5_close(&f);
    return st;
}

/* What the objective sees of the run: one "domain", the task. */
static void fill_ctx(ft *r)
{
    r->domain = (dapt_domain_info){0, 1, r->task.path, r->out, r->out, 0, 0};
    dapt_objective_ctx *c = &r->ctx;
    c->cfg = r->cfg;
    c->data_comm = r->comm;
    c->data_rank = r->rank;
    c->data_size = r->size;
    c->writer = 1;
    c->model = &r->model;
    c->seed = (uint64_t)r->cfg->run.seed;
    c->micro_max = r->micro;
    c->domain = &r->domain;
}

static dapt_status setup(ft *r, const dapt_finetune_opts *opts)
{
    const dapt_config *cfg = r->cfg;
    const dapt_objective_ops *ops = dapt_objective_find(cfg->finetune.objective, DAPT_OBJ_FINETUNE);
    if (!ops) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "finetune.objective = %s is not implemented", cfg->finetune.objective);
    DAPT_CHECK(dapt_objective_create(ops, cfg, &r->obj));
    if (cfg->parallel.tensor != 1)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "parallel.tensor = %lld: dapt finetune is data parallel only (use 1)",
                          (long long)cfg->parallel.tensor);
    if (!cfg->finetune.task[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "finetune.task: dapt finetune needs a prepared task file (--task)");
    if (!cfg->model.path[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "model.path: dapt finetune needs a model file to start from (--model)");
    snprintf(r->out, sizeof r->out, "%s", cfg->run.output_dir);
    snprintf(r->model_path, sizeof r->model_path, "%s/model.h5", r->out);
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/finetune_metrics.csv", r->out);

    DAPT_CHECK(dapt_status_agree(r->comm, dapt_task_file_open(cfg->finetune.task, &r->task)));
    DAPT_CHECK(dapt_status_agree(r->comm, dapt_task_split_read(&r->task, cfg->finetune.train_split, &r->train)));
    r->have_dev = cfg->finetune.dev_split[0] != '\0';
    if (r->have_dev) DAPT_CHECK(dapt_status_agree(r->comm, dapt_task_split_read(&r->task, cfg->finetune.dev_split, &r->dev)));
    DAPT_CHECK(dapt_task_check_finetune(&r->task, cfg->finetune.metric));

    dapt_tensor_spec aux[DAPT_OBJ_MAX_AUX];
    size_t naux = 0;
    if (ops->aux_tensors) {
        dapt_model_config fmc;
        DAPT_CHECK(peek_config(r->comm, cfg->model.path, &fmc));
        fmc.num_labels = r->task.n_labels;
        DAPT_CHECK(ops->aux_tensors(cfg, &fmc, aux, &naux));
    }
    DAPT_CHECK(dapt_task_load_classifier(r->comm, cfg->model.path, r->task.n_labels, (uint64_t)cfg->run.seed, aux, naux,
                                         &r->model, &r->meta));
    r->have_model = 1;
    const dapt_model_config *mc = &r->model.config;
    if (r->task.vocab_size > mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s was prepared with a vocabulary of %lld ids, but %s has %lld: wrong tokenizer or model",
                          r->task.path, (long long)r->task.vocab_size, cfg->model.path, (long long)mc->vocab_size);
    if (r->train.type_ids && mc->type_vocab_size < 2 && mc->arch == DAPT_ARCH_BERT)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s holds text pairs but %s has %lld token type", r->task.path, cfg->model.path,
                          (long long)mc->type_vocab_size);
    DAPT_CHECK(dapt_status_agree(r->comm, r->rank == 0 ? check_tokenizer(r) : DAPT_OK));

    /* Labels and the Hugging Face class of the output. */
    DAPT_CHECK(dapt_calloc((void **)&r->meta.labels, (size_t)r->task.n_labels + 1, sizeof(char *), "class labels"));
    for (int64_t k = 0; k < r->task.n_labels; k++)
        if (!(r->meta.labels[k] = strdup(r->task.label_names[k])))
            return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for class labels");
    snprintf(r->meta.hf_architecture, sizeof r->meta.hf_architecture, "%s",
             mc->arch == DAPT_ARCH_ROBERTA ? "RobertaForSequenceClassification" : "BertForSequenceClassification");

    r->max_len = cfg->finetune.max_length < dapt_model_max_input(mc) ? cfg->finetune.max_length : dapt_model_max_input(mc);
    r->B = cfg->finetune.batch_size;
    if (r->B < r->size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "finetune.batch_size = %lld is smaller than the %d ranks", (long long)r->B, r->size);
    const int64_t share = (r->B + r->size - 1) / r->size;
    r->micro = cfg->finetune.micro_batch > 0 && cfg->finetune.micro_batch < share ? cfg->finetune.micro_batch : share;
    r->steps_per_epoch = (r->train.n + r->B - 1) / r->B;
    r->total_steps = r->steps_per_epoch * cfg->finetune.epochs;

    r->adam.beta1 = cfg->train.adam_beta1;
    r->adam.beta2 = cfg->train.adam_beta2;
    r->adam.eps = cfg->finetune.adam_eps;
    r->adam.weight_decay = cfg->finetune.weight_decay;
    r->adam.step = 0;
    DAPT_CHECK(dapt_adamw_validate(&r->adam));
    r->sched.kind = strcmp(cfg->finetune.schedule, "constant") ? DAPT_SCHEDULE_LINEAR : DAPT_SCHEDULE_CONSTANT;
    r->sched.base_lr = cfg->finetune.lr;
    r->sched.total_steps = r->total_steps;
    r->sched.warmup_steps = cfg->finetune.warmup_steps > 0 ? cfg->finetune.warmup_steps
                                                             : (int64_t)ceil(cfg->finetune.warmup_ratio * (double)r->total_steps);
    DAPT_CHECK(dapt_order_init(&r->order, (uint64_t)cfg->run.seed, r->train.n));

    const size_t total = r->model.table.total, cells = (size_t)(r->micro * r->max_len);
    DAPT_CHECK(dapt_calloc((void **)&r->m1, total, sizeof(float), "AdamW first moment"));
    DAPT_CHECK(dapt_calloc((void **)&r->m2, total, sizeof(float), "AdamW second moment"));
    DAPT_CHECK(dapt_alloc((void **)&r->ids, cells * sizeof(int32_t), "batch ids"));
    DAPT_CHECK(dapt_alloc((void **)&r->att, cells * sizeof(int32_t), "batch attention"));
    if (r->train.type_ids) DAPT_CHECK(dapt_alloc((void **)&r->types, cells * sizeof(int32_t), "batch type ids"));
    DAPT_CHECK(dapt_alloc((void **)&r->labels, (size_t)r->B * sizeof(int32_t), "batch labels"));
    DAPT_CHECK(dapt_alloc((void **)&r->values, (size_t)r->B * sizeof(float), "batch targets"));
    DAPT_CHECK(dapt_alloc((void **)&r->idx, (size_t)r->B * sizeof(int64_t), "batch rows"));
    task_ws_cache_init(&r->cache, &r->model, r->micro, 1);
    DAPT_CHECK(dapt_status_agree(r->comm, r->rank == 0 ? prepare_output(r, opts->force) : DAPT_OK));
    fill_ctx(r);
    return dapt_status_agree(r->comm, dapt_objective_begin_domain(&r->obj, &r->ctx));
}

static void teardown(ft *r)
{
    if (r->obj.ops) dapt_objective_release(&r->obj);
    dapt_objective_destroy(&r->obj);
    if (r->metrics) fclose(r->metrics);
    task_ws_cache_free(&r->cache);
    if (r->have_model) dapt_model_free(&r->model);
    dapt_model_meta_free(&r->meta);
    dapt_task_split_free(&r->train);
    dapt_task_split_free(&r->dev);
    dapt_task_file_free(&r->task);
    dapt_order_free(&r->order);
    free(r->m1);
    free(r->m2);
    free(r->ids);
    free(r->att);
    free(r->types);
    free(r->labels);
    free(r->values);
    free(r->idx);
}

/* One optimizer step on global batch k of epoch e; *loss is the mean
 * cross-entropy over the global batch. */
static dapt_status train_step(ft *r, int64_t e, int64_t k, double *loss, double *lr)
{
    const int64_t n = r->train.n, first = k * r->B;
    const int64_t nb = n - first < r->B ? n - first : r->B; /* the last batch of an epoch may be short */
    const uint64_t g0 = (uint64_t)(e * n + first);          /* global sample index of the batch's row 0 */
    /* Every rank sees the whole batch, so the padded length is the same for
     * any number of ranks. */
    int64_t longest = 1;
    for (int64_t i = 0; i < nb; i++) {
        r->idx[i] = dapt_order_at(&r->order, g0 + (uint64_t)i, NULL);
        int64_t len = task_example_len(&r->train, r->idx[i], r->max_len);
        if (len > longest) longest = len;
    }
    const int64_t L = task_padded_len(longest, r->max_len);
    int64_t lb, lc;
    dapt_share(nb, r->rank, r->size, &lb, &lc);
    dapt_model_zero_grads(&r->model);
    r->ctx.step = r->step;
    r->ctx.lr = dapt_lr_at(&r->sched, r->step);
    r->ctx.global_rows = nb; /* global denominators: the same loss for any layout */
    double local = 0.0;
    dapt_status st = DAPT_OK;
    for (int64_t off = 0; off < lc && st == DAPT_OK; off += r->micro) {
        const int64_t mb = lc - off < r->micro ? lc - off : r->micro;
        task_fill_batch(&r->train, r->idx + lb + off, mb, L, (int32_t)r->model.config.pad_token_id, r->ids, r->att,
                        r->types, r->labels, r->values);
        dapt_micro_batch m;
        memset(&m, 0, sizeof m);
        DAPT_CHECK(task_ws_get(&r->cache, L, &m.ws));
        m.batch = (dapt_batch){mb, L, r->ids, r->att, r->types, NULL, r->labels, g0 + (uint64_t)(lb + off), NULL};
        task_batch_labels(&m.batch, &r->train, r->labels, r->values);
        m.clean_ids = r->ids;
        st = dapt_objective_micro_step(&r->obj, &r->ctx, &m, &local);
    }
    if (st == DAPT_ERR_NUMERIC) local = NAN;
    else DAPT_CHECK(st);
    st = dapt_objective_step_end(&r->obj, &r->ctx, NULL, 0, &local);
    if (st == DAPT_ERR_NUMERIC) local = NAN;
    else DAPT_CHECK(st);
    DAPT_CHECK(dapt_grad_allreduce(r->model.grads, r->model.table.total, r->cfg->parallel.bucket_mb, r->comm));
    double gl = 0.0;
    DAPT_CHECK(DAPT_MPI(MPI_Allreduce(&local, &gl, 1, MPI_DOUBLE, MPI_SUM, r->comm)));
    if (isfinite(gl)) DAPT_CHECK(dapt_objective_transform_grads(&r->obj, &r->ctx));
    double norm = 0.0;
    dapt_grad_clip(&r->model.table, r->model.grads, r->cfg->finetune.max_grad_norm, &norm);
    if (!isfinite(gl) || !isfinite(norm))
        return DAPT_ERROR(DAPT_ERR_NUMERIC, "finetune step %lld (epoch %lld): loss %g, gradient norm %g are not finite (lower finetune.lr?)",
                          (long long)r->step + 1, (long long)e + 1, gl, norm);
    *lr = r->ctx.lr;
    dapt_adamw_advance(&r->adam);
    DAPT_CHECK(dapt_adamw_update(&r->adam, *lr, &r->model.table, 0, r->model.table.total, r->model.params,
                                 r->model.grads, r->m1, r->m2));
    DAPT_CHECK(dapt_objective_after_update(&r->obj, &r->ctx));
    *loss = gl;
    r->step++;
    return DAPT_OK;
}

static dapt_status save_best(ft *r)
{
    return dapt_modelfile_save(r->comm, r->model_path, 1, r->cfg, &r->model.config, &r->model.table, r->model.params,
                               &r->meta);
}

static dapt_status run_epochs(ft *r, dapt_finetune_result *res)
{
    const dapt_config *cfg = r->cfg;
    dapt_info("finetune: %s (%lld labels) from %s, %d rank%s, %lld train / %lld %s examples, batch %lld, %lld steps per epoch, %lld epochs, max length %lld, %zu parameters",
              r->task.path, (long long)r->task.n_labels, cfg->model.path, r->size, r->size == 1 ? "" : "s",
              (long long)r->train.n, (long long)r->dev.n, r->have_dev ? cfg->finetune.dev_split : "dev",
              (long long)r->B, (long long)r->steps_per_epoch, (long long)cfg->finetune.epochs, (long long)r->max_len,
              r->model.table.total);
    res->best_metric = -INFINITY;
    res->best_epoch = -1;
    res->regression = r->task.regression;
    int64_t since_best = 0;
    const double t0 = dapt_now();
    dapt_progress prog;
    dapt_progress_start(&prog, "finetune", "steps", r->total_steps, 0.0);
    for (int64_t e = 0; e < cfg->finetune.epochs; e++) {
        double sum = 0.0, lr = 0.0;
        for (int64_t k = 0; k < r->steps_per_epoch; k++) {
            double loss = NAN;
            dapt_status st = train_step(r, e, k, &loss, &lr);
            if (st == DAPT_ERR_NUMERIC) res->agreed = 1; /* every rank saw the same sums */
            DAPT_CHECK(st);
            sum += loss;
            res->last_train_loss = loss;
            if (r->step % cfg->finetune.log_every == 0 || r->step == r->total_steps) {
                char extra[128];
                snprintf(extra, sizeof extra, "epoch %lld loss %.4f lr %.3g", (long long)e + 1, loss, lr);
                prog.interval = 0.0;
                dapt_progress_update(&prog, r->step, extra);
            }
        }
        res->epochs_done = e + 1;
        res->steps_done = r->step;
        const double train_loss = sum / (double)r->steps_per_epoch;
        double dev_loss = NAN, value = NAN;
        dapt_cls_metrics m;
        memset(&m, 0, sizeof m);
        int best = 0;
        if (r->have_dev) {
            DAPT_CHECK(dapt_task_evaluate(r->comm, &r->model, &r->dev, cfg->finetune.eval_batch_size, r->max_len, &m,
                                          &dev_loss, NULL, NULL));
            dapt_status st = dapt_cls_metrics_get(&m, cfg->finetune.metric, &value);
            if (st != DAPT_OK) {
                dapt_cls_metrics_free(&m);
                return st;
            }
            best = dapt_metric_improves(&m, cfg->finetune.metric, value, res->best_metric, res->best_epoch >= 0);
        } else {
            best = e + 1 == cfg->finetune.epochs; /* no dev split: keep the last */
        }
        if (best) {
            res->best_metric = value;
            res->best_epoch = e + 1;
            res->best_accuracy = m.accuracy;
            res->best_macro_f1 = m.macro_f1;
            since_best = 0;
            dapt_status st = save_best(r);
            if (st != DAPT_OK) {
                dapt_cls_metrics_free(&m);
                return st;
            }
        } else {
            since_best++;
        }
        if (r->metrics) {
            fprintf(r->metrics, "%lld,%lld,%.9g,%.9g", (long long)e + 1, (long long)r->step, train_loss, lr);
            task_metrics_csv_dev(r->metrics, r->task.regression, r->have_dev ? &m : NULL, dev_loss);
            fprintf(r->metrics, ",%d,%.1f\n", best, dapt_now() - t0);
            fflush(r->metrics);
        }
        if (r->have_dev && m.regression)
            dapt_info("epoch %lld: train loss %.4f, %s MSE %.4f Pearson %.4f Spearman %.4f%s", (long long)e + 1, train_loss,
                      cfg->finetune.dev_split, m.reg.mse, m.reg.pearson, m.reg.spearman, best ? " (best so far: saved)" : "");
        else if (r->have_dev)
            dapt_info("epoch %lld: train loss %.4f, %s loss %.4f accuracy %.4f macro-F1 %.4f%s", (long long)e + 1, train_loss,
                      cfg->finetune.dev_split, dev_loss, m.accuracy, m.macro_f1, best ? " (best so far: saved)" : "");
        else
            dapt_info("epoch %lld: train loss %.4f", (long long)e + 1, train_loss);
        dapt_cls_metrics_free(&m);
        if (r->have_dev && cfg->finetune.patience > 0 && since_best >= cfg->finetune.patience && e + 1 < cfg->finetune.epochs) {
            res->stopped_early = 1;
            dapt_info("early stop: %lld epochs without a better %s %s", (long long)since_best, cfg->finetune.dev_split,
                      cfg->finetune.metric);
            break;
        }
    }
    return DAPT_OK;
}

dapt_status dapt_finetune_run(const dapt_config *cfg, const dapt_finetune_opts *opts, dapt_finetune_result *res)
{
    memset(res, 0, sizeof *res);
    res->best_metric = NAN;
    res->last_train_loss = NAN;
    ft *r = NULL;
    DAPT_CHECK(dapt_calloc((void **)&r, 1, sizeof *r, "fine-tuning state"));
    r->cfg = cfg;
    r->comm = MPI_COMM_WORLD;
    r->order.epoch = -1;
    dapt_status st = DAPT_MPI(MPI_Comm_rank(r->comm, &r->rank));
    if (st == DAPT_OK) st = DAPT_MPI(MPI_Comm_size(r->comm, &r->size));
    if (st == DAPT_OK) st = dapt_status_agree(r->comm, setup(r, opts));
    if (st == DAPT_OK) st = run_epochs(r, res);
    else res->agreed = 1;
    if (st == DAPT_OK) st = dapt_status_agree(r->comm, dapt_objective_end_domain(&r->obj, &r->ctx));
    teardown(r);
    free(r);
    return st;
}
