/* Tensor parallelism in the engine: a model split over T tensor ranks
 * computes what the whole model computes.  Every rank runs the whole model
 * (the reference) and its shard for every T dividing the world size that
 * divides the heads (1, 2, 4 under 1, 2 and 4 ranks; tests/parallel/tp.test),
 * in train mode (dropout on both hidden states and attention probabilities),
 * with padding, token types, all three unit masks (one head masked to zero),
 * MLM and class labels and a gradient arriving on the last hidden state.
 *
 * Compared: losses, hidden states, pooler, class logits, the shard's MLM
 * logit columns (and -inf on vocabulary padding), every parameter gradient
 * (gathered to the global shape), the unit-mask gradients (gathered) and the
 * embedding-output gradient; also with layer recomputation.  Replicated
 * gradients must be bit-identical on every tensor rank (otherwise replicated
 * parameters would drift apart during training).
 *
 * Tolerance: max |shard - whole| <= 2e-5 * max |whole| per tensor (loss: 2e-6
 * relative).  The shard computes the same float32 operations except that the
 * row-parallel matmuls (attention output, FFN output, the decoder's input
 * gradient) and the Q/K/V / FFN-in input gradients are sums of T partial
 * dot products added by the all-reduce, and the vocab-parallel softmax sums
 * exponentials per shard: each reordering changes a result by a few float32
 * ulps (6e-8 relative) per addition, amplified by at most the depth of the
 * network (2 layers, LayerNorm renormalising each).  The worst error observed
 * is printed; it is ~1e-6 of scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/grid.h"
#include "dapt/model.h"
#include "dapt/rng.h"
#include "harness.h"

#define TOL 2e-5
#define LOSS_TOL 2e-6

static double worst_seen = 0.0;

static dapt_model_config tiny(dapt_arch arch)
{
    /* V = 150 pads to 256 for T = 2 and 4: with T = 4 the last shard holds
     * padding rows only, with T = 2 the second shard is mostly padding. */
    dapt_model_config mc = dapt_test_model_config(arch, 150, 24, 2, 4, 40, 40);
    mc.hidden_dropout = 0.1;
    mc.attention_dropout = 0.1;
    mc.initializer_range = 0.2; /* larger than HF's 0.02: non-trivial activations */
    mc.num_labels = 3;
    return mc;
}

enum { B = 3, S = 7 };

typedef struct inputs {
    int32_t ids[B * S], att[B * S], types[B * S], labels[B * S], cls[B];
    float head[8 * 4], inter[8 * 40], out[8 * 24];
    float dlast[B * S * 24];
} inputs;

static void make_inputs(const dapt_model_config *mc, inputs *in)
{
    const dapt_rng rng = dapt_rng_make(11, 99, 0);
    for (int t = 0; t < B * S; t++) {
        int i = t / S, s = t % S;
        int len = S - i; /* sample i has i padding positions at the end */
        in->att[t] = s < len;
        in->ids[t] = s < len ? 2 + (int32_t)(dapt_rng_uniform(&rng, 0, (uint64_t)t) * (float)(mc->vocab_size - 2))
                             : (int32_t)mc->pad_token_id;
        in->types[t] = mc->type_vocab_size > 1 && s >= 3 ? 1 : 0;
        in->labels[t] = s < len && dapt_rng_uniform(&rng, 1, (uint64_t)t) < 0.4f ? in->ids[t] : DAPT_IGNORE_LABEL;
    }
    in->labels[0] = (int32_t)mc->vocab_size - 1; /* a token of the last real shard */
    for (int i = 0; i < B; i++) in->cls[i] = i % (int)mc->num_labels;
    for (int e = 0; e < (int)(mc->layers * mc->heads); e++) in->head[e] = 0.5f + dapt_rng_uniform(&rng, 2, (uint64_t)e);
    in->head[1] = 0.0f;
    for (int e = 0; e < (int)(mc->layers * mc->intermediate); e++)
        in->inter[e] = 0.5f + dapt_rng_uniform(&rng, 3, (uint64_t)e);
    for (int e = 0; e < (int)(mc->layers * mc->hidden); e++) in->out[e] = 0.5f + dapt_rng_uniform(&rng, 4, (uint64_t)e);
    for (int e = 0; e < B * S * (int)mc->hidden; e++) in->dlast[e] = dapt_rng_normal(&rng, 5, (uint64_t)e) * 0.1f;
}

