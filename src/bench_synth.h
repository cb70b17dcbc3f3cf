/* bench_synth.h - the synthetic models of `ptqc bench --synthetic`: Llama
 * shapes with random weights, handed to libptqrt's tensor loader
 * (ptqrt_open_tensors, lib/cuda/ptqrt_kernels.h) exactly as a bundle's
 * tensors are, so the benchmark runs the code that real bundles run.  This
 * is benchmark scaffolding: it lives with the command, not in libptqrt. */
#ifndef PTQC_BENCH_SYNTH_H
#define PTQC_BENCH_SYNTH_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/cuda/ptqrt.h"

/* Every linear packed at bits (2, 3, 4 or 8) in groups of `group` columns
 * (0: per row), or fp16 when bits = 16; embedding and classifier fp16 (as
 * compiled bundles keep them), norms 1. */
typedef struct bench_synth {
    int hidden, intermediate, n_layers, n_heads, n_kv_heads, vocab, max_pos;
    int bits, group;
    uint64_t seed;
} bench_synth;

/* Llama-2-7B shapes: 4096 / 11008 / 32 layers / 32 heads / 32000 vocab. */
void bench_synth_llama7b(bench_synth *s, int bits, int group);

int bench_open_synthetic(ptqrt_model **m, const bench_synth *s, const ptqrt_options *o, ptq_err *e);

#endif
