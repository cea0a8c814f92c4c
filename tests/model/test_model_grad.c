/* Finite-difference checks of the engine's backward, in train mode (dropout
 * on hidden states and attention probabilities), for BERT and RoBERTa with
 * padding, MLM and class labels, all three unit masks, an external gradient
 * on the last hidden state and a perturbation of the embedding output.
 *
 * Objective: J = loss + <R, last hidden state> for a fixed random R, so the
 * d_last_hidden path is checked too.  For every parameter tensor (hence each
 * layer's backward: embeddings, Q/K/V, attention output, both LayerNorms,
 * FFN in/out, pooler, MLM head, classifier), each unit mask and the
 * embedding delta, we compare the directional derivative <g, v> along a
 * random unit direction v with the central difference
 * (J(x + eps v) - J(x - eps v)) / (2 eps), eps = 1e-2.
 *
 * Tolerance: J ~ 10 is computed in float32, so each evaluation carries
 * ~1e-6 relative rounding (~1e-5 absolute); divided by 2 eps that is
 * ~5e-4.  The truncation error is eps^2 |J'''| / 6 ~ 2e-5 for O(1) third
 * derivatives.  So we accept |fd - <g, v>| <= 2e-3 + 1e-2 |<g, v>|; a
 * wrong backward (missing term, wrong mask) is off by O(|<g, v>|), which
 * we make large by choosing weights of std 0.3 (most directional
 * derivatives are 0.01 .. 1; the observed relative error is ~1e-4).
 *
 * The backward options (dapt_model_backward_ex) are checked the same way
 * with J = s * loss + <Gc, class logits> + <Gm, MLM logits> for random Gc,
 * Gm supplied as d_class_logits / d_mlm_logits, with labels (s = 0.5) and
 * without (MLM logits at every position); an input-gradient-only backward
 * (param_grads = 0) must leave m->grads bit-identical and give the same
 * embedding gradient, which is also differenced against embedding_delta. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/model.h"
#include "dapt/rng.h"
#include "harness.h"

#define EPS 1e-2
#define TOL_ABS 2e-4
#define TOL_REL 1e-2

typedef struct problem {
    dapt_model m;
    dapt_workspace *ws;
    int64_t B, S;
    int32_t ids[24], mask[24], tt[24], labels[24], cls[3];
    float reg[3];   /* regression targets, used when num_labels == 1 */
    float *hm, *im, *om, *delta, *R;
    dapt_run_opts opts;
    /* The objective: loss_scale * loss (+ <R, h^L> if use_R) + <Gc, class
     * logits> + <Gm, MLM logits> (each if not NULL); no_labels drops both
     * kinds of labels from the batch. */
    double loss_scale;
    int use_R, no_labels;
    float *Gc, *Gm;
    int64_t Gm_rows;
} problem;


/* num_labels 1 makes the head a regression head (MSE on p->reg). */
static void setup_ex(problem *p, dapt_arch arch, int64_t num_labels)
{
    memset(p, 0, sizeof *p);
    dapt_model_config mc = dapt_test_model_config(arch, 29, 12, 2, 3, 20, 16);
    mc.layer_norm_eps = 1e-5;
    mc.hidden_dropout = 0.1;
    mc.attention_dropout = 0.1;
    mc.initializer_range = 0.3;
    mc.num_labels = num_labels;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &p->m) == DAPT_OK);
    dapt_model_init_random(&p->m, 42);
    /* Non-trivial LayerNorm parameters and biases, so their paths matter. */
    dapt_rng r = dapt_rng_make(5, DAPT_RNG_TEST, 0);
    for (size_t i = 0; i < p->m.table.count; i++) {
        const dapt_tensor *t = &p->m.table.tensors[i];
        if (t->ndim != 1) continue;
        for (size_t e = 0; e < t->numel; e++) p->m.params[t->offset + e] += 0.2f * dapt_rng_normal(&r, i, e);
    }
    p->B = 3;
    p->S = 8;
    const int lengths[3] = {8, 6, 3};
    for (int b = 0; b < 3; b++)
        for (int s = 0; s < 8; s++) {
            int t = b * 8 + s;
            p->mask[t] = s < lengths[b];
            p->ids[t] = p->mask[t] ? 2 + (int32_t)(dapt_rng_u32(&r, 100, (uint64_t)t) % 27) : (int32_t)mc.pad_token_id;
            p->tt[t] = arch == DAPT_ARCH_BERT && s >= 4;
            p->labels[t] = (s % 3 == 1 && p->mask[t]) ? (int32_t)(dapt_rng_u32(&r, 101, (uint64_t)t) % 29)
                                                       : DAPT_IGNORE_LABEL;
        }
    p->cls[0] = 2;
    p->cls[1] = 0;
    p->cls[2] = 1;
    p->reg[0] = 0.7f;
    p->reg[1] = -1.3f;
    p->reg[2] = 2.1f;
    const int64_t L = mc.layers, T = p->B * p->S, H = mc.hidden;
    p->hm = malloc((size_t)(L * mc.heads) * sizeof(float));
    p->im = malloc((size_t)(L * mc.intermediate) * sizeof(float));
    p->om = malloc((size_t)(L * H) * sizeof(float));
    p->delta = malloc((size_t)(T * H) * sizeof(float));
    p->R = malloc((size_t)(T * H) * sizeof(float));
    for (int64_t i = 0; i < L * mc.heads; i++) p->hm[i] = 0.5f + dapt_rng_uniform(&r, 200, (uint64_t)i);
    for (int64_t i = 0; i < L * mc.intermediate; i++) p->im[i] = 0.5f + dapt_rng_uniform(&r, 201, (uint64_t)i);
    for (int64_t i = 0; i < L * H; i++) p->om[i] = 0.5f + dapt_rng_uniform(&r, 202, (uint64_t)i);
    for (int64_t i = 0; i < T * H; i++) {
        p->delta[i] = 0.05f * dapt_rng_normal(&r, 203, (uint64_t)i);
        p->R[i] = 0.3f * dapt_rng_normal(&r, 204, (uint64_t)i);
    }
    dapt_workspace_spec spec = {p->B, p->S, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&p->m, &spec, &p->ws) == DAPT_OK);
    p->opts.train = 1;
    p->opts.seed = 77;
    p->opts.step = 3;
    p->opts.embedding_delta = p->delta;
    p->loss_scale = 1.0;
    p->use_R = 1;
}