/* max |a - b| <= TOL * max |b| + floor (NaN fails). */
static int close_within(const char *what, const float *a, const float *b, size_t n, double floor)
{
    double scale = 0.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs((double)b[i]));
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= err)) err = isnan(d) ? INFINITY : d;
    }
    double rel = scale > 0 ? err / (scale + floor / TOL) : err;
    if (rel > worst_seen) worst_seen = rel;
    if (!(err <= TOL * scale + floor + 1e-30)) {
        fprintf(stderr, "%s: max error %.3g, scale %.3g\n", what, err, scale);
        return 0;
    }
    return 1;
}

static int close_enough(const char *what, const float *a, const float *b, size_t n)
{
    return close_within(what, a, b, n, 0.0);
}

typedef struct results {
    double loss, mlm_loss, cls_loss;
    float *last, *pooler, *cls_logits, *demb, *grads, *mlm_logits;
    int64_t mlm_rows;
    float mg_head[8 * 4], mg_inter[8 * 40], mg_out[8 * 24];
} results;

static void results_free(results *r)
{
    free(r->last);
    free(r->pooler);
    free(r->cls_logits);
    free(r->demb);
    free(r->grads);
    free(r->mlm_logits);
}

static float *dup(const float *x, size_t n)
{
    float *p = malloc(n * sizeof *p);
    memcpy(p, x, n * sizeof *p);
    return p;
}

/* Forward + backward of the test batch; results copied out. */
static void run(dapt_model *m, const inputs *in, int recompute, results *r)
{
    const dapt_model_config *mc = &m->config;
    const size_t H = (size_t)mc->hidden;
    memset(r, 0, sizeof *r);
    dapt_workspace_spec spec = {B, S, 0, 1, recompute};
    dapt_workspace *ws = NULL;
    CU_ASSERT_FATAL(dapt_workspace_create(m, &spec, &ws) == DAPT_OK);
    dapt_batch b = {B, S, in->ids, in->att, mc->type_vocab_size > 1 ? in->types : NULL, in->labels, in->cls, 1000, NULL};
    dapt_unit_masks um = {in->head, in->inter, in->out};
    dapt_run_opts opts = {0};
    opts.train = 1;
    opts.seed = 5;
    opts.step = 3;
    CU_ASSERT_FATAL(dapt_model_forward(m, ws, &b, &um, &opts) == DAPT_OK);
    int64_t labelled = 0;
    r->loss = dapt_ws_loss(ws);
    r->mlm_loss = dapt_ws_mlm_loss(ws, &labelled);
    r->cls_loss = dapt_ws_cls_loss(ws);
    r->last = dup(dapt_ws_last_hidden(ws), B * S * H);
    r->pooler = dup(dapt_ws_pooler(ws), B * H);
    r->cls_logits = dup(dapt_ws_class_logits(ws), B * (size_t)mc->num_labels);
    const float *lg = dapt_ws_mlm_logits(ws, &r->mlm_rows, NULL);
    r->mlm_logits = dup(lg, (size_t)r->mlm_rows * (size_t)m->ranges.vocab_rows);
    dapt_model_zero_grads(m);
    dapt_unit_mask_grads mg = {r->mg_head, r->mg_inter, r->mg_out};
    CU_ASSERT_FATAL(dapt_model_backward(m, ws, 1.0, in->dlast, &mg) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_model_gather_mask_grads(m, &mg) == DAPT_OK);
    r->demb = dup(dapt_ws_embedding_grad(ws), B * S * H);
    r->grads = dup(m->grads, m->table.total);
    dapt_workspace_free(ws);
}

/* Replicated gradients must be identical across the tensor group. */
static int replicated_identical(const dapt_tp_layout *lay, const dapt_model *m)
{
    int ok = 1;
    for (size_t k = 0; k < m->table.count; k++) {
        if (lay->shards[k].kind != DAPT_SHARD_REPLICATED) continue;
        const dapt_tensor *t = &m->table.tensors[k];
        float *mx = dup(m->grads + t->offset, t->numel);
        MPI_Allreduce(MPI_IN_PLACE, mx, (int)t->numel, MPI_FLOAT, MPI_MAX, lay->tensor);
        if (memcmp(mx, m->grads + t->offset, t->numel * sizeof *mx)) {
            fprintf(stderr, "replicated gradient %s differs between tensor ranks\n", t->name);
            ok = 0;
        }
        free(mx);
    }
    return ok;
}

