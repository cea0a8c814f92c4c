/* The objective interface as a new method sees it: an objective registered
 * at run time (no line of src/train or src/objectives names it) trains
 * through dapt_train_run with its own corruption, denominators, metrics
 * columns, output files and checkpointed state; the hooks are called in the
 * documented order; a resumed run continues it bit for bit.  Runs on 1 and
 * 2 ranks (objective.test). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "corpus_fixture.h"
#include "dapt/objective.h"
#include "dapt/train.h"
#include "harness.h"

/* ---- the probe objective ----------------------------------------------------- */

/* Hook calls on this rank (a real objective keeps no globals: this one
 * counts for the test). */
static struct {
    int create, destroy, begin, end, resume, release, prepare, steps, after, save, load;
} calls;

/* An auxiliary tensor the objective owns, pulled towards 0 by a penalty
 * 0.5 * sum w^2 (gradient w): it must be optimised, all-reduced,
 * checkpointed and resumed like the model's own tensors. */
#define PROBE_AUX "aux.probe.w"

static dapt_status probe_aux(const dapt_config *cfg, const dapt_model_config *mc, dapt_tensor_spec *out, size_t *n)
{
    (void)cfg;
    (void)mc;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, PROBE_AUX);
    out->rows = 2;
    out->cols = 3;
    *n = 1;
    return DAPT_OK;
}

static double aux_sumsq(const dapt_model *m)
{
    const dapt_tensor *t = dapt_param_find(&m->table, PROBE_AUX);
    const float *w = dapt_model_param(m, PROBE_AUX);
    double s = 0;
    for (size_t i = 0; t && w && i < t->numel; i++) s += (double)w[i] * w[i];
    return s;
}

typedef struct probe_state {
    double selected; /* positions this rank's prepare corrupted in the step */
    int64_t updates; /* optimizer updates seen (checkpointed) */
    int64_t loaded;  /* `updates` read back from a checkpoint, -1 = none */
} probe_state;

static dapt_status probe_create(void **state, const dapt_config *cfg)
{
    (void)cfg;
    calls.create++;
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(probe_state), "probe"));
    ((probe_state *)*state)->loaded = -1;
    return DAPT_OK;
}

static void probe_destroy(void *state)
{
    calls.destroy++;
    free(state);
}

static dapt_status probe_begin(void *state, dapt_objective_ctx *ctx)
{
    (void)state;
    calls.begin++;
    CU_ASSERT_PTR_NOT_NULL(ctx->seqs);
    CU_ASSERT_EQUAL(ctx->domain->count, 1);
    return DAPT_OK;
}

/* Leaves a file in the domain's directory (declared in `outputs`). */
static dapt_status probe_end(void *state, dapt_objective_ctx *ctx)
{
    probe_state *s = state;
    calls.end++;
    if (!ctx->writer || ctx->data_rank != 0) return DAPT_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/probe.txt", ctx->domain->dir);
    FILE *fp = fopen(path, "w");
    if (!fp) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot write", path);
    fprintf(fp, "%lld\n", (long long)s->updates);
    return fclose(fp) == 0 ? DAPT_OK : DAPT_ERROR(DAPT_ERR_IO, "%s: cannot write", path);
}

static void probe_release(void *state)
{
    (void)state;
    calls.release++;
}

/* Its own corruption, not MLM's: every third non-padding position (counted
 * from the step) becomes [MASK] with its original id as the label. */
static dapt_status probe_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local)
{
    probe_state *s = state;
    calls.prepare++;
    int64_t n = 0;
    for (int64_t i = 0; i < blk->rows * blk->seq_len; i++) {
        const int64_t pos = i % blk->seq_len;
        if (!blk->attention_mask[i] || (pos + (int64_t)blk->key_step) % 3 != 0 || pos == 0) continue;
        blk->labels[i] = blk->clean_ids[i];
        blk->input_ids[i] = ctx->mlm->mask_id;
        n++;
    }
    local[0] = (double)n;
    s->selected = (double)n;
    return DAPT_OK;
}

static dapt_status probe_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    (void)state;
    calls.steps++;
    return dapt_objective_mlm_term(ctx, mb, NULL, loss);
}

