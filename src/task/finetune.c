/* dapt finetune: a classification head on a prepared task through the
 * objective named by finetune.objective, on the process grid (data x
 * tensor parallel), with checkpoints, --resume and preemption (see
 * dapt/task.h for the invariants).  One step: finetune_step.c; checkpoints
 * and the metrics file: finetune_ckpt.c. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/preempt.h"
#include "dapt/tokenizer.h"
#include "finetune_internal.h"

/* ---- set-up -------------------------------------------------------------------- */

/* The model's tokenizer must be the one the task was prepared with.  Leader. */
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

/* The output directory: a previous run is refused unless --resume (go on)
 * or --force (start afresh).  Leader. */
static dapt_status prepare_output(ft *r, const dapt_finetune_opts *opts)
{
    DAPT_CHECK(dapt_fs_mkdir_p(r->ckpt_dir));
    if (opts->resume) return DAPT_OK;
    int64_t *steps = NULL;
    size_t n = 0;
    if (dapt_checkpoint_list(r->ckpt_dir, &steps, &n) != DAPT_OK) dapt_error_clear();
    free(steps);
    const int previous = dapt_fs_exists(r->model_path) || dapt_fs_exists(r->metrics_path) || n > 0;
    if (previous && !opts->force)
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s holds a previous fine-tuning run (model.h5, finetune_metrics.csv or checkpoints): use --force to replace it or --resume to continue it",
                          r->out);
    /* The checkpoints of the earlier run: only their exact names, never through a symbolic link. */
    return previous ? dapt_checkpoint_clean(r->ckpt_dir, 1) : DAPT_OK;
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

/* The objective and the process grid. */
static dapt_status setup_grid(ft *r)
{
    const dapt_config *cfg = r->cfg;
    const dapt_objective_ops *ops = dapt_objective_find(cfg->finetune.objective, DAPT_OBJ_FINETUNE);
    if (!ops) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "finetune.objective = %s is not implemented", cfg->finetune.objective);
    DAPT_CHECK(dapt_objective_create(ops, cfg, &r->obj));
    DAPT_CHECK(dapt_grid_create(MPI_COMM_WORLD, cfg->parallel.tensor, &r->grid));
    r->have_grid = 1;
    if (r->grid.tensor_size > 1 && !(ops->flags & DAPT_OBJ_TENSOR_PARALLEL)) {
        char names[256];
        dapt_objective_names(DAPT_OBJ_FINETUNE | DAPT_OBJ_TENSOR_PARALLEL, names, sizeof names);
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "parallel.tensor = %lld: tensor parallelism is implemented for finetune.objective = %s, not %s (use 1)",
                          (long long)cfg->parallel.tensor, names, ops->name);
    }
    r->comm = r->grid.data;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(r->comm, &r->rank)));
    return DAPT_MPI(MPI_Comm_size(r->comm, &r->size));
}

/* The task, the classifier (with the objective's auxiliary tensors),
 * sharded over the tensor group. */
