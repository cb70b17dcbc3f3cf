/* aqlm.cu - the AQLM linear (lib/qfmt/qf_aqlm.c layout): fused decode + GEMV
 * for 1..PTQK_GEMV_MAX_N tokens, fused decode + mma GEMM for prefill (decode
 * to fp16 + cuBLAS as its fallback and the path it is checked against), and
 * the embedding gather.  Every weight comes from the decode arithmetic shared
 * with the CPU (lib/qfmt/aqlm_decode.h): the unscaled group sum
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
 * Prefill GEMM (n > gemv_max_n; ptqk_gemm_aqlm), the decode + mma.sync
 * structure of gemm_int.cu and e8p.cu's GEMM: y^T = W x^T as C = A B with A
 * the decoded weights (rows x cols, row-major), B = x^T (x row-major is B
 * column-major), mma.sync.aligned.m16n8k16.row.col f16 x f16 -> f32, the
 * fragment layouts of the PTX ISA (gemm_int.cu's header lists them):
 *  - a block computes 64 rows x BN tokens (BN = 64, or 32 when the grid of
 *    64-token tiles would give fewer than two blocks per SM: at n = 64 a
 *    4096-row layer has 64 such blocks for 132 SMs) with 4 warps of 128
 *    threads, 2 x 2, a warp owning 32 rows x BN/2 tokens (2 x BN/16 mma
 *    tiles, fp32 accumulators in registers);
 *  - per k-tile of 64 columns (8 groups) each thread decodes 4 groups
 *    (group tid % 8 of rows tid / 8 + 16 j) with the operations of
 *    decode_aqlm_kernel: the float sum of its M codewords, times the row's
 *    scale, rounded to fp16 (so the tile holds exactly the bits
 *    ptqk_decode_aqlm stores, and the result differs from decode + cuBLAS
 *    only by the order of the fp32 sums), and stores 16 bytes into the
 *    shared A tile; it copies 2 or 4 chunks of 8 activations into the
 *    shared B tile; a barrier; the warps issue 4 k16-steps of 2 x BN/16 mma;
 *  - the next k-tile's codes and activations are loaded into registers
 *    right after the barrier, so their global latency overlaps the mma;
 *  - shared memory: the A and B tiles, rows padded to 72 halves so the 8 x 4
 *    32-bit fragment loads of a warp and the 16-byte tile stores of 8
 *    threads hit distinct banks (9 KiB + 4.5 or 9 KiB), plus for B <= 8 the
 *    codebooks as in the GEMV (M x 2^B x 16 bytes, copied once per block: 8
 *    KiB for 2x8, 16 KiB for 4x8; above 48 KiB in all, 8x8, the launch opts
 *    in to more); for 1x16 (B > 8) the codewords are read with __ldg from
 *    L2, one random 16-byte load per group and token tile;
 *  - tails: rows past the matrix and groups past cols decode to zeros,
 *    activations past n or cols are zeros, outputs are stored only inside
 *    rows x n (cols % 8 == 0 is a format rule); x rows of any ldx (16-byte
 *    loads when ldx % 8 == 0 and x is aligned, else 2-byte ones).
 * The decode is repeated once per token tile (n / BN times): per group of
 * 8 weights M code loads, M 16-byte codeword loads, 8 M adds, 8 multiplies,
 * 4 conversions and one store, about 4 thread instructions per weight for
 * 2x8 per tile of 32 or 64 tokens, against decode + cuBLAS's extra write
 * and read of 2 bytes per weight and its second launch.  cuBLAS's own GEMM
 * (wgmma, deeper pipelines) is faster per FLOP than this mma.sync loop, so
 * at large n decode + cuBLAS may win; not measured yet (no GPU so far):
 * bench_kernels' "AQLM prefill" table times both in one run, and
 * ptqk_linear_aqlm would then want a token threshold.
 * Fallback (ptqk_decode_gemm_aqlm): the layer decoded to fp16 [rows][cols]
 * in a scratch buffer (one thread per group, decode_aqlm_kernel) and
 * multiplied by cuBLAS (ptqk_linear_f16, fp32 accumulate); ptqk_linear_aqlm
 * takes it only where the fused kernel cannot run (codebooks beyond the
 * device's shared memory: never for M <= 8 at B <= 8 on sm_80 and later).
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/cuda/mma.cuh"
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

/* ------------------------------------------------------------ GEMM (prefill) */
#define GM_BM 64       /* rows per block */
#define GM_BK 64       /* columns per k-tile (8 groups) */
#define GM_LDS 72      /* halves per shared row (GM_BK + 8): conflict-free fragment loads */
#define GM_THREADS 128 /* 4 warps, 2 (rows) x 2 (tokens) */

