/* Evaluation reports: OUT.h5 + OUT.json, and the printed table, for a
 * classifier (accuracy, F1, confusion) or a regression head (MSE, RMSE,
 * MAE, Pearson, Spearman). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/fsio.h"
#include "dapt/h5io.h"
#include "dapt/task.h"

/* base without a trailing ".h5" / ".json", plus ext. */
static dapt_status out_name(const char *base, const char *ext, char *out, size_t len)
{
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".h5")) n -= 3;
    else if (n > 5 && !strcmp(base + n - 5, ".json")) n -= 5;
    if (n == 0) return DAPT_ERROR(DAPT_ERR_ARG, "empty output name");
    if ((size_t)snprintf(out, len, "%.*s%s", (int)n, base, ext) >= len)
        return DAPT_ERROR(DAPT_ERR_ARG, "output name too long: %.80s...", base);
    return DAPT_OK;
}

static json_t *real_or_null(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *cls_json(const dapt_eval_report *r)
{
    const dapt_cls_metrics *m = r->m;
    const int64_t C = m->n_labels;
    json_t *o = json_object(), *labels = json_array(), *per = json_array(), *conf = json_array();
    json_object_set_new(o, "format", json_string("dapt-eval"));
    json_object_set_new(o, "model", json_string(r->model ? r->model : ""));
    json_object_set_new(o, "task", json_string(r->task ? r->task : ""));
    json_object_set_new(o, "split", json_string(r->split ? r->split : ""));
    json_object_set_new(o, "n_examples", json_integer((json_int_t)m->total));
    json_object_set_new(o, "accuracy", json_real(m->accuracy));
    json_object_set_new(o, "macro_f1", json_real(m->macro_f1));
    json_object_set_new(o, "micro_f1", json_real(m->micro_f1));
    json_object_set_new(o, "weighted_f1", json_real(m->weighted_f1));
    json_object_set_new(o, "macro_precision", json_real(m->macro_precision));
    json_object_set_new(o, "macro_recall", json_real(m->macro_recall));
    json_object_set_new(o, "classes_averaged", json_integer((json_int_t)m->n_averaged));
    json_object_set_new(o, "loss", real_or_null(r->loss));
    for (int64_t k = 0; k < C; k++) {
        json_array_append_new(labels, json_string(r->label_names[k]));
        json_t *c = json_object(), *row = json_array();
        json_object_set_new(c, "label", json_string(r->label_names[k]));
        json_object_set_new(c, "precision", json_real(m->precision[k]));
        json_object_set_new(c, "recall", json_real(m->recall[k]));
        json_object_set_new(c, "f1", json_real(m->f1[k]));
        json_object_set_new(c, "support", json_integer((json_int_t)m->support[k]));
        json_object_set_new(c, "predicted", json_integer((json_int_t)m->predicted[k]));
        json_array_append_new(per, c);
        for (int64_t p = 0; p < C; p++) json_array_append_new(row, json_integer((json_int_t)m->confusion[k * C + p]));
        json_array_append_new(conf, row);
    }
    json_object_set_new(o, "labels", labels);
    json_object_set_new(o, "per_class", per);
    json_object_set_new(o, "confusion", conf);
    return o;
}

/* The regression report: MSE, RMSE, MAE, Pearson, Spearman. */
static json_t *reg_json(const dapt_eval_report *r)
{
    const dapt_reg_metrics *g = &r->m->reg;
    json_t *o = json_object(), *labels = json_array();
    json_object_set_new(o, "format", json_string("dapt-eval"));
    json_object_set_new(o, "task_type", json_string("regression"));
    json_object_set_new(o, "model", json_string(r->model ? r->model : ""));
    json_object_set_new(o, "task", json_string(r->task ? r->task : ""));
    json_object_set_new(o, "split", json_string(r->split ? r->split : ""));
    json_object_set_new(o, "n_examples", json_integer((json_int_t)g->n));
    json_object_set_new(o, "mse", real_or_null(g->mse));
    json_object_set_new(o, "rmse", real_or_null(g->rmse));
    json_object_set_new(o, "mae", real_or_null(g->mae));
    json_object_set_new(o, "pearson", real_or_null(g->pearson));
    json_object_set_new(o, "spearman", real_or_null(g->spearman));
    json_object_set_new(o, "loss", real_or_null(r->loss));
    json_array_append_new(labels, json_string(r->label_names[0]));
    json_object_set_new(o, "labels", labels);
    return o;
}

/* Root attributes and datasets of a regression report (every rank). */
static dapt_status reg_h5(dapt_h5file *f, const dapt_eval_report *r)
{
    const dapt_reg_metrics *g = &r->m->reg;
    dapt_status st = dapt_h5_attr_set_string(f, "/", "task_type", "regression");
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(f, "/", "n_examples", g->n);
    const struct {
        const char *name;
        double v;
    } scal[] = {{"mse", g->mse}, {"rmse", g->rmse}, {"mae", g->mae}, {"pearson", g->pearson}, {"spearman", g->spearman},
                {"loss", r->loss}};
    for (size_t i = 0; st == DAPT_OK && i < sizeof scal / sizeof scal[0]; i++)
        st = dapt_h5_attr_set_double(f, "/", scal[i].name, scal[i].v);
    const int64_t n1[1] = {r->n}, n2[2] = {r->n, 1};
    if (st == DAPT_OK && r->values) st = dapt_h5_write_all(f, "labels", DAPT_H5_F32, 1, n1, r->values);
    if (st == DAPT_OK && r->logits) st = dapt_h5_write_all(f, "predictions", DAPT_H5_F32, 1, n1, r->logits);
    if (st == DAPT_OK && r->logits) st = dapt_h5_write_all(f, "logits", DAPT_H5_F32, 2, n2, r->logits);
    return st;
}

/* Root attributes and datasets of a classification report (every rank). */
static dapt_status cls_h5(dapt_h5file *f, const dapt_eval_report *r)
{
    const dapt_cls_metrics *m = r->m;
    const int64_t C = m->n_labels, cc[2] = {C, C}, c1[1] = {C};
    dapt_status st = dapt_h5_attr_set_int64(f, "/", "n_examples", m->total);
    const struct {
        const char *name;
        double v;
    } scal[] = {{"accuracy", m->accuracy},       {"macro_f1", m->macro_f1},
                {"micro_f1", m->micro_f1},       {"weighted_f1", m->weighted_f1},
                {"macro_precision", m->macro_precision}, {"macro_recall", m->macro_recall},
                {"loss", r->loss}};
    for (size_t i = 0; st == DAPT_OK && i < sizeof scal / sizeof scal[0]; i++)
        st = dapt_h5_attr_set_double(f, "/", scal[i].name, scal[i].v);
    if (st == DAPT_OK) st = dapt_h5_write_all(f, "confusion", DAPT_H5_I64, 2, cc, m->confusion);
    if (st == DAPT_OK) st = dapt_h5_write_all(f, "support", DAPT_H5_I64, 1, c1, m->support);
    if (st == DAPT_OK) st = dapt_h5_write_all(f, "predicted_count", DAPT_H5_I64, 1, c1, m->predicted);
    if (st == DAPT_OK) st = dapt_h5_write_all(f, "precision", DAPT_H5_F64, 1, c1, m->precision);
    if (st == DAPT_OK) st = dapt_h5_write_all(f, "recall", DAPT_H5_F64, 1, c1, m->recall);
    if (st == DAPT_OK) st = dapt_h5_write_all(f, "f1", DAPT_H5_F64, 1, c1, m->f1);
    const int64_t n1[1] = {r->n}, nc[2] = {r->n, C};
    if (st == DAPT_OK && r->labels) st = dapt_h5_write_all(f, "labels", DAPT_H5_I32, 1, n1, r->labels);
    if (st == DAPT_OK && r->predictions) st = dapt_h5_write_all(f, "predictions", DAPT_H5_I32, 1, n1, r->predictions);
    if (st == DAPT_OK && r->logits) st = dapt_h5_write_all(f, "logits", DAPT_H5_F32, 2, nc, r->logits);
    return st;
}

/* JSON text to path (rank 0), then the HDF5 file (collective). */
static dapt_status write_json(MPI_Comm comm, json_t *o, const char *path, int force)
{
    int rank = 0;
    dapt_status st = DAPT_MPI(MPI_Comm_rank(comm, &rank));
    if (st == DAPT_OK && rank == 0) {
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (!text) st = DAPT_ERROR(DAPT_ERR_NOMEM, "%s: cannot serialise the report", path);
        else {
            size_t n = strlen(text);
            text[n] = '\n'; /* ends with a newline, in place of the terminator */
            st = dapt_fs_write_atomic(path, text, n + 1, force);
            free(text);
        }
    }
    return dapt_status_agree(comm, st);
}

/* Refuses existing outputs before anything is written.  Collective. */
static dapt_status check_outputs(MPI_Comm comm, const char *h5, const char *js, int force)
{
    int rank = 0;
    dapt_status st = DAPT_MPI(MPI_Comm_rank(comm, &rank));
    if (st == DAPT_OK && rank == 0 && !force) {
        if (dapt_fs_exists(h5)) st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", h5);
        else if (dapt_fs_exists(js)) st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", js);
    }
    return dapt_status_agree(comm, st);
}

dapt_status dapt_eval_report_write(MPI_Comm comm, const char *base, int force, const dapt_config *cfg,
                                   const dapt_eval_report *r)
{
    char h5[4096], js[4096];
    DAPT_CHECK(out_name(base, ".h5", h5, sizeof h5));
    DAPT_CHECK(out_name(base, ".json", js, sizeof js));
    DAPT_CHECK(check_outputs(comm, h5, js, force));
    json_t *o = r->m->regression ? reg_json(r) : cls_json(r);
    dapt_status st = DAPT_OK;
    dapt_h5file f;
    char *labels_text = json_dumps(json_object_get(o, "labels"), JSON_COMPACT);
    if (!labels_text) DAPT_THROW(DAPT_ERR_NOMEM, "cannot serialise the class labels");
    DAPT_TRY(dapt_h5_create(comm, h5, force, cfg, &f));
    {
        st = dapt_h5_set_format(&f, "dapt-eval");
        if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "model", r->model ? r->model : "");
        if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "task", r->task ? r->task : "");
        if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "split", r->split ? r->split : "");
        if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "labels", labels_text);
        if (st == DAPT_OK) st = r->m->regression ? reg_h5(&f, r) : cls_h5(&f, r);
        if (st != DAPT_OK) {
            dapt_h5_abort(&f);
            goto cleanup;
        }
        DAPT_TRY(dapt_h5_commit(&f));
    }
    DAPT_TRY(write_json(comm, o, js, force));