/* The penalty once per step on every rank: each adds its 1/size share of
 * the loss and of the gradient, so the all-reduced gradient is w. */
static dapt_status probe_step_end(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t count,
                                  double *loss)
{
    (void)state;
    (void)mbs;
    (void)count;
    const dapt_tensor *t = dapt_param_find(&ctx->model->table, PROBE_AUX);
    if (!t || !(t->flags & DAPT_TENSOR_AUX)) return DAPT_ERROR(DAPT_ERR_INTERNAL, "probe: no auxiliary tensor");
    const float *w = dapt_model_param(ctx->model, PROBE_AUX);
    float *g = dapt_model_grad(ctx->model, PROBE_AUX);
    for (size_t i = 0; i < t->numel; i++) g[i] += w[i] / (float)ctx->data_size;
    *loss += 0.5 * aux_sumsq(ctx->model) / ctx->data_size;
    return DAPT_OK;
}

static dapt_status probe_after_update(void *state, dapt_objective_ctx *ctx)
{
    (void)ctx;
    calls.after++;
    ((probe_state *)state)->updates++;
    return DAPT_OK;
}

/* Columns: what this rank selected, and its 1/size share of the global
 * denominator the loop handed back: summed over the ranks they must agree. */
static dapt_status probe_metrics(void *state, const dapt_objective_ctx *ctx, double *local)
{
    probe_state *s = state;
    local[0] = s->selected;
    local[1] = ctx->denominators[0] / ctx->data_size;
    local[2] = (double)s->updates / ctx->data_size;
    local[3] = aux_sumsq(ctx->model) / ctx->data_size;
    return DAPT_OK;
}

static dapt_status probe_save(void *state, dapt_objective_ctx *ctx, dapt_h5file *f)
{
    (void)ctx;
    calls.save++;
    return dapt_h5_attr_set_int64(f, "/", "probe_updates", ((probe_state *)state)->updates);
}

static dapt_status probe_load(void *state, dapt_objective_ctx *ctx, const dapt_h5file *f)
{
    (void)ctx;
    probe_state *s = state;
    calls.load++;
    DAPT_CHECK(dapt_h5_attr_get_int64(f, "/", "probe_updates", &s->updates));
    s->loaded = s->updates;
    return DAPT_OK;
}

static const char *const probe_columns[] = {"probe_selected", "probe_denominator", "probe_updates", "probe_aux_sumsq",
                                            NULL};
static const char *const probe_outputs[] = {"probe.txt", NULL};

static const dapt_objective_ops probe_ops = {
    .name = "probe",
    .flags = DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL,
    .n_denominators = 1,
    .columns = probe_columns,
    .outputs = probe_outputs,
    .aux_tensors = probe_aux,
    .create = probe_create,
    .destroy = probe_destroy,
    .begin_domain = probe_begin,
    .end_domain = probe_end,
    .release = probe_release,
    .prepare = probe_prepare,
    .micro_step = probe_micro_step,
    .step_end = probe_step_end,
    .after_update = probe_after_update,
    .metrics = probe_metrics,
    .save = probe_save,
    .load = probe_load,
};

/* The same objective without the tensor-parallel flag. */
static dapt_objective_ops probe_dp_ops;

/* Composition: an objective that delegates every hook to the registered
 * `mlm` objective (as a sampler or a regulariser would) and adds nothing:
 * its run must equal mlm's bit for bit. */
typedef struct wrap_state {
    dapt_objective inner;
} wrap_state;

static dapt_status wrap_create(void **state, const dapt_config *cfg)
{
    DAPT_CHECK(dapt_calloc(state, 1, sizeof(wrap_state), "wrap"));
    wrap_state *w = *state;
    const dapt_objective_ops *mlm = dapt_objective_find("mlm", DAPT_OBJ_TRAIN);
    if (!mlm) return DAPT_ERROR(DAPT_ERR_INTERNAL, "no mlm objective");
    return dapt_objective_create(mlm, cfg, &w->inner);
}

