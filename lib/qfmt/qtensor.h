/* qtensor.h - one quantized linear, the common currency of quantizers,
 * the bundle writer/reader and the runtimes.
 *
 * A quantizer (lib/quant/rtn.c, lib/quant/gptq.c, later awq, smoothquant, fp8, e8p,
 * aqlm) turns float32 weights into a ptq_qtensor; the bundle stores its
 * payloads; the CPU runtime dequantizes it.  Adding a method = one quantizer
 * file + (if its storage is new) one format enum value here and its row in
 * the packed-format table (lib/qfmt/qfmt.h: payloads, sizes, check, decode,
 * reference encoder, in a lib/qfmt/qf_<name>.c).
 *
 * Ownership: a quantizer mallocs the arrays and leaves `mapped` 0, so
 * ptq_qtensor_free frees them.  The bundle reader fills a ptq_qtensor whose
 * arrays point into the read-only map of the file and sets `mapped` 1;
 * ptq_qtensor_free then frees nothing (never write through such pointers).
 */
#ifndef PTQC_QTENSOR_H
#define PTQC_QTENSOR_H

#include <stdint.h>

#include "lib/base/err.h"

enum ptq_qformat {
    PTQ_QF_DENSE = 0, /* kept unquantized in its source dtype F16/BF16/F32
                         (--skip, embeddings, norms, lm_head) */
    PTQ_QF_INT = 1,   /* uniform integer codes + group scales/zeros (lib/qfmt/pack.h) */
    PTQ_QF_W8A8 = 2,  /* int8 weights, fp32 per-row scales; int8 activations (lib/qfmt/w8a8.h) */
    PTQ_QF_FP8 = 3,   /* E4M3 weights (lib/base/fp8.h), fp32 per-row scales; E4M3 activations */
    /* 4 is the int8 KV cache's row (lib/qfmt/qfmt.h PTQ_QF_KV_INT8) */
    PTQ_QF_E8P = 5,   /* QuIP#: E8P lattice codes + Hadamard sign vectors (lib/qfmt/e8p.h) */
    PTQ_QF_AQLM = 6,  /* AQLM: additive codebooks, codes per 8 inputs, per-row scales */
    PTQ_QF_INT_HAD = 7, /* int codes of Hadamard-rotated weights + sign vectors (qf_int_had.c) */
};

typedef struct ptq_qtensor {
    int format;      /* enum ptq_qformat */
    int rows, cols;  /* out, in; a vector (norm, bias) of n is rows = 1, cols = n */
    /* PTQ_QF_INT */
    int bits;        /* 2..8 */
    int group;       /* 0 = per output channel */
    int ngroups;     /* group ? cols / group : 1 */
    int sym;         /* informational: zeros are stored either way */
    uint32_t *qweight; /* [rows][ptq_pack_row_words(cols, bits)] */
    uint16_t *scales;  /* fp16 [rows][ngroups] */
    uint8_t *zeros;    /* [rows][ngroups] */
    int32_t *g_idx;    /* [cols] or NULL */
    /* PTQ_QF_DENSE */
    int dtype;         /* ptq_dtype (lib/base/dtype.h): PTQ_DT_F16, PTQ_DT_BF16 or PTQ_DT_F32 */
    void *data;        /* [rows][cols] elements of dtype, little-endian */
    /* PTQ_QF_W8A8 / PTQ_QF_FP8: weight = decode(codes[r][k]) * wscale[r] with
     * decode = the int8 value (two's complement) or the E4M3 value.  The
     * linear's input is quantized to the same kind of 8-bit codes with a
     * per-tensor static scale act_scale[0], or per token (row) dynamically
     * when act_scale is NULL (lib/qfmt/w8a8.h). */
    uint8_t *codes;    /* [rows][cols] */
    float *wscale;     /* [rows] finite, > 0 */
    float *act_scale;  /* [1] finite, > 0; or NULL */
    /* PTQ_QF_E8P (QuIP#, lib/qfmt/qf_e8p.c): 2: E8P, 3: E8P + a 1-bit E8
     * residual stage, 4: E8P + an E8P residual stage.  The stored weights
     * W' = U W V^T (U = Q_rows diag(e8_sv), V = Q_cols diag(e8_su),
     * lib/qfmt/had.h): W'[r][8j+i] = sum_s e8_scale[s] * book_s(code)[i]. */
    uint16_t *e8_codes; /* [(bits + 1) / 2][rows][cols / 8]; 3 bits: stage 1
                           is uint8 [rows][cols / 8] after stage 0 */
    float *e8_scale;    /* [(bits + 1) / 2] finite, > 0 */
    int8_t *e8_su;      /* [cols] +1/-1: the input side's signs */
    int8_t *e8_sv;      /* [rows] +1/-1: the output side's signs */
    /* PTQ_QF_INT_HAD (--rotate hadamard, lib/qfmt/qf_int_had.c): the
     * PTQ_QF_INT fields hold W' = U W V^T and e8_su / e8_sv its signs, as
     * for E8P. */
    /* PTQ_QF_AQLM (AQLM, lib/qfmt/qf_aqlm.c, lib/quant/aqlm.h): groups of 8
     * inputs, W[r][8g+i] = aq_scales[r] * sum_m aq_codebooks[m][code(r,g,m)][i],
     * code(r,g,m) = aq_codes[(r * cols/8 + g) * aq_m + m]. */
    int aq_m;              /* codebooks M, 1..8 */
    int aq_b;              /* bits per code B, 1..16: 2^B codewords per codebook */
    void *aq_codes;        /* [rows][cols / 8][aq_m]: uint8 when aq_b <= 8, else uint16 */
    uint16_t *aq_codebooks; /* fp16 [aq_m][2^aq_b][8] */
    uint16_t *aq_scales;   /* fp16 [rows], finite */
    /* 0: the arrays are malloc'ed and owned; 1: they point into memory the
     * struct does not own (a bundle's read-only map) */
    int mapped;
} ptq_qtensor;

/* Free the owned arrays (nothing when mapped) and zero the struct. */
void ptq_qtensor_free(ptq_qtensor *q);

/* Dequantize into w [rows][cols] float32 (the reference decode).  Fails with
 * PTQ_EFORMAT on an invalid tensor (bits, group, g_idx or zero out of range). */
int ptq_qtensor_dequant(const ptq_qtensor *q, float *w, ptq_err *e);
/* The same for rows [row0, row0 + n) only, into w [n][cols] (embedding rows). */
int ptq_qtensor_dequant_rows(const ptq_qtensor *q, int row0, int n, float *w, ptq_err *e);
/* Check the fields (format, shape, bits, group, dtype, g_idx range, zero
 * range) without decoding; what = a name for the message. */
int ptq_qtensor_check(const ptq_qtensor *q, const char *what, ptq_err *e);

#endif