static void setup(problem *p, dapt_arch arch) { setup_ex(p, arch, 3); }

static void teardown(problem *p)
{
    dapt_workspace_free(p->ws);
    dapt_model_free(&p->m);
    free(p->hm);
    free(p->im);
    free(p->om);
    free(p->delta);
    free(p->R);
    free(p->Gc);
    free(p->Gm);
}

static double objective(problem *p)
{
    const int regression = p->m.config.num_labels == 1;
    dapt_batch b = {p->B, p->S, p->ids, p->mask, p->tt, p->no_labels ? NULL : p->labels,
                    p->no_labels || regression ? NULL : p->cls, 10,
                    p->no_labels || !regression ? NULL : p->reg};
    dapt_unit_masks um = {p->hm, p->im, p->om};
    CU_ASSERT_FATAL(dapt_model_forward(&p->m, p->ws, &b, &um, &p->opts) == DAPT_OK);
    double j = p->loss_scale * dapt_ws_loss(p->ws);
    const float *h = dapt_ws_last_hidden(p->ws);
    if (p->use_R)
        for (int64_t i = 0; i < p->B * p->S * p->m.config.hidden; i++) j += (double)p->R[i] * h[i];
    if (p->Gc) {
        const float *z = dapt_ws_class_logits(p->ws);
        for (int64_t i = 0; i < p->B * p->m.config.num_labels; i++) j += (double)p->Gc[i] * z[i];
    }
    if (p->Gm) {
        int64_t rows;
        const float *z = dapt_ws_mlm_logits(p->ws, &rows, NULL);
        CU_ASSERT_FATAL(rows == p->Gm_rows);
        for (int64_t i = 0; i < rows * p->m.ranges.vocab_rows; i++) j += (double)p->Gm[i] * z[i];
    }
    return j;
}

static double worst_rel = 0.0;
static int checked = 0;

/* Directional check of gradient g of the n floats at x; rows listed in
 * skip_rows (of width `width`) are left out of the direction. */
static void check_direction(problem *p, const char *what, float *x, const float *g, size_t n, uint64_t salt,
                            size_t width, const int64_t *skip_rows, int nskip)
{
    dapt_rng r = dapt_rng_make(11, DAPT_RNG_TEST, salt);
    float *v = malloc(n * sizeof *v), *x0 = malloc(n * sizeof *x0);
    double norm = 0.0;
    for (size_t i = 0; i < n; i++) {
        v[i] = dapt_rng_normal(&r, 0, i);
        for (int k = 0; k < nskip; k++)
            if (i / width == (size_t)skip_rows[k]) v[i] = 0.0f;
        norm += (double)v[i] * v[i];
    }
    double analytic = 0.0;
    for (size_t i = 0; i < n; i++) {
        v[i] = (float)(v[i] / sqrt(norm));
        analytic += (double)g[i] * v[i];
    }
    memcpy(x0, x, n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] + (float)EPS * v[i];
    double jp = objective(p);
    for (size_t i = 0; i < n; i++) x[i] = x0[i] - (float)EPS * v[i];
    double jm = objective(p);
    memcpy(x, x0, n * sizeof *x);
    double fd = (jp - jm) / (2 * EPS);
    double err = fabs(fd - analytic), tol = TOL_ABS + TOL_REL * fabs(analytic);
    double rel = err / fmax(fabs(analytic), 1e-30);
    if (fabs(analytic) >= 0.01 && rel > worst_rel) worst_rel = rel;
    checked++;
    if (err > tol) fprintf(stderr, "  %-28s analytic %+.6f  fd %+.6f  rel err %.2e\n", what, analytic, fd, rel);
    CU_ASSERT(err <= tol);
    free(v);
    free(x0);
}

