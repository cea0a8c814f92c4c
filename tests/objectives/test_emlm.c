/* emlm's guided masking equals an independent Python reference given the
 * same Philox draws (tests/fixtures/objectives/emlm.txt, made by
 * tools/fixtures/make_mometas_fixtures.py: BERT and RoBERTa ids, padded
 * rows, rows that end exactly at the length, specials inside the guide
 * set, a row without any guide token), and the guide set's selection
 * follows its definition (dapt/corpus.h) on hand-computed counts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/corpus.h"
#include "dapt/mlm.h"
#include "dapt/model.h"
#include "fixture_text.h"
#include "harness.h"

#define MAXLEN 64
#define MAXGUIDE 64

typedef struct emlm_case {
    char name[64];
    dapt_mlm_spec mlm;
    unsigned long long seed, step, sample;
    int64_t len;
    int32_t guide[MAXGUIDE];
    size_t n_guide;
    int32_t clean[MAXLEN], att[MAXLEN], ids[MAXLEN], labels[MAXLEN];
} emlm_case;

/* The next case of the fixture: 1, 0 at the end, -1 on a format error. */
static int read_case(FILE *fp, emlm_case *c)
{
    char word[32];
    memset(c, 0, sizeof *c);
    long long vocab, len;
    size_t ns;
    if (fscanf(fp, "%31s", word) != 1) return 0;
    if (strcmp(word, "case")) return -1;
    if (fscanf(fp, "%63s %lld %d %lf %llu %llu %llu %lld %zu", c->name, &vocab, &c->mlm.mask_id, &c->mlm.probability,
               &c->seed, &c->step, &c->sample, &len, &ns) != 9 ||
        len > MAXLEN || ns > DAPT_MLM_MAX_SPECIAL)
        return -1;
    c->len = len;
    c->mlm.vocab_size = vocab;
    c->mlm.n_special = ns;
    for (size_t i = 0; i < ns; i++)
        if (fscanf(fp, "%d", &c->mlm.special[i]) != 1) return -1;
    if (fscanf(fp, "%zu", &c->n_guide) != 1 || c->n_guide > MAXGUIDE) return -1;
    for (size_t i = 0; i < c->n_guide; i++)
        if (fscanf(fp, "%d", &c->guide[i]) != 1) return -1;
    const char *keys[] = {"clean", "att", "ids", "labels"};
    int32_t *rows[] = {c->clean, c->att, c->ids, c->labels};
    for (int k = 0; k < 4; k++)
        if (fixture_ints(fp, keys[k], rows[k], c->len)) return -1;
    return 1;
}

static void test_masking_matches_reference(void)
{
    FILE *fp = fopen(dapt_test_path("tests/fixtures/objectives/emlm.txt"), "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    char line[256];
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, fp)); /* the comment */
    emlm_case c;
    int n = 0, got, masked = 0, replaced = 0, kept = 0, empty_rows = 0;
    while ((got = read_case(fp, &c)) == 1) {
        n++;
        uint8_t *guide = calloc((size_t)c.mlm.vocab_size, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(guide);
        for (size_t i = 0; i < c.n_guide; i++) guide[c.guide[i]] = 1;
        int32_t ids[MAXLEN], labels[MAXLEN];
        memcpy(ids, c.clean, sizeof ids);
        int64_t sel = -1, want = 0;
        dapt_mlm_mask_guided(&c.mlm, guide, c.seed, c.step, c.sample, ids, c.att, c.len, labels, &sel);
        for (int64_t j = 0; j < c.len; j++) {
            CU_ASSERT_EQUAL(ids[j], c.ids[j]);
            CU_ASSERT_EQUAL(labels[j], c.labels[j]);
            if (labels[j] == DAPT_IGNORE_LABEL) continue;
            want++;
            /* Only text tokens of the guide set are ever selected. */
            CU_ASSERT(guide[c.clean[j]] && c.att[j] && !fixture_is_special(&c.mlm, c.clean[j]));
            masked += ids[j] == c.mlm.mask_id;
            kept += ids[j] == c.clean[j];
            replaced += ids[j] != c.mlm.mask_id && ids[j] != c.clean[j];
        }
        CU_ASSERT_EQUAL(sel, want);
        if (!strcmp(c.name, "bert_no_guide_token")) {
            CU_ASSERT_EQUAL(sel, 0); /* contributes nothing */
            empty_rows++;
        }
        free(guide);
    }
    CU_ASSERT_EQUAL(got, 0);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_EQUAL(empty_rows, 1);
    /* The fixture reaches every branch of 80/10/10. */
    CU_ASSERT(masked > 0 && replaced > 0 && kept > 0);
    fclose(fp);
}

/* The same draws as dapt_mlm_mask but another stream: masks differ. */
static void test_own_stream(void)
{
    dapt_mlm_spec m = {.probability = 0.5, .mask_id = 4, .vocab_size = 64, .special = {0, 2, 3, 4}, .n_special = 4};
    uint8_t guide[64];
    memset(guide, 1, sizeof guide);
    int32_t a[48], b[48], la[48], lb[48];
    for (int j = 0; j < 48; j++) a[j] = b[j] = 5 + j;
    dapt_mlm_mask(&m, 3, 1, 9, a, NULL, 48, la, NULL);
    dapt_mlm_mask_guided(&m, guide, 3, 1, 9, b, NULL, 48, lb, NULL);
    CU_ASSERT(memcmp(la, lb, sizeof la) != 0);
}

/* Counts over V = 10 with N_d = N_g = 90 (so r > 1 <=> c_d > c_g):
 * id 1 is special, id 9 is below min_count; 5 and 6 tie at 9/3. */
static void test_selection_rule(void)
{
    const int64_t dom[10] = {10, 40, 8, 8, 2, 8, 8, 4, 0, 2};
    const int64_t gen[10] = {20, 0, 1, 9, 2, 2, 2, 4, 40, 10};
    const int32_t special[] = {1};
    dapt_salient_opts o = {"general.h5", 10, 3};
    int32_t ids[10];
    double lr[10];
    int64_t n = -1;
    CU_ASSERT_EQUAL_FATAL(dapt_salient_select(dom, gen, 10, special, 1, &o, ids, lr, &n), DAPT_OK);
    /* 2: 9/2; 5, 6: 9/3 (tie: smaller id first); 3: 9/10 < 1 out; 0 out;
     * 7: 5/5 = 1 not > 1; 9: c_d 2 < 3. */
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT_EQUAL(ids[0], 2);
    CU_ASSERT_EQUAL(ids[1], 5);
    CU_ASSERT_EQUAL(ids[2], 6);
    CU_ASSERT_DOUBLE_EQUAL(lr[0], log(9.0 / 2.0), 1e-12);
    o.top = 2;
    CU_ASSERT_EQUAL(dapt_salient_select(dom, gen, 10, special, 1, &o, ids, lr, &n), DAPT_OK);
    CU_ASSERT_EQUAL(n, 2);
}

DAPT_TEST_MAIN("emlm", {"guided masking matches the Python reference", test_masking_matches_reference},
               {"guided masking draws from its own stream", test_own_stream},
               {"salient selection: ratio, ties, threshold, min count, top", test_selection_rule})
