/* awq.h - AWQ, activation-aware weight quantization (Lin et al. 2023), the
 * numerics: scale search, folding, clipping search.  No file I/O; the driver
 * (lib/compile/awq_step.c) captures the activations and wires the blocks.
 *
 * Facts from the paper and its reference code (mit-han-lab/llm-awq), the
 * code is ours:
 *   x_mean_j = mean over the calibration tokens of |x_j| (per input channel)
 *   for ratio a in {0, 1/n, ..., (n-1)/n} (n = n_grid, default 20):
 *     s = max(x_mean^a, 1e-4);  s /= sqrt(max(s) * min(s))
 *     every linear W of the group: W' = Q(W diag(s)) diag(1/s)
 *     loss(a) = output error of the block the linears belong to with W'
 *   keep the a of the smallest loss (the first on ties; a = 0 is s = 1,
 *   plain round-to-nearest, so the search never loses to it on its
 *   objective).  The scales are then folded into the op before the linears
 *   (x -> x diag(1/s), W -> W diag(s)): exact in real arithmetic.
 * Clipping (auto_clip): per output row and group, max |w| shrunk by
 * p = 1 - i/n_grid for i < max_shrink * n_grid (20, 0.5), the weights
 * clamped to [-p max|w|, p max|w|] and quantized; keep the p whose output
 * error sum over tokens of (x_g (Q(w_g) - w_g))^2 is smallest, on a
 * subsample of PTQ_AWQ_CLIP_TOKENS tokens (every step-th, step =
 * max(1, ntok / 512)).
 *
 * Q is the integer grid of lib/quant/quant.h (the one the bundle stores: fp16
 * scales, GPTQ's asymmetric range that includes 0), not the reference's own
 * min/max grid, so the search judges exactly what will be deployed.
 */
#ifndef PTQC_AWQ_H
#define PTQC_AWQ_H

#include "lib/base/err.h"
#include "lib/quant/gptq.h"

#define PTQ_AWQ_GRID 20          /* n_grid of the scale and clip searches */
#define PTQ_AWQ_COARSE 4         /* refine: the first pass judges every 4th ratio */
#define PTQ_AWQ_MAX_SHRINK 0.5f  /* clip search: shrink max |w| down to half */
#define PTQ_AWQ_CLIP_TOKENS 512  /* clip search: tokens subsampled */

/* One linear of a group reading the same input: W [rows, cols]; q its grid
 * (bits, sym, group; q.mse must be 0), or NULL to keep it unquantized in
 * the search (W' = W).  H: NULL to round to nearest (awq), or the Hessian
 * [cols, cols] (full, symmetric) of the unscaled inputs to round with GPTQ
 * (awq+gptq): W' = GPTQ(W diag(s), diag(1/s) H diag(1/s)) diag(1/s), so the
 * search judges the rounding that will be used and ratio 0 is plain GPTQ. */
typedef struct ptq_awq_lin {
    const float *W;
    int rows;
    const ptq_gptq_opts *q;
    const float *H;
} ptq_awq_lin;

/* The block objective of a candidate, part by part: Wq[i] [rows_i, cols]
 * are the candidate weights Q(W_i diag(s)) diag(1/s) of the group's
 * linears; *loss gets the loss of part `part` (of the search's nparts, e.g.
 * one chunk of calibration samples); the candidate's loss is the sum of its
 * parts in part order.  worker in [0, nworkers): the part is judged on that
 * worker's scratch; calls with different workers run at the same time. */
typedef int (*ptq_awq_loss_fn)(void *ctx, int worker, float *const *Wq, int part, double *loss,
                               ptq_err *e);

typedef struct ptq_awq_result {
    float ratio;        /* the chosen exponent */
    double loss;        /* its loss */
    double loss_rtn;    /* the loss of ratio 0 (s = 1: round-to-nearest) */
    int evaluated;      /* candidates judged */
} ptq_awq_result;

/* Time spent by a search, and of it in sgemm calls (seconds). */
typedef struct ptq_awq_timing {
    double total, blas;
} ptq_awq_timing;

/* s [cols] for one ratio: max(x_mean^ratio, 1e-4) / sqrt(max * min). */
void ptq_awq_scales(const float *xmean, int cols, float ratio, float *s);

/* out [rows, cols] = Q(clamp(W diag(s))) diag(1/s): s may be NULL (ones);
 * clip [rows * ngroups] clamps each group of W diag(s) to [-clip, clip]
 * first (NULL: none).  PTQ_EDATA when a group's range does not fit an fp16
 * scale or W is not finite; PTQ_EUSAGE for q->q.mse or a negative group.
 * ceil(cols / group) groups a row, the last one shorter when the group does
 * not divide cols (lib/qfmt/pack.h). */
int ptq_awq_fake_quant(const float *W, int rows, int cols, const float *s, const float *clip,
                       const ptq_gptq_opts *q, float *out, ptq_err *e);

