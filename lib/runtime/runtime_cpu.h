/* runtime_cpu.h - the CPU reference runtime: a bundle as a ptq_weights
 * provider (lib/model/model.h).
 *
 * Each layer is dequantized into the caller's float32 buffers when the
 * forward pass asks for it (lib/qfmt/qtensor.c decodes the same bytes the GPU
 * kernels read), so memory holds the mapped bundle plus one float32 layer;
 * there is never a float copy of the whole model.  embed() decodes only the
 * embedding rows of the requested tokens; head() the final norm and lm_head
 * (the embedding when tie_word_embeddings).  At batch 1 (want_packed) every
 * linear whose format has a fused GEMV (lib/qfmt/qfmt.h: int, dense) is
 * handed as a view of the map instead, and head_packed() hands the lm_head
 * the same way, so a decode step never widens a weight.
 */
#ifndef PTQC_RUNTIME_CPU_H
#define PTQC_RUNTIME_CPU_H

#include "formats/bundle.h"
#include "formats/checkpoint.h"
#include "formats/config.h"
#include "formats/tokenizer.h"
#include "lib/model/model.h"

typedef struct ptq_cpu_model {
    ptq_bundle b;
    ptq_config cfg; /* parsed from the bundle's config.json member */
    /* the current layer's linears (views into the map), which ptq_layer_w.aq
     * points at for W8A8 / FP8 (such linears run as 8-bit products) and
     * ptq_layer_w.q at for PTQ_QF_INT when the caller asks for packed
     * decoding (the packed GEMV, lib/qfmt/gemv_int.h) */
    ptq_qtensor aq[PTQ_NLINEAR];
    /* the lm_head (the embedding when tied), a view handed to the batch-1
     * decoder by head_packed when its format has a fused GEMV */
    ptq_qtensor head;
    /* the current layer's int8 KV-cache scales [2][kv heads * head_dim],
     * which ptq_layer_w.kv_scale points at (allocated on first use) */
    float *kv_scale;
} ptq_cpu_model;

/* Open path (a .ptq bundle); verify=1 checks every checksum first.  m must not
 * move while a provider from ptq_cpu_weights is in use. */
int ptq_cpu_open(ptq_cpu_model *m, const char *path, int verify, ptq_err *e);
void ptq_cpu_close(ptq_cpu_model *m);
void ptq_cpu_weights(ptq_cpu_model *m, ptq_weights *w);
/* The tokenizer stored in the bundle (tokenizer.json + tokenizer_config.json). */
int ptq_cpu_tokenizer(const ptq_cpu_model *m, ptq_tokenizer **t, ptq_err *e);
/* The same from an open bundle, and from the bundle at path (opened without
 * verification, for a caller whose model load verifies it). */
int ptq_bundle_tokenizer(const ptq_bundle *b, ptq_tokenizer **t, ptq_err *e);
int ptq_bundle_file_tokenizer(const char *path, ptq_tokenizer **t, ptq_err *e);

/* "A model or a bundle": path is a checkpoint directory or a .ptq file (any
 * regular file is tried as a bundle).  Gives a ptq_weights provider and the
 * tokenizer (NULL when the checkpoint has none).  s must not move while w is
 * in use. */
typedef struct ptq_model_src {
    int is_bundle;
    ptq_checkpoint ck;
    ptq_cpu_model cm;
    ptq_weights w;
    ptq_tokenizer *tok;
    /* A safetensors checkpoint: w is ck's provider (ckw) plus packed views
     * for the batch-1 decoder: when it asks (want_packed), a layer whose
     * seven linears are F16/BF16/F32 and aligned in the map is handed as
     * dense tensors (lin, views of the map) that the forward multiplies by
     * with the dense GEMV, and head_packed gives the lm_head the same way.
     * Each viewed tensor is checked once for NaN/Inf (finite[], like the
     * widening would); a .gguf is always widened. */
    ptq_weights ckw;
    ptq_qtensor lin[PTQ_NLINEAR], head;
    unsigned char *finite; /* [n_layers * PTQ_NLINEAR + 1]: 1 once checked */
} ptq_model_src;

int ptq_model_src_open(ptq_model_src *s, const char *path, ptq_err *e);
void ptq_model_src_close(ptq_model_src *s);
/* 1 when path names a regular file (taken as a bundle), 0 otherwise. */
int ptq_path_is_bundle(const char *path);

#endif
