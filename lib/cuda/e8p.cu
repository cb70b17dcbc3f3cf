/* e8p.cu - QuIP# (E8P) linears on the GPU: the fast Hadamard transform, the
 * fused E8P decode + GEMV (1..PTQK_GEMV_MAX_N tokens) and the decode + mma
 * GEMM (prefill), composed by ptqk_linear_e8p (lib/cuda/e8p_kernels.h).
 *
 * Hadamard (plans of lib/qfmt/had.h, n = K * P): when n floats fit in
 * 48 KiB of shared memory and K <= 64 (576, 1536, 4096, 5632, ...), one
 * block per token does both passes below in shared memory (one launch).
 * Else pass 1, one block per (row i < K, token), loads its P values (times
 * the input signs for V),
 * runs the FWHT in shared memory with had.c's butterflies (len 1, 2, 4, ..;
 * a + b and a - b are the same float operations in any order) and, when
 * K == 1, scales (and applies the output signs for U^T) and stores; else it
 * stores the unscaled rows and pass 2, one thread per output (k, j), sums
 * c(k, i) * X[i][j] over i ascending with separate rounded multiply and add
 * (__fmul_rn/__fadd_rn: had.c's order and roundings, no contraction), then
 * scales.  On a host that does not contract a*b+c either (x86-64 without
 * -mfma) the result is the same bits as ptq_had_fwd/ptq_had_inv.
 * Pass 1 needs P floats of shared memory (P <= 32768 on sm_80+: up to the
 * opt-in limit, set per launch when over 48 KiB).
 *
 * GEMV: one warp per output row; the block's 256 threads first build the
 * tables of lib/qfmt/e8p_decode.h in shared memory (sources and sign masks,
 * 16 KiB; the 1-bit book, 8 KiB, when a stage uses it).  Lane l reads the
 * codes 8l..8l+7, 8l+256.. of its row as one 16-byte load (when cols % 64
 * == 0 and the codes are aligned; else one code per lane), so each code is
 * read once and a warp's loads are contiguous.  A code decodes with two
 * 16-byte shared loads of its source, two of its byte's masks, 8 XORs and 8
 * adds (exact: the same bits as ptq_e8p_decode), then 8 fmaf per token
 * against t (float, from L1/L2).  Each stage accumulates in fp32 per lane
 * and is multiplied by its scale; the lane sums are reduced with shuffles.
 * The stage loop dispatches on the stage kind (E8P: uint16 codes; E81B:
 * uint8 codes of the 1-bit book), so a residual stage of another book is one
 * more case.
 *
 * GEMM: as gemm_int.cu (32 rows x 32 tokens a block, 4 warps, mma.sync
 * m16n8k16 fp16 x fp16 -> fp32, fragment layouts of the PTX ISA): each
 * thread decodes one code (8 weights of one row) per stage into an fp16
 * tile (E8P/E81B values are multiples of 1/4 below 4: exact in fp16), each
 * stage has its own accumulators, and the output is sum_s scale_s C_s.
 * The activations t are rounded to fp16 by the Hadamard pass (A16, as the
 * integer GEMM's x).
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/cuda/e8p_kernels.h"
#include "lib/cuda/mma.cuh"
#include "lib/cuda/ptqrt_kernels.h"
#include "lib/qfmt/e8p_decode.h"

/* ------------------------------------------------------------------ Hadamard */

#define HAD_THREADS 512
#define HAD_DENSE_THREADS 256

/* Store v at o32 or o16 (the one that is not NULL). */
__device__ __forceinline__ void had_store(float *o32, __half *o16, size_t i, float v)
{
    if (o32) o32[i] = v;
    else o16[i] = __float2half_rn(v);
}

/* Pass 1: FWHT of row blockIdx.x (length P) of token blockIdx.y.  Input x16
 * (fp16, rows of ldx, times s_in) or x32 (float [tok][n]).  K == 1: scale,
 * times s_out, into o32/o16 at tok * ldo + j; else unscaled into tmp
 * [tok][n]. */