static void wrap_destroy(void *state)
{
    wrap_state *w = state;
    dapt_objective_destroy(&w->inner);
    free(w);
}

static dapt_status wrap_prepare(void *state, const dapt_objective_ctx *ctx, dapt_rows *blk, double *local)
{
    return dapt_objective_prepare(&((wrap_state *)state)->inner, ctx, blk, local);
}

static dapt_status wrap_micro_step(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mb, double *loss)
{
    return dapt_objective_micro_step(&((wrap_state *)state)->inner, ctx, mb, loss);
}

static dapt_status wrap_step_end(void *state, dapt_objective_ctx *ctx, const dapt_micro_batch *mbs, int64_t n,
                                 double *loss)
{
    return dapt_objective_step_end(&((wrap_state *)state)->inner, ctx, mbs, n, loss);
}

static const dapt_objective_ops wrap_ops = {
    .name = "wrap_mlm",
    .flags = DAPT_OBJ_TRAIN,
    .n_denominators = 1,
    .create = wrap_create,
    .destroy = wrap_destroy,
    .prepare = wrap_prepare,
    .micro_step = wrap_micro_step,
    .step_end = wrap_step_end,
};

/* ---- the run ------------------------------------------------------------------ */

static char work[4096];

static void make_work(void)
{
    if (work[0]) return;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) {
        snprintf(work, sizeof work, "%s/dapt-objective-XXXXXX", dapt_test_tmpdir());
        if (!mkdtemp(work)) work[0] = 0;
    }
    MPI_Bcast(work, sizeof work, MPI_CHAR, 0, MPI_COMM_WORLD);
    CU_ASSERT_FATAL(work[0] != 0);
    char path[4200];
    if (rank == 0) {
        snprintf(path, sizeof path, "%s/vocab.txt", work);
        CU_ASSERT_FATAL(fixture_write_vocab(path) == 0);
    }
    snprintf(path, sizeof path, "%s/corpus.h5", work);
    CU_ASSERT_FATAL(fixture_write_corpus(MPI_COMM_WORLD, path, 300, 7) == DAPT_OK);
    if (dapt_objective_find("probe", DAPT_OBJ_TRAIN) == NULL) CU_ASSERT(dapt_objective_register(&probe_ops) == DAPT_OK);
    if (dapt_objective_find("wrap_mlm", DAPT_OBJ_TRAIN) == NULL) CU_ASSERT(dapt_objective_register(&wrap_ops) == DAPT_OK);
    if (dapt_objective_find("probe_dp", DAPT_OBJ_TRAIN) == NULL) {
        probe_dp_ops = probe_ops;
        probe_dp_ops.name = "probe_dp";
        probe_dp_ops.flags = DAPT_OBJ_TRAIN;
        CU_ASSERT(dapt_objective_register(&probe_dp_ops) == DAPT_OK);
    }
}

static void config(dapt_config *cfg, const char *out, int64_t steps)
{
    dapt_config_defaults(cfg);
    char s[4200];
    const char *sets[] = {"model.vocab_size=64", "model.hidden=32", "model.layers=2", "model.heads=2",
                          "model.intermediate=64", "model.max_position=64", "data.seq_len=32",
                          "data.eval_fraction=0.1", "train.batch_size=8", "train.lr=1e-3", "train.eval_every=0",
                          "checkpoint.every=2", "run.seed=5", "train.schedule=constant"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) CU_ASSERT(dapt_config_set(cfg, sets[i]) == DAPT_OK);
    snprintf(s, sizeof s, "data.corpus=%s/corpus.h5", work);
    CU_ASSERT(dapt_config_set(cfg, s) == DAPT_OK);
    snprintf(s, sizeof s, "tokenizer.path=%s/vocab.txt", work);
    CU_ASSERT(dapt_config_set(cfg, s) == DAPT_OK);
    snprintf(s, sizeof s, "run.output_dir=%s/%s", work, out);
    CU_ASSERT(dapt_config_set(cfg, s) == DAPT_OK);
    snprintf(s, sizeof s, "train.steps=%lld", (long long)steps);
    CU_ASSERT(dapt_config_set(cfg, s) == DAPT_OK);
    /* The schema's enum lists the built-in methods; a plug-in sets the field. */
    snprintf(cfg->train.method, sizeof cfg->train.method, "probe");
}

