/* The overlapped gradient all-reduce (src/optim/grad_sync.c), on 2 and 3
 * ranks: its buckets tile the gradient buffer once, in backward's order;
 * buckets really start inside backward; the sum equals the plain
 * all-reduce's (bit for bit on 2 ranks, where each element is one
 * addition); a rank with no rows in the step still takes part; and a
 * non-finite gradient is reported by the rank that holds it only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/model.h"
#include "dapt/optim.h"
#include "harness.h"

typedef struct rig {
    dapt_model m;
    dapt_workspace *ws;
    int32_t ids[2 * 12], att[2 * 12], labels[2 * 12];
    dapt_batch b;
} rig;

static void rig_setup(rig *r, uint64_t sample0)
{
    memset(r, 0, sizeof *r);
    dapt_model_config mc = dapt_test_model_config(DAPT_ARCH_BERT, 37, 16, 3, 2, 24, 16);
    mc.num_labels = 3; /* pooler and classifier too: every head's frontier */
    CU_ASSERT_FATAL(dapt_model_create(&mc, &r->m) == DAPT_OK);
    dapt_model_init_random(&r->m, 7);
    dapt_workspace_spec spec = {2, 12, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&r->m, &spec, &r->ws) == DAPT_OK);
    static int32_t cls[2];
    for (int i = 0; i < 24; i++) {
        r->ids[i] = 5 + (int32_t)((sample0 * 7 + (uint64_t)i * 11) % 30);
        r->att[i] = 1;
        r->labels[i] = i % 3 == 0 ? r->ids[i] : DAPT_IGNORE_LABEL;
    }
    cls[0] = (int32_t)(sample0 % 3);
    cls[1] = (int32_t)((sample0 + 1) % 3);
    r->b = (dapt_batch){2, 12, r->ids, r->att, NULL, r->labels, cls, sample0, NULL};
}

static void rig_free(rig *r)
{
    dapt_workspace_free(r->ws);
    dapt_model_free(&r->m);
}

static void backward_into(rig *r, const dapt_grad_hook *hook)
{
    dapt_run_opts opts = {0};
    opts.train = 1;
    opts.seed = 3;
    CU_ASSERT_FATAL(dapt_model_forward(&r->m, r->ws, &r->b, NULL, &opts) == DAPT_OK);
    r->m.grad_hook = hook;
    CU_ASSERT_FATAL(dapt_model_backward(&r->m, r->ws, 1.0, NULL, NULL) == DAPT_OK);
    r->m.grad_hook = NULL;
}

/* Records the frontiers backward reports. */
typedef struct spy {
    size_t seen[16];
    int n;
} spy;

static dapt_status spy_ready(void *ctx, size_t frontier)
{
    spy *s = ctx;
    if (s->n < 16) s->seen[s->n++] = frontier;
    return DAPT_OK;
}

static void test_frontiers_in_backward_order(void)
{
    rig r;
    rig_setup(&r, 1);
    const size_t *f, nf_expect = 3 + 2;
    size_t aux;
    const size_t nf = dapt_model_grad_frontiers(&r.m, &f, &aux);
    CU_ASSERT_EQUAL(nf, nf_expect);
    CU_ASSERT_EQUAL(aux, r.m.table.total);
    for (size_t k = 1; k < nf; k++) CU_ASSERT(f[k] < f[k - 1]);
    CU_ASSERT_EQUAL(f[nf - 1], 0);
    CU_ASSERT_EQUAL(f[0], dapt_param_find(&r.m.table, "pooler.weight")->offset);
    CU_ASSERT_EQUAL(f[1], dapt_param_find(&r.m.table, "layer.2.attn.q.weight")->offset);
    spy s = {{0}, 0};
    dapt_grad_hook h = {spy_ready, &s};
    backward_into(&r, &h);
    CU_ASSERT_EQUAL(s.n, (int)nf);
    for (int k = 0; k < s.n && k < (int)nf; k++) CU_ASSERT_EQUAL(s.seen[k], f[k]);
    /* An input-gradient-only backward completes no parameter gradient. */
    s.n = 0;
    dapt_run_opts opts = {0};
    CU_ASSERT_FATAL(dapt_model_forward(&r.m, r.ws, &r.b, NULL, &opts) == DAPT_OK);
    dapt_backward_opts bo = DAPT_BACKWARD_OPTS_INIT;
    bo.param_grads = 0;
    r.m.grad_hook = &h;
    CU_ASSERT_FATAL(dapt_model_backward_ex(&r.m, r.ws, &bo) == DAPT_OK);
    r.m.grad_hook = NULL;
    CU_ASSERT_EQUAL(s.n, 0);
    rig_free(&r);
}

