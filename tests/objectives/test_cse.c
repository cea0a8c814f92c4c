/* MOMETAS's cse loss (src/objectives/cse.h) against the reference's loss
 * and its autograd gradient (tests/fixtures/objectives/cse.txt, made by
 * tools/fixtures/make_mometas_fixtures.py in float64 PyTorch), with the
 * rows split over however many ranks run it (cse.test: 1 and 2): the
 * negatives come from the global batch.  And the whole objective (two
 * dropout views, pooler, loss, recomputed backward) against central
 * differences of its loss on a tiny model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/objectives/cse.h"
#include "dapt/config.h"
#include "dapt/objective.h"
#include "dapt/share.h"
#include "fixture_text.h"
#include "harness.h"

#define MAXN 64

static void test_cse_matches_reference(void)
{
    FILE *fp = fopen(dapt_test_path("tests/fixtures/objectives/cse.txt"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    char line[256];
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, fp));
    long long n = 0, dim = 0;
    double tau = 0, want_loss = 0;
    CU_ASSERT_FATAL(fscanf(fp, "%lld %lld %lf", &n, &dim, &tau) == 3 && n * dim <= MAXN);
    double za[MAXN], zb[MAXN], dza[MAXN], dzb[MAXN];
    CU_ASSERT_FATAL(fixture_doubles(fp, "za", za, n * dim) == 0 && fixture_doubles(fp, "zb", zb, n * dim) == 0);
    CU_ASSERT_FATAL(fixture_doubles(fp, "loss", &want_loss, 1) == 0);
    CU_ASSERT_FATAL(fixture_doubles(fp, "dza", dza, n * dim) == 0 && fixture_doubles(fp, "dzb", dzb, n * dim) == 0);
    fclose(fp);

    int64_t first, count;
    dapt_share(n, dapt_test_world_rank(), dapt_test_world_size(), &first, &count);
    float a[MAXN], b[MAXN], ga[MAXN], gb[MAXN], scratch[6 * MAXN];
    for (int64_t i = 0; i < count * dim; i++) {
        a[i] = (float)za[first * dim + i];
        b[i] = (float)zb[first * dim + i];
    }
    double loss = 0;
    CU_ASSERT_FATAL(dapt_cse_loss(a, b, count, dim, tau, MPI_COMM_WORLD, scratch, count > 0 ? count : 1, &loss, ga,
                                  gb) == DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(loss, want_loss, 1e-9 * fabs(want_loss));
    double worst = 0;
    for (int64_t i = 0; i < count * dim; i++) {
        worst = fmax(worst, fabs(ga[i] - dza[first * dim + i]));
        worst = fmax(worst, fabs(gb[i] - dzb[first * dim + i]));
    }
    /* float32 gradients of entries of order 1e-1 */
    CU_ASSERT(worst < 1e-6);
    if (worst >= 1e-6) fprintf(stderr, "cse gradient off by %g\n", worst);
}

/* One cse step of a tiny model: its loss (micro_step + step_end) and the
 * gradients it leaves in model->grads. */
typedef struct cse_rig {
    dapt_config cfg;
    dapt_model model;
    dapt_workspace *ws;
    dapt_objective obj;
    dapt_objective_ctx ctx;
    int32_t ids[4 * 6], att[4 * 6];
} cse_rig;

static double cse_step(cse_rig *r)
{
    dapt_micro_batch mb;
    memset(&mb, 0, sizeof mb);
    mb.batch = (dapt_batch){4, 6, r->ids, r->att, NULL, NULL, NULL, 0, NULL};
    mb.clean_ids = r->ids;
    mb.ws = r->ws;
    double loss = 0.0;
    dapt_model_zero_grads(&r->model);
    CU_ASSERT(dapt_objective_micro_step(&r->obj, &r->ctx, &mb, &loss) == DAPT_OK);
    CU_ASSERT(dapt_objective_step_end(&r->obj, &r->ctx, &mb, 1, &loss) == DAPT_OK);
    return loss;
}

static void test_cse_objective_gradients(void)
{
    if (dapt_test_world_size() > 1) return; /* a one-rank rig */
    static cse_rig r;
    dapt_config_defaults(&r.cfg);
    dapt_model_config mc = dapt_test_model_config(DAPT_ARCH_BERT, 16, 8, 1, 2, 16, 16);
    mc.hidden_dropout = mc.attention_dropout = 0.1;
    mc.initializer_range = 0.5;
    const dapt_objective_ops *ops = dapt_objective_find("cse", DAPT_OBJ_TRAIN);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ops);
    dapt_tensor_spec aux[DAPT_OBJ_MAX_AUX];
    size_t naux = 0;
    CU_ASSERT_FATAL(ops->aux_tensors(&r.cfg, &mc, aux, &naux) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_model_create_aux(&mc, aux, naux, &r.model) == DAPT_OK);
    dapt_model_init_random(&r.model, 9);
    const dapt_workspace_spec spec = {4, 6, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&r.model, &spec, &r.ws) == DAPT_OK);
    for (int i = 0; i < 24; i++) {
        r.ids[i] = 5 + (7 * i) % 11;
        r.att[i] = !(i >= 18 && i % 6 >= 4); /* the last row padded */
    }
    CU_ASSERT_FATAL(dapt_objective_create(ops, &r.cfg, &r.obj) == DAPT_OK);
    r.ctx = (dapt_objective_ctx){.cfg = &r.cfg, .data_comm = MPI_COMM_SELF, .data_size = 1, .writer = 1,
                                 .model = &r.model, .ws = r.ws, .seed = 3, .step = 5, .global_rows = 4,
                                 .seq_len = 6, .micro_max = 4};
    CU_ASSERT_FATAL(dapt_objective_begin_domain(&r.obj, &r.ctx) == DAPT_OK);
    const double loss = cse_step(&r);
    CU_ASSERT(isfinite(loss) && loss > 0);
    /* Pooler weight and bias, a word embedding, a query weight. */
    const char *names[] = {"aux.cse.dense.weight", "aux.cse.dense.bias", "embeddings.word", "layer.0.attn.q.weight"};
    const size_t at[] = {3, 2, 8 * 7 + 1, 5};
    int checked = 0;
    for (size_t k = 0; k < 4; k++) {
        float *p = dapt_model_param(&r.model, names[k]);
        if (!p) {
            fprintf(stderr, "no tensor %s\n", names[k]);
            continue;
        }
        cse_step(&r);
        const double an = dapt_model_grad(&r.model, names[k])[at[k]];
        const float keep = p[at[k]], eps = 1e-2f;
        p[at[k]] = keep + eps;
        const double lp = cse_step(&r);
        p[at[k]] = keep - eps;
        const double lm = cse_step(&r);
        p[at[k]] = keep;
        const double fd = (lp - lm) / (2.0 * eps);
        if (fabs(an - fd) > 2e-3 + 0.02 * fabs(fd)) fprintf(stderr, "%s[%zu]: %g vs %g\n", names[k], at[k], an, fd);
        CU_ASSERT(fabs(an - fd) <= 2e-3 + 0.02 * fabs(fd));
        CU_ASSERT(fabs(fd) > 1e-4); /* a gradient that can be wrong */
        checked++;
    }
    CU_ASSERT_EQUAL(checked, 4);
    dapt_objective_release(&r.obj);
    dapt_objective_destroy(&r.obj);
    dapt_workspace_free(r.ws);
    dapt_model_free(&r.model);
}

DAPT_TEST_MAIN("cse", {"the cse loss and gradient match the reference", test_cse_matches_reference},
               {"the cse objective's gradients match finite differences", test_cse_objective_gradients})