__global__ void __launch_bounds__(HAD_THREADS)
had_rows_kernel(ptqk_had h, const int8_t *s_in, const __half *__restrict__ x16, int ldx,
                const float *__restrict__ x32, const int8_t *s_out, float *o32, __half *o16, int ldo,
                float *tmp)
{
    extern __shared__ float sh[];
    const int P = h.P, base = blockIdx.x * P;
    const size_t tk = blockIdx.y;
    for (int j = threadIdx.x; j < P; j += blockDim.x) {
        float v = x16 ? __half2float(x16[tk * ldx + base + j]) : x32[tk * h.n + base + j];
        if (s_in) v = __fmul_rn(v, (float)s_in[base + j]);
        sh[j] = v;
    }
    __syncthreads();
    for (int len = 1; len < P; len <<= 1) {
        for (int q = threadIdx.x; q < P / 2; q += blockDim.x) {
            int j = ((q & ~(len - 1)) << 1) | (q & (len - 1));
            float a = sh[j], b = sh[j + len];
            sh[j] = __fadd_rn(a, b);
            sh[j + len] = __fsub_rn(a, b);
        }
        __syncthreads();
    }
    for (int j = threadIdx.x; j < P; j += blockDim.x) {
        float v = sh[j];
        if (h.K == 1) {
            v = __fmul_rn(v, h.scale);
            if (s_out) v = __fmul_rn(v, (float)s_out[j]);
            had_store(o32, o16, tk * ldo + j, v);
        } else {
            tmp[tk * h.n + base + j] = v;
        }
    }
}

/* Pass 2 (K > 1): out(k, j) = scale * sum_i c(k, i) X[i][j], c = mk[k][i]
 * (trans 0) or mk[i][k] (trans 1), times s_out. */
__global__ void __launch_bounds__(HAD_DENSE_THREADS)
had_dense_kernel(ptqk_had h, int trans, const float *__restrict__ tmp, const int8_t *s_out,
                 float *o32, __half *o16, int ldo)
{
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    const size_t tk = blockIdx.y;
    if (e >= h.n) return;
    const int K = h.K, P = h.P, k = e / P, j = e % P;
    const float *X = tmp + tk * h.n + j;
    float acc = 0.0f;
    for (int i = 0; i < K; i++) {
        float c = __ldg(h.mk + (trans ? (size_t)i * K + k : (size_t)k * K + i));
        acc = __fadd_rn(acc, __fmul_rn(c, X[(size_t)i * P]));
    }
    float v = __fmul_rn(acc, h.scale);
    if (s_out) v = __fmul_rn(v, (float)s_out[e]);
    had_store(o32, o16, tk * ldo + e, v);
}

/* Both passes in one block per token when the vector fits in 48 KiB of
 * shared memory and K <= HAD_FUSE_K (the dense sums then read shared
 * memory; a larger K is spread over the blocks of pass 2 instead): the same
 * operations in the same order as had_rows_kernel + had_dense_kernel. */
#define HAD_FUSE_K 64
__global__ void __launch_bounds__(HAD_THREADS)
had_fused_kernel(ptqk_had h, int trans, const int8_t *s_in, const __half *__restrict__ x16, int ldx,
                 const float *__restrict__ x32, const int8_t *s_out, float *o32, __half *o16, int ldo)
{
    extern __shared__ float sh[];
    const int n = h.n, P = h.P, K = h.K, half = P / 2;
    const size_t tk = blockIdx.x;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float v = x16 ? __half2float(x16[tk * ldx + j]) : x32[tk * n + j];
        if (s_in) v = __fmul_rn(v, (float)s_in[j]);
        sh[j] = v;
    }
    __syncthreads();
    for (int len = 1; len < P; len <<= 1) {
        for (int q = threadIdx.x; q < K * half; q += blockDim.x) {
            int r = q / half, qq = q - r * half;
            int j = r * P + (((qq & ~(len - 1)) << 1) | (qq & (len - 1)));
            float a = sh[j], b = sh[j + len];
            sh[j] = __fadd_rn(a, b);
            sh[j + len] = __fsub_rn(a, b);
        }
        __syncthreads();
    }
    for (int e = threadIdx.x; e < n; e += blockDim.x) {
        float v;
        if (K == 1) {
            v = sh[e];
        } else {
            const int k = e / P, j = e - k * P;
            v = 0.0f;
            for (int i = 0; i < K; i++) {
                float c = __ldg(h.mk + (trans ? (size_t)i * K + k : (size_t)k * K + i));
                v = __fadd_rn(v, __fmul_rn(c, sh[i * P + j]));
            }
        }
        v = __fmul_rn(v, h.scale);
        if (s_out) v = __fmul_rn(v, (float)s_out[e]);
        had_store(o32, o16, tk * ldo + e, v);
    }
}

