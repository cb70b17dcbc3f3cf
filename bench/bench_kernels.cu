/* bench_kernels.cu - single-kernel benchmark of libptqrt (make bench).
 *
 * In one run on one GPU: the device-to-device copy bandwidth (cudaMemcpy,
 * counted as bytes read + bytes written), then for Llama-7B shapes the W4 g128
 * fused GEMV at batch 1 (achieved bytes/s of weights + scales + zeros +
 * activations over the copy bandwidth; target >= 0.8), and its time against
 * cuBLAS FP16 (GemmEx, fp16 in/out, fp32 compute) at batch 1 and 16 (targets
 * >= 3.5x and >= 2.5x).  Every figure is the median of repeated timings with
 * CUDA events; each timing cycles through enough copies of the weights to
 * exceed the L2 cache, so the numbers are DRAM numbers.
 * The per-kernel references and checks are lib/cuda/ref/ and tests/gpu/.
 * Output: markdown tables on stdout.  Usage: bench_kernels [--quick]
 */
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bench/cuda_fill.cuh"
#include "lib/cuda/ptqrt_kernels.h"

#define CK(x)                                                                                   \
    do {                                                                                        \
        cudaError_t e_ = (x);                                                                   \
        if (e_ != cudaSuccess) {                                                                \
            fprintf(stderr, "bench_kernels: %s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_)); \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

static int REPS = 15;

template <class F> static double median_ms(F f, int inner)
{
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    f(); /* warm-up */
    CK(cudaDeviceSynchronize());
    std::vector<double> t;
    for (int r = 0; r < REPS; r++) {
        CK(cudaEventRecord(a));
        for (int i = 0; i < inner; i++) f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms / inner);
    }
    std::sort(t.begin(), t.end());
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return t[t.size() / 2];
}

/* Device-to-device copy bandwidth in bytes/s (bytes read + bytes written). */
static double copy_bandwidth(void)
{
    size_t cbytes = (size_t)1 << 30;
    void *src, *dst;
    CK(cudaMalloc(&src, cbytes));
    CK(cudaMalloc(&dst, cbytes));
    CK(cudaMemset(src, 1, cbytes));
    double cms = median_ms([&] { CK(cudaMemcpyAsync(dst, src, cbytes, cudaMemcpyDeviceToDevice)); }, 3);
    double copy_bw = 2.0 * cbytes / (cms * 1e-3);
    printf("device-to-device copy: %.1f GB/s (read + write of %zu MiB, median)\n\n", copy_bw / 1e9, cbytes >> 20);
    CK(cudaFree(src));
    CK(cudaFree(dst));
    return copy_bw;
}

/* One table row: W4 g128 GEMV / GEMM against cuBLAS fp16 for rows x cols,
 * cycling through enough weight copies to exceed the L2 cache. */
static void bench_shape(cublasHandle_t h, int rows, int cols, size_t l2, double copy_bw)
{
    const int bits = 4, group = 128, ng = cols / group;
    size_t qbytes = (size_t)rows * ptq_pack_row_words(cols, bits) * 4, sbytes = (size_t)rows * ng * 2,
           zbytes = (size_t)rows * ng, hbytes = (size_t)rows * cols * 2;
    int ncopy = (int)std::max<size_t>(2, (4 * l2) / qbytes + 1);
    int ncopyh = (int)std::max<size_t>(2, (4 * l2) / hbytes + 1);
    std::vector<ptqk_int_w> W(ncopy);
    std::vector<void *> bufs;
    for (int c = 0; c < ncopy; c++) {
        void *q, *sc, *z;
        CK(cudaMalloc(&q, qbytes));
        CK(cudaMalloc(&sc, sbytes));
        CK(cudaMalloc(&z, zbytes));
        bufs.push_back(q), bufs.push_back(sc), bufs.push_back(z);
        CK(bf_fill_u32((uint32_t *)q, qbytes / 4, 1 + c));
        CK(bf_fill_f16((uint16_t *)sc, sbytes / 2, 0.001f, 0.002f, 100 + c));
        CK(bf_fill_u8((uint8_t *)z, zbytes, 0, 15, 200 + c));
        W[c] = ptqk_int_w{rows, cols, bits, group, ng, (const uint32_t *)q, (const uint16_t *)sc,
                          (const uint8_t *)z, NULL};
    }
    std::vector<void *> H(ncopyh);
    for (int c = 0; c < ncopyh; c++) {
        CK(cudaMalloc(&H[c], hbytes));
        CK(bf_fill_f16((uint16_t *)H[c], hbytes / 2, 0.02f, 0.0f, 300 + c));
    }
    void *x, *y, *yh;
    CK(cudaMalloc(&x, (size_t)64 * cols * 2));
    CK(cudaMalloc(&y, (size_t)64 * rows * 4));
    CK(cudaMalloc(&yh, (size_t)64 * rows * 2));
    CK(bf_fill_f16((uint16_t *)x, (size_t)64 * cols, 1.0f, 0.0f, 7));
    CK(cudaDeviceSynchronize());
    int ci = 0, chi = 0;
    auto gemv = [&](int n) {
        CK((cudaError_t)ptqk_gemv_int(&W[ci], (const uint16_t *)x, cols, (float *)y, rows, n, 0));
        ci = (ci + 1) % ncopy;
    };
    auto lin = [&](int n) {
        CK((cudaError_t)ptqk_linear_int(&W[ci], (const uint16_t *)x, cols, (float *)y, rows, n,
                                        PTQK_GEMV_MAX_N, 0));
        ci = (ci + 1) % ncopy;
    };
    auto gemm = [&](int n) {
        CK((cudaError_t)ptqk_gemm_int(&W[ci], (const uint16_t *)x, cols, (float *)y, rows, n, 0));
        ci = (ci + 1) % ncopy;
    };
    auto cub = [&](int n) {
        const float one = 1.0f, zero = 0.0f;
        cublasStatus_t st = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &one, H[chi], CUDA_R_16F,
                                         cols, x, CUDA_R_16F, cols, &zero, yh, CUDA_R_16F, rows,
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        if (st != CUBLAS_STATUS_SUCCESS) {
            fprintf(stderr, "bench_kernels: cublasGemmEx failed (%d)\n", (int)st);
            exit(1);
        }
        chi = (chi + 1) % ncopyh;
    };
    double t1 = median_ms([&] { gemv(1); }, 4 * ncopy);
    double c1 = median_ms([&] { cub(1); }, 4 * ncopyh);
    double t16 = median_ms([&] { lin(16); }, 4 * ncopy);
    double c16 = median_ms([&] { cub(16); }, 4 * ncopyh);
    double g16 = median_ms([&] { gemm(16); }, 4 * ncopy);
    double t8 = median_ms([&] { gemv(8); }, 4 * ncopy);
    double bytes = (double)qbytes + sbytes + zbytes + 2.0 * cols + 4.0 * rows;
    double bw = bytes / (t1 * 1e-3);
    printf("| %d x %d | %.2f | %.1f | %.3f | %.2f | %.2fx | %.2f | %.2f | %.2fx | %.2f | %.2f |\n", rows, cols,
           t1 * 1e3, bw / 1e9, bw / copy_bw, c1 * 1e3, c1 / t1, t16 * 1e3, c16 * 1e3, c16 / t16, g16 * 1e3,
           t8 * 1e3);
    fflush(stdout);
    for (void *p : bufs) cudaFree(p);
    for (void *p : H) cudaFree(p);
    cudaFree(x), cudaFree(y), cudaFree(yh);
}

/* The prefill-size GEMM: W4 g128 4096 x 4096 at n = 64, 256, 512. */
static void bench_prefill_gemm(void)
{
    printf("\n| W4g128 GEMM (mma) 4096 x 4096 | n=64 | n=256 | n=512 |\n|---|---|---|---|\n");
    int rows = 4096, cols = 4096, ng = cols / 128;
    void *q, *sc, *z, *x, *y;
    CK(cudaMalloc(&q, (size_t)rows * cols / 2));
    CK(cudaMalloc(&sc, (size_t)rows * ng * 2));
    CK(cudaMalloc(&z, (size_t)rows * ng));
    CK(cudaMalloc(&x, (size_t)512 * cols * 2));
    CK(cudaMalloc(&y, (size_t)512 * rows * 4));
    CK(bf_fill_u32((uint32_t *)q, (size_t)rows * cols / 8, 5));
    CK(bf_fill_f16((uint16_t *)sc, (size_t)rows * ng, 0.001f, 0.002f, 6));
    CK(bf_fill_u8((uint8_t *)z, (size_t)rows * ng, 0, 15, 7));
    CK(bf_fill_f16((uint16_t *)x, (size_t)512 * cols, 1.0f, 0.0f, 8));
    ptqk_int_w w{rows, cols, 4, 128, ng, (const uint32_t *)q, (const uint16_t *)sc, (const uint8_t *)z, NULL};
    printf("| time us (TFLOP/s) |");
    for (int n : {64, 256, 512}) {
        double t = median_ms([&] {
            CK((cudaError_t)ptqk_gemm_int(&w, (const uint16_t *)x, cols, (float *)y, rows, n, 0));
        }, 10);
        printf(" %.1f (%.1f) |", t * 1e3, 2.0 * rows * cols * n / (t * 1e-3) / 1e12);
    }
    printf("\n");
    cudaFree(q), cudaFree(sc), cudaFree(z), cudaFree(x), cudaFree(y);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (quick) REPS = 5;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    size_t l2 = (size_t)prop.l2CacheSize;
    printf("## bench_kernels on %s (sm_%d%d, L2 %zu MiB, %d SMs)\n\n", prop.name, prop.major, prop.minor,
           l2 >> 20, prop.multiProcessorCount);
    double copy_bw = copy_bandwidth();
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "bench_kernels: cublasCreate failed\n");
        return 1;
    }
    const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    printf("| rows x cols | W4g128 GEMV n=1 us | GB/s | / copy BW | cuBLAS fp16 n=1 us | speedup n=1 | W4 n=16 us | cuBLAS n=16 us | speedup n=16 | W4 GEMM n=16 us | W4 GEMV n=8 us |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int s = 0; s < 3; s++) bench_shape(h, shapes[s][0], shapes[s][1], l2, copy_bw);
    bench_prefill_gemm();
    printf("\nTargets: GEMV n=1 bytes/s over copy bandwidth >= 0.8; vs cuBLAS fp16 >= 3.5x at n=1, >= 2.5x at n=16.\n");
    cublasDestroy(h);
    return 0;
}
