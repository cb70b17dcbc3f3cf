/* pass.c - the stages of one decoder layer over every calibration sample,
 * chunks of samples on the workers (lib/base/par.h), and the embedding of
 * the samples (lib/compile/engine.h).
 *
 * Reproducibility: OpenBLAS's multithreaded sgemm/ssyrk round differently
 * with different thread counts, so BLAS runs single-threaded and --threads
 * runs chunks of calibration samples on that many workers; captures are
 * reduced in chunk order, so every number is the same for any --threads.
 */
#include <string.h>

#include "lib/base/clock.h"
#include "lib/base/half_rows.h"
#include "lib/base/par.h"
#include "lib/compile/engine.h"
#include "lib/model/forward_ops.h"
#include "lib/quant/hessian.h"

/* One chunk of samples through stage g of the layer on one worker. */
typedef struct job {
    cstate *s;
    const ptq_layer_w *lw;
    int w, g, b0, B;
    int rc;
    ptq_err e;
} job;

static void run_job(void *arg)
{
    job *j = arg;
    cstate *s = j->s;
    const int D = s->cfg->hidden, T = s->seqlen, n = j->B * T;
    const size_t nd = (size_t)n * D;
    ptq_fwd *f = s->fwds[j->w];
    const ptq_layer_w *lw = j->lw;
    float *x = s->x32s[j->w], *c = s->caps[j->w];
    uint16_t *hid = s->hidden + (size_t)j->b0 * T * D;
    float *st = s->stage + (size_t)j->b0 * T * s->stage_w; /* this chunk's stage rows */
    ptq_capture cap;
    memset(&cap, 0, sizeof cap);
    j->rc = PTQ_OK;
    if (j->g <= 2) ptq_f16_to_f32_n(hid, x, nd, 1);
    if (j->g == 0) ptq_rmsnorm(c, x, lw->attn_norm, n, D, s->cfg->rms_eps);
    if (j->g == 1) {
        cap.o_in = st;
        if (s->kvmax) { /* int8 KV calibration: keys and values of the quantized q/k/v */
            cap.k_rot = s->kvcaps[j->w];
            cap.v_out = s->kvcaps[j->w] + (size_t)n * kv_dim(s);
        }
        j->rc = ptq_fwd_attn(f, lw, x, j->B, T, &cap, &j->e);
    }
    if (j->g == 2) {
        j->rc = ptq_fwd_attn_out(f, lw, x, st, n, &j->e);
        if (!j->rc) {
            memcpy(st, x, nd * sizeof *x); /* h replaces the attention output */
            ptq_rmsnorm(c, x, lw->mlp_norm, n, D, s->cfg->rms_eps);
        }
    }
    if (j->g == 3) {
        cap.down_in = c;
        j->rc = ptq_fwd_mlp(f, lw, st, n, &cap, 0, &j->e);
    }
    if (j->g == 4) {
        memcpy(x, st, nd * sizeof *x);
        j->rc = ptq_fwd_mlp(f, lw, x, n, NULL, 1, &j->e);
        if (!j->rc) ptq_f32_to_f16_n(x, hid, nd, 1);
    }
}

/* Stage g of layer l (weights lw) over every sample, chunks of samples on
 * the workers; with hess, the Hessian of group g's input into s->H and its
 * max |x| into s->amax (g < 4); the KV statistics on stage 1 (int8 KV).
 * The stages are the parts of the layer's forward (lib/model/model.h), each
 * run once, on the weights quantized so far, with what lies between them
 * kept for every token in s->stage (float32):
 *   0  rmsnorm(x): the input of q/k/v
 *   1  attention(q/k/v(rmsnorm(x))) into s->stage: the input of o
 *   2  h = x + o(stage) into s->stage; rmsnorm(h): the input of gate/up
 *   3  silu(gate(rmsnorm(h))) * up(...): the input of down
 *   4  h + down(...) into the hidden states: the next layer's input
 * so the layer costs one forward plus gate/up once more, and each group's
 * input is the one the layer produces with the earlier groups quantized
 * (quantized activations propagate, as in GPTQ's sequential order).  With
 * --hessians layer (engine.c) stages 0-3 run first on the unquantized layer
 * for the four Hessians, then 1, 2 and 4 on the quantized one for the
 * output.  The numbers are those of the whole-layer forward on the same
 * chunks.  A chunk
 * is the unit of work: one single-threaded BLAS forward on a worker, its
 * capture added to the Hessian in chunk order, so the result does not depend
 * on the number of workers. */
