/* e8p.c - the QuIP# (E8P) linears of lib/cuda/e8p.cu against their CPU
 * references (lib/cuda/ref/e8p_ref.c, had.h) on random layers of SmolLM2's
 * shapes 576 x 576, 1536 x 576, 576 x 1536 (plans K 36 x P 16 and K 12 x
 * P 128) and a pure power of two, at 2, 3 (E8P + 1-bit) and 4 bits.
 *
 * Tolerances (u = 2^-24):
 *  - Hadamard kernels vs ptq_had_fwd/ptq_had_inv: the same operations in
 *    the same order (e8p.cu), so on hosts without FMA contraction the bits
 *    agree; the check allows the norm-wise bound of had.h's steps,
 *    ||d||_2 <= 2 (log2 P + K + 2) u ||x||_2, and reports how many vectors
 *    were bit-identical.  fp16 output: within one fp16 rounding of the CPU
 *    float result (|d| <= 1.01 2^-11 |v| + 2^-24, the 1 % for a float
 *    result that is not bit-identical) element-wise.
 *  - Core GEMV (exact codewords, fp32 accumulate): per output |z - z_ref| <=
 *    2 (L + 8) u A, A = sum_s scale_s sum_k |e_k t_k|, L the most products
 *    one lane sums (64 per 256 codes on the wide path, 8 per 32 on the
 *    narrow one); a wrong code shifts z by ~ 8 A / cols, far above it.
 *  - Core GEMM (fp16 codewords are exact, t fp16 in both): the integer
 *    GEMM's (K/16 + 32) 2^-22 A (tests/gpu/int_linear.c).
 *  - Whole linear vs W x (W decoded by qf_e8p.c): norm-wise per token,
 *    ||y - y_ref||_2 <= c ||W||_F ||x||_2 with c = 4 (a_rows + a_cols + cols
 *    + 4) u (twice qf_e8p.c's bound for the CPU's own fused product) on
 *    the GEMV path, plus 2^-11 on the GEMM path (t rounded to fp16). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/cuda/e8p_view.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/qfmt.h"
#include "tests/gpu/cases.h"
#include "tests/gpu/common.h"

#define U24 5.9604644775390625e-8

static void random_e8p(ptq_qtensor *q, int rows, int cols, int bits)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_E8P, q->rows = rows, q->cols = cols, q->bits = bits;
    size_t nb = (size_t)ptq_qf_e8p_bytes(q, 0);
    q->e8_codes = malloc(nb + 2);
    for (size_t i = 0; i < nb / 2 + 1; i++) q->e8_codes[i] = (uint16_t)gc_rnd();
    q->e8_scale = malloc(8);
    q->e8_scale[0] = 0.037f, q->e8_scale[1] = 0.037f / 3.45f;
    q->e8_su = malloc((size_t)cols);
    q->e8_sv = malloc((size_t)rows);
    for (int i = 0; i < cols; i++) q->e8_su[i] = gc_rnd() & 1 ? -1 : 1;
    for (int i = 0; i < rows; i++) q->e8_sv[i] = gc_rnd() & 1 ? -1 : 1;
}

/* A device copy of an E8P layer: every pointer of w (host) duplicated. */
typedef struct dev_e8p {
    ptqk_e8p_w w;
    void *p[10];
} dev_e8p;

static void dev_free(dev_e8p *d)
{
    for (int i = 0; i < 10; i++) gc_free_dev(d->p[i]);
    memset(d, 0, sizeof *d);
}

static int dev_up(const ptqk_e8p_w *h, dev_e8p *d)
{
    memset(d, 0, sizeof *d);
    d->w = *h;
    size_t per = (size_t)h->rows * (h->cols / 8);
    int np = 0, ok = 1;
    for (int s = 0; s < h->nstages; s++) {
        size_t b = per * (h->st[s].kind == PTQK_E8P_STAGE ? 2 : 1);
        ok &= (d->p[np] = gc_dup_dev(h->st[s].codes, b)) != NULL;
        d->w.st[s].codes = d->p[np++];
    }
    ok &= (d->p[np] = gc_dup_dev(h->tab, 1024)) != NULL, d->w.tab = d->p[np++];
    if (h->tab1) ok &= (d->p[np] = gc_dup_dev(h->tab1, 1024)) != NULL, d->w.tab1 = d->p[np++];
    ok &= (d->p[np] = gc_dup_dev(h->su, (size_t)h->cols)) != NULL, d->w.su = d->p[np++];
    ok &= (d->p[np] = gc_dup_dev(h->sv, (size_t)h->rows)) != NULL, d->w.sv = d->p[np++];
    const ptqk_had *hs[2] = {&h->hin, &h->hout};
    ptqk_had *hd[2] = {&d->w.hin, &d->w.hout};
    for (int i = 0; i < 2; i++) {
        size_t kk = (size_t)hs[i]->K * hs[i]->K;
        ok &= (d->p[np] = gc_dup_dev(hs[i]->mk, 4 * kk)) != NULL, hd[i]->mk = d->p[np++];
    }
    if (!ok) dev_free(d);
    return ok ? 0 : (int)cudaErrorMemoryAllocation;
}

