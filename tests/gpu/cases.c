/* cases.c - GPU kernel tests of libptqrt against CPU references (see cases.h).
 *
 * Tolerances (per output y = sum_k w_k x_k, with A = sum_k |w_k x_k|):
 *  - GEMV (exact weights, fp32 accumulate): |y - y_ref| <= 1e-5 A.  The
 *    kernel's summation (32-term block sums, times the scale, strided lane
 *    sums of <= 11 * K/11008 terms, a 5-level shuffle tree) has a worst-case
 *    relative error below ~60 u = 3.6e-6 A (u = 2^-24); one wrong column
 *    shifts y by about A / K >= 9e-5 A at K <= 11008, so the bound is tight
 *    enough to catch indexing errors.
 *  - GEMM (weights rounded to fp16 by design, tensor-core fp32 accumulate):
 *    the reference uses the same fp16-rounded weights; |y - y_ref| <=
 *    (K/16 + 32) 2^-22 A, twice the worst-case bound of K/16 sequential mma
 *    accumulations, allowing for the tensor cores' truncating adds.
 *  - cuBLAS FP16 linears: the same bound as the GEMM.
 *  - layers: rmsnorm and swiglu outputs are fp16: 2^-10 relative + 1e-6;
 *    RoPE 1e-5 |x| (float sincos of the same float angle); attention
 *    1e-4 max|v| (float softmax over fp16-rounded K/V, the reference rounds K/V the
 *    same way); embedding exact.
 */
#include "tests/gpu/cases.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/qfmt/pack.h"
#include "lib/cuda/ptqrt_kernels.h"

/* ---------------------------------------------------------------- helpers */
static uint64_t rs = 0x1234567u;
static uint32_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 11);
}
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() % 1000003u) / 1000003.0f; }

static void *dup_dev(const void *h, size_t bytes)
{
    void *d = NULL;
    if (cudaMalloc(&d, bytes ? bytes : 4) != cudaSuccess) return NULL;
    if (bytes) cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice);
    return d;
}

int gc_have_device(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return n > 0;
}

typedef struct hlayer {
    int rows, cols, bits, group, ngroups;
    uint32_t *qw;
    uint16_t *sc;
    uint8_t *zr;
    int32_t *gidx;
} hlayer;

static void hl_free(hlayer *h)
{
    free(h->qw);
    free(h->sc);
    free(h->zr);
    free(h->gidx);
}

/* Random packed layer; gidx: random group per column (act-order). */
static void hl_random(hlayer *h, int rows, int cols, int bits, int group, int gidx)
{
    memset(h, 0, sizeof *h);
    h->rows = rows, h->cols = cols, h->bits = bits, h->group = group;
    h->ngroups = group ? cols / group : 1;
    size_t rw = (size_t)ptq_pack_row_words(cols, bits);
    h->qw = calloc((size_t)rows * rw, 4);
    h->sc = malloc(2 * (size_t)rows * h->ngroups);
    h->zr = malloc((size_t)rows * h->ngroups);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) ptq_pack_set(h->qw + r * rw, k, bits, rnd() & ((1u << bits) - 1u));
    for (size_t i = 0; i < (size_t)rows * h->ngroups; i++) {
        h->sc[i] = ptq_f32_to_f16(frand(0.002f, 0.05f));
        h->zr[i] = (uint8_t)(rnd() % (1u << bits));
    }
    if (gidx) {
        h->gidx = malloc(4 * (size_t)cols);
        for (int k = 0; k < cols; k++) h->gidx[k] = (int32_t)(rnd() % (uint32_t)h->ngroups);
    }
}

/* Reference weight (ptq_dequant), optionally rounded to fp16. */
static double hl_w(const hlayer *h, int r, int k, int round16)
{
    size_t rw = (size_t)ptq_pack_row_words(h->cols, h->bits);
    int g = h->gidx ? h->gidx[k] : (h->group ? k / h->group : 0);
    size_t gi = (size_t)r * h->ngroups + g;
    float w = ptq_dequant(h->sc[gi], h->zr[gi], ptq_pack_get(h->qw + r * rw, k, h->bits));
    return round16 ? ptq_f16_to_f32(ptq_f32_to_f16(w)) : w;
}