static void run_ex(dapt_arch arch, int64_t num_labels)
{
    problem p;
    setup_ex(&p, arch, num_labels);
    dapt_model *m = &p.m;
    const dapt_model_config *mc = &m->config;
    const int64_t L = mc->layers, H = mc->hidden, T = p.B * p.S;
    (void)objective(&p);
    float *ghm = calloc((size_t)(L * mc->heads), sizeof(float));
    float *gim = calloc((size_t)(L * mc->intermediate), sizeof(float));
    float *gom = calloc((size_t)(L * H), sizeof(float));
    dapt_unit_mask_grads mg = {ghm, gim, gom};
    dapt_model_zero_grads(m);
    CU_ASSERT_FATAL(dapt_model_backward(m, p.ws, 1.0, p.R, &mg) == DAPT_OK);
    float *gparams = malloc(m->table.total * sizeof(float));
    memcpy(gparams, m->grads, m->table.total * sizeof(float));
    float *gdelta = malloc((size_t)(T * H) * sizeof(float));
    memcpy(gdelta, dapt_ws_embedding_grad(p.ws), (size_t)(T * H) * sizeof(float));

    for (size_t i = 0; i < m->table.count; i++) {
        const dapt_tensor *t = &m->table.tensors[i];
        /* RoBERTa's classifier reads <s>, not the pooler: its gradient is
         * exactly zero, checked below instead. */
        if (arch == DAPT_ARCH_ROBERTA && !strncmp(t->name, "pooler.", 7)) {
            for (size_t e = 0; e < t->numel; e++) CU_ASSERT_EQUAL(gparams[t->offset + e], 0.0f);
            continue;
        }
        /* The key bias shifts every score of a query row by the same amount,
         * which softmax ignores: its gradient is exactly zero. */
        if (strstr(t->name, "attn.k.bias")) {
            for (size_t e = 0; e < t->numel; e++) CU_ASSERT(fabsf(gparams[t->offset + e]) < 1e-6f);
            continue;
        }
        /* nn.Embedding(padding_idx) semantics: the padding row is used in
         * forward but gets no gradient from the lookup, so the true
         * derivative differs there by design; leave it out of the direction. */
        int64_t pad = mc->pad_token_id;
        int skip = !strcmp(t->name, "embeddings.word") ||
                   (arch == DAPT_ARCH_ROBERTA && !strcmp(t->name, "embeddings.position"));
        check_direction(&p, t->name, m->params + t->offset, gparams + t->offset, t->numel, i,
                        (size_t)t->shape[1], &pad, skip);
    }
    check_direction(&p, "head mask", p.hm, ghm, (size_t)(L * mc->heads), 1000, 1, NULL, 0);
    check_direction(&p, "intermediate mask", p.im, gim, (size_t)(L * mc->intermediate), 1001, 1, NULL, 0);
    check_direction(&p, "output mask", p.om, gom, (size_t)(L * H), 1002, 1, NULL, 0);
    check_direction(&p, "embedding delta", p.delta, gdelta, (size_t)(T * H), 1003, 1, NULL, 0);
    free(ghm);
    free(gim);
    free(gom);
    free(gparams);
    free(gdelta);
    teardown(&p);
}

static void run(dapt_arch arch) { run_ex(arch, 3); }

static void test_bert_fd(void) { run(DAPT_ARCH_BERT); }
static void test_roberta_fd(void) { run(DAPT_ARCH_ROBERTA); }

static double max_diff(const float *a, const float *b, size_t n)
{
    double d = 0.0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    printf(" [max diff %.3g]", d);
    return d;
}

/* Dropout masks depend on the global sample index, not on the row. */
static void test_dropout_keyed_by_sample(void)
{
    problem p;
    setup(&p, DAPT_ARCH_BERT);
    const int64_t S = p.S, H = p.m.config.hidden;
    dapt_batch all = {3, S, p.ids, p.mask, p.tt, NULL, NULL, 10, NULL};
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &all, NULL, &p.opts) == DAPT_OK);
    float *ref = malloc((size_t)(S * H) * sizeof(float));
    memcpy(ref, dapt_ws_last_hidden(p.ws) + 2 * S * H, (size_t)(S * H) * sizeof(float));
    /* Sample 12 alone (global index 12 = row 2 of the batch above). */
    dapt_batch one = {1, S, p.ids + 2 * S, p.mask + 2 * S, p.tt + 2 * S, NULL, NULL, 12, NULL};
    p.opts.embedding_delta = NULL;
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &all, NULL, &p.opts) == DAPT_OK);
    memcpy(ref, dapt_ws_last_hidden(p.ws) + 2 * S * H, (size_t)(S * H) * sizeof(float));
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &one, NULL, &p.opts) == DAPT_OK);
    /* Same masks; sgemm may round differently for another row count, so
     * allow float noise (a different mask changes values by O(0.1)). */
    CU_ASSERT(max_diff(ref, dapt_ws_last_hidden(p.ws), (size_t)(S * H)) < 1e-5);
    /* Another step draws other masks. */
    p.opts.step = 4;
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &one, NULL, &p.opts) == DAPT_OK);
    CU_ASSERT(max_diff(ref, dapt_ws_last_hidden(p.ws), (size_t)(S * H)) > 1e-2);
    free(ref);
    teardown(&p);
}

