/* The process grid and the sharding helpers.  Runs under 1, 2 and 4 ranks
 * (tests/parallel/grid.test); every case adapts to the world size. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/config.h"
#include "dapt/grid.h"
#include "dapt/log.h"
#include "harness.h"

static dapt_model_config bert_base(void)
{
    return dapt_test_model_config(DAPT_ARCH_BERT, 30522, 768, 12, 12, 3072, 512);
}

/* Every T that divides the world: sizes, ranks, and who is in which
 * communicator (checked through sums of world ranks). */
static void test_layout_every_divisor(void)
{
    const int W = dapt_test_world_size(), r = dapt_test_world_rank();
    for (int T = 1; T <= W; T++) {
        if (W % T) continue;
        dapt_grid g;
        CU_ASSERT_EQUAL_FATAL(dapt_grid_create(MPI_COMM_WORLD, T, &g), DAPT_OK);
        const int D = W / T;
        CU_ASSERT_EQUAL(g.world_size, W);
        CU_ASSERT_EQUAL(g.world_rank, r);
        CU_ASSERT_EQUAL(g.tensor_size, T);
        CU_ASSERT_EQUAL(g.data_size, D);
        CU_ASSERT_EQUAL(g.tensor_rank, r % T);
        CU_ASSERT_EQUAL(g.data_rank, r / T);
        int cmp;
        MPI_Comm_compare(g.world, MPI_COMM_WORLD, &cmp);
        CU_ASSERT_EQUAL(cmp, MPI_CONGRUENT);
        /* Tensor group = ranks d*T .. d*T + T-1; data group = t, t+T, ... */
        long mine = r, sum_t = 0, sum_d = 0;
        MPI_Allreduce(&mine, &sum_t, 1, MPI_LONG, MPI_SUM, g.tensor);
        MPI_Allreduce(&mine, &sum_d, 1, MPI_LONG, MPI_SUM, g.data);
        long d = r / T, t = r % T;
        CU_ASSERT_EQUAL(sum_t, d * T * T + (long)T * (T - 1) / 2);
        CU_ASSERT_EQUAL(sum_d, (long)T * D * (D - 1) / 2 + (long)D * t);
        /* Rank order inside the tensor group follows world order. */
        int tr;
        MPI_Comm_rank(g.tensor, &tr);
        CU_ASSERT_EQUAL(tr, t);
        dapt_grid_free(&g);
        CU_ASSERT(g.world == MPI_COMM_NULL && g.tensor == MPI_COMM_NULL && g.data == MPI_COMM_NULL);
        dapt_grid_free(&g); /* twice is harmless */
    }
}

static void expect_config_error(int64_t T, const char *fragment)
{
    dapt_grid g;
    dapt_error_clear();
    CU_ASSERT_EQUAL(dapt_grid_create(MPI_COMM_WORLD, T, &g), DAPT_ERR_CONFIG);
    if (!strstr(dapt_error_message(), fragment))
        fprintf(stderr, "T=%lld: unexpected message '%s'\n", (long long)T, dapt_error_message());
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "parallel.tensor"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), fragment));
    CU_ASSERT(g.world == MPI_COMM_NULL && g.tensor == MPI_COMM_NULL && g.data == MPI_COMM_NULL);
}

static void test_bad_tensor_size(void)
{
    const int W = dapt_test_world_size();
    expect_config_error(0, "at least 1");
    expect_config_error(-2, "at least 1");
    char frag[64];
    snprintf(frag, sizeof frag, "the job has %d", W);
    expect_config_error(W + 1, frag);
    if (W == 4) expect_config_error(3, "does not divide the 4 ranks");
}

static void test_ranks_disagree(void)
{
    if (dapt_test_world_size() < 2) return;
    dapt_grid g;
    int64_t T = dapt_test_world_rank() == 0 ? 1 : 2;
    dapt_error_clear();
    CU_ASSERT_EQUAL(dapt_grid_create(MPI_COMM_WORLD, T, &g), DAPT_ERR_MPI);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "disagree"));
}