/* Run the int kernel (gemm = 0: GEMV) and compare; returns failures. */
static int check_int(const hlayer *h, int n, int gemm, const char *what)
{
    size_t rw = (size_t)ptq_pack_row_words(h->cols, h->bits);
    uint16_t *x = malloc(2 * (size_t)n * h->cols);
    float *y = malloc(4 * (size_t)n * h->rows);
    for (size_t i = 0; i < (size_t)n * h->cols; i++) x[i] = ptq_f32_to_f16(frand(-1.f, 1.f));
    void *dq = dup_dev(h->qw, 4 * rw * h->rows), *ds = dup_dev(h->sc, 2 * (size_t)h->rows * h->ngroups);
    void *dz = dup_dev(h->zr, (size_t)h->rows * h->ngroups), *dg = h->gidx ? dup_dev(h->gidx, 4 * (size_t)h->cols) : NULL;
    void *dx = dup_dev(x, 2 * (size_t)n * h->cols), *dy = NULL;
    cudaMalloc(&dy, 4 * (size_t)n * h->rows);
    ptqk_int_w w = {h->rows, h->cols, h->bits, h->group, h->ngroups, dq, ds, dz, dg};
    int err = gemm ? ptqk_gemm_int(&w, dx, h->cols, dy, h->rows, n, NULL)
                   : ptqk_gemv_int(&w, dx, h->cols, dy, h->rows, n, NULL);
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(y, dy, 4 * (size_t)n * h->rows, cudaMemcpyDeviceToHost);
    int bad = 0;
    double worst = 0.0;
    if (err) {
        printf("FAIL %s: CUDA error %s\n", what, cudaGetErrorString((cudaError_t)err));
        bad = 1;
    } else {
        double tolf = gemm ? (h->cols / 16.0 + 32.0) * ldexp(1.0, -22) : 1e-5;
        for (int t = 0; t < n; t++)
            for (int r = 0; r < h->rows; r++) {
                double s = 0.0, a = 0.0;
                for (int k = 0; k < h->cols; k++) {
                    double p = hl_w(h, r, k, gemm) * ptq_f16_to_f32(x[(size_t)t * h->cols + k]);
                    s += p;
                    a += fabs(p);
                }
                double d = fabs(y[(size_t)t * h->rows + r] - s), tol = tolf * a + 1e-7;
                if (d / tol > worst) worst = d / tol;
                if (!(d <= tol)) {
                    if (bad < 3)
                        printf("  %s: t %d row %d: got %.9g want %.9g (tol %.3g)\n", what, t, r,
                               y[(size_t)t * h->rows + r], s, tol);
                    bad++;
                }
            }
        printf("%s %s: %d x %d, %d bits, group %d%s, n %d: worst error/tolerance %.3f\n",
               bad ? "FAIL" : "ok  ", what, h->rows, h->cols, h->bits, h->group, h->gidx ? ", g_idx" : "", n, worst);
    }
    cudaFree(dq), cudaFree(ds), cudaFree(dz), cudaFree(dg), cudaFree(dx), cudaFree(dy);
    free(x), free(y);
    return bad ? 1 : 0;
}

