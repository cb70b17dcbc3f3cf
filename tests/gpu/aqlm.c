/* aqlm.c - the AQLM kernels (lib/cuda/aqlm.cu) against their CPU reference
 * (lib/cuda/ref/aqlm_ref.c, the decode of lib/qfmt/aqlm_decode.h that
 * tests/check_aqlm_decode shows equal to the CPU runtime's decode bit for
 * bit), on random layers 576x576, 1536x576 and 4096x4096 with 2x8, 1x16 and
 * 3x8 codebooks (1x8 and 4x8 on the small shape).
 *
 * Tolerances (A = sum_k |w_k x_k| of the reference weights):
 *  - decode to fp16 (prefill) and the embedding gather: exact.  The kernel
 *    runs the same float operations as the reference (codeword sum, one
 *    multiply, round to nearest even), so every bit must agree.
 *  - GEMV: |y - y_ref| <= 2 (K/32 + 8) 2^-24 A + 1e-7.  The group sums y_g
 *    are exact copies of the reference's; each lane then accumulates K/32
 *    products with fmaf (one rounding each), a 5-level shuffle tree and one
 *    multiply by the scale follow, and the reference's weight s * y_g is
 *    itself rounded once: at most (K/32 + 7) u A, doubled.  One wrong group
 *    shifts y by about 8 A / K, over 30x that bound at K = 4096.
 *  - prefill (decode + cuBLAS, fp32 accumulate of exact fp16 products): the
 *    GEMM bound of tests/gpu/dense.c, (K/16 + 32) 2^-22 A, against the
 *    reference with fp16-rounded weights.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/aqlm_decode.h"
#include "tests/gpu/cases.h"
#include "tests/gpu/common.h"

/* A random AQLM layer in host memory: codewords in [-1, 1], scales in
 * [0.002, 0.05] with some negative, codes uniform. */