static dapt_status setup_model(ft *r)
{
    const dapt_config *cfg = r->cfg;
    const MPI_Comm world = ft_world(r);
    if (cfg->data.verify) DAPT_CHECK(dapt_h5_verify_file(world, cfg->finetune.task));
    DAPT_CHECK(dapt_status_agree(world, dapt_task_file_open(cfg->finetune.task, &r->task)));
    DAPT_CHECK(dapt_status_agree(world, dapt_task_split_read(&r->task, cfg->finetune.train_split, &r->train)));
    r->have_dev = cfg->finetune.dev_split[0] != '\0';
    if (r->have_dev) DAPT_CHECK(dapt_status_agree(world, dapt_task_split_read(&r->task, cfg->finetune.dev_split, &r->dev)));
    DAPT_CHECK(dapt_task_check_finetune(&r->task, cfg->finetune.metric));
    dapt_tensor_spec aux[DAPT_OBJ_MAX_AUX];
    size_t naux = 0;
    if (r->obj.ops->aux_tensors) {
        dapt_model_config fmc;
        DAPT_CHECK(peek_config(world, cfg->model.path, &fmc));
        fmc.num_labels = r->task.n_labels;
        DAPT_CHECK(r->obj.ops->aux_tensors(cfg, &fmc, aux, &naux));
    }
    DAPT_CHECK(dapt_task_load_classifier(world, cfg->model.path, r->task.n_labels, (uint64_t)cfg->run.seed, aux, naux,
                                         &r->model, &r->meta));
    r->have_model = 1;
    const dapt_model_config *mc = &r->model.config;
    if (r->task.vocab_size > mc->vocab_size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s was prepared with a vocabulary of %lld ids, but %s has %lld: wrong tokenizer or model",
                          r->task.path, (long long)r->task.vocab_size, cfg->model.path, (long long)mc->vocab_size);
    if (r->train.type_ids && mc->type_vocab_size < 2 && mc->arch == DAPT_ARCH_BERT)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s holds text pairs but %s has %lld token type", r->task.path, cfg->model.path,
                          (long long)mc->type_vocab_size);
    DAPT_CHECK(dapt_status_agree(world, ft_leader(r) ? check_tokenizer(r) : DAPT_OK));
    /* Labels and the Hugging Face class of the output. */
    DAPT_CHECK(dapt_calloc((void **)&r->meta.labels, (size_t)r->task.n_labels + 1, sizeof(char *), "class labels"));
    for (int64_t k = 0; k < r->task.n_labels; k++)
        if (!(r->meta.labels[k] = strdup(r->task.label_names[k])))
            return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for class labels");
    snprintf(r->meta.hf_architecture, sizeof r->meta.hf_architecture, "%s",
             mc->arch == DAPT_ARCH_ROBERTA ? "RobertaForSequenceClassification" : "BertForSequenceClassification");
    if (r->grid.tensor_size > 1) {
        DAPT_CHECK(dapt_grid_log(&r->grid, mc));
        dapt_grid_tp_group(&r->grid, &r->tpg);
        DAPT_CHECK(dapt_tp_shard_model(&r->grid, &r->tpg, &r->model, &r->tpl));
        r->have_tpl = 1;
    }
    return DAPT_OK;
}

/* Batch shares, the schedule, AdamW and the buffers. */
static dapt_status setup_optimizer(ft *r)
{
    const dapt_config *cfg = r->cfg;
    const dapt_model_config *mc = &r->model.config;
    r->max_len = cfg->finetune.max_length < dapt_model_max_input(mc) ? cfg->finetune.max_length : dapt_model_max_input(mc);
    r->B = cfg->finetune.batch_size;
    if (r->B < r->size)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "finetune.batch_size = %lld is smaller than the %d data ranks", (long long)r->B,
                          r->size);
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
    ft_schedule(cfg, r->steps_per_epoch, &r->sched);
    DAPT_CHECK(dapt_order_init(&r->order, (uint64_t)cfg->run.seed, r->train.n));
    const size_t cells = (size_t)(r->micro * r->max_len);
    DAPT_CHECK(dapt_adamw_moments(cfg, &r->model.table, r->comm, r->have_tpl, &r->zero, &r->m1, &r->m2));
    DAPT_CHECK(dapt_alloc((void **)&r->ids, cells * sizeof(int32_t), "batch ids"));
    DAPT_CHECK(dapt_alloc((void **)&r->att, cells * sizeof(int32_t), "batch attention"));
    if (r->train.type_ids) DAPT_CHECK(dapt_alloc((void **)&r->types, cells * sizeof(int32_t), "batch type ids"));
    DAPT_CHECK(dapt_alloc((void **)&r->labels, (size_t)r->B * sizeof(int32_t), "batch labels"));
    DAPT_CHECK(dapt_alloc((void **)&r->values, (size_t)r->B * sizeof(float), "batch targets"));
    DAPT_CHECK(dapt_alloc((void **)&r->idx, (size_t)r->B * sizeof(int64_t), "batch rows"));
    task_ws_cache_init(&r->cache, &r->model, r->micro, 1);
    return DAPT_OK;
}