typedef struct shape { int rows, cols, group, gidx; } shape;
static const shape shapes[] = {
    {67, 256, 128, 0}, {128, 4096, 128, 0}, {33, 100, 0, 0}, {64, 256, 32, 0},
    {50, 320, 64, 1},  {40, 96, 48, 0},     {24, 11008, 128, 0},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

int gc_gemv_int(void)
{
    static const int bitsv[] = {2, 3, 4, 8}, nv[] = {1, 2, 3, 5, 8};
    int fails = 0;
    for (int s = 0; s < NSHAPES; s++)
        for (int b = 0; b < 4; b++)
            for (int i = 0; i < 5; i++) {
                if (shapes[s].cols > 4096 && (i % 2 || b % 2)) continue; /* keep the big shape cheap */
                hlayer h;
                hl_random(&h, shapes[s].rows, shapes[s].cols, bitsv[b], shapes[s].group, shapes[s].gidx);
                fails += check_int(&h, nv[i], 0, "gemv_int");
                hl_free(&h);
            }
    return fails;
}

int gc_gemm_int(void)
{
    static const int bitsv[] = {2, 3, 4, 5, 8}, nv[] = {1, 9, 16, 33, 64, 100};
    int fails = 0;
    for (int s = 0; s < NSHAPES; s++)
        for (int b = 0; b < 5; b++)
            for (int i = 0; i < 6; i++) {
                if (shapes[s].cols > 4096 && (i % 2 || b % 2)) continue;
                hlayer h;
                hl_random(&h, shapes[s].rows, shapes[s].cols, bitsv[b], shapes[s].group, shapes[s].gidx);
                fails += check_int(&h, nv[i], 1, "gemm_int");
                hl_free(&h);
            }
    return fails;
}

/* ---------------------------------------------------------------- dense */
int gc_dense(void)
{
    int fails = 0;
    static const int dims[][3] = {{100, 200, 1}, {100, 200, 7}, {256, 512, 40}, {33, 64, 3}};
    cublasHandle_t handle = NULL;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) {
        printf("FAIL dense: cublasCreate\n");
        return 1;
    }
    for (int c = 0; c < 4; c++) {
        int rows = dims[c][0], cols = dims[c][1], n = dims[c][2];
        uint16_t *w = malloc(2 * (size_t)rows * cols), *x = malloc(2 * (size_t)n * cols);
        float *y1 = malloc(4 * (size_t)n * rows), *y2 = malloc(4 * (size_t)n * rows);
        for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = ptq_f32_to_f16(frand(-0.1f, 0.1f));
        for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = ptq_f32_to_f16(frand(-1.f, 1.f));
        void *dw = dup_dev(w, 2 * (size_t)rows * cols), *dx = dup_dev(x, 2 * (size_t)n * cols), *d1, *d2;
        cudaMalloc(&d1, 4 * (size_t)n * rows);
        cudaMalloc(&d2, 4 * (size_t)n * rows);
        ptqk_f16_w fw = {rows, cols, dw};
        int err = ptqk_linear_f16(handle, &fw, dx, cols, d1, rows, n);
        if (!err) err = ptqk_linear_f16_ref(&fw, dx, cols, d2, rows, n, NULL);
        if (!err) err = (int)cudaDeviceSynchronize();
        if (!err) cudaMemcpy(y1, d1, 4 * (size_t)n * rows, cudaMemcpyDeviceToHost);
        if (!err) cudaMemcpy(y2, d2, 4 * (size_t)n * rows, cudaMemcpyDeviceToHost);
        int bad = err != 0;
        double worst = 0;
        for (int t = 0; t < n && !err; t++)
            for (int r = 0; r < rows; r++) {
                double s = 0, a = 0;
                for (int k = 0; k < cols; k++) {
                    double p = (double)ptq_f16_to_f32(w[(size_t)r * cols + k]) * ptq_f16_to_f32(x[(size_t)t * cols + k]);
                    s += p, a += fabs(p);
                }
                double tol = (cols / 16.0 + 32.0) * ldexp(1.0, -22) * a + 1e-7;
                double d = fmax(fabs(y1[(size_t)t * rows + r] - s), fabs(y2[(size_t)t * rows + r] - s));
                if (d / tol > worst) worst = d / tol;
                if (!(d <= tol)) bad++;
            }
        printf("%s dense f16 (cuBLAS and reference kernel): %d x %d, n %d: worst error/tolerance %.3f\n",
               bad ? "FAIL" : "ok  ", rows, cols, n, worst);
        fails += bad ? 1 : 0;
        cudaFree(dw), cudaFree(dx), cudaFree(d1), cudaFree(d2);
        free(w), free(x), free(y1), free(y2);
    }
    cublasDestroy(handle);
    return fails;
}