/* Rows of OUT/metrics.csv after the header (rank 0), as text. */
static int read_rows(const char *out, char rows[][512], int max, char *header, size_t hlen)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s/metrics.csv", work, out);
    FILE *fp = fopen(path, "r");
    if (!fp) return -1;
    int n = 0;
    if (!fgets(header, (int)hlen, fp)) n = -1;
    while (n >= 0 && n < max && fgets(rows[n], 512, fp)) n++;
    fclose(fp);
    return n;
}

static void test_registry(void)
{
    make_work();
    CU_ASSERT_PTR_NOT_NULL(dapt_objective_find("das", DAPT_OBJ_TRAIN));
    CU_ASSERT_PTR_NOT_NULL(dapt_objective_find("cls", DAPT_OBJ_FINETUNE));
    CU_ASSERT_PTR_NULL(dapt_objective_find("cls", DAPT_OBJ_TRAIN));
    CU_ASSERT_PTR_NULL(dapt_objective_find("kd", DAPT_OBJ_TRAIN | DAPT_OBJ_TENSOR_PARALLEL));
    CU_ASSERT_EQUAL(dapt_objective_register(&probe_ops), DAPT_ERR_EXISTS);
    dapt_error_clear();
}

static void test_plugin_trains(void)
{
    make_work();
    dapt_config cfg;
    config(&cfg, "a", 4);
    memset(&calls, 0, sizeof calls);
    dapt_train_opts opts = {0, 0, 0};
    dapt_train_result res;
    dapt_status st = dapt_train_run(&cfg, &opts, &res);
    if (st != DAPT_OK) fprintf(stderr, "%s\n", dapt_error_message());
    CU_ASSERT_FATAL(st == DAPT_OK);
    CU_ASSERT_EQUAL(res.steps_done, 4);
    CU_ASSERT(isfinite(res.last_loss) && res.last_loss > 0);
    CU_ASSERT_EQUAL(calls.create, 1);
    CU_ASSERT_EQUAL(calls.destroy, 1);
    CU_ASSERT_EQUAL(calls.begin, 1);
    CU_ASSERT_EQUAL(calls.end, 1);
    CU_ASSERT_EQUAL(calls.release, 1);
    CU_ASSERT_EQUAL(calls.prepare, 4);
    CU_ASSERT_EQUAL(calls.after, 4);
    CU_ASSERT_EQUAL(calls.save, 2); /* steps 2 and 4 */
    CU_ASSERT(calls.steps >= 4);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;
    char rows[16][512], header[512], path[4300];
    int n = read_rows("a", rows, 16, header, sizeof header);
    CU_ASSERT_EQUAL_FATAL(n, 4);
    CU_ASSERT_STRING_EQUAL(header, "step,loss,lr,grad_norm,tokens_per_s,eval_loss,eval_ppl,probe_selected,"
                                   "probe_denominator,probe_updates,probe_aux_sumsq\n");
    double first_sumsq = 0, last_sumsq = 0;
    for (int i = 0; i < n; i++) {
        long long step;
        double v[9] = {0};
        /* step,loss,lr,grad,tok,,,(4 columns) */
        CU_ASSERT_EQUAL(sscanf(rows[i], "%lld,%lf,%lf,%lf,%lf,,,%lf,%lf,%lf,%lf", &step, &v[0], &v[1], &v[2], &v[3],
                               &v[4], &v[5], &v[6], &v[7]),
                        9);
        CU_ASSERT_EQUAL(step, i + 1);
        CU_ASSERT(v[4] > 0);
        CU_ASSERT_DOUBLE_EQUAL(v[4], v[5], 1e-9); /* the loop's global denominator = sum of prepare's */
        CU_ASSERT_DOUBLE_EQUAL(v[6], i + 1, 1e-9);
        if (i == 0) first_sumsq = v[7];
        last_sumsq = v[7];
    }
    /* The auxiliary tensor started random and AdamW moved it towards 0. */
    CU_ASSERT(first_sumsq > 1e-6);
    CU_ASSERT(last_sumsq < first_sumsq);
    /* It is in the checkpoint with the model's tensors. */
    dapt_h5file f;
    snprintf(path, sizeof path, "%s/a/checkpoints/step-00000004.h5", work);
    CU_ASSERT_FATAL(dapt_h5_open(MPI_COMM_SELF, path, &f) == DAPT_OK);
    CU_ASSERT(dapt_h5_exists(&f, "params/" PROBE_AUX));
    dapt_h5_close(&f);
    snprintf(path, sizeof path, "%s/a/probe.txt", work);
    CU_ASSERT(access(path, R_OK) == 0);
}