/* The scale search over the ratios i / n_grid, i < n_grid, for the nw
 * linears of lins (one input of cols channels, statistics xmean [cols]
 * finite and >= 0).  refine 0 judges every ratio (llm-awq's search);
 * refine 1 every PTQ_AWQ_COARSE-th, then the ratios at half the step on
 * each side of the best so far until the step is 1 (9 of 20: the same
 * choice as the full scan whenever the loss decreases then increases along
 * the grid, and always a ratio no worse than both its neighbours); grids
 * under 2 * PTQ_AWQ_COARSE are scanned in full.  The ratios run
 * on nworkers workers (lib/base/par.h; BLAS must be single-threaded) in
 * batches of up to nworkers: each candidate of a batch is quantized by one
 * worker, then the batch's (candidate, part) pairs of fn run on all the
 * workers (a batch of fewer candidates than workers, e.g. the refine
 * steps', keeps every worker busy); each candidate's parts are summed in
 * part order and the losses compared in ratio order, so the result is the
 * same for any nworkers.  Wq[j * nw + i] are caller buffers [rows_i, cols],
 * candidate j of a batch, handed to fn.  s_best [cols] gets the chosen
 * scales.  Fails with the error of the lowest ratio whose quantization
 * failed, else of fn's first failing (candidate, part); PTQ_EDATA for bad
 * xmean or a loss that is not finite. */
int ptq_awq_search(const float *xmean, int cols, const ptq_awq_lin *lins, int nw, int n_grid,
                   int refine, int nworkers, ptq_awq_loss_fn fn, void *ctx, int nparts,
                   float *const *Wq, float *s_best, ptq_awq_result *res, ptq_err *e);

/* One candidate judged, its parts on nworkers workers: *loss = the sum of
 * fn's nparts parts in part order (what ptq_awq_search computes). */
int ptq_awq_loss(ptq_awq_loss_fn fn, void *ctx, int nparts, int nworkers, float *const *Wq,
                 double *loss, ptq_err *e);

/* The search for one linear judged by its own output error over the
 * tokens whose Gram matrix is H [cols, cols] (H = sum x x^T up to a
 * factor, full): loss = sum over rows of (W' - W) H (W' - W)^T, the
 * measure of the compile report (ptq_quad_err, lib/quant/err_metric.h).
 * gptq: round with GPTQ on H (as ptq_awq_lin.H).
 * timing may be NULL.  _mt: the ratios on nworkers workers (as
 * ptq_awq_search: the same result for any count; timing.blas sums the
 * workers' sgemm time). */
int ptq_awq_search_linear(const float *W, int rows, int cols, const float *H,
                          const float *xmean, const ptq_gptq_opts *q, int gptq, int n_grid,
                          int refine, float *s_best, ptq_awq_result *res, ptq_awq_timing *timing,
                          ptq_err *e);
int ptq_awq_search_linear_mt(const float *W, int rows, int cols, const float *H,
                             const float *xmean, const ptq_gptq_opts *q, int gptq, int n_grid,
                             int refine, int nworkers, float *s_best, ptq_awq_result *res,
                             ptq_awq_timing *timing, ptq_err *e);


/* The clipping search for W [rows, cols] (already scaled) with input
 * X [ntok, cols] (already divided by the scales): maxval [rows * ngroups]
 * gets the chosen clip of each group, n_grid and max_shrink as above.
 * timing may be NULL.  Per group, each shrink is one fake quantization of
 * the group's columns of every row and one sgemm [rows, L] x [L, ntok'];
 * _mt runs the shrinks of a group on nworkers workers and compares their
 * errors in shrink order: the same result for any count. */
int ptq_awq_clip_search(const float *W, int rows, int cols, const ptq_gptq_opts *q,
                        const float *X, int ntok, int n_grid, float max_shrink, float *maxval,
                        ptq_awq_timing *timing, ptq_err *e);
int ptq_awq_clip_search_mt(const float *W, int rows, int cols, const ptq_gptq_opts *q,
                           const float *X, int ntok, int n_grid, float max_shrink, int nworkers,
                           float *maxval, ptq_awq_timing *timing, ptq_err *e);
/* Clamp each group of W to [-maxval, maxval] in place. */
void ptq_awq_clip_apply(float *W, int rows, int cols, int group, const float *maxval);

/* Folding.  cols: W [rows, cols] column j *= s_j (the linears after the op). */
void ptq_awq_scale_cols(float *W, int rows, int cols, const float *s);
/* The op before: a norm weight [n] (or any vector) /= s. */
void ptq_awq_div_vec(float *v, int n, const float *s);
/* The linear before: row r of W [rows, cols] (and bias[r] when bias) /= s_r. */
void ptq_awq_div_rows(float *W, float *bias, int rows, int cols, const float *s);

/* Grouped-query attention (v -> o folding).  o_proj's input channel
 * h*hd + i reads value channel (h / (n_heads / n_kv)) * hd + i, so a scale
 * folded into v is shared by the n_heads / n_kv query heads of a kv head.
 * ptq_awq_gqa_mean: xq [n_heads*hd] -> out [n_heads*hd], each channel the mean
 * over the query heads of its kv head (scales computed from it are equal
 * across the group); ptq_awq_gqa_v: s [n_heads*hd] -> sv [n_kv*hd], the
 * scale of each value channel. */
void ptq_awq_gqa_mean(const float *xq, int n_heads, int n_kv, int hd, float *out);
void ptq_awq_gqa_v(const float *s, int n_heads, int n_kv, int hd, float *sv);

/* The MLP block of a Llama layer on normed input X [n, D]:
 * out [n, D] = down(silu(X Wg^T) * (X Wu^T)), Wg/Wu [inter, D], Wd [D, inter];
 * hb, hb2 [n, inter] scratch.  silu(g) = g / (1 + exp(-g)) as lib/model/forward.c. */
void ptq_awq_mlp(const float *X, int n, int D, int inter, const float *Wg, const float *Wu,
                 const float *Wd, float *hb, float *hb2, float *out);

#endif
