/* aqlm.cu - the AQLM linear (lib/qfmt/qf_aqlm.c layout): fused decode + GEMV
 * for 1..PTQK_GEMV_MAX_N tokens, decode to fp16 + cuBLAS for prefill, and the
 * embedding gather.  Every weight comes from the decode arithmetic shared with
 * the CPU (lib/qfmt/aqlm_decode.h): the unscaled group sum
 * y_g = ((0 + v_0) + v_1) + ... in float32, m ascending.
 *
 * GEMV design (the codes are read once; 2 bits per weight for 2x8 and 1x16):
 *  - one warp per output row at a time (rows grid-strided over the blocks);
 *    lane l takes the groups g = l, l + 32, ... so a warp's code loads of a
 *    row are contiguous; per group: the M codewords (one 16-byte load each =
 *    8 fp16), their float sum y_g, then per token fmaf(y_g[i], x[8g+i], acc)
 *    for i ascending; the 32 lane sums are reduced with shuffles and lane 0
 *    stores scale[r] * sum (the one multiply of qf_aqlm.c's gemv);
 *  - B <= 8 (2x8, 1x8, 3x8, 4x8 ...): the M 2^B codewords are copied into
 *    shared memory once per block (M * 4 KiB at B = 8: 8 KiB for 2x8, at
 *    most 32 KiB for 8x8) and read from there; the grid is capped at 4 blocks
 *    per SM so that each block's copy serves many rows;
 *  - B > 8 (1x16): 2^16 codewords of 16 bytes = 1 MiB do not fit in shared
 *    memory (228 KiB per SM on sm_90), and a per-block table of x . codeword
 *    (the CPU kernel's trick) would be 2^16 entries per group: the kernel
 *    reads the fp16 codewords from global memory through the read-only cache
 *    (__ldg, 16 bytes per codeword); the 1 MiB stays resident in L2 (50 MiB
 *    on H100) and partly in L1, so DRAM sees only the codes, but every group
 *    costs one random 16-byte L2 access: the reason 1x16 is slower than 2x8
 *    at equal bits (bench/bench_kernels.cu measures both).
 * Prefill (n > gemv_max_n): the layer is decoded to fp16 [rows][cols] in a
 * scratch buffer (one thread per group, fp16 round to nearest even of the
 * shared decode) and multiplied by cuBLAS (ptqk_linear_f16, fp32
 * accumulate): at n >= 16 the GEMM is compute-bound and the decode costs one
 * write and one read of 2 bytes per weight.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/cuda/ptqrt_kernels.h"
#include "lib/qfmt/aqlm_decode.h"

#define AQ_WARPS 8

/* The 8 activations of group g of one token as float. vec: 16-byte aligned. */
__device__ __forceinline__ void load_x8(const __half *xr, int g, int vec, float *xv)
{
    if (vec) {
        uint4 v = __ldg(reinterpret_cast<const uint4 *>(xr) + g);
        const __half2 *h = reinterpret_cast<const __half2 *>(&v);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float2 f = __half22float2(h[j]);
            xv[2 * j] = f.x;
            xv[2 * j + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int j = 0; j < 8; j++) xv[j] = __half2float(xr[8 * g + j]);
    }
}