/* 2 steps, then --resume to 4: the objective's state comes back from the
 * checkpoint and the rows equal the uninterrupted run's. */
static void test_plugin_resumes(void)
{
    make_work();
    dapt_config cfg;
    config(&cfg, "b", 2);
    dapt_train_opts opts = {0, 0, 0};
    dapt_train_result res;
    CU_ASSERT_FATAL(dapt_train_run(&cfg, &opts, &res) == DAPT_OK);
    config(&cfg, "b", 4);
    opts.resume = 1;
    memset(&calls, 0, sizeof calls);
    CU_ASSERT_FATAL(dapt_train_run(&cfg, &opts, &res) == DAPT_OK);
    CU_ASSERT_EQUAL(calls.load, 1);
    CU_ASSERT_EQUAL(calls.after, 2);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;
    char a[16][512], b[16][512], ha[512], hb[512];
    CU_ASSERT_EQUAL_FATAL(read_rows("a", a, 16, ha, sizeof ha), 4);
    CU_ASSERT_EQUAL_FATAL(read_rows("b", b, 16, hb, sizeof hb), 4);
    for (int i = 0; i < 4; i++) {
        /* All but tokens_per_s (timing). */
        char *ta = strchr(strchr(strchr(strchr(a[i], ',') + 1, ',') + 1, ',') + 1, ',');
        char *tb = strchr(strchr(strchr(strchr(b[i], ',') + 1, ',') + 1, ',') + 1, ',');
        CU_ASSERT_NSTRING_EQUAL(a[i], b[i], (size_t)(ta - a[i]));
        CU_ASSERT_STRING_EQUAL(strchr(ta + 1, ','), strchr(tb + 1, ','));
    }
}

/* --force removes what the objective declared it writes. */
static void test_plugin_outputs_forced(void)
{
    make_work();
    dapt_config cfg;
    config(&cfg, "a", 1);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    char path[4300];
    snprintf(path, sizeof path, "%s/a/probe.txt", work);
    dapt_train_opts opts = {0, 1, 0};
    dapt_train_result res;
    CU_ASSERT_FATAL(dapt_train_run(&cfg, &opts, &res) == DAPT_OK);
    if (rank == 0) {
        FILE *fp = fopen(path, "r");
        long long updates = -1;
        CU_ASSERT_FATAL(fp != NULL);
        CU_ASSERT_EQUAL(fscanf(fp, "%lld", &updates), 1);
        fclose(fp);
        CU_ASSERT_EQUAL(updates, 1); /* rewritten by the new run, not left from the 4-step one */
    }
}

/* Tensor parallelism is refused for an objective that does not declare it. */
static void test_plugin_tensor_refused(void)
{
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != 2) return;
    make_work();
    dapt_config cfg;
    config(&cfg, "c", 1);
    snprintf(cfg.train.method, sizeof cfg.train.method, "probe_dp");
    cfg.parallel.tensor = 2;
    dapt_train_opts opts = {0, 0, 0};
    dapt_train_result res;
    CU_ASSERT_EQUAL(dapt_train_run(&cfg, &opts, &res), DAPT_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "not probe_dp"));
    dapt_error_clear();
}

/* On a 1 x 2 grid the auxiliary tensor is replicated on both tensor ranks
 * and ends where the 1 x 1 run's did. */
