/* layers.cu - the layers around the linears: embedding, RMSNorm, bias,
 * residual, RoPE (HF rotate_half), the fp16 or int8 KV cache (int8 codes of
 * lib/qfmt/kvq.h with static per-channel scales), causal grouped-query
 * attention, SwiGLU and row gathering.  Straightforward kernels: these are a small
 * part of a decode step next to the weight reads.  Float32 arithmetic
 * throughout (no fast-math intrinsics), fp16 only where stored.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/qfmt/kvq.h"
#include "lib/cuda/ptqrt_kernels.h"

static int last_error(void) { return (int)cudaGetLastError(); }

/* ---------------------------------------------------------------- embedding */
__global__ void embed_f16_kernel(const __half *table, int dim, const int32_t *tok, float *x)
{
    int t = blockIdx.y;
    size_t row = (size_t)tok[t];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        x[(size_t)t * dim + i] = __half2float(table[row * dim + i]);
}

extern "C" int ptqk_embed_f16(const uint16_t *table, int dim, const int32_t *tok, int n, float *x,
                              ptqk_stream s)
{
    if (n < 1 || n > 65535 || dim < 1) return (int)cudaErrorInvalidValue;
    dim3 grid((dim + 255) / 256, n);
    embed_f16_kernel<<<grid, 256, 0, (cudaStream_t)s>>>(reinterpret_cast<const __half *>(table), dim,
                                                         tok, x);
    return last_error();
}

__global__ void embed_int_kernel(ptqk_int_w w, const int32_t *tok, float *x)
{
    int t = blockIdx.y;
    int row = tok[t];
    const uint32_t *qrow = w.qweight + (size_t)row * ptq_pack_row_words(w.cols, w.bits);
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < w.cols; k += gridDim.x * blockDim.x) {
        size_t gi = (size_t)row * w.ngroups + ptqk_int_group(w.g_idx, w.group, k);
        x[(size_t)t * w.cols + k] = ptq_dequant(w.scales[gi], w.zeros[gi], ptq_pack_get(qrow, k, w.bits));
    }
}

extern "C" int ptqk_embed_int(const ptqk_int_w *table, const int32_t *tok, int n, float *x,
                              ptqk_stream s)
{
    if (n < 1 || n > 65535 || table->cols < 1) return (int)cudaErrorInvalidValue;
    dim3 grid((table->cols + 255) / 256, n);
    embed_int_kernel<<<grid, 256, 0, (cudaStream_t)s>>>(*table, tok, x);
    return last_error();
}

/* ---------------------------------------------------------------- reductions */
#define NTHREADS 256

/* Sum (or max) over the block, the same value returned to every thread;
 * red: __shared__ float[32].  Deterministic order. */
__device__ float block_sum(float v, float *red)
{
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = 0.0f;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) r += red[i];
    __syncthreads();
    return r;
}

__device__ float block_max(float v, float *red)
{
    for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < (int)(blockDim.x >> 5); i++) r = fmaxf(r, red[i]);
    __syncthreads();
    return r;
}

/* ---------------------------------------------------------------- RMSNorm */
__global__ void rmsnorm_kernel(const float *x, const float *w, int dim, float eps, __half *out)
{
    __shared__ float red[32];
    const float *xr = x + (size_t)blockIdx.x * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss = fmaf(xr[i], xr[i], ss);
    ss = block_sum(ss, red);
    float inv = 1.0f / sqrtf(ss / (float)dim + eps);
    __half *o = out + (size_t)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = __float2half_rn(xr[i] * inv * w[i]);
}

extern "C" int ptqk_rmsnorm(const float *x, const float *w, int dim, float eps, int n, uint16_t *out,
                            ptqk_stream s)
{
    if (n < 1 || dim < 1) return (int)cudaErrorInvalidValue;
    rmsnorm_kernel<<<n, NTHREADS, 0, (cudaStream_t)s>>>(x, w, dim, eps, reinterpret_cast<__half *>(out));
    return last_error();
}

/* ---------------------------------------------------------------- elementwise */
__global__ void add_bias_kernel(float *y, const float *b, int dim, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % dim];
}

static unsigned grid_for(size_t count)
{
    size_t g = (count + NTHREADS - 1) / NTHREADS;
    return (unsigned)(g < 65535 ? (g ? g : 1) : 65535);
}

extern "C" int ptqk_add_bias(float *y, const float *b, int dim, int n, ptqk_stream s)
{
    if (n < 1 || dim < 1) return (int)cudaErrorInvalidValue;
    size_t count = (size_t)n * dim;
    add_bias_kernel<<<grid_for(count), NTHREADS, 0, (cudaStream_t)s>>>(y, b, dim, count);
    return last_error();
}

__global__ void residual_kernel(float *x, const float *y, size_t count)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        x[i] += y[i];
}

extern "C" int ptqk_residual(float *x, const float *y, size_t count, ptqk_stream s)
{
    if (!count) return 0;
    residual_kernel<<<grid_for(count), NTHREADS, 0, (cudaStream_t)s>>>(x, y, count);
    return last_error();
}

