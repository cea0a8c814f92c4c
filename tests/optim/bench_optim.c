/* Benchmark (not a test): the optimizer's memory-bound loops on the
 * parameter table of bert-base (12 layers, hidden 768, FFN 3072, vocab
 * 30522, MLM head and pooler: 110 M parameters), with 1 and 2 OpenMP
 * threads, against a plain copy (memcpy) of the same buffer measured in the
 * same run as the machine's practical bandwidth.
 *
 *   make tests/optim/bench_optim && ./tests/optim/bench_optim [repeats]
 *
 * Bytes moved per parameter: AdamW update 28 (reads p, g, m, v; writes p,
 * m, v), accumulate 12 (reads acc, g; writes acc), sum of squares 4, scale
 * 8, copy 8.  Built by `make check` but not run by it. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "dapt/optim.h"
#include "dapt/params.h"

static double best_of(int repeats, void (*fn)(void *), void *arg)
{
    double best = 1e30;
    for (int i = 0; i < repeats; i++) {
        double t0 = dapt_now();
        fn(arg);
        double t = dapt_now() - t0;
        if (t < best) best = t;
    }
    return best;
}

typedef struct ctx {
    dapt_param_table *table;
    dapt_adamw opt;
    float *p, *g, *m, *v, *acc;
    double sink;
} ctx;

static void run_update(void *a)
{
    ctx *c = a;
    dapt_adamw_update(&c->opt, 1e-4, c->table, 0, c->table->total, c->p, c->acc, c->m, c->v);
}

static void run_accumulate(void *a)
{
    ctx *c = a;
    dapt_grad_accumulate(c->table, 0, c->table->total, c->acc, c->g);
}

static void run_sumsq(void *a)
{
    ctx *c = a;
    c->sink += dapt_grad_sumsq(c->table, 0, c->table->total, c->acc);
}

static void run_scale(void *a)
{
    ctx *c = a;
    dapt_grad_scale(c->table, 0, c->table->total, c->acc, 0.999f);
}

static void run_copy(void *a)
{
    ctx *c = a;
    memcpy(c->g, c->acc, c->table->total * sizeof(float));
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    if (repeats < 1) repeats = 1;
    dapt_model_config mc = {.arch = DAPT_ARCH_BERT, .vocab_size = 30522, .hidden = 768, .layers = 12,
                            .heads = 12, .intermediate = 3072, .max_position = 512,
                            .type_vocab_size = 2, .layer_norm_eps = 1e-12, .has_pooler = 1,
                            .has_mlm_head = 1};
    dapt_param_table table;
    if (dapt_param_table_build(&mc, &table) != DAPT_OK) {
        fprintf(stderr, "%s\n", dapt_error_message());
        return 1;
    }
    size_t n = table.total, params = 0;
    for (size_t k = 0; k < table.count; k++) params += table.tensors[k].numel;
    ctx c = {.table = &table, .opt = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-6, .weight_decay = 0.01}};
    float **bufs[] = {&c.p, &c.g, &c.m, &c.v, &c.acc};
    for (size_t b = 0; b < 5; b++) {
        *bufs[b] = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
        if (!*bufs[b]) {
            fprintf(stderr, "out of memory (%zu floats)\n", n);
            return 1;
        }
    }
    /* First touch in parallel so pages spread like the loops use them. */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        uint32_t x = (uint32_t)i * 2654435761u;
        c.p[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        c.g[i] = c.acc[i] = ((float)((x >> 4) & 0xffff) / 65536.0f - 0.5f) * 1e-3f;
        c.m[i] = c.v[i] = 0.0f;
    }
    dapt_adamw_advance(&c.opt);
    printf("bert-base parameter table: %zu parameters (%zu floats with padding), %d repeats, best time\n",
           params, n, repeats);
    printf("%-22s %8s %10s %10s\n", "operation", "threads", "ms", "GB/s");
    const struct {
        const char *name;
        void (*fn)(void *);
        double bytes;
    } ops[] = {{"memcpy (reference)", run_copy, 8},
               {"AdamW update", run_update, 28},
               {"accumulate", run_accumulate, 12},
               {"sum of squares", run_sumsq, 4},
               {"scale", run_scale, 8}};
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            double t = best_of(repeats, ops[o].fn, &c);
            printf("%-22s %8d %10.1f %10.2f\n", ops[o].name, threads, 1e3 * t,
                   ops[o].bytes * (double)params / t / 1e9);
        }
    }
    if (c.sink == 12345.0) printf("%g\n", c.sink); /* keep the sums alive */
    for (size_t b = 0; b < 5; b++) free(*bufs[b]);
    dapt_param_table_free(&table);
    return 0;
}