/* ---------------------------------------------------------------- Hadamard */
static int check_had(int len, int ntok)
{
    ptq_had h;
    ptq_err e;
    if (ptq_had_plan(&h, len, &e)) {
        printf("FAIL e8p had %d: no plan (%s)\n", len, e.msg);
        return 1;
    }
    ptqk_had hh = ptqk_had_view(&h);
    size_t nn = (size_t)ntok * len;
    uint16_t *x16 = malloc(2 * nn);
    int8_t *s = malloc((size_t)len);
    float *xf = malloc(4 * nn), *ref = malloc(4 * nn), *tmp = malloc(4 * (size_t)len), *got = malloc(4 * nn);
    uint16_t *g16 = malloc(2 * nn);
    for (size_t i = 0; i < nn; i++) x16[i] = ptq_f32_to_f16(gc_frand(-2.f, 2.f)), xf[i] = ptq_f16_to_f32(x16[i]);
    for (int i = 0; i < len; i++) s[i] = gc_rnd() & 1 ? -1 : 1;
    void *dmk = gc_dup_dev(h.mk, 4 * (size_t)h.K * h.K), *ds = gc_dup_dev(s, (size_t)len);
    void *dx = gc_dup_dev(x16, 2 * nn), *dz = gc_dup_dev(xf, 4 * nn), *dt = gc_dup_dev(NULL, 4 * nn);
    void *dt16 = gc_dup_dev(NULL, 2 * nn), *dtmp = gc_dup_dev(NULL, 4 * nn), *dy = gc_dup_dev(NULL, 4 * nn);
    hh.mk = dmk;
    int err = dmk && ds && dx && dz && dt && dt16 && dtmp && dy ? 0 : (int)cudaErrorMemoryAllocation;
    double worst = 0;
    int exact = 0, bad = 0;
    for (int pass = 0; pass < 3 && !err; pass++) { /* fwd float, fwd fp16, inv */
        if (pass == 0) err = ptqk_had_fwd(&hh, ds, dx, len, ntok, dt, NULL, dtmp, NULL);
        else if (pass == 1) err = ptqk_had_fwd(&hh, ds, dx, len, ntok, NULL, dt16, dtmp, NULL);
        else err = ptqk_had_inv(&hh, ds, dz, ntok, dy, len, dtmp, NULL);
        if (!err) err = (int)cudaDeviceSynchronize();
        if (!err && pass == 1) err = (int)cudaMemcpy(g16, dt16, 2 * nn, cudaMemcpyDeviceToHost);
        if (!err && pass != 1) err = (int)cudaMemcpy(got, pass ? dy : dt, 4 * nn, cudaMemcpyDeviceToHost);
        if (err) break;
        memcpy(ref, xf, 4 * nn);
        if (pass < 2) ptq_had_fwd(&h, s, ref, ntok, tmp);
        else ptq_had_inv(&h, s, ref, ntok, tmp);
        double bound = 2 * (log2(h.P) + h.K + 2) * U24;
        for (int t = 0; t < ntok; t++) {
            const float *r = ref + (size_t)t * len, *g = got + (size_t)t * len;
            double d2 = 0, x2 = 0;
            int same = 1;
            for (int i = 0; i < len; i++) {
                x2 += (double)xf[(size_t)t * len + i] * xf[(size_t)t * len + i];
                if (pass == 1) {
                    double v = ptq_f16_to_f32(g16[(size_t)t * len + i]);
                    double tol = 1.01 * ldexp(fabs(r[i]), -11) + U24;
                    if (fabs(v - r[i]) / tol > worst) worst = fabs(v - r[i]) / tol;
                    bad += !(fabs(v - r[i]) <= tol);
                } else {
                    d2 += (double)(g[i] - r[i]) * (g[i] - r[i]);
                    same &= g[i] == r[i];
                }
            }
            if (pass == 1) continue;
            exact += same;
            double q = sqrt(d2) / (bound * sqrt(x2) + 1e-30);
            if (q > worst) worst = q;
            bad += !(q <= 1.0);
        }
    }
    if (err) printf("FAIL e8p had %d: CUDA error %s\n", len, cudaGetErrorString((cudaError_t)err));
    else
        printf("%s e8p had %d (K %d, P %d), %d tokens fwd/fp16/inv: worst error/tolerance %.3f, "
               "%d of %d float vectors bit-identical to had.c\n",
               bad ? "FAIL" : "ok  ", len, h.K, h.P, ntok, worst, exact, 2 * ntok);
    gc_free_dev(dmk), gc_free_dev(ds), gc_free_dev(dx), gc_free_dev(dz), gc_free_dev(dt);
    gc_free_dev(dt16), gc_free_dev(dtmp), gc_free_dev(dy);
    free(x16), free(s), free(xf), free(ref), free(tmp), free(got), free(g16);
    ptq_had_free(&h);
    return err || bad ? 1 : 0;
}

