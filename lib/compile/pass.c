/* pass.c - one decoder layer over every calibration sample, chunks of
 * samples on the workers (lib/base/par.h), and the embedding of the samples
 * (lib/compile/engine.h).
 *
 * Reproducibility: OpenBLAS's multithreaded sgemm/ssyrk round differently
 * with different thread counts, so BLAS runs single-threaded and --threads
 * runs chunks of calibration samples on that many workers; captures are
 * reduced in chunk order, so every number is the same for any --threads.
 */
#include <string.h>

#include "lib/base/half.h"
#include "lib/base/par.h"
#include "lib/compile/engine.h"
#include "lib/quant/hessian.h"

static void widen_rows(const uint16_t *h, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] = ptq_f16_to_f32(h[i]);
}

static void narrow_rows(const float *x, uint16_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) h[i] = ptq_f32_to_f16(x[i]);
}

/* One chunk of samples through the layer on one worker. */
typedef struct job {
    cstate *s;
    const ptq_layer_w *lw;
    int w, g, store, b0, B;
    int rc;
    ptq_err e;
} job;

static void run_job(void *arg)
{
    job *j = arg;
    cstate *s = j->s;
    const int D = s->cfg->hidden, T = s->seqlen;
    ptq_capture cap;
    memset(&cap, 0, sizeof cap);
    float *c = s->caps[j->w];
    if (j->g == 0) cap.attn_in = c;
    if (j->g == 1) cap.o_in = c;
    if (j->g == 2) cap.mlp_in = c;
    if (j->g == 3) cap.down_in = c;
    int kv = j->g < 0 && j->store && s->kvmax; /* int8 KV calibration on the output pass */
    if (kv) {
        cap.k_rot = s->kvcaps[j->w];
        cap.v_out = s->kvcaps[j->w] + (size_t)j->B * T * kv_dim(s);
    }
    size_t n = (size_t)j->B * T * D;
    uint16_t *hid = s->hidden + (size_t)j->b0 * T * D;
    widen_rows(hid, s->x32s[j->w], n);
    j->rc = ptq_fwd_layer(s->fwds[j->w], j->lw, s->x32s[j->w], j->B, T,
                          j->g >= 0 || kv ? &cap : NULL, &j->e);
    if (!j->rc && j->store) narrow_rows(s->x32s[j->w], hid, n);
}

/* Run layer l (weights lw) over every sample; capture the input of group g
 * (-1: none) and accumulate its Hessian into s->H; with store, write the
 * output back into the hidden states.  Chunks of samples are the unit of
 * work: each is one single-threaded BLAS forward on a worker, and captures
 * are added to the Hessian in chunk order, so the result does not depend on
 * the number of workers. */
int layer_pass(cstate *s, const ptq_layer_w *lw, int g, int cols, int store, ptq_err *e)
{
    const int T = s->seqlen;
    ptq_hessian h;
    int rc = PTQ_OK;
    if (g >= 0 && (rc = ptq_hessian_init(&h, cols, e))) return rc;
    job jobs[PTQ_MAX_WORKERS];
    for (int b0 = 0; b0 < s->nsamples && !rc;) {
        int nj = 0;
        for (; nj < s->nworkers && b0 < s->nsamples; nj++) {
            int B = s->nsamples - b0 < s->chunk ? s->nsamples - b0 : s->chunk;
            job *j = &jobs[nj];
            memset(j, 0, sizeof *j);
            j->s = s, j->lw = lw, j->w = nj, j->g = g, j->store = store, j->b0 = b0, j->B = B;
            b0 += B;
        }
        ptq_par_run(nj, run_job, jobs, sizeof *jobs);
        for (int i = 0; i < nj && !rc; i++) {
            if (jobs[i].rc) {
                *e = jobs[i].e;
                rc = jobs[i].rc;
            } else if (g >= 0) {
                rc = ptq_hessian_add(&h, s->caps[i], jobs[i].B * T, e);
            } else if (store && s->kvmax) {
                rc = kv_absmax(s, s->kvcaps[i], jobs[i].B * T, e);
            }
        }
    }
    if (g >= 0) {
        if (!rc) rc = ptq_hessian_finalize(&h, s->H, e);
        if (!rc) memcpy(s->amax, h.absmax, (size_t)cols * sizeof *s->amax);
        ptq_hessian_free(&h);
    }
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
        narrow_rows(s->x32, s->hidden + (size_t)b0 * T * D, (size_t)B * T * D);
    }
    return PTQ_OK;
}
