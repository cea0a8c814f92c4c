/* safetensors: half-precision conversions, the writer's Hugging Face layout
 * (byte-identical to the Python-written fixture), and one refusal line for
 * each kind of malformed file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dapt/fsio.h"
#include "dapt/safetensors.h"
#include "harness.h"

static const char *scratch(const char *name) { return dapt_test_tmpfile("st", name); }

static void test_half_conversions(void)
{
    CU_ASSERT_EQUAL(dapt_f16_to_f32(0x3c00), 1.0f);
    CU_ASSERT_EQUAL(dapt_f16_to_f32(0xc000), -2.0f);
    CU_ASSERT_EQUAL(dapt_f16_to_f32(0x7bff), 65504.0f);
    CU_ASSERT_EQUAL(dapt_f16_to_f32(0x0001), ldexpf(1.0f, -24));
    CU_ASSERT_EQUAL(dapt_f16_to_f32(0x03ff), ldexpf(1023.0f, -24));
    CU_ASSERT_TRUE(isinf(dapt_f16_to_f32(0x7c00)));
    CU_ASSERT_TRUE(isnan(dapt_f16_to_f32(0x7e00)));
    CU_ASSERT_TRUE(signbit(dapt_f16_to_f32(0x8000)));
    CU_ASSERT_EQUAL(dapt_bf16_to_f32(0x3f80), 1.0f);
    CU_ASSERT_EQUAL(dapt_bf16_to_f32(0xc0a0), -5.0f);
    /* Every non-NaN half survives f16 -> f32 -> f16; bf16 likewise. */
    int ok16 = 1, okbf = 1;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dapt_f16_to_f32((uint16_t)h), g = dapt_bf16_to_f32((uint16_t)h);
        if (!isnan(f)) ok16 &= dapt_f32_to_f16(f) == h;
        if (!isnan(g)) okbf &= dapt_f32_to_bf16(g) == h;
    }
    CU_ASSERT_TRUE(ok16);
    CU_ASSERT_TRUE(okbf);
    /* Narrowing rounds to nearest even. */
    CU_ASSERT_EQUAL(dapt_f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);         /* tie -> even */
    CU_ASSERT_EQUAL(dapt_f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);     /* tie -> even */
    CU_ASSERT_EQUAL(dapt_f32_to_f16(65520.0f), 0x7c00);                          /* overflow */
    CU_ASSERT_EQUAL(dapt_f32_to_bf16(1.0f + ldexpf(1.0f, -8)), 0x3f80);
}

/* A file the Python fixture script wrote in Hugging Face's layout: reading
 * it and writing the same tensors back gives the same bytes. */
static void test_fixture_byte_identical(void)
{
    const char *names[] = {"tests/fixtures/hf/bert_mlm/model.safetensors",
                           "tests/fixtures/hf/bert_mlm_bf16/model.safetensors",
                           "tests/fixtures/hf/roberta_mlm_decoder/model.safetensors"};
    for (size_t k = 0; k < 3; k++) {
        dapt_safetensors st;
        CU_ASSERT_EQUAL_FATAL(dapt_st_open(dapt_test_path(names[k]), &st), DAPT_OK);
        CU_ASSERT_TRUE(st.count > 30);
        CU_ASSERT_EQUAL(st.meta_count, 1);
        dapt_st_entry *e = calloc(st.count, sizeof *e);
        for (size_t i = 0; i < st.count; i++) {
            e[st.count - 1 - i].name = st.tensors[i].name; /* reversed: the writer sorts */
            e[st.count - 1 - i].dtype = st.tensors[i].dtype;
            e[st.count - 1 - i].ndim = st.tensors[i].ndim;
            memcpy(e[st.count - 1 - i].shape, st.tensors[i].shape, sizeof st.tensors[i].shape);
            e[st.count - 1 - i].data = dapt_st_bytes(&st, &st.tensors[i]);
        }
        const char *meta[] = {"format", "pt"};
        const char *out = scratch("copy.safetensors");
        CU_ASSERT_EQUAL(dapt_st_write(out, e, st.count, meta, 1, 1), DAPT_OK);
        unsigned char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        CU_ASSERT_EQUAL(dapt_fs_read_file(dapt_test_path(names[k]), 1 << 24, &a, &la), DAPT_OK);
        CU_ASSERT_EQUAL(dapt_fs_read_file(out, 1 << 24, &b, &lb), DAPT_OK);
        CU_ASSERT_TRUE(a && b && la == lb && !memcmp(a, b, la));
        free(a);
        free(b);
        free(e);
        unlink(out);
        dapt_st_close(&st);
    }
    /* Existing output refused without force. */
    dapt_st_entry one = {"x", DAPT_ST_F32, 1, {1}, "\0\0\0\0"};
    const char *out = scratch("exists.safetensors");
    CU_ASSERT_EQUAL(dapt_st_write(out, &one, 1, NULL, 0, 0), DAPT_OK);
    CU_ASSERT_EQUAL(dapt_st_write(out, &one, 1, NULL, 0, 0), DAPT_ERR_EXISTS);
    unlink(out);
}

