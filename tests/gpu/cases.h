/* cases.h - the GPU checks of libptqrt, one per kernel file: each kernel
 * against its CPU reference (lib/cuda/ref/), on random layers and on real
 * layers.  Used by tests/check_cuda.c (Check) and by tests/gpu/standalone.c
 * (a plain main for machines without Check).  Each returns the number of
 * failed comparisons and prints one line per case to stdout.
 *
 *   tests/gpu/int_linear.c  gc_gemv_int, gc_gemm_int, gc_real_layers
 *   tests/gpu/dense.c       gc_dense
 *   tests/gpu/layers.c      gc_layers
 *   tests/gpu/aqlm.c        gc_aqlm
 *   tests/gpu/e8p.c         gc_e8p
 *   tests/gpu/common.c      gc_have_device and the shared helpers (common.h)
 */
#ifndef PTQC_GPU_CASES_H
#define PTQC_GPU_CASES_H

/* 1 when a CUDA device is usable. */
int gc_have_device(void);
int gc_gemv_int(void);
int gc_gemm_int(void);
int gc_dense(void);
/* rmsnorm, swiglu, RoPE + fp16 and int8 KV cache + attention, embeddings. */
int gc_layers(void);
/* AQLM (lib/cuda/aqlm.cu): GEMV, decode + cuBLAS, fp16 decode, embedding. */
int gc_aqlm(void);
/* QuIP# E8P (lib/cuda/e8p.cu): Hadamard, GEMV, mma GEMM, whole linear. */
int gc_e8p(void);
/* Real weights: path of a safetensors file with F16 Llama linears (the
 * shared stories260k checkpoint); its q_proj/down_proj of layer 0 are
 * quantized with a plain RTN (tests/gpu/common.c) and run through both
 * kernels.  Returns -1 when the file cannot be read. */
int gc_real_layers(const char *safetensors_path);

#endif