__global__ void swiglu_kernel(const float *g, const float *u, size_t count, __half *out)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        float a = g[i];
        out[i] = __float2half_rn(a / (1.0f + expf(-a)) * u[i]);
    }
}

extern "C" int ptqk_swiglu(const float *g, const float *u, size_t count, uint16_t *out, ptqk_stream s)
{
    if (!count) return 0;
    swiglu_kernel<<<grid_for(count), NTHREADS, 0, (cudaStream_t)s>>>(g, u, count, reinterpret_cast<__half *>(out));
    return last_error();
}

__global__ void gather_rows_kernel(const float *src, int dim, const int32_t *idx, float *dst)
{
    const float *sr = src + (size_t)idx[blockIdx.y] * dim;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x)
        dst[(size_t)blockIdx.y * dim + i] = sr[i];
}

extern "C" int ptqk_gather_rows(const float *src, int dim, const int32_t *idx, int n, float *dst,
                                ptqk_stream s)
{
    if (n < 1 || n > 65535 || dim < 1) return (int)cudaErrorInvalidValue;
    dim3 grid((dim + NTHREADS - 1) / NTHREADS, n);
    gather_rows_kernel<<<grid, NTHREADS, 0, (cudaStream_t)s>>>(src, dim, idx, dst);
    return last_error();
}

/* ---------------------------------------------------------------- RoPE */
/* HF rotate_half: for i < hd/2, (x_i, x_{i+hd/2}) at angle pos * inv_freq[i]
 * becomes (x_i cos - x_{i+hd/2} sin, x_{i+hd/2} cos + x_i sin). */
__global__ void rope_kernel(float *x, int nheads, int hd, const float *inv_freq, int T, int pos)
{
    int tokidx = blockIdx.y, h = blockIdx.x, half = hd / 2;
    float p = (float)(pos + tokidx % T);
    float *xh = x + ((size_t)tokidx * nheads + h) * hd;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float sn, cs;
        sincosf(p * inv_freq[i], &sn, &cs);
        float a = xh[i], b = xh[i + half];
        xh[i] = a * cs - b * sn;
        xh[i + half] = b * cs + a * sn;
    }
}

extern "C" int ptqk_rope(float *x, int nheads, int hd, const float *inv_freq, int B, int T, int pos,
                         ptqk_stream s)
{
    if (B < 1 || T < 1 || B * T > 65535 || nheads < 1 || hd < 2 || hd % 2) return (int)cudaErrorInvalidValue;
    dim3 grid(nheads, B * T);
    int threads = hd / 2 < 128 ? ((hd / 2 + 31) / 32) * 32 : 128;
    rope_kernel<<<grid, threads, 0, (cudaStream_t)s>>>(x, nheads, hd, inv_freq, T, pos);
    return last_error();
}

/* ---------------------------------------------------------------- KV cache + attention */
__global__ void kv_store_kernel(const float *k, const float *v, int kvdim, int T, int pos, int S,
                                __half *kc, __half *vc)
{
    int tokidx = blockIdx.y, b = tokidx / T, t = tokidx % T;
    size_t dst = ((size_t)b * S + pos + t) * kvdim;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kvdim; i += gridDim.x * blockDim.x) {
        kc[dst + i] = __float2half_rn(k[(size_t)tokidx * kvdim + i]);
        vc[dst + i] = __float2half_rn(v[(size_t)tokidx * kvdim + i]);
    }
}

extern "C" int ptqk_kv_store(const float *k, const float *v, int kvdim, int B, int T, int pos, int S,
                             uint16_t *kc, uint16_t *vc, ptqk_stream s)
{
    if (B < 1 || T < 1 || B * T > 65535 || pos < 0 || pos + T > S || kvdim < 1) return (int)cudaErrorInvalidValue;
    dim3 grid((kvdim + NTHREADS - 1) / NTHREADS, B * T);
    kv_store_kernel<<<grid, NTHREADS, 0, (cudaStream_t)s>>>(k, v, kvdim, T, pos, S, reinterpret_cast<__half *>(kc),
                                                          reinterpret_cast<__half *>(vc));
    return last_error();
}

/* int8 cache: the codes of k, v under the scales ks, vs [kvdim] (lib/qfmt/kvq.h) */
__global__ void kv_store_i8_kernel(const float *k, const float *v, const float *ks, const float *vs,
                                   int kvdim, int T, int pos, int S, int8_t *kc, int8_t *vc)
{
    int tokidx = blockIdx.y, b = tokidx / T, t = tokidx % T;
    size_t dst = ((size_t)b * S + pos + t) * kvdim;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < kvdim; i += gridDim.x * blockDim.x) {
        kc[dst + i] = ptq_kv_code(k[(size_t)tokidx * kvdim + i], ks[i]);
        vc[dst + i] = ptq_kv_code(v[(size_t)tokidx * kvdim + i], vs[i]);
    }
}

