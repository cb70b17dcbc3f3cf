/* emu.hpp - a CPU emulation of the CUDA execution model, enough to run
 * lib/cuda/e8p.cu's kernels unchanged on the host (tests/gpu/emu/run.sh):
 * one std::thread per CUDA thread, blocks one after another (so a
 * function-static __shared__ array is the block's shared memory), a
 * std::barrier per block for __syncthreads and per warp for
 * __shfl_xor_sync, exited threads dropping out of both; __*_rn as plain
 * float operations (compile with -ffp-contract=off); mma.sync m16n8k16
 * row.col f16 -> f32 computed from the fragments with the layout of the
 * PTX ISA (each lane posts its registers, every lane rebuilds A and B).
 * A development aid for machines without a GPU: it checks indexing,
 * fragment layouts, barriers and the arithmetic against the CPU
 * references, not timing, memory coalescing or real data races. */
#include <barrier>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>
#include <functional>
#include "cuda_runtime.h"
#include "cuda_fp16.h"
struct dim3 { unsigned x, y, z; dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct float4 { float x, y, z, w; };
struct uint4 { uint32_t x, y, z, w; };
struct uint2 { uint32_t x, y; };
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
static inline uint4 make_uint4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) { return {a, b, c, d}; }
thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;
struct emu_warp { float v[32]; uint32_t a[32][4], b[32][2]; float c[32][4], out[32][4]; std::barrier<> *bar; };
thread_local std::barrier<> *emu_bar;
thread_local emu_warp *emu_w;
static float emu_dyn[1 << 16];
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__
static inline void __syncthreads() { emu_bar->arrive_and_wait(); }
template <class T> static inline T __ldg(const T *p) { return *p; }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline uint32_t __float_as_uint(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float __uint_as_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __shfl_xor_sync(unsigned, float v, int off)
{
    int lane = threadIdx.x & 31;
    emu_w->v[lane] = v;
    emu_w->bar->arrive_and_wait();
    float r = emu_w->v[lane ^ off];
    emu_w->bar->arrive_and_wait();
    return r;
}
template <class T> static inline cudaError_t cudaFuncSetAttribute(T, int, int) { return 0; }
/* mma.m16n8k16 row.col f32.f16.f16.f32 as the PTX ISA lays out the fragments */
static inline float h2f(uint32_t w, int hi) { return ptq_f16_to_f32((uint16_t)(hi ? w >> 16 : w & 0xffff)); }
static inline void mma16816(float *c, const uint32_t *a, const uint32_t *b)
{
    int L = threadIdx.x & 31;
    emu_warp *W = emu_w;
    memcpy(W->a[L], a, 16), memcpy(W->b[L], b, 8), memcpy(W->c[L], c, 16);
    W->bar->arrive_and_wait();
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; l++) {
        int g = l >> 2, t = l & 3;
        for (int h = 0; h < 2; h++) {
            A[g][2 * t + h] = h2f(W->a[l][0], h), A[g + 8][2 * t + h] = h2f(W->a[l][1], h);
            A[g][2 * t + 8 + h] = h2f(W->a[l][2], h), A[g + 8][2 * t + 8 + h] = h2f(W->a[l][3], h);
            B[2 * t + h][g] = h2f(W->b[l][0], h), B[2 * t + 8 + h][g] = h2f(W->b[l][1], h);
        }
    }
    int g = L >> 2, t = L & 3;
    for (int i = 0; i < 4; i++) {
        int r = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        float s = c[i];
        for (int k = 0; k < 16; k++) s += A[r][k] * B[k][col];
        c[i] = s;
    }
    W->bar->arrive_and_wait();
}
/* run kern for every block of grid, one std::thread per CUDA thread */
static void emu_launch(dim3 grid, dim3 block, std::function<void()> kern)
{
    int nt = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                std::barrier<> bar(nt);
                int nw = (nt + 31) / 32;
                std::vector<emu_warp> warps(nw);
                std::vector<std::barrier<> *> wb(nw);
                for (int w = 0; w < nw; w++) wb[w] = new std::barrier<>(std::min(32, nt - 32 * w)), warps[w].bar = wb[w];
                std::vector<std::thread> th;
                for (int i = 0; i < nt; i++)
                    th.emplace_back([&, i] {
                        threadIdx = dim3(i); blockIdx = dim3(bx, by, bz); blockDim = block; gridDim = grid;
                        emu_bar = &bar; emu_w = &warps[i / 32];
                        kern();
                        emu_w->bar->arrive_and_drop();
                        bar.arrive_and_drop();
                    });
                for (auto &t : th) t.join();
                for (auto *b : wb) delete b;
            }
}
