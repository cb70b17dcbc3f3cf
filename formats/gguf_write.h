/* gguf_write.h - write GGUF version 3 files (llama.cpp's model format; the
 * reader is formats/gguf.h, whose header comment has the layout).
 *
 * A writer collects metadata (key, typed value) and tensors (name, ggml
 * type, ggml dims with dims[0] the row length, data bytes) in the order
 * they are added, then writes: "GGUF", u32 3, u64 tensor count, u64 KV
 * count, the KVs, the tensor infos (offsets from the data start, each a
 * multiple of the alignment), zero padding to the alignment, and the data,
 * each tensor padded with zeros to the alignment.  general.alignment is
 * written as the first KV (u32 32) so every reader agrees on it.  Keys and
 * tensor names must be unique (PTQ_EINTERNAL otherwise).  Everything is
 * little endian regardless of the host.
 */
#ifndef PTQC_GGUF_WRITE_H
#define PTQC_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/gguf.h"
#include "lib/base/err.h"

#define PTQ_GGUF_ALIGN 32

typedef struct ptq_gguf_w ptq_gguf_w;

ptq_gguf_w *ptq_gguf_w_new(void);
void ptq_gguf_w_free(ptq_gguf_w *w);

/* A scalar of type vt (U8..F64 or BOOL, enum ptq_gguf_vtype) at *val in
 * host representation (u8/i8/bool: 1 byte, u16/i16: 2, u32/i32/f32: 4,
 * u64/i64/f64: 8). */
int ptq_gguf_w_scalar(ptq_gguf_w *w, const char *key, uint32_t vt, const void *val, ptq_err *e);
int ptq_gguf_w_u32(ptq_gguf_w *w, const char *key, uint32_t v, ptq_err *e);
int ptq_gguf_w_f32(ptq_gguf_w *w, const char *key, float v, ptq_err *e);
int ptq_gguf_w_bool(ptq_gguf_w *w, const char *key, int v, ptq_err *e);
int ptq_gguf_w_str(ptq_gguf_w *w, const char *key, const char *s, ptq_err *e);
/* An array of n scalars of type elem (as ptq_gguf_w_scalar, packed). */
int ptq_gguf_w_arr(ptq_gguf_w *w, const char *key, uint32_t elem, const void *vals, uint64_t n,
                   ptq_err *e);
/* An array of n strings (NUL-terminated). */
int ptq_gguf_w_arr_str(ptq_gguf_w *w, const char *key, const char *const *s, uint64_t n,
                       ptq_err *e);

/* A tensor of ggml type with ndim (1..4) dims; data of nbytes, own: malloc'ed
 * and taken over (freed with w, also on error), else borrowed (must outlive
 * the write). */
int ptq_gguf_w_tensor(ptq_gguf_w *w, const char *name, uint32_t type, int ndim,
                      const uint64_t *dims, const void *data, uint64_t nbytes, int own,
                      ptq_err *e);

/* Write everything to f (path for messages). */
int ptq_gguf_w_write(const ptq_gguf_w *w, FILE *f, const char *path, ptq_err *e);

#endif