extern "C" int ptqk_kv_store_i8(const float *k, const float *v, const float *kv_scale, int kvdim, int B,
                                int T, int pos, int S, int8_t *kc, int8_t *vc, ptqk_stream s)
{
    if (B < 1 || T < 1 || B * T > 65535 || pos < 0 || pos + T > S || kvdim < 1) return (int)cudaErrorInvalidValue;
    dim3 grid((kvdim + NTHREADS - 1) / NTHREADS, B * T);
    kv_store_i8_kernel<<<grid, NTHREADS, 0, (cudaStream_t)s>>>(k, v, kv_scale, kv_scale + kvdim, kvdim, T, pos,
                                                               S, kc, vc);
    return last_error();
}

#define ATT_THREADS 128

/* A cached key or value as float: fp16 decoded, or int8 code * scale. */
__device__ __forceinline__ float kv_load(const __half *c, size_t i, const float *, int)
{
    return __half2float(c[i]);
}
__device__ __forceinline__ float kv_load(const int8_t *c, size_t i, const float *sc, int d)
{
    return ptq_kv_value(c[i], sc[d]);
}

/* One block per (head, token).  Scores of positions 0..pos+t in shared
 * memory, softmax in float, then each thread sums one output dimension.
 * Cache is __half (ks, vs unused) or int8_t (ks, vs: scales [kvdim]). */
template <typename Cache>
__global__ void attention_kernel(const float *q, const Cache *kc, const Cache *vc, const float *ks,
                                 const float *vs, int nh, int nkv, int hd, int T, int pos, int S, __half *out)
{
    extern __shared__ float sm[]; /* [hd] scaled query, then [L] scores */
    __shared__ float red[32];
    const int h = blockIdx.x, tokidx = blockIdx.y, b = tokidx / T, t = tokidx % T;
    const int L = pos + t + 1, kvh = h / (nh / nkv), kvdim = nkv * hd;
    float *qs = sm, *sc = sm + hd;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[((size_t)tokidx * nh + h) * hd + d] * scale;
    __syncthreads();
    const Cache *kb = kc + (size_t)b * S * kvdim + (size_t)kvh * hd;
    const Cache *vb = vc + (size_t)b * S * kvdim + (size_t)kvh * hd;
    const float *ksh = ks ? ks + (size_t)kvh * hd : NULL, *vsh = vs ? vs + (size_t)kvh * hd : NULL;
    float mx = -INFINITY;
    for (int p = threadIdx.x; p < L; p += blockDim.x) {
        const Cache *kp = kb + (size_t)p * kvdim;
        float a = 0.0f;
        for (int d = 0; d < hd; d++) a = fmaf(qs[d], kv_load(kp, d, ksh, d), a);
        sc[p] = a;
        mx = fmaxf(mx, a);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int p = threadIdx.x; p < L; p += blockDim.x) {
        float e = expf(sc[p] - mx);
        sc[p] = e;
        sum += e;
    }
    sum = block_sum(sum, red); /* its barriers also publish sc[] */
    const float inv = 1.0f / sum;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float a = 0.0f;
        for (int p = 0; p < L; p++) a = fmaf(sc[p], kv_load(vb, (size_t)p * kvdim + d, vsh, d), a);
        out[((size_t)tokidx * nh + h) * hd + d] = __float2half_rn(a * inv);
    }
}

template <typename Cache>
static int attention(const float *q, const Cache *kc, const Cache *vc, const float *kv_scale, int nh,
                     int nkv, int hd, int B, int T, int pos, int S, uint16_t *out, ptqk_stream s)
{
    if (B < 1 || T < 1 || B * T > 65535 || nh < 1 || nkv < 1 || nh % nkv || hd < 1 || pos < 0 ||
        pos + T > S || S > PTQK_ATT_MAX_S)
        return (int)cudaErrorInvalidValue;
    size_t smem = (size_t)(hd + pos + T) * sizeof(float);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(attention_kernel<Cache>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return (int)e;
    }
    dim3 grid(nh, B * T);
    const float *vs = kv_scale ? kv_scale + (size_t)nkv * hd : NULL;
    attention_kernel<Cache><<<grid, ATT_THREADS, smem, (cudaStream_t)s>>>(
        q, kc, vc, kv_scale, vs, nh, nkv, hd, T, pos, S, reinterpret_cast<__half *>(out));
    return last_error();
}

extern "C" int ptqk_attention(const float *q, const uint16_t *kc, const uint16_t *vc, int nh, int nkv,
                              int hd, int B, int T, int pos, int S, uint16_t *out, ptqk_stream s)
{
    return attention(q, reinterpret_cast<const __half *>(kc), reinterpret_cast<const __half *>(vc),
                     (const float *)NULL, nh, nkv, hd, B, T, pos, S, out, s);
}

extern "C" int ptqk_attention_i8(const float *q, const int8_t *kc, const int8_t *vc, const float *kv_scale,
                                 int nh, int nkv, int hd, int B, int T, int pos, int S, uint16_t *out,
                                 ptqk_stream s)
{
    if (!kv_scale) return (int)cudaErrorInvalidValue;
    return attention(q, kc, vc, kv_scale, nh, nkv, hd, B, T, pos, S, out, s);
}
