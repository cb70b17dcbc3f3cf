/* dtype.h - element types of checkpoints and bundles. */
#ifndef PTQC_DTYPE_H
#define PTQC_DTYPE_H

#include <stddef.h>

typedef enum ptq_dtype {
    PTQ_DT_INVALID = 0,
    PTQ_DT_F32,
    PTQ_DT_F16,
    PTQ_DT_BF16,
    PTQ_DT_I8,
    PTQ_DT_U8,
    PTQ_DT_I32,
    PTQ_DT_F8_E4M3,
    PTQ_DT_I64, /* written by exporters (compressed-tensors weight_shape) */
} ptq_dtype;

/* Size in bytes of one element; 0 for PTQ_DT_INVALID. */
size_t ptq_dtype_size(ptq_dtype t);
/* safetensors spelling: "F32", "F16", "BF16", "I8", "U8", "I32", "F8_E4M3",
 * "I64". */
const char *ptq_dtype_name(ptq_dtype t);
ptq_dtype ptq_dtype_parse(const char *s);

#endif