static void test_roundtrip_dtypes(void)
{
    const float f[6] = {1.5f, -2.25f, 0.0f, 3e-5f, 65504.0f, -0.125f};
    uint16_t h[6], bf[6];
    for (int i = 0; i < 6; i++) {
        h[i] = dapt_f32_to_f16(f[i]);
        bf[i] = dapt_f32_to_bf16(f[i]);
    }
    const double d[2] = {0.1, -7.0};
    const int64_t pos[4] = {0, 1, 2, 3};
    const int32_t i32[2] = {-5, 7};
    dapt_st_entry e[] = {{"w.f32", DAPT_ST_F32, 2, {2, 3}, f}, {"w.f16", DAPT_ST_F16, 2, {3, 2}, h},
                         {"w.bf16", DAPT_ST_BF16, 1, {6}, bf}, {"a.f64", DAPT_ST_F64, 1, {2}, d},
                         {"pos", DAPT_ST_I64, 2, {1, 4}, pos},   {"i", DAPT_ST_I32, 1, {2}, i32},
                         {"empty", DAPT_ST_F32, 2, {0, 4}, NULL}, {"scalar", DAPT_ST_F32, 0, {0}, f}};
    const char *meta[] = {"format", "pt", "note", "dapt"};
    const char *out = scratch("types.safetensors");
    CU_ASSERT_EQUAL_FATAL(dapt_st_write(out, e, 8, meta, 2, 1), DAPT_OK);
    dapt_safetensors st;
    CU_ASSERT_EQUAL_FATAL(dapt_st_open(out, &st), DAPT_OK);
    CU_ASSERT_EQUAL(st.count, 8);
    CU_ASSERT_EQUAL(st.meta_count, 2);
    /* Layout: I64 first (widest in safetensors' order), then F64, F32 by name... */
    CU_ASSERT_STRING_EQUAL(st.tensors[0].name, "pos");
    CU_ASSERT_STRING_EQUAL(st.tensors[1].name, "a.f64");
    CU_ASSERT_STRING_EQUAL(st.tensors[2].name, "empty");
    CU_ASSERT_STRING_EQUAL(st.tensors[st.count - 1].name, "w.f16");
    CU_ASSERT_EQUAL((8 + (size_t)(st.data - st.map - 8)) % 8, 0);
    float got[6];
    for (const char *n = "w.f32"; n; n = !strcmp(n, "w.f32") ? "w.f16" : !strcmp(n, "w.f16") ? "w.bf16" : NULL) {
        const dapt_st_tensor *t = dapt_st_find(&st, n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(t);
        CU_ASSERT_EQUAL(dapt_st_to_f32(&st, t, got), DAPT_OK);
        for (int i = 0; i < 6; i++) {
            float want = !strcmp(n, "w.f32") ? f[i] : !strcmp(n, "w.f16") ? dapt_f16_to_f32(h[i]) : dapt_bf16_to_f32(bf[i]);
            CU_ASSERT_EQUAL(got[i], want);
        }
    }
    CU_ASSERT_EQUAL(dapt_st_to_f32(&st, dapt_st_find(&st, "a.f64"), got), DAPT_OK);
    CU_ASSERT_EQUAL(got[0], 0.1f);
    int64_t iv[4];
    CU_ASSERT_EQUAL(dapt_st_to_i64(&st, dapt_st_find(&st, "pos"), iv), DAPT_OK);
    CU_ASSERT_EQUAL(iv[3], 3);
    CU_ASSERT_EQUAL(dapt_st_to_i64(&st, dapt_st_find(&st, "i"), iv), DAPT_OK);
    CU_ASSERT_EQUAL(iv[0], -5);
    CU_ASSERT_EQUAL(dapt_st_to_f32(&st, dapt_st_find(&st, "pos"), got), DAPT_ERR_UNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(dapt_error_message(), "tensor 'pos': dtype I64 is not a floating-point"));
    CU_ASSERT_EQUAL(dapt_st_find(&st, "scalar")->ndim, 0);
    CU_ASSERT_EQUAL(dapt_st_find(&st, "scalar")->numel, 1);
    dapt_st_close(&st);
    unlink(out);
}

/* Writes 8-byte length (declared, or the real one when declared < 0),
 * header text and data bytes. */
static const char *craft(const char *name, long long declared, const char *header, size_t data_bytes)
{
    const char *p = scratch(name);
    FILE *fp = fopen(p, "wb");
    uint64_t n = declared < 0 ? strlen(header) : (uint64_t)declared;
    for (int i = 0; i < 8; i++) fputc((int)((n >> (8 * i)) & 0xff), fp);
    fputs(header, fp);
    for (size_t i = 0; i < data_bytes; i++) fputc((int)i, fp);
    fclose(fp);
    return p;
}

static void expect_refusal(const char *path, const char *fragment)
{
    dapt_safetensors st;
    dapt_status s = dapt_st_open(path, &st);
    CU_ASSERT_EQUAL(s, DAPT_ERR_FORMAT);
    if (!strstr(dapt_error_message(), fragment)) {
        fprintf(stderr, "\n  expected '%s' in: %s\n", fragment, dapt_error_message());
        CU_FAIL("message does not name the cause");
    }
    if (s == DAPT_OK) dapt_st_close(&st);
    unlink(path);
}

static void test_refusals(void)
{
    const char *good = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
    dapt_safetensors st;
    const char *ok = craft("good", -1, good, 16);
    CU_ASSERT_EQUAL(dapt_st_open(ok, &st), DAPT_OK);
    if (st.map) dapt_st_close(&st);
    unlink(ok);
    expect_refusal(craft("short", -1, "", 0), "header is not valid JSON"); /* length 0: no header */
    {
        const char *p = scratch("tiny");
        FILE *fp = fopen(p, "wb");
        fputs("abc", fp);
        fclose(fp);
        expect_refusal(p, "3 bytes, too short for a safetensors header");
    }
    expect_refusal(craft("trunc", -1, good, 15), "'b': data_offsets [8, 16] run past the end of the data (15");
    expect_refusal(craft("longhdr", 4000, good, 16), "header length 4000 runs past the end of the file");
    expect_refusal(craft("hugehdr", 200000000, good, 16), "above the 100 MB limit");
    expect_refusal(craft("nonjson", -1, "{\"a\": {\"dtype\": \"F32\", ", 0), "header is not valid JSON");
    expect_refusal(craft("array", -1, "[1, 2]", 0), "header is JSON but not an object");
    expect_refusal(craft("overlap", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
                   "tensor 'b': data_offsets [4, 12] overlap tensor 'a'");
    expect_refusal(craft("gap", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
                   "data bytes [4, 8) belong to no tensor");
    expect_refusal(craft("trailing", -1, good, 20), "4 bytes after the last tensor");
    expect_refusal(craft("shape", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
                   "tensor 'a': 8 bytes at [0, 8) but shape x F32 needs 12");
    expect_refusal(craft("dtype", -1, "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
                   "tensor 'a': unknown dtype 'F33'");
    expect_refusal(craft("negshape", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
                   "shape entry 0 is not a non-negative integer");
    expect_refusal(craft("backwards", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8),
                   "end 0 before begin 8");
    expect_refusal(craft("dup", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
                   "header is not valid JSON");
    expect_refusal(craft("meta", -1, "{\"__metadata__\":{\"format\":1}}", 0), "__metadata__ value of 'format'");
    expect_refusal(craft("huge", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000,1000000,1000000],"
                                     "\"data_offsets\":[0,8]}}", 8), "shape is larger than the file");
    /* An empty header object with no data is a valid (empty) file. */
    const char *empty = craft("empty", -1, "{}      ", 0);
    CU_ASSERT_EQUAL(dapt_st_open(empty, &st), DAPT_OK);
    CU_ASSERT_EQUAL(st.count, 0);
    dapt_st_close(&st);
    unlink(empty);
}

DAPT_TEST_MAIN("safetensors", {"F16/BF16 conversions", test_half_conversions},
               {"writer reproduces Hugging Face's bytes", test_fixture_byte_identical},
               {"write and read every dtype", test_roundtrip_dtypes},
               {"malformed files refused with the cause", test_refusals})
