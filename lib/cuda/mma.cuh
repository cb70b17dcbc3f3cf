/* mma.cuh - the tensor-core step the decode + GEMM kernels share
 * (gemm_int.cu, e8p.cu, aqlm.cu): one warp's mma.sync.aligned.m16n8k16
 * row.col f16 x f16 -> f32, C += A B, with the PTX ISA's fragment layouts
 * (gemm_int.cu's header lists them), and the 32-bit shared-memory load of
 * two halves the fragments are read with.  tests/gpu/emu/run.sh puts this
 * file's text in place of its #include and replaces mma16816 with the CPU
 * emulation's. */
#ifndef PTQC_CUDA_MMA_CUH
#define PTQC_CUDA_MMA_CUH

#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ void mma16816(float *c, const uint32_t *a, const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t lds32(const __half *p) { return *reinterpret_cast<const uint32_t *>(p); }

#endif
