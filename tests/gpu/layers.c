/* layers.c - the layers around the linears (lib/cuda/layers.cu) against
 * their CPU references (lib/cuda/ref/layers_ref.c).
 *
 * Tolerances: rmsnorm and swiglu outputs are fp16: 2^-10 relative + 1e-6;
 * RoPE 1e-5 (|a| + |b|) per rotated pair (float sincos of the same float
 * angle); attention 1e-4 + 2^-10 |ref| (float softmax, fp16 output; the
 * reference reads the cache as the kernel stores it: fp16-rounded, or int8
 * codes times their scales, lib/qfmt/kvq.h); embeddings exact.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/kvq.h"
#include "lib/qfmt/pack.h"
#include "tests/gpu/cases.h"
#include "tests/gpu/common.h"

/* max over i of |got[i] - ref[i]| / (rel |ref[i]| + abs) */
static double worst_rel(const float *got, const double *ref, size_t n, double rel, double abs)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs(got[i] - ref[i]) / (rel * fabs(ref[i]) + abs));
    return w;
}

static void f16_to_f32s(const uint16_t *h, float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) f[i] = ptq_f16_to_f32(h[i]);
}

/* rmsnorm and swiglu on 5 x 300 random values. */
static int check_norm_swiglu(void)
{
    const int n = 5, dim = 300;
    const size_t N = (size_t)n * dim;
    float *x = malloc(4 * N), *w = malloc(4 * (size_t)dim), *u = malloc(4 * N), *of = malloc(4 * N);
    uint16_t *o = malloc(2 * N);
    double *ref = malloc(8 * N);
    for (size_t i = 0; i < N; i++) x[i] = gc_frand(-3.f, 3.f), u[i] = gc_frand(-2.f, 2.f);
    for (int i = 0; i < dim; i++) w[i] = gc_frand(0.5f, 1.5f);
    float *dx = gc_dup_dev(x, 4 * N), *dw = gc_dup_dev(w, 4 * (size_t)dim), *du = gc_dup_dev(u, 4 * N);
    uint16_t *dout = gc_dup_dev(NULL, 2 * N);
    int err = dx && dw && du && dout ? ptqk_rmsnorm(dx, dw, dim, 1e-5f, n, dout, NULL) : 1;
    if (!err) err = (int)cudaMemcpy(o, dout, 2 * N, cudaMemcpyDeviceToHost);
    f16_to_f32s(o, of, N);
    ptqr_rmsnorm(x, w, dim, 1e-5f, n, ref);
    int fails = gc_report("rmsnorm", err ? 1e9 : worst_rel(of, ref, N, ldexp(1.0, -10), 1e-6));
    if (!err) err = ptqk_swiglu(dx, du, N, dout, NULL);
    if (!err) err = (int)cudaMemcpy(o, dout, 2 * N, cudaMemcpyDeviceToHost);
    f16_to_f32s(o, of, N);
    ptqr_swiglu(x, u, N, ref);
    fails += gc_report("swiglu", err ? 1e9 : worst_rel(of, ref, N, ldexp(1.0, -10), 1e-6));
    gc_free_dev(dx), gc_free_dev(dw), gc_free_dev(du), gc_free_dev(dout);
    free(x), free(w), free(u), free(of), free(o), free(ref);
    return fails;
}

/* The worst RoPE error of got (the kernel's rotation of src, n rows of
 * heads * hd) against the reference. */
static double rope_worst(const float *src, const float *got, int heads, int hd, const float *inv, int B,
                         int T, int pos)
{
    size_t N = (size_t)B * T * heads * hd;
    double *ref = malloc(8 * N), w = 0.0;
    ptqr_rope(src, heads, hd, inv, B, T, pos, ref);
    for (size_t i = 0; i < N; i++) {
        size_t j = i % hd < (size_t)hd / 2 ? i + hd / 2 : i - hd / 2; /* the pair partner */
        double tol = 1e-5 * (fabs(src[i]) + fabs(src[j])) + 1e-7;
        w = fmax(w, fabs(got[i] - ref[i]) / tol);
    }
    free(ref);
    return w;
}

typedef struct att_case {
    int B, nh, nkv, hd, S, int8;
    float inv[8], ks[64]; /* inv_freq [hd/2]; kv_scale [2][nkv*hd] */
    void *dinv, *dks, *kc, *vc, *dout;
    float *hk, *hv; /* host mirror of the caches as the kernel reads them */
} att_case;