static void test_rejects_bad_batches(void)
{
    problem p;
    setup(&p, DAPT_ARCH_BERT);
    dapt_batch b = {3, p.S, p.ids, p.mask, p.tt, p.labels, p.cls, 0, NULL};
    p.ids[5] = 29;
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &b, NULL, NULL) == DAPT_ERR_ARG);
    CU_ASSERT(strstr(dapt_error_message(), "input_ids[0][5]") != NULL);
    p.ids[5] = 3;
    p.labels[7] = 400;
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &b, NULL, NULL) == DAPT_ERR_ARG);
    p.labels[7] = DAPT_IGNORE_LABEL;
    p.cls[1] = 3;
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &b, NULL, NULL) == DAPT_ERR_ARG);
    p.cls[1] = 0;
    b.batch = 4;
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &b, NULL, NULL) == DAPT_ERR_ARG);
    b.batch = 3;
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &b, NULL, NULL) == DAPT_OK);
    /* Sized for 2 MLM rows: the batch has more. */
    dapt_workspace *small = NULL;
    dapt_workspace_spec spec = {3, p.S, 2, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&p.m, &spec, &small) == DAPT_OK);
    CU_ASSERT(dapt_model_forward(&p.m, small, &b, NULL, NULL) == DAPT_ERR_ARG);
    dapt_workspace_free(small);
    /* Backward needs a training workspace. */
    spec.training = 0;
    spec.max_mlm_rows = 0;
    CU_ASSERT_FATAL(dapt_workspace_create(&p.m, &spec, &small) == DAPT_OK);
    CU_ASSERT(dapt_model_forward(&p.m, small, &b, NULL, NULL) == DAPT_OK);
    CU_ASSERT(dapt_model_backward(&p.m, small, 1.0, NULL, NULL) == DAPT_ERR_ARG);
    dapt_workspace_free(small);
    teardown(&p);
}

static void test_init_random(void)
{
    problem p;
    setup(&p, DAPT_ARCH_ROBERTA);
    dapt_model m2;
    CU_ASSERT_FATAL(dapt_model_create(&p.m.config, &m2) == DAPT_OK);
    dapt_model_init_random(&m2, 42);
    const int64_t H = m2.config.hidden;
    const float *word = dapt_model_param(&m2, "embeddings.word");
    const float *pos = dapt_model_param(&m2, "embeddings.position");
    for (int64_t j = 0; j < H; j++) {
        CU_ASSERT_EQUAL(word[1 * H + j], 0.0f); /* RoBERTa pad = 1 */
        CU_ASSERT_EQUAL(pos[1 * H + j], 0.0f);
        CU_ASSERT_EQUAL(dapt_model_param(&m2, "layer.0.attn.ln.weight")[j], 1.0f);
        CU_ASSERT_EQUAL(dapt_model_param(&m2, "layer.0.attn.ln.bias")[j], 0.0f);
        CU_ASSERT_EQUAL(dapt_model_param(&m2, "layer.1.ffn.out.bias")[j], 0.0f);
    }
    /* Sample std of a weight matrix ~ initializer_range (0.3). */
    const dapt_tensor *t = dapt_param_find(&m2.table, "layer.1.ffn.in.weight");
    double s2 = 0.0;
    for (size_t e = 0; e < t->numel; e++) s2 += (double)m2.params[t->offset + e] * m2.params[t->offset + e];
    double sd = sqrt(s2 / (double)t->numel);
    CU_ASSERT(fabs(sd - 0.3) < 0.03); /* 240 samples: sd of the estimate ~0.014 */
    dapt_model_free(&m2);
    teardown(&p);
}

/* Unit-mask gradients requested without masks (the DAS importance pass)
 * equal those at masks of ones; loss_scale and the denominators scale the
 * gradient linearly (gradient accumulation, data-parallel global counts). */