/* M: codebooks (0 = w.m at run time); NT: the token capacity; WIDE: b > 8. */
template <int M, int NT, bool WIDE>
__global__ void __launch_bounds__(AQ_WARPS * 32)
gemv_aqlm_kernel(ptqk_aqlm_w w, const __half *__restrict__ x, int ldx, float *__restrict__ y, int ldy,
                 int n, int xvec)
{
    extern __shared__ uint4 cbs[]; /* B <= 8: the codebooks, one uint4 per codeword */
    const int mm = M ? M : w.m, G = w.cols / PTQ_AQ_D, b = w.b;
    const uint4 *gcb = reinterpret_cast<const uint4 *>(w.codebooks);
    if (!WIDE) {
        for (int i = threadIdx.x; i < (mm << b); i += blockDim.x) cbs[i] = __ldg(gcb + i);
        __syncthreads();
    }
    const int lane = threadIdx.x & 31;
    for (int row = blockIdx.x * AQ_WARPS + (threadIdx.x >> 5); row < w.rows; row += gridDim.x * AQ_WARPS) {
        float acc[NT];
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = 0.0f;
        for (int g = lane; g < G; g += 32) {
            const size_t i0 = ((size_t)row * G + g) * mm;
            float ys[PTQ_AQ_D];
#pragma unroll
            for (int i = 0; i < PTQ_AQ_D; i++) ys[i] = 0.0f;
#pragma unroll
            for (int m = 0; m < (M ? M : 8); m++) {
                if (!M && m >= mm) break;
                const unsigned c = WIDE ? __ldg(reinterpret_cast<const uint16_t *>(w.codes) + i0 + m)
                                        : __ldg(reinterpret_cast<const uint8_t *>(w.codes) + i0 + m);
                const uint4 v = WIDE ? __ldg(gcb + (((size_t)m << b) + c)) : cbs[(m << b) + c];
                ptq_aq_add_f16(ys, reinterpret_cast<const uint16_t *>(&v));
            }
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t < n) {
                    float xv[PTQ_AQ_D];
                    load_x8(x + (size_t)t * ldx, g, xvec, xv);
#pragma unroll
                    for (int i = 0; i < PTQ_AQ_D; i++) acc[t] = fmaf(ys[i], xv[i], acc[t]);
                }
            }
        }
        const float s = ptq_aq_widen(__ldg(w.scales + row));
#pragma unroll
        for (int t = 0; t < NT; t++) {
            float v = acc[t];
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
            if (lane == 0 && t < n) y[(size_t)t * ldy + row] = s * v;
        }
    }
}

static int check_w(const ptqk_aqlm_w *w)
{
    if (w->rows < 1 || w->cols < PTQ_AQ_D || w->cols % PTQ_AQ_D || w->m < 1 || w->m > 8 || w->b < 1 ||
        w->b > 16 || !w->codes || !w->codebooks || !w->scales)
        return (int)cudaErrorInvalidValue;
    if ((uintptr_t)w->codebooks % 16 || (w->b > 8 && (uintptr_t)w->codes % 2))
        return (int)cudaErrorMisalignedAddress;
    return 0;
}

template <int M, int NT, bool WIDE>
static int launch(const ptqk_aqlm_w *w, const __half *x, int ldx, float *y, int ldy, int n, int xvec,
                  cudaStream_t s)
{
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) || sms < 1) sms = 1;
    int blocks = (w->rows + AQ_WARPS - 1) / AQ_WARPS;
    if (!WIDE && blocks > 4 * sms) blocks = 4 * sms; /* each block's codebook copy serves more rows */
    size_t smem = WIDE ? 0 : ((size_t)w->m << w->b) * 16;
    gemv_aqlm_kernel<M, NT, WIDE><<<blocks, AQ_WARPS * 32, smem, s>>>(*w, x, ldx, y, ldy, n, xvec);
    return (int)cudaGetLastError();
}

template <int M, bool WIDE>
static int launch_n(const ptqk_aqlm_w *w, const __half *x, int ldx, float *y, int ldy, int n, int xvec,
                    cudaStream_t s)
{
    if (n == 1) return launch<M, 1, WIDE>(w, x, ldx, y, ldy, n, xvec, s);
    if (n == 2) return launch<M, 2, WIDE>(w, x, ldx, y, ldy, n, xvec, s);
    if (n <= 4) return launch<M, 4, WIDE>(w, x, ldx, y, ldy, n, xvec, s);
    return launch<M, 8, WIDE>(w, x, ldx, y, ldy, n, xvec, s);
}

