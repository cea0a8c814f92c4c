/* MOMETAS's token-detection pieces: the ATD / DTD corruptions equal an
 * independent Python reference given the same Philox draws
 * (tests/fixtures/objectives/token_detection.txt, made by
 * tools/fixtures/make_mometas_fixtures.py: BERT and RoBERTa pad ids,
 * padded rows, rows that end exactly at the length, a concat block), the
 * inserted ids are never special, and the binary head's gradients match
 * finite differences. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/objectives/token_detection.h"
#include "fixture_text.h"
#include "harness.h"

#define MAXLEN 64

typedef struct td_case {
    char name[64];
    dapt_mlm_spec mlm;
    int32_t pad;
    double p;
    unsigned long long seed, step, sample;
    int64_t len;
    int32_t clean[MAXLEN], att[MAXLEN], atd_ids[MAXLEN], atd_labels[MAXLEN], dtd_ids[MAXLEN], dtd_att[MAXLEN],
        dtd_labels[MAXLEN];
} td_case;

/* The next case of the fixture: 1, 0 at the end, -1 on a format error. */
static int read_case(FILE *fp, td_case *c)
{
    char word[32];
    memset(c, 0, sizeof *c);
    long long vocab, len;
    size_t ns;
    if (fscanf(fp, "%31s", word) != 1) return 0;
    if (strcmp(word, "case")) return -1;
    if (fscanf(fp, "%63s %lld %d %lf %llu %llu %llu %lld %zu", c->name, &vocab, &c->pad, &c->p, &c->seed, &c->step,
               &c->sample, &len, &ns) != 9 ||
        len > MAXLEN || ns > DAPT_MLM_MAX_SPECIAL)
        return -1;
    c->len = len;
    c->mlm.vocab_size = vocab;
    c->mlm.n_special = ns;
    for (size_t i = 0; i < ns; i++)
        if (fscanf(fp, "%d", &c->mlm.special[i]) != 1) return -1;
    const char *keys[] = {"clean", "att", "atd_ids", "atd_labels", "dtd_ids", "dtd_att", "dtd_labels"};
    int32_t *rows[] = {c->clean, c->att, c->atd_ids, c->atd_labels, c->dtd_ids, c->dtd_att, c->dtd_labels};
    for (int k = 0; k < 7; k++)
        if (fixture_ints(fp, keys[k], rows[k], c->len)) return -1;
    return 1;
}

static int64_t count_tokens(const int32_t *att, int64_t len)
{
    int64_t n = 0;
    for (int64_t i = 0; i < len; i++) n += att[i] != 0;
    return n;
}

static void test_corruptions_match_reference(void)
{
    FILE *fp = fopen(dapt_test_path("tests/fixtures/objectives/token_detection.txt"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    char line[256];
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, fp)); /* the comment */
    td_case c;
    int n = 0, got, inserted = 0, deleted = 0;
    while ((got = read_case(fp, &c)) == 1) {
        n++;
        int32_t *pool = NULL;
        int64_t pool_size = 0;
        CU_ASSERT_FATAL(dapt_td_pool(&c.mlm, &pool, &pool_size) == DAPT_OK);
        CU_ASSERT_EQUAL(pool_size, c.mlm.vocab_size - (int64_t)c.mlm.n_special);
        const dapt_td_spec spec = {c.p, c.mlm.special, c.mlm.n_special, pool, pool_size, c.pad};
        int32_t ids[MAXLEN], att[MAXLEN], labels[MAXLEN];
        memcpy(ids, c.clean, sizeof ids);
        int64_t nl = dapt_atd_row(&spec, c.seed, c.step, c.sample, c.clean, ids, c.att, c.len, labels);
        CU_ASSERT_EQUAL(nl, count_tokens(c.att, c.len));
        for (int64_t i = 0; i < c.len; i++) {
            if (ids[i] != c.atd_ids[i] || labels[i] != c.atd_labels[i])
                fprintf(stderr, "%s atd %lld: %d/%d, want %d/%d\n", c.name, (long long)i, ids[i], labels[i],
                        c.atd_ids[i], c.atd_labels[i]);
            CU_ASSERT_EQUAL(ids[i], c.atd_ids[i]);
            CU_ASSERT_EQUAL(labels[i], c.atd_labels[i]);
            if (labels[i] == 1) {
                inserted++;
                CU_ASSERT(!fixture_is_special(&c.mlm, ids[i]));
            }
        }
        memcpy(ids, c.clean, sizeof ids);
        memcpy(att, c.att, sizeof att);
        nl = dapt_dtd_row(&spec, c.seed, c.step, c.sample, c.clean, ids, att, c.len, labels);
        CU_ASSERT_EQUAL(nl, count_tokens(c.dtd_att, c.len));
        for (int64_t i = 0; i < c.len; i++) {
            if (ids[i] != c.dtd_ids[i] || att[i] != c.dtd_att[i] || labels[i] != c.dtd_labels[i])
                fprintf(stderr, "%s dtd %lld: %d/%d/%d, want %d/%d/%d\n", c.name, (long long)i, ids[i], att[i],
                        labels[i], c.dtd_ids[i], c.dtd_att[i], c.dtd_labels[i]);
            CU_ASSERT_EQUAL(ids[i], c.dtd_ids[i]);
            CU_ASSERT_EQUAL(att[i], c.dtd_att[i]);
            CU_ASSERT_EQUAL(labels[i], c.dtd_labels[i]);
        }
        deleted += (int)(count_tokens(c.att, c.len) - nl);
        free(pool);
    }
    fclose(fp);
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(n, 6);
    /* The fixture exercises both corruptions. */
    CU_ASSERT(inserted > 10);
    CU_ASSERT(deleted > 10);
}

