/* aqlm.c - the AQLM kernels (lib/cuda/aqlm.cu) against their CPU reference
 * (lib/cuda/ref/aqlm_ref.c, the decode of lib/qfmt/aqlm_decode.h that
 * tests/check_aqlm_decode shows equal to the CPU runtime's decode bit for
 * bit), on random layers 576x576, 1536x576 and 4096x4096 with 2x8, 1x16 and
 * 3x8 codebooks (1x8 and 4x8 on the small shape), and for the prefill GEMM
 * also on shapes whose rows and columns are not multiples of its 64 x 64
 * tiles (200x136 with 2x8, 1x16, 3x8, 1x8, 4x8, 8x8, 2x4, 2x16; 72x584;
 * 4160x264, where 300 tokens take the 64-token tiles on a 132-SM GPU) at
 * n = 9 .. 300 tokens, once with padded rows of x and y (ldx > cols, odd:
 * the scalar loads; ldy > rows: the padding must stay untouched).
 *
 * Tolerances (A = sum_k |w_k x_k| of the reference weights):
 *  - decode to fp16 and the embedding gather: exact.  The kernel runs the
 *    same float operations as the reference (codeword sum, one multiply,
 *    round to nearest even), so every bit must agree.
 *  - GEMV: |y - y_ref| <= 2 (K/32 + 8) 2^-24 A + 1e-7.  The group sums y_g
 *    are exact copies of the reference's; each lane then accumulates K/32
 *    products with fmaf (one rounding each), a 5-level shuffle tree and one
 *    multiply by the scale follow, and the reference's weight s * y_g is
 *    itself rounded once: at most (K/32 + 7) u A, doubled.  One wrong group
 *    shifts y by about 8 A / K, over 30x that bound at K = 4096.
 *  - prefill, both the fused decode + mma GEMM and decode + cuBLAS: the
 *    weights are the fp16 bits of the decode (exact, as above), the
 *    fp16 x fp16 products are exact in fp32 and summed by the tensor cores
 *    with fp32 accumulate: the GEMM bound of tests/gpu/dense.c and of the
 *    E8P GEMM (tests/gpu/e8p.c), (K/16 + 32) 2^-22 A + 1e-7, against the
 *    reference with fp16-rounded weights; the two GPU results against each
 *    other within twice that; ptqk_linear_aqlm at n > gemv_max_n equal to
 *    the fused GEMM bit for bit (it dispatches there).
 * Under the CPU emulation (tests/gpu/emu/run.sh aqlm, GC_AQLM_EMU defined)
 * only small shapes run, with cuBLAS replaced by a plain loop.
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

/* GEMV of n tokens against the reference; returns 1 on failure. */
static int check_gemv(void *cublas, const ptqk_aqlm_w *h, const ptqk_aqlm_w *d, int n)
{
    size_t ny = (size_t)n * h->rows;
    uint16_t *x = malloc(2 * (size_t)n * h->cols);
    float *y = malloc(4 * ny);
    double *yr = malloc(8 * ny), *a = malloc(8 * ny);
    for (size_t i = 0; i < (size_t)n * h->cols; i++) x[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    void *dx = gc_dup_dev(x, 2 * (size_t)n * h->cols), *dy = gc_dup_dev(NULL, 4 * ny);
    int err = dx && dy ? 0 : (int)cudaErrorMemoryAllocation;
    if (!err) err = ptqk_linear_aqlm(cublas, d, dx, h->cols, dy, h->rows, n, PTQK_GEMV_MAX_N, NULL, NULL);
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(y, dy, 4 * ny, cudaMemcpyDeviceToHost);
    double worst = 1e9;
    if (err) {
        printf("  CUDA error %s\n", cudaGetErrorString((cudaError_t)err));
    } else {
        ptqr_linear_aqlm(h, 0, x, h->cols, n, yr, a);
        double tolf = 2.0 * (h->cols / 32.0 + 8.0) * ldexp(1.0, -24);
        worst = 0;
        for (size_t i = 0; i < ny; i++) {
            double dd = fabs(y[i] - yr[i]), tol = tolf * a[i] + 1e-7;
            if (!(dd / tol <= worst)) worst = isnan(dd) ? 1e9 : dd / tol;
        }
    }
    char what[128];
    snprintf(what, sizeof what, "aqlm gemv %dx%d: %d x %d, n %d", h->m, h->b, h->rows, h->cols, n);
    gc_free_dev(dx), gc_free_dev(dy);
    free(x), free(y), free(yr), free(a);
    return gc_report(what, worst);
}

/* Runs one prefill path into dy (n rows of ldy floats, prefilled with the
 * NaN bytes 0xff) and copies it to y: 0 fused GEMM, 1 decode + cuBLAS, 2
 * ptqk_linear_aqlm.  Returns a CUDA error. */
static int run_prefill(void *cublas, const ptqk_aqlm_w *d, const void *dx, int ldx, void *dy, int ldy, int n,
                       void *scr, int path, float *y)
{
    size_t bytes = 4 * (size_t)n * ldy;
    memset(y, 0xff, bytes);
    int err = (int)cudaMemcpy(dy, y, bytes, cudaMemcpyHostToDevice);
    if (!err) {
        if (path == 0) err = ptqk_gemm_aqlm(d, dx, ldx, dy, ldy, n, NULL);
        else if (path == 1) err = ptqk_decode_gemm_aqlm(cublas, d, dx, ldx, dy, ldy, n, scr, NULL);
        else err = ptqk_linear_aqlm(cublas, d, dx, ldx, dy, ldy, n, PTQK_GEMV_MAX_N, scr, NULL);
    }
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost);
    if (err) printf("  CUDA error %s (prefill path %d)\n", cudaGetErrorString((cudaError_t)err), path);
    return err;
}