/* One forward of T tokens at pos: rope, store, attention; adds to worst[2]
 * (rope, attention); returns a CUDA error. */
static int att_step(att_case *c, int T, int pos, double worst[2])
{
    const int n = c->B * T, QD = c->nh * c->hd, KVD = c->nkv * c->hd;
    float *q = malloc(4 * (size_t)n * QD), *k = malloc(4 * (size_t)n * KVD), *v = malloc(4 * (size_t)n * KVD);
    float *q2 = malloc(4 * (size_t)n * QD), *k2 = malloc(4 * (size_t)n * KVD), *of = malloc(4 * (size_t)n * QD);
    uint16_t *o = malloc(2 * (size_t)n * QD);
    double *ref = malloc(8 * (size_t)n * QD);
    for (int i = 0; i < n * QD; i++) q[i] = gc_frand(-2.f, 2.f);
    for (int i = 0; i < n * KVD; i++) k[i] = gc_frand(-2.f, 2.f), v[i] = gc_frand(-1.f, 1.f);
    float *dq = gc_dup_dev(q, 4 * (size_t)n * QD), *dk = gc_dup_dev(k, 4 * (size_t)n * KVD);
    float *dv = gc_dup_dev(v, 4 * (size_t)n * KVD);
    int err = dq && dk && dv ? ptqk_rope(dq, c->nh, c->hd, c->dinv, c->B, T, pos, NULL) : 1;
    if (!err) err = ptqk_rope(dk, c->nkv, c->hd, c->dinv, c->B, T, pos, NULL);
    if (!err && c->int8) err = ptqk_kv_store_i8(dk, dv, c->dks, KVD, c->B, T, pos, c->S, c->kc, c->vc, NULL);
    if (!err && !c->int8) err = ptqk_kv_store(dk, dv, KVD, c->B, T, pos, c->S, c->kc, c->vc, NULL);
    if (!err && c->int8)
        err = ptqk_attention_i8(dq, c->kc, c->vc, c->dks, c->nh, c->nkv, c->hd, c->B, T, pos, c->S, c->dout, NULL);
    if (!err && !c->int8)
        err = ptqk_attention(dq, c->kc, c->vc, c->nh, c->nkv, c->hd, c->B, T, pos, c->S, c->dout, NULL);
    if (!err) err = (int)cudaMemcpy(q2, dq, 4 * (size_t)n * QD, cudaMemcpyDeviceToHost);
    if (!err) err = (int)cudaMemcpy(k2, dk, 4 * (size_t)n * KVD, cudaMemcpyDeviceToHost);
    if (!err) err = (int)cudaMemcpy(o, c->dout, 2 * (size_t)n * QD, cudaMemcpyDeviceToHost);
    if (!err) {
        worst[0] = fmax(worst[0], rope_worst(q, q2, c->nh, c->hd, c->inv, c->B, T, pos));
        worst[0] = fmax(worst[0], rope_worst(k, k2, c->nkv, c->hd, c->inv, c->B, T, pos));
        /* the cache from the GPU's own rotated k (its rope is checked above) */
        for (int i = 0; i < n; i++)
            for (int d = 0; d < KVD; d++) {
                size_t at = ((size_t)(i / T) * c->S + pos + i % T) * KVD + d, from = (size_t)i * KVD + d;
                c->hk[at] = c->int8 ? ptq_kv_value(ptq_kv_code(k2[from], c->ks[d]), c->ks[d])
                                    : ptq_f16_to_f32(ptq_f32_to_f16(k2[from]));
                c->hv[at] = c->int8 ? ptq_kv_value(ptq_kv_code(v[from], c->ks[KVD + d]), c->ks[KVD + d])
                                    : ptq_f16_to_f32(ptq_f32_to_f16(v[from]));
            }
        ptqr_attention(q2, c->hk, c->hv, c->nh, c->nkv, c->hd, c->B, T, pos, c->S, ref);
        f16_to_f32s(o, of, (size_t)n * QD);
        worst[1] = fmax(worst[1], worst_rel(of, ref, (size_t)n * QD, ldexp(1.0, -10), 1e-4));
    }
    gc_free_dev(dq), gc_free_dev(dk), gc_free_dev(dv);
    free(q), free(k), free(v), free(q2), free(k2), free(of), free(o), free(ref);
    return err;
}

/* RoPE + KV store + GQA attention, fp16 or int8 cache: a prefill of 7
 * tokens, then one step. */
