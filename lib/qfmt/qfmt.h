/* qfmt.h - the table of packed formats, in the spirit of ggml's type_traits:
 * one row per format says what the bundle calls it, its code widths and
 * storage geometry, its payloads and their sizes, and points at its checks,
 * its decode (dequantize rows to float32) and its reference encoder.
 *
 * Every place that needs to know a format goes through its row: the reference
 * decode and checks (lib/qfmt/qtensor.c), the bundle writer and reader
 * (formats/bundle_*.c: entry fields, payload members, sizes, the bundle
 * version), the CPU runtime (which linears run as 8-bit products) and the
 * 8-bit quantizer (lib/qfmt/qf_a8.c: code range and code <-> value).
 *
 * Adding a format = one enum value in qtensor.h (with its struct fields if
 * the existing ones do not fit), one file lib/qfmt/qf_<name>.c with its
 * check, decode and reference encoder (and a __host__ __device__ header for
 * the kernels when they decode it, like pack.h), and one row in qfmt.c.
 */
#ifndef PTQC_QFMT_H
#define PTQC_QFMT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/qfmt/qtensor.h"

/* The int8 KV cache (lib/qfmt/kvq.h): a row of its own, no qtensor storage;
 * the bundle holds its scales as the dense F32 tensor
 * model.layers.L<PTQ_QFMT_KV_SUFFIX> [2][kv heads * head_dim]. */
#define PTQ_QF_KV_INT8 4
#define PTQ_QF_COUNT 8 /* ids 5, 6, 7: PTQ_QF_E8P, PTQ_QF_AQLM, PTQ_QF_INT_HAD
                          (qtensor.h); a row not yet in the table reads as NULL */
#define PTQ_QFMT_KV_SUFFIX ".self_attn.kv_scale"

/* flags */
#define PTQ_QFMT_GROUPED 1u /* integer codes with per-group scales and zeros: the
                               entry has bits, group, sym and act_order */
#define PTQ_QFMT_DTYPE 2u   /* stored in a plain dtype: the entry has dtype */
#define PTQ_QFMT_ACT 4u     /* the linear runs as an 8-bit product (its input is
                               quantized too): the entry has act_scales, static
                               with an act_scale payload or dynamic without */
#define PTQ_QFMT_CACHE 8u   /* a runtime cache format, not a tensor storage */
#define PTQ_QFMT_BITS 16u   /* the entry has bits (bits_min..bits_max) and no group:
                               the payload sizes depend on it (e8p) */

#define PTQ_QFMT_CODEBOOKS 32u /* the entry has codebooks (aq_m) and code_bits (aq_b):
                                  the payload sizes depend on them (aqlm) */

#define PTQ_QFMT_MAX_PAYLOADS 6 /* int-had: the 4 of int + su, sv */

typedef struct ptq_qfmt_payload {
    const char *name; /* the member tensors/<tensor>.<name>; NULL ends the list */
    size_t field;     /* offsetof(ptq_qtensor, the pointer that holds it) */
    int optional;     /* may be absent (the pointer NULL) */
} ptq_qfmt_payload;

/* What a reference encoder is asked for. */
typedef struct ptq_qfmt_enc {
    float act_scale; /* PTQ_QFMT_ACT: > 0 static per-tensor input scale, 0 dynamic */
} ptq_qfmt_enc;