extern "C" int ptqk_gemv_aqlm(const ptqk_aqlm_w *w, const uint16_t *x16, int ldx, float *y, int ldy, int n,
                              ptqk_stream st)
{
    int rc = check_w(w);
    if (rc) return rc;
    if (n < 1 || n > PTQK_GEMV_MAX_N || ldx < w->cols || ldy < w->rows) return (int)cudaErrorInvalidValue;
    cudaStream_t s = (cudaStream_t)st;
    const __half *x = reinterpret_cast<const __half *>(x16);
    int xvec = ldx % 8 == 0 && (uintptr_t)x % 16 == 0;
    if (w->b > 8) return w->m == 1 ? launch_n<1, true>(w, x, ldx, y, ldy, n, xvec, s)
                                   : launch_n<0, true>(w, x, ldx, y, ldy, n, xvec, s);
    return w->m == 2 ? launch_n<2, false>(w, x, ldx, y, ldy, n, xvec, s)
                     : launch_n<0, false>(w, x, ldx, y, ldy, n, xvec, s);
}

/* ------------------------------------------------------------ decode, embed */
/* One thread per group: w16[r][8g..8g+7] = fp16(scale[r] * y_g). */
__global__ void decode_aqlm_kernel(ptqk_aqlm_w w, uint4 *w16)
{
    const int G = w.cols / PTQ_AQ_D;
    const size_t total = (size_t)w.rows * G;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        float wv[PTQ_AQ_D];
        ptq_aq_group_f16(w.codebooks, w.scales, w.b, w.m, w.codes, G, (int)(i / G), (int)(i % G), wv);
        uint4 o;
        __half2 *h = reinterpret_cast<__half2 *>(&o);
#pragma unroll
        for (int j = 0; j < 4; j++) h[j] = __halves2half2(__float2half_rn(wv[2 * j]), __float2half_rn(wv[2 * j + 1]));
        w16[i] = o;
    }
}

extern "C" int ptqk_decode_aqlm(const ptqk_aqlm_w *w, uint16_t *w16, ptqk_stream st)
{
    int rc = check_w(w);
    if (rc) return rc;
    if ((uintptr_t)w16 % 16) return (int)cudaErrorMisalignedAddress;
    size_t total = (size_t)w->rows * (w->cols / PTQ_AQ_D);
    size_t blocks = (total + 255) / 256;
    if (blocks > 65535) blocks = 65535;
    decode_aqlm_kernel<<<(unsigned)blocks, 256, 0, (cudaStream_t)st>>>(*w, reinterpret_cast<uint4 *>(w16));
    return (int)cudaGetLastError();
}

extern "C" int ptqk_linear_aqlm(void *cublas, const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y,
                                int ldy, int n, int gemv_max_n, uint16_t *scratch, ptqk_stream s)
{
    if (n <= gemv_max_n && n <= PTQK_GEMV_MAX_N) return ptqk_gemv_aqlm(w, x, ldx, y, ldy, n, s);
    if (!scratch) return (int)cudaErrorInvalidValue;
    int rc = ptqk_decode_aqlm(w, scratch, s);
    if (rc) return rc;
    ptqk_f16_w fw = {w->rows, w->cols, scratch};
    return ptqk_linear_f16(cublas, &fw, x, ldx, y, ldy, n);
}

/* Block t: x[t][8g + i] = the decoded row tok[t]. */
__global__ void embed_aqlm_kernel(ptqk_aqlm_w w, const int32_t *tok, float *x)
{
    const int G = w.cols / PTQ_AQ_D, r = tok[blockIdx.x];
    float *out = x + (size_t)blockIdx.x * w.cols;
    for (int g = threadIdx.x; g < G; g += blockDim.x) {
        float wv[PTQ_AQ_D];
        ptq_aq_group_f16(w.codebooks, w.scales, w.b, w.m, w.codes, G, r, g, wv);
#pragma unroll
        for (int i = 0; i < PTQ_AQ_D; i++) out[PTQ_AQ_D * g + i] = wv[i];
    }
}

extern "C" int ptqk_embed_aqlm(const ptqk_aqlm_w *table, const int32_t *tok, int n, float *x, ptqk_stream s)
{
    int rc = check_w(table);
    if (rc) return rc;
    if (n < 1) return (int)cudaErrorInvalidValue;
    embed_aqlm_kernel<<<n, 128, 0, (cudaStream_t)s>>>(*table, tok, x);
    return (int)cudaGetLastError();
}
