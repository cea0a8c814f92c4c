/* safetensors reader and writer (see include/dapt/safetensors.h). */
#include "dapt/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dapt/fsio.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the safetensors writer copies element bytes unchanged: little-endian hosts only"
#endif

/* Hugging Face's reader refuses larger headers; so do we. */
#define MAX_HEADER_BYTES 100000000ull

static const struct {
    const char *name;
    size_t size;
} dtypes[DAPT_ST_DTYPE_COUNT] = {
    [DAPT_ST_BOOL] = {"BOOL", 1},       [DAPT_ST_U8] = {"U8", 1},   [DAPT_ST_I8] = {"I8", 1},
    [DAPT_ST_F8_E5M2] = {"F8_E5M2", 1}, [DAPT_ST_F8_E4M3] = {"F8_E4M3", 1},
    [DAPT_ST_I16] = {"I16", 2},         [DAPT_ST_U16] = {"U16", 2}, [DAPT_ST_F16] = {"F16", 2},
    [DAPT_ST_BF16] = {"BF16", 2},       [DAPT_ST_I32] = {"I32", 4}, [DAPT_ST_U32] = {"U32", 4},
    [DAPT_ST_F32] = {"F32", 4},         [DAPT_ST_F64] = {"F64", 8}, [DAPT_ST_I64] = {"I64", 8},
    [DAPT_ST_U64] = {"U64", 8},
};

const char *dapt_st_dtype_name(dapt_st_dtype dt)
{
    return (int)dt >= 0 && dt < DAPT_ST_DTYPE_COUNT ? dtypes[dt].name : "?";
}

size_t dapt_st_dtype_size(dapt_st_dtype dt)
{
    return (int)dt >= 0 && dt < DAPT_ST_DTYPE_COUNT ? dtypes[dt].size : 0;
}

dapt_status dapt_st_dtype_parse(const char *name, dapt_st_dtype *dt)
{
    for (int i = 0; i < DAPT_ST_DTYPE_COUNT; i++)
        if (!strcmp(name, dtypes[i].name)) {
            *dt = (dapt_st_dtype)i;
            return DAPT_OK;
        }
    return DAPT_ERR_FORMAT;
}

/* ---- half precision ---------------------------------------------------- */

float dapt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* Inf / NaN (payload kept) */
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        /* Subnormal half: normalise into a float. */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float dapt_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t dapt_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);                                            /* nearest even */
    return (uint16_t)(bits >> 16);
}