/* ---------------------------------------------------------------- layers */
static int report(const char *what, double worst)
{
    int bad = !(worst <= 1.0);
    printf("%s %s: worst error/tolerance %.3f\n", bad ? "FAIL" : "ok  ", what, worst);
    return bad;
}

int gc_layers(void)
{
    int fails = 0;
    /* rmsnorm + swiglu */
    {
        int n = 5, dim = 300;
        float *x = malloc(4 * (size_t)n * dim), *w = malloc(4 * (size_t)dim), *u = malloc(4 * (size_t)n * dim);
        uint16_t *o = malloc(2 * (size_t)n * dim);
        for (int i = 0; i < n * dim; i++) x[i] = frand(-3.f, 3.f), u[i] = frand(-2.f, 2.f);
        for (int i = 0; i < dim; i++) w[i] = frand(0.5f, 1.5f);
        float *dx = dup_dev(x, 4 * (size_t)n * dim), *dw = dup_dev(w, 4 * (size_t)dim), *du = dup_dev(u, 4 * (size_t)n * dim);
        uint16_t *dout;
        cudaMalloc((void **)&dout, 2 * (size_t)n * dim);
        int err = ptqk_rmsnorm(dx, dw, dim, 1e-5f, n, dout, NULL);
        if (!err) err = (int)cudaMemcpy(o, dout, 2 * (size_t)n * dim, cudaMemcpyDeviceToHost);
        double worst = err ? 1e9 : 0;
        for (int t = 0; t < n && !err; t++) {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double)x[t * dim + i] * x[t * dim + i];
            double inv = 1.0 / sqrt(ss / dim + 1e-5);
            for (int i = 0; i < dim; i++) {
                double ref = x[t * dim + i] * inv * w[i];
                double d = fabs(ptq_f16_to_f32(o[t * dim + i]) - ref) / (ldexp(1.0, -10) * fabs(ref) + 1e-6);
                if (d > worst) worst = d;
            }
        }
        fails += report("rmsnorm", worst);
        err = ptqk_swiglu(dx, du, (size_t)n * dim, dout, NULL);
        if (!err) err = (int)cudaMemcpy(o, dout, 2 * (size_t)n * dim, cudaMemcpyDeviceToHost);
        worst = err ? 1e9 : 0;
        for (int i = 0; i < n * dim && !err; i++) {
            double a = x[i], ref = a / (1.0 + exp(-a)) * u[i];
            double d = fabs(ptq_f16_to_f32(o[i]) - ref) / (ldexp(1.0, -10) * fabs(ref) + 1e-6);
            if (d > worst) worst = d;
        }
        fails += report("swiglu", worst);
        cudaFree(dx), cudaFree(dw), cudaFree(du), cudaFree(dout);
        free(x), free(w), free(u), free(o);
    }
    /* rope + kv store + attention (GQA), two calls: prefill then one step */
    {
        const int B = 2, nh = 4, nkv = 2, hd = 16, S = 40, T1 = 7;
        int QD = nh * hd, KVD = nkv * hd;
        float inv[8];
        for (int i = 0; i < hd / 2; i++) inv[i] = (float)pow(10000.0, -2.0 * i / hd);
        float *dinv = dup_dev(inv, sizeof inv);
        uint16_t *kc, *vc, *dout;
        cudaMalloc((void **)&kc, 2 * (size_t)B * S * KVD);
        cudaMalloc((void **)&vc, 2 * (size_t)B * S * KVD);
        cudaMalloc((void **)&dout, 2 * (size_t)B * T1 * QD);
        /* host mirror of the cache (fp16-rounded, after rope) */
        float *hk = calloc((size_t)B * S * KVD, 4), *hv = calloc((size_t)B * S * KVD, 4);
        double worst_rope = 0, worst_att = 0;
        int pos = 0, err = 0;
        for (int call = 0; call < 2 && !err; call++) {
            int T = call ? 1 : T1, n = B * T;
            float *q = malloc(4 * (size_t)n * QD), *k = malloc(4 * (size_t)n * KVD), *v = malloc(4 * (size_t)n * KVD);
            float *q2 = malloc(4 * (size_t)n * QD), *k2 = malloc(4 * (size_t)n * KVD);
            uint16_t *o = malloc(2 * (size_t)n * QD);
            for (int i = 0; i < n * QD; i++) q[i] = frand(-2.f, 2.f);
            for (int i = 0; i < n * KVD; i++) k[i] = frand(-2.f, 2.f), v[i] = frand(-1.f, 1.f);
            float *dq = dup_dev(q, 4 * (size_t)n * QD), *dk = dup_dev(k, 4 * (size_t)n * KVD), *dv = dup_dev(v, 4 * (size_t)n * KVD);
            err = ptqk_rope(dq, nh, hd, dinv, B, T, pos, NULL);
            if (!err) err = ptqk_rope(dk, nkv, hd, dinv, B, T, pos, NULL);
            if (!err) err = ptqk_kv_store(dk, dv, KVD, B, T, pos, S, kc, vc, NULL);
            if (!err) err = ptqk_attention(dq, kc, vc, nh, nkv, hd, B, T, pos, S, dout, NULL);
            if (!err) err = (int)cudaMemcpy(q2, dq, 4 * (size_t)n * QD, cudaMemcpyDeviceToHost);
            if (!err) err = (int)cudaMemcpy(k2, dk, 4 * (size_t)n * KVD, cudaMemcpyDeviceToHost);
            if (!err) err = (int)cudaMemcpy(o, dout, 2 * (size_t)n * QD, cudaMemcpyDeviceToHost);
            if (err) break;
            /* reference rope in double from the same float angle */
            for (int i = 0; i < n; i++) {
                int p = pos + i % T;
                for (int pass = 0; pass < 2; pass++) {
                    float *src = pass ? k : q, *got = pass ? k2 : q2;
                    int heads = pass ? nkv : nh;
                    for (int h = 0; h < heads; h++)
                        for (int j = 0; j < hd / 2; j++) {
                            double ang = (double)((float)p * inv[j]);
                            size_t o0 = ((size_t)i * heads + h) * hd + j, o1 = o0 + hd / 2;
                            double a = src[o0], b = src[o1];
                            double r0 = a * cos(ang) - b * sin(ang), r1 = b * cos(ang) + a * sin(ang);
                            double tol = 1e-5 * (fabs(a) + fabs(b)) + 1e-7;
                            worst_rope = fmax(worst_rope, fmax(fabs(got[o0] - r0), fabs(got[o1] - r1)) / tol);
                        }
                }
            }
            /* reference cache from the GPU's own rotated k (rope checked above) */
            for (int i = 0; i < n; i++) {
                int b = i / T, p = pos + i % T;
                for (int d = 0; d < KVD; d++) {
                    hk[((size_t)b * S + p) * KVD + d] = ptq_f16_to_f32(ptq_f32_to_f16(k2[(size_t)i * KVD + d]));
                    hv[((size_t)b * S + p) * KVD + d] = ptq_f16_to_f32(ptq_f32_to_f16(v[(size_t)i * KVD + d]));
                }
            }
            for (int i = 0; i < n; i++) {
                int b = i / T, L = pos + i % T + 1;
                for (int h = 0; h < nh; h++) {
                    int kh = h / (nh / nkv);
                    double sc[64], mx = -1e300, sum = 0;
                    for (int p = 0; p < L; p++) {
                        double a = 0;
                        for (int d = 0; d < hd; d++)
                            a += (double)q2[((size_t)i * nh + h) * hd + d] * hk[((size_t)b * S + p) * KVD + kh * hd + d];
                        sc[p] = a / sqrt((double)hd);
                        mx = fmax(mx, sc[p]);
                    }
                    for (int p = 0; p < L; p++) sum += (sc[p] = exp(sc[p] - mx));
                    for (int d = 0; d < hd; d++) {
                        double a = 0;
                        for (int p = 0; p < L; p++) a += sc[p] * hv[((size_t)b * S + p) * KVD + kh * hd + d];
                        a /= sum;
                        double got = ptq_f16_to_f32(o[((size_t)i * nh + h) * hd + d]);
                        worst_att = fmax(worst_att, fabs(got - a) / (1e-4 + ldexp(fabs(a), -10)));
                    }
                }
            }
            pos += T;
            cudaFree(dq), cudaFree(dk), cudaFree(dv);
            free(q), free(k), free(v), free(q2), free(k2), free(o);
        }
        if (err) printf("FAIL attention: CUDA error %s\n", cudaGetErrorString((cudaError_t)err));
        fails += err ? 1 : 0;
        fails += report("rope", err ? 1e9 : worst_rope);
        fails += report("kv cache + attention (GQA, prefill then a step)", err ? 1e9 : worst_att);
        cudaFree(dinv), cudaFree(kc), cudaFree(vc), cudaFree(dout);
        free(hk), free(hv);
    }
    /* embeddings: fp16 table and packed int table */
    {
        int V = 50, D = 70, n = 6;
        uint16_t *tab = malloc(2 * (size_t)V * D);
        for (int i = 0; i < V * D; i++) tab[i] = ptq_f32_to_f16(frand(-1.f, 1.f));
        int32_t tok[6] = {0, 49, 7, 7, 23, 1};
        hlayer h;
        hl_random(&h, V, D, 4, 0, 0);
        size_t rw = (size_t)ptq_pack_row_words(D, 4);
        void *dt = dup_dev(tab, 2 * (size_t)V * D), *dtok = dup_dev(tok, sizeof tok), *dx;
        void *dq = dup_dev(h.qw, 4 * rw * V), *ds = dup_dev(h.sc, 2 * (size_t)V), *dz = dup_dev(h.zr, (size_t)V);
        cudaMalloc(&dx, 4 * (size_t)n * D);
        float *x = malloc(4 * (size_t)n * D);
        int err = ptqk_embed_f16(dt, D, dtok, n, dx, NULL);
        if (!err) err = (int)cudaMemcpy(x, dx, 4 * (size_t)n * D, cudaMemcpyDeviceToHost);
        double worst = err ? 1e9 : 0;
        for (int t = 0; t < n && !err; t++)
            for (int i = 0; i < D; i++)
                if (x[t * D + i] != ptq_f16_to_f32(tab[tok[t] * D + i])) worst = 1e9;
        fails += report("embedding fp16 (exact)", worst);
        ptqk_int_w w = {V, D, 4, 0, 1, dq, ds, dz, NULL};
        err = ptqk_embed_int(&w, dtok, n, dx, NULL);
        if (!err) err = (int)cudaMemcpy(x, dx, 4 * (size_t)n * D, cudaMemcpyDeviceToHost);
        worst = err ? 1e9 : 0;
        for (int t = 0; t < n && !err; t++)
            for (int i = 0; i < D; i++)
                if (x[t * D + i] != (float)hl_w(&h, tok[t], i, 0)) worst = 1e9;
        fails += report("embedding int4 (exact)", worst);
        cudaFree(dt), cudaFree(dtok), cudaFree(dx), cudaFree(dq), cudaFree(ds), cudaFree(dz);
        free(tab), free(x);
        hl_free(&h);
    }
    return fails;
}

