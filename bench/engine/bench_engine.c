/* Engine benchmark: one MLM training step (forward, backward, AdamW) and
 * forward-only throughput for bert-base or a small config, against the
 * sgemm peak measured in the same process.
 *
 *   bench_engine base|small [steps]      (bench/engine/run.sh runs both
 *                                         with PyTorch alongside)
 *
 * Batch: random token ids (no padding); 15% of positions carry an MLM label,
 * chosen by the rule bench_torch.py uses too (Knuth hash of the position <
 * 0.15 * 2^32), and only those go through the MLM head.  Dropout 0.1 on.
 * Model FLOPs per step = 3 x forward (dapt_model_forward_flops: 2 per
 * multiply-add of every matmul). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "dapt/model.h"
#include "dapt/optim.h"
#include "dapt/status.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sgemm_peak(void)
{
    const int n = 2048;
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b),
          *c = malloc((size_t)n * n * sizeof *c);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 17) * 0.01f;
        b[i] = (float)(i % 13) * 0.01f;
    }
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double *c = malloc((size_t)n * sizeof *c);
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, cmp_double);
    double r = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    free(c);
    return r;
}

static double minimum(const double *v, int n)
{
    double r = v[0];
    for (int i = 1; i < n; i++) r = v[i] < r ? v[i] : r;
    return r;
}

static void die(dapt_status st)
{
    fprintf(stderr, "bench_engine: %s: %s\n", dapt_status_name(st), dapt_error_message());
    exit(1);
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "small";
    int steps = argc > 2 ? atoi(argv[2]) : 5;
    dapt_model_config mc = {0};
    mc.arch = DAPT_ARCH_BERT;
    mc.vocab_size = 30522;
    mc.max_position = 512;
    mc.type_vocab_size = 2;
    mc.pad_token_id = 0;
    mc.layer_norm_eps = 1e-12;
    mc.hidden_dropout = 0.1;
    mc.attention_dropout = 0.1;
    mc.initializer_range = 0.02;
    mc.has_pooler = 1;
    mc.has_mlm_head = 1;
    int64_t B, S = 128;
    if (!strcmp(which, "base")) {
        mc.hidden = 768;
        mc.layers = 12;
        mc.heads = 12;
        mc.intermediate = 3072;
        B = 8;
    } else {
        mc.hidden = 256;
        mc.layers = 4;
        mc.heads = 4;
        mc.intermediate = 1024;
        B = 32;
    }
    const int64_t T = B * S;
    double peak = sgemm_peak();

    dapt_model m;
    dapt_status st = dapt_model_create(&mc, &m);
    if (st) die(st);
    dapt_model_init_random(&m, 1);
    float *adam_m = calloc(m.table.total, sizeof(float)), *adam_v = calloc(m.table.total, sizeof(float));
    if (!adam_m || !adam_v) die(DAPT_ERROR(DAPT_ERR_NOMEM, "Adam moments"));
    int32_t *ids = malloc((size_t)T * sizeof *ids), *labels = malloc((size_t)T * sizeof *labels);
    int64_t masked = 0;
    for (int64_t t = 0; t < T; t++) {
        uint32_t h = (uint32_t)((uint64_t)(t + 1) * 2654435761u);
        ids[t] = 1000 + (int32_t)(h % 20000u);
        int sel = (double)h < 0.15 * 4294967296.0;
        labels[t] = sel ? ids[t] : DAPT_IGNORE_LABEL;
        if (sel) {
            ids[t] = 103; /* [MASK] */
            masked++;
        }
    }
    dapt_workspace_spec spec = {B, S, masked, 1, 0};
    dapt_workspace *ws;
    if ((st = dapt_workspace_create(&m, &spec, &ws))) die(st);
    dapt_batch b = {B, S, ids, NULL, NULL, labels, NULL, 0, NULL};
    dapt_run_opts opts = {0};
    opts.train = 1;
    opts.seed = 1;
    dapt_adamw opt = {0.9, 0.999, 1e-6, 0.01, 0};
    const double fwd_flops = dapt_model_forward_flops(&mc, B, S, masked);

    /* Per-step times; the machine may be shared, so report the minimum (the
     * least disturbed step) and the median. */
    double *tfs = calloc((size_t)steps, sizeof *tfs), *tbs = calloc((size_t)steps, sizeof *tbs),
           *tas = calloc((size_t)steps, sizeof *tas), *tss = calloc((size_t)steps, sizeof *tss);
    double loss0 = 0, loss = 0;
    for (int s = -1; s < steps; s++) { /* step -1 warms up */
        opts.step = (uint64_t)(s + 1);
        double t0 = now();
        if ((st = dapt_model_forward(&m, ws, &b, NULL, &opts))) die(st);
        double t1 = now();
        dapt_model_zero_grads(&m);
        if ((st = dapt_model_backward(&m, ws, 1.0, NULL, NULL))) die(st);
        double t2 = now();
        dapt_adamw_advance(&opt);
        if ((st = dapt_adamw_update(&opt, 1e-4, &m.table, 0, m.table.total, m.params, m.grads, adam_m, adam_v)))
            die(st);
        double t3 = now();
        loss = dapt_ws_loss(ws);
        if (s < 0) {
            loss0 = loss;
            continue;
        }
        tfs[s] = t1 - t0;
        tbs[s] = t2 - t1;
        tas[s] = t3 - t2;
        tss[s] = t3 - t0;
    }
    const double step = median(tss, steps), step_min = minimum(tss, steps);
    const double tf = median(tfs, steps), tb = median(tbs, steps), ta = median(tas, steps);
    const double fb_min = minimum(tfs, steps) + minimum(tbs, steps);
    const double train_gflops = 3.0 * fwd_flops / (tf + tb) / 1e9;
    const double train_gflops_best = 3.0 * fwd_flops / fb_min / 1e9;

    /* Forward only, eval mode, on an inference-sized workspace. */
    dapt_workspace *wi;
    spec.training = 0;
    if ((st = dapt_workspace_create(&m, &spec, &wi))) die(st);
    opts.train = 0;
    if ((st = dapt_model_forward(&m, wi, &b, NULL, &opts))) die(st);
    double *tfo = calloc((size_t)steps, sizeof *tfo);
    for (int s = 0; s < steps; s++) {
        double t0 = now();
        if ((st = dapt_model_forward(&m, wi, &b, NULL, &opts))) die(st);
        tfo[s] = now() - t0;
    }
    const double fwd = median(tfo, steps), fwd_min = minimum(tfo, steps);
    double peak2 = sgemm_peak();
    if (peak2 > peak) peak = peak2;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("engine=dapt config=%s batch=%lldx%lld masked=%lld corename=%s blas_threads=%d omp_threads=%d\n", which,
           (long long)B, (long long)S, (long long)masked, openblas_get_corename(), openblas_get_num_threads(),
           omp_get_max_threads());
    printf("sgemm_peak_gflops=%.1f (best of before/after)\n", peak);
    printf("median: train_step_ms=%.1f forward_ms=%.1f backward_ms=%.1f adamw_ms=%.1f\n", 1e3 * step, 1e3 * tf,
           1e3 * tb, 1e3 * ta);
    printf("median: train_tokens_per_s=%.0f model_gflops=%.1f fraction_of_sgemm_peak=%.2f\n", (double)T / step,
           train_gflops, train_gflops / peak);
    printf("best:   train_step_ms=%.1f train_tokens_per_s=%.0f fwd+bwd_gflops=%.1f fraction_of_sgemm_peak=%.2f\n",
           1e3 * step_min, (double)T / step_min, train_gflops_best, train_gflops_best / peak);
    printf("median: forward_only_ms=%.1f forward_tokens_per_s=%.0f forward_gflops=%.1f\n", 1e3 * fwd,
           (double)T / fwd, fwd_flops / fwd / 1e9);
    printf("best:   forward_only_ms=%.1f forward_tokens_per_s=%.0f forward_gflops=%.1f\n", 1e3 * fwd_min,
           (double)T / fwd_min, fwd_flops / fwd_min / 1e9);
    printf("loss_first=%.4f loss_last=%.4f arena_mb=%.0f peak_rss_mb=%.0f\n", loss0, loss,
           (double)dapt_workspace_bytes(ws) / 1048576.0, (double)ru.ru_maxrss / 1024.0);
    dapt_workspace_free(ws);
    dapt_workspace_free(wi);
    dapt_model_free(&m);
    free(adam_m);
    free(adam_v);
    free(ids);
    free(labels);
    free(tfs);
    free(tbs);
    free(tas);
    free(tss);
    free(tfo);
    return 0;
}