/* What the objective sees of the run: one "domain", the task. */
static void fill_ctx(ft *r, const dapt_finetune_opts *opts)
{
    r->domain = (dapt_domain_info){0, 1, r->task.path, r->out, r->out, 0, opts->resume};
    dapt_objective_ctx *c = &r->ctx;
    c->cfg = r->cfg;
    c->data_comm = r->comm;
    c->data_rank = r->rank;
    c->data_size = r->size;
    c->writer = !r->have_grid || r->grid.tensor_rank == 0;
    c->model = &r->model;
    c->seed = (uint64_t)r->cfg->run.seed;
    c->micro_max = r->micro;
    c->total_steps = r->total_steps;
    c->domain = &r->domain;
}

static dapt_status setup(ft *r, const dapt_finetune_opts *opts)
{
    const dapt_config *cfg = r->cfg;
    if (!cfg->finetune.task[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "finetune.task: dapt finetune needs a prepared task file (--task)");
    if (!cfg->model.path[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "model.path: dapt finetune needs a model file to start from (--model)");
    if (opts->resume && opts->force)
        return DAPT_ERROR(DAPT_ERR_ARG, "--resume continues the run in %s and --force replaces it: give one of them",
                          cfg->run.output_dir);
    snprintf(r->out, sizeof r->out, "%s", cfg->run.output_dir);
    snprintf(r->model_path, sizeof r->model_path, "%s/model.h5", r->out);
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/finetune_metrics.csv", r->out);
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/checkpoints", r->out);
    DAPT_CHECK(dapt_status_agree(MPI_COMM_WORLD, setup_grid(r)));
    DAPT_CHECK(setup_model(r));
    DAPT_CHECK(dapt_status_agree(ft_world(r), setup_optimizer(r)));
    DAPT_CHECK(dapt_status_agree(ft_world(r), ft_leader(r) ? prepare_output(r, opts) : DAPT_OK));
    fill_ctx(r, opts);
    return DAPT_OK;
}

static void teardown(ft *r)
{
    if (r->obj.ops) dapt_objective_release(&r->obj);
    dapt_objective_destroy(&r->obj);
    dapt_metrics_log_close(&r->mlog);
    task_ws_cache_free(&r->cache);
    if (r->have_model) dapt_model_free(&r->model);
    dapt_model_meta_free(&r->meta);
    dapt_task_split_free(&r->train);
    dapt_task_split_free(&r->dev);
    dapt_task_file_free(&r->task);
    dapt_order_free(&r->order);
    free(r->m1);
    free(r->m2);
    dapt_grad_sync_free(r->sync);
    r->sync = NULL;
    dapt_zero_free(r->zero);
    r->zero = NULL;
    free(r->ids);
    free(r->att);
    free(r->types);
    free(r->labels);
    free(r->values);
    free(r->idx);
    if (r->have_tpl) dapt_tp_layout_free(&r->tpl);
    if (r->have_grid) dapt_grid_free(&r->grid);
}

/* ---- the epochs ---------------------------------------------------------------- */

/* One row of the metrics log (leader); a failed write is an error. */
static dapt_status metrics_row(ft *r, int64_t e, double train_loss, double lr, double dev_loss,
                               const dapt_cls_metrics *m, int best)
{
    dapt_metrics_log *log = &r->mlog;
    dapt_metrics_log_field(log, "%lld", (long long)e + 1);
    dapt_metrics_log_field(log, "%lld", (long long)r->step);
    dapt_metrics_log_field(log, "%.9g", train_loss);
    dapt_metrics_log_field(log, "%.9g", lr);
    task_metrics_dev_fields(log, r->task.regression, r->have_dev ? m : NULL, dev_loss);
    dapt_metrics_log_field(log, "%d", best);
    dapt_metrics_log_field(log, "%.1f", dapt_now() - r->t0);
    const size_t nc = dapt_objective_columns(&r->obj);
    for (size_t i = 0; i < nc; i++) dapt_metrics_log_field(log, "%.9g", r->prog.extra_sum[i] / (double)r->steps_per_epoch);
    return dapt_metrics_log_end_row(log);
}

/* The end of epoch e: dev evaluation, the best model, the metrics row,
 * early stopping.  Collective over the world. */
static dapt_status end_epoch(ft *r, int64_t e, double lr, dapt_finetune_result *res)
{
    const dapt_config *cfg = r->cfg;
    ft_progress *p = &r->prog;
    const double train_loss = p->epoch_loss_sum / (double)r->steps_per_epoch;
    double dev_loss = NAN, value = NAN;
    dapt_cls_metrics m;
    memset(&m, 0, sizeof m);
    int best = 0;
    dapt_status st = DAPT_OK;
    if (r->have_dev) {
        DAPT_CHECK(dapt_task_evaluate(r->comm, &r->model, &r->dev, cfg->finetune.eval_batch_size, r->max_len, &m,
                                      &dev_loss, NULL, NULL));
        DAPT_TRY(dapt_cls_metrics_get(&m, cfg->finetune.metric, &value));
        best = dapt_metric_improves(&m, cfg->finetune.metric, value, p->best_metric, p->best_epoch >= 0);
    } else {
        best = e + 1 == cfg->finetune.epochs; /* no dev split: keep the last */
    }
    if (best) {
        p->best_metric = value;
        p->best_epoch = e + 1;
        p->best_accuracy = m.accuracy;
        p->best_macro_f1 = m.macro_f1;
        p->since_best = 0;
        DAPT_TRY(ft_save_model(r));
    } else {
        p->since_best++;
    }
    DAPT_TRY(dapt_status_agree(ft_world(r), ft_leader(r) ? metrics_row(r, e, train_loss, lr, dev_loss, &m, best) : DAPT_OK));
    if (r->have_dev && m.regression)
        dapt_info("epoch %lld: train loss %.4f, %s MSE %.4f Pearson %.4f Spearman %.4f%s", (long long)e + 1, train_loss,
                  cfg->finetune.dev_split, m.reg.mse, m.reg.pearson, m.reg.spearman, best ? " (best so far: saved)" : "");
    else if (r->have_dev)
        dapt_info("epoch %lld: train loss %.4f, %s loss %.4f accuracy %.4f macro-F1 %.4f%s", (long long)e + 1, train_loss,
                  cfg->finetune.dev_split, dev_loss, m.accuracy, m.macro_f1, best ? " (best so far: saved)" : "");
    else
        dapt_info("epoch %lld: train loss %.4f", (long long)e + 1, train_loss);
    p->epoch_loss_sum = 0.0;
    memset(p->extra_sum, 0, sizeof p->extra_sum);
    if (e + 1 == cfg->finetune.epochs) p->finished = 1;
    if (r->have_dev && cfg->finetune.patience > 0 && p->since_best >= cfg->finetune.patience && !p->finished) {
        res->stopped_early = 1;
        p->finished = 1;
        dapt_info("early stop: %lld epochs without a better %s %s", (long long)p->since_best, cfg->finetune.dev_split,
                  cfg->finetune.metric);
    }
cleanup:
    dapt_cls_metrics_free(&m);
    return st;
}

/* The ranks agree whether a stop signal arrived; if so, checkpoint. */
static dapt_status check_preempted(ft *r, dapt_finetune_result *res)
{
    int any = 0;
    DAPT_CHECK(dapt_preempt_agree(ft_world(r), &any));
    if (!any) return DAPT_OK;
    dapt_info("stop signal received: checkpointing at step %lld", (long long)r->step);
    if (r->last_ckpt_step != r->step) DAPT_CHECK(ft_save_checkpoint(r));
    res->agreed = 1;
    return DAPT_ERROR(DAPT_ERR_INTERRUPTED, "preempted at step %lld: checkpoint written to %s, resume with --resume",
                      (long long)r->step, r->ckpt_dir);
}

static dapt_status run_epochs(ft *r, dapt_finetune_result *res)
{
    const dapt_config *cfg = r->cfg;
    dapt_info("finetune: %s (%lld labels) from %s with %s, %d data rank%s x %lld tensor, %lld train / %lld %s examples, batch %lld, %lld steps per epoch, %lld epochs, max length %lld, %zu parameters",
              r->task.path, (long long)r->task.n_labels, cfg->model.path, r->obj.ops->name, r->size,
              r->size == 1 ? "" : "s", (long long)cfg->parallel.tensor, (long long)r->train.n, (long long)r->dev.n,
              r->have_dev ? cfg->finetune.dev_split : "dev", (long long)r->B, (long long)r->steps_per_epoch,
              (long long)cfg->finetune.epochs, (long long)r->max_len, r->model.table.total);
    dapt_progress prog;
    dapt_progress_start(&prog, "finetune", "steps", r->total_steps - r->step, 0.0);
    const int64_t first = r->step;
    while (!r->prog.finished && r->step < r->total_steps) {
        dapt_heartbeat("a fine-tuning step");
        DAPT_CHECK(check_preempted(r, res));
        const int64_t e = r->step / r->steps_per_epoch, k = r->step % r->steps_per_epoch;
        double loss = NAN, lr = 0.0;
        dapt_status st = ft_step(r, e, k, &loss, &lr);
        if (st == DAPT_ERR_NUMERIC) res->agreed = 1; /* every rank saw the same sums */
        DAPT_CHECK(st);
        r->prog.epoch_loss_sum += loss;
        res->last_train_loss = loss;
        if (r->step == cfg->finetune.inject_stop_step && ft_leader(r)) dapt_preempt_request();
        if (r->step % cfg->finetune.log_every == 0 || r->step == r->total_steps) {
            char extra[128];
            snprintf(extra, sizeof extra, "epoch %lld loss %.4f lr %.3g", (long long)e + 1, loss, lr);
            prog.interval = 0.0;
            dapt_progress_update(&prog, r->step - first, extra);
        }
        const int epoch_end = k + 1 == r->steps_per_epoch;
        if (epoch_end) DAPT_CHECK(end_epoch(r, e, lr, res));
        if (epoch_end || (cfg->checkpoint.every > 0 && r->step % cfg->checkpoint.every == 0))
            DAPT_CHECK(ft_save_checkpoint(r));
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
    r->last_ckpt_step = -1;
    r->prog.best_metric = -INFINITY;
    r->prog.best_epoch = -1;
    r->t0 = dapt_now();
    dapt_preempt_saved saved;
    dapt_preempt_arm(&saved);
    int resumed = 0;
    dapt_status st = setup(r, opts);
    /* The objective's state exists before a checkpoint fills it. */
    if (st == DAPT_OK) st = dapt_status_agree(ft_world(r), dapt_objective_begin_domain(&r->obj, &r->ctx));
    if (st == DAPT_OK && opts->resume) st = ft_resume(r, opts, res, &resumed);
    if (st == DAPT_OK) st = dapt_status_agree(ft_world(r), ft_open_metrics(r, resumed));
    if (st == DAPT_OK) st = run_epochs(r, res);
    else res->agreed = 1;
    if (st == DAPT_OK) st = dapt_status_agree(ft_world(r), dapt_objective_end_domain(&r->obj, &r->ctx));
    res->regression = r->task.regression;
    res->steps_done = r->step;
    res->epochs_done = r->steps_per_epoch > 0 ? r->step / r->steps_per_epoch : 0;
    if (r->prog.best_epoch > 0) {
        res->best_epoch = r->prog.best_epoch;
        res->best_metric = r->prog.best_metric;
        res->best_accuracy = r->prog.best_accuracy;
        res->best_macro_f1 = r->prog.best_macro_f1;
    }
    teardown(r);
    free(r);
    dapt_preempt_disarm(&saved);
    return st;
}
