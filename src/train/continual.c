/* dapt train over a sequence of domains (continual.domains /
 * continual.corpora): each domain is a run of its own in OUT/<domain>/
 * (checkpoints, metrics.csv, model.h5 when finished), from the base model
 * (objectives flagged DAPT_OBJ_FROM_BASE, and domain 0) or the previous
 * domain's model.  What a method carries from one domain to the next is the
 * objective's business (its begin/end/resume_domain hooks).  Without
 * continual.domains there is one domain, data.corpus, trained in OUT. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/log.h"
#include "dapt/preempt.h"
#include "train_internal.h"

#define MAX_DOMAINS 32

typedef struct domain_list {
    int listed; /* continual.domains given: OUT/<domain>/ per domain */
    size_t n;
    char names[MAX_DOMAINS][128];
    char corpora[MAX_DOMAINS][DAPT_CONFIG_STR_MAX];
    char out[DAPT_CONFIG_STR_MAX];
} domain_list;

static void copy_name(char *dst, size_t len, const char *src) { snprintf(dst, len, "%.*s", (int)(len - 1), src); }

static void domain_dir(const domain_list *c, size_t t, char *buf, size_t len)
{
    if (c->listed) snprintf(buf, len, "%s/%s", c->out, c->names[t]);
    else snprintf(buf, len, "%s", c->out);
}

static void domain_path(const domain_list *c, size_t t, const char *name, char *buf, size_t len)
{
    if (c->listed) snprintf(buf, len, "%s/%s/%s", c->out, c->names[t], name);
    else snprintf(buf, len, "%s/%s", c->out, name);
}

/* One domain on data.corpus, named after the file. */
static dapt_status single_domain(domain_list *c, const dapt_config *cfg)
{
    if (cfg->continual.corpora[0])
        return DAPT_ERROR(DAPT_ERR_CONFIG, "continual.corpora is given but continual.domains is empty: name one domain per corpus");
    if (!cfg->data.corpus[0]) return DAPT_ERROR(DAPT_ERR_CONFIG, "data.corpus: dapt train needs a prepared corpus file");
    const char *slash = strrchr(cfg->data.corpus, '/'), *base = slash ? slash + 1 : cfg->data.corpus;
    copy_name(c->names[0], sizeof c->names[0], base);
    char *dot = strrchr(c->names[0], '.');
    if (dot && dot != c->names[0]) *dot = 0;
    /* "general" names the general importance source: keep the domain's apart. */
    if (!strncmp(c->names[0], "general", 7)) {
        char tmp[sizeof c->names[0]];
        memcpy(tmp, c->names[0], sizeof tmp);
        snprintf(c->names[0], sizeof c->names[0], "corpus_%.100s", tmp);
    }
    copy_name(c->corpora[0], sizeof c->corpora[0], cfg->data.corpus);
    c->n = 1;
    return DAPT_OK;
}

static dapt_status parse_domains(domain_list *c, const dapt_config *cfg)
{
    snprintf(c->out, sizeof c->out, "%s", cfg->run.output_dir);
    if (!cfg->continual.domains[0]) return single_domain(c, cfg);
    char buf1[DAPT_CONFIG_STR_MAX], buf2[DAPT_CONFIG_STR_MAX], *names[MAX_DOMAINS], *corp[MAX_DOMAINS];
    size_t nn = 0, nc = 0;
    DAPT_CHECK(dapt_config_split_list(cfg->continual.domains, buf1, sizeof buf1, names, MAX_DOMAINS, &nn));
    DAPT_CHECK(dapt_config_split_list(cfg->continual.corpora, buf2, sizeof buf2, corp, MAX_DOMAINS, &nc));
    if (nn != nc)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "continual.domains names %zu domain%s but continual.corpora lists %zu corpus file%s: give one prepared corpus per domain",
                          nn, nn == 1 ? "" : "s", nc, nc == 1 ? "" : "s");
    for (size_t t = 0; t < nn; t++) {
        if (!names[t][0] || strchr(names[t], '/') || !strcmp(names[t], ".") || !strcmp(names[t], "..") ||
            !strcmp(names[t], "general") || !strncmp(names[t], "general_", 8) || !strcmp(names[t], "checkpoints"))
            return DAPT_ERROR(DAPT_ERR_CONFIG, "continual.domains: '%s' cannot name a domain (it becomes a directory and an importance source)", names[t]);
        for (size_t u = 0; u < t; u++)
            if (!strcmp(names[t], names[u])) return DAPT_ERROR(DAPT_ERR_CONFIG, "continual.domains: '%s' appears twice", names[t]);
        copy_name(c->names[t], sizeof c->names[t], names[t]);
        copy_name(c->corpora[t], sizeof c->corpora[t], corp[t]);
    }
    if (cfg->parallel.tensor > 1)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "continual.domains: continual domains write whole models between domains and need parallel.tensor = 1 (it is %lld)",
                          (long long)cfg->parallel.tensor);
    if (cfg->data.corpus[0]) dapt_warn("data.corpus (%s) is not used: continual.domains trains on continual.corpora", cfg->data.corpus);
    c->n = nn;
    c->listed = 1;
    return DAPT_OK;
}