/* ---------------------------------------------------------------- real layers */
/* Find tensor `name` in a safetensors file: F16, 2-D; returns a pointer into
 * buf and the shape, or NULL.  Every offset is checked against the file. */
static const uint16_t *st_find(const uint8_t *buf, size_t len, const char *name, int *rows, int *cols)
{
    if (len < 8) return NULL;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
    if (hl > len - 8) return NULL;
    char *hdr = malloc(hl + 1);
    memcpy(hdr, buf + 8, hl);
    hdr[hl] = 0;
    char key[200];
    snprintf(key, sizeof key, "\"%s\"", name);
    const uint16_t *res = NULL;
    char *p = strstr(hdr, key), *end = p ? strchr(p, '}') : NULL;
    if (p && end) {
        *end = 0;
        char *dt = strstr(p, "\"dtype\""), *sh = strstr(p, "\"shape\""), *of = strstr(p, "\"data_offsets\"");
        unsigned long long a, b;
        if (dt && sh && of && strstr(dt, "\"F16\"") && sscanf(strchr(sh, '['), "[%d,%d]", rows, cols) == 2 &&
            sscanf(strchr(of, '['), "[%llu,%llu]", &a, &b) == 2 && *rows > 0 && *cols > 0 && b >= a &&
            b <= len - 8 - hl && b - a == 2ull * (unsigned long long)*rows * (unsigned long long)*cols)
            res = (const uint16_t *)(buf + 8 + hl + a);
    }
    free(hdr);
    return res;
}

