/* Input splitting for dapt prepare: whatever the byte ranges, every document
 * is found exactly once and whole; UTF-8 checking; gzip inputs. */
#include "harness.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "data_internal.h"

static char tmp_path[4096];

static const char *write_tmp(const char *name, const char *data, size_t len, int gz)
{
    snprintf(tmp_path, sizeof tmp_path, "%s", dapt_test_tmpfile("source", name));
    if (gz) {
        gzFile g = gzopen(tmp_path, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        if (len) CU_ASSERT_EQUAL(gzwrite(g, data, (unsigned)len), (int)len);
        gzclose(g);
    } else {
        FILE *f = fopen(tmp_path, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
        fclose(f);
    }
    return tmp_path;
}

/* The documents of `text` as the splitter sees them, joined with '|'
 * (reference computed independently below). */
static void collect(const char *path, const src_info *info, dapt_doc_sep sep, int parts, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int r = 0; r < parts; r++) {
        int64_t s, e;
        data_rank_range(info->size, r, parts, &s, &e);
        src_part p;
        CU_ASSERT_EQUAL_FATAL(src_load(path, info, sep, s, e, &p), DAPT_OK);
        size_t pos = 0, len = 0;
        const char *doc;
        while (src_next_doc(&p, sep, &pos, &doc, &len)) {
            CU_ASSERT_FATAL(n + len + 2 < cap);
            memcpy(out + n, doc, len);
            n += len;
            out[n++] = '|';
            out[n] = '\0';
        }
        src_part_free(&p);
    }
}

/* Reference splitter, written the simple way over the whole text: line
 * mode gives each non-empty line without "\r\n"; blank mode joins the raw
 * lines of a run of non-empty lines with "\n" and drops the last line's
 * "\r" (internal "\r\n" stay, as the document's bytes are passed on). */
static void reference(const char *text, dapt_doc_sep sep, char *out)
{
    size_t n = 0, len = strlen(text), i = 0;
    int in_doc = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '\n') j++;
        size_t cend = j > i && text[j - 1] == '\r' ? j - 1 : j;
        int empty = cend == i;
        if (sep == DAPT_DOC_LINE) {
            if (!empty) {
                memcpy(out + n, text + i, cend - i);
                n += cend - i;
                out[n++] = '|';
            }
        } else if (empty) {
            if (in_doc) {
                if (out[n - 1] == '\r') n--;
                out[n++] = '|';
            }
            in_doc = 0;
        } else {
            if (in_doc) out[n++] = '\n';
            memcpy(out + n, text + i, j - i);
            n += j - i;
            in_doc = 1;
        }
        i = j + 1;
    }
    if (in_doc) {
        if (out[n - 1] == '\r') n--;
        out[n++] = '|';
    }
    out[n] = '\0';
}

static const char *const texts[] = {
    "one\ntwo\n\nthree four\n",
    "a\n\n\n\nb\nc\n\nd",
    "\n\nlead\nlines\n\n\ntrail\n\n",
    "x",
    "crlf one\r\ncrlf two\r\n\r\nnext doc\r\n",
    "  spaces  \n \n\t\nmore\n",
    "long line aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nshort\n\nq\n",
};

static void check_all_splits(int gz)
{
    static char got[8192], want[8192];
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        const char *text = texts[t];
        const char *path = write_tmp(gz ? "t.gz" : "t.txt", text, strlen(text), gz);
        src_info info;
        const char *paths[1] = {path};
        CU_ASSERT_EQUAL_FATAL(src_scan(MPI_COMM_SELF, paths, 1, &info), DAPT_OK);
        CU_ASSERT_EQUAL(info.size, (int64_t)strlen(text));
        CU_ASSERT_EQUAL(info.gz, gz);
        for (int sep = 0; sep < 2; sep++) {
            reference(text, (dapt_doc_sep)sep, want);
            for (int parts = 1; parts <= (int)strlen(text) + 1; parts++) {
                collect(path, &info, (dapt_doc_sep)sep, parts, got, sizeof got);
                CU_ASSERT_STRING_EQUAL(got, want);
            }
        }
        unlink(path);
    }
}

static void test_every_split_finds_every_document_once(void) { check_all_splits(0); }
static void test_gzip_input_splits_the_same(void) { check_all_splits(1); }

