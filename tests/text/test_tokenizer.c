/* Tokenizer behaviour beyond the id fixtures: GPT-2 TestPlans, pair
 * templates, truncation and padding, decoding, the three file formats,
 * bad vocabulary files, invalid UTF-8, the ASCII fast path against PCRE2,
 * concurrent encoding from OpenMP threads, identity and checksum. */
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dapt/utf8.h"
#include "tok_fixture.h"

#define FX "tests/fixtures/tokenizer/"

extern int tok_bpe_ascii_fast_path; /* src/text/bpe.c, for this test only */
int32_t tok_bpe_byte_char(unsigned b);  /* src/text/bpe.c */

static dapt_tokenizer *load(const char *path)
{
    dapt_tokenizer *tok = NULL;
    if (dapt_tokenizer_load(path, &tok) != DAPT_OK) fprintf(stderr, "load %s: %s\n", path, dapt_error_message());
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    return tok;
}

static int ids_equal(const dapt_ids *a, const int32_t *b, size_t n)
{
    return a->len == n && (n == 0 || !memcmp(a->data, b, n * sizeof *b));
}

static void test_gpt2_testplans(void)
{
    dapt_tokenizer *tok = load(tf_vocab("gpt2"));
    char **lines = NULL;
    size_t n = tf_read_lines(dapt_test_path(FX "gpt2_testplans.jsonl"), &lines);
    CU_ASSERT_EQUAL(n, 64);
    dapt_ids got = {0};
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        json_error_t err;
        json_t *j = json_loads(lines[i], 0, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        json_t *s = json_array_get(j, 0), *ids = json_array_get(j, 1);
        got.len = 0;
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(tok, NULL, json_string_value(s), json_string_length(s), &got), DAPT_OK);
        int same = got.len == json_array_size(ids);
        for (size_t k = 0; same && k < got.len; k++)
            same = got.data[k] == (int32_t)json_integer_value(json_array_get(ids, k));
        if (!same && bad++ < 3) fprintf(stderr, "\nTestPlans case %zu differs: %s\n", i + 1, lines[i]);
        json_decref(j);
    }
    CU_ASSERT_EQUAL(bad, 0);
    dapt_ids_free(&got);
    tf_free_lines(lines, n);
    dapt_tokenizer_free(tok);
}

/* Pairs (text i, text i+1) of hard cases then corpus lines, with template. */
static void pairs_for(const char *model)
{
    char file[256];
    snprintf(file, sizeof file, FX "%s.pairs.ids.gz", model);
    dapt_tokenizer *tok = load(tf_vocab(model));
    char **hard = NULL, **corpus = NULL, **want = NULL;
    size_t nh = tf_read_lines(dapt_test_path(FX "hard_cases.jsonl"), &hard);
    size_t nc = tf_read_lines(dapt_test_path(FX "corpus.jsonl.gz"), &corpus);
    size_t nw = tf_read_lines(dapt_test_path(file), &want);
    CU_ASSERT_TRUE_FATAL(nh > 0 && nc > 400 && nw == nh + 400 - 1);
    dapt_encoding enc = {0};
    dapt_ids wi = {0}, wt = {0};
    dapt_encode_opts o = {.add_special = 1};
    size_t bad = 0;
    for (size_t i = 0; i < nw; i++) {
        size_t la = 0, lb = 0;
        char *a = tf_json_text(i < nh ? hard[i] : corpus[i - nh], &la);
        char *b = tf_json_text(i + 1 < nh ? hard[i + 1] : corpus[i + 1 - nh], &lb);
        CU_ASSERT_EQUAL_FATAL(dapt_tokenizer_encode_full(tok, NULL, a, la, b, lb, &o, &enc), DAPT_OK);
        tf_parse_ids(want[i], &wi);
        tf_parse_ids(strchr(want[i], '\t') + 1, &wt);
        if (!ids_equal(&enc.ids, wi.data, wi.len) || !ids_equal(&enc.type_ids, wt.data, wt.len)) {
            if (bad++ < 3) fprintf(stderr, "\n%s pair %zu differs\n", model, i + 1);
        }
        for (size_t k = 0; k < enc.ids.len; k++) CU_ASSERT_EQUAL(enc.attention_mask.data[k], 1);
        free(a);
        free(b);
    }
    CU_ASSERT_EQUAL(bad, 0);
    dapt_encoding_free(&enc);
    dapt_ids_free(&wi);
    dapt_ids_free(&wt);
    tf_free_lines(hard, nh);
    tf_free_lines(corpus, nc);
    tf_free_lines(want, nw);
    dapt_tokenizer_free(tok);
}