static void test_mask_grads_and_scaling(void)
{
    problem p;
    setup(&p, DAPT_ARCH_BERT);
    dapt_model *m = &p.m;
    const dapt_model_config *mc = &m->config;
    const int64_t L = mc->layers, NH = mc->heads, F = mc->intermediate, H = mc->hidden;
    dapt_batch b = {p.B, p.S, p.ids, p.mask, p.tt, p.labels, p.cls, 10, NULL};
    p.opts.embedding_delta = NULL;
    float *g1[3], *g2[3];
    const size_t n[3] = {(size_t)(L * NH), (size_t)(L * F), (size_t)(L * H)};
    for (int k = 0; k < 3; k++) {
        g1[k] = calloc(n[k], sizeof(float));
        g2[k] = calloc(n[k], sizeof(float));
    }
    for (int64_t i = 0; i < L * NH; i++) p.hm[i] = 1.0f;
    for (int64_t i = 0; i < L * F; i++) p.im[i] = 1.0f;
    for (int64_t i = 0; i < L * H; i++) p.om[i] = 1.0f;
    dapt_unit_masks ones = {p.hm, p.im, p.om};
    dapt_unit_mask_grads a = {g1[0], g1[1], g1[2]}, c = {g2[0], g2[1], g2[2]};
    CU_ASSERT_FATAL(dapt_model_forward(m, p.ws, &b, NULL, &p.opts) == DAPT_OK);
    dapt_model_zero_grads(m);
    CU_ASSERT_FATAL(dapt_model_backward(m, p.ws, 1.0, NULL, &a) == DAPT_OK);
    float *ref = malloc(m->table.total * sizeof(float));
    memcpy(ref, m->grads, m->table.total * sizeof(float));
    CU_ASSERT_FATAL(dapt_model_forward(m, p.ws, &b, &ones, &p.opts) == DAPT_OK);
    dapt_model_zero_grads(m);
    CU_ASSERT_FATAL(dapt_model_backward(m, p.ws, 1.0, NULL, &c) == DAPT_OK);
    for (int k = 0; k < 3; k++) CU_ASSERT(memcmp(g1[k], g2[k], n[k] * sizeof(float)) == 0);
    CU_ASSERT(memcmp(ref, m->grads, m->table.total * sizeof(float)) == 0);
    double nonzero = 0.0;
    for (size_t i = 0; i < n[0]; i++) nonzero += fabs(g1[0][i]);
    CU_ASSERT(nonzero > 0.0);

    /* Doubling both denominators and the loss scale leaves the gradient. */
    int64_t labelled;
    (void)dapt_ws_mlm_loss(p.ws, &labelled); /* from the last forward, local counts */
    CU_ASSERT_FATAL(labelled > 0);
    p.opts.mlm_denominator = 2.0 * (double)labelled;
    p.opts.cls_denominator = 2.0 * 3; /* three labelled samples */
    CU_ASSERT_FATAL(dapt_model_forward(m, p.ws, &b, NULL, &p.opts) == DAPT_OK);
    double half = dapt_ws_loss(p.ws);
    dapt_model_zero_grads(m);
    CU_ASSERT_FATAL(dapt_model_backward(m, p.ws, 2.0, NULL, NULL) == DAPT_OK);
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < m->table.total; i++) {
        worst = fmax(worst, fabs((double)m->grads[i] - ref[i]));
        scale = fmax(scale, fabs(ref[i]));
    }
    CU_ASSERT(worst <= 1e-6 * scale);
    p.opts.mlm_denominator = p.opts.cls_denominator = 0.0;
    CU_ASSERT_FATAL(dapt_model_forward(m, p.ws, &b, NULL, &p.opts) == DAPT_OK);
    CU_ASSERT_DOUBLE_EQUAL(dapt_ws_loss(p.ws), 2.0 * half, 1e-6);
    free(ref);
    for (int k = 0; k < 3; k++) {
        free(g1[k]);
        free(g2[k]);
    }
    teardown(&p);
}

/* Every parameter tensor of gradient gparams along a random direction (the
 * exceptions of run(): RoBERTa's unused pooler and the key bias have exactly
 * zero gradient, the padding rows are left out). */
static void check_params(problem *p, const float *gparams, uint64_t salt)
{
    dapt_model *m = &p->m;
    const dapt_model_config *mc = &m->config;
    for (size_t i = 0; i < m->table.count; i++) {
        const dapt_tensor *t = &m->table.tensors[i];
        if ((mc->arch == DAPT_ARCH_ROBERTA && !strncmp(t->name, "pooler.", 7)) || strstr(t->name, "attn.k.bias")) {
            for (size_t e = 0; e < t->numel; e++) CU_ASSERT(fabsf(gparams[t->offset + e]) < 1e-6f);
            continue;
        }
        int64_t pad = mc->pad_token_id;
        int skip = !strcmp(t->name, "embeddings.word") ||
                   (mc->arch == DAPT_ARCH_ROBERTA && !strcmp(t->name, "embeddings.position"));
        check_direction(p, t->name, m->params + t->offset, gparams + t->offset, t->numel, salt + i,
                        (size_t)t->shape[1], &pad, skip);
    }
}

/* J = s * loss + <Gc, class logits> + <Gm, MLM logits> through the backward
 * options; with labels (s = 0.5, MLM logits of the labelled rows) or
 * without (no loss; MLM logits at every position). */