static ptqk_aqlm_w aq_random(int rows, int cols, int M, int B)
{
    size_t nc = (size_t)rows * (cols / 8) * M, nb = ((size_t)M << B) * 8;
    void *codes = malloc(nc * (B > 8 ? 2 : 1));
    uint16_t *cb = malloc(2 * nb), *sc = malloc(2 * (size_t)rows);
    for (size_t i = 0; i < nc; i++) {
        unsigned c = gc_rnd() & ((1u << B) - 1);
        if (B > 8) ((uint16_t *)codes)[i] = (uint16_t)c;
        else ((uint8_t *)codes)[i] = (uint8_t)c;
    }
    for (size_t i = 0; i < nb; i++) cb[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    for (int r = 0; r < rows; r++) sc[r] = ptq_f32_to_f16(gc_frand(0.002f, 0.05f) * (r % 5 == 4 ? -1 : 1));
    return (ptqk_aqlm_w){rows, cols, M, B, codes, cb, sc};
}

static void aq_free(ptqk_aqlm_w *h)
{
    free((void *)h->codes), free((void *)h->codebooks), free((void *)h->scales);
}

/* Device copy of h into *d; returns 0 or a CUDA error. */
static int aq_dev(const ptqk_aqlm_w *h, ptqk_aqlm_w *d)
{
    size_t nc = (size_t)h->rows * (h->cols / 8) * h->m * (h->b > 8 ? 2 : 1), nb = ((size_t)h->m << h->b) * 16;
    *d = *h;
    d->codes = gc_dup_dev(h->codes, nc);
    d->codebooks = gc_dup_dev(h->codebooks, nb);
    d->scales = gc_dup_dev(h->scales, 2 * (size_t)h->rows);
    return d->codes && d->codebooks && d->scales ? 0 : (int)cudaErrorMemoryAllocation;
}

static void aq_dev_free(ptqk_aqlm_w *d)
{
    gc_free_dev((void *)d->codes), gc_free_dev((void *)d->codebooks), gc_free_dev((void *)d->scales);
}

/* GEMV (prefill = 0) or decode + cuBLAS (prefill = 1) of n tokens against the
 * reference; returns 1 on failure. */
static int check_linear(void *cublas, const ptqk_aqlm_w *h, const ptqk_aqlm_w *d, int n, int prefill)
{
    size_t ny = (size_t)n * h->rows;
    uint16_t *x = malloc(2 * (size_t)n * h->cols);
    float *y = malloc(4 * ny);
    double *yr = malloc(8 * ny), *a = malloc(8 * ny);
    for (size_t i = 0; i < (size_t)n * h->cols; i++) x[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    void *dx = gc_dup_dev(x, 2 * (size_t)n * h->cols), *dy = gc_dup_dev(NULL, 4 * ny);
    void *scr = prefill ? gc_dup_dev(NULL, 2 * (size_t)h->rows * h->cols) : NULL;
    int err = dx && dy && (scr || !prefill) ? 0 : (int)cudaErrorMemoryAllocation;
    if (!err) err = ptqk_linear_aqlm(cublas, d, dx, h->cols, dy, h->rows, n, prefill ? 0 : PTQK_GEMV_MAX_N, scr, NULL);
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(y, dy, 4 * ny, cudaMemcpyDeviceToHost);
    double worst = 1e9;
    if (err) {
        printf("  CUDA error %s\n", cudaGetErrorString((cudaError_t)err));
    } else {
        ptqr_linear_aqlm(h, prefill, x, h->cols, n, yr, a);
        double tolf = prefill ? (h->cols / 16.0 + 32.0) * ldexp(1.0, -22) : 2.0 * (h->cols / 32.0 + 8.0) * ldexp(1.0, -24);
        worst = 0;
        for (size_t i = 0; i < ny; i++) {
            double dd = fabs(y[i] - yr[i]), tol = tolf * a[i] + 1e-7;
            if (!(dd / tol <= worst)) worst = isnan(dd) ? 1e9 : dd / tol;
        }
    }
    char what[128];
    snprintf(what, sizeof what, "aqlm %s %dx%d: %d x %d, n %d", prefill ? "prefill (decode+cuBLAS)" : "gemv", h->m,
             h->b, h->rows, h->cols, n);
    gc_free_dev(dx), gc_free_dev(dy), gc_free_dev(scr);
    free(x), free(y), free(yr), free(a);
    return gc_report(what, worst);
}

/* The fp16 decode and the embedding gather, bit for bit; returns failures. */
static int check_exact(const ptqk_aqlm_w *h, const ptqk_aqlm_w *d)
{
    int G = h->cols / 8, fails = 0;
    size_t nw = (size_t)h->rows * h->cols;
    uint16_t *w16 = malloc(2 * nw);
    void *dw = gc_dup_dev(NULL, 2 * nw);
    int err = dw ? ptqk_decode_aqlm(d, dw, NULL) : (int)cudaErrorMemoryAllocation;
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(w16, dw, 2 * nw, cudaMemcpyDeviceToHost);
    size_t bad = err ? nw : 0;
    for (int r = 0; r < h->rows && !err; r++)
        for (int g = 0; g < G; g++) {
            float ref[8];
            ptqr_aqlm_group(h, r, g, 1, ref);
            for (int i = 0; i < 8; i++) bad += w16[(size_t)r * h->cols + g * 8 + i] != ptq_f32_to_f16(ref[i]);
        }
    printf("%s aqlm decode->fp16 %dx%d: %d x %d: %zu of %zu weights differ (exact)\n", bad ? "FAIL" : "ok  ", h->m,
           h->b, h->rows, h->cols, bad, nw);
    fails += bad != 0;
    gc_free_dev(dw), free(w16);

    int32_t tok[4] = {0, h->rows - 1, h->rows / 2, 3 % h->rows};
    float *e = malloc(4 * 4 * (size_t)h->cols);
    void *dt = gc_dup_dev(tok, sizeof tok), *de = gc_dup_dev(NULL, 4 * 4 * (size_t)h->cols);
    err = dt && de ? ptqk_embed_aqlm(d, dt, 4, de, NULL) : (int)cudaErrorMemoryAllocation;
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(e, de, 4 * 4 * (size_t)h->cols, cudaMemcpyDeviceToHost);
    bad = err ? 1 : 0;
    for (int t = 0; t < 4 && !err; t++)
        for (int g = 0; g < G; g++) {
            float ref[8];
            ptqr_aqlm_group(h, tok[t], g, 0, ref);
            bad += memcmp(ref, e + (size_t)t * h->cols + g * 8, sizeof ref) != 0;
        }
    printf("%s aqlm embedding %dx%d: %d x %d, 4 tokens: %zu groups differ (exact)\n", bad ? "FAIL" : "ok  ", h->m,
           h->b, h->rows, h->cols, bad);
    fails += bad != 0;
    gc_free_dev(dt), gc_free_dev(de), free(e);
    return fails;
}

int gc_aqlm(void)
{
    static const int shapes[][2] = {{576, 576}, {1536, 576}, {4096, 4096}};
    static const int cfg[][2] = {{2, 8}, {1, 16}, {3, 8}, {1, 8}, {4, 8}}, nv[] = {1, 2, 8};
    cublasHandle_t cublas = NULL;
    if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) {
        printf("FAIL aqlm: cublasCreate\n");
        return 1;
    }
    int fails = 0;
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < 5; c++) {
            if (c >= 3 && s > 0) continue; /* 1x8 and 4x8 on the small shape only */
            ptqk_aqlm_w h = aq_random(shapes[s][0], shapes[s][1], cfg[c][0], cfg[c][1]), d;
            if (aq_dev(&h, &d)) {
                printf("FAIL aqlm: out of device memory\n");
                fails++;
            } else {
                for (int i = 0; i < 3; i++) fails += check_linear(cublas, &h, &d, nv[i], 0);
                if (s < 2 || c == 0) fails += check_linear(cublas, &h, &d, 37, 1);
                fails += check_exact(&h, &d);
            }
            aq_dev_free(&d);
            aq_free(&h);
        }
    cublasDestroy(cublas);
    return fails;
}