static int had_run(const ptqk_had *h, int trans, const int8_t *s_in, const __half *x16, int ldx,
                   const float *x32, const int8_t *s_out, float *o32, __half *o16, int ldo, int ntok,
                   float *tmp, cudaStream_t st)
{
    if (ntok < 1 || ntok > 65535 || h->n < 1 || h->K < 1 || h->P < 1 || h->K * h->P != h->n ||
        (h->K > 1 && !h->mk))
        return (int)cudaErrorInvalidValue;
    if (h->K <= HAD_FUSE_K && sizeof(float) * (size_t)h->n <= 48 * 1024) {
        int th = h->n / 2 < 32 ? 32 : (h->n / 2 > HAD_THREADS ? HAD_THREADS : h->n / 2);
        had_fused_kernel<<<ntok, th, sizeof(float) * (size_t)h->n, st>>>(*h, trans, s_in, x16, ldx, x32, s_out,
                                                                          o32, o16, ldo);
        return (int)cudaGetLastError();
    }
    if (h->K > 1 && !tmp) return (int)cudaErrorInvalidValue;
    size_t smem = sizeof(float) * (size_t)h->P;
    if (smem > 48 * 1024) {
        int err = (int)cudaFuncSetAttribute(had_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                            (int)smem);
        if (err) return err;
    }
    int threads = h->P / 2 < 32 ? 32 : (h->P / 2 > HAD_THREADS ? HAD_THREADS : h->P / 2);
    had_rows_kernel<<<dim3(h->K, ntok), threads, smem, st>>>(*h, s_in, x16, ldx, x32,
                                                             h->K == 1 ? s_out : NULL, o32, o16, ldo, tmp);
    int err = (int)cudaGetLastError();
    if (err || h->K == 1) return err;
    dim3 grid((h->n + HAD_DENSE_THREADS - 1) / HAD_DENSE_THREADS, ntok);
    had_dense_kernel<<<grid, HAD_DENSE_THREADS, 0, st>>>(*h, trans, tmp, s_out, o32, o16, ldo);
    return (int)cudaGetLastError();
}

extern "C" int ptqk_had_fwd(const ptqk_had *h, const int8_t *s, const uint16_t *x, int ldx, int ntok,
                            float *t32, uint16_t *t16, float *tmp, struct CUstream_st *st)
{
    if (ldx < h->n || (!t32 && !t16)) return (int)cudaErrorInvalidValue;
    return had_run(h, 0, s, reinterpret_cast<const __half *>(x), ldx, NULL, NULL, t32,
                   t32 ? NULL : reinterpret_cast<__half *>(t16), h->n, ntok, tmp, (cudaStream_t)st);
}

extern "C" int ptqk_had_inv(const ptqk_had *h, const int8_t *s, const float *z, int ntok, float *y,
                            int ldy, float *tmp, struct CUstream_st *st)
{
    if (ldy < h->n) return (int)cudaErrorInvalidValue;
    return had_run(h, 1, NULL, NULL, 0, z, s, y, NULL, ldy, ntok, tmp, (cudaStream_t)st);
}

/* ------------------------------------------------------------------ decode tables */

/* The tables of e8p_decode.h, split in halves of 4 so that the 16-byte
 * shared loads of 8 lanes fall on 8 different bank groups more often. */
struct e8_tables {
    float4 slo[256], shi[256]; /* E8P sources */
    uint4 mlo[256], mhi[256];  /* sign masks by byte */
    float4 blo[256], bhi[256]; /* the 1-bit book (when w.tab1) */
};

