/* gguf.h - read GGUF files (llama.cpp's model format), versions 2 and 3.
 *
 * Layout (little endian): "GGUF", u32 version, u64 tensor count, u64
 * metadata count; metadata as (string key, u32 value type, value); tensor
 * infos as (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64
 * offset); then, at the next multiple of general.alignment (default 32), the
 * tensor data, each tensor at data start + offset.  A string is a u64 length
 * and that many bytes (no NUL).  dims[0] is the fastest-varying (row length).
 *
 * Opening validates everything before any tensor byte is touched: counts and
 * lengths against the bytes left, value types, unique keys and names,
 * general.alignment (a power of two), per tensor 1..4 dims >= 1, a type
 * ptqc decodes, dims[0] a multiple of its block, the byte size without
 * overflow, an aligned offset, the data inside the file, and no two tensors
 * overlapping.  Errors are PTQ_EFORMAT (PTQ_EIO when unreadable) with a
 * message naming the file and the problem.
 */
#ifndef PTQC_GGUF_H
#define PTQC_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

enum ptq_gguf_vtype {
    PTQ_GGUF_U8 = 0, PTQ_GGUF_I8, PTQ_GGUF_U16, PTQ_GGUF_I16, PTQ_GGUF_U32, PTQ_GGUF_I32,
    PTQ_GGUF_F32, PTQ_GGUF_BOOL, PTQ_GGUF_STRING, PTQ_GGUF_ARRAY, PTQ_GGUF_U64, PTQ_GGUF_I64,
    PTQ_GGUF_F64, PTQ_GGUF_NVTYPES
};

typedef struct ptq_gguf_kv {
    char *key;             /* NUL-terminated copy */
    uint32_t type;         /* enum ptq_gguf_vtype */
    uint32_t elem;         /* ARRAY: element type (never ARRAY) */
    uint64_t n;            /* ARRAY: element count */
    const uint8_t *val;    /* the value bytes (ARRAY: the first element) */
    const uint8_t **strs;  /* STRING arrays: each element's u64 length field */
} ptq_gguf_kv;

typedef struct ptq_gguf_tensor {
    char *name;
    int ndim;
    uint64_t dims[4];
    uint32_t type;          /* ggml type, lib/qfmt/ggml.h */
    uint64_t offset;        /* from the data start */
    uint64_t nbytes;
    uint64_t numel;
    const uint8_t *data;
} ptq_gguf_tensor;

typedef struct ptq_gguf {
    char *path;
    const uint8_t *base;
    size_t size;
    int mapped;             /* base is an mmap we own */
    uint32_t version;
    uint32_t alignment;
    uint64_t n_kv, n_tensors;
    ptq_gguf_kv *kv;
    ptq_gguf_tensor *tensors;
    size_t data_off;
} ptq_gguf;

/* mmap and validate path. */
int ptq_gguf_open(ptq_gguf *g, const char *path, ptq_err *e);
/* Validate len bytes at buf (borrowed: must outlive g); fname for messages.
 * The fuzz entry. */
int ptq_gguf_parse(ptq_gguf *g, const void *buf, size_t len, const char *fname, ptq_err *e);
void ptq_gguf_close(ptq_gguf *g);

/* 1 if the file at path starts with the GGUF magic. */
int ptq_gguf_is(const char *path);

const ptq_gguf_kv *ptq_gguf_find(const ptq_gguf *g, const char *key);
const ptq_gguf_tensor *ptq_gguf_tensor_find(const ptq_gguf *g, const char *name);
const char *ptq_gguf_vtype_name(uint32_t type);

/* Typed reads of a metadata value; each fails with PTQ_EFORMAT naming the key
 * when it is absent (unless *_opt and then returns 0 with *out untouched) or
 * of another type.  Integers accept every integer type and range-check. */
int ptq_gguf_int(const ptq_gguf *g, const char *key, int required, int64_t lo, int64_t hi,
                 int64_t *out, ptq_err *e);
int ptq_gguf_real(const ptq_gguf *g, const char *key, int required, double *out, ptq_err *e);
int ptq_gguf_bool(const ptq_gguf *g, const char *key, int required, int *out, ptq_err *e);
/* A string value: *s points into the file (not NUL-terminated). */
int ptq_gguf_str(const ptq_gguf *g, const char *key, int required, const char **s, size_t *len,
                 ptq_err *e);
/* An array of type elem: *kv the entry (element count kv->n). */
int ptq_gguf_array(const ptq_gguf *g, const char *key, int required, uint32_t elem,
                   const ptq_gguf_kv **kv, ptq_err *e);
/* Element i of a STRING array. */
void ptq_gguf_arr_str(const ptq_gguf_kv *kv, uint64_t i, const char **s, size_t *len);
/* Element i of a numeric array, widened. */
double ptq_gguf_arr_num(const ptq_gguf_kv *kv, uint64_t i);

/* Widen elements [first, first + n) of t to float32 (first and n multiples
 * of the type's block).  No error path: the tensor was validated. */
void ptq_gguf_read_f32(const ptq_gguf_tensor *t, uint64_t first, uint64_t n, float *out);

#endif
