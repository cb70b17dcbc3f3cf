/* gemv_int.cu - fused dequantize + GEMV for packed integer weights
 * (lib/qfmt/pack.h), for 1..PTQK_GEMV_MAX_N tokens (the decode step).
 *
 * Design (bandwidth-bound; the weights are read exactly once):
 *  - one warp computes R consecutive output rows; lane l reads the packed
 *    blocks kb = l, l + 32, ... of those rows (b words each: one 16-byte load
 *    at 4 bits), so a warp's loads of a row are contiguous 32*4b bytes;
 *  - the 32 activations of the block are loaded once per token and reused for
 *    the R rows (x stays in L1/L2; it is small);
 *  - codes are decoded with the shared ptqk_int_block_dot (lib/cuda/ptqrt_kernels.h;
 *    bits is a template constant, so the decode unrolls into shifts and masks),
 *    accumulated in fp32 and multiplied by the block's group scale;
 *  - the 32 lanes' partial sums are reduced with warp shuffles; lane 0 stores.
 * Blocks whose 32 columns do not share one group (act-order g_idx, or a group
 * size that is not a multiple of 32) take a per-column path with the same
 * arithmetic as the CPU reference (ptqk_int_weight == ptq_dequant).
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/cuda/ptqrt_kernels.h"

#define GEMV_WARPS 4

template <int BITS>
__device__ __forceinline__ void load_block(const uint32_t *p, uint32_t *w)
{
    if constexpr (BITS == 4) {
        uint4 v = __ldg(reinterpret_cast<const uint4 *>(p));
        w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
    } else if constexpr (BITS == 8) {
        uint4 v = __ldg(reinterpret_cast<const uint4 *>(p));
        uint4 u = __ldg(reinterpret_cast<const uint4 *>(p) + 1);
        w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
        w[4] = u.x; w[5] = u.y; w[6] = u.z; w[7] = u.w;
    } else if constexpr (BITS == 2) {
        uint2 v = __ldg(reinterpret_cast<const uint2 *>(p));
        w[0] = v.x; w[1] = v.y;
    } else {
#pragma unroll
        for (int i = 0; i < BITS; i++) w[i] = __ldg(p + i);
    }
}

/* The 32 activations of columns k0..k0+31 of one token as float; columns past
 * cols read as 0.  vec: the row is 16-byte aligned at every block. */
__device__ __forceinline__ void load_x32(const __half *xr, int k0, int cols, int vec, float *xv)
{
    if (vec && k0 + 32 <= cols) {
        const uint4 *p = reinterpret_cast<const uint4 *>(xr + k0);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 v = __ldg(p + i);
            const __half2 *h = reinterpret_cast<const __half2 *>(&v);
#pragma unroll
            for (int j = 0; j < 4; j++) {
                float2 f = __half22float2(h[j]);
                xv[i * 8 + 2 * j] = f.x;
                xv[i * 8 + 2 * j + 1] = f.y;
            }
        }
    } else {
#pragma unroll
        for (int j = 0; j < 32; j++) xv[j] = k0 + j < cols ? __half2float(xr[k0 + j]) : 0.0f;
    }
}

__device__ __forceinline__ float ld_scale(const uint16_t *s, size_t i)
{
    return __half2float(__ushort_as_half(__ldg(s + i)));
}

template <int BITS, int NT, int R>
__global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_int_kernel(ptqk_int_w w, const __half *__restrict__ x, int ldx, float *__restrict__ y,
                int ldy, int n, int xvec)
{
    const int lane = threadIdx.x & 31;
    const int row0 = (blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5)) * R;
    if (row0 >= w.rows) return; /* the whole warp leaves together */
    const int kblocks = ptq_pack_kblocks(w.cols);
    const size_t rw = (size_t)kblocks * BITS;
    const int uniform = ptqk_int_block_uniform(w.g_idx, w.group);
    int rowc[R];