/* --force: removes what marks domains finished and the files the run and
 * its objective wrote (rank 0). */
static void forget_previous(const domain_list *c, const dapt_objective_ops *ops)
{
    char path[DAPT_CONFIG_STR_MAX + 320];
    for (size_t t = 0; t < c->n; t++) {
        if (c->listed) {
            domain_path(c, t, "model.h5", path, sizeof path);
            unlink(path);
        }
        for (size_t i = 0; ops->outputs && ops->outputs[i]; i++) {
            domain_path(c, t, ops->outputs[i], path, sizeof path);
            unlink(path);
        }
    }
    for (size_t i = 0; ops->outputs && ops->outputs[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", c->out, ops->outputs[i]);
        unlink(path);
    }
    if (c->listed) {
        snprintf(path, sizeof path, "%s/model.h5", c->out);
        unlink(path);
    }
}

/* The configuration of domain t: its corpus, directory and starting model. */
static dapt_status domain_config(const domain_list *c, size_t t, const dapt_objective_ops *ops, dapt_config *cfg)
{
    snprintf(cfg->data.corpus, sizeof cfg->data.corpus, "%s", c->corpora[t]);
    if (!c->listed) return DAPT_OK;
    char dir[sizeof cfg->run.output_dir + 160];
    domain_dir(c, t, dir, sizeof dir);
    if (strlen(dir) >= sizeof cfg->run.output_dir) return DAPT_ERROR(DAPT_ERR_CONFIG, "run.output_dir: %s is too long", dir);
    memcpy(cfg->run.output_dir, dir, strlen(dir) + 1);
    if (t > 0 && !(ops->flags & DAPT_OBJ_FROM_BASE)) {
        char prev[sizeof cfg->model.path + 160];
        domain_path(c, t - 1, "model.h5", prev, sizeof prev);
        if (strlen(prev) >= sizeof cfg->model.path) return DAPT_ERROR(DAPT_ERR_CONFIG, "model path %s is too long", prev);
        memcpy(cfg->model.path, prev, strlen(prev) + 1);
    }
    return DAPT_OK;
}

/* After domain t trained: OUT/<domain>/model.h5 last (it marks the domain
 * finished for --resume), and OUT/model.h5 after the last domain. */
static dapt_status save_domain_model(const domain_list *c, size_t t, train_run *r)
{
    if (!c->listed) return DAPT_OK;
    char path[DAPT_CONFIG_STR_MAX + 320];
    domain_path(c, t, "model.h5", path, sizeof path);
    DAPT_CHECK(dapt_modelfile_save(r->comm, path, 1, r->cfg, &r->model.config, &r->model.table, r->model.params,
                                   &r->meta));
    if (t + 1 == c->n) {
        snprintf(path, sizeof path, "%s/model.h5", c->out);
        DAPT_CHECK(dapt_modelfile_save(r->comm, path, 1, r->cfg, &r->model.config, &r->model.table, r->model.params,
                                       &r->meta));
    }
    dapt_info("domain %s finished: %s", c->names[t], path);
    return DAPT_OK;
}

/* Trains domain t (or takes back what a finished one left). */
static dapt_status train_domain(const domain_list *c, size_t t, train_run *r, int finished,
                                const dapt_train_opts *opts, dapt_train_result *res)
{
    char dir[DAPT_CONFIG_STR_MAX + 160];
    domain_dir(c, t, dir, sizeof dir);
    r->domain = (dapt_domain_info){(int64_t)t, (int64_t)c->n, c->names[t], c->out, dir, c->listed, opts->resume};
    dapt_objective *obj = r->obj;
    dapt_status st = train_setup(r);
    if (st == DAPT_OK && finished) {
        dapt_info("domain %s: finished in an earlier run, skipped", c->names[t]);
        char done[DAPT_CONFIG_STR_MAX + 320];
        domain_path(c, t, "model.h5", done, sizeof done);
        st = train_agree(r, train_resume_finished(r, done, opts, res));
        if (st == DAPT_OK) st = train_agree(r, dapt_objective_resume_domain(obj, &r->ctx));
        res->agreed = st != DAPT_OK;
        return st;
    }
    st = train_agree(r, st == DAPT_OK ? train_prepare_output(r, opts) : st);
    /* After the output check, so a refused run leaves the previous one's
     * heldout.h5 alone; over the world, so tensor ranks do not write it twice. */
    if (st == DAPT_OK)
        st = dapt_heldout_write(MPI_COMM_WORLD, r->out, r->cfg, r->seqs, r->cfg->train.eval_batches * r->B);
    if (st == DAPT_OK) st = train_agree(r, dapt_objective_begin_domain(obj, &r->ctx));
    if (st != DAPT_OK) {
        res->agreed = 1;
        return st;
    }
    dapt_train_result one;
    memset(&one, 0, sizeof one);
    one.last_eval_loss = NAN;
    st = train_loop(r, opts, &one);
    res->steps_done = one.steps_done;
    res->bad_steps += one.bad_steps;
    res->last_loss = one.last_loss;
    res->last_eval_loss = one.last_eval_loss;
    res->agreed = one.agreed;
    res->complete = one.complete;
    res->steps_total = one.steps_total;
    res->last_loss_step = one.last_loss_step;
    if (st != DAPT_OK) return st;
    st = train_agree(r, dapt_objective_end_domain(obj, &r->ctx));
    if (st == DAPT_OK) st = train_agree(r, save_domain_model(c, t, r));
    if (st != DAPT_OK) res->agreed = 1;
    return st;
}

static dapt_status train_domains(const domain_list *c, const dapt_config *base, dapt_objective *obj,
                                 const dapt_train_opts *opts, dapt_train_result *res)
{
    dapt_config *cfg = NULL;
    DAPT_CHECK(dapt_alloc((void **)&cfg, sizeof *cfg, "domain configuration"));
    dapt_status st = DAPT_OK;
    int rank = 0;
    DAPT_TRY(DAPT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank)));
    if (opts->force && !opts->resume && rank == 0) forget_previous(c, obj->ops);
    DAPT_TRY(DAPT_MPI(MPI_Barrier(MPI_COMM_WORLD)));
    for (size_t t = 0; t < c->n; t++) {
        *cfg = *base;
        DAPT_TRY(domain_config(c, t, obj->ops, cfg));
        char done[DAPT_CONFIG_STR_MAX + 320];
        domain_path(c, t, "model.h5", done, sizeof done);
        int finished = c->listed && opts->resume && dapt_fs_exists(done);
        DAPT_TRY(DAPT_MPI(MPI_Allreduce(MPI_IN_PLACE, &finished, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD)));
        train_run *r = NULL;
        DAPT_TRY(train_new(&r, cfg, obj));
        if (c->n > 1)
            dapt_info("domain %zu of %zu: %s (%s) from %s", t + 1, c->n, c->names[t], c->corpora[t],
                      cfg->model.path[0] ? cfg->model.path : "random initialisation");
        st = train_domain(c, t, r, finished, opts, res);
        dapt_objective_release(obj);
        train_teardown(r);
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
    if (opts->resume && opts->force) {
        res->agreed = 1;
        return DAPT_ERROR(DAPT_ERR_ARG, "--resume continues the run in %s and --force replaces it: give one of them",
                          cfg->run.output_dir);
    }
    const dapt_objective_ops *ops = dapt_objective_find(cfg->train.method, DAPT_OBJ_TRAIN);
    if (!ops) {
        res->agreed = 1;
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "train.method = %s is not implemented", cfg->train.method);
    }
    dapt_preempt_saved saved;
    dapt_preempt_arm(&saved);

    domain_list *c = NULL;
    dapt_objective obj = {ops, NULL};
    dapt_status st = dapt_calloc((void **)&c, 1, sizeof *c, "domain list");
    if (st == DAPT_OK) st = parse_domains(c, cfg);
    if (st == DAPT_OK) st = dapt_objective_create(ops, cfg, &obj);
    if (st == DAPT_OK) st = train_domains(c, cfg, &obj, opts, res);
    else res->agreed = 1;
    dapt_objective_destroy(&obj);
    free(c);
    dapt_preempt_disarm(&saved);
    return st;
}
