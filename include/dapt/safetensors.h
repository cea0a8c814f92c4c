/* safetensors files (Hugging Face's tensor container): reader and writer.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "name": {"dtype": "F32", "shape": [r, c], "data_offsets": [b, e]}, ...}
 * padded with spaces, then the raw little-endian, row-major data; offsets
 * count from the start of the data.
 *
 * The reader maps the file and accepts what Hugging Face's own reader
 * accepts, refusing with one line naming the file and tensor: a file
 * shorter than 8 bytes, N above 100 MB or past the end of the file, a
 * header that is not a JSON object (or has duplicate names), an unknown
 * dtype, a shape or offset that is not a non-negative integer, e - b not
 * equal to prod(shape) x dtype size, tensors that overlap or leave gaps
 * (sorted by offset they must tile the data from 0), and data that does
 * not end exactly at the end of the file.  __metadata__ must map strings to
 * strings.
 *
 * The writer produces Hugging Face's layout: tensors sorted by dtype
 * (widest alignment first, in safetensors' dtype order) then by name,
 * compact JSON with __metadata__ first, header padded with spaces to a
 * multiple of 8, written under a temporary name and renamed.
 * Nothing here is collective. */
#ifndef DAPT_SAFETENSORS_H
#define DAPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

/* In safetensors' own order (which is by increasing alignment). */
typedef enum dapt_st_dtype {
    DAPT_ST_BOOL = 0,
    DAPT_ST_U8,
    DAPT_ST_I8,
    DAPT_ST_F8_E5M2,
    DAPT_ST_F8_E4M3,
    DAPT_ST_I16,
    DAPT_ST_U16,
    DAPT_ST_F16,
    DAPT_ST_BF16,
    DAPT_ST_I32,
    DAPT_ST_U32,
    DAPT_ST_F32,
    DAPT_ST_F64,
    DAPT_ST_I64,
    DAPT_ST_U64,
    DAPT_ST_DTYPE_COUNT
} dapt_st_dtype;

#define DAPT_ST_MAX_DIMS 8

typedef struct dapt_st_tensor {
    char *name;
    dapt_st_dtype dtype;
    int ndim;
    int64_t shape[DAPT_ST_MAX_DIMS];
    uint64_t begin, end; /* byte offsets into the data section */
    size_t numel;
} dapt_st_tensor;

typedef struct dapt_safetensors {
    char path[4096];
    unsigned char *map; /* the whole file, read-only */
    size_t size;
    const unsigned char *data; /* map + 8 + N */
    dapt_st_tensor *tensors;   /* sorted by offset */
    size_t count;
    char **meta_keys, **meta_values; /* __metadata__, in file order */
    size_t meta_count;
} dapt_safetensors;

/* "F32", ... and the element size in bytes. */
const char *dapt_st_dtype_name(dapt_st_dtype dt);
size_t dapt_st_dtype_size(dapt_st_dtype dt);
/* DAPT_ERR_FORMAT for a name safetensors does not define. */
dapt_status dapt_st_dtype_parse(const char *name, dapt_st_dtype *dt);

/* Maps and validates path. */
dapt_status dapt_st_open(const char *path, dapt_safetensors *st);
void dapt_st_close(dapt_safetensors *st);

/* The tensor called name, or NULL. */
const dapt_st_tensor *dapt_st_find(const dapt_safetensors *st, const char *name);

/* The raw bytes of a tensor (little-endian). */
const void *dapt_st_bytes(const dapt_safetensors *st, const dapt_st_tensor *t);

/* Converts a floating-point tensor (F32, F16, BF16, F64) to float32 into
 * out (numel floats).  F16/BF16 widen exactly; F64 rounds to nearest.
 * Other dtypes: DAPT_ERR_UNSUPPORTED naming the file and tensor. */
dapt_status dapt_st_to_f32(const dapt_safetensors *st, const dapt_st_tensor *t, float *out);

/* Reads an integer tensor (I8..I64, U8..U64, BOOL) as int64 into out. */
dapt_status dapt_st_to_i64(const dapt_safetensors *st, const dapt_st_tensor *t, int64_t *out);

/* One tensor to write: data is prod(shape) elements of dtype. */
typedef struct dapt_st_entry {
    const char *name;
    dapt_st_dtype dtype;
    int ndim;
    int64_t shape[DAPT_ST_MAX_DIMS];
    const void *data;
} dapt_st_entry;

/* Writes entries (any order; sorted as described above) and the metadata
 * pairs meta[0..2*nmeta) = key, value, ... to path. */
dapt_status dapt_st_write(const char *path, const dapt_st_entry *entries, size_t count,
                          const char *const *meta, size_t nmeta, int force);

/* IEEE half / bfloat16 <-> float32 (exact widening; narrowing rounds to
 * nearest even).  Used by import and by tests. */
float dapt_f16_to_f32(uint16_t h);
float dapt_bf16_to_f32(uint16_t b);
uint16_t dapt_f32_to_f16(float f);
uint16_t dapt_f32_to_bf16(float f);

#endif