#pragma unroll
    for (int r = 0; r < R; r++) rowc[r] = min(row0 + r, w.rows - 1); /* clamped: computed, not stored */

    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < NT; t++) acc[r][t] = 0.0f;

    for (int kb = lane; kb < kblocks; kb += 32) {
        uint32_t wd[R][BITS];
#pragma unroll
        for (int r = 0; r < R; r++) load_block<BITS>(w.qweight + rowc[r] * rw + (size_t)kb * BITS, wd[r]);
        const int k0 = kb * PTQ_PACK_BLOCK;
        if (uniform) {
            const int g = w.group ? k0 / w.group : 0;
            float sc[R], zf[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                size_t gi = (size_t)rowc[r] * w.ngroups + g;
                sc[r] = ld_scale(w.scales, gi);
                zf[r] = ptqk_int_zf(__ldg(w.zeros + gi));
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < n) {
                    float xv[32];
                    load_x32(x + (size_t)t * ldx, k0, w.cols, xvec, xv);
#pragma unroll
                    for (int r = 0; r < R; r++)
                        acc[r][t] = fmaf(sc[r], ptqk_int_block_dot(wd[r], BITS, zf[r], xv), acc[r][t]);
                }
            }
        } else {
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < n) {
                    float xv[32];
                    load_x32(x + (size_t)t * ldx, k0, w.cols, xvec, xv);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        float a = 0.0f;
                        for (int j = 0; j < PTQ_PACK_BLOCK && k0 + j < w.cols; j++) {
                            size_t gi = (size_t)rowc[r] * w.ngroups + ptqk_int_group(w.g_idx, w.group, k0 + j);
                            float wv = ptqk_int_weight(ptq_pack_get(wd[r], j, BITS), ld_scale(w.scales, gi),
                                                       ptqk_int_zf(__ldg(w.zeros + gi)));
                            a = fmaf(wv, xv[j], a);
                        }
                        acc[r][t] += a;
                    }
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) {
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = acc[r][t];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0 && t < n && row0 + r < w.rows) y[(size_t)t * ldy + row0 + r] = v;
        }
    }
}

template <int BITS, int NT>
static int launch_nt(const ptqk_int_w *w, const __half *x, int ldx, float *y, int ldy, int n,
                     int xvec, cudaStream_t s)
{
    constexpr int R = NT <= 2 ? 4 : 2;
    int warps = (w->rows + R - 1) / R;
    int blocks = (warps + GEMV_WARPS - 1) / GEMV_WARPS;
    gemv_int_kernel<BITS, NT, R><<<blocks, GEMV_WARPS * 32, 0, s>>>(*w, x, ldx, y, ldy, n, xvec);
    return (int)cudaGetLastError();
}

template <int BITS>
static int launch_bits(const ptqk_int_w *w, const __half *x, int ldx, float *y, int ldy, int n,
                       int xvec, cudaStream_t s)
{
    if (n == 1) return launch_nt<BITS, 1>(w, x, ldx, y, ldy, n, xvec, s);
    if (n == 2) return launch_nt<BITS, 2>(w, x, ldx, y, ldy, n, xvec, s);
    if (n <= 4) return launch_nt<BITS, 4>(w, x, ldx, y, ldy, n, xvec, s);
    return launch_nt<BITS, 8>(w, x, ldx, y, ldy, n, xvec, s);
}

extern "C" int ptqk_gemv_int(const ptqk_int_w *w, const uint16_t *x16, int ldx, float *y, int ldy,
                             int n, ptqk_stream st)
{
    cudaStream_t s = (cudaStream_t)st;
    if (n < 1 || n > PTQK_GEMV_MAX_N || w->rows < 1 || w->cols < 1 || ldx < w->cols ||
        ldy < w->rows || w->ngroups < 1)
        return (int)cudaErrorInvalidValue;
    if ((uintptr_t)w->qweight % 16) return (int)cudaErrorMisalignedAddress;
    const __half *x = reinterpret_cast<const __half *>(x16);
    int xvec = ldx % 8 == 0 && (uintptr_t)x % 16 == 0;
    switch (w->bits) {
    case 2: return launch_bits<2>(w, x, ldx, y, ldy, n, xvec, s);
    case 3: return launch_bits<3>(w, x, ldx, y, ldy, n, xvec, s);
    case 4: return launch_bits<4>(w, x, ldx, y, ldy, n, xvec, s);
    case 8: return launch_bits<8>(w, x, ldx, y, ldy, n, xvec, s);
    default: return (int)cudaErrorNotSupported;
    }
}

extern "C" int ptqk_linear_int(const ptqk_int_w *w, const uint16_t *x, int ldx, float *y, int ldy,
                               int n, int gemv_max_n, ptqk_stream s)
{
    int b = w->bits;
    if (n <= gemv_max_n && n <= PTQK_GEMV_MAX_N && (b == 2 || b == 3 || b == 4 || b == 8)) return ptqk_gemv_int(w, x, ldx, y, ldy, n, s);
    return ptqk_gemm_int(w, x, ldx, y, ldy, n, s);
}
