/* cases.h - the GPU kernel tests of libptqrt: each kernel against a CPU
 * reference written here (double precision), on random layers and on real
 * layers.  Used by tests/check_cuda.c (Check) and by tests/gpu/standalone.c
 * (a plain main for machines without Check).  Each returns the number of
 * failed comparisons and prints one line per case to stdout. */
#ifndef PTQC_GPU_CASES_H
#define PTQC_GPU_CASES_H

/* 1 when a CUDA device is usable. */
int gc_have_device(void);
int gc_gemv_int(void);
int gc_gemm_int(void);
int gc_dense(void);
int gc_layers(void);
/* Real weights: path of a safetensors file with F16 Llama linears (the
 * shared stories260k checkpoint); its q_proj/down_proj of layer 0 are
 * quantized with a plain RTN written in cases.c and run through both
 * kernels.  Returns -1 when the file cannot be read. */
int gc_real_layers(const char *safetensors_path);

#endif