static void test_utf8_check(void)
{
    size_t bad = 99;
    const char *why = NULL;
    const char ok[] = "plain ascii, caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80 emoji";
    CU_ASSERT_TRUE(src_check_text(ok, sizeof ok - 1, &bad, &why));
    CU_ASSERT_FALSE(src_check_text("abc\x00" "def", 7, &bad, &why));
    CU_ASSERT_EQUAL(bad, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "NUL"));
    CU_ASSERT_FALSE(src_check_text("abcdefghij\xff", 11, &bad, &why));
    CU_ASSERT_EQUAL(bad, 10);
    CU_ASSERT_FALSE(src_check_text("ab\xc3", 3, &bad, &why)); /* cut short */
    CU_ASSERT_EQUAL(bad, 2);
    CU_ASSERT_FALSE(src_check_text("\xc0\xaf", 2, &bad, &why)); /* overlong */
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_FALSE(src_check_text("x\xed\xa0\x80", 4, &bad, &why)); /* surrogate */
    CU_ASSERT_EQUAL(bad, 1);
    CU_ASSERT_FALSE(src_check_text("\xf4\x90\x80\x80", 4, &bad, &why)); /* > U+10FFFF */
    CU_ASSERT_FALSE(src_check_text("12345678\xe2\x82", 10, &bad, &why));
    CU_ASSERT_EQUAL(bad, 8);
}

static void test_line_numbers(void)
{
    const char *path = write_tmp("lines.txt", "a\nb\nc\xff\n", 7, 0);
    CU_ASSERT_EQUAL(src_line_of(path, 0), 1);
    CU_ASSERT_EQUAL(src_line_of(path, 2), 2);
    CU_ASSERT_EQUAL(src_line_of(path, 5), 3);
    unlink(path);
}

static void test_bad_inputs_rejected(void)
{
    src_info info;
    const char *missing[1] = {"/nonexistent/dapt/input.txt"};
    CU_ASSERT_EQUAL(src_scan(MPI_COMM_SELF, missing, 1, &info), DAPT_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "/nonexistent/dapt/input.txt"));

    const char *empty[1] = {write_tmp("empty.txt", "", 0, 0)};
    CU_ASSERT_EQUAL(src_scan(MPI_COMM_SELF, empty, 1, &info), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "empty input"));
    unlink(tmp_path);

    /* A gzip stream cut in the middle. */
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + (i * 7919) % 26);
    const char *gzp = write_tmp("cut.gz", big, sizeof big, 1);
    FILE *f = fopen(gzp, "rb");
    static char raw[400000];
    size_t n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    f = fopen(gzp, "wb");
    fwrite(raw, 1, n / 2, f);
    fclose(f);
    const char *cut[1] = {gzp};
    CU_ASSERT_EQUAL(src_scan(MPI_COMM_SELF, cut, 1, &info), DAPT_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "truncated gzip"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), gzp));
    unlink(gzp);
}

static void test_rank_ranges_cover(void)
{
    const int64_t totals[] = {0, 1, 7, 1000003, INT64_MAX / 2};
    for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++) {
        for (int size = 1; size <= 9; size++) {
            int64_t prev = 0;
            for (int r = 0; r < size; r++) {
                int64_t s, e;
                data_rank_range(totals[t], r, size, &s, &e);
                CU_ASSERT_EQUAL(s, prev);
                CU_ASSERT(e >= s);
                CU_ASSERT(e - s <= totals[t] / size + 1);
                prev = e;
            }
            CU_ASSERT_EQUAL(prev, totals[t]);
        }
    }
    CU_ASSERT_EQUAL(dapt_corpus_id_bytes(256), 1);
    CU_ASSERT_EQUAL(dapt_corpus_id_bytes(257), 2);
    CU_ASSERT_EQUAL(dapt_corpus_id_bytes(65536), 2);
    CU_ASSERT_EQUAL(dapt_corpus_id_bytes(65537), 4);
}

DAPT_TEST_MAIN("data_source",
               {"every split finds every document once", test_every_split_finds_every_document_once},
               {"gzip input splits the same", test_gzip_input_splits_the_same},
               {"UTF-8 check", test_utf8_check},
               {"line numbers", test_line_numbers},
               {"bad inputs rejected", test_bad_inputs_rejected},
               {"rank ranges cover the input", test_rank_ranges_cover})