__device__ __forceinline__ void build_tables(e8_tables &S, const uint32_t *tab, const uint32_t *tab1)
{
    for (int k = threadIdx.x; k < 256; k += blockDim.x) {
        float v[8];
        uint32_t m[8];
        ptq_e8pd_src(__ldg(tab + k), v);
        S.slo[k] = make_float4(v[0], v[1], v[2], v[3]);
        S.shi[k] = make_float4(v[4], v[5], v[6], v[7]);
        ptq_e8pd_mask((unsigned)k, m);
        S.mlo[k] = make_uint4(m[0], m[1], m[2], m[3]);
        S.mhi[k] = make_uint4(m[4], m[5], m[6], m[7]);
        if (tab1) {
            ptq_e8pd_src(__ldg(tab1 + k), v);
            S.blo[k] = make_float4(v[0], v[1], v[2], v[3]);
            S.bhi[k] = make_float4(v[4], v[5], v[6], v[7]);
        }
    }
    __syncthreads();
}

__device__ __forceinline__ float flip_add(float v, uint32_t m, float sh)
{
    return __uint_as_float(__float_as_uint(v) ^ m) + sh;
}

/* E8P code c -> 8 values (== ptq_e8pd_decode == ptq_e8p_decode). */
__device__ __forceinline__ void dec_e8p(const e8_tables &S, uint32_t c, float *w)
{
    const uint32_t k = c >> 8, b = c & 255u;
    const float4 a = S.slo[k], a2 = S.shi[k];
    const uint4 m = S.mlo[b], m2 = S.mhi[b];
    const float sh = (__popc(b) & 1) ? -0.25f : 0.25f;
    w[0] = flip_add(a.x, m.x, sh), w[1] = flip_add(a.y, m.y, sh);
    w[2] = flip_add(a.z, m.z, sh), w[3] = flip_add(a.w, m.w, sh);
    w[4] = flip_add(a2.x, m2.x, sh), w[5] = flip_add(a2.y, m2.y, sh);
    w[6] = flip_add(a2.z, m2.z, sh), w[7] = flip_add(a2.w, m2.w, sh);
}

/* 1-bit code c -> 8 values (ptq_e8pd_src of tab1[c]). */
__device__ __forceinline__ void dec_e81b(const e8_tables &S, uint32_t c, float *w)
{
    const float4 a = S.blo[c], a2 = S.bhi[c];
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w;
    w[4] = a2.x, w[5] = a2.y, w[6] = a2.z, w[7] = a2.w;
}

/* ------------------------------------------------------------------ GEMV */

#define E8_WARPS 8

/* acc[tk] += w . t[tk][k0 .. k0+7] for tk < n. */
template <int NT>
__device__ __forceinline__ void dot8(const float *w, const float *__restrict__ t, int ldt, int k0, int n,
                                     float *acc)
{
#pragma unroll
    for (int tk = 0; tk < NT; tk++) {
        if (tk < n) {
            const float4 *p = reinterpret_cast<const float4 *>(t + (size_t)tk * ldt + k0);
            const float4 a = __ldg(p), b = __ldg(p + 1);
            float d = acc[tk];
            d = fmaf(w[0], a.x, d), d = fmaf(w[1], a.y, d), d = fmaf(w[2], a.z, d), d = fmaf(w[3], a.w, d);
            d = fmaf(w[4], b.x, d), d = fmaf(w[5], b.y, d), d = fmaf(w[6], b.z, d), d = fmaf(w[7], b.w, d);
            acc[tk] = d;
        }
    }
}

/* One stage of one row: acc[tk] += sum_j book(code_j) . t_j over this
 * lane's codes.  VEC: 8 codes per lane per step, one wide load. */