/* The prefill of n > PTQK_GEMV_MAX_N tokens, x rows of ldx >= cols and y
 * rows of ldy >= rows: the fused decode + mma GEMM and decode + cuBLAS
 * against the reference (fp16-rounded weights) and against each other, the
 * padding of y untouched, ptqk_linear_aqlm = the fused GEMM bit for bit.
 * Returns the number of failures. */
static int check_prefill(void *cublas, const ptqk_aqlm_w *h, const ptqk_aqlm_w *d, int n, int ldx, int ldy)
{
    size_t ny = (size_t)n * h->rows, nyp = (size_t)n * ldy, nx = (size_t)n * ldx;
    uint16_t *x = malloc(2 * nx);
    float *yf = malloc(4 * nyp), *yc = malloc(4 * nyp), *yl = malloc(4 * nyp);
    double *yr = malloc(8 * ny), *a = malloc(8 * ny);
    for (size_t i = 0; i < nx; i++) x[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    void *dx = gc_dup_dev(x, 2 * nx), *dy = gc_dup_dev(NULL, 4 * nyp);
    void *scr = gc_dup_dev(NULL, 2 * (size_t)h->rows * h->cols);
    int err = dx && dy && scr ? 0 : (int)cudaErrorMemoryAllocation;
    if (!err) err = run_prefill(cublas, d, dx, ldx, dy, ldy, n, scr, 0, yf);
    if (!err) err = run_prefill(cublas, d, dx, ldx, dy, ldy, n, scr, 1, yc);
    if (!err) err = run_prefill(cublas, d, dx, ldx, dy, ldy, n, scr, 2, yl);
    double wf = 1e9, wc = 1e9, wfc = 1e9;
    size_t pad = 0, disp = 0;
    if (!err) {
        ptqr_linear_aqlm(h, 1, x, ldx, n, yr, a);
        double tolf = (h->cols / 16.0 + 32.0) * ldexp(1.0, -22);
        wf = wc = wfc = 0;
        for (int t = 0; t < n; t++)
            for (int r = 0; r < ldy; r++) {
                size_t i = (size_t)t * ldy + r;
                if (r >= h->rows) { /* the padding: still the 0xff bytes */
                    uint32_t u0, u1;
                    memcpy(&u0, yf + i, 4), memcpy(&u1, yc + i, 4);
                    pad += u0 != 0xffffffffu || u1 != 0xffffffffu;
                    continue;
                }
                size_t k = (size_t)t * h->rows + r;
                double tol = tolf * a[k] + 1e-7, ef = fabs(yf[i] - yr[k]) / tol, ec = fabs(yc[i] - yr[k]) / tol,
                       efc = fabs((double)yf[i] - yc[i]) / (2 * tol);
                if (!(ef <= wf)) wf = isnan(ef) ? 1e9 : ef;
                if (!(ec <= wc)) wc = isnan(ec) ? 1e9 : ec;
                if (!(efc <= wfc)) wfc = isnan(efc) ? 1e9 : efc;
                disp += memcmp(yf + i, yl + i, 4) != 0;
            }
    }
    char what[160], lds[48] = "";
    if (ldx != h->cols || ldy != h->rows) snprintf(lds, sizeof lds, ", ldx %d, ldy %d", ldx, ldy);
    int fails = 0;
    snprintf(what, sizeof what, "aqlm gemm (decode+mma) %dx%d: %d x %d, n %d%s", h->m, h->b, h->rows, h->cols, n, lds);
    fails += gc_report(what, wf);
    snprintf(what, sizeof what, "aqlm prefill (decode+cuBLAS) %dx%d: %d x %d, n %d%s", h->m, h->b, h->rows, h->cols,
             n, lds);
    fails += gc_report(what, wc);
    snprintf(what, sizeof what, "aqlm gemm vs decode+cuBLAS %dx%d: %d x %d, n %d%s", h->m, h->b, h->rows, h->cols, n,
             lds);
    fails += gc_report(what, wfc);
    if (!err) {
        printf("%s aqlm linear n %d -> fused gemm, y padding kept %dx%d: %d x %d: %zu outputs differ, %zu padding "
               "values written\n",
               disp || pad ? "FAIL" : "ok  ", n, h->m, h->b, h->rows, h->cols, disp, pad);
        fails += disp || pad;
    }
    gc_free_dev(dx), gc_free_dev(dy), gc_free_dev(scr);
    free(x), free(yf), free(yc), free(yl), free(yr), free(a);
    return fails;
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

/* One random layer: GEMV at n = 1, 2, 8 (when gemv), the prefill at each of
 * nn[0..cnt), the exact decode and gather (when exact).  Returns failures. */
static int run_layer(void *cublas, int rows, int cols, int M, int B, int gemv, const int *nn, int cnt, int exact,
                     int pad)
{
    static const int nv[] = {1, 2, 8};
    int fails = 0;
    ptqk_aqlm_w h = aq_random(rows, cols, M, B), d;
    if (aq_dev(&h, &d)) {
        printf("FAIL aqlm: out of device memory\n");
        fails++;
    } else {
        for (int i = 0; gemv && i < 3; i++) fails += check_gemv(cublas, &h, &d, nv[i]);
        for (int i = 0; i < cnt; i++)
            fails += check_prefill(cublas, &h, &d, nn[i], pad && i == 1 ? cols + 3 : cols, pad && i == 1 ? rows + 5 : rows);
        if (exact) fails += check_exact(&h, &d);
    }
    aq_dev_free(&d);
    aq_free(&h);
    return fails;
}

int gc_aqlm(void)
{
    static const int cfg[][2] = {{2, 8}, {1, 16}, {3, 8}, {1, 8}, {4, 8}, {8, 8}, {2, 4}, {2, 16}};
    cublasHandle_t cublas = NULL;
    if (cublasCreate(&cublas) != CUBLAS_STATUS_SUCCESS) {
        printf("FAIL aqlm: cublasCreate\n");
        return 1;
    }
    int fails = 0;
#ifndef GC_AQLM_EMU
    static const int shapes[][2] = {{576, 576}, {1536, 576}, {4096, 4096}};
    static const int n_small[] = {9, 37, 300}, n_big[] = {37};
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < 5; c++) {
            if (c >= 3 && s > 0) continue; /* 1x8 and 4x8 on the small shape only */
            int pre = s < 2 || c == 0;     /* the 4096 x 4096 prefill with 2x8 only */
            fails += run_layer(cublas, shapes[s][0], shapes[s][1], cfg[c][0], cfg[c][1], 1, s < 2 ? n_small : n_big,
                               pre ? (s < 2 ? 3 : 1) : 0, 1, 0);
        }
    /* the GEMM's tails: rows % 64, cols % 64 != 0, every codebook shape */
    static const int n_odd[] = {9, 33, 300}, n_mid[] = {16, 65, 129, 300}, n_wide[] = {300};
    for (int c = 0; c < 8; c++) fails += run_layer(cublas, 200, 136, cfg[c][0], cfg[c][1], 0, n_odd, 3, 0, 1);
    for (int c = 0; c < 2; c++) fails += run_layer(cublas, 72, 584, cfg[c][0], cfg[c][1], 0, n_mid, 4, 0, 0);
    for (int c = 0; c < 2; c++) fails += run_layer(cublas, 4160, 264, cfg[c][0], cfg[c][1], 0, n_wide, 1, 0, 0);
#else
    /* the CPU emulation: few blocks (its SM count is 1, so n = 40 and 70
     * take the 64-token tiles on 72 rows, n = 50 two 32-token tiles on 40) */
    static const int n_emu[] = {9, 40, 70}, n_emu2[] = {50};
    for (int c = 0; c < 8; c++) fails += run_layer(cublas, 72, 136, cfg[c][0], cfg[c][1], c < 2, n_emu, 3, c < 2, 1);
    for (int c = 0; c < 2; c++) fails += run_layer(cublas, 40, 64, cfg[c][0], cfg[c][1], 0, n_emu2, 1, 0, 0);
#endif
    cublasDestroy(cublas);
    return fails;
}
