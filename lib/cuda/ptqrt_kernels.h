/* ptqrt_kernels.h - internal interface of libptqrt: the decode arithmetic
 * shared by the CUDA kernels and the CPU (tests, reference), the kernel
 * launchers (extern "C", one .cu file per concern) and the tensor provider
 * that ptqrt_load.c loads models through.
 *
 * Adding a weight format = one enum value in lib/qfmt/qtensor.h, its shared decode
 * functions here (PTQ_HD: __host__ __device__ under nvcc, static inline in C,
 * so tests/check_cuda_decode.c covers them on the CPU), one kernel file
 * (lib/cuda/gemv_<fmt>.cu / gemm_<fmt>.cu), its CPU reference
 * (lib/cuda/ref/<fmt>_ref.c), its GPU check (tests/gpu/<fmt>.c), a row in
 * bench/bench_kernels.cu and a case in ptqrt_forward.c's linear().
 *
 * Layouts: activations are row-major [n tokens][features]; a linear computes
 * y[t][r] = sum_k W[r][k] * x[t][k] with x fp16 ("A16") and y float32; the
 * residual stream, norms, RoPE and softmax run in float32; the KV cache is
 * fp16, or int8 codes (lib/qfmt/kvq.h) for layers with static kv_scale.  Every launcher returns a cudaError_t value as int (0 = success) and
 * launches on the given stream.
 */
#ifndef PTQC_PTQRT_KERNELS_H
#define PTQC_PTQRT_KERNELS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/half.h"
#include "lib/qfmt/pack.h"

/* ---------------------------------------------------------------------------
 * Shared decode arithmetic of the "int" format (lib/qfmt/pack.h).
 *
 * Codes become floats without an int->float conversion instruction (I2F runs
 * at a quarter of the FMA rate on sm_80/sm_90): the bits 0x4B000000 | q are
 * the float 2^23 + q exactly for q < 2^23, and subtracting 2^23 + zero gives
 * q - zero exactly (both operands are integers below 2^24).
 * ------------------------------------------------------------------------- */

/* 2^23 + zero, the per-group constant of ptqk_int_qz. */
PTQ_HD float ptqk_int_zf(uint32_t zero) { return 8388608.0f + (float)zero; }

/* q - zero as float, exactly (q, zero < 2^23). */
PTQ_HD float ptqk_int_qz(uint32_t q, float zf) { return ptq_bits_to_f32(q | 0x4B000000u) - zf; }

/* One dequantized weight; equals ptq_dequant(scale_f16, zero, q) bit for bit
 * when scale = ptq_f16_to_f32(scale_f16) and zf = ptqk_int_zf(zero). */
PTQ_HD float ptqk_int_weight(uint32_t q, float scale, float zf) { return scale * ptqk_int_qz(q, zf); }

/* The GEMV inner step: sum_j (q_j - zero) * x[j] over the 32 columns of one
 * packed block (words = its `bits` uint32 words), accumulated in this order
 * with fused multiply-adds starting from 0.  The caller multiplies by the
 * group's scale.  With bits a compile-time constant the loop unrolls into
 * shifts and masks. */
PTQ_HD float ptqk_int_block_dot(const uint32_t *words, int bits, float zf, const float *x)
{
    float acc = 0.0f;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (int j = 0; j < PTQ_PACK_BLOCK; j++)
        acc = fmaf(ptqk_int_qz(ptq_pack_get(words, j, bits), zf), x[j], acc);
    return acc;
}

/* Group of input column k (g_idx NULL: k / group, or 0 when group == 0). */
PTQ_HD int ptqk_int_group(const int32_t *g_idx, int group, int k)
{
    return g_idx ? g_idx[k] : (group ? k / group : 0);
}

/* A block of 32 columns lies in one group and can use one scale/zero when
 * there is no g_idx and the group is a multiple of 32 (or the whole row). */
PTQ_HD int ptqk_int_block_uniform(const int32_t *g_idx, int group)
{
    return !g_idx && group % PTQ_PACK_BLOCK == 0;
}

/* ---------------------------------------------------------------------------
 * Device-side tensors
 * ------------------------------------------------------------------------- */

/* A packed integer linear on the device (lib/qfmt/pack.h layout). */
typedef struct ptqk_int_w {
    int rows, cols, bits, group, ngroups;
    const uint32_t *qweight; /* [rows][kblocks * bits] */
    const uint16_t *scales;  /* fp16 [rows][ngroups] */
    const uint8_t *zeros;    /* [rows][ngroups] */
    const int32_t *g_idx;    /* [cols] or NULL */
} ptqk_int_w;