/* Counts the buckets the hook started before backward returned. */
typedef struct counting {
    dapt_grad_sync *sync;
    const dapt_grad_hook *inner;
    int calls;
} counting;

static dapt_status counting_ready(void *ctx, size_t frontier)
{
    counting *c = ctx;
    c->calls++;
    return c->inner->ready(c->inner->ctx, frontier);
}

/* The overlapped sum against the plain one; rank `idle` (or none: -1)
 * computes nothing this step. */
static void compare_with_plain(double bucket_mb, int idle)
{
    const int rank = dapt_test_world_rank(), size = dapt_test_world_size();
    rig r;
    rig_setup(&r, (uint64_t)(100 + 2 * rank));
    const size_t total = r.m.table.total;
    dapt_model_zero_grads(&r.m);
    if (rank != idle) backward_into(&r, NULL);
    float *plain = malloc(total * sizeof *plain);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    memcpy(plain, r.m.grads, total * sizeof *plain);
    CU_ASSERT_FATAL(dapt_grad_allreduce(plain, total, bucket_mb, MPI_COMM_WORLD) == DAPT_OK);

    dapt_grad_sync *s = NULL;
    CU_ASSERT_FATAL(dapt_grad_sync_create(&r.m, bucket_mb, MPI_COMM_WORLD, &s) == DAPT_OK);
    CU_ASSERT(dapt_grad_sync_buckets(s) >= 5); /* at least one per frontier */
    dapt_model_zero_grads(&r.m);
    dapt_grad_sync_begin(s, r.m.grads);
    counting c = {s, dapt_grad_sync_hook(s), 0};
    dapt_grad_hook h = {counting_ready, &c};
    if (rank != idle) backward_into(&r, &h);
    int nonfinite = -1;
    CU_ASSERT_FATAL(dapt_grad_sync_end(s, &nonfinite) == DAPT_OK);
    CU_ASSERT_EQUAL(nonfinite, 0);
    CU_ASSERT_EQUAL(c.calls, rank == idle ? 0 : 5);
    double worst = 0;
    size_t differ = 0;
    for (size_t i = 0; i < total; i++) {
        differ += r.m.grads[i] != plain[i];
        worst = fmax(worst, fabs(r.m.grads[i] - plain[i]) / fmax(1e-6, fabs(plain[i])));
    }
    if (size == 2) CU_ASSERT_EQUAL(differ, 0);
    CU_ASSERT(worst < 1e-5);
    dapt_grad_sync_free(s);
    free(plain);
    rig_free(&r);
}

static void test_sum_equals_plain(void) { compare_with_plain(25.0, -1); }
static void test_small_buckets(void) { compare_with_plain(0.001, -1); } /* every unit cut into 1024-float pieces */
static void test_idle_rank(void) { compare_with_plain(25.0, 1); }

static void test_nonfinite_named_by_its_rank(void)
{
    const int rank = dapt_test_world_rank();
    rig r;
    rig_setup(&r, 9);
    dapt_grad_sync *s = NULL;
    CU_ASSERT_FATAL(dapt_grad_sync_create(&r.m, 25.0, MPI_COMM_WORLD, &s) == DAPT_OK);
    dapt_model_zero_grads(&r.m);
    dapt_grad_sync_begin(s, r.m.grads);
    if (rank == 0) r.m.grads[r.m.table.total / 2] = NAN;
    backward_into(&r, dapt_grad_sync_hook(s));
    int nonfinite = -1;
    CU_ASSERT_FATAL(dapt_grad_sync_end(s, &nonfinite) == DAPT_OK);
    CU_ASSERT_EQUAL(nonfinite, rank == 0);
    CU_ASSERT(isnan(r.m.grads[r.m.table.total / 2])); /* and the sum carries it */
    dapt_grad_sync_free(s);
    rig_free(&r);
}

DAPT_TEST_MAIN("grad sync", {"backward reports its frontiers in order", test_frontiers_in_backward_order},
               {"overlapped sum equals the plain all-reduce", test_sum_equals_plain},
               {"tiny buckets", test_small_buckets}, {"a rank with no rows", test_idle_rank},
               {"a non-finite gradient is named by its rank", test_nonfinite_named_by_its_rank})