static void test_pairs_bert(void) { pairs_for("bert-base-uncased"); }
static void test_pairs_gpt2(void) { pairs_for("gpt2"); }
static void test_pairs_roberta(void) { pairs_for("roberta-base"); }

static void encode_words(dapt_tokenizer *tok, const char *a, const char *b, dapt_encode_opts o, dapt_encoding *e,
                         dapt_status want)
{
    dapt_status st = dapt_tokenizer_encode_full(tok, NULL, a, strlen(a), b, b ? strlen(b) : 0, &o, e);
    CU_ASSERT_EQUAL(st, want);
}

static void test_truncation_padding(void)
{
    dapt_tokenizer *tok = load(tf_vocab("bert-base-uncased"));
    dapt_encoding e = {0};
    const char *six = "one two three four five six", *three = "seven eight nine";
    /* longest_first, budget 8 - 3 specials = 5: Rust gives the shorter
     * text min(its length, 5/2) ... here a keeps 3, b keeps 2. */
    encode_words(tok, six, three, (dapt_encode_opts){1, DAPT_TRUNC_LONGEST_FIRST, 8, 0}, &e, DAPT_OK);
    int32_t one = dapt_tokenizer_token_to_id(tok, "one"), two = dapt_tokenizer_token_to_id(tok, "two"),
            thr = dapt_tokenizer_token_to_id(tok, "three"), sev = dapt_tokenizer_token_to_id(tok, "seven"),
            eig = dapt_tokenizer_token_to_id(tok, "eight");
    int32_t w1[] = {101, one, two, thr, 102, sev, eig, 102};
    int32_t t1[] = {0, 0, 0, 0, 0, 1, 1, 1};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w1, 8));
    CU_ASSERT_TRUE(ids_equal(&e.type_ids, t1, 8));
    /* Equal lengths, odd budget 5: first gets 2, second 3 (Rust's rule). */
    encode_words(tok, "one two three", "seven eight nine", (dapt_encode_opts){1, DAPT_TRUNC_LONGEST_FIRST, 8, 0}, &e,
                 DAPT_OK);
    int32_t nin = dapt_tokenizer_token_to_id(tok, "nine");
    int32_t w2[] = {101, one, two, 102, sev, eig, nin, 102};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w2, 8));
    /* Short second text: the long first takes the rest of the budget. */
    encode_words(tok, six, "seven", (dapt_encode_opts){1, DAPT_TRUNC_LONGEST_FIRST, 8, 0}, &e, DAPT_OK);
    int32_t w3[] = {101, one, two, thr, dapt_tokenizer_token_to_id(tok, "four"), 102, sev, 102};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w3, 8));
    /* only_second removes from b only; only_first from a only. */
    encode_words(tok, "one", three, (dapt_encode_opts){1, DAPT_TRUNC_ONLY_SECOND, 6, 0}, &e, DAPT_OK);
    int32_t w4[] = {101, one, 102, sev, eig, 102};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w4, 6));
    encode_words(tok, six, "seven", (dapt_encode_opts){1, DAPT_TRUNC_ONLY_FIRST, 6, 0}, &e, DAPT_OK);
    int32_t w5[] = {101, one, two, 102, sev, 102};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w5, 6));
    /* Impossible truncations are errors, not silent garbage. */
    encode_words(tok, "one", three, (dapt_encode_opts){1, DAPT_TRUNC_ONLY_FIRST, 5, 0}, &e, DAPT_ERR_ARG);
    encode_words(tok, six, NULL, (dapt_encode_opts){1, DAPT_TRUNC_ONLY_SECOND, 5, 0}, &e, DAPT_ERR_ARG);
    encode_words(tok, six, three, (dapt_encode_opts){1, DAPT_TRUNC_LONGEST_FIRST, 2, 0}, &e, DAPT_ERR_ARG);
    /* Single text, no specials, truncation and padding. */
    encode_words(tok, six, NULL, (dapt_encode_opts){0, DAPT_TRUNC_LONGEST_FIRST, 2, 0}, &e, DAPT_OK);
    int32_t w6[] = {one, two};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w6, 2));
    encode_words(tok, "one two", NULL, (dapt_encode_opts){1, DAPT_TRUNC_LONGEST_FIRST, 7, 1}, &e, DAPT_OK);
    int32_t w7[] = {101, one, two, 102, 0, 0, 0}, m7[] = {1, 1, 1, 1, 0, 0, 0}, s7[] = {1, 0, 0, 1, 1, 1, 1};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w7, 7));
    CU_ASSERT_TRUE(ids_equal(&e.attention_mask, m7, 7));
    CU_ASSERT_TRUE(ids_equal(&e.special_mask, s7, 7));
    CU_ASSERT_EQUAL(dapt_tokenizer_num_special(tok, 0), 2);
    CU_ASSERT_EQUAL(dapt_tokenizer_num_special(tok, 1), 3);
    dapt_tokenizer_free(tok);
    /* RoBERTa pair template, padding with <pad>=1; GPT-2 has no pad. */
    tok = load(tf_vocab("roberta-base"));
    encode_words(tok, "Hello", "world", (dapt_encode_opts){1, DAPT_TRUNC_NONE, 8, 1}, &e, DAPT_OK);
    int32_t w8[] = {0, 31414, 2, 2, 8331, 2, 1, 1};
    CU_ASSERT_TRUE(ids_equal(&e.ids, w8, 8));
    CU_ASSERT_EQUAL(dapt_tokenizer_num_special(tok, 1), 4);
    dapt_special_ids sp = dapt_tokenizer_specials(tok);
    CU_ASSERT_TRUE(sp.cls == 0 && sp.bos == 0 && sp.sep == 2 && sp.eos == 2 && sp.pad == 1 && sp.mask == 50264 &&
                   sp.unk == 3);
    dapt_tokenizer_free(tok);
    tok = load(tf_vocab("gpt2"));
    encode_words(tok, "Hello", NULL, (dapt_encode_opts){1, DAPT_TRUNC_NONE, 8, 1}, &e, DAPT_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "no pad token"));
    sp = dapt_tokenizer_specials(tok);
    CU_ASSERT_TRUE(sp.bos == 50256 && sp.eos == 50256 && sp.pad == -1 && sp.cls == -1);
    CU_ASSERT_EQUAL(dapt_tokenizer_num_special(tok, 0), 0);
    dapt_tokenizer_free(tok);
    dapt_encoding_free(&e);
}

