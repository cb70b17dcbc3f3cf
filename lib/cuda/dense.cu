/* dense.cu - fp16 linears for the tensors kept in FP16 (and the FP16
 * baseline model of the benchmark): cuBLAS GemmEx with fp16 inputs, fp32
 * compute and fp32 output; plus a plain reference kernel that the tests
 * check cuBLAS and the packed-integer kernels against on the GPU.
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

__global__ void linear_f16_ref_kernel(ptqk_f16_w w, const __half *x, int ldx, float *y, int ldy, int n)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (r >= w.rows || t >= n) return;
    const __half *wr = reinterpret_cast<const __half *>(w.w) + (size_t)r * w.cols;
    const __half *xr = x + (size_t)t * ldx;
    float acc = 0.0f;
    for (int k = 0; k < w.cols; k++) acc = fmaf(__half2float(wr[k]), __half2float(xr[k]), acc);
    y[(size_t)t * ldy + r] = acc;
}

extern "C" int ptqk_linear_f16_ref(const ptqk_f16_w *w, const uint16_t *x, int ldx, float *y,
                                   int ldy, int n, ptqk_stream s)
{
    if (n < 1 || n > 65535 || w->rows < 1 || w->cols < 1 || ldx < w->cols || ldy < w->rows)
        return (int)cudaErrorInvalidValue;
    dim3 grid((w->rows + 127) / 128, n);
    linear_f16_ref_kernel<<<grid, 128, 0, (cudaStream_t)s>>>(*w, reinterpret_cast<const __half *>(x),
                                                             ldx, y, ldy, n);
    return (int)cudaGetLastError();
}