int layer_pass(cstate *s, const ptq_layer_w *lw, int g, int hess, ptq_err *e)
{
    const int T = s->seqlen;
    int rows, cols = 0;
    if (g < 4) ptq_linear_shape(s->cfg, ptq_group_first[g], &rows, &cols);
    ptq_hessian h;
    int rc = PTQ_OK;
    if (hess && (rc = ptq_hessian_init(&h, cols, e))) return rc;
    if (g == 1 && s->kvmax) memset(s->kvmax, 0, 2 * kv_dim(s) * sizeof *s->kvmax);
    job jobs[PTQ_MAX_WORKERS];
    double th = 0;
    for (int b0 = 0; b0 < s->nsamples && !rc;) {
        int nj = 0;
        for (; nj < s->nworkers && b0 < s->nsamples; nj++) {
            int B = s->nsamples - b0 < s->chunk ? s->nsamples - b0 : s->chunk;
            job *j = &jobs[nj];
            memset(j, 0, sizeof *j);
            j->s = s, j->lw = lw, j->w = nj, j->g = g, j->b0 = b0, j->B = B;
            b0 += B;
        }
        ptq_par_run(nj, run_job, jobs, sizeof *jobs);
        const float *hx[PTQ_MAX_WORKERS]; /* the chunks' Hessian inputs, in chunk order */
        int hn[PTQ_MAX_WORKERS], nh = 0;
        for (int i = 0; i < nj && !rc; i++) {
            const float *X = g == 1 ? s->stage + (size_t)jobs[i].b0 * T * s->stage_w : s->caps[i];
            double t0 = ptq_now();
            if (jobs[i].rc) {
                *e = jobs[i].e;
                rc = jobs[i].rc;
            } else if (hess) {
                hx[nh] = X, hn[nh++] = jobs[i].B * T;
            }
            if (!rc && g == 1 && s->kvmax) rc = kv_absmax(s, s->kvcaps[i], jobs[i].B * T, e);
            th += ptq_now() - t0;
        }
        double th0 = ptq_now(); /* their ssyrks on the workers: the same bits for any count */
        if (!rc && nh) rc = ptq_hessian_add_chunks(&h, hx, hn, nh, s->nworkers, e);
        th += ptq_now() - th0;
    }
    if (hess) {
        double t0 = ptq_now();
        if (!rc) rc = ptq_hessian_finalize(&h, s->H, e);
        if (!rc) memcpy(s->amax, h.absmax, (size_t)cols * sizeof *s->amax);
        ptq_hessian_free(&h);
        th += ptq_now() - t0;
    }
    s->t[T_HESS] += th;
    return rc;
}

/* The embeddings of every sample into the FP16 hidden states. */
int embed_samples(cstate *s, ptq_err *e)
{
    const int D = s->cfg->hidden, T = s->seqlen;
    for (int b0 = 0; b0 < s->nsamples; b0 += s->chunk) {
        int B = s->nsamples - b0 < s->chunk ? s->nsamples - b0 : s->chunk;
        int rc = s->src.embed(s->src.ctx, s->smp.ids + (size_t)b0 * T, B * T, s->x32, e);
        if (rc) return rc;
        ptq_f32_to_f16_n(s->x32, s->hidden + (size_t)b0 * T * D, (size_t)B * T * D, 1);
    }
    return PTQ_OK;
}