static void decode_for(const char *model)
{
    char file[256];
    snprintf(file, sizeof file, FX "%s.decode.jsonl.gz", model);
    dapt_tokenizer *tok = load(tf_vocab(model));
    char **hard = NULL, **corpus = NULL, **want = NULL;
    size_t nh = tf_read_lines(dapt_test_path(FX "hard_cases.jsonl"), &hard);
    size_t nc = tf_read_lines(dapt_test_path(FX "corpus.jsonl.gz"), &corpus);
    size_t nw = tf_read_lines(dapt_test_path(file), &want);
    CU_ASSERT_TRUE_FATAL(nw > nh && nw - nh <= nc);
    dapt_encoding enc = {0};
    dapt_encode_opts o = {.add_special = 1};
    size_t bad = 0, lossless = 0;
    for (size_t i = 0; i < nw; i++) {
        size_t lt = 0, lw = 0;
        char *text = tf_json_text(i < nh ? hard[i] : corpus[i - nh], &lt);
        char *w = tf_json_text(want[i], &lw);
        CU_ASSERT_EQUAL_FATAL(dapt_tokenizer_encode_full(tok, NULL, text, lt, NULL, 0, &o, &enc), DAPT_OK);
        char *got = NULL;
        size_t lg = 0;
        CU_ASSERT_EQUAL_FATAL(dapt_tokenizer_decode(tok, enc.ids.data, enc.ids.len, 1, &got, &lg), DAPT_OK);
        if (lg != lw || memcmp(got, w, lw)) {
            if (bad++ < 3) fprintf(stderr, "\n%s decode %zu:\n  want %s\n  got  %s\n", model, i + 1, w, got);
        }
        /* Byte-level BPE is lossless when no added token swallowed spaces. */
        if (dapt_tokenizer_kind_of(tok) == DAPT_TOK_BPE && !strstr(text, "<mask>") && !strstr(text, "<s>") &&
            !strstr(text, "</s>") && !strstr(text, "<|endoftext|>") && !strstr(text, "<pad>") && !strstr(text, "<unk>")) {
            CU_ASSERT_TRUE(lg == lt && !memcmp(got, text, lt));
            lossless++;
        }
        free(got);
        free(text);
        free(w);
    }
    if (dapt_tokenizer_kind_of(tok) == DAPT_TOK_BPE) CU_ASSERT_TRUE(lossless > nw - 10);
    CU_ASSERT_EQUAL(bad, 0);
    dapt_encoding_free(&enc);
    tf_free_lines(hard, nh);
    tf_free_lines(corpus, nc);
    tf_free_lines(want, nw);
    dapt_tokenizer_free(tok);
}