/* The codes of this thread's GPT groups of the k-tile at column k0 (group
 * k0 / 8 + lg of rows row0 + lr + 16 j) into cr; 0 outside the matrix (the
 * decode writes zeros there, see gm_decode). */
template <int M, int GPT, bool WIDE>
__device__ __forceinline__ void gm_fetch_codes(const ptqk_aqlm_w &w, int mm, int row0, int lr, int lg, int k0,
                                               unsigned (&cr)[GPT][M ? M : 8])
{
    const int G = w.cols / PTQ_AQ_D, g = k0 / PTQ_AQ_D + lg;
#pragma unroll
    for (int j = 0; j < GPT; j++) {
        const int row = row0 + lr + 16 * j;
        const size_t i0 = ((size_t)row * G + g) * mm;
#pragma unroll
        for (int m = 0; m < (M ? M : 8); m++) {
            if (!M && m >= mm) break;
            unsigned c = 0;
            if (row < w.rows && g < G)
                c = WIDE ? __ldg(reinterpret_cast<const uint16_t *>(w.codes) + i0 + m)
                         : __ldg(reinterpret_cast<const uint8_t *>(w.codes) + i0 + m);
            cr[j][m] = c;
        }
    }
}

/* The activations of this thread's XPT chunks of 8 (tokens tok0 + lr + 16 j,
 * columns k0 + 8 lg ..) into xr; 0 outside (cols % 8 == 0: all 8 or none). */
template <int XPT>
__device__ __forceinline__ void gm_fetch_x(const __half *__restrict__ x, int ldx, int xvec, int n, int cols,
                                           int tok0, int lr, int lg, int k0, uint4 (&xr)[XPT])
{
    const int k = k0 + PTQ_AQ_D * lg;
#pragma unroll
    for (int j = 0; j < XPT; j++) {
        const int tok = tok0 + lr + 16 * j;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (tok < n && k < cols) {
            const __half *xp = x + (size_t)tok * ldx + k;
            if (xvec) {
                v = __ldg(reinterpret_cast<const uint4 *>(xp));
            } else {
                __align__(16) __half t8[8];
#pragma unroll
                for (int q = 0; q < 8; q++) t8[q] = xp[q];
                v = *reinterpret_cast<const uint4 *>(t8);
            }
        }
        xr[j] = v;
    }
}

/* Decode this thread's groups into the fp16 tile sA: w = fp16(scale * y_g),
 * the operations of decode_aqlm_kernel (aqlm_decode.h's sum, one multiply,
 * round to nearest even), so the tile holds the bits ptqk_decode_aqlm
 * stores; zeros outside the matrix. */
template <int M, int GPT, bool WIDE>
__device__ __forceinline__ void gm_decode(const ptqk_aqlm_w &w, const uint4 *cbs, int mm, int row0, int lr,
                                          int lg, int k0, const unsigned (&cr)[GPT][M ? M : 8],
                                          const float (&sc)[GPT], __half *sA)
{
    const uint4 *gcb = reinterpret_cast<const uint4 *>(w.codebooks);
    const int b = w.b, valid_g = k0 / PTQ_AQ_D + lg < w.cols / PTQ_AQ_D;
#pragma unroll
    for (int j = 0; j < GPT; j++) {
        float ys[PTQ_AQ_D], wv[PTQ_AQ_D];
#pragma unroll
        for (int i = 0; i < PTQ_AQ_D; i++) ys[i] = 0.0f;
        if (row0 + lr + 16 * j < w.rows && valid_g) {
#pragma unroll
            for (int m = 0; m < (M ? M : 8); m++) {
                if (!M && m >= mm) break;
                const unsigned c = cr[j][m];
                const uint4 v = WIDE ? __ldg(gcb + (((size_t)m << b) + c)) : cbs[(m << b) + c];
                ptq_aq_add_f16(ys, reinterpret_cast<const uint16_t *>(&v));
            }
        }
        ptq_aq_scale(sc[j], ys, wv); /* 0 * s = 0 outside (s is 0 there too) */
        __align__(16) __half h[8];
#pragma unroll
        for (int q = 0; q < 8; q++) h[q] = __float2half_rn(wv[q]);
        *reinterpret_cast<uint4 *>(&sA[(lr + 16 * j) * GM_LDS + PTQ_AQ_D * lg]) = *reinterpret_cast<const uint4 *>(h);
    }
}