static void run_logits_ex(dapt_arch arch, int labels, int64_t num_labels)
{
    problem p;
    setup_ex(&p, arch, num_labels);
    dapt_model *m = &p.m;
    const dapt_model_config *mc = &m->config;
    const int64_t L = mc->layers, H = mc->hidden, T = p.B * p.S, C = mc->num_labels, V = m->ranges.vocab_rows;
    p.use_R = 0;
    p.no_labels = !labels;
    p.loss_scale = labels ? 0.5 : 1.0;
    p.opts.mlm_all_positions = !labels;
    (void)objective(&p);
    (void)dapt_ws_mlm_logits(p.ws, &p.Gm_rows, NULL);
    CU_ASSERT_FATAL(p.Gm_rows == (labels ? 6 : T)); /* labelled: s % 3 == 1 within lengths 8, 6, 3 */
    dapt_rng r = dapt_rng_make(9, DAPT_RNG_TEST, (uint64_t)(2 * arch + labels));
    p.Gc = malloc((size_t)(p.B * C) * sizeof(float));
    p.Gm = malloc((size_t)(p.Gm_rows * V) * sizeof(float));
    for (int64_t i = 0; i < p.B * C; i++) p.Gc[i] = dapt_rng_normal(&r, 0, (uint64_t)i);
    for (int64_t i = 0; i < p.Gm_rows * V; i++) p.Gm[i] = 0.2f * dapt_rng_normal(&r, 1, (uint64_t)i);

    const size_t nm[3] = {(size_t)(L * mc->heads), (size_t)(L * mc->intermediate), (size_t)(L * H)};
    float *g1[3], *g0[3];
    for (int k = 0; k < 3; k++) {
        g1[k] = calloc(nm[k], sizeof(float));
        g0[k] = calloc(nm[k], sizeof(float));
    }
    dapt_unit_mask_grads mg1 = {g1[0], g1[1], g1[2]}, mg0 = {g0[0], g0[1], g0[2]};
    dapt_backward_opts o = DAPT_BACKWARD_OPTS_INIT;
    o.loss_scale = p.loss_scale;
    o.d_class_logits = p.Gc;
    o.d_mlm_logits = p.Gm;
    o.mask_grads = &mg1;
    (void)objective(&p);
    dapt_model_zero_grads(m);
    CU_ASSERT_FATAL(dapt_model_backward_ex(m, p.ws, &o) == DAPT_OK);
    float *gparams = malloc(m->table.total * sizeof(float));
    memcpy(gparams, m->grads, m->table.total * sizeof(float));
    float *gdelta = malloc((size_t)(T * H) * sizeof(float));
    memcpy(gdelta, dapt_ws_embedding_grad(p.ws), (size_t)(T * H) * sizeof(float));

    check_params(&p, gparams, 2000);
    check_direction(&p, "head mask", p.hm, g1[0], nm[0], 3000, 1, NULL, 0);
    check_direction(&p, "intermediate mask", p.im, g1[1], nm[1], 3001, 1, NULL, 0);
    check_direction(&p, "output mask", p.om, g1[2], nm[2], 3002, 1, NULL, 0);

    /* Input gradients only: m->grads (here holding the gradient above plus
     * an offset, so that "untouched" is visible) stays bit-identical; the
     * embedding and unit-mask gradients are those of the full backward. */
    for (size_t i = 0; i < m->table.total; i++) m->grads[i] = gparams[i] + 0.25f;
    float *before = malloc(m->table.total * sizeof(float));
    memcpy(before, m->grads, m->table.total * sizeof(float));
    o.param_grads = 0;
    o.mask_grads = &mg0;
    (void)objective(&p);
    CU_ASSERT_FATAL(dapt_model_backward_ex(m, p.ws, &o) == DAPT_OK);
    CU_ASSERT(memcmp(before, m->grads, m->table.total * sizeof(float)) == 0);
    CU_ASSERT(memcmp(gdelta, dapt_ws_embedding_grad(p.ws), (size_t)(T * H) * sizeof(float)) == 0);
    for (int k = 0; k < 3; k++) CU_ASSERT(memcmp(g0[k], g1[k], nm[k] * sizeof(float)) == 0);
    /* d J / d embedding_delta = the embedding-output gradient. */
    memcpy(gdelta, dapt_ws_embedding_grad(p.ws), (size_t)(T * H) * sizeof(float));
    check_direction(&p, "embedding delta (inputs only)", p.delta, gdelta, (size_t)(T * H), 3003, 1, NULL, 0);

    for (int k = 0; k < 3; k++) {
        free(g1[k]);
        free(g0[k]);
    }
    free(before);
    free(gparams);
    free(gdelta);
    teardown(&p);
}

static void run_logits(dapt_arch arch, int labels) { run_logits_ex(arch, labels, 3); }