static void test_check_model(void)
{
    dapt_model_config mc = bert_base();
    dapt_grid g;
    memset(&g, 0, sizeof g);
    const int ok_T[] = {1, 2, 3, 4, 6, 12};
    for (size_t i = 0; i < sizeof ok_T / sizeof ok_T[0]; i++) {
        g.tensor_size = ok_T[i];
        CU_ASSERT_EQUAL(dapt_grid_check_model(&g, &mc), DAPT_OK);
    }
    g.tensor_size = 8; /* 12 heads */
    CU_ASSERT_EQUAL(dapt_grid_check_model(&g, &mc), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "num_attention_heads = 12"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "parallel.tensor = 8"));
    mc.intermediate = 3070;
    g.tensor_size = 4;
    CU_ASSERT_EQUAL(dapt_grid_check_model(&g, &mc), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "intermediate_size = 3070"));
    g.tensor_size = 2;
    CU_ASSERT_EQUAL(dapt_grid_check_model(&g, &mc), DAPT_OK);

    g.data_size = 4;
    CU_ASSERT_EQUAL(dapt_grid_check_batch(&g, 4), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_grid_check_batch(&g, 3), DAPT_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "train.batch_size = 3"));
}

/* Ranges r[0..n) tile [0, total) in order. */
static int tiles(const dapt_range *r, int n, int64_t total)
{
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].begin != at || r[i].count < 0) return 0;
        at += r[i].count;
    }
    return at == total;
}

static void test_shards_tile(void)
{
    dapt_model_config mc = bert_base();
    for (int T = 1; T <= 12; T++) {
        if (mc.heads % T) continue;
        dapt_range h[12], f[12];
        for (int t = 0; t < T; t++) {
            h[t] = dapt_shard_heads(&mc, t, T);
            f[t] = dapt_shard_ffn(&mc, t, T);
            CU_ASSERT_EQUAL(h[t].count, mc.heads / T);
            CU_ASSERT_EQUAL(f[t].count, mc.intermediate / T);
        }
        CU_ASSERT(tiles(h, T, mc.heads));
        CU_ASSERT(tiles(f, T, mc.intermediate));
    }
    const int64_t vocabs[] = {1, 63, 64, 65, 30522, 50265, 250002};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        for (int T = 1; T <= 8; T++) {
            int64_t V = vocabs[i], Vp = dapt_padded_vocab(V, T);
            CU_ASSERT_EQUAL(Vp % (64 * T), 0);
            CU_ASSERT(Vp >= V && Vp - V < 64 * T);
            dapt_range v[8];
            int64_t real_sum = 0, prev_real = -1;
            for (int t = 0; t < T; t++) {
                int64_t real;
                v[t] = dapt_shard_vocab(V, t, T, &real);
                CU_ASSERT_EQUAL(v[t].count, Vp / T);
                CU_ASSERT_EQUAL(v[t].count % 64, 0);
                /* Real rows form a prefix of the vocabulary. */
                CU_ASSERT_EQUAL(real, v[t].begin < V ? (V - v[t].begin < v[t].count ? V - v[t].begin
                                                                                    : v[t].count)
                                                     : 0);
                if (prev_real >= 0 && prev_real < v[t - 1].count) CU_ASSERT_EQUAL(real, 0);
                prev_real = real;
                real_sum += real;
            }
            CU_ASSERT(tiles(v, T, Vp));
            CU_ASSERT_EQUAL(real_sum, V);
        }
    }
    /* Known values. */
    CU_ASSERT_EQUAL(dapt_padded_vocab(30522, 1), 30528);
    CU_ASSERT_EQUAL(dapt_padded_vocab(30522, 2), 30592);
    CU_ASSERT_EQUAL(dapt_padded_vocab(50265, 4), 50432);
}

