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

/* ---- ZeRO stage 1 (parallel.shard_optimizer, src/optim/zero.c) ---- */

/* The ranks' ranges tile the buffer in rank order, every cut on a row
 * boundary or between tensors, each within a row of an even share; the
 * rows each rank reports tile every tensor. */
static void test_zero_plan_tiles(void)
{
    const int rank = dapt_test_world_rank(), size = dapt_test_world_size();
    rig r;
    rig_setup(&r, 1);
    const dapt_param_table *t = &r.m.table;
    dapt_zero *z = NULL;
    CU_ASSERT_FATAL(dapt_zero_create(t, 25.0, MPI_COMM_WORLD, &z) == DAPT_OK);
    CU_ASSERT_FATAL(size <= 8);
    size_t lo, hi;
    dapt_zero_range(z, &lo, &hi);
    CU_ASSERT_EQUAL(dapt_zero_size(z), hi - lo);
    unsigned long long mine[2] = {lo, hi}, all[2 * 8];
    MPI_Allgather(mine, 2, MPI_UNSIGNED_LONG_LONG, all, 2, MPI_UNSIGNED_LONG_LONG, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(all[0], 0);
    CU_ASSERT_EQUAL(all[2 * size - 1], t->total);
    int64_t widest = 1;
    for (size_t k = 0; k < t->count; k++) widest = t->tensors[k].shape[1] > widest ? t->tensors[k].shape[1] : widest;
    for (int q = 0; q < size; q++) {
        if (q > 0) CU_ASSERT_EQUAL(all[2 * q], all[2 * q - 1]);
        const double share = (double)t->total / size;
        CU_ASSERT(fabs((double)(all[2 * q + 1] - all[2 * q]) - share) <= 2.0 * (double)widest + 16);
        for (size_t k = 0; k < t->count; k++) { /* the cut is a row boundary */
            const dapt_tensor *tt = &t->tensors[k];
            if (all[2 * q] > tt->offset && all[2 * q] < tt->offset + tt->numel)
                CU_ASSERT_EQUAL((all[2 * q] - tt->offset) % (size_t)tt->shape[1], 0);
        }
    }
    const int64_t *rows = dapt_zero_rows(z);
    for (size_t k = 0; k < t->count; k++) {
        const dapt_tensor *tt = &t->tensors[k];
        long long mr[3] = {rows[3 * k], rows[3 * k + 1], rows[3 * k + 2]}, ar[3 * 8];
        if (mr[1] > 0) /* the rows sit where the range holds them */
            CU_ASSERT_EQUAL((size_t)mr[2], tt->offset + (size_t)(mr[0] * tt->shape[1]) - lo);
        MPI_Allgather(mr, 3, MPI_LONG_LONG, ar, 3, MPI_LONG_LONG, MPI_COMM_WORLD);
        long long next = 0;
        for (int q = 0; q < size; q++) {
            if (ar[3 * q + 1] == 0) continue;
            CU_ASSERT_EQUAL(ar[3 * q], next);
            next = ar[3 * q] + ar[3 * q + 1];
        }
        CU_ASSERT_EQUAL(next, tt->shape[0]);
    }
    (void)rank;
    dapt_zero_free(z);
    rig_free(&r);
}

/* This rank's gradient at step s > 0: a fixed pattern. */
static void synthetic_grads(float *g, const dapt_param_table *t, int rank, int step)
{
    for (size_t k = 0; k < t->count; k++)
        for (size_t i = 0; i < t->tensors[k].numel; i++) {
            const size_t at = t->tensors[k].offset + i;
            g[at] = 0.01f * (float)sin(0.37 * (double)at + 1.3 * rank + 0.71 * step);
        }
}

/* Three AdamW steps, replicated (all-reduce, every element) and sharded
 * (reduce-scatter, own range, all-gather), from the same parameters and the
 * same per-rank gradients (step 0's from the rig's backward, through the
 * hook as the loops run it), with per-element step and decay multipliers
 * (as DAS's update-space soft mask) and optionally clipping: parameters
 * and the kept moments agree -- bit for bit on 2 ranks without clipping,
 * where every sum is one addition in both. */
static void zero_against_replicated(double max_norm, double bucket_mb)
{
    const int rank = dapt_test_world_rank(), size = dapt_test_world_size();
    rig r;
    rig_setup(&r, (uint64_t)(100 + 2 * rank));
    const dapt_param_table *t = &r.m.table;
    const size_t total = t->total;
    float *p_rep = calloc(total, sizeof(float)), *g_rep = calloc(total, sizeof(float));
    float *m_rep = calloc(total, sizeof(float)), *v_rep = calloc(total, sizeof(float));
    float *scale = calloc(total, sizeof(float)), *decay = calloc(total, sizeof(float));
    CU_ASSERT_FATAL(p_rep && g_rep && m_rep && v_rep && scale && decay);
    for (size_t i = 0; i < total; i++) {
        scale[i] = (float)((i * 7) % 5) / 4.0f;
        decay[i] = (float)((i * 3) % 4) / 3.0f;
    }
    dapt_zero *z = NULL;
    CU_ASSERT_FATAL(dapt_zero_create(t, bucket_mb, MPI_COMM_WORLD, &z) == DAPT_OK);
    size_t lo, hi;
    dapt_zero_range(z, &lo, &hi);
    const size_t zn = hi > lo ? hi - lo : 1;
    float *m_z = calloc(zn, sizeof(float)), *v_z = calloc(zn, sizeof(float));
    CU_ASSERT_FATAL(m_z && v_z);
    dapt_grad_sync *s = NULL;
    CU_ASSERT_FATAL(dapt_grad_sync_create_sharded(&r.m, bucket_mb, z, MPI_COMM_WORLD, &s) == DAPT_OK);
    memcpy(p_rep, r.m.params, total * sizeof(float));
    dapt_adamw opt = {0.9, 0.999, 1e-6, 0.01, 0}, opt_rep = opt;
    for (int step = 0; step < 3; step++) {
        /* sharded, in the loops' order */
        dapt_model_zero_grads(&r.m);
        dapt_grad_sync_begin(s, r.m.grads);
        if (step == 0)
            backward_into(&r, dapt_grad_sync_hook(s));
        else
            synthetic_grads(r.m.grads, t, rank, step);
        if (step > 0) memcpy(g_rep, r.m.grads, total * sizeof(float));
        int nonfinite = -1;
        CU_ASSERT_FATAL(dapt_grad_sync_end(s, &nonfinite) == DAPT_OK);
        CU_ASSERT_EQUAL(nonfinite, 0);
        double sumsq = 0, norm = 0;
        CU_ASSERT_FATAL(dapt_zero_sumsq(z, r.m.grads, &sumsq) == DAPT_OK);
        const float factor = dapt_grad_clip_factor(sumsq, max_norm, &norm);
        if (factor != 1.0f) dapt_zero_scale(z, r.m.grads, factor);
        /* replicated: step 0's gradient is the rig's backward at the same
         * parameters */
        if (step == 0) {
            float *keep = malloc(total * sizeof(float));
            CU_ASSERT_FATAL(keep != NULL);
            memcpy(keep, r.m.grads, total * sizeof(float));
            dapt_model_zero_grads(&r.m);
            backward_into(&r, NULL);
            memcpy(g_rep, r.m.grads, total * sizeof(float));
            memcpy(r.m.grads, keep, total * sizeof(float));
            free(keep);
        }
        dapt_adamw_advance(&opt);
        CU_ASSERT_FATAL(dapt_zero_update(z, &opt, 1e-2, r.m.params, r.m.grads, m_z, v_z, scale, decay) == DAPT_OK);
        CU_ASSERT_FATAL(dapt_zero_gather(z, r.m.params) == DAPT_OK);
        CU_ASSERT_FATAL(dapt_grad_allreduce(g_rep, total, 25.0, MPI_COMM_WORLD) == DAPT_OK);
        double norm_rep = 0;
        const float f_rep = dapt_grad_clip_factor(dapt_grad_sumsq(t, 0, total, g_rep), max_norm, &norm_rep);
        CU_ASSERT(fabs(norm - norm_rep) <= 1e-6 * norm_rep);
        if (max_norm > 0) CU_ASSERT(f_rep < 1.0f); /* the clipping is exercised */
        if (f_rep != 1.0f) dapt_grad_scale(t, 0, total, g_rep, f_rep);
        dapt_adamw_advance(&opt_rep);
        CU_ASSERT_FATAL(dapt_adamw_update_scaled(&opt_rep, 1e-2, t, 0, total, p_rep, g_rep, m_rep, v_rep, scale, decay) ==
                        DAPT_OK);
    }
    double worst = 0;
    size_t differ = 0;
    for (size_t k = 0; k < t->count; k++) {
        const dapt_tensor *tt = &t->tensors[k];
        for (size_t i = tt->offset; i < tt->offset + tt->numel; i++) {
            differ += r.m.params[i] != p_rep[i];
            worst = fmax(worst, fabs(r.m.params[i] - p_rep[i]) / fmax(1e-3, fabs(p_rep[i])));
            if (i >= lo && i < hi) {
                differ += m_z[i - lo] != m_rep[i] || v_z[i - lo] != v_rep[i];
                worst = fmax(worst, fabs(m_z[i - lo] - m_rep[i]) / fmax(1e-6, fabs(m_rep[i])));
            }
        }
    }
    if (size <= 2 && max_norm <= 0) CU_ASSERT_EQUAL(differ, 0);
    CU_ASSERT(worst < 1e-5);
    /* Every rank holds the same parameters after the gather. */
    float *p0 = malloc(total * sizeof(float));
    CU_ASSERT_FATAL(p0 != NULL);
    memcpy(p0, r.m.params, total * sizeof(float));
    MPI_Bcast(p0, (int)total, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CU_ASSERT_EQUAL(memcmp(p0, r.m.params, total * sizeof(float)), 0);
    free(p0);
    dapt_grad_sync_free(s);
    dapt_zero_free(z);
    free(m_z), free(v_z), free(p_rep), free(g_rep), free(m_rep), free(v_rep), free(scale), free(decay);
    rig_free(&r);
}

static void test_zero_equals_replicated(void) { zero_against_replicated(0.0, 25.0); }
static void test_zero_clipped(void) { zero_against_replicated(1e-3, 25.0); }
static void test_zero_small_buckets(void) { zero_against_replicated(0.0, 0.001); }

DAPT_TEST_MAIN("grad sync", {"backward reports its frontiers in order", test_frontiers_in_backward_order},
               {"overlapped sum equals the plain all-reduce", test_sum_equals_plain},
               {"tiny buckets", test_small_buckets}, {"a rank with no rows", test_idle_rank},
               {"a non-finite gradient is named by its rank", test_nonfinite_named_by_its_rank},
               {"ZeRO-1: the ranges tile the buffer on row boundaries", test_zero_plan_tiles},
               {"ZeRO-1: three steps equal the replicated optimizer's", test_zero_equals_replicated},
               {"ZeRO-1: with clipping", test_zero_clipped}, {"ZeRO-1: 1024-float buckets", test_zero_small_buckets})
