/* ldlq.h - BlockLDLQ of QuIP# (Tseng et al. 2024, section 3 / algorithm 2;
 * QuIP's LDLQ, Chee et al. 2023, with blocks): adaptive rounding of one
 * linear, b columns at a time, with error feedback from the block LDL form
 * of the Hessian.
 *
 * W is [rows][cols] row-major, H the [cols][cols] Hessian proxy.  Damping as
 * the paper (quip-sharp regularize_H: H / mean(diag) + sigma_reg I, sigma_reg
 * 0.01) and as GPTQ here: H + damp * mean(diag H) I, the same matrix up to a
 * scale, which LDLQ's feedback does not see.  Columns with H_ii = 0 are dead
 * (weights zeroed, H_ii set to 1, before the mean) as ptq_gptq does.
 *
 * Block LDL: H = M D M^T with M unit block-upper-triangular (blocks b x b)
 * and D block diagonal, obtained from the upper factor R of H = R R^T (the
 * Cholesky factor of the reversed H) as M = R diag(R_kk)^-1.  Column block
 * k is rounded as
 *   What_k = round(W_k + (W - What)_{<k} A_{<k,k}),   A = M - I,
 * which makes the proxy loss tr((W - What) H (W - What)^T) the sum over
 * blocks of the D_k-weighted rounding errors (the paper's LDLQ works in the
 * reverse column order with the lower factor; the same algorithm mirrored).
 * With H = c I, A = 0 and BlockLDLQ is plain rounding; with b = 1 and a
 * scalar grid it is GPTQ (QuIP, theorem 6).  The fast path sums the
 * feedback in lazy batches of 128 columns (one product per batch for the
 * columns before it, an 8-wide one inside it), as GPTQ does; the reference
 * sums each block's feedback in one loop, in float64.
 *
 * The factorization is tried in float32 and, when it fails (not positive
 * definite in float, or non-finite), repeated in float64 (quip-sharp's
 * use_fp64 retry); when that fails too: PTQ_EDATA.  Memory besides W, H
 * and What: a float64 copy of H, one float [cols][cols] for the factor and
 * A (a float64 one more only for the retry), and E [rows][cols]. */
#ifndef PTQC_LDLQ_H
#define PTQC_LDLQ_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/qfmt/e8p.h"
#include "lib/quant/quant.h"

/* A rounder: v[rows][width] (width = the block) to q[rows][width] for the
 * columns col0 .. col0 + width - 1, recording its codes in ctx; it may use
 * up to `threads` workers (lib/base/par.h) over rows and must give the same
 * result for any count. */
typedef struct ptq_ldlq_rounder {
    void *ctx;
    int (*round)(void *ctx, int col0, int width, int rows, const float *v, float *q,
                 int threads, ptq_err *e);
} ptq_ldlq_rounder;

typedef struct ptq_ldlq_opts {
    int block;  /* b: 8 for E8P, 1 for GPTQ's LDLQ; must divide cols */
    float damp; /* 0.01 */
    int threads; /* rounder workers; <= 0: as many as OpenBLAS was set to use.
                    OpenBLAS runs single-threaded for the call (restored
                    after), so the result is bit-identical for any count. */
    int no_loss; /* 1: leave rep->loss 0 (a rows x cols x cols float64 product) */
} ptq_ldlq_opts;

typedef struct ptq_ldlq_report {
    int f64;          /* 1 when the float32 factorization failed */
    int dead_columns;
    double loss;      /* tr((W - What) H (W - What)^T), H undamped (dead fixed) */
} ptq_ldlq_report;

/* What[rows][cols] gets the rounded weights.  H is not modified.  Errors:
 * PTQ_EUSAGE (block does not divide cols, damp out of range), PTQ_EDATA
 * (NaN/Inf in W or H, negative diagonal, factorization failed in float64),
 * PTQ_ENOMEM, or the rounder's. */
int ptq_ldlq(const float *W, const float *H, int rows, int cols, const ptq_ldlq_opts *o,
             const ptq_ldlq_rounder *r, float *What, ptq_ldlq_report *rep, ptq_err *e);

/* The plain-loop float64 reference of the same algorithm (no BLAS, the
 * factorization in float64 always), for tests. */
int ptq_ldlq_reference(const float *W, const float *H, int rows, int cols,
                       const ptq_ldlq_opts *o, const ptq_ldlq_rounder *r, float *What,
                       ptq_ldlq_report *rep, ptq_err *e);

/* Scalar-grid rounder: one ptq_quant_grid per row on the given W (GPTQ's
 * group 0 grids, fixed in advance); codes[rows][cols]. */
typedef struct ptq_ldlq_scalar {
    int rows, cols;
    ptq_qgrid *grid;
    uint8_t *codes;
} ptq_ldlq_scalar;
int ptq_ldlq_scalar_init(ptq_ldlq_scalar *s, const float *W, int rows, int cols,
                         const ptq_quant_opts *q, ptq_err *e);
void ptq_ldlq_scalar_free(ptq_ldlq_scalar *s);
ptq_ldlq_rounder ptq_ldlq_scalar_rounder(ptq_ldlq_scalar *s);

/* E8P rounder (block 8): q = scale * decode(nearest(v / scale));
 * codes[rows][cols / 8].  With a residual stage (ptq_ldlq_e8p_init_rvq,
 * QuIP#'s 4-bit residual vector quantization): c1 = nearest(v / scale),
 * c2 = nearest((v - scale d1) / rscale), q = scale d1 + rscale d2 (in that
 * order, as lib/qfmt/qf_e8p.c decodes); codes[2][rows][cols / 8]. */
typedef struct ptq_ldlq_e8p {
    const ptq_e8p_book *book;
    float scale;
    int rows, cols;
    uint16_t *codes;
    int stages;   /* 1, or 2 with the residual stage */
    float rscale; /* the residual stage's scale */
    int e81b;     /* 1: the residual stage is the 1-bit E8 codebook (3 bits;
                     codes = uint16 [rows][cols / 8] then uint8 [rows][cols / 8]) */
} ptq_ldlq_e8p;
int ptq_ldlq_e8p_init(ptq_ldlq_e8p *s, const ptq_e8p_book *book, float scale, int rows,
                      int cols, ptq_err *e);
int ptq_ldlq_e8p_init_rvq(ptq_ldlq_e8p *s, const ptq_e8p_book *book, float scale,
                          float rscale, int rows, int cols, ptq_err *e);
/* 3 bits: E8P, then the residual on the 1-bit E8 codebook (e8p.h),
 * c2 = ptq_e81b_nearest((v - scale d1) / rscale). */
int ptq_ldlq_e8p_init_3b(ptq_ldlq_e8p *s, const ptq_e8p_book *book, float scale, float rscale,
                         int rows, int cols, ptq_err *e);
void ptq_ldlq_e8p_free(ptq_ldlq_e8p *s);
ptq_ldlq_rounder ptq_ldlq_e8p_rounder(ptq_ldlq_e8p *s);

#endif
