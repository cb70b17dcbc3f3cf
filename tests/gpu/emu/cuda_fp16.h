/* cuda_fp16.h - __half as its bits, converted by lib/base/half.h, for the
 * CPU emulation of tests/gpu/emu/run.sh. */
#ifndef EMU_FP16_H
#define EMU_FP16_H
#include "lib/base/half.h"
struct __half { uint16_t u; };
static inline float __half2float(__half h) { return ptq_f16_to_f32(h.u); }
static inline __half __float2half_rn(float f) { __half h; h.u = ptq_f32_to_f16(f); return h; }
static inline __half __ushort_as_half(uint16_t u) { __half h; h.u = u; return h; }
#endif