static void compare_layout(dapt_arch arch, int T, int recompute)
{
    const dapt_model_config mc = tiny(arch);
    inputs in;
    make_inputs(&mc, &in);
    const size_t H = (size_t)mc.hidden;

    dapt_model whole;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &whole) == DAPT_OK);
    dapt_model_init_random(&whole, 7);
    /* Non-zero biases and LayerNorm parameters, so their paths count. */
    for (size_t i = 0; i < whole.table.total; i++)
        if (whole.params[i] == 0.0f || whole.params[i] == 1.0f) whole.params[i] += 0.05f * (float)((int)(i % 7) - 3);
    results ref;
    run(&whole, &in, 0, &ref);

    dapt_grid g;
    CU_ASSERT_FATAL(dapt_grid_create(MPI_COMM_WORLD, T, &g) == DAPT_OK);
    dapt_tp_group tp;
    dapt_grid_tp_group(&g, &tp);
    dapt_model shard;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &shard) == DAPT_OK);
    memcpy(shard.params, whole.params, whole.table.total * sizeof(float));
    dapt_tp_layout lay;
    CU_ASSERT_FATAL(dapt_tp_shard_model(&g, &tp, &shard, &lay) == DAPT_OK);
    dapt_model_ranges r;
    dapt_model_shard_ranges(&shard, &r);
    CU_ASSERT(r.tensor_size == T && r.head_count == mc.heads / T && r.ffn_count == mc.intermediate / T);
    CU_ASSERT(r.head_begin == g.tensor_rank * r.head_count && r.ffn_begin == g.tensor_rank * r.ffn_count);

    results got;
    run(&shard, &in, recompute, &got);
    CU_ASSERT(fabs(got.loss - ref.loss) <= LOSS_TOL * fabs(ref.loss));
    CU_ASSERT(fabs(got.mlm_loss - ref.mlm_loss) <= LOSS_TOL * fabs(ref.mlm_loss));
    CU_ASSERT(fabs(got.cls_loss - ref.cls_loss) <= LOSS_TOL * fabs(ref.cls_loss));
    CU_ASSERT(ref.mlm_loss > 0 && ref.cls_loss > 0);
    if (fabs(got.loss - ref.loss) / fabs(ref.loss) > worst_seen) worst_seen = fabs(got.loss - ref.loss) / fabs(ref.loss);
    CU_ASSERT(close_enough("last hidden state", got.last, ref.last, B * S * H));
    CU_ASSERT(close_enough("pooler", got.pooler, ref.pooler, B * H));
    CU_ASSERT(close_enough("class logits", got.cls_logits, ref.cls_logits, B * (size_t)mc.num_labels));
    CU_ASSERT(close_enough("embedding gradient", got.demb, ref.demb, B * S * H));

    /* The shard's logit columns, and -inf on its padding rows. */
    CU_ASSERT_FATAL(got.mlm_rows == ref.mlm_rows && got.mlm_rows > 0);
    int pad_ok = 1;
    for (int64_t row = 0; row < got.mlm_rows; row++) {
        const float *a = got.mlm_logits + row * r.vocab_rows;
        for (int64_t j = r.vocab_real; j < r.vocab_rows; j++) pad_ok &= isinf(a[j]) && a[j] < 0;
        if (r.vocab_real > 0)
            CU_ASSERT(close_enough("MLM logits", a, ref.mlm_logits + row * mc.vocab_size + r.vocab_begin,
                                   (size_t)r.vocab_real));
    }
    CU_ASSERT(pad_ok);

    /* Parameter gradients at global shape. */
    float *gathered = malloc(whole.table.total * sizeof(float));
    CU_ASSERT_FATAL(dapt_tp_allgather(&lay, &shard.table, got.grads, gathered) == DAPT_OK);
    /* The key biases' gradient is zero in exact arithmetic (a softmax row
     * is invariant to a constant shift) and float rounding noise (~1e-8)
     * here, so gradients also get an absolute floor of 1e-6 of the largest
     * gradient of the model. */
    double gmax = 0.0;
    for (size_t i = 0; i < whole.table.total; i++) gmax = fmax(gmax, fabs((double)ref.grads[i]));
    for (size_t k = 0; k < whole.table.count; k++) {
        const dapt_tensor *t = &whole.table.tensors[k];
        CU_ASSERT(close_within(t->name, gathered + t->offset, ref.grads + t->offset, t->numel, 1e-6 * gmax));
    }
    /* The shard's parameters gather back to the whole model exactly. */
    CU_ASSERT(dapt_tp_allgather(&lay, &shard.table, shard.params, gathered) == DAPT_OK);
    int same = 1;
    for (size_t k = 0; k < whole.table.count; k++) {
        const dapt_tensor *t = &whole.table.tensors[k];
        same &= !memcmp(gathered + t->offset, whole.params + t->offset, t->numel * sizeof(float));
    }
    CU_ASSERT(same);
    free(gathered);
    CU_ASSERT(replicated_identical(&lay, &shard));

    /* The norm of the sharded gradient is the whole model's. */
    double sumsq_tp = 0.0, sumsq = 0.0;
    CU_ASSERT(dapt_tp_sumsq(&lay, &shard.table, shard.grads, &sumsq_tp) == DAPT_OK);
    for (size_t i = 0; i < whole.table.total; i++) sumsq += (double)ref.grads[i] * ref.grads[i];
    CU_ASSERT(fabs(sumsq_tp - sumsq) <= 1e-4 * sumsq);

    CU_ASSERT(close_enough("head-mask gradient", got.mg_head, ref.mg_head, (size_t)(mc.layers * mc.heads)));
    CU_ASSERT(close_enough("intermediate-mask gradient", got.mg_inter, ref.mg_inter,
                           (size_t)(mc.layers * mc.intermediate)));
    CU_ASSERT(close_enough("output-mask gradient", got.mg_out, ref.mg_out, (size_t)(mc.layers * mc.hidden)));

    results_free(&ref);
    results_free(&got);
    dapt_tp_layout_free(&lay);
    dapt_model_free(&shard);
    dapt_model_free(&whole);
    dapt_grid_free(&g);
}