static void test_samples(void)
{
    for (int64_t B = 1; B <= 40; B++) {
        for (int D = 1; D <= 8 && D <= B; D++) {
            dapt_range s[8];
            int64_t lo = B, hi = 0;
            for (int d = 0; d < D; d++) {
                s[d] = dapt_shard_samples(B, d, D);
                if (s[d].count < lo) lo = s[d].count;
                if (s[d].count > hi) hi = s[d].count;
            }
            CU_ASSERT(tiles(s, D, B));
            CU_ASSERT(hi - lo <= 1);
            CU_ASSERT(lo >= 1);
        }
    }
    dapt_range a = dapt_shard_samples(10, 0, 3), b = dapt_shard_samples(10, 1, 3),
               c = dapt_shard_samples(10, 2, 3);
    CU_ASSERT(a.begin == 0 && a.count == 4 && b.begin == 4 && b.count == 3 && c.begin == 7 && c.count == 3);
    /* Out-of-range parts are empty. */
    CU_ASSERT_EQUAL(dapt_shard_samples(10, 3, 3).count, 0);

    /* Over the real data communicator: the blocks of all data ranks,
     * gathered, tile the batch (each tensor rank of a group has the same). */
    const int W = dapt_test_world_size();
    dapt_grid g;
    int T = W % 2 == 0 ? 2 : 1;
    CU_ASSERT_EQUAL_FATAL(dapt_grid_create(MPI_COMM_WORLD, T, &g), DAPT_OK);
    for (int64_t B = g.data_size; B <= 3 * g.data_size + 1; B++) {
        dapt_range mine = dapt_shard_samples(B, g.data_rank, g.data_size);
        int64_t pair[2] = {mine.begin, mine.count};
        int64_t *all = malloc(sizeof(int64_t) * 2 * (size_t)g.data_size);
        CU_ASSERT_PTR_NOT_NULL_FATAL(all);
        MPI_Allgather(pair, 2, MPI_INT64_T, all, 2, MPI_INT64_T, g.data);
        dapt_range r[8];
        for (int d = 0; d < g.data_size && d < 8; d++) r[d] = (dapt_range){all[2 * d], all[2 * d + 1]};
        CU_ASSERT(tiles(r, g.data_size, B));
        free(all);
    }
    dapt_grid_free(&g);
}

/* dapt_grid_setup: validation from the configuration and the layout log. */
static void test_setup_and_log(void)
{
    const int W = dapt_test_world_size(), r = dapt_test_world_rank();
    dapt_log_setup(r, 0, DAPT_LOG_INFO);
    dapt_config cfg;
    dapt_config_defaults(&cfg);
    cfg.parallel.tensor = W % 2 == 0 ? 2 : 1;
    cfg.train.batch_size = 8;
    dapt_model_config mc = bert_base();
    char path[4096];
    snprintf(path, sizeof path, "%s/dapt-grid-log-%d-%d.txt", dapt_test_tmpdir(), (int)getpid(), r);
    FILE *log = fopen(path, "w+");
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    dapt_log_set_stream(log);
    dapt_grid g;
    dapt_status st = dapt_grid_setup(MPI_COMM_WORLD, &cfg, &mc, &g);
    dapt_log_set_stream(NULL);
    CU_ASSERT_EQUAL_FATAL(st, DAPT_OK);
    rewind(log);
    char text[8192] = {0};
    size_t n = fread(text, 1, sizeof text - 1, log);
    fclose(log);
    remove(path);
    if (r == 0) {
        char want[128];
        snprintf(want, sizeof want, "process grid: %d ranks = %d data-parallel x %d tensor-parallel", W,
                 W / (int)cfg.parallel.tensor, (int)cfg.parallel.tensor);
        CU_ASSERT_PTR_NOT_NULL(strstr(text, want));
        CU_ASSERT_PTR_NOT_NULL(strstr(text, "vocabulary rows (padded from 30522)"));
        /* One line per rank. */
        char host[MPI_MAX_PROCESSOR_NAME];
        int len;
        MPI_Get_processor_name(host, &len);
        int lines = 0;
        for (const char *p = text; (p = strstr(p, host)) != NULL; p += len) lines++;
        CU_ASSERT_EQUAL(lines, W);
        if (cfg.parallel.tensor == 2) {
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "[0, 6)"));
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "[6, 12)"));
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "[15296, 30592)"));
        }
    } else {
        CU_ASSERT_EQUAL(n, 0); /* logged once */
    }
    dapt_grid_free(&g);

    /* Failures are the same on every rank and leave no communicators. */
    mc.heads = 5;
    mc.hidden = 640;
    if (cfg.parallel.tensor == 2) {
        CU_ASSERT_EQUAL(dapt_grid_setup(MPI_COMM_WORLD, &cfg, &mc, &g), DAPT_ERR_CONFIG);
        CU_ASSERT(g.world == MPI_COMM_NULL);
    }
    mc = bert_base();
    cfg.parallel.tensor = 1;
    cfg.train.batch_size = W - 1;
    if (W > 1) {
        CU_ASSERT_EQUAL(dapt_grid_setup(MPI_COMM_WORLD, &cfg, &mc, &g), DAPT_ERR_CONFIG);
        CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "train.batch_size"));
    }
}