cleanup:
    free(labels_text);
    json_decref(o);
    return st;
}

dapt_status dapt_mlm_report_write(MPI_Comm comm, const char *base, int force, const dapt_config *cfg, const char *model,
                                  const char *corpus, const dapt_mlm_eval *e)
{
    char h5[4096], js[4096];
    DAPT_CHECK(out_name(base, ".h5", h5, sizeof h5));
    DAPT_CHECK(out_name(base, ".json", js, sizeof js));
    DAPT_CHECK(check_outputs(comm, h5, js, force));
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(comm, h5, force, cfg, &f));
    dapt_status st = dapt_h5_set_format(&f, "dapt-eval-mlm");
    if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "model", model);
    if (st == DAPT_OK) st = dapt_h5_attr_set_string(&f, "/", "corpus", corpus);
    if (st == DAPT_OK) st = dapt_h5_attr_set_double(&f, "/", "mlm_loss", e->loss);
    if (st == DAPT_OK) st = dapt_h5_attr_set_double(&f, "/", "perplexity", e->perplexity);
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "sequences", e->sequences);
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "masked_tokens", e->masked);
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "held_out_sequences", e->available);
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "seq_len", cfg->data.seq_len);
    if (st == DAPT_OK) st = dapt_h5_attr_set_double(&f, "/", "eval_fraction", cfg->data.eval_fraction);
    if (st == DAPT_OK) st = dapt_h5_attr_set_int64(&f, "/", "seed", cfg->run.seed);
    if (st != DAPT_OK) {
        dapt_h5_abort(&f);
        return st;
    }
    DAPT_CHECK(dapt_h5_commit(&f));
    json_t *o = json_object();
    json_object_set_new(o, "format", json_string("dapt-eval-mlm"));
    json_object_set_new(o, "model", json_string(model));
    json_object_set_new(o, "corpus", json_string(corpus));
    json_object_set_new(o, "mlm_loss", real_or_null(e->loss));
    json_object_set_new(o, "perplexity", real_or_null(e->perplexity));
    json_object_set_new(o, "sequences", json_integer((json_int_t)e->sequences));
    json_object_set_new(o, "masked_tokens", json_integer((json_int_t)e->masked));
    json_object_set_new(o, "held_out_sequences", json_integer((json_int_t)e->available));
    json_object_set_new(o, "seq_len", json_integer((json_int_t)cfg->data.seq_len));
    json_object_set_new(o, "eval_fraction", json_real(cfg->data.eval_fraction));
    json_object_set_new(o, "seed", json_integer((json_int_t)cfg->run.seed));
    st = write_json(comm, o, js, force);
    json_decref(o);
    return st;
}