static void test_decode_bert(void) { decode_for("bert-base-uncased"); }
static void test_decode_gpt2(void) { decode_for("gpt2"); }
static void test_decode_roberta(void) { decode_for("roberta-base"); }

static void test_decode_errors_and_lossy(void)
{
    dapt_tokenizer *tok = load(tf_vocab("gpt2"));
    int32_t bad_id[] = {15496, 50257};
    char *text = NULL;
    CU_ASSERT_EQUAL(dapt_tokenizer_decode(tok, bad_id, 2, 0, &text, NULL), DAPT_ERR_ARG);
    CU_ASSERT_PTR_NULL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "50257"));
    /* Half of a multi-byte character: U+FFFD, as Rust's from_utf8_lossy. */
    int32_t half[] = {15496, 171}; /* 171 = byte 0xEF alone */
    size_t n = 0;
    CU_ASSERT_EQUAL(dapt_tokenizer_decode(tok, half, 2, 0, &text, &n), DAPT_OK);
    CU_ASSERT_STRING_EQUAL(text, "Hello\xEF\xBF\xBD");
    free(text);
    dapt_tokenizer_free(tok);
}

/* A vocabulary token that is the continuation prefix alone ("##") decodes
 * to nothing after the first token: an empty piece, appended to buffers that
 * have no storage yet (UBSan: NULL + 0 before the fix, tests/run.sh --sanitize). */
static const char *scratch(const char *name);
static void write_text(const char *path, const char *text);

static void test_decode_empty_piece(void)
{
    const char *vocab = scratch("prefix_only_vocab.txt");
    write_text(vocab, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##\n");
    dapt_tokenizer *tok = load(vocab);
    const int32_t ids[][3] = {{5, 6, 6}, {6, 5, 6}};
    const char *want[] = {"hello", "## hello"};
    for (size_t k = 0; k < 2; k++) {
        char *text = NULL;
        size_t n = 99;
        CU_ASSERT_EQUAL(dapt_tokenizer_decode(tok, ids[k], 3, 1, &text, &n), DAPT_OK);
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_STRING_EQUAL(text, want[k]);
        CU_ASSERT_EQUAL(n, strlen(want[k]));
        free(text);
    }
    dapt_tokenizer_free(tok);
}

/* ---- formats, identity, checksum --------------------------------------- */

static char tmpdir[1024];

static const char *scratch(const char *name)
{
    static char buf[8][4096];
    static int next = 0;
    char *out = buf[next++ % 8];
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "%s/dapt_tok_XXXXXX", dapt_test_tmpdir());
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(tmpdir));
    }
    if ((size_t)snprintf(out, sizeof buf[0], "%s/%.1000s", tmpdir, name) >= sizeof buf[0]) out[0] = '\0';
    return out;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static void same_ids_on_hard_cases(dapt_tokenizer *a, dapt_tokenizer *b)
{
    char **hard = NULL;
    size_t nh = tf_read_lines(dapt_test_path(FX "hard_cases.jsonl"), &hard);
    dapt_ids x = {0}, y = {0};
    for (size_t i = 0; i < nh; i++) {
        size_t n = 0;
        char *t = tf_json_text(hard[i], &n);
        x.len = y.len = 0;
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(a, NULL, t, n, &x), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(b, NULL, t, n, &y), DAPT_OK);
        CU_ASSERT_TRUE(ids_equal(&x, y.data, y.len));
        free(t);
    }
    dapt_ids_free(&x);
    dapt_ids_free(&y);
    tf_free_lines(hard, nh);
}

