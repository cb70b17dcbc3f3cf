/* e8p_kernels.h - libptqrt's QuIP# (E8P) linears (lib/cuda/e8p.cu): the
 * device tensors and the launchers.  Internal to libptqrt like
 * ptqrt_kernels.h (included by it); the decode arithmetic is
 * lib/qfmt/e8p_decode.h, the format lib/qfmt/qf_e8p.c.
 *
 * An E8P linear stores W' = U W V^T (U = Q_rows diag(sv), V = Q_cols
 * diag(su), Q the orthogonal plans of lib/qfmt/had.h), and
 *     y = W x = U^T (W' (V x))
 * runs as three steps on the device:
 *   1. t = V x        ptqk_had_fwd: x fp16 -> t (float for the GEMV, fp16
 *                     for the mma GEMM), FWHT over P then the dense K x K
 *                     factor, as ptq_had_fwd;
 *   2. z = W' t       ptqk_e8p_gemv (n <= PTQK_GEMV_MAX_N: codes read once,
 *                     both 256-entry tables of e8p_decode.h in shared memory,
 *                     fp32 per stage times the stage scale) or ptqk_e8p_gemm
 *                     (decode to fp16 tiles + mma.sync m16n8k16, one fp32
 *                     accumulator per stage, times its scale at the end);
 *   3. y = U^T z      ptqk_had_inv, as ptq_had_inv.
 * ptqk_linear_e8p does the three on the stream with a caller's scratch.
 *
 * Stages: W'[r][8j+i] = sum_s scale_s * book_s(code_s[r][j])[i].  A stage
 * is one kind: PTQK_E8P_STAGE (uint16 codes [rows][cols / 8], the E8P
 * book, 2 bits) or PTQK_E81B_STAGE (uint8 codes [rows][cols / 8], the 1-bit
 * E8 book of 3-bit QuIP#; its table is tab1).  Bits 2: one E8P stage; 4:
 * two E8P stages; 3: E8P + E81B. */
#ifndef PTQC_CUDA_E8P_KERNELS_H
#define PTQC_CUDA_E8P_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum { PTQK_E8P_STAGE = 0, PTQK_E81B_STAGE = 1 };
#define PTQK_E8P_MAX_STAGES 3

/* A transform plan of had.h on the device: length n = K * P. */
typedef struct ptqk_had {
    int n, K, P;
    float scale;     /* had.h's scale */
    const float *mk; /* [K][K] device (K == 1: unused) */
} ptqk_had;

typedef struct ptqk_e8p_stage {
    int kind;          /* PTQK_E8P_STAGE or PTQK_E81B_STAGE */
    float scale;       /* finite, > 0 */
    const void *codes; /* uint16 (E8P) or uint8 (E81B) [rows][cols / 8] */
} ptqk_e8p_stage;

typedef struct ptqk_e8p_w {
    int rows, cols, nstages;         /* cols % 8 == 0 */
    ptqk_e8p_stage st[PTQK_E8P_MAX_STAGES];
    const uint32_t *tab;             /* ptq_e8p_tab [256] */
    const uint32_t *tab1;            /* ptq_e81b_tab [256], or NULL without an E81B stage */
    const int8_t *su, *sv;           /* [cols], [rows] +1/-1 */
    ptqk_had hin, hout;              /* plans of cols (V) and rows (U) */
} ptqk_e8p_w;

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;

/* t[tk * n + i] = (Q (s . x_tk))_i for tk < ntok, x fp16 rows of ldx; into
 * t32 (float) or, when t32 is NULL, t16 (fp16, round to nearest).  tmp:
 * ntok * h->n floats of scratch (unused when K == 1). */
int ptqk_had_fwd(const ptqk_had *h, const int8_t *s, const uint16_t *x, int ldx, int ntok,
                 float *t32, uint16_t *t16, float *tmp, struct CUstream_st *st);
/* y[tk * ldy + i] = s_i (Q^T z_tk)_i for z float [ntok][h->n]; tmp as above. */
int ptqk_had_inv(const ptqk_had *h, const int8_t *s, const float *z, int ntok, float *y, int ldy,
                 float *tmp, struct CUstream_st *st);
/* z[tk * ldz + r] = sum_k W'[r][k] t[tk * ldt + k], tk < n <= PTQK_GEMV_MAX_N;
 * t float, ldt % 4 == 0, 16-byte aligned. */
int ptqk_e8p_gemv(const ptqk_e8p_w *w, const float *t, int ldt, float *z, int ldz, int n,
                  struct CUstream_st *st);
/* The same for any n >= 1 with t fp16 (tensor cores). */
int ptqk_e8p_gemm(const ptqk_e8p_w *w, const uint16_t *t, int ldt, float *z, int ldz, int n,
                  struct CUstream_st *st);
/* Floats of scratch ptqk_linear_e8p needs for n tokens. */
size_t ptqk_e8p_scratch_floats(const ptqk_e8p_w *w, int n);
/* y = W x for n tokens (x fp16 rows of ldx, y float rows of ldy): GEMV
 * path when n <= gemv_max_n (and <= PTQK_GEMV_MAX_N), else the GEMM path.
 * scratch: ptqk_e8p_scratch_floats(w, n) floats, 16-byte aligned. */
int ptqk_linear_e8p(const ptqk_e8p_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                    int gemv_max_n, float *scratch, struct CUstream_st *st);

#ifdef __cplusplus
}
#endif

#endif