static int check_attention(int int8)
{
    att_case c = {.B = 2, .nh = 4, .nkv = 2, .hd = 16, .S = 40, .int8 = int8};
    const size_t cache = (size_t)c.B * c.S * c.nkv * c.hd;
    for (int i = 0; i < c.hd / 2; i++) c.inv[i] = (float)pow(10000.0, -2.0 * i / c.hd);
    for (int i = 0; i < 2 * c.nkv * c.hd; i++) c.ks[i] = gc_frand(0.02f, 0.04f); /* |k| / s <= 100 */
    c.dinv = gc_dup_dev(c.inv, sizeof c.inv);
    c.dks = gc_dup_dev(c.ks, sizeof c.ks);
    c.kc = gc_dup_dev(NULL, 2 * cache), c.vc = gc_dup_dev(NULL, 2 * cache);
    c.dout = gc_dup_dev(NULL, 2 * (size_t)c.B * 7 * c.nh * c.hd);
    c.hk = calloc(cache, 4), c.hv = calloc(cache, 4);
    double worst[2] = {0, 0};
    int err = c.dinv && c.dks && c.kc && c.vc && c.dout ? att_step(&c, 7, 0, worst) : 1;
    if (!err) err = att_step(&c, 1, 7, worst);
    if (err) printf("FAIL attention: CUDA error %s\n", cudaGetErrorString((cudaError_t)err));
    int fails = err ? 1 : 0;
    fails += gc_report("rope", err ? 1e9 : worst[0]);
    fails += gc_report(int8 ? "int8 kv cache + attention (GQA, prefill then a step)"
                            : "kv cache + attention (GQA, prefill then a step)",
                       err ? 1e9 : worst[1]);
    gc_free_dev(c.dinv), gc_free_dev(c.dks), gc_free_dev(c.kc), gc_free_dev(c.vc), gc_free_dev(c.dout);
    free(c.hk), free(c.hv);
    return fails;
}

/* Embeddings: an fp16 table and a packed int4 table, exact. */
static int check_embed(void)
{
    const int V = 50, D = 70, n = 6;
    int32_t tok[6] = {0, 49, 7, 7, 23, 1};
    uint16_t *tab = malloc(2 * (size_t)V * D);
    float *x = malloc(4 * (size_t)n * D);
    double *ref = malloc(8 * (size_t)n * D);
    for (int i = 0; i < V * D; i++) tab[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    gc_layer h;
    gc_layer_random(&h, V, D, 4, 0, 0);
    size_t rw = (size_t)ptq_pack_row_words(D, 4);
    void *dt = gc_dup_dev(tab, 2 * (size_t)V * D), *dtok = gc_dup_dev(tok, sizeof tok);
    void *dq = gc_dup_dev(h.qw, 4 * rw * V), *ds = gc_dup_dev(h.sc, 2 * (size_t)V), *dz = gc_dup_dev(h.zr, (size_t)V);
    void *dx = gc_dup_dev(NULL, 4 * (size_t)n * D);
    int err = dt && dtok && dq && ds && dz && dx ? ptqk_embed_f16(dt, D, dtok, n, dx, NULL) : 1;
    if (!err) err = (int)cudaMemcpy(x, dx, 4 * (size_t)n * D, cudaMemcpyDeviceToHost);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++) ref[t * D + i] = ptq_f16_to_f32(tab[tok[t] * D + i]);
    int fails = gc_report("embedding fp16 (exact)", err ? 1e9 : worst_rel(x, ref, (size_t)n * D, 0, 1e-300));
    ptqk_int_w w = {V, D, 4, 0, 1, dq, ds, dz, NULL};
    if (!err) err = ptqk_embed_int(&w, dtok, n, dx, NULL);
    if (!err) err = (int)cudaMemcpy(x, dx, 4 * (size_t)n * D, cudaMemcpyDeviceToHost);
    ptqr_embed_int(&h.w, tok, n, ref);
    fails += gc_report("embedding int4 (exact)", err ? 1e9 : worst_rel(x, ref, (size_t)n * D, 0, 1e-300));
    gc_free_dev(dt), gc_free_dev(dtok), gc_free_dev(dq), gc_free_dev(ds), gc_free_dev(dz), gc_free_dev(dx);
    free(tab), free(x), free(ref);
    gc_layer_free(&h);
    return fails;
}

int gc_layers(void)
{
    return check_norm_swiglu() + check_attention(0) + check_attention(1) + check_embed();
}