/* y[t][r] = sum_k fp16(W[r][k]) x[t][k] for a GM_BM x BN tile (rows x tokens)
 * per block: A = the decoded weights (row-major), B = x^T (x row-major is B
 * column-major), C[r][t] accumulated in fp32 by mma.sync m16n8k16. */
template <int M, int BN, bool WIDE>
__global__ void __launch_bounds__(GM_THREADS)
gemm_aqlm_kernel(ptqk_aqlm_w w, const __half *__restrict__ x, int ldx, float *__restrict__ y, int ldy, int n,
                 int xvec)
{
    extern __shared__ uint4 cbs[]; /* B <= 8: the codebooks, one uint4 per codeword */
    __shared__ __align__(16) __half sA[GM_BM * GM_LDS];
    __shared__ __align__(16) __half sB[BN * GM_LDS];
    constexpr int GPT = GM_BM * (GM_BK / PTQ_AQ_D) / GM_THREADS; /* groups per thread per k-tile: 4 */
    constexpr int XPT = BN * (GM_BK / PTQ_AQ_D) / GM_THREADS;    /* x chunks per thread: 2 or 4 */
    constexpr int NT = BN / 16;                                  /* n8 tiles per warp */
    const int mm = M ? M : w.m;
    if (!WIDE) {
        const uint4 *gcb = reinterpret_cast<const uint4 *>(w.codebooks);
        for (int i = threadIdx.x; i < (mm << w.b); i += blockDim.x) cbs[i] = __ldg(gcb + i);
        __syncthreads();
    }
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row0 = blockIdx.x * GM_BM, tok0 = blockIdx.y * BN;
    const int lg = tid & 7, lr = tid >> 3; /* group lg of the k-tile, rows (tokens) lr + 16 j */
    const int g8 = lane >> 2, tig = lane & 3, wm = (warp & 1) * 32, wn = (warp >> 1) * (BN / 2);
    float sc[GPT];
#pragma unroll
    for (int j = 0; j < GPT; j++) {
        const int row = row0 + lr + 16 * j;
        sc[j] = row < w.rows ? ptq_aq_widen(__ldg(w.scales + row)) : 0.0f;
    }
    float c[2][NT][4];
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) c[mt][nt][i] = 0.0f;
    unsigned cr[GPT][M ? M : 8];
    uint4 xr[XPT];
    gm_fetch_codes<M, GPT, WIDE>(w, mm, row0, lr, lg, 0, cr);
    gm_fetch_x<XPT>(x, ldx, xvec, n, w.cols, tok0, lr, lg, 0, xr);
    for (int k0 = 0; k0 < w.cols; k0 += GM_BK) {
        gm_decode<M, GPT, WIDE>(w, cbs, mm, row0, lr, lg, k0, cr, sc, sA);
#pragma unroll
        for (int j = 0; j < XPT; j++)
            *reinterpret_cast<uint4 *>(&sB[(lr + 16 * j) * GM_LDS + PTQ_AQ_D * lg]) = xr[j];
        __syncthreads();
        if (k0 + GM_BK < w.cols) { /* the next k-tile's loads overlap this one's mma */
            gm_fetch_codes<M, GPT, WIDE>(w, mm, row0, lr, lg, k0 + GM_BK, cr);
            gm_fetch_x<XPT>(x, ldx, xvec, n, w.cols, tok0, lr, lg, k0 + GM_BK, xr);
        }
#pragma unroll
        for (int ks = 0; ks < GM_BK; ks += 16) {
            uint32_t a[2][4];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const __half *p = &sA[(wm + 16 * mt + g8) * GM_LDS + ks + 2 * tig];
                a[mt][0] = lds32(p);
                a[mt][1] = lds32(p + 8 * GM_LDS);
                a[mt][2] = lds32(p + 8);
                a[mt][3] = lds32(p + 8 * GM_LDS + 8);
            }
#pragma unroll
            for (int nt = 0; nt < NT; nt++) {
                const __half *p = &sB[(wn + 8 * nt + g8) * GM_LDS + ks + 2 * tig];
                const uint32_t bf[2] = {lds32(p), lds32(p + 8)};
#pragma unroll
                for (int mt = 0; mt < 2; mt++) mma16816(c[mt][nt], a[mt], bf);
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int r = row0 + wm + 16 * mt + g8 + (i >= 2 ? 8 : 0);
                const int t = tok0 + wn + 8 * nt + 2 * tig + (i & 1);
                if (r < w.rows && t < n) y[(size_t)t * ldy + r] = c[mt][nt][i];
            }
}