uint16_t dapt_f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return sign | 0x7e00u;
    if (abs >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: Inf */
    if (abs < 0x38800000u) {
        /* Result is subnormal or zero: scale by 2^24 and round. */
        float a;
        memcpy(&a, &abs, sizeof a);
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    uint32_t man = abs & 0x7fffffu, exp = (abs >> 23) - 112u;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
    return sign | (uint16_t)h;
}

/* ---- reader ------------------------------------------------------------ */

static void free_tensors(dapt_safetensors *st)
{
    for (size_t i = 0; i < st->count; i++) free(st->tensors[i].name);
    free(st->tensors);
    for (size_t i = 0; i < st->meta_count; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->meta_keys);
    free(st->meta_values);
    st->tensors = NULL;
    st->count = 0;
    st->meta_keys = st->meta_values = NULL;
    st->meta_count = 0;
}

void dapt_st_close(dapt_safetensors *st)
{
    free_tensors(st);
    if (st->map) munmap(st->map, st->size);
    st->map = NULL;
    st->data = NULL;
    st->size = 0;
}

static int by_offset(const void *a, const void *b)
{
    const dapt_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static dapt_status parse_metadata(dapt_safetensors *st, json_t *meta)
{
    if (!json_is_object(meta))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: __metadata__ is not a JSON object", st->path);
    size_t n = json_object_size(meta);
    DAPT_CHECK(dapt_calloc((void **)&st->meta_keys, n, sizeof *st->meta_keys, "safetensors metadata"));
    DAPT_CHECK(dapt_calloc((void **)&st->meta_values, n, sizeof *st->meta_values, "safetensors metadata"));
    const char *key;
    json_t *value;
    json_object_foreach(meta, key, value)
    {
        if (!json_is_string(value))
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", st->path, key);
        st->meta_keys[st->meta_count] = strdup(key);
        st->meta_values[st->meta_count] = strdup(json_string_value(value));
        st->meta_count++;
        if (!st->meta_keys[st->meta_count - 1] || !st->meta_values[st->meta_count - 1])
            return DAPT_ERROR(DAPT_ERR_NOMEM, "%s: cannot copy metadata", st->path);
    }
    return DAPT_OK;
}

static dapt_status parse_tensor(dapt_safetensors *st, const char *name, json_t *info, dapt_st_tensor *t)
{
    const char *p = st->path;
    if (!json_is_object(info)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", p, name);
    json_t *dtype = json_object_get(info, "dtype"), *shape = json_object_get(info, "shape"),
           *offs = json_object_get(info, "data_offsets");
    if (!json_is_string(dtype)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': no dtype string", p, name);
    if (dapt_st_dtype_parse(json_string_value(dtype), &t->dtype) != DAPT_OK)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", p, name, json_string_value(dtype));
    if (!json_is_array(shape)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': no shape array", p, name);
    if (json_array_size(shape) > DAPT_ST_MAX_DIMS)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': %zu dimensions (at most %d)", p, name,
                          json_array_size(shape), DAPT_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    /* numel x size must not overflow: check against the file size as we go. */
    uint64_t numel = 1;
    int zero = 0;
    for (int d = 0; d < t->ndim; d++) {
        json_t *v = json_array_get(shape, (size_t)d);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': shape entry %d is not a non-negative integer", p,
                              name, d);
        t->shape[d] = (int64_t)json_integer_value(v);
        if (t->shape[d] == 0) zero = 1;
        else if (!zero) {
            if (numel > (uint64_t)st->size / (uint64_t)t->shape[d])
                return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': shape is larger than the file", p, name);
            numel *= (uint64_t)t->shape[d];
        }
    }
    if (zero) numel = 0;
    t->numel = (size_t)numel;
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)) || json_integer_value(json_array_get(offs, 0)) < 0 ||
        json_integer_value(json_array_get(offs, 1)) < 0)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': data_offsets is not [begin, end] of non-negative integers",
                          p, name);
    t->begin = (uint64_t)json_integer_value(json_array_get(offs, 0));
    t->end = (uint64_t)json_integer_value(json_array_get(offs, 1));
    if (t->end < t->begin)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu before begin %llu", p, name,
                          (unsigned long long)t->end, (unsigned long long)t->begin);
    uint64_t bytes = numel * dapt_st_dtype_size(t->dtype);
    if (t->end - t->begin != bytes)
        return DAPT_ERROR(DAPT_ERR_FORMAT,
                          "%s: tensor '%s': %llu bytes at [%llu, %llu) but shape x %s needs %llu", p, name,
                          (unsigned long long)(t->end - t->begin), (unsigned long long)t->begin,
                          (unsigned long long)t->end, dapt_st_dtype_name(t->dtype), (unsigned long long)bytes);
    t->name = strdup(name);
    if (!t->name) return DAPT_ERROR(DAPT_ERR_NOMEM, "%s: cannot copy a tensor name", p);
    return DAPT_OK;
}

static dapt_status parse_header(dapt_safetensors *st, uint64_t n)
{
    const char *p = st->path;
    json_error_t err;
    json_t *root = json_loadb((const char *)st->map + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: header is not valid JSON (at byte %d: %s)", p, err.position, err.text);
    dapt_status st_ = DAPT_OK;
    if (!json_is_object(root)) {
        json_decref(root);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: header is JSON but not an object", p);
    }
    size_t n_entries = json_object_size(root);
    st_ = dapt_calloc((void **)&st->tensors, n_entries, sizeof *st->tensors, "safetensors tensor list");
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (st_ != DAPT_OK) break;
        if (!strcmp(key, "__metadata__")) st_ = parse_metadata(st, value);
        else {
            st_ = parse_tensor(st, key, value, &st->tensors[st->count]);
            if (st_ == DAPT_OK) st->count++;
        }
    }
    json_decref(root);
    DAPT_CHECK(st_);

    /* Sorted by offset, the tensors must tile [0, data size) exactly. */
    qsort(st->tensors, st->count, sizeof *st->tensors, by_offset);
    uint64_t data_size = (uint64_t)st->size - 8 - n, at = 0;
    for (size_t i = 0; i < st->count; i++) {
        const dapt_st_tensor *t = &st->tensors[i];
        if (t->end > data_size)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of "
                              "the data (%llu bytes)", p, t->name, (unsigned long long)t->begin,
                              (unsigned long long)t->end, (unsigned long long)data_size);
        if (t->begin < at)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s'", p,
                              t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                              st->tensors[i - 1].name);
        if (t->begin > at)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: data bytes [%llu, %llu) belong to no tensor (before '%s')", p,
                              (unsigned long long)at, (unsigned long long)t->begin, t->name);
        at = t->end;
    }
    if (at != data_size)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %llu bytes after the last tensor belong to no tensor", p,
                          (unsigned long long)(data_size - at));
    return DAPT_OK;
}

