/* common.h - what the GPU checks of tests/gpu/ share: a deterministic RNG,
 * device copies, random packed layers on the host, the one-line report, and
 * the test-only naive fp16 kernel (dense_naive.cu).  Each check compares a
 * kernel of lib/cuda against its CPU reference in lib/cuda/ref/. */
#ifndef PTQC_GPU_COMMON_H
#define PTQC_GPU_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/cuda/ptqrt_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

uint32_t gc_rnd(void);                /* xorshift64, one stream for all checks */
float gc_frand(float lo, float hi);   /* uniform in [lo, hi] */
void *gc_dup_dev(const void *h, size_t bytes); /* cudaMalloc + copy; NULL on failure */
void gc_free_dev(void *d);

/* A packed int layer in host memory; w holds the host pointers. */
typedef struct gc_layer {
    ptqk_int_w w;
    uint32_t *qw;
    uint16_t *sc;
    uint8_t *zr;
    int32_t *gidx;
} gc_layer;
/* Random codes, scales in [0.002, 0.05], zeros; gidx: a random group per
 * column (act-order). */
void gc_layer_random(gc_layer *h, int rows, int cols, int bits, int group, int gidx);
/* Plain asymmetric RTN of fp16 weights [rows][cols] into a packed layer. */
void gc_layer_rtn(gc_layer *h, const uint16_t *w, int rows, int cols, int bits, int group);
void gc_layer_free(gc_layer *h);

/* Prints "ok  WHAT: worst error/tolerance X" or FAIL; returns 1 on failure. */
int gc_report(const char *what, double worst);

/* tests/gpu/dense_naive.cu: the fp16 linear as a plain kernel (one thread
 * per output, fp32 fmaf in column order), a second kernel version next to
 * cuBLAS.  Returns a cudaError_t value. */
int gc_linear_f16_naive(const ptqk_f16_w *w, const uint16_t *x, int ldx, float *y, int ldy, int n,
                        ptqk_stream s);

#ifdef __cplusplus
}
#endif

#endif