template <int M, int BN, bool WIDE>
static int gm_launch(const ptqk_aqlm_w *w, const __half *x, int ldx, float *y, int ldy, int n, int xvec,
                     size_t smem, cudaStream_t s)
{
    dim3 grid((w->rows + GM_BM - 1) / GM_BM, (n + BN - 1) / BN);
    if (grid.y > 65535u) return (int)cudaErrorInvalidValue;
    if (smem + sizeof(__half) * (GM_BM + BN) * GM_LDS > 48 * 1024) {
        int err = (int)cudaFuncSetAttribute(gemm_aqlm_kernel<M, BN, WIDE>,
                                            cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (err) return err;
    }
    gemm_aqlm_kernel<M, BN, WIDE><<<grid, GM_THREADS, smem, s>>>(*w, x, ldx, y, ldy, n, xvec);
    return (int)cudaGetLastError();
}

template <int M, bool WIDE>
static int gm_launch_bn(const ptqk_aqlm_w *w, const __half *x, int ldx, float *y, int ldy, int n, int xvec,
                        size_t smem, int wide_tiles, cudaStream_t s)
{
    if (wide_tiles) return gm_launch<M, 64, WIDE>(w, x, ldx, y, ldy, n, xvec, smem, s);
    return gm_launch<M, 32, WIDE>(w, x, ldx, y, ldy, n, xvec, smem, s);
}

extern "C" int ptqk_gemm_aqlm(const ptqk_aqlm_w *w, const uint16_t *x16, int ldx, float *y, int ldy, int n,
                              ptqk_stream st)
{
    int rc = check_w(w);
    if (rc) return rc;
    if (n < 1 || ldx < w->cols || ldy < w->rows) return (int)cudaErrorInvalidValue;
    int dev = 0, sms = 0, optin = 0;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) || sms < 1) sms = 1;
    if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev)) optin = 48 * 1024;
    const size_t smem = w->b > 8 ? 0 : ((size_t)w->m << w->b) * 16;
    if (smem + sizeof(__half) * (GM_BM + 64) * GM_LDS > (size_t)optin) return (int)cudaErrorNotSupported;
    /* 64-token tiles halve the decode work per token; 32-token ones keep more
     * SMs busy when the grid is small (under two blocks per SM at 64) */
    const size_t blocks64 = (size_t)((w->rows + GM_BM - 1) / GM_BM) * ((n + 63) / 64);
    const int wide_tiles = n > 32 && blocks64 >= 2 * (size_t)sms;
    cudaStream_t s = (cudaStream_t)st;
    const __half *x = reinterpret_cast<const __half *>(x16);
    int xvec = ldx % 8 == 0 && (uintptr_t)x % 16 == 0;
    if (w->b > 8) return w->m == 1 ? gm_launch_bn<1, true>(w, x, ldx, y, ldy, n, xvec, smem, wide_tiles, s)
                                   : gm_launch_bn<0, true>(w, x, ldx, y, ldy, n, xvec, smem, wide_tiles, s);
    return w->m == 2 ? gm_launch_bn<2, false>(w, x, ldx, y, ldy, n, xvec, smem, wide_tiles, s)
                     : gm_launch_bn<0, false>(w, x, ldx, y, ldy, n, xvec, smem, wide_tiles, s);
}

/* ------------------------------------------------------------ linear */
extern "C" int ptqk_decode_gemm_aqlm(void *cublas, const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y,
                                     int ldy, int n, uint16_t *scratch, ptqk_stream s)
{
    if (!scratch) return (int)cudaErrorInvalidValue;
    int rc = ptqk_decode_aqlm(w, scratch, s);
    if (rc) return rc;
    ptqk_f16_w fw = {w->rows, w->cols, scratch};
    return ptqk_linear_f16(cublas, &fw, x, ldx, y, ldy, n);
}

extern "C" int ptqk_linear_aqlm(void *cublas, const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y,
                                int ldy, int n, int gemv_max_n, uint16_t *scratch, ptqk_stream s)
{
    if (n <= gemv_max_n && n <= PTQK_GEMV_MAX_N) return ptqk_gemv_aqlm(w, x, ldx, y, ldy, n, s);
    int rc = ptqk_gemm_aqlm(w, x, ldx, y, ldy, n, s);
    if (rc != (int)cudaErrorNotSupported || !scratch) return rc;
    return ptqk_decode_gemm_aqlm(cublas, w, x, ldx, y, ldy, n, scratch, s);
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