/* ---------------------------------------------------------------- core products */
/* gemm = 0: ptqk_e8p_gemv on float t; 1: ptqk_e8p_gemm on fp16 t. */
static int check_core(const ptqk_e8p_w *hw, int n, int gemm)
{
    int rows = hw->rows, cols = hw->cols, per = cols / 8;
    size_t nt = (size_t)n * cols, nz = (size_t)n * rows;
    float *t = malloc(4 * nt), *z = malloc(4 * nz);
    uint16_t *t16 = malloc(2 * nt);
    double *zr = malloc(8 * nz), *a = malloc(8 * nz);
    for (size_t i = 0; i < nt; i++) {
        t16[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
        t[i] = gemm ? ptq_f16_to_f32(t16[i]) : gc_frand(-1.f, 1.f);
    }
    dev_e8p d;
    int err = dev_up(hw, &d);
    void *dt = gemm ? gc_dup_dev(t16, 2 * nt) : gc_dup_dev(t, 4 * nt), *dz = gc_dup_dev(NULL, 4 * nz);
    if (!err && (!dt || !dz)) err = (int)cudaErrorMemoryAllocation;
    if (!err) err = gemm ? ptqk_e8p_gemm(&d.w, dt, cols, dz, rows, n, NULL) : ptqk_e8p_gemv(&d.w, dt, cols, dz, rows, n, NULL);
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(z, dz, 4 * nz, cudaMemcpyDeviceToHost);
    int bad = 0;
    double worst = 0;
    if (!err) {
        ptqr_e8p_rotated(hw, t, cols, n, zr, a);
        int L = 64 * ((per + 255) / 256), L2 = 8 * ((per + 31) / 32);
        double tolf = gemm ? (cols / 16.0 + 32.0) * ldexp(1.0, -22) : 2.0 * ((L > L2 ? L : L2) + 8) * U24;
        for (size_t i = 0; i < nz; i++) {
            double dd = fabs(z[i] - zr[i]), tol = tolf * a[i] + 1e-30;
            if (dd / tol > worst) worst = dd / tol;
            if (!(dd <= tol) && bad++ < 3)
                printf("  e8p %s: t %d row %d: got %.9g want %.9g (tol %.3g)\n", gemm ? "gemm" : "gemv",
                       (int)(i / rows), (int)(i % rows), z[i], zr[i], tol);
        }
        printf("%s e8p_%s: %d x %d, %d stage(s)%s, n %d: worst error/tolerance %.3f\n", bad ? "FAIL" : "ok  ",
               gemm ? "gemm" : "gemv", rows, cols, hw->nstages, hw->tab1 ? " (E8P + 1-bit)" : "", n, worst);
    } else {
        printf("FAIL e8p_%s %d x %d n %d: CUDA error %s\n", gemm ? "gemm" : "gemv", rows, cols, n,
               cudaGetErrorString((cudaError_t)err));
    }
    dev_free(&d);
    gc_free_dev(dt), gc_free_dev(dz);
    free(t), free(z), free(t16), free(zr), free(a);
    return err || bad ? 1 : 0;
}

/* ---------------------------------------------------------------- whole linear */
static int check_linear(const ptq_qtensor *q, const ptqk_e8p_w *hw, const ptq_had *hn, const ptq_had *hm, int n)
{
    int rows = q->rows, cols = q->cols;
    size_t nx = (size_t)n * cols, ny = (size_t)n * rows;
    uint16_t *x = malloc(2 * nx);
    float *y = malloc(4 * ny);
    double *yr = malloc(8 * ny);
    for (size_t i = 0; i < nx; i++) x[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    dev_e8p d;
    int err = dev_up(hw, &d);
    size_t sf = ptqk_e8p_scratch_floats(hw, n);
    void *dx = gc_dup_dev(x, 2 * nx), *dy = gc_dup_dev(NULL, 4 * ny), *ds = gc_dup_dev(NULL, 4 * sf);
    if (!err && (!dx || !dy || !ds)) err = (int)cudaErrorMemoryAllocation;
    if (!err) err = ptqk_linear_e8p(&d.w, dx, cols, dy, rows, n, PTQK_GEMV_MAX_N, ds, NULL);
    if (!err) err = (int)cudaDeviceSynchronize();
    if (!err) err = (int)cudaMemcpy(y, dy, 4 * ny, cudaMemcpyDeviceToHost);
    int bad = 0;
    double worst = 0;
    if (!err) {
        double wf = ptqr_linear_e8p(q, x, cols, n, yr);
        double an = log2(hn->P) + hn->K + 2, am = log2(hm->P) + hm->K + 2;
        double c = 4 * (am + an + cols + 4) * U24 + (n > PTQK_GEMV_MAX_N ? ldexp(1.0, -11) : 0.0);
        for (int t = 0; t < n; t++) {
            double d2 = 0, x2 = 0;
            for (int r = 0; r < rows; r++) d2 += (y[(size_t)t * rows + r] - yr[(size_t)t * rows + r]) *
                                                 (y[(size_t)t * rows + r] - yr[(size_t)t * rows + r]);
            for (int k = 0; k < cols; k++) x2 += (double)ptq_f16_to_f32(x[(size_t)t * cols + k]) * ptq_f16_to_f32(x[(size_t)t * cols + k]);
            double qq = sqrt(d2) / (c * wf * sqrt(x2) + 1e-30);
            if (qq > worst) worst = qq;
            bad += !(qq <= 1.0) || wf < 0;
        }
        printf("%s e8p linear (%s): %d x %d, %d bits, n %d: worst error/tolerance %.3f\n", bad ? "FAIL" : "ok  ",
               n > PTQK_GEMV_MAX_N ? "mma" : "gemv", rows, cols, q->bits, n, worst);
    } else {
        printf("FAIL e8p linear %d x %d n %d: CUDA error %s\n", rows, cols, n, cudaGetErrorString((cudaError_t)err));
    }
    dev_free(&d);
    gc_free_dev(dx), gc_free_dev(dy), gc_free_dev(ds);
    free(x), free(y), free(yr);
    return err || bad ? 1 : 0;
}

int gc_e8p(void)
{
    int fails = 0;
    static const int lens[] = {576, 1536, 4096, 5632, 11008};
    for (int i = 0; i < 5; i++) fails += check_had(lens[i], i < 3 ? 3 : 1);
    /* rows, cols, bits: SmolLM2's shapes at 2 and 4 bits, 3 bits (E8P +
     * 1-bit), a pure power of two, and a width that is not a multiple of 32 */
    static const int cases[][3] = {{576, 576, 2},  {576, 576, 4},   {576, 576, 3},  {1536, 576, 2},
                                   {1536, 576, 4}, {576, 1536, 2},  {576, 1536, 4}, {256, 512, 2},
                                   {40, 200, 2},   {40, 200, 3},    {40, 200, 4}};
    static const int gv[] = {1, 2, 8}, gm[] = {1, 9, 33};
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        const int *sh = cases[c], bits = cases[c][2];
        ptq_qtensor q;
        random_e8p(&q, sh[0], sh[1], bits);
        ptq_had hn, hm;
        ptq_err e;
        ptqk_e8p_w w;
        if (ptq_had_plan(&hn, q.cols, &e) || ptq_had_plan(&hm, q.rows, &e) || ptqk_e8p_view(&q, &hn, &hm, &w)) {
            printf("FAIL e8p %d x %d: no plan or view\n", q.rows, q.cols);
            fails++;
            ptq_qtensor_free(&q);
            continue;
        }
        for (int i = 0; i < 3; i++) fails += check_core(&w, gv[i], 0);
        for (int i = 0; i < 3; i++) fails += check_core(&w, gm[i], 1);
        for (int i = 0; i < 3; i++) fails += check_linear(&q, &w, &hn, &hm, gv[i]);
        fails += check_linear(&q, &w, &hn, &hm, 37);
        ptq_had_free(&hn), ptq_had_free(&hm);
        ptq_qtensor_free(&q);
    }
    return fails;
}