/* An fp16 linear on the device, [rows][cols] row-major. */
typedef struct ptqk_f16_w {
    int rows, cols;
    const uint16_t *w;
} ptqk_f16_w;

/* An AQLM linear on the device (lib/qfmt/qf_aqlm.c layout, decode arithmetic
 * lib/qfmt/aqlm_decode.h): m codebooks of 2^b fp16 codewords of 8. */
typedef struct ptqk_aqlm_w {
    int rows, cols, m, b;
    const void *codes;         /* [rows][cols / 8][m]: uint8 (b <= 8) or uint16 */
    const uint16_t *codebooks; /* fp16 [m][2^b][8] */
    const uint16_t *scales;    /* fp16 [rows] */
} ptqk_aqlm_w;

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *ptqk_stream; /* = cudaStream_t */

/* Largest token count the GEMV kernel takes; the GEMM takes any n. */
#define PTQK_GEMV_MAX_N 8

/* lib/cuda/gemv_int.cu: y[t * ldy + r] = sum_k W[r][k] x[t * ldx + k] for t < n
 * (n <= PTQK_GEMV_MAX_N).  x fp16, y float32.  Bits 2, 3, 4 and 8 (the
 * formats the compiler emits); other widths return cudaErrorNotSupported and
 * ptqk_linear_int sends them to the GEMM, which takes every width 2..8. */
int ptqk_gemv_int(const ptqk_int_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                  ptqk_stream s);
/* lib/cuda/gemm_int.cu: the same for any n >= 1, dequantizing to fp16 tiles in
 * shared memory and multiplying with mma.sync m16n8k16 (fp32 accumulate). */
int ptqk_gemm_int(const ptqk_int_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                  ptqk_stream s);
/* GEMV when n <= gemv_max_n, else GEMM. */
int ptqk_linear_int(const ptqk_int_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                    int gemv_max_n, ptqk_stream s);
/* lib/cuda/aqlm.cu: the AQLM linear.  GEMV for n <= PTQK_GEMV_MAX_N: y[t *
 * ldy + r] = scale[r] * sum_g dot(x_t[8g..8g+7], y_g) with y_g the unscaled
 * codeword sum of aqlm_decode.h, fp32 accumulate; b <= 8 with the codebooks
 * in shared memory (m <= 8), b > 8 (1x16: 1 MiB of codebooks) reading the
 * fp16 codewords through the read-only cache from L2. */
int ptqk_gemv_aqlm(const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                   ptqk_stream s);
/* The same for any n >= 1 (prefill): tiles of the weights decoded to fp16
 * in shared memory (the bits ptqk_decode_aqlm stores) and multiplied with
 * mma.sync m16n8k16, fp32 accumulate.  cudaErrorNotSupported when the
 * codebooks (b <= 8) do not fit in the device's shared memory. */
int ptqk_gemm_aqlm(const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                   ptqk_stream s);
/* w16 [rows][cols] = fp16 of the decoded weights (aqlm_decode.h, then round
 * to nearest even). */
int ptqk_decode_aqlm(const ptqk_aqlm_w *w, uint16_t *w16, ptqk_stream s);
/* The unfused prefill: decode into scratch (rows * cols fp16, 16-byte
 * aligned) and multiply with cuBLAS (ptqk_linear_f16). */
int ptqk_decode_gemm_aqlm(void *cublas, const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y,
                          int ldy, int n, uint16_t *scratch, ptqk_stream s);
/* GEMV when n <= gemv_max_n, else ptqk_gemm_aqlm; where that returns
 * cudaErrorNotSupported and scratch is given, ptqk_decode_gemm_aqlm. */
int ptqk_linear_aqlm(void *cublas, const ptqk_aqlm_w *w, const uint16_t *x, int ldx, float *y,
                     int ldy, int n, int gemv_max_n, uint16_t *scratch, ptqk_stream s);
/* x[t][:] = row tok[t] of an AQLM table (the decode of aqlm_decode.h). */
int ptqk_embed_aqlm(const ptqk_aqlm_w *table, const int32_t *tok, int n, float *x, ptqk_stream s);

/* lib/cuda/dense.cu: fp16 linear through cuBLAS (fp32 accumulate and output).
 * handle is a cublasHandle_t already bound to the stream. */
