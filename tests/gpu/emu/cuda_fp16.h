/* cuda_fp16.h - __half as its bits, converted by lib/base/half.h, for the
 * CPU emulation of tests/gpu/emu/run.sh. */
#ifndef EMU_FP16_H
#define EMU_FP16_H
#include "lib/base/half.h"
struct __half { uint16_t u; };
static inline float __half2float(__half h) { return ptq_f16_to_f32(h.u); }
static inline __half __float2half_rn(float f) { __half h; h.u = ptq_f32_to_f16(f); return h; }
static inline __half __ushort_as_half(uint16_t u) { __half h; h.u = u; return h; }
struct __half2 { __half x, y; };
struct float2 { float x, y; };
static inline __half2 __halves2half2(__half a, __half b) { __half2 h; h.x = a, h.y = b; return h; }
static inline float2 __half22float2(__half2 h) { float2 f; f.x = __half2float(h.x), f.y = __half2float(h.y); return f; }
#endif