static void test_bert_logit_grads(void) { run_logits(DAPT_ARCH_BERT, 1); }
static void test_roberta_logit_grads(void) { run_logits(DAPT_ARCH_ROBERTA, 1); }
static void test_bert_logit_grads_unlabelled(void) { run_logits(DAPT_ARCH_BERT, 0); }
static void test_roberta_logit_grads_unlabelled(void) { run_logits(DAPT_ARCH_ROBERTA, 0); }

/* The objective of run() (loss + <R, h^L>, labels, all masks): input
 * gradients only give the embedding gradient of the full backward bit for
 * bit and leave m->grads alone, also with recomputation. */
static void test_inputs_only(void)
{
    for (int recompute = 0; recompute < 2; recompute++) {
        problem p;
        setup(&p, DAPT_ARCH_BERT);
        dapt_model *m = &p.m;
        const int64_t T = p.B * p.S, H = m->config.hidden;
        if (recompute) {
            dapt_workspace_free(p.ws);
            dapt_workspace_spec spec = {p.B, p.S, 0, 1, 1};
            CU_ASSERT_FATAL(dapt_workspace_create(m, &spec, &p.ws) == DAPT_OK);
        }
        dapt_backward_opts o = DAPT_BACKWARD_OPTS_INIT;
        o.d_last_hidden = p.R;
        (void)objective(&p);
        dapt_model_zero_grads(m);
        CU_ASSERT_FATAL(dapt_model_backward_ex(m, p.ws, &o) == DAPT_OK);
        float *full = malloc((size_t)(T * H) * sizeof(float)), *grads = malloc(m->table.total * sizeof(float));
        memcpy(full, dapt_ws_embedding_grad(p.ws), (size_t)(T * H) * sizeof(float));
        memcpy(grads, m->grads, m->table.total * sizeof(float));
        o.param_grads = 0;
        (void)objective(&p);
        CU_ASSERT_FATAL(dapt_model_backward_ex(m, p.ws, &o) == DAPT_OK);
        CU_ASSERT(memcmp(grads, m->grads, m->table.total * sizeof(float)) == 0);
        CU_ASSERT(memcmp(full, dapt_ws_embedding_grad(p.ws), (size_t)(T * H) * sizeof(float)) == 0);
        /* The wrapper is the same backward. */
        (void)objective(&p);
        dapt_model_zero_grads(m);
        CU_ASSERT_FATAL(dapt_model_backward(m, p.ws, 1.0, p.R, NULL) == DAPT_OK);
        CU_ASSERT(memcmp(grads, m->grads, m->table.total * sizeof(float)) == 0);
        free(full);
        free(grads);
        teardown(&p);
    }
}

/* Options the model cannot honour, and a swapped parameter buffer. */
static void test_backward_opts_refused(void)
{
    problem p;
    setup(&p, DAPT_ARCH_BERT);
    dapt_model *m = &p.m;
    dapt_model_config mc = m->config;
    mc.num_labels = 0;
    mc.has_mlm_head = 0;
    dapt_model bare;
    CU_ASSERT_FATAL(dapt_model_create(&mc, &bare) == DAPT_OK);
    dapt_model_init_random(&bare, 1);
    dapt_workspace *ws = NULL;
    dapt_workspace_spec spec = {p.B, p.S, 0, 1, 0};
    CU_ASSERT_FATAL(dapt_workspace_create(&bare, &spec, &ws) == DAPT_OK);
    dapt_batch b = {p.B, p.S, p.ids, p.mask, p.tt, NULL, NULL, 0, NULL};
    dapt_backward_opts o = DAPT_BACKWARD_OPTS_INIT;
    o.d_class_logits = p.R;
    CU_ASSERT_FATAL(dapt_model_forward(&bare, ws, &b, NULL, NULL) == DAPT_OK);
    CU_ASSERT(dapt_model_backward_ex(&bare, ws, &o) == DAPT_ERR_ARG);
    o.d_class_logits = NULL;
    o.d_mlm_logits = p.R;
    CU_ASSERT(dapt_model_backward_ex(&bare, ws, &o) == DAPT_ERR_ARG);
    CU_ASSERT(dapt_model_backward_ex(&bare, ws, NULL) == DAPT_OK);
    dapt_workspace_free(ws);
    dapt_model_free(&bare);

    /* Replacing m->params without dapt_model_resolve is refused. */
    float *old = m->params, *copy = malloc(m->table.total * sizeof(float));
    memcpy(copy, old, m->table.total * sizeof(float));
    m->params = copy;
    dapt_batch full = {p.B, p.S, p.ids, p.mask, p.tt, p.labels, p.cls, 10, NULL};
    CU_ASSERT(dapt_model_forward(m, p.ws, &full, NULL, &p.opts) == DAPT_ERR_ARG);
    CU_ASSERT(strstr(dapt_error_message(), "dapt_model_resolve") != NULL);
    CU_ASSERT_FATAL(dapt_model_resolve(m) == DAPT_OK);
    CU_ASSERT(dapt_model_forward(m, p.ws, &full, NULL, &p.opts) == DAPT_OK);
    const double loss = dapt_ws_loss(p.ws);
    m->params = old;
    free(copy);
    CU_ASSERT_FATAL(dapt_model_resolve(m) == DAPT_OK);
    CU_ASSERT_FATAL(dapt_model_forward(m, p.ws, &full, NULL, &p.opts) == DAPT_OK);
    CU_ASSERT_EQUAL(dapt_ws_loss(p.ws), loss);
    teardown(&p);
}