template <int NT, int VEC>
__device__ __forceinline__ void gemv_stage(const e8_tables &S, const ptqk_e8p_stage &sg, int row, int per,
                                           int lane, const float *__restrict__ t, int ldt, int n, float *acc)
{
    float wv[8];
    if (sg.kind == PTQK_E8P_STAGE) {
        const uint16_t *c = static_cast<const uint16_t *>(sg.codes) + (size_t)row * per;
        if (VEC) {
            for (int j0 = lane * 8; j0 < per; j0 += 256) {
                const uint4 v = __ldg(reinterpret_cast<const uint4 *>(c + j0));
                const uint32_t cw[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    dec_e8p(S, (cw[q >> 1] >> (16 * (q & 1))) & 0xffffu, wv);
                    dot8<NT>(wv, t, ldt, (j0 + q) * 8, n, acc);
                }
            }
        } else {
            for (int j = lane; j < per; j += 32) {
                dec_e8p(S, __ldg(c + j), wv);
                dot8<NT>(wv, t, ldt, j * 8, n, acc);
            }
        }
    } else {
        const uint8_t *c = static_cast<const uint8_t *>(sg.codes) + (size_t)row * per;
        if (VEC) {
            for (int j0 = lane * 8; j0 < per; j0 += 256) {
                const uint2 v = __ldg(reinterpret_cast<const uint2 *>(c + j0));
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    dec_e81b(S, ((q < 4 ? v.x : v.y) >> (8 * (q & 3))) & 255u, wv);
                    dot8<NT>(wv, t, ldt, (j0 + q) * 8, n, acc);
                }
            }
        } else {
            for (int j = lane; j < per; j += 32) {
                dec_e81b(S, __ldg(c + j), wv);
                dot8<NT>(wv, t, ldt, j * 8, n, acc);
            }
        }
    }
}

template <int NT, int VEC>
__global__ void __launch_bounds__(E8_WARPS * 32)
e8p_gemv_kernel(ptqk_e8p_w w, const float *__restrict__ t, int ldt, float *__restrict__ z, int ldz, int n)
{
    __shared__ e8_tables S;
    build_tables(S, w.tab, w.tab1);
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * E8_WARPS + (threadIdx.x >> 5);
    if (row >= w.rows) return; /* after the barrier; the whole warp leaves together */
    const int per = w.cols / 8;
    float tot[NT];
#pragma unroll
    for (int tk = 0; tk < NT; tk++) tot[tk] = 0.0f;
    for (int s = 0; s < w.nstages; s++) {
        float acc[NT];
#pragma unroll
        for (int tk = 0; tk < NT; tk++) acc[tk] = 0.0f;
        gemv_stage<NT, VEC>(S, w.st[s], row, per, lane, t, ldt, n, acc);
#pragma unroll
        for (int tk = 0; tk < NT; tk++) tot[tk] = fmaf(w.st[s].scale, acc[tk], tot[tk]);
    }
#pragma unroll
    for (int tk = 0; tk < NT; tk++) {
        float v = tot[tk];
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (lane == 0 && tk < n) z[(size_t)tk * ldz + row] = v;
    }
}

/* The checks the launchers share: shape, stages, tables. */
static int e8p_valid(const ptqk_e8p_w *w)
{
    if (w->rows < 1 || w->cols < 8 || w->cols % 8 || w->nstages < 1 || w->nstages > PTQK_E8P_MAX_STAGES ||
        !w->tab)
        return 0;
    for (int s = 0; s < w->nstages; s++) {
        const ptqk_e8p_stage *g = &w->st[s];
        if (!g->codes || (g->kind != PTQK_E8P_STAGE && g->kind != PTQK_E81B_STAGE) ||
            (g->kind == PTQK_E81B_STAGE && !w->tab1))
            return 0;
    }
    return 1;
}

/* Every stage's codes allow the wide loads (per % 8 == 0, aligned). */
static int e8p_vec(const ptqk_e8p_w *w)
{
    if ((w->cols / 8) % 8) return 0;
    for (int s = 0; s < w->nstages; s++)
        if ((uintptr_t)w->st[s].codes % (w->st[s].kind == PTQK_E8P_STAGE ? 16 : 8)) return 0;
    return 1;
}

template <int NT>
static int gemv_nt(const ptqk_e8p_w *w, const float *t, int ldt, float *z, int ldz, int n, cudaStream_t s)
{
    unsigned blocks = (unsigned)((w->rows + E8_WARPS - 1) / E8_WARPS);
    if (e8p_vec(w)) e8p_gemv_kernel<NT, 1><<<blocks, E8_WARPS * 32, 0, s>>>(*w, t, ldt, z, ldz, n);
    else e8p_gemv_kernel<NT, 0><<<blocks, E8_WARPS * 32, 0, s>>>(*w, t, ldt, z, ldz, n);
    return (int)cudaGetLastError();
}

