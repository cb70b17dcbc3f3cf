/* dense.c - the fp16 linears: cuBLAS (lib/cuda/dense.cu) and the naive
 * kernel (dense_naive.cu) against the CPU reference (lib/cuda/ref/dense_ref.c).
 * Tolerance: the GEMM's, |y - y_ref| <= (K/16 + 32) 2^-22 A with A =
 * sum_k |w_k x_k| (fp32 accumulation of exact fp16 products, in any order
 * cuBLAS picks). */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/base/half.h"
#include "lib/cuda/ref/ref.h"
#include "tests/gpu/cases.h"
#include "tests/gpu/common.h"

/* cuBLAS into y1 and the naive kernel into y2, each [n][rows]. */
static int run_dense(void *handle, const uint16_t *w, const uint16_t *x, int rows, int cols, int n, float *y1,
                     float *y2)
{
    size_t ny = (size_t)n * rows;
    void *dw = gc_dup_dev(w, 2 * (size_t)rows * cols), *dx = gc_dup_dev(x, 2 * (size_t)n * cols);
    void *d1 = gc_dup_dev(NULL, 4 * ny), *d2 = gc_dup_dev(NULL, 4 * ny);
    int err = (int)cudaErrorMemoryAllocation;
    if (dw && dx && d1 && d2) {
        ptqk_f16_w fw = {rows, cols, dw};
        err = ptqk_linear_f16(handle, &fw, dx, cols, d1, rows, n);
        if (!err) err = gc_linear_f16_naive(&fw, dx, cols, d2, rows, n, NULL);
        if (!err) err = (int)cudaDeviceSynchronize();
        if (!err) err = (int)cudaMemcpy(y1, d1, 4 * ny, cudaMemcpyDeviceToHost);
        if (!err) err = (int)cudaMemcpy(y2, d2, 4 * ny, cudaMemcpyDeviceToHost);
    }
    gc_free_dev(dw), gc_free_dev(dx), gc_free_dev(d1), gc_free_dev(d2);
    return err;
}

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
        size_t ny = (size_t)n * rows;
        uint16_t *w = malloc(2 * (size_t)rows * cols), *x = malloc(2 * (size_t)n * cols);
        float *y1 = malloc(4 * ny), *y2 = malloc(4 * ny);
        double *yr = malloc(8 * ny), *a = malloc(8 * ny);
        for (size_t i = 0; i < (size_t)rows * cols; i++) w[i] = ptq_f32_to_f16(gc_frand(-0.1f, 0.1f));
        for (size_t i = 0; i < (size_t)n * cols; i++) x[i] = ptq_f32_to_f16(gc_frand(-1.f, 1.f));
        int err = run_dense(handle, w, x, rows, cols, n, y1, y2);
        ptqk_f16_w hw = {rows, cols, w};
        ptqr_linear_f16(&hw, x, cols, n, yr, a);
        double worst = err ? 1e9 : 0;
        for (size_t i = 0; i < ny && !err; i++) {
            double tol = (cols / 16.0 + 32.0) * ldexp(1.0, -22) * a[i] + 1e-7;
            double d = fmax(fabs(y1[i] - yr[i]), fabs(y2[i] - yr[i]));
            if (d / tol > worst) worst = d / tol;
        }
        if (err) printf("FAIL dense: CUDA error %s\n", cudaGetErrorString((cudaError_t)err));
        char what[96];
        snprintf(what, sizeof what, "dense f16 (cuBLAS and naive kernel): %d x %d, n %d", rows, cols, n);
        fails += gc_report(what, worst);
        free(w), free(x), free(y1), free(y2), free(yr), free(a);
    }
    cublasDestroy(handle);
    return fails;
}
