/* ptqrt_impl.h - private to libptqrt's host files (lib/cuda/ptqrt*.c): the
 * model struct, device-memory bookkeeping and the CUDA error helper.
 *
 *   ptqrt.c           options, devices, device memory, model setup, teardown, info
 *   ptqrt_load.c      tensors -> device (ptqrt_open_tensors), bundles (ptqrt_open)
 *   ptqrt_forward.c   the decoder forward over the kernels, perplexity windows
 *   ptqrt_generate.c  sampling and batch-1 generation
 */
#ifndef PTQC_PTQRT_IMPL_H
#define PTQC_PTQRT_IMPL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>

#include "formats/config.h"
#include "lib/cuda/ptqrt.h"
#include "lib/cuda/ptqrt_kernels.h"
#include "lib/cuda/e8p_kernels.h"

typedef struct lin {
    int is_int;
    ptqk_int_w iw;
    ptqk_f16_w fw;
    int rows, cols;
    int is_aqlm; /* AQLM codes (aw) */
    ptqk_aqlm_w aw;
    int is_e8p; /* QuIP# E8P codes + Hadamard signs (ew, lib/cuda/ptqrt_e8p.c) */
    ptqk_e8p_w ew;
} lin;

typedef struct layer {
    float *attn_norm, *mlp_norm;
    lin w[7]; /* q k v o gate up down */
    float *bias[3];
    /* KV cache [max_batch][max_seq][kvdim]: fp16 (kc, vc), or int8 codes
     * (kq, vq) when the bundle has the layer's kv_scale [2][kvdim] */
    uint16_t *kc, *vc;
    int8_t *kq, *vq;
    float *kv_scale;
} layer;

struct ptqrt_model {
    ptq_config cfg;
    ptqrt_options opt;
    cudaStream_t stream;
    cublasHandle_t cublas;
    layer *layers;
    lin embed, head;   /* head == embed when tied */
    float *final_norm;
    float *inv_freq;
    /* scratch */
    float *x, *q, *k, *v, *t1, *t2, *xl, *logits;
    uint16_t *xb, *att, *hb;
    int32_t *tok, *idx;
    size_t bytes_weights, bytes_kv, bytes_scratch;
    void **allocs;
    int nallocs, capallocs;
    int weight_bits;
    /* fp16 [rows][cols] of the largest AQLM linear: its prefill decode */
    uint16_t *aq_scratch;
    size_t aq_scratch_n;
    /* E8P: the decode tables, the Hadamard plans by length (their K x K
     * factors uploaded once) and the scratch of the largest E8P linear */
    const uint32_t *e8_tab, *e8_tab1;
    ptqk_had e8_had[8];
    int e8_nhad;
    float *e8_scratch;
    size_t e8_scratch_n;
    char device_name[256];
    int device_cc;
};


/* An error of a CUDA call as a ptq status (PTQ_ENOMEM or PTQ_EINTERNAL). */
int ptqrt_cuda_fail(ptq_err *e, int err, const char *what);
#define CK(call, what)                                      \
    do {                                                    \
        int ck_ = (int)(call);                              \
        if (ck_) return ptqrt_cuda_fail(e, ck_, (what));    \
    } while (0)

/* Device memory recorded in m (freed by ptqrt_close), counted in *account. */
int ptqrt_dalloc(ptqrt_model *m, void **p, size_t bytes, size_t *account, ptq_err *e);
/* A device copy of host bytes, counted as weights. */
int ptqrt_upload(ptqrt_model *m, void **dst, const void *src, size_t bytes, ptq_err *e);
/* Device, stream, cuBLAS, options, scratch and RoPE table for config c; no
 * weights.  On failure *out may hold a model for ptqrt_close. */
int ptqrt_model_begin(ptqrt_model **out, const ptq_config *c, const ptqrt_options *o, ptq_err *e);
/* The KV cache of one layer (after its kv_scale is known): int8 or fp16. */
int ptqrt_alloc_kv(ptqrt_model *m, layer *L, ptq_err *e);

/* lib/cuda/ptqrt_e8p.c: an E8P linear q (checked, shape expected) onto the
 * device into l; and, after every tensor, the scratch the largest needs. */
struct ptq_qtensor;
int ptqrt_upload_e8p(ptqrt_model *m, const struct ptq_qtensor *q, const char *name, lin *l, ptq_err *e);
int ptqrt_e8p_finish(ptqrt_model *m, ptq_err *e);

#endif
