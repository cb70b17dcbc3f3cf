/* safetensors.h - read (mmap) and write Hugging Face safetensors checkpoints.
 *
 * A checkpoint is one file (model.safetensors) or several shards listed in
 * model.safetensors.index.json.  Every header field is validated before any
 * tensor byte is touched: header length bounded and inside the file, JSON well
 * formed, dtype known, shape x dtype size == byte range, ranges inside the data
 * section and not overlapping, no integer overflow.
 */
#ifndef PTQC_SAFETENSORS_H
#define PTQC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"
#include "lib/dtype.h"

#define PTQ_ST_MAX_DIMS 8

typedef struct ptq_st_tensor {
    char *name;
    ptq_dtype dtype;
    int ndim;
    int64_t shape[PTQ_ST_MAX_DIMS];
    const void *data; /* into the mmap; NULL for a header parsed from memory */
    uint64_t offset;  /* begin, relative to the data section */
    uint64_t nbytes;
    int file;         /* index into ptq_safetensors.paths */
} ptq_st_tensor;

typedef struct ptq_safetensors {
    int nfiles;
    char **paths;    /* shard paths */
    void **maps;     /* mmap base of each shard */
    size_t *sizes;   /* file size of each shard */
    int ntensors;
    ptq_st_tensor *tensors; /* sorted by name */
} ptq_safetensors;

/* Open a checkpoint directory (model.safetensors.index.json if present, else
 * model.safetensors, else the single *.safetensors file) or one file. */
int ptq_st_open(ptq_safetensors *st, const char *path, ptq_err *e);
void ptq_st_close(ptq_safetensors *st);

/* Parse and validate one header from memory (the whole file or at least the
 * 8-byte length plus header); file_size is the full file size for the range
 * checks.  Appends tensors to st with data == NULL.  Used by the fuzzer. */
int ptq_st_parse_header(ptq_safetensors *st, const uint8_t *buf, size_t buflen,
                        uint64_t file_size, int file, const char *fname, ptq_err *e);

const ptq_st_tensor *ptq_st_find(const ptq_safetensors *st, const char *name);

/* Widen a tensor (F32/F16/BF16) into float32, n elements starting at element
 * first (so a row range can be widened alone). */
int ptq_st_read_f32(const ptq_safetensors *st, const ptq_st_tensor *t, size_t first,
                    size_t n, float *out, ptq_err *e);

/* Writing (tests, benches, exporters). */
typedef struct ptq_st_wtensor {
    const char *name;
    ptq_dtype dtype;
    int ndim;
    int64_t shape[PTQ_ST_MAX_DIMS];
    const void *data; /* raw bytes in dtype */
} ptq_st_wtensor;

/* Write one safetensors file atomically (temp name + rename). */
int ptq_st_write(const char *path, const ptq_st_wtensor *t, int n, ptq_err *e);

#endif