extern "C" int ptqk_e8p_gemv(const ptqk_e8p_w *w, const float *t, int ldt, float *z, int ldz, int n,
                             struct CUstream_st *st)
{
    cudaStream_t s = (cudaStream_t)st;
    if (!e8p_valid(w) || n < 1 || n > PTQK_GEMV_MAX_N || ldt < w->cols || ldz < w->rows)
        return (int)cudaErrorInvalidValue;
    if (ldt % 4 || (uintptr_t)t % 16) return (int)cudaErrorMisalignedAddress;
    if (n == 1) return gemv_nt<1>(w, t, ldt, z, ldz, n, s);
    if (n == 2) return gemv_nt<2>(w, t, ldt, z, ldz, n, s);
    if (n <= 4) return gemv_nt<4>(w, t, ldt, z, ldz, n, s);
    return gemv_nt<8>(w, t, ldt, z, ldz, n, s);
}

/* ------------------------------------------------------------------ GEMM */

#define BM 32
#define BN 32
#define BK 32
#define LDS 40 /* halves per shared row: conflict-free fragment loads (gemm_int.cu) */

/* The 8 fp16 weights of stage sg, row `row`, code j (0 outside the matrix). */
__device__ __forceinline__ uint4 tile_codes(const e8_tables &S, const ptqk_e8p_stage &sg, int row, int rows,
                                            int j, int per)
{
    float wv[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (row < rows && j < per) {
        size_t i = (size_t)row * per + j;
        if (sg.kind == PTQK_E8P_STAGE) dec_e8p(S, __ldg(static_cast<const uint16_t *>(sg.codes) + i), wv);
        else dec_e81b(S, __ldg(static_cast<const uint8_t *>(sg.codes) + i), wv);
    }
    __align__(16) __half h[8];
#pragma unroll
    for (int q = 0; q < 8; q++) h[q] = __float2half_rn(wv[q]);
    return *reinterpret_cast<const uint4 *>(h);
}

__global__ void __launch_bounds__(128)
e8p_gemm_kernel(ptqk_e8p_w w, const __half *__restrict__ t, int ldt, float *__restrict__ z, int ldz, int n,
                int tvec)
{
    __shared__ e8_tables S;
    __shared__ __align__(16) __half sA[PTQK_E8P_MAX_STAGES][BM * LDS];
    __shared__ __align__(16) __half sB[BN * LDS];
    build_tables(S, w.tab, w.tab1);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int row0 = blockIdx.x * BM, tok0 = blockIdx.y * BN, per = w.cols / 8, nst = w.nstages;
    const int lr = tid >> 2, lc = (tid & 3) * 8; /* this thread's row/token and 8 columns */
    const int row = row0 + lr, tok = tok0 + lr;
    const int g = lane >> 2, tig = lane & 3, wm = (warp & 1) * 16, wn = (warp >> 1) * 16;
    float c[PTQK_E8P_MAX_STAGES][2][4];
#pragma unroll
    for (int s = 0; s < PTQK_E8P_MAX_STAGES; s++)
#pragma unroll
        for (int q = 0; q < 8; q++) c[s][q >> 2][q & 3] = 0.f;

    for (int k0 = 0; k0 < w.cols; k0 += BK) {
        const int j = (k0 + lc) / 8;
#pragma unroll
        for (int s = 0; s < PTQK_E8P_MAX_STAGES; s++)
            if (s < nst)
                *reinterpret_cast<uint4 *>(&sA[s][lr * LDS + lc]) = tile_codes(S, w.st[s], row, w.rows, j, per);
        uint4 xv = make_uint4(0u, 0u, 0u, 0u);
        if (tok < n && k0 + lc < w.cols) { /* cols % 8 == 0: all 8 or none */
            const __half *xr = t + (size_t)tok * ldt + k0 + lc;
            if (tvec) {
                xv = __ldg(reinterpret_cast<const uint4 *>(xr));
            } else {
                __align__(16) __half t8[8];
#pragma unroll
                for (int q = 0; q < 8; q++) t8[q] = xr[q];
                xv = *reinterpret_cast<const uint4 *>(t8);
            }
        }
        *reinterpret_cast<uint4 *>(&sB[lr * LDS + lc]) = xv;
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            uint32_t b[2][2];
#pragma unroll
            for (int nt = 0; nt < 2; nt++) {
                b[nt][0] = lds32(&sB[(wn + nt * 8 + g) * LDS + ks + 2 * tig]);
                b[nt][1] = lds32(&sB[(wn + nt * 8 + g) * LDS + ks + 2 * tig + 8]);
            }
#pragma unroll
            for (int s = 0; s < PTQK_E8P_MAX_STAGES; s++) {
                if (s < nst) {
                    uint32_t a[4];
                    a[0] = lds32(&sA[s][(wm + g) * LDS + ks + 2 * tig]);
                    a[1] = lds32(&sA[s][(wm + g + 8) * LDS + ks + 2 * tig]);
                    a[2] = lds32(&sA[s][(wm + g) * LDS + ks + 2 * tig + 8]);
                    a[3] = lds32(&sA[s][(wm + g + 8) * LDS + ks + 2 * tig + 8]);
                    mma16816(c[s][0], a, b[0]);
                    mma16816(c[s][1], a, b[1]);
                }
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int nt = 0; nt < 2; nt++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            int r = row0 + wm + g + (i >= 2 ? 8 : 0);
            int tt = tok0 + wn + nt * 8 + 2 * tig + (i & 1);
            float v = 0.f;
#pragma unroll
            for (int s = 0; s < PTQK_E8P_MAX_STAGES; s++)
                if (s < nst) v = fmaf(w.st[s].scale, c[s][nt][i], v);
            if (r < w.rows && tt < n) z[(size_t)tt * ldz + r] = v;
        }
    }
}

extern "C" int ptqk_e8p_gemm(const ptqk_e8p_w *w, const uint16_t *t16, int ldt, float *z, int ldz, int n,
                             struct CUstream_st *st)
{
    if (!e8p_valid(w) || n < 1 || ldt < w->cols || ldz < w->rows) return (int)cudaErrorInvalidValue;
    const __half *t = reinterpret_cast<const __half *>(t16);
    int tvec = ldt % 8 == 0 && (uintptr_t)t % 16 == 0;
    dim3 grid((w->rows + BM - 1) / BM, (n + BN - 1) / BN);
    if (grid.y > 65535u) return (int)cudaErrorInvalidValue;
    e8p_gemm_kernel<<<grid, 128, 0, (cudaStream_t)st>>>(*w, t, ldt, z, ldz, n, tvec);
    return (int)cudaGetLastError();
}

/* ------------------------------------------------------------------ linear */

static size_t up4(size_t v) { return (v + 3) & ~(size_t)3; }

extern "C" size_t ptqk_e8p_scratch_floats(const ptqk_e8p_w *w, int n)
{
    size_t N = (size_t)(n > 0 ? n : 1), mx = (size_t)(w->rows > w->cols ? w->rows : w->cols);
    /* t (float) | z | Hadamard tmp | t (fp16) */
    return up4(N * w->cols) + up4(N * w->rows) + up4(N * mx) + up4((N * w->cols + 1) / 2);
}

extern "C" int ptqk_linear_e8p(const ptqk_e8p_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                               int gemv_max_n, float *scratch, struct CUstream_st *st)
{
    if (!e8p_valid(w) || n < 1 || !scratch || w->hin.n != w->cols || w->hout.n != w->rows)
        return (int)cudaErrorInvalidValue;
    if ((uintptr_t)scratch % 16) return (int)cudaErrorMisalignedAddress;
    const size_t N = (size_t)n, mx = (size_t)(w->rows > w->cols ? w->rows : w->cols);
    float *t = scratch, *z = t + up4(N * w->cols), *tmp = z + up4(N * w->rows);
    uint16_t *t16 = reinterpret_cast<uint16_t *>(tmp + up4(N * mx));
    int err;
    if (n <= gemv_max_n && n <= PTQK_GEMV_MAX_N) {
        if ((err = ptqk_had_fwd(&w->hin, w->su, x, ldx, n, t, NULL, tmp, st))) return err;
        if ((err = ptqk_e8p_gemv(w, t, w->cols, z, w->rows, n, st))) return err;
    } else {
        if ((err = ptqk_had_fwd(&w->hin, w->su, x, ldx, n, NULL, t16, tmp, st))) return err;
        if ((err = ptqk_e8p_gemm(w, t16, w->cols, z, w->rows, n, st))) return err;
    }
    return ptqk_had_inv(&w->hout, w->sv, z, n, y, ldy, tmp, st);
}