/* Plain asymmetric RTN of real weights into the packed layout. */
static void rtn(const uint16_t *w, int rows, int cols, int bits, int group, hlayer *h)
{
    memset(h, 0, sizeof *h);
    h->rows = rows, h->cols = cols, h->bits = bits, h->group = group;
    h->ngroups = group ? cols / group : 1;
    int G = group ? group : cols;
    size_t rw = (size_t)ptq_pack_row_words(cols, bits);
    h->qw = calloc((size_t)rows * rw, 4);
    h->sc = malloc(2 * (size_t)rows * h->ngroups);
    h->zr = malloc((size_t)rows * h->ngroups);
    unsigned maxq = (1u << bits) - 1u;
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < h->ngroups; g++) {
            float lo = 0, hi = 0;
            for (int k = g * G; k < (g + 1) * G; k++) {
                float v = ptq_f16_to_f32(w[(size_t)r * cols + k]);
                lo = fminf(lo, v), hi = fmaxf(hi, v);
            }
            float s = hi > lo ? (hi - lo) / (float)maxq : 1.0f;
            uint16_t s16 = ptq_f32_to_f16(s);
            s = ptq_f16_to_f32(s16);
            int z = (int)lrintf(-lo / s);
            z = z < 0 ? 0 : (z > (int)maxq ? (int)maxq : z);
            h->sc[(size_t)r * h->ngroups + g] = s16;
            h->zr[(size_t)r * h->ngroups + g] = (uint8_t)z;
            for (int k = g * G; k < (g + 1) * G; k++) {
                long q = lrintf(ptq_f16_to_f32(w[(size_t)r * cols + k]) / s) + z;
                q = q < 0 ? 0 : (q > (long)maxq ? (long)maxq : q);
                ptq_pack_set(h->qw + r * rw, k, bits, (uint32_t)q);
            }
        }
}

int gc_real_layers(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = len > 0 ? malloc((size_t)len) : NULL;
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return -1;
    }
    fclose(f);
    static const char *names[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                                  "model.layers.4.mlp.up_proj.weight"};
    int fails = 0, found = 0;
    for (int i = 0; i < 3; i++) {
        int rows, cols;
        const uint16_t *w = st_find(buf, (size_t)len, names[i], &rows, &cols);
        if (!w) continue;
        found++;
        static const int bitsv[] = {2, 3, 4, 8};
        for (int b = 0; b < 4; b++) {
            hlayer h;
            int group = cols % 32 == 0 ? 32 : 0; /* down_proj: 172 columns, per-row */
            rtn(w, rows, cols, bitsv[b], group, &h);
            printf("     real layer %s:\n", names[i]);
            fails += check_int(&h, 1, 0, "gemv_int(real)");
            fails += check_int(&h, 4, 0, "gemv_int(real)");
            fails += check_int(&h, 37, 1, "gemm_int(real)");
            hl_free(&h);
        }
    }
    free(buf);
    return found ? fails : -1;
}
