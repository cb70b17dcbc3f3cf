/* qtensor.h - one quantized linear, the common currency of quantizers,
 * the bundle writer/reader and the runtimes.
 *
 * A quantizer (lib/rtn.c, lib/gptq.c, later awq, smoothquant, fp8, e8p,
 * aqlm) turns float32 weights into a ptq_qtensor; the bundle stores its
 * payloads; the CPU runtime dequantizes it.  Adding a method = one quantizer
 * file + (if its storage is new) one format enum value with its payloads and
 * its decode routine in lib/dequant.c.
 */
#ifndef PTQC_QTENSOR_H
#define PTQC_QTENSOR_H

#include <stdint.h>

#include "lib/err.h"

enum ptq_qformat {
    PTQ_QF_F16 = 0, /* kept in fp16 (--skip, embeddings, lm_head) */
    PTQ_QF_INT = 1, /* uniform integer codes + group scales/zeros (lib/pack.h) */
};

typedef struct ptq_qtensor {
    int format;      /* enum ptq_qformat */
    int rows, cols;  /* out, in */
    int bits;        /* 2..8 (PTQ_QF_INT) */
    int group;       /* 0 = per output channel */
    int ngroups;     /* group ? cols / group : 1 */
    int sym;         /* informational: zeros are stored either way */
    uint32_t *qweight; /* [rows][ptq_pack_row_words(cols, bits)] */
    uint16_t *scales;  /* fp16 [rows][ngroups] */
    uint8_t *zeros;    /* [rows][ngroups] */
    int32_t *g_idx;    /* [cols] or NULL */
    uint16_t *f16;     /* PTQ_QF_F16: [rows][cols] */
} ptq_qtensor;

void ptq_qtensor_free(ptq_qtensor *q);

/* Dequantize into w [rows][cols] float32 (the reference decode). */
int ptq_qtensor_dequant(const ptq_qtensor *q, float *w, ptq_err *e);

#endif