static void every_tensor_size(dapt_arch arch, int recompute)
{
    const int W = dapt_test_world_size();
    for (int T = 1; T <= W; T++)
        if (W % T == 0 && 4 % T == 0) compare_layout(arch, T, recompute);
}

static void test_bert(void) { every_tensor_size(DAPT_ARCH_BERT, 0); }
static void test_roberta(void) { every_tensor_size(DAPT_ARCH_ROBERTA, 0); }
static void test_recompute(void) { every_tensor_size(DAPT_ARCH_BERT, 1); }

/* A shard refuses to run outside a group of its size. */
static void test_group_mismatch(void)
{
    const dapt_model_config mc = tiny(DAPT_ARCH_BERT);
    dapt_grid g;
    CU_ASSERT_FATAL(dapt_grid_create(MPI_COMM_WORLD, 1, &g) == DAPT_OK);
    dapt_tp_group tp;
    dapt_grid_tp_group(&g, &tp);
    dapt_model m;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &m) == DAPT_OK);
    dapt_tp_layout lay;
    CU_ASSERT_FATAL(dapt_tp_shard_model(&g, &tp, &m, &lay) == DAPT_OK);
    /* Sharding twice is refused. */
    dapt_tp_layout again;
    CU_ASSERT(dapt_tp_shard_model(&g, &tp, &m, &again) == DAPT_ERR_ARG);
    dapt_tp_group bigger = tp;
    bigger.size = 2;
    m.tp = &bigger;
    dapt_workspace_spec spec = {B, S, 0, 0, 0};
    dapt_workspace *ws = NULL;
    CU_ASSERT_FATAL(dapt_workspace_create(&m, &spec, &ws) == DAPT_OK);
    inputs in;
    make_inputs(&mc, &in);
    dapt_batch b = {B, S, in.ids, NULL, NULL, NULL, NULL, 0, NULL};
    CU_ASSERT(dapt_model_forward(&m, ws, &b, NULL, NULL) == DAPT_ERR_ARG);
    dapt_workspace_free(ws);
    dapt_tp_layout_free(&lay);
    dapt_model_free(&m);
    dapt_grid_free(&g);
}

static void test_report(void)
{
    double w = worst_seen;
    MPI_Allreduce(MPI_IN_PLACE, &w, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) printf("\n  worst relative difference shard vs whole model: %.3g (tolerance %.1g)\n", w, TOL);
    CU_ASSERT(w <= TOL);
}

DAPT_TEST_MAIN("tensor-parallel engine",
               {"BERT: shard of every tensor size equals the whole model", test_bert},
               {"RoBERTa: shard of every tensor size equals the whole model", test_roberta},
               {"with layer recomputation", test_recompute},
               {"a shard refuses a group of another size", test_group_mismatch},
               {"worst difference", test_report})