/* num_labels = 1: the head's loss is the MSE to float labels; its gradients
 * (parameters, masks, embedding delta, and with caller-supplied logit
 * gradients) are differenced like the classifier's. */
static void test_bert_regression_fd(void) { run_ex(DAPT_ARCH_BERT, 1); }
static void test_roberta_regression_fd(void) { run_ex(DAPT_ARCH_ROBERTA, 1); }
static void test_bert_regression_logit_grads(void) { run_logits_ex(DAPT_ARCH_BERT, 1, 1); }
static void test_roberta_regression_logit_grads(void) { run_logits_ex(DAPT_ARCH_ROBERTA, 0, 1); }

/* The regression loss is sum (logit - label)^2 / cls_denominator (0 = the
 * scored samples; NaN labels are unscored), and label kinds that do not fit
 * the head are refused. */
static void test_regression_loss(void)
{
    problem p;
    setup_ex(&p, DAPT_ARCH_BERT, 1);
    p.opts.train = 0;
    p.opts.embedding_delta = NULL;
    dapt_batch b = {p.B, p.S, p.ids, p.mask, p.tt, NULL, NULL, 0, p.reg};
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &b, NULL, &p.opts) == DAPT_OK);
    const float *z = dapt_ws_class_logits(p.ws);
    double sum = 0.0;
    for (int i = 0; i < 3; i++) sum += ((double)z[i] - p.reg[i]) * ((double)z[i] - p.reg[i]);
    CU_ASSERT(fabs(dapt_ws_cls_loss(p.ws) - sum / 3) <= 1e-6 * sum);
    p.opts.cls_denominator = 8.0;
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &b, NULL, &p.opts) == DAPT_OK);
    CU_ASSERT(fabs(dapt_ws_cls_loss(p.ws) - sum / 8) <= 1e-6 * sum);
    p.opts.cls_denominator = 0.0;
    p.reg[1] = NAN;
    CU_ASSERT_FATAL(dapt_model_forward(&p.m, p.ws, &b, NULL, &p.opts) == DAPT_OK);
    const double part = ((double)z[0] - p.reg[0]) * ((double)z[0] - p.reg[0]) +
                        ((double)z[2] - p.reg[2]) * ((double)z[2] - p.reg[2]);
    CU_ASSERT(fabs(dapt_ws_cls_loss(p.ws) - part / 2) <= 1e-6 * part);
    dapt_batch wrong = {p.B, p.S, p.ids, p.mask, p.tt, NULL, p.cls, 0, NULL};
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &wrong, NULL, &p.opts) == DAPT_ERR_ARG);
    teardown(&p);
    setup(&p, DAPT_ARCH_BERT);
    p.reg[1] = 0.0f;
    CU_ASSERT(dapt_model_forward(&p.m, p.ws, &b, NULL, &p.opts) == DAPT_ERR_ARG);
    CU_ASSERT(strstr(dapt_error_message(), "regression") != NULL);
    teardown(&p);
}

static void test_report(void)
{
    printf("\n  %d directional derivatives, worst relative error %.3g\n", checked, worst_rel);
    CU_ASSERT(checked > 40);
}

DAPT_TEST_MAIN("model gradients", {"BERT: finite differences, train mode", test_bert_fd},
               {"RoBERTa: finite differences, train mode", test_roberta_fd},
               {"dropout keyed by global sample", test_dropout_keyed_by_sample},
               {"bad batches refused", test_rejects_bad_batches},
               {"random initialisation", test_init_random},
               {"mask gradients without masks; loss scaling", test_mask_grads_and_scaling},
               {"BERT: gradients on the logits, finite differences", test_bert_logit_grads},
               {"RoBERTa: gradients on the logits, finite differences", test_roberta_logit_grads},
               {"BERT: logit gradients without labels", test_bert_logit_grads_unlabelled},
               {"RoBERTa: logit gradients without labels", test_roberta_logit_grads_unlabelled},
               {"input gradients only", test_inputs_only},
               {"backward options refused; swapped buffers", test_backward_opts_refused},
               {"BERT regression head: finite differences, train mode", test_bert_regression_fd},
               {"RoBERTa regression head: finite differences, train mode", test_roberta_regression_fd},
               {"BERT regression head: gradients on the logit", test_bert_regression_logit_grads},
               {"RoBERTa regression head: logit gradient without labels", test_roberta_regression_logit_grads},
               {"regression loss: MSE over the batch; wrong label kinds refused", test_regression_loss},
               {"summary", test_report})