static void test_plugin_tensor_parallel(void)
{
    int size = 1, rank = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (size != 2) return;
    make_work();
    dapt_config cfg;
    config(&cfg, "tp", 4);
    cfg.parallel.tensor = 2;
    dapt_train_opts opts = {0, 0, 0};
    dapt_train_result res;
    dapt_status st = dapt_train_run(&cfg, &opts, &res);
    if (st != DAPT_OK) fprintf(stderr, "%s\n", dapt_error_message());
    CU_ASSERT_FATAL(st == DAPT_OK);
    if (rank != 0) return;
    char a[16][512], t[16][512], ha[512], ht[512];
    CU_ASSERT_EQUAL_FATAL(read_rows("b", a, 16, ha, sizeof ha), 4); /* the 1 x 1 run of the same configuration */
    CU_ASSERT_EQUAL_FATAL(read_rows("tp", t, 16, ht, sizeof ht), 4);
    for (int i = 0; i < 4; i++) {
        const char *ca = strrchr(a[i], ','), *ct = strrchr(t[i], ',');
        const double x = atof(ca + 1), y = atof(ct + 1);
        CU_ASSERT(fabs(x - y) <= 1e-5 * fabs(x));
    }
}

/* An objective delegating to mlm trains exactly as mlm does. */
static void test_composition(void)
{
    make_work();
    dapt_config cfg;
    dapt_train_opts opts = {0, 0, 0};
    dapt_train_result res;
    config(&cfg, "mlm", 3);
    snprintf(cfg.train.method, sizeof cfg.train.method, "mlm");
    CU_ASSERT_FATAL(dapt_train_run(&cfg, &opts, &res) == DAPT_OK);
    config(&cfg, "wrap", 3);
    snprintf(cfg.train.method, sizeof cfg.train.method, "wrap_mlm");
    CU_ASSERT_FATAL(dapt_train_run(&cfg, &opts, &res) == DAPT_OK);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) return;
    char a[8][512], b[8][512], ha[512], hb[512];
    CU_ASSERT_EQUAL_FATAL(read_rows("mlm", a, 8, ha, sizeof ha), 3);
    CU_ASSERT_EQUAL_FATAL(read_rows("wrap", b, 8, hb, sizeof hb), 3);
    CU_ASSERT_STRING_EQUAL(ha, hb);
    for (int i = 0; i < 3; i++) {
        /* step,loss,lr,grad_norm agree to the printed digit */
        char *ca = strchr(strchr(strchr(strchr(a[i], ',') + 1, ',') + 1, ',') + 1, ',');
        CU_ASSERT_NSTRING_EQUAL(a[i], b[i], (size_t)(ca - a[i]));
    }
    char pa[4300], pb[4300];
    snprintf(pa, sizeof pa, "%s/mlm/checkpoints/step-00000003.h5", work);
    snprintf(pb, sizeof pb, "%s/wrap/checkpoints/step-00000003.h5", work);
    dapt_h5file fa, fb;
    CU_ASSERT_FATAL(dapt_h5_open(MPI_COMM_SELF, pa, &fa) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_h5_open(MPI_COMM_SELF, pb, &fb) == DAPT_OK);
    int64_t ca = 0, cb = 0;
    CU_ASSERT(dapt_h5_attr_get_int64(&fa, "params/layer.1.ffn.out.weight", "crc32", &ca) == DAPT_OK);
    CU_ASSERT(dapt_h5_attr_get_int64(&fb, "params/layer.1.ffn.out.weight", "crc32", &cb) == DAPT_OK);
    CU_ASSERT_EQUAL(ca, cb); /* the same parameters, bit for bit */
    dapt_h5_close(&fa);
    dapt_h5_close(&fb);
}

DAPT_TEST_MAIN("objective", {"registry finds by name and flags", test_registry},
               {"a registered objective trains through dapt train", test_plugin_trains},
               {"a registered objective resumes bit for bit", test_plugin_resumes},
               {"--force replaces the objective's outputs", test_plugin_outputs_forced},
               {"tensor parallelism needs the objective's flag", test_plugin_tensor_refused},
               {"auxiliary tensors are replicated under tensor parallelism", test_plugin_tensor_parallel},
               {"an objective can delegate to another", test_composition})