dapt_status dapt_st_open(const char *path, dapt_safetensors *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    int fd = -1;
    DAPT_CHECK(dapt_fs_open_regular(path, &fd, &st->size));
    if (st->size < 8) {
        close(fd);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: %zu bytes, too short for a safetensors header", path, st->size);
    }
    void *m = mmap(NULL, st->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    st->map = m;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | st->map[i];
    dapt_status s = DAPT_OK;
    if (n > MAX_HEADER_BYTES)
        s = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: header length %llu is above the 100 MB limit", path, (unsigned long long)n);
    else if (n > st->size - 8)
        s = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)n, st->size);
    else
        s = parse_header(st, n);
    if (s != DAPT_OK) {
        dapt_st_close(st);
        return s;
    }
    st->data = st->map + 8 + n;
    return DAPT_OK;
}

const dapt_st_tensor *dapt_st_find(const dapt_safetensors *st, const char *name)
{
    for (size_t i = 0; i < st->count; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

const void *dapt_st_bytes(const dapt_safetensors *st, const dapt_st_tensor *t) { return st->data + t->begin; }

/* Unaligned little-endian loads: the data section need not be aligned. */
static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

dapt_status dapt_st_to_f32(const dapt_safetensors *st, const dapt_st_tensor *t, float *out)
{
    const unsigned char *p = dapt_st_bytes(st, t);
    switch (t->dtype) {
    case DAPT_ST_F32:
        for (size_t i = 0; i < t->numel; i++) {
            uint32_t b = le32(p + 4 * i);
            memcpy(&out[i], &b, 4);
        }
        return DAPT_OK;
    case DAPT_ST_F16:
        for (size_t i = 0; i < t->numel; i++) out[i] = dapt_f16_to_f32(le16(p + 2 * i));
        return DAPT_OK;
    case DAPT_ST_BF16:
        for (size_t i = 0; i < t->numel; i++) out[i] = dapt_bf16_to_f32(le16(p + 2 * i));
        return DAPT_OK;
    case DAPT_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            uint64_t b = le64(p + 8 * i);
            double d;
            memcpy(&d, &b, 8);
            out[i] = (float)d;
        }
        return DAPT_OK;
    default:
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not a floating-point type dapt reads",
                          st->path, t->name, dapt_st_dtype_name(t->dtype));
    }
}

dapt_status dapt_st_to_i64(const dapt_safetensors *st, const dapt_st_tensor *t, int64_t *out)
{
    const unsigned char *p = dapt_st_bytes(st, t);
    for (size_t i = 0; i < t->numel; i++) {
        switch (t->dtype) {
        case DAPT_ST_BOOL:
        case DAPT_ST_U8: out[i] = p[i]; break;
        case DAPT_ST_I8: out[i] = (int8_t)p[i]; break;
        case DAPT_ST_U16: out[i] = le16(p + 2 * i); break;
        case DAPT_ST_I16: out[i] = (int16_t)le16(p + 2 * i); break;
        case DAPT_ST_U32: out[i] = le32(p + 4 * i); break;
        case DAPT_ST_I32: out[i] = (int32_t)le32(p + 4 * i); break;
        case DAPT_ST_I64: out[i] = (int64_t)le64(p + 8 * i); break;
        case DAPT_ST_U64: {
            uint64_t v = le64(p + 8 * i);
            if (v > INT64_MAX)
                return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: tensor '%s': value %llu does not fit int64", st->path, t->name,
                                  (unsigned long long)v);
            out[i] = (int64_t)v;
            break;
        }
        default:
            return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not an integer type", st->path,
                              t->name, dapt_st_dtype_name(t->dtype));
        }
    }
    return DAPT_OK;
}

