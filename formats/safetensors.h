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

#include "lib/base/err.h"
#include "lib/base/dtype.h"

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
    char *index_path; /* model.safetensors.index.json when sharded, else NULL */
} ptq_safetensors;

/* Largest accepted JSON header (and shard index): 100 MB. */
#define PTQ_ST_MAX_HEADER (100u * 1000u * 1000u)

/* Open a checkpoint directory (model.safetensors.index.json if present, else
 * model.safetensors, else the single *.safetensors file), one .safetensors
 * file, or one *.index.json.  A shard index must name every tensor of its
 * shards, each in the shard that holds it; shards are plain file names in the
 * index's directory.  st is zeroed first; close it on success only. */
int ptq_st_open(ptq_safetensors *st, const char *path, ptq_err *e);
void ptq_st_close(ptq_safetensors *st);

/* Parse and validate one header from memory (the whole file or at least the
 * 8-byte length plus header); file_size is the full file size for the range
 * checks.  Appends tensors to st with data == NULL, then sorts all of st's
 * tensors by name and refuses a name seen twice.  On failure st keeps the
 * tensors it had before.  Free with ptq_st_close (a zeroed st is valid).
 * Offsets stay relative to the data section at 8 + header length.  Used by
 * ptq_st_open and by the fuzzer. */
int ptq_st_parse_header(ptq_safetensors *st, const uint8_t *buf, size_t buflen,
                        uint64_t file_size, int file, const char *fname, ptq_err *e);

/* Number of elements of a tensor (product of its shape; 1 for a scalar). */
uint64_t ptq_st_numel(const ptq_st_tensor *t);

const ptq_st_tensor *ptq_st_find(const ptq_safetensors *st, const char *name);

/* Widen a tensor (F32/F16/BF16) into float32, n elements starting at element
 * first (so a row range can be widened alone).  A NaN or Inf is refused with
 * PTQ_EDATA naming the tensor, the file and the element. */
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

/* Write one safetensors file atomically (temp name + rename): header
 * {"__metadata__":{"format":"pt"}, tensors in the given order}, space-padded
 * to a multiple of 8, data contiguous in the same order.  Names must be
 * unique and non-empty; data may be NULL only for empty tensors.  A write
 * failure (ENOSPC, EACCES, ...) is PTQ_EOUTPUT and leaves no file behind. */
int ptq_st_write(const char *path, const ptq_st_wtensor *t, int n, ptq_err *e);
/* The same, the data of tensor i coming from src(ctx, i, &data, e), called in
 * order just before tensor i is written (data must stay valid until the next
 * call; t[i].data is ignored).  An error from src is returned as is and
 * leaves no file behind.  Lets a writer produce one tensor at a time. */
typedef int (*ptq_st_source)(void *ctx, int i, const void **data, ptq_err *e);
int ptq_st_write_from(const char *path, const ptq_st_wtensor *t, int n, ptq_st_source src,
                      void *ctx, ptq_err *e);

#endif