typedef struct ptq_qfmt {
    int id;            /* enum ptq_qformat, or PTQ_QF_KV_INT8 */
    const char *name;  /* the manifest's "format" */
    int bits_min, bits_max; /* code widths (0: the dtype's) */
    int block;         /* input columns per storage block (32: pack.h; 1: a byte per code) */
    unsigned flags;    /* PTQ_QFMT_* */
    int version;       /* the bundle version that introduced it */
    float qmax;        /* 8-bit codes: the largest code magnitude (127, 448); else 0 */
    ptq_qfmt_payload payloads[PTQ_QFMT_MAX_PAYLOADS]; /* in the order written */
    /* bytes of payloads[i] of a tensor with these fields (rows, cols, bits,
     * group, dtype) */
    uint64_t (*payload_bytes)(const ptq_qtensor *q, int i);
    /* the fields beyond the shape, and rows [row0, row0 + n) of the data */
    int (*check)(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
    /* rows [row0, row0 + n) into w [n][cols]; q passed check */
    void (*decode)(const ptq_qtensor *q, int row0, int n, float *w);
    /* the reference encoder of W [rows][cols] into out (NULL where the
     * encoding is a method's choice: the int grids are lib/quant's) */
    int (*encode)(const float *W, int rows, int cols, const ptq_qfmt_enc *o, ptq_qtensor *out,
                  ptq_err *e);
    /* 8-bit codes: value of code c, and code of value v (already divided by
     * the scale) */
    float (*code_value)(uint8_t c);
    uint8_t (*value_code)(float v);
    /* The fused batch-1 product y [rows] = W x, x [cols], straight from the
     * payloads over `threads` workers (bit-identical for any count), or NULL
     * where the runtime widens the tensor with decode instead.  Its error
     * against decode-then-multiply is stated and tested with the format
     * (for int: lib/qfmt/gemv_int.h). */
    int (*gemv)(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e);
} ptq_qfmt;

/* The row of format id, or NULL. */
const ptq_qfmt *ptq_qfmt_get(int id);
/* The row whose name is name (tensor storage formats only), or NULL. */
const ptq_qfmt *ptq_qfmt_by_name(const char *name);
/* Row i of the table, i in 0..PTQ_QF_COUNT-1 (for listings), or NULL. */
const ptq_qfmt *ptq_qfmt_row(int i);

/* Payload i of q through the table (NULL when absent), and set it. */
void *ptq_qfmt_payload_ptr(const ptq_qfmt *f, const ptq_qtensor *q, int i);
void ptq_qfmt_set_payload(const ptq_qfmt *f, ptq_qtensor *q, int i, void *p);
/* Index of the payload called name, or -1. */
int ptq_qfmt_payload_index(const ptq_qfmt *f, const char *name);

/* The rows' functions (lib/qfmt/qf_dense.c, qf_int.c, qf_a8.c). */
uint64_t ptq_qf_dense_bytes(const ptq_qtensor *q, int i);
int ptq_qf_dense_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
void ptq_qf_dense_decode(const ptq_qtensor *q, int row0, int n, float *w);
int ptq_qf_dense_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e);
uint64_t ptq_qf_int_bytes(const ptq_qtensor *q, int i);
int ptq_qf_int_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
void ptq_qf_int_decode(const ptq_qtensor *q, int row0, int n, float *w);
uint64_t ptq_qf_a8_bytes(const ptq_qtensor *q, int i);
int ptq_qf_a8_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
void ptq_qf_a8_decode(const ptq_qtensor *q, int row0, int n, float *w);
int ptq_qf_w8a8_encode(const float *W, int rows, int cols, const ptq_qfmt_enc *o,
                       ptq_qtensor *out, ptq_err *e);
int ptq_qf_fp8_encode(const float *W, int rows, int cols, const ptq_qfmt_enc *o,
                      ptq_qtensor *out, ptq_err *e);
float ptq_qf_int8_value(uint8_t c);
uint8_t ptq_qf_int8_code(float v);
float ptq_qf_e4m3_value(uint8_t c);
uint8_t ptq_qf_e4m3_code(float v);
float ptq_qf_kv_value(uint8_t c);
uint8_t ptq_qf_kv_code(float v);
/* lib/qfmt/qf_e8p.c; _rotated: W' (the incoherent basis) into w [rows][cols] */
uint64_t ptq_qf_e8p_bytes(const ptq_qtensor *q, int i);
int ptq_qf_e8p_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
void ptq_qf_e8p_decode(const ptq_qtensor *q, int row0, int n, float *w);
void ptq_qf_e8p_rotated(const ptq_qtensor *q, float *w);
int ptq_qf_e8p_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e);
/* lib/qfmt/qf_aqlm.c */
uint64_t ptq_qf_aqlm_bytes(const ptq_qtensor *q, int i);
int ptq_qf_aqlm_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
void ptq_qf_aqlm_decode(const ptq_qtensor *q, int row0, int n, float *w);
int ptq_qf_aqlm_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e);
/* lib/qfmt/qf_int_had.c: int codes of W' = U W V^T with su, sv */
uint64_t ptq_qf_int_had_bytes(const ptq_qtensor *q, int i);
int ptq_qf_int_had_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e);
void ptq_qf_int_had_decode(const ptq_qtensor *q, int row0, int n, float *w);
int ptq_qf_int_had_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e);

#endif
