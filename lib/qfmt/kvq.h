/* kvq.h - the int8 KV-cache code of one key or value, shared by the CPU
 * (lib/model/forward.c's ptq_kv_int8, lib/model/generate.c's int8 cache) and the CUDA
 * kernels (lib/cuda/layers.cu), so that every runtime stores the same codes.
 *
 * code = clamp(rint(x / s), -127, 127) with rint rounding ties to even and s
 * the static scale of the value's kv head and head-dim channel; the cache
 * holds the code and readers use code * s.  A NaN x has no code: it gets 0.
 */
#ifndef PTQC_KVQ_H
#define PTQC_KVQ_H

#include <math.h>
#include <stdint.h>

#include "lib/base/half.h"

PTQ_HD int8_t ptq_kv_code(float x, float s)
{
    float q = rintf(x / s);
    if (q != q) return 0;
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    return (int8_t)q;
}

PTQ_HD float ptq_kv_value(int8_t code, float s) { return (float)code * s; }

#endif
