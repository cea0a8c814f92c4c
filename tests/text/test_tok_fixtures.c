/* Token ids equal the reference ids (Hugging Face tokenizers, corrected to
 * the Rust library; tools/reference/gen_fixtures.mjs) on every fixture line
 * for bert-base-uncased, gpt2 and roberta-base, loaded from tokenizer.json
 * and from the plain vocabulary files. */
#include "tok_fixture.h"

static size_t compare(const char *model, const char *load_path, const char *texts_file, int texts_are_json,
                      const char *ids_file, int check_full)
{
    dapt_tokenizer *tok = NULL;
    dapt_status st = dapt_tokenizer_load(load_path, &tok);
    if (st) {
        fprintf(stderr, "load %s: %s\n", load_path, dapt_error_message());
        CU_FAIL("tokenizer did not load");
        return 1;
    }
    dapt_tok_state *ts = NULL;
    CU_ASSERT_EQUAL_FATAL(dapt_tok_state_new(tok, &ts), DAPT_OK);
    char **texts = NULL, **ids = NULL;
    size_t nt = tf_read_lines(dapt_test_path(texts_file), &texts);
    size_t ni = tf_read_lines(dapt_test_path(ids_file), &ids);
    CU_ASSERT_TRUE(nt > 0);
    CU_ASSERT_EQUAL(nt, ni);
    dapt_ids want = {0}, got = {0};
    dapt_encoding enc = {0};
    dapt_encode_opts opts = {.add_special = 1};
    size_t bad = 0;
    for (size_t i = 0; i < nt && i < ni; i++) {
        size_t len = strlen(texts[i]);
        char *text = texts_are_json ? tf_json_text(texts[i], &len) : strdup(texts[i]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        tf_parse_ids(ids[i], &want);
        got.len = 0;
        st = dapt_tokenizer_encode(tok, ts, text, len, &got);
        int same = st == DAPT_OK && got.len == want.len && !memcmp(got.data, want.data, got.len * sizeof(int32_t));
        if (same && check_full) {
            const char *tab = strchr(ids[i], '\t');
            tf_parse_ids(tab ? tab + 1 : "", &want);
            st = dapt_tokenizer_encode_full(tok, ts, text, len, NULL, 0, &opts, &enc);
            same = st == DAPT_OK && enc.ids.len == want.len &&
                   !memcmp(enc.ids.data, want.data, want.len * sizeof(int32_t));
            if (!same) { got.len = 0; dapt_ids_reserve(&got, enc.ids.len); memcpy(got.data, enc.ids.data, enc.ids.len * 4); got.len = enc.ids.len; }
        }
        if (!same) {
            if (bad < 8) {
                fprintf(stderr, "\n%s line %zu: %s\n  want ", model, i + 1, texts[i]);
                tf_print_ids(stderr, want.data, want.len);
                fprintf(stderr, "\n  got  ");
                tf_print_ids(stderr, got.data, got.len);
                fprintf(stderr, "%s\n", st ? dapt_error_message() : "");
            }
            bad++;
        }
        free(text);
    }
    if (bad) fprintf(stderr, "%s (%s, %s): %zu of %zu lines differ\n", model, load_path, ids_file, bad, nt);
    CU_ASSERT_EQUAL(bad, 0);
    dapt_ids_free(&want);
    dapt_ids_free(&got);
    dapt_encoding_free(&enc);
    tf_free_lines(texts, nt);
    tf_free_lines(ids, ni);
    dapt_tok_state_free(ts);
    dapt_tokenizer_free(tok);
    return bad;
}

#define FX "tests/fixtures/tokenizer/"

static void test_bert_corpus(void)
{
    compare("bert", tf_vocab("bert-base-uncased"), FX "corpus.jsonl.gz", 1, FX "bert-base-uncased.corpus.ids.gz", 0);
}
static void test_bert_vocab_txt(void)
{
    compare("bert", tf_vocab("bert-base-uncased/vocab.txt"), FX "corpus.jsonl.gz", 1,
            FX "bert-base-uncased.corpus.ids.gz", 0);
}
static void test_bert_hard(void)
{
    compare("bert", tf_vocab("bert-base-uncased"), FX "hard_cases.jsonl", 1, FX "bert-base-uncased.hard.ids.gz", 1);
}
static void test_gpt2_corpus(void)
{
    compare("gpt2", tf_vocab("gpt2"), FX "corpus.jsonl.gz", 1, FX "gpt2.corpus.ids.gz", 0);
}
static void test_gpt2_hard(void)
{
    compare("gpt2", tf_vocab("gpt2"), FX "hard_cases.jsonl", 1, FX "gpt2.hard.ids.gz", 1);
}
static void test_roberta_corpus(void)
{
    compare("roberta", tf_vocab("roberta-base"), FX "corpus.jsonl.gz", 1, FX "roberta-base.corpus.ids.gz", 0);
}
static void test_roberta_hard(void)
{
    compare("roberta", tf_vocab("roberta-base"), FX "hard_cases.jsonl", 1, FX "roberta-base.hard.ids.gz", 1);
}

DAPT_TEST_MAIN("tokenizer fixtures",
               {"bert-base-uncased tokenizer.json: corpus lines", test_bert_corpus},
               {"bert-base-uncased vocab.txt: corpus lines", test_bert_vocab_txt},
               {"bert-base-uncased: hard cases (+template)", test_bert_hard},
               {"gpt2: corpus lines", test_gpt2_corpus},
               {"gpt2: hard cases (+template)", test_gpt2_hard},
               {"roberta-base: corpus lines", test_roberta_corpus},
               {"roberta-base: hard cases (+template)", test_roberta_hard})