static void test_formats_identity_checksum(void)
{
    char src[4096];
    /* GPT-2 from vocab.json + merges.txt (the published file names). */
    mkdir(scratch("gpt2"), 0755);
    snprintf(src, sizeof src, "%s/encoder.json", tf_vocab("gpt2"));
    CU_ASSERT_EQUAL_FATAL(symlink(src, scratch("gpt2/vocab.json")), 0);
    snprintf(src, sizeof src, "%s/vocab.bpe", tf_vocab("gpt2"));
    CU_ASSERT_EQUAL_FATAL(symlink(src, scratch("gpt2/merges.txt")), 0);
    dapt_tokenizer *a = load(tf_vocab("gpt2")), *b = load(scratch("gpt2"));
    same_ids_on_hard_cases(a, b);
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_identity(a), dapt_tokenizer_identity(b));
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_checksum(a), dapt_tokenizer_checksum(b));
    CU_ASSERT_EQUAL(strlen(dapt_tokenizer_checksum(a)), 64);
    CU_ASSERT_EQUAL(dapt_tokenizer_vocab_size(a), 50257);
    dapt_tokenizer_free(a);
    dapt_tokenizer_free(b);
    /* RoBERTa likewise: same template and specials from plain files. */
    mkdir(scratch("roberta"), 0755);
    const char *files[] = {"vocab.json", "merges.txt", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        char dst[128];
        snprintf(src, sizeof src, "%s/%s", tf_vocab("roberta-base"), files[i]);
        snprintf(dst, sizeof dst, "roberta/%s", files[i]);
        CU_ASSERT_EQUAL_FATAL(symlink(src, scratch(dst)), 0);
    }
    a = load(tf_vocab("roberta-base"));
    b = load(scratch("roberta"));
    same_ids_on_hard_cases(a, b);
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_identity(a), dapt_tokenizer_identity(b));
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_checksum(a), dapt_tokenizer_checksum(b));
    CU_ASSERT_NOT_EQUAL(strcmp(dapt_tokenizer_checksum(a), "0"), 0);
    dapt_tokenizer_free(a);
    dapt_tokenizer_free(b);
    /* BERT from vocab.txt and from tokenizer.json: same identity. */
    char p[4096];
    snprintf(p, sizeof p, "%s/vocab.txt", tf_vocab("bert-base-uncased"));
    a = load(tf_vocab("bert-base-uncased"));
    b = load(p);
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_identity(a),
                           "wordpiece lowercase=1 strip_accents=1 clean_text=1 chinese_chars=1 prefix=## "
                           "max_chars=100 vocab=30522 added=5 template=bert");
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_identity(a), dapt_tokenizer_identity(b));
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_checksum(a), dapt_tokenizer_checksum(b));
    CU_ASSERT_STRING_EQUAL(dapt_tokenizer_id_to_token(a, 7592), "hello");
    CU_ASSERT_PTR_NULL(dapt_tokenizer_id_to_token(a, 30522));
    dapt_tokenizer_free(b);
    /* One token changed: a different checksum. */
    write_text(scratch("v2.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n");
    write_text(scratch("v3.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworlds\n");
    b = load(scratch("v2.txt"));
    dapt_tokenizer *c = load(scratch("v3.txt"));
    CU_ASSERT_STRING_NOT_EQUAL(dapt_tokenizer_checksum(b), dapt_tokenizer_checksum(c));
    CU_ASSERT_STRING_NOT_EQUAL(dapt_tokenizer_checksum(a), dapt_tokenizer_checksum(b));
    dapt_ids ids = {0};
    CU_ASSERT_EQUAL(dapt_tokenizer_encode(b, NULL, "Hello, world", 12, &ids), DAPT_OK);
    int32_t w[] = {5, 1, 6}; /* "," is unknown */
    CU_ASSERT_TRUE(ids_equal(&ids, w, 3));
    dapt_ids_free(&ids);
    dapt_tokenizer_free(a);
    dapt_tokenizer_free(b);
    dapt_tokenizer_free(c);
}

/* Each bad file gives one error line that names the file and the cause. */
static void expect_load_error_in(const char *path, const char *file, dapt_status code, const char *needle)
{
    dapt_tokenizer *tok = NULL;
    dapt_status st = dapt_tokenizer_load(path, &tok);
    CU_ASSERT_EQUAL(st, code);
    CU_ASSERT_PTR_NULL(tok);
    const char *msg = dapt_error_message();
    if (st != code || !strstr(msg, needle) || !strstr(msg, file) || strchr(msg, '\n'))
        fprintf(stderr, "\nload %s: status %d, message '%s' (wanted '%s')\n", path, (int)st, msg, needle);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, file));
    CU_ASSERT_PTR_NULL(strchr(msg, '\n'));
    dapt_tokenizer_free(tok);
}

static void expect_load_error(const char *path, dapt_status code, const char *needle)
{
    expect_load_error_in(path, path, code, needle);
}