/* ---- writer ------------------------------------------------------------ */

static int write_order(const void *a, const void *b)
{
    const dapt_st_entry *x = *(const dapt_st_entry *const *)a, *y = *(const dapt_st_entry *const *)b;
    if (x->dtype != y->dtype) return x->dtype > y->dtype ? -1 : 1;
    return strcmp(x->name, y->name);
}

dapt_status dapt_st_write(const char *path, const dapt_st_entry *entries, size_t count, const char *const *meta,
                          size_t nmeta, int force)
{
    if (!force && dapt_fs_exists(path)) return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", path);
    dapt_status st = DAPT_OK;
    const dapt_st_entry **order = NULL;
    json_t *root = json_object(), *m = NULL;
    char *header = NULL;
    int fd = -1;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (!root) DAPT_THROW(DAPT_ERR_NOMEM, "%s: cannot build the header", path);
    DAPT_TRY(dapt_calloc((void **)&order, count, sizeof *order, "safetensors write order"));
    for (size_t i = 0; i < count; i++) order[i] = &entries[i];
    qsort(order, count, sizeof *order, write_order);
    if (nmeta) {
        m = json_object();
        for (size_t i = 0; m && i < nmeta; i++)
            if (json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1])) != 0) break;
        if (!m || json_object_set_new(root, "__metadata__", m) != 0)
            DAPT_THROW(DAPT_ERR_NOMEM, "%s: cannot build the metadata", path);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < count; i++) {
        const dapt_st_entry *e = order[i];
        if (i > 0 && !strcmp(e->name, order[i - 1]->name) && e->dtype == order[i - 1]->dtype)
            DAPT_THROW(DAPT_ERR_INTERNAL, "%s: tensor '%s' given twice", path, e->name);
        if (json_object_get(root, e->name))
            DAPT_THROW(DAPT_ERR_INTERNAL, "%s: tensor '%s' given twice", path, e->name);
        json_t *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; shape && d < e->ndim; d++) {
            json_array_append_new(shape, json_integer(e->shape[d]));
            numel *= (uint64_t)e->shape[d];
        }
        uint64_t bytes = numel * dapt_st_dtype_size(e->dtype);
        json_t *info = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dapt_st_dtype_name(e->dtype), "shape", shape,
                                 "data_offsets", (json_int_t)offset, (json_int_t)(offset + bytes));
        if (!info || json_object_set_new(root, e->name, info) != 0)
            DAPT_THROW(DAPT_ERR_NOMEM, "%s: cannot build the header entry of '%s'", path, e->name);
        offset += bytes;
    }
    /* Insertion order is kept: __metadata__ first, then tensors in data order. */
    header = json_dumps(root, JSON_COMPACT);
    if (!header) DAPT_THROW(DAPT_ERR_NOMEM, "%s: cannot serialise the header", path);
    size_t hlen = strlen(header), padded = (hlen + 7) & ~(size_t)7;
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) DAPT_THROW(DAPT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    DAPT_TRY(dapt_fs_write_all(fd, prefix, 8, tmp));
    DAPT_TRY(dapt_fs_write_all(fd, header, hlen, tmp));
    DAPT_TRY(dapt_fs_write_all(fd, "       ", padded - hlen, tmp));
    /* Element bytes go out as they are: little-endian hosts only (see the
     * #error at the top). */
    for (size_t i = 0; i < count; i++) {
        const dapt_st_entry *e = order[i];
        uint64_t numel = 1;
        for (int d = 0; d < e->ndim; d++) numel *= (uint64_t)e->shape[d];
        DAPT_TRY(dapt_fs_write_all(fd, e->data, (size_t)numel * dapt_st_dtype_size(e->dtype), tmp));
    }
    if (fsync(fd) != 0) DAPT_THROW(DAPT_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0) {
        fd = -1;
        DAPT_THROW(DAPT_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    }
    fd = -1;
    if (rename(tmp, path) != 0) DAPT_THROW(DAPT_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
    char dir[4096];
    dapt_fs_parent(path, dir, sizeof dir);
    st = dapt_fs_sync(dir, 1);
cleanup:
    if (fd >= 0) close(fd);
    if (st != DAPT_OK) unlink(tmp);
    free(header);
    json_decref(root);
    free(order);
    return st;
}
