/* cuda_fill.cuh - deterministic random fills of device memory for the CUDA
 * benchmarks (benchmark scaffolding, not part of libptqrt): element i of a
 * fill is a function of (seed, i) through splitmix64, so any launch shape
 * gives the same bytes.  Include from one .cu file per program. */
#ifndef PTQC_BENCH_CUDA_FILL_CUH
#define PTQC_BENCH_CUDA_FILL_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

__device__ __forceinline__ uint64_t bf_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define BF_GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void bf_fill_u32_kernel(uint32_t *p, size_t n, uint64_t seed)
{
    BF_GRID_STRIDE(i, n) p[i] = (uint32_t)bf_mix64(seed * 0x100000001b3ull + i);
}

__global__ void bf_fill_f16_kernel(__half *p, size_t n, float amp, float offset, uint64_t seed)
{
    BF_GRID_STRIDE(i, n)
    {
        float u = (float)(bf_mix64(seed * 0x100000001b3ull + i) >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
        p[i] = __float2half_rn(offset + amp * (2.0f * u - 1.0f));
    }
}

__global__ void bf_fill_u8_kernel(uint8_t *p, size_t n, unsigned lo, unsigned hi, uint64_t seed)
{
    BF_GRID_STRIDE(i, n) p[i] = (uint8_t)(lo + (unsigned)(bf_mix64(seed * 0x100000001b3ull + i) % (uint64_t)(hi - lo + 1)));
}

static unsigned bf_grid(size_t n)
{
    size_t g = (n + 255) / 256;
    return (unsigned)(g < 65535 ? (g ? g : 1) : 65535);
}

/* Uniform 32-bit words. */
static cudaError_t bf_fill_u32(uint32_t *p, size_t n, uint64_t seed)
{
    if (n) bf_fill_u32_kernel<<<bf_grid(n), 256>>>(p, n, seed);
    return cudaGetLastError();
}
/* fp16 uniform in [offset - amp, offset + amp). */
static cudaError_t bf_fill_f16(uint16_t *p, size_t n, float amp, float offset, uint64_t seed)
{
    if (n) bf_fill_f16_kernel<<<bf_grid(n), 256>>>(reinterpret_cast<__half *>(p), n, amp, offset, seed);
    return cudaGetLastError();
}
/* Bytes uniform in [lo, hi]. */
static cudaError_t bf_fill_u8(uint8_t *p, size_t n, unsigned lo, unsigned hi, uint64_t seed)
{
    if (hi < lo) return cudaErrorInvalidValue;
    if (n) bf_fill_u8_kernel<<<bf_grid(n), 256>>>(p, n, lo, hi, seed);
    return cudaGetLastError();
}

#endif
