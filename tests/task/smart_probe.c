/* smart_probe: what dapt's SMART objective draws and computes, for the
 * float64 PyTorch reference (tools/fixtures/make_smart_fixture.py) and
 * tests/task/smart_reference.test.
 *
 *   smart_probe MODEL TASK OUT.h5 STEPS [section.key=value ...]
 *
 * The configuration is dapt's defaults with run.seed = 9,
 * finetune.objective = smart and the given assignments.  The run it
 * describes is dapt finetune on the task's train split with one full batch
 * per epoch (finetune.batch_size >= the split), so step s is epoch s.  OUT
 * holds (rows in the order dapt finetune takes them, S = the longest
 * example, H = hidden):
 *   order [STEPS, n]            the example index of each row of step s
 *   noise [STEPS, n, S, H]      nu_0 of step s (0 at padding)
 *   record/{nu0,nu} [n, S, H]   step 0's initial and final perturbation
 *   record/{a,b,t} [n, labels]  step 0's clean, perturbed and teacher logits
 *   record/{cls,adv,bregman}    step 0's L, lambda_s R_s and mu D
 * and the configuration as the root attribute dapt_config.  One process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/objectives/smart.h"
#include "dapt/batches.h"
#include "dapt/h5io.h"
#include "dapt/objective.h"
#include "dapt/task.h"

typedef struct probe {
    dapt_config cfg;
    dapt_task_file task;
    dapt_task_split train;
    dapt_model model;
    dapt_model_meta meta;
    dapt_order order;
    int64_t n, S, H, K, steps;
    int32_t *ids, *att, *types, *labels;
    int64_t *rows;
    float *noise;
} probe;

/* Rows of step s in dapt finetune's order, padded to S. */
static void fill_rows(probe *p, int64_t s)
{
    for (int64_t i = 0; i < p->n; i++) {
        const int64_t k = dapt_order_at(&p->order, (uint64_t)(s * p->n + i), NULL);
        const int64_t b = p->train.offsets[k], len = p->train.offsets[k + 1] - b;
        p->rows[s * p->n + i] = k;
        p->labels[i] = p->train.labels[k];
        for (int64_t j = 0; j < p->S; j++) {
            p->ids[i * p->S + j] = j < len ? p->train.ids[b + j] : (int32_t)p->model.config.pad_token_id;
            p->att[i * p->S + j] = j < len;
            p->types[i * p->S + j] = j < len && p->train.type_ids ? p->train.type_ids[b + j] : 0;
        }
    }
}

static dapt_status setup(probe *p, int argc, char **argv)
{
    dapt_config_defaults(&p->cfg);
    DAPT_CHECK(dapt_config_set(&p->cfg, "run.seed=9"));
    DAPT_CHECK(dapt_config_set(&p->cfg, "finetune.objective=smart"));
    for (int i = 5; i < argc; i++) DAPT_CHECK(dapt_config_set(&p->cfg, argv[i]));
    p->steps = atoll(argv[4]);
    DAPT_CHECK(dapt_task_file_open(argv[2], &p->task));
    DAPT_CHECK(dapt_task_split_read(&p->task, "train", &p->train));
    DAPT_CHECK(dapt_task_load_classifier(MPI_COMM_SELF, argv[1], p->task.n_labels, 9, NULL, 0, &p->model, &p->meta));
    DAPT_CHECK(dapt_order_init(&p->order, 9, p->train.n));
    p->n = p->train.n;
    p->S = p->train.max_len;
    p->H = p->model.config.hidden;
    p->K = p->model.config.num_labels;
    const size_t cells = (size_t)(p->n * p->S);
    DAPT_CHECK(dapt_alloc((void **)&p->ids, cells * sizeof(int32_t), "ids"));
    DAPT_CHECK(dapt_alloc((void **)&p->att, cells * sizeof(int32_t), "mask"));
    DAPT_CHECK(dapt_alloc((void **)&p->types, cells * sizeof(int32_t), "types"));
    DAPT_CHECK(dapt_alloc((void **)&p->labels, (size_t)p->n * sizeof(int32_t), "labels"));
    DAPT_CHECK(dapt_alloc((void **)&p->rows, (size_t)(p->steps * p->n) * sizeof(int64_t), "rows"));
    return dapt_alloc((void **)&p->noise, (size_t)p->steps * cells * (size_t)p->H * sizeof(float), "noise");
}

