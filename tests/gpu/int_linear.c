/* int_linear.c - the packed integer linears (lib/cuda/gemv_int.cu, the fused
 * GEMV; lib/cuda/gemm_int.cu, the mma GEMM) against their CPU reference
 * (lib/cuda/ref/int_ref.c) on random layers and on real stories260k layers.
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
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/cuda/ref/ref.h"
#include "lib/qfmt/pack.h"
#include "tests/gpu/cases.h"
#include "tests/gpu/common.h"

/* Run the int kernel (gemm = 0: GEMV) on the device copy of h, y [n][rows]. */
static int run_int(const gc_layer *h, const uint16_t *x, int n, int gemm, float *y)
{
    const ptqk_int_w *w = &h->w;
    size_t rw = (size_t)ptq_pack_row_words(w->cols, w->bits), ng = (size_t)w->rows * w->ngroups;
    void *dq = gc_dup_dev(h->qw, 4 * rw * w->rows), *ds = gc_dup_dev(h->sc, 2 * ng);
    void *dz = gc_dup_dev(h->zr, ng), *dg = h->gidx ? gc_dup_dev(h->gidx, 4 * (size_t)w->cols) : NULL;
    void *dx = gc_dup_dev(x, 2 * (size_t)n * w->cols), *dy = gc_dup_dev(NULL, 4 * (size_t)n * w->rows);
    int err = (int)cudaErrorMemoryAllocation;
    if (dq && ds && dz && dx && dy && (dg || !h->gidx)) {
        ptqk_int_w d = {w->rows, w->cols, w->bits, w->group, w->ngroups, dq, ds, dz, dg};
        err = gemm ? ptqk_gemm_int(&d, dx, w->cols, dy, w->rows, n, NULL)
                   : ptqk_gemv_int(&d, dx, w->cols, dy, w->rows, n, NULL);
        if (!err) err = (int)cudaDeviceSynchronize();
        if (!err) err = (int)cudaMemcpy(y, dy, 4 * (size_t)n * w->rows, cudaMemcpyDeviceToHost);
    }
    gc_free_dev(dq), gc_free_dev(ds), gc_free_dev(dz), gc_free_dev(dg), gc_free_dev(dx), gc_free_dev(dy);
    return err;
}

/* One comparison of a kernel with the reference; returns 1 on failure. */
static int check_int(const gc_layer *h, int n, int gemm, const char *what)
{
    const ptqk_int_w *w = &h->w;
    size_t ny = (size_t)n * w->rows;
    uint16_t *x = malloc(2 * (size_t)n * w->cols);
    float *y = malloc(4 * ny);
    double *yr = malloc(8 * ny), *a = malloc(8 * ny);
    for (size_t i = 0; i < (size_t)n * w->cols; i++) x[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
    int err = run_int(h, x, n, gemm, y), bad = 0;
    double worst = 0.0;
    if (err) {
        printf("FAIL %s: CUDA error %s\n", what, cudaGetErrorString((cudaError_t)err));
        bad = 1;
    } else {
        ptqr_linear_int(w, gemm, x, w->cols, n, yr, a);
        double tolf = gemm ? (w->cols / 16.0 + 32.0) * ldexp(1.0, -22) : 1e-5;
        for (size_t i = 0; i < ny; i++) {
            double d = fabs(y[i] - yr[i]), tol = tolf * a[i] + 1e-7;
            if (d / tol > worst) worst = d / tol;
            if (!(d <= tol)) {
                if (bad < 3)
                    printf("  %s: t %d row %d: got %.9g want %.9g (tol %.3g)\n", what, (int)(i / w->rows),
                           (int)(i % w->rows), y[i], yr[i], tol);
                bad++;
            }
        }
        printf("%s %s: %d x %d, %d bits, group %d%s, n %d: worst error/tolerance %.3f\n",
               bad ? "FAIL" : "ok  ", what, w->rows, w->cols, w->bits, w->group, h->gidx ? ", g_idx" : "", n,
               worst);
    }
    free(x), free(y), free(yr), free(a);
    return bad ? 1 : 0;
}

typedef struct shape { int rows, cols, group, gidx; } shape;
static const shape shapes[] = {
    {67, 256, 128, 0}, {128, 4096, 128, 0}, {33, 100, 0, 0}, {64, 256, 32, 0},
    {50, 320, 64, 1},  {40, 96, 48, 0},     {24, 11008, 128, 0},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

/* Every shape x bit width x token count (the big shape only for half of them). */
static int sweep(const int *bitsv, int nb, const int *nv, int nn, int gemm, const char *what)
{
    int fails = 0;
    for (int s = 0; s < NSHAPES; s++)
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < nn; i++) {
                if (shapes[s].cols > 4096 && (i % 2 || b % 2)) continue; /* keep the big shape cheap */
                gc_layer h;
                gc_layer_random(&h, shapes[s].rows, shapes[s].cols, bitsv[b], shapes[s].group, shapes[s].gidx);
                fails += check_int(&h, nv[i], gemm, what);
                gc_layer_free(&h);
            }
    return fails;
}

int gc_gemv_int(void)
{
    static const int bitsv[] = {2, 3, 4, 8}, nv[] = {1, 2, 3, 5, 8};
    return sweep(bitsv, 4, nv, 5, 0, "gemv_int");
}

int gc_gemm_int(void)
{
    static const int bitsv[] = {2, 3, 4, 5, 8}, nv[] = {1, 9, 16, 33, 64, 100};
    return sweep(bitsv, 5, nv, 6, 1, "gemm_int");
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

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)n : 0;
    return buf;
}

int gc_real_layers(const char *path)
{
    size_t len;
    uint8_t *buf = read_all(path, &len);
    if (!buf) return -1;
    static const char *names[] = {"model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.down_proj.weight",
                                  "model.layers.4.mlp.up_proj.weight"};
    static const int bitsv[] = {2, 3, 4, 8};
    int fails = 0, found = 0;
    for (int i = 0; i < 3; i++) {
        int rows, cols;
        const uint16_t *w = st_find(buf, len, names[i], &rows, &cols);
        if (!w) continue;
        found++;
        for (int b = 0; b < 4; b++) {
            gc_layer h;
            int group = cols % 32 == 0 ? 32 : 0; /* down_proj: 172 columns, per-row */
            gc_layer_rtn(&h, w, rows, cols, bitsv[b], group);
            printf("     real layer %s:\n", names[i]);
            fails += check_int(&h, 1, 0, "gemv_int(real)");
            fails += check_int(&h, 4, 0, "gemv_int(real)");
            fails += check_int(&h, 37, 1, "gemm_int(real)");
            gc_layer_free(&h);
        }
    }
    free(buf);
    return found ? fails : -1;
}
