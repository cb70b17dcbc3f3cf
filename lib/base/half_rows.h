/* half_rows.h - arrays of IEEE binary16 <-> float32: the element conversions
 * of half.h (the reference) and an F16C twin with the same bits (the
 * hardware converts as half.h does: f16 -> f32 is exact, f32 -> f16 rounds
 * to nearest even, overflow gives Inf, a NaN keeps its sign and top payload
 * bits and is quiet; the one difference: a signaling f16 NaN widens to a
 * quiet one (half.h keeps it signaling), which ptqc never writes: its f16
 * NaNs are quiet).  tests/check_cpu_kernels.c compares the two. */
#ifndef PTQC_HALF_ROWS_H
#define PTQC_HALF_ROWS_H

#include <stddef.h>
#include <stdint.h>

/* x[i] = h[i] as float, i < n.  simd 0: half.h's loop; 1: F16C when the CPU
 * has it. */
void ptq_f16_to_f32_n(const uint16_t *h, float *x, size_t n, int simd);
/* h[i] = x[i] as binary16, i < n; simd as above. */
void ptq_f32_to_f16_n(const float *x, uint16_t *h, size_t n, int simd);

#endif
