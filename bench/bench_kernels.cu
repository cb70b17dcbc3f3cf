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
 * Then the QuIP# E8P linears (lib/cuda/e8p.cu) at 2 and 4 bits on the same
 * shapes: the core GEMV's bytes/s over the copy bandwidth, the Hadamard
 * pass, the whole linear at n = 1, 8 (GEMV) and 64 (mma).
 * Then AQLM 2x8 and 1x16 (lib/cuda/aqlm.cu) on the same shapes: the GEMV at
 * n = 1 against its bandwidth bound (codes + codebooks + scales + x + y over
 * the copy bandwidth) and against cuBLAS fp16, n = 8, and the prefill at
 * n = 16, 64, 256: the fused decode + mma GEMM against decode + cuBLAS (the
 * fallback) and against cuBLAS on weights already in fp16, in the same run.
 * The per-kernel references and checks are lib/cuda/ref/ and tests/gpu/.
 * Output: markdown tables on stdout.  Usage: bench_kernels [--quick]
 */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "bench/cuda_fill.cuh"
#include "lib/cuda/ptqrt_kernels.h"
#include "lib/cuda/e8p_kernels.h"

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

/* ---- QuIP# E8P (lib/cuda/e8p.cu).  Random codes and a random 256-entry
 * table (timing does not depend on the values); Hadamard plans with the K
 * and P that had.c builds for these lengths (4096: K 1, P 4096; 11008: K
 * 172, the Williamson matrix, P 64) and random +-1 K x K factors.  Bytes of the core
 * GEMV = codes + t (float) + z; the bandwidth bound is bytes / copy BW. */
static void e8p_plan_like(int n, ptqk_had *h, std::vector<void *> &bufs)
{
    int K = n == 11008 ? 172 : 1;
    h->n = n, h->K = K, h->P = n / K, h->scale = 1.0f / sqrtf((float)n), h->mk = NULL;
    if (K > 1) {
        std::vector<float> mk((size_t)K * K);
        for (size_t i = 0; i < mk.size(); i++) mk[i] = (i * 2654435761u >> 7) & 1 ? 1.f : -1.f;
        void *d;
        CK(cudaMalloc(&d, mk.size() * 4));
        CK(cudaMemcpy(d, mk.data(), mk.size() * 4, cudaMemcpyHostToDevice));
        bufs.push_back(d);
        h->mk = (const float *)d;
    }
}

static void bench_e8p_shape(int rows, int cols, int bits, size_t l2, double copy_bw)
{
    const int nst = bits / 2;
    size_t cbytes = (size_t)rows * (cols / 8) * 2 * nst;
    int ncopy = (int)std::max<size_t>(2, (4 * l2) / cbytes + 1);
    std::vector<void *> bufs;
    void *tab, *su, *sv;
    CK(cudaMalloc(&tab, 1024));
    CK(bf_fill_u32((uint32_t *)tab, 256, 11));
    CK(cudaMalloc(&su, cols));
    CK(cudaMalloc(&sv, rows));
    CK(cudaMemset(su, 1, cols));
    CK(cudaMemset(sv, 0xff, rows));
    bufs.push_back(tab), bufs.push_back(su), bufs.push_back(sv);
    ptqk_had hin, hout;
    e8p_plan_like(cols, &hin, bufs);
    e8p_plan_like(rows, &hout, bufs);
    std::vector<ptqk_e8p_w> W(ncopy);
    for (int c = 0; c < ncopy; c++) {
        void *codes;
        CK(cudaMalloc(&codes, cbytes));
        CK(bf_fill_u32((uint32_t *)codes, cbytes / 4, 400 + c));
        bufs.push_back(codes);
        ptqk_e8p_w w;
        memset(&w, 0, sizeof w);
        w.rows = rows, w.cols = cols, w.nstages = nst, w.tab = (const uint32_t *)tab;
        for (int s = 0; s < nst; s++)
            w.st[s] = ptqk_e8p_stage{PTQK_E8P_STAGE, s ? 0.01f : 0.04f,
                                     (const uint16_t *)codes + (size_t)s * rows * (cols / 8)};
        w.su = (const int8_t *)su, w.sv = (const int8_t *)sv, w.hin = hin, w.hout = hout;
        W[c] = w;
    }
    void *x, *t, *z, *y, *scr;
    size_t sf = ptqk_e8p_scratch_floats(&W[0], 64);
    CK(cudaMalloc(&x, (size_t)64 * cols * 2));
    CK(cudaMalloc(&t, (size_t)64 * cols * 4));
    CK(cudaMalloc(&z, (size_t)64 * rows * 4));
    CK(cudaMalloc(&y, (size_t)64 * rows * 4));
    CK(cudaMalloc(&scr, sf * 4));
    CK(bf_fill_f16((uint16_t *)x, (size_t)64 * cols, 1.0f, 0.0f, 9));
    CK(cudaMemset(t, 0, (size_t)64 * cols * 4));
    CK(cudaDeviceSynchronize());
    int ci = 0;
    auto core = [&](int n) {
        CK((cudaError_t)ptqk_e8p_gemv(&W[ci], (const float *)t, cols, (float *)z, rows, n, 0));
        ci = (ci + 1) % ncopy;
    };
    auto lin = [&](int n) {
        CK((cudaError_t)ptqk_linear_e8p(&W[ci], (const uint16_t *)x, cols, (float *)y, rows, n, PTQK_GEMV_MAX_N,
                                        (float *)scr, 0));
        ci = (ci + 1) % ncopy;
    };
    auto had = [&](int n) {
        CK((cudaError_t)ptqk_had_fwd(&hin, (const int8_t *)su, (const uint16_t *)x, cols, n, (float *)t, NULL,
                                     (float *)scr, 0));
    };
    double c1 = median_ms([&] { core(1); }, 4 * ncopy);
    double l1 = median_ms([&] { lin(1); }, 4 * ncopy);
    double l8 = median_ms([&] { lin(8); }, 4 * ncopy);
    double h1 = median_ms([&] { had(1); }, 20);
    double l64 = median_ms([&] { lin(64); }, 4 * ncopy);
    double bytes = (double)cbytes + 4.0 * cols + 4.0 * rows;
    double bw = bytes / (c1 * 1e-3);
    printf("| %d x %d | %d | %.2f | %.1f | %.3f | %.2f | %.2f | %.2f | %.1f (%.1f) |\n", rows, cols, bits, c1 * 1e3,
           bw / 1e9, bw / copy_bw, h1 * 1e3, l1 * 1e3, l8 * 1e3, l64 * 1e3,
           2.0 * rows * cols * 64 / (l64 * 1e-3) / 1e12);
    fflush(stdout);
    for (void *p : bufs) cudaFree(p);
    cudaFree(x), cudaFree(t), cudaFree(z), cudaFree(y), cudaFree(scr);
}