static dapt_model_config small_model(dapt_arch arch)
{
    dapt_model_config mc = dapt_test_model_config(arch, 100, 24, 2, 6, 48, 16);
    mc.layer_norm_eps = 1e-5;
    mc.num_labels = 3;
    return mc;
}

static const dapt_tensor *find_local(const dapt_param_table *t, const dapt_shard *sh, const char *name,
                                     const dapt_shard **s)
{
    for (size_t k = 0; k < t->count; k++)
        if (!strcmp(t->tensors[k].name, name)) {
            *s = &sh[k];
            return &t->tensors[k];
        }
    return NULL;
}

/* Local tables for every tensor rank: shapes, kinds, layout, and that
 * scatter + gather over all ranks rebuilds the global buffer, each split
 * element owned by exactly one rank. */
static void test_shard_tables(void)
{
    const dapt_arch archs[] = {DAPT_ARCH_BERT, DAPT_ARCH_ROBERTA};
    const int Ts[] = {1, 2, 3, 6};
    for (size_t a = 0; a < 2; a++) {
        dapt_model_config mc = small_model(archs[a]);
        dapt_param_table global;
        CU_ASSERT_FATAL(dapt_param_table_build(&mc, &global) == DAPT_OK);
        float *orig = malloc(global.total * sizeof(float));
        float *back = malloc(global.total * sizeof(float));
        int *cover = calloc(global.total, sizeof(int));
        CU_ASSERT_FATAL(orig && back && cover);
        for (size_t k = 0; k < global.count; k++)
            for (size_t i = 0; i < global.tensors[k].numel; i++)
                orig[global.tensors[k].offset + i] = (float)(1000 * (k + 1) + i);
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            const int T = Ts[ti];
            const int64_t H = mc.hidden, I = mc.intermediate, Vp = dapt_padded_vocab(mc.vocab_size, T);
            for (size_t i = 0; i < global.total; i++) back[i] = -1.0f;
            memset(cover, 0, global.total * sizeof(int));
            for (int t = 0; t < T; t++) {
                dapt_param_table local;
                dapt_shard *sh = NULL;
                CU_ASSERT_FATAL(dapt_shard_table_build(&mc, &global, t, T, &local, &sh) == DAPT_OK);
                CU_ASSERT_EQUAL(local.count, global.count);
                size_t end = 0;
                for (size_t k = 0; k < local.count; k++) {
                    const dapt_tensor *l = &local.tensors[k];
                    CU_ASSERT_STRING_EQUAL(l->name, global.tensors[k].name);
                    CU_ASSERT_EQUAL(l->offset % 16, 0);
                    CU_ASSERT(l->offset >= end);
                    end = l->offset + l->numel;
                    CU_ASSERT_EQUAL(l->numel, (size_t)(l->shape[0] * l->shape[1]));
                    CU_ASSERT_EQUAL(l->flags, global.tensors[k].flags);
                    const dapt_shard *s = &sh[k];
                    for (int64_t r = 0; r < s->rows; r++)
                        for (int64_t c = 0; c < s->cols; c++)
                            cover[global.tensors[k].offset + (size_t)((s->row0 + r) * global.tensors[k].shape[1] + s->col0 + c)]++;
                }
                CU_ASSERT(local.total >= end);
                const dapt_shard *s = NULL;
                const dapt_tensor *l = find_local(&local, sh, "layer.1.attn.q.weight", &s);
                CU_ASSERT(l && l->shape[0] == H / T && l->shape[1] == H && s->kind == DAPT_SHARD_ROWS &&
                          s->row0 == t * H / T);
                l = find_local(&local, sh, "layer.0.attn.v.bias", &s);
                CU_ASSERT(l && l->shape[0] == H / T && s->kind == DAPT_SHARD_ROWS);
                l = find_local(&local, sh, "layer.0.attn.out.weight", &s);
                CU_ASSERT(l && l->shape[0] == H && l->shape[1] == H / T && s->kind == DAPT_SHARD_COLS &&
                          s->col0 == t * H / T);
                l = find_local(&local, sh, "layer.0.attn.out.bias", &s);
                CU_ASSERT(l && l->shape[0] == H && s->kind == DAPT_SHARD_REPLICATED);
                l = find_local(&local, sh, "layer.1.ffn.in.bias", &s);
                CU_ASSERT(l && l->shape[0] == I / T && s->kind == DAPT_SHARD_ROWS);
                l = find_local(&local, sh, "layer.1.ffn.out.weight", &s);
                CU_ASSERT(l && l->shape[0] == H && l->shape[1] == I / T && s->kind == DAPT_SHARD_COLS);
                l = find_local(&local, sh, "layer.1.ffn.ln.weight", &s);
                CU_ASSERT(l && l->shape[0] == H && s->kind == DAPT_SHARD_REPLICATED);
                l = find_local(&local, sh, "embeddings.word", &s);
                CU_ASSERT(l && l->shape[0] == Vp / T && l->shape[1] == H && s->kind == DAPT_SHARD_ROWS &&
                          s->local_rows == Vp / T && s->rows <= s->local_rows);
                l = find_local(&local, sh, "mlm.bias", &s);
                CU_ASSERT(l && l->shape[0] == Vp / T && s->kind == DAPT_SHARD_ROWS);
                l = find_local(&local, sh, "embeddings.position", &s);
                CU_ASSERT(l && l->shape[0] == mc.max_position && s->kind == DAPT_SHARD_REPLICATED);

                float *lbuf = malloc(local.total * sizeof(float));
                CU_ASSERT_FATAL(lbuf != NULL);
                for (size_t i = 0; i < local.total; i++) lbuf[i] = -7.0f;
                dapt_shard_scatter(&global, orig, &local, sh, lbuf);
                /* Vocab padding rows are zero. */
                l = find_local(&local, sh, "embeddings.word", &s);
                CU_ASSERT_FATAL(l != NULL && s != NULL);
                for (int64_t r = s->rows; r < s->local_rows; r++)
                    for (int64_t c = 0; c < H; c++) CU_ASSERT_EQUAL(lbuf[l->offset + (size_t)(r * H + c)], 0.0f);
                dapt_shard_gather(&global, back, &local, sh, lbuf);
                free(lbuf);
                free(sh);
                dapt_param_table_free(&local);
            }
            for (size_t k = 0; k < global.count; k++) {
                const dapt_tensor *g = &global.tensors[k];
                int replicated = !(strstr(g->name, ".attn.q.") || strstr(g->name, ".attn.k.") ||
                                   strstr(g->name, ".attn.v.") || strstr(g->name, ".attn.out.weight") ||
                                   strstr(g->name, ".ffn.in.") || strstr(g->name, ".ffn.out.weight") ||
                                   !strcmp(g->name, "embeddings.word") || !strcmp(g->name, "mlm.bias"));
                int bad = 0;
                for (size_t i = 0; i < g->numel; i++) {
                    if (cover[g->offset + i] != (replicated ? T : 1)) bad++;
                    if (back[g->offset + i] != orig[g->offset + i]) bad++;
                }
                if (bad) fprintf(stderr, "T=%d %s: %d wrong elements\n", T, g->name, bad);
                CU_ASSERT_EQUAL(bad, 0);
            }
        }
        free(orig);
        free(back);
        free(cover);
        dapt_param_table_free(&global);
    }
    /* Indivisible sizes are refused. */
    dapt_model_config mc = small_model(DAPT_ARCH_BERT);
    dapt_param_table global, local;
    dapt_shard *sh;
    CU_ASSERT_FATAL(dapt_param_table_build(&mc, &global) == DAPT_OK);
    CU_ASSERT_EQUAL(dapt_shard_table_build(&mc, &global, 0, 4, &local, &sh), DAPT_ERR_CONFIG);
    CU_ASSERT_EQUAL(dapt_shard_table_build(&mc, &global, 2, 2, &local, &sh), DAPT_ERR_ARG);
    dapt_param_table_free(&global);
}

DAPT_TEST_MAIN("grid",
               {"layout for every tensor size dividing the world", test_layout_every_divisor},
               {"tensor sizes that cannot work", test_bad_tensor_size},
               {"ranks that disagree on parallel.tensor", test_ranks_disagree},
               {"model and batch checks", test_check_model},
               {"heads, FFN columns and vocabulary rows tile", test_shards_tile},
               {"samples of a global batch", test_samples},
               {"setup from the configuration, layout logged once", test_setup_and_log},
               {"tensor-parallel parameter tables, scatter and gather", test_shard_tables})
