/* compile_awq.h - the AWQ step of one decoder layer in ptqc compile (the
 * driver side of lib/quant/awq.h): capture the inputs, search the scales of the
 * four groups judged by their blocks, fold them, search the clips.
 *
 * Order (as the reference, mit-han-lab/llm-awq): every scale is searched on
 * the layer's float weights before anything of the layer is quantized, so
 * that o's scales can still be folded into v_proj and down's into up_proj;
 * groups in order q/k/v, o, gate/up, down, each on the inputs produced by
 * the layer with the earlier groups' scales folded in (exact, so the same
 * inputs up to rounding).  Then the clipping search of every AWQ linear but
 * q_proj and k_proj (the reference leaves those two unclipped: their error
 * goes through the softmax), on the inputs of the folded layer.  The caller
 * then quantizes the scaled weights clamped to the clips (RTN for awq,
 * GPTQ for awq+gptq) in its usual sequential passes.
 *
 * awq+gptq: the candidates of the scale search are rounded with GPTQ on the
 * Hessian of the search tokens (scaled as the inputs are), so each group's
 * ratio is chosen for the rounding that will be used and ratio 0 (no
 * scaling) is plain GPTQ.  The group's AWQ result (the RTN search, then the
 * clip search of its linears but q/k on the search tokens divided by the
 * scales) is judged on the same objective; the lower of the two is kept:
 * GPTQ-rounded linears are not clipped (clamping before GPTQ would throw
 * away the clamped part instead of letting GPTQ's updates compensate it),
 * AWQ-chosen ones are rounded to nearest from the clamped weights.  On the
 * block objective of the search tokens awq+gptq is never worse than GPTQ
 * or AWQ.
 *
 * Objectives:
 *   q/k/v    the attention block's output o_proj(attention(q, k, v)) with
 *            o_proj unquantized (the forward's attention parts alone,
 *            lib/model/model.h; the residual cancels in the difference);
 *   o_proj   its own output, through the Gram matrix of its inputs;
 *   gate/up  the MLP's output down(silu(gate) * up), down unquantized;
 *   down     its own output, through the Gram matrix of its inputs.
 * Folding: q/k/v into input_layernorm, gate/up into post_attention_layernorm,
 * down into up_proj's rows (silu(gate) * up is linear in up), o into
 * v_proj's rows (and bias).  With grouped-query attention the o scales are
 * computed from activation magnitudes averaged over the query heads of each
 * kv head, so they are equal within a group and fold into the one value
 * channel those heads read (the reference skips o when the shapes differ).
 * A group is not scaled (but still clipped) when a linear the folding would
 * change is kept dense (--skip / a recipe): a dense tensor is written from
 * the checkpoint as it is.
 */
#ifndef PTQC_COMPILE_AWQ_H
#define PTQC_COMPILE_AWQ_H

#include <cJSON.h>
#include <stdint.h>

#include "lib/quant/awq.h"
#include "lib/model/model.h"

/* Tokens of the searches (--awq-search-tokens): the first samples up to
 * this many tokens (at least one sample).  The calibration samples are
 * drawn by --seed (calib/samples.h), so these are a seeded subset of them.
 * The references judge every candidate on all their calibration tokens
 * (about 64 x 512).  Each candidate costs a block forward over these
 * tokens, which made AWQ 4x GPTQ's compile time; on SmolLM2 at 32 x 512
 * calibration tokens, 4096 of them gave the same held-out quality as all
 * 16384 (KL 0.194 against 0.200, ppl 36.9 against 36.5) at 1.56x GPTQ's
 * time instead of 4.0x; 2048 of 4096 cost 4 % KL (bench/RESULTS-awq.md). */
#define PTQ_AWQ_TOKENS 4096

/* The most workers of the AWQ step (the engine's PTQ_MAX_WORKERS). */
#define AWQ_MAX_WORKERS 64

typedef struct awq_layer_ctx {
    const ptq_config *cfg;
    int nworkers;              /* candidates and chunks run on this many workers */
    ptq_fwd *const *fwds;      /* [nworkers] forward scratch for chunk * T tokens */
    float *const *x32s;        /* [nworkers] [chunk * T, D] scratch */
    const uint16_t *hidden;    /* FP16 inputs of the layer [nsamp * T, D] */
    int nsamp, T, chunk;
    int n_grid;
    int refine;                /* ptq_awq_search: 0 every ratio, 1 coarse to fine */
    const ptq_gptq_opts *q[PTQ_NLINEAR]; /* grid of linear i; NULL: kept dense */
    int awq[PTQ_NLINEAR];      /* linear i is 0: not AWQ, 1: awq, 2: awq+gptq */
} awq_layer_ctx;

typedef struct awq_layer_res {
    float *clip[PTQ_NLINEAR];  /* [rows * ngroups] clip of each group, or NULL */
    float *scale[4];           /* [cols] scales folded for group g, or NULL */
    float ratio[4];
    double loss[4], loss_rtn[4];
    /* awq+gptq: loss_gptq the best GPTQ-rounded candidate, loss_awq the AWQ
     * result (RTN search, clips); choice 1 gptq, 2 awq (0: not awq+gptq);
     * rtn[i]: awq+gptq linear i follows AWQ (round to nearest, clipped) */
    double loss_gptq[4], loss_awq[4];
    int choice[4];
    int rtn[PTQ_NLINEAR];
    double seconds, blas_seconds;
} awq_layer_res;

/* Run the AWQ step on lw (modified in place: folded norms, weights, v
 * bias).  res is zeroed first; free it with awq_layer_res_free. */
int awq_layer(const awq_layer_ctx *c, ptq_layer_w *lw, awq_layer_res *res, ptq_err *e);
void awq_layer_res_free(awq_layer_res *res);

/* {"ratio", "loss", "loss_rtn"} or {"scaled": false} of group g's linears. */
void awq_report(const awq_layer_res *res, int which, cJSON *entry);

#endif