static void bench_e8p(size_t l2, double copy_bw)
{
    printf("\n| QuIP# E8P rows x cols | bits | core GEMV n=1 us | GB/s | / copy BW | Hadamard V x n=1 us | "
           "linear n=1 us | linear n=8 us | linear (mma) n=64 us (TFLOP/s) |\n|---|---|---|---|---|---|---|---|---|\n");
    const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}};
    for (int s = 0; s < 3; s++)
        for (int bits = 2; bits <= 4; bits += 2) bench_e8p_shape(shapes[s][0], shapes[s][1], bits, l2, copy_bw);
}

/* ---- AQLM (lib/cuda/aqlm.cu).  Random codes (every value is a valid code
 * at B = 8 and 16) and codebooks; each weight copy has its own codebooks, as
 * each linear of a model does. */
static void bench_aqlm_shape(cublasHandle_t h, int rows, int cols, int M, int B, size_t l2, double copy_bw,
                             std::vector<std::string> &prefill_rows)
{
    size_t cbytes = (size_t)rows * (cols / 8) * M * (B > 8 ? 2 : 1), bbytes = ((size_t)M << B) * 16,
           hbytes = (size_t)rows * cols * 2;
    int ncopy = (int)std::max<size_t>(2, (4 * l2) / (cbytes + bbytes) + 1);
    int ncopyh = (int)std::max<size_t>(2, (4 * l2) / hbytes + 1);
    std::vector<ptqk_aqlm_w> W(ncopy);
    std::vector<void *> bufs, H(ncopyh);
    for (int c = 0; c < ncopy; c++) {
        void *codes, *cb, *sc;
        CK(cudaMalloc(&codes, cbytes));
        CK(cudaMalloc(&cb, bbytes));
        CK(cudaMalloc(&sc, (size_t)rows * 2));
        bufs.push_back(codes), bufs.push_back(cb), bufs.push_back(sc);
        CK(bf_fill_u32((uint32_t *)codes, cbytes / 4, 500 + c));
        CK(bf_fill_f16((uint16_t *)cb, bbytes / 2, 1.0f, 0.0f, 600 + c));
        CK(bf_fill_f16((uint16_t *)sc, rows, 0.001f, 0.002f, 700 + c));
        W[c] = ptqk_aqlm_w{rows, cols, M, B, codes, (const uint16_t *)cb, (const uint16_t *)sc};
    }
    for (int c = 0; c < ncopyh; c++) {
        CK(cudaMalloc(&H[c], hbytes));
        CK(bf_fill_f16((uint16_t *)H[c], hbytes / 2, 0.02f, 0.0f, 800 + c));
    }
    void *x, *y, *yh, *scr;
    const int NMAX = 256;
    CK(cudaMalloc(&x, (size_t)NMAX * cols * 2));
    CK(cudaMalloc(&y, (size_t)NMAX * rows * 4));
    CK(cudaMalloc(&yh, (size_t)NMAX * rows * 2));
    CK(cudaMalloc(&scr, hbytes));
    CK(bf_fill_f16((uint16_t *)x, (size_t)NMAX * cols, 1.0f, 0.0f, 9));
    CK(cudaDeviceSynchronize());
    int ci = 0, chi = 0;
    auto lin = [&](int n) {
        CK((cudaError_t)ptqk_linear_aqlm(h, &W[ci], (const uint16_t *)x, cols, (float *)y, rows, n, PTQK_GEMV_MAX_N,
                                         (uint16_t *)scr, 0));
        ci = (ci + 1) % ncopy;
    };
    auto unfused = [&](int n) {
        CK((cudaError_t)ptqk_decode_gemm_aqlm(h, &W[ci], (const uint16_t *)x, cols, (float *)y, rows, n,
                                              (uint16_t *)scr, 0));
        ci = (ci + 1) % ncopy;
    };
    auto cub = [&](int n) {
        const float one = 1.0f, zero = 0.0f;
        if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, rows, n, cols, &one, H[chi], CUDA_R_16F, cols, x, CUDA_R_16F,
                         cols, &zero, yh, CUDA_R_16F, rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) !=
            CUBLAS_STATUS_SUCCESS) {
            fprintf(stderr, "bench_kernels: cublasGemmEx failed\n");
            exit(1);
        }
        chi = (chi + 1) % ncopyh;
    };
    double t1 = median_ms([&] { lin(1); }, 4 * ncopy), c1 = median_ms([&] { cub(1); }, 4 * ncopyh);
    double t8 = median_ms([&] { lin(8); }, 4 * ncopy), c8 = median_ms([&] { cub(8); }, 4 * ncopyh);
    double bytes = (double)cbytes + bbytes + 2.0 * rows + 2.0 * cols + 4.0 * rows, bound = bytes / copy_bw * 1e3;
    printf("| %d x %d | %dx%d | %.2f | %.2f | %.3f | %.2f | %.2fx | %.2f | %.2f |\n", rows, cols, M, B, t1 * 1e3,
           bound * 1e3, bound / t1, c1 * 1e3, c1 / t1, t8 * 1e3, c8 * 1e3);
    fflush(stdout);
    /* prefill: lin(n > PTQK_GEMV_MAX_N) is the fused GEMM (ptqk_linear_aqlm) */
    static const int np[3] = {16, 64, NMAX};
    for (int i = 0; i < 3; i++) {
        int n = np[i];
        double tf = median_ms([&] { lin(n); }, ncopy), tu = median_ms([&] { unfused(n); }, ncopy),
               tc = median_ms([&] { cub(n); }, ncopyh);
        char line[256];
        snprintf(line, sizeof line, "| %d x %d | %dx%d | %d | %.1f | %.1f | %.1f | %.2fx | %.2fx |\n", rows, cols, M,
                 B, n, tf * 1e3, 2.0 * rows * cols * n / (tf * 1e-3) / 1e12, tu * 1e3, tu / tf, tc / tf);
        prefill_rows.push_back(line);
    }
    for (void *p : bufs) cudaFree(p);
    for (void *p : H) cudaFree(p);
    cudaFree(x), cudaFree(y), cudaFree(yh), cudaFree(scr);
}