static void test_bad_files(void)
{
    expect_load_error(scratch("missing.json"), DAPT_ERR_IO, "no such file");
    mkdir(scratch("empty"), 0755);
    expect_load_error(scratch("empty"), DAPT_ERR_IO, "no tokenizer.json, vocab.txt or vocab.json+merges.txt");
    write_text(scratch("bad.json"), "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0,}}}");
    expect_load_error(scratch("bad.json"), DAPT_ERR_FORMAT, "malformed JSON at line 1");
    write_text(scratch("unigram.json"), "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
    expect_load_error(scratch("unigram.json"), DAPT_ERR_UNSUPPORTED, "model type 'Unigram' is not supported");
    write_text(scratch("nfkc.json"),
               "{\"normalizer\": {\"type\": \"NFKC\"}, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
               "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"[UNK]\": 0}}}");
    expect_load_error(scratch("nfkc.json"), DAPT_ERR_UNSUPPORTED, "normalizer 'NFKC' is not supported");
    write_text(scratch("nounk.json"),
               "{\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
               "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\", \"vocab\": {\"a\": 0}}}");
    expect_load_error(scratch("nounk.json"), DAPT_ERR_FORMAT, "unk_token '[UNK]' is not in the vocabulary");
    /* BPE whose merges refer to unknown tokens, or make unknown tokens. */
    char vocab[8192] = "{";
    for (int b = 0; b < 256; b++) {
        char enc[8];
        int32_t cp = tok_bpe_byte_char((unsigned)b);
        size_t k = 0;
        if (cp < 0x80) enc[k++] = (char)cp;
        else { enc[k++] = (char)(0xC0 | (cp >> 6)); enc[k++] = (char)(0x80 | (cp & 0x3F)); }
        enc[k] = '\0';
        char item[32];
        snprintf(item, sizeof item, "%s\"%s%s\": %d", b ? ", " : "", cp == '"' ? "\\" : cp == '\\' ? "\\" : "", enc, b);
        strcat(vocab, item);
    }
    char vj[9000];
    snprintf(vj, sizeof vj, "%s, \"ab\": 256}", vocab);
    mkdir(scratch("bpe1"), 0755);
    write_text(scratch("bpe1/vocab.json"), vj);
    write_text(scratch("bpe1/merges.txt"), "#version: 0.2\na b\nab zz\n");
    expect_load_error_in(scratch("bpe1"), "bpe1/merges.txt", DAPT_ERR_FORMAT, "merge 2 refers to 'zz'");
    write_text(scratch("bpe1/merges.txt"), "#version: 0.2\na b\nb c\n");
    expect_load_error_in(scratch("bpe1"), "bpe1/vocab.json", DAPT_ERR_FORMAT, "makes 'bc', which is not in the vocabulary");
    write_text(scratch("bpe1/merges.txt"), "#version: 0.2\na b c\n");
    expect_load_error_in(scratch("bpe1"), "bpe1/merges.txt", DAPT_ERR_FORMAT, "not two tokens separated by one space");
    write_text(scratch("bpe1/merges.txt"), "#version: 0.2\na b\n");
    dapt_tokenizer *tok = load(scratch("bpe1"));
    dapt_ids ids = {0};
    CU_ASSERT_EQUAL(dapt_tokenizer_encode(tok, NULL, "abc", 3, &ids), DAPT_OK);
    int32_t w[] = {256, dapt_tokenizer_token_to_id(tok, "c")};
    CU_ASSERT_TRUE(ids_equal(&ids, w, 2));
    dapt_ids_free(&ids);
    dapt_tokenizer_free(tok);
    mkdir(scratch("bpe2"), 0755);
    write_text(scratch("bpe2/vocab.json"), "{\"a\": 0, \"b\": 1}");
    write_text(scratch("bpe2/merges.txt"), "#version: 0.2\n");
    expect_load_error_in(scratch("bpe2"), "bpe2/vocab.json", DAPT_ERR_FORMAT, "no token for byte 0x00");
    mkdir(scratch("bpe3"), 0755);
    write_text(scratch("bpe3/vocab.json"), "{\"a\": 0}");
    expect_load_error_in(scratch("bpe3"), "bpe3/merges.txt", DAPT_ERR_IO, "missing");
    write_text(scratch("neg.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -4}, \"merges\": []},"
                                    "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    expect_load_error(scratch("neg.json"), DAPT_ERR_FORMAT, "vocabulary entry 'a' has no valid id");
    /* A sparse id would size the id table at 16 GiB: refused before allocating. */
    write_text(scratch("sparse.json"), "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 2147483646}, \"merges\": []},"
                                       "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    expect_load_error(scratch("sparse.json"), DAPT_ERR_FORMAT, "vocabulary ids run up to 2147483646 for 1 tokens");
    mkdir(scratch("bpe4"), 0755);
    write_text(scratch("bpe4/vocab.json"), "{\"a\": 0, \"b\": 2147483646}");
    write_text(scratch("bpe4/merges.txt"), "#version: 0.2\n");
    expect_load_error_in(scratch("bpe4"), "bpe4/vocab.json", DAPT_ERR_FORMAT, "ids must be dense");
    write_text(scratch("drop.json"), "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {}, \"merges\": []},"
                                     "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    expect_load_error(scratch("drop.json"), DAPT_ERR_UNSUPPORTED, "dropout is not supported");
}

static void test_invalid_utf8(void)
{
    dapt_tokenizer *tok = load(tf_vocab("bert-base-uncased"));
    dapt_ids ids = {0};
    dapt_ids_push(&ids, 42);
    const char *bad[] = {"abc\xC3", "abc\xC0\xAF", "ab\xED\xA0\x80", "a\xF5\x80\x80\x80", "\xFF", "abc\x80z"};
    size_t at[] = {3, 3, 2, 1, 0, 3};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(tok, NULL, bad[i], strlen(bad[i]), &ids), DAPT_ERR_FORMAT);
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", at[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), want));
        CU_ASSERT_EQUAL(ids.len, 1); /* left as it was */
    }
    dapt_ids_free(&ids);
    dapt_tokenizer_free(tok);
}

/* The hand-written ASCII matcher and PCRE2 split text identically. */
static void test_fast_path_matches_pcre2(void)
{
    static const char *const atoms[] = {"a", "Z", "q", "7", "0", " ", " ", "  ", "\t", "\n", "\r", "\v", "\f", "'",
                                        "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "!", ".", ",", "-", "_",
                                        "\"", "é", "\xC2\x85", "\xC2\xA0", "中", "😀", "\xEF\xBB\xBF", "٣", "\xE2\x80\xA8"};
    const size_t na = sizeof atoms / sizeof atoms[0];
    dapt_tokenizer *tok = load(tf_vocab("gpt2"));
    dapt_tok_state *ts = NULL, *ts2 = NULL;
    CU_ASSERT_EQUAL_FATAL(dapt_tok_state_new(tok, &ts), DAPT_OK);
    CU_ASSERT_EQUAL_FATAL(dapt_tok_state_new(tok, &ts2), DAPT_OK);
    dapt_ids fast = {0}, slow = {0};
    char buf[512];
    uint64_t x = 88172645463325252ull;
    size_t bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        int parts = 1 + (int)(x % 12);
        for (int k = 0; k < parts; k++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            const char *a = atoms[x % na];
            size_t l = strlen(a);
            memcpy(buf + len, a, l);
            len += l;
        }
        fast.len = slow.len = 0;
        tok_bpe_ascii_fast_path = 1;
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(tok, ts, buf, len, &fast), DAPT_OK);
        tok_bpe_ascii_fast_path = 0;
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(tok, iter % 2 ? ts2 : NULL, buf, len, &slow), DAPT_OK);
        if (!ids_equal(&fast, slow.data, slow.len) && bad++ < 3)
            fprintf(stderr, "\nfast path differs on '%.*s'\n", (int)len, buf);
    }
    tok_bpe_ascii_fast_path = 1;
    CU_ASSERT_EQUAL(bad, 0);
    dapt_ids_free(&fast);
    dapt_ids_free(&slow);
    dapt_tok_state_free(ts);
    dapt_tok_state_free(ts2);
    dapt_tokenizer_free(tok);
}