/* A row of specials and padding only is left as it is by both. */
static void test_specials_untouched(void)
{
    dapt_mlm_spec m;
    memset(&m, 0, sizeof m);
    m.vocab_size = 10;
    m.n_special = 3;
    m.special[0] = 0;
    m.special[1] = 1;
    m.special[2] = 2;
    int32_t *pool = NULL;
    int64_t np = 0;
    CU_ASSERT_FATAL(dapt_td_pool(&m, &pool, &np) == DAPT_OK);
    CU_ASSERT_EQUAL(np, 7);
    CU_ASSERT_EQUAL(pool[0], 3);
    const dapt_td_spec spec = {1.0, m.special, m.n_special, pool, np, 1};
    const int32_t clean[6] = {0, 2, 0, 2, 1, 1};
    int32_t ids[6], att[6] = {1, 1, 1, 1, 0, 0}, labels[6];
    memcpy(ids, clean, sizeof ids);
    CU_ASSERT_EQUAL(dapt_atd_row(&spec, 1, 2, 3, clean, ids, att, 6, labels), 4);
    CU_ASSERT_EQUAL(memcmp(ids, clean, sizeof ids), 0);
    memcpy(ids, clean, sizeof ids);
    CU_ASSERT_EQUAL(dapt_dtd_row(&spec, 1, 2, 3, clean, ids, att, 6, labels), 4);
    CU_ASSERT_EQUAL(memcmp(ids, clean, sizeof ids), 0);
    for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(labels[i], 0);
    CU_ASSERT_EQUAL(labels[4], DAPT_IGNORE_LABEL);
    free(pool);
}

/* d loss / d (W, b, h) of the head by central differences in double. */
static void test_head_gradients(void)
{
    const dapt_model_config mc = dapt_test_model_config(DAPT_ARCH_BERT, 16, 8, 1, 2, 16, 16);
    dapt_tensor_spec aux[2];
    memset(aux, 0, sizeof aux);
    snprintf(aux[0].name, sizeof aux[0].name, "aux.t.weight");
    aux[0].rows = 2;
    aux[0].cols = 8;
    snprintf(aux[1].name, sizeof aux[1].name, "aux.t.bias");
    aux[1].rows = 2;
    dapt_model m;
    CU_ASSERT_FATAL(dapt_model_create_aux(&mc, aux, 2, &m) == DAPT_OK);
    dapt_model_init_random(&m, 3);
    float *W = dapt_model_param(&m, "aux.t.weight"), *b = dapt_model_param(&m, "aux.t.bias");
    for (int i = 0; i < 16; i++) W[i] = (float)sin(1.3 * i);
    b[0] = 0.2f;
    b[1] = -0.1f;
    const int64_t n = 2, len = 3, H = 8;
    float h[48], dh[48];
    for (int i = 0; i < 48; i++) h[i] = (float)cos(0.7 * i);
    const int32_t labels[6] = {0, 1, DAPT_IGNORE_LABEL, 1, 1, 0};
    double loss = 0;
    dapt_model_zero_grads(&m);
    CU_ASSERT_FATAL(dapt_td_head(&m, "aux.t", h, labels, n, len, 7.0, dh, &loss) == DAPT_OK);
    CU_ASSERT(loss > 0);
    /* A copy: the finite-difference calls below accumulate into the grads again. */
    float gW[16], gb[2];
    memcpy(gW, dapt_model_grad(&m, "aux.t.weight"), sizeof gW);
    memcpy(gb, dapt_model_grad(&m, "aux.t.bias"), sizeof gb);
    float scratch[48];
    const float eps = 1e-2f;
    /* Every weight and bias entry, and every input entry. */
    for (int i = 0; i < 18 + 48; i++) {
        float *x = i < 16 ? &W[i] : i < 18 ? &b[i - 16] : &h[i - 18];
        const float keep = *x;
        double lp, lm;
        *x = keep + eps;
        CU_ASSERT(dapt_td_head(&m, "aux.t", h, labels, n, len, 7.0, scratch, &lp) == DAPT_OK);
        *x = keep - eps;
        CU_ASSERT(dapt_td_head(&m, "aux.t", h, labels, n, len, 7.0, scratch, &lm) == DAPT_OK);
        *x = keep;
        const double fd = (lp - lm) / (2.0 * eps);
        const double an = i < 16 ? gW[i] : i < 18 ? gb[i - 16] : dh[i - 18];
        CU_ASSERT_DOUBLE_EQUAL(an, fd, 2e-4);
    }
    /* The unlabelled position gets no gradient. */
    for (int64_t i = 0; i < H; i++) CU_ASSERT_EQUAL(dh[2 * H + i], 0.0f);
    dapt_model_free(&m);
}

DAPT_TEST_MAIN("token_detection", {"corruptions match the Python reference", test_corruptions_match_reference},
               {"specials and padding are never corrupted", test_specials_untouched},
               {"head gradients match finite differences", test_head_gradients})