static void bench_aqlm(cublasHandle_t h, size_t l2, double copy_bw)
{
    printf("\n| AQLM rows x cols | MxB | GEMV n=1 us | bandwidth bound us | bound / time | cuBLAS fp16 n=1 us | "
           "speedup n=1 | GEMV n=8 us | cuBLAS n=8 us |\n"
           "|---|---|---|---|---|---|---|---|---|\n");
    const int shapes[3][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}}, cfg[2][2] = {{2, 8}, {1, 16}};
    std::vector<std::string> pre;
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < 2; c++)
            bench_aqlm_shape(h, shapes[s][0], shapes[s][1], cfg[c][0], cfg[c][1], l2, copy_bw, pre);
    printf("\n| AQLM prefill rows x cols | MxB | n | fused decode+mma us | TFLOP/s | decode+cuBLAS us | "
           "decode+cuBLAS / fused | cuBLAS fp16 weights / fused |\n|---|---|---|---|---|---|---|---|\n");
    for (const std::string &r : pre) fputs(r.c_str(), stdout);
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
    bench_e8p(l2, copy_bw);
    bench_aqlm(h, l2, copy_bw);
    printf("\nTargets: GEMV n=1 bytes/s over copy bandwidth >= 0.8; vs cuBLAS fp16 >= 3.5x at n=1, >= 2.5x at n=16.\n");
    cublasDestroy(h);
    return 0;
}