/* One tokenizer, one state per OpenMP thread: same ids as serially. */
static void threads_for(const char *model)
{
    dapt_tokenizer *tok = load(tf_vocab(model));
    char **lines = NULL;
    size_t n = tf_read_lines(dapt_test_path(FX "corpus.jsonl.gz"), &lines);
    if (n > 6000) n = 6000;
    dapt_ids *serial = calloc(n, sizeof *serial), *par = calloc(n, sizeof *par);
    for (size_t i = 0; i < n; i++) {
        size_t l = 0;
        char *t = tf_json_text(lines[i], &l);
        CU_ASSERT_EQUAL(dapt_tokenizer_encode(tok, NULL, t, l, &serial[i]), DAPT_OK);
        free(t);
    }
    int failures = 0;
#pragma omp parallel num_threads(4) reduction(+ : failures)
    {
        dapt_tok_state *ts = NULL;
        if (dapt_tok_state_new(tok, &ts) != DAPT_OK) failures++;
#pragma omp for schedule(dynamic, 16)
        for (size_t i = 0; i < n; i++) {
            size_t l = 0;
            char *t = tf_json_text(lines[i], &l);
            if (!ts || dapt_tokenizer_encode(tok, ts, t, l, &par[i]) != DAPT_OK) failures++;
            free(t);
        }
        dapt_tok_state_free(ts);
    }
    CU_ASSERT_EQUAL(failures, 0);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        differ += !ids_equal(&par[i], serial[i].data, serial[i].len);
        dapt_ids_free(&serial[i]);
        dapt_ids_free(&par[i]);
    }
    CU_ASSERT_EQUAL(differ, 0);
    free(serial);
    free(par);
    tf_free_lines(lines, n > 0 ? n : 0);
    dapt_tokenizer_free(tok);
}

