/* gemm_int.cu - fused dequantize + tensor-core GEMM for packed integer
 * weights (lib/qfmt/pack.h): batched decode (n > PTQK_GEMV_MAX_N) and prefill.
 *
 * y[t][r] = sum_k W[r][k] x[t][k] is computed as the matrix product
 * C = A * B with A = W (rows x k, row-major), B = x^T (k x tokens, i.e. x
 * row-major is B column-major) and C[r][t] = y[t][r], using
 * mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 (sm_80 and later).
 *
 * A block computes a 32-row x 32-token tile of C with 4 warps (2 x 2; a warp
 * owns 16 rows x 16 tokens = two m16n8 tiles).  For each packed block of 32
 * columns: each of the 128 threads dequantizes 8 weights of one row with the
 * shared ptqk_int_weight (== ptq_dequant, then rounded to fp16) into shared
 * memory and copies 8 activations of one token; after a barrier each warp
 * issues 2 k16-steps x 2 mma.  Accumulation is fp32.  Fragments are read
 * from shared memory with plain 32-bit loads in the layout of the PTX ISA
 * (groupID = lane / 4, tig = lane % 4):
 *   A (16x16, row): a[0] = (g, 2tig..+1), a[1] = (g+8, 2tig..), a[2] = (g, 2tig+8..), a[3] = (g+8, 2tig+8..)
 *   B (16x8, col):  b[0] = (k 2tig..+1, n g), b[1] = (k 2tig+8..+9, n g)
 *   C (16x8, f32):  c[0..1] = (g, 2tig..+1), c[2..3] = (g+8, 2tig..+1)
 * Shared rows are padded to 40 halves (20 words) so the 8 x 4 fragment loads
 * of a warp hit 32 different banks.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/cuda/mma.cuh"
#include "lib/cuda/ptqrt_kernels.h"

#define BM 32
#define BN 32
#define BK 32
#define LDS 40 /* halves per shared row */

__global__ void __launch_bounds__(128)
gemm_int_kernel(ptqk_int_w w, const __half *__restrict__ x, int ldx, float *__restrict__ y, int ldy,
                int n, int xvec)
{
    __shared__ __align__(16) __half sA[BM * LDS];
    __shared__ __align__(16) __half sB[BN * LDS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row0 = blockIdx.x * BM, tok0 = blockIdx.y * BN;
    const int kblocks = ptq_pack_kblocks(w.cols);
    const size_t rw = (size_t)kblocks * w.bits;
    const int uniform = ptqk_int_block_uniform(w.g_idx, w.group);
    /* this thread's share of the loads: row (or token) tid / 4, columns 8 * (tid % 4) .. +7 */
    const int lr = tid >> 2, lc = (tid & 3) * 8;
    const int row = row0 + lr, tok = tok0 + lr;
    const uint32_t *qrow = w.qweight + (size_t)(row < w.rows ? row : 0) * rw;
    /* fragment coordinates */
    const int g = lane >> 2, tig = lane & 3;
    const int wm = (warp & 1) * 16, wn = (warp >> 1) * 16;
    float c[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};

    for (int kb = 0; kb < kblocks; kb++) {
        const int k0 = kb * BK;
        /* dequantize 8 weights of row `row` */
        __align__(16) __half wv[8];
        if (row < w.rows) {
            float sc = 0.f, zf = 0.f;
            if (uniform) {
                size_t gi = (size_t)row * w.ngroups + (w.group ? k0 / w.group : 0);
                sc = __half2float(__ushort_as_half(__ldg(w.scales + gi)));
                zf = ptqk_int_zf(__ldg(w.zeros + gi));
            }
#pragma unroll
            for (int j = 0; j < 8; j++) {
                int k = k0 + lc + j;
                float v = 0.f;
                if (k < w.cols) {
                    uint32_t q = ptq_pack_get(qrow, k, w.bits);
                    if (uniform) {
                        v = ptqk_int_weight(q, sc, zf);
                    } else {
                        size_t gi = (size_t)row * w.ngroups + ptqk_int_group(w.g_idx, w.group, k);
                        v = ptqk_int_weight(q, __half2float(__ushort_as_half(__ldg(w.scales + gi))),
                                            ptqk_int_zf(__ldg(w.zeros + gi)));
                    }
                }
                wv[j] = __float2half_rn(v);
            }
        } else {
#pragma unroll
            for (int j = 0; j < 8; j++) wv[j] = __float2half_rn(0.f);
        }
        *reinterpret_cast<uint4 *>(&sA[lr * LDS + lc]) = *reinterpret_cast<const uint4 *>(wv);
        /* copy 8 activations of token `tok` */
        uint4 xv = make_uint4(0u, 0u, 0u, 0u);
        if (tok < n) {
            const __half *xr = x + (size_t)tok * ldx + k0 + lc;
            if (xvec && k0 + lc + 8 <= w.cols) {
                xv = __ldg(reinterpret_cast<const uint4 *>(xr));
            } else {
                __align__(16) __half t8[8];
#pragma unroll
                for (int j = 0; j < 8; j++) t8[j] = k0 + lc + j < w.cols ? xr[j] : __float2half_rn(0.f);
                xv = *reinterpret_cast<const uint4 *>(t8);
            }
        }
        *reinterpret_cast<uint4 *>(&sB[lr * LDS + lc]) = xv;
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            uint32_t a[4];
            a[0] = lds32(&sA[(wm + g) * LDS + ks + 2 * tig]);
            a[1] = lds32(&sA[(wm + g + 8) * LDS + ks + 2 * tig]);
            a[2] = lds32(&sA[(wm + g) * LDS + ks + 2 * tig + 8]);
            a[3] = lds32(&sA[(wm + g + 8) * LDS + ks + 2 * tig + 8]);
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
                uint32_t b[2];
                b[0] = lds32(&sB[(wn + nt * 8 + g) * LDS + ks + 2 * tig]);
                b[1] = lds32(&sB[(wn + nt * 8 + g) * LDS + ks + 2 * tig + 8]);
                mma16816(c[nt], a, b);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int r = row0 + wm + g + (i >= 2 ? 8 : 0);
            int t = tok0 + wn + nt * 8 + 2 * tig + (i & 1);
            if (r < w.rows && t < n) y[(size_t)t * ldy + r] = c[nt][i];
        }
    }
}

extern "C" int ptqk_gemm_int(const ptqk_int_w *w, const uint16_t *x16, int ldx, float *y, int ldy,
                             int n, ptqk_stream st)
{
    if (n < 1 || w->rows < 1 || w->cols < 1 || ldx < w->cols || ldy < w->rows || w->bits < 2 ||
        w->bits > 8 || w->ngroups < 1)
        return (int)cudaErrorInvalidValue;
    const __half *x = reinterpret_cast<const __half *>(x16);
    int xvec = ldx % 8 == 0 && (uintptr_t)x % 16 == 0;
    dim3 grid((w->rows + BM - 1) / BM, (n + BN - 1) / BN);
    if (grid.y > 65535u) return (int)cudaErrorInvalidValue;
    gemm_int_kernel<<<grid, 128, 0, (cudaStream_t)st>>>(*w, x, ldx, y, ldy, n, xvec);
    return (int)cudaGetLastError();
}
