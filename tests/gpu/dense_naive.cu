/* dense_naive.cu - test-only kernel version of the fp16 linear (see
 * common.h): one thread per output, fp32 fmaf in column order.  The checks
 * hold cuBLAS (lib/cuda/dense.cu) and this plain kernel to the same CPU
 * reference; it is not part of libptqrt. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "tests/gpu/common.h"

__global__ void linear_f16_naive_kernel(ptqk_f16_w w, const __half *x, int ldx, float *y, int ldy, int n)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (r >= w.rows || t >= n) return;
    const __half *wr = reinterpret_cast<const __half *>(w.w) + (size_t)r * w.cols;
    const __half *xr = x + (size_t)t * ldx;
    float acc = 0.0f;
    for (int k = 0; k < w.cols; k++) acc = fmaf(__half2float(wr[k]), __half2float(xr[k]), acc);
    y[(size_t)t * ldy + r] = acc;
}

extern "C" int gc_linear_f16_naive(const ptqk_f16_w *w, const uint16_t *x, int ldx, float *y, int ldy,
                                   int n, ptqk_stream s)
{
    if (n < 1 || n > 65535 || w->rows < 1 || w->cols < 1 || ldx < w->cols || ldy < w->rows)
        return (int)cudaErrorInvalidValue;
    dim3 grid((w->rows + 127) / 128, n);
    linear_f16_naive_kernel<<<grid, 128, 0, (cudaStream_t)s>>>(*w, reinterpret_cast<const __half *>(x), ldx,
                                                               y, ldy, n);
    return (int)cudaGetLastError();
}