static void test_threads_bert(void) { threads_for("bert-base-uncased"); }
static void test_threads_roberta(void) { threads_for("roberta-base"); }

/* The UTF-8 helpers (dapt/utf8.h): the standard's maximal-subpart example
 * (Unicode 15, table 3-8), the causes src_check_text reports, and a round
 * trip of every scalar value through encode and decode. */
static void test_utf8_helpers(void)
{
    const unsigned char t[] = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
    const size_t n = sizeof t - 1;
    char got[64] = "";
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        size_t w = dapt_utf8_decode(t + i, n - i, &cp);
        if (w) got[k++] = (char)cp;
        else got[k++] = '?', w = dapt_utf8_invalid(t + i, n - i, NULL);
        i += w;
    }
    got[k] = '\0';
    CU_ASSERT_STRING_EQUAL(got, "a???b?c??d");
    const char *why = NULL;
    dapt_utf8_invalid((const unsigned char *)"\xC0\xAF", 2, &why);
    CU_ASSERT_STRING_EQUAL(why, "invalid UTF-8 (bad lead byte)");
    CU_ASSERT_EQUAL(dapt_utf8_invalid((const unsigned char *)"\xE2\x82", 2, &why), 2);
    CU_ASSERT_STRING_EQUAL(why, "invalid UTF-8 (sequence cut short)");
    CU_ASSERT_EQUAL(dapt_utf8_invalid((const unsigned char *)"\xED\xA0\x80", 3, &why), 1);
    CU_ASSERT_STRING_EQUAL(why, "invalid UTF-8");
    CU_ASSERT_EQUAL(dapt_utf8_invalid((const unsigned char *)"\xF0\x9F\x98x", 4, &why), 3);
    CU_ASSERT_STRING_EQUAL(why, "invalid UTF-8");
    int ok = 1;
    for (int32_t cp = 0; cp <= 0x10FFFF && ok; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char b[4];
        size_t w = dapt_utf8_encode(cp, b);
        int32_t back = -1;
        ok = w >= 1 && w <= 4 && dapt_utf8_decode((const unsigned char *)b, w, &back) == w && back == cp &&
             dapt_utf8_validate(b, w) == w && (w == 1 || dapt_utf8_decode((const unsigned char *)b, w - 1, &back) == 0);
    }
    CU_ASSERT_TRUE(ok);
}

DAPT_TEST_MAIN("tokenizer",
               {"gpt2: gpt-tokenizer TestPlans (64 cases)", test_gpt2_testplans},
               {"bert-base-uncased: pairs with template and type ids", test_pairs_bert},
               {"gpt2: pairs", test_pairs_gpt2},
               {"roberta-base: pairs with <s> A </s></s> B </s>", test_pairs_roberta},
               {"truncation strategies and padding", test_truncation_padding},
               {"bert-base-uncased: decode", test_decode_bert},
               {"gpt2: decode and byte-level round trip", test_decode_gpt2},
               {"roberta-base: decode and byte-level round trip", test_decode_roberta},
               {"decode: bad id, lossy UTF-8", test_decode_errors_and_lossy},
               {"decode: a prefix-only token is an empty piece", test_decode_empty_piece},
               {"three file formats: same ids, identity, checksum", test_formats_identity_checksum},
               {"bad vocabulary files: one-line errors naming the file", test_bad_files},
               {"invalid UTF-8 input", test_invalid_utf8},
               {"UTF-8 helpers over utf8proc", test_utf8_helpers},
               {"ASCII fast path equals PCRE2 on random text", test_fast_path_matches_pcre2},
               {"bert: OpenMP threads share one tokenizer", test_threads_bert},
               {"roberta: OpenMP threads share one tokenizer", test_threads_roberta})
