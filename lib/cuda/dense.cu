/* dense.cu - fp16 linears for the tensors kept in FP16 (and the FP16
 * baseline model of the benchmark): cuBLAS GemmEx with fp16 inputs, fp32
 * compute and fp32 output.  (The plain kernel version that the GPU checks
 * hold next to cuBLAS is tests/gpu/dense_naive.cu.)
 *
 * y [n][rows] (row-major) = x [n][cols] * W^T with W [rows][cols] row-major.
 * cuBLAS is column-major: W row-major is the column-major cols x rows matrix
 * with lda = cols, so C (rows x n, ldc = ldy) = op_T(W) * op_N(X) with X the
 * column-major cols x n matrix of ldb = ldx.
 */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "lib/cuda/ptqrt_kernels.h"

extern "C" int ptqk_linear_f16(void *cublas, const ptqk_f16_w *w, const uint16_t *x, int ldx,
                               float *y, int ldy, int n)
{
    if (n < 1 || w->rows < 1 || w->cols < 1 || ldx < w->cols || ldy < w->rows)
        return (int)cudaErrorInvalidValue;
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t st = cublasGemmEx((cublasHandle_t)cublas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, n,
                                     w->cols, &alpha, w->w, CUDA_R_16F, w->cols, x, CUDA_R_16F, ldx,
                                     &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                                     CUBLAS_GEMM_DEFAULT);
    /* cuBLAS statuses are not cudaError_t values: report them as a launch failure */
    return st == CUBLAS_STATUS_SUCCESS ? 0 : (int)cudaErrorLaunchFailure;
}