static void reg_print(FILE *out, const dapt_eval_report *r)
{
    const dapt_reg_metrics *g = &r->m->reg;
    fprintf(out, "%s on %s (split %s), %lld examples (regression)\n\n", r->model ? r->model : "model",
            r->task ? r->task : "task", r->split ? r->split : "?", (long long)g->n);
    fprintf(out, "%-10s %12.6f\n%-10s %12.6f\n%-10s %12.6f\n%-10s %12.6f\n%-10s %12.6f\n", "mse", g->mse, "rmse", g->rmse,
            "mae", g->mae, "pearson", g->pearson, "spearman", g->spearman);
}

void dapt_eval_report_print(FILE *out, const dapt_eval_report *r)
{
    if (r->m->regression) {
        reg_print(out, r);
        return;
    }
    const dapt_cls_metrics *m = r->m;
    const int64_t C = m->n_labels;
    int w = 12;
    for (int64_t k = 0; k < C; k++)
        if ((int)strlen(r->label_names[k]) > w) w = (int)strlen(r->label_names[k]);
    if (w > 40) w = 40;
    fprintf(out, "%s on %s (split %s), %lld examples\n\n", r->model ? r->model : "model", r->task ? r->task : "task",
            r->split ? r->split : "?", (long long)m->total);
    fprintf(out, "%-*s  %9s  %9s  %9s  %9s\n", w, "class", "precision", "recall", "f1", "support");
    for (int64_t k = 0; k < C; k++)
        fprintf(out, "%-*.*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, w, r->label_names[k], m->precision[k], m->recall[k],
                m->f1[k], (long long)m->support[k]);
    fprintf(out, "\n%-*s  %9s  %9s  %9.4f  %9lld\n", w, "accuracy", "", "", m->accuracy, (long long)m->total);
    fprintf(out, "%-*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, "macro avg", m->macro_precision, m->macro_recall, m->macro_f1,
            (long long)m->total);
    fprintf(out, "%-*s  %9s  %9s  %9.4f  %9lld\n", w, "micro avg", "", "", m->micro_f1, (long long)m->total);
    fprintf(out, "%-*s  %9s  %9s  %9.4f  %9lld\n", w, "weighted avg", "", "", m->weighted_f1, (long long)m->total);
    if (isfinite(r->loss)) fprintf(out, "%-*s  %9.4f\n", w, "loss", r->loss);
    fprintf(out, "\nconfusion matrix (rows: true class, columns: predicted, in the order above)\n");
    for (int64_t t = 0; t < C; t++) {
        fprintf(out, "%-*.*s ", w, w, r->label_names[t]);
        for (int64_t p = 0; p < C; p++) fprintf(out, " %6lld", (long long)m->confusion[t * C + p]);
        fputc('\n', out);
    }
}