/* Step 0 through the objective, as dapt finetune would run it. */
static dapt_status record_step0(probe *p, dapt_h5file *f)
{
    dapt_objective obj = {0};
    DAPT_CHECK(dapt_objective_create(dapt_objective_find("smart", DAPT_OBJ_FINETUNE), &p->cfg, &obj));
    dapt_objective_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    dapt_domain_info dom = {0, 1, "probe", ".", ".", 0, 0};
    ctx.cfg = &p->cfg;
    ctx.data_comm = MPI_COMM_SELF;
    ctx.data_size = 1;
    ctx.writer = 1;
    ctx.model = &p->model;
    ctx.seed = 9;
    ctx.global_rows = p->n;
    ctx.micro_max = p->n;
    ctx.total_steps = p->steps;
    ctx.domain = &dom;
    dapt_workspace *ws = NULL;
    dapt_workspace_spec spec = {p->n, p->S, 0, 1, 0};
    dapt_status st = dapt_objective_begin_domain(&obj, &ctx);
    if (st == DAPT_OK) st = dapt_workspace_create(&p->model, &spec, &ws);
    fill_rows(p, 0);
    dapt_micro_batch mb = {{p->n, p->S, p->ids, p->att, p->types, NULL, p->labels, 0, NULL}, p->ids, ws};
    double loss = 0.0;
    dapt_model_zero_grads(&p->model);
    if (st == DAPT_OK) st = dapt_objective_micro_step(&obj, &ctx, &mb, &loss);
    smart_record r;
    smart_last(obj.state, &r);
    const int64_t emb[3] = {p->n, p->S, p->H}, lg[2] = {p->n, p->K}, z[3] = {0, 0, 0};
    const struct { const char *name; const float *v; int nd; const int64_t *dims; } out[] = {
        {"record/nu0", r.nu0, 3, emb}, {"record/nu", r.nu, 3, emb}, {"record/a", r.a, 2, lg},
        {"record/b", r.b, 2, lg},      {"record/t", r.t, 2, lg},
    };
    for (size_t i = 0; i < sizeof out / sizeof out[0] && st == DAPT_OK; i++)
        if (out[i].v) st = dapt_h5_write(f, out[i].name, DAPT_H5_F32, out[i].nd, out[i].dims, z, out[i].dims, out[i].v);
    const double terms[3] = {r.cls, r.adv, r.bregman};
    const char *names[3] = {"record/cls", "record/adv", "record/bregman"};
    for (int i = 0; i < 3 && st == DAPT_OK; i++) st = dapt_h5_write(f, names[i], DAPT_H5_F64, 0, NULL, NULL, NULL, &terms[i]);
    dapt_workspace_free(ws);
    dapt_objective_release(&obj);
    dapt_objective_destroy(&obj);
    return st;
}

static dapt_status run(probe *p, const char *out)
{
    const int64_t cells = p->n * p->S * p->H;
    const double std = strcmp(p->cfg.smart.style, "mtdnn") ? sqrt(p->cfg.smart.noise_var) : p->cfg.smart.noise_var;
    for (int64_t s = 0; s < p->steps; s++) {
        fill_rows(p, s);
        smart_noise(9, (uint64_t)s, (uint64_t)(s * p->n), p->n, p->S, p->H, p->att, std, p->noise + s * cells);
    }
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_create(MPI_COMM_SELF, out, 1, &p->cfg, &f));
    const int64_t od[2] = {p->steps, p->n}, nd[4] = {p->steps, p->n, p->S, p->H}, z[4] = {0, 0, 0, 0};
    dapt_status st = dapt_h5_write(&f, "order", DAPT_H5_I64, 2, od, z, od, p->rows);
    if (st == DAPT_OK) st = dapt_h5_write(&f, "noise", DAPT_H5_F32, 4, nd, z, nd, p->noise);
    if (st == DAPT_OK) st = dapt_h5_group(&f, "record");
    if (st == DAPT_OK) st = record_step0(p, &f);
    if (st != DAPT_OK) {
        dapt_h5_abort(&f);
        return st;
    }
    return dapt_h5_commit(&f);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    if (argc < 5) {
        fprintf(stderr, "usage: smart_probe MODEL TASK OUT.h5 STEPS [section.key=value ...]\n");
        MPI_Finalize();
        return 2;
    }
    probe *p = calloc(1, sizeof *p);
    dapt_status st = p ? setup(p, argc, argv) : DAPT_ERR_NOMEM;
    if (st == DAPT_OK) st = run(p, argv[3]);
    if (st != DAPT_OK) fprintf(stderr, "smart_probe: %s\n", dapt_error_message());
    MPI_Finalize();
    return st == DAPT_OK ? 0 : 1;
}