int ptqk_linear_f16(void *cublas, const ptqk_f16_w *w, const uint16_t *x, int ldx, float *y,
                    int ldy, int n);
/* lib/cuda/layers.cu */
/* x[t][:] = row tok[t] of an fp16 table [vocab][dim] (as float32). */
int ptqk_embed_f16(const uint16_t *table, int dim, const int32_t *tok, int n, float *x,
                   ptqk_stream s);
/* The same from a packed int table (dequantized with ptq_dequant). */
int ptqk_embed_int(const ptqk_int_w *table, const int32_t *tok, int n, float *x, ptqk_stream s);
/* out[t][i] = fp16(x[t][i] / sqrt(mean_i x[t]^2 + eps) * w[i]), float math. */
int ptqk_rmsnorm(const float *x, const float *w, int dim, float eps, int n, uint16_t *out,
                 ptqk_stream s);
/* y[t][i] += b[i]  (bias of q/k/v) */
int ptqk_add_bias(float *y, const float *b, int dim, int n, ptqk_stream s);
/* x[i] += y[i] over count elements */
int ptqk_residual(float *x, const float *y, size_t count, ptqk_stream s);
/* RoPE (HF rotate_half) on x [B*T][nheads*hd] in place; token b*T + t is at
 * position pos + t; inv_freq [hd/2] already holds the scaled frequencies. */
int ptqk_rope(float *x, int nheads, int hd, const float *inv_freq, int B, int T, int pos,
              ptqk_stream s);
/* Store k, v [B*T][kvdim] (float) as fp16 at positions pos..pos+T-1 of the
 * caches kc, vc [Bmax][S][kvdim] (rows for sequence b start at b*S*kvdim). */
int ptqk_kv_store(const float *k, const float *v, int kvdim, int B, int T, int pos, int S,
                  uint16_t *kc, uint16_t *vc, ptqk_stream s);
/* Causal attention for q [B*T][nh*hd] (float) against the caches (positions
 * 0..pos+t for token t), grouped-query (head h reads kv head h / (nh/nkv));
 * out fp16 [B*T][nh*hd].  Needs S <= PTQK_ATT_MAX_S. */
#define PTQK_ATT_MAX_S 8192
int ptqk_attention(const float *q, const uint16_t *kc, const uint16_t *vc, int nh, int nkv,
                   int hd, int B, int T, int pos, int S, uint16_t *out, ptqk_stream s);
/* The int8 KV cache: kv_scale [2][kvdim] (keys then values, one scale per kv
 * head and channel); the store writes ptq_kv_code (lib/qfmt/kvq.h) of k and v,
 * the attention reads ptq_kv_value (code * scale, float32). */
int ptqk_kv_store_i8(const float *k, const float *v, const float *kv_scale, int kvdim, int B, int T,
                     int pos, int S, int8_t *kc, int8_t *vc, ptqk_stream s);
int ptqk_attention_i8(const float *q, const int8_t *kc, const int8_t *vc, const float *kv_scale,
                      int nh, int nkv, int hd, int B, int T, int pos, int S, uint16_t *out,
                      ptqk_stream s);
/* out[i] = fp16(silu(g[i]) * u[i]) over count elements */
int ptqk_swiglu(const float *g, const float *u, size_t count, uint16_t *out, ptqk_stream s);
/* dst[i][:] = src[idx[i]][:] for i < n, rows of dim floats */
int ptqk_gather_rows(const float *src, int dim, const int32_t *idx, int n, float *dst,
                     ptqk_stream s);
/* lib/cuda/ptqrt_load.c: load a model from any tensor source (the bundle is
 * one; tests feed checkpoint tensors, `ptqc bench --synthetic` random ones).  get fills q with the tensor of that HF name
 * (model.layers.0.self_attn.q_proj.weight ...); the loader calls
 * ptq_qtensor_free on it after uploading.  With q NULL, get answers whether
 * the source has an optional tensor (model.layers.L.self_attn.kv_scale): 1
 * or 0, never an error. */
struct ptq_config;
struct ptq_qtensor;
struct ptqrt_options;
struct ptqrt_model;
struct ptq_err;
typedef int (*ptqrt_tensor_fn)(void *ctx, const char *name, struct ptq_qtensor *q, struct ptq_err *e);
int ptqrt_open_tensors(struct ptqrt_model **m, const struct ptq_config *c, ptqrt_tensor_fn get,
                       void *ctx, const struct ptqrt_options *o, struct ptq_err *e);

#ifdef __cplusplus
}
#endif

#endif
