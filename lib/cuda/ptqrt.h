/* ptqrt.h - libptqrt, the CUDA runtime of ptqc bundles.  The one public
 * header; see also ptqrt(3).
 *
 * A deployment links libptqrt alone (plus the CUDA runtime, cuBLAS and
 * cJSON): it opens a bundle written by `ptqc compile`, uploads its packed
 * weights unchanged to one GPU, and runs Llama-family decoders over batches
 * of token ids with an fp16 KV cache.  Tokenization is the caller's (the
 * bundle carries tokenizer.json; `ptqc run` uses ptqc's tokenizer).
 *
 *   ptqrt_options o; ptqrt_options_default(&o);
 *   ptqrt_model *m; ptq_err e;
 *   if (ptqrt_open(&m, "model.ptq", &o, &e)) { fprintf(stderr, "%s\n", e.msg); return e.status; }
 *   int32_t out[64]; int nout;
 *   ptqrt_sampling s = {0.0f, 1.0f, 0};            greedy
 *   ptqrt_generate(m, prompt, nprompt, 64, &s, out, &nout, NULL, NULL, &e);
 *   ptqrt_close(m);
 *
 * Errors are values: every fallible call returns a status of lib/base/err.h
 * (PTQ_OK = 0; PTQ_ENODEV = 9 when no CUDA device is usable; PTQ_ENOMEM on
 * GPU memory exhaustion; PTQ_EFORMAT for a bundle that does not describe a
 * supported model; PTQ_EUSAGE for arguments out of range; PTQ_EINTERNAL for a
 * CUDA failure) and fills the ptq_err with one message.  Nothing prints or
 * exits.  A model is used by one thread at a time; different models are
 * independent.  Numerics: weights as stored (packed integer formats are
 * dequantized inside the kernels; dense tensors as fp16, norms in fp32),
 * activations fp16 at the inputs of linears, fp32 everywhere else.
 */
#ifndef PTQC_PTQRT_H
#define PTQC_PTQRT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ptqrt_model ptqrt_model;

typedef struct ptqrt_options {
    int device;     /* CUDA device ordinal (0) */
    int max_batch;  /* sequences per forward call (1) */
    int max_seq;    /* KV-cache positions per sequence (0: min(max_position_embeddings, 2048)) */
    int max_tokens; /* tokens per internal chunk of a forward: bounds the scratch memory (256) */
    int verify;     /* verify every payload's SHA-256 when opening (1) */
    int gemv_max_n; /* use the GEMV kernels up to this many tokens per call, the tensor-core
                       GEMM above (8; at most 8) */
} ptqrt_options;

void ptqrt_options_default(ptqrt_options *o);

/* Number of usable CUDA devices (0 when there is none or no driver). */
int ptqrt_device_count(void);

/* Open, validate and upload a bundle. */
int ptqrt_open(ptqrt_model **m, const char *bundle_path, const ptqrt_options *o, ptq_err *e);

void ptqrt_close(ptqrt_model *m);

typedef struct ptqrt_info {
    int hidden, intermediate, n_layers, n_heads, n_kv_heads, head_dim, vocab;
    int max_batch, max_seq, max_tokens;
    int bos_id, eos_id;       /* -1 when the config has none */
    int weight_bits;          /* bits of the packed linears (16: fp16; 0: mixed) */
    char device_name[256];
    int device_cc;            /* compute capability, e.g. 90 */
} ptqrt_info;
void ptqrt_get_info(const ptqrt_model *m, ptqrt_info *info);

typedef struct ptqrt_mem {
    size_t weights;   /* device bytes of weights, scales, zeros, norms */
    size_t kv_cache;  /* device bytes of the KV cache (fp16, int8 for int8-KV layers) */
    size_t scratch;   /* device bytes of activations and logits */
    size_t device_free, device_total; /* cudaMemGetInfo */
} ptqrt_mem;
int ptqrt_memory(const ptqrt_model *m, ptqrt_mem *mem, ptq_err *e);

/* Forward B sequences of T new tokens each (tokens [B][T], ids < vocab),
 * placed at positions pos .. pos+T-1; the KV cache keeps positions < pos of
 * earlier calls (pos = 0 starts fresh).  Needs B <= max_batch and
 * pos + T <= max_seq.  logits: all_logits ? [B][T][vocab] : [B][vocab] of
 * each sequence's last token (float32, host memory). */
int ptqrt_forward(ptqrt_model *m, const int32_t *tokens, int B, int T, int pos, float *logits,
                  int all_logits, ptq_err *e);

/* Perplexity windows (ptqc-ppl-v1, see ptqc-eval(1)): the first n_ids / ctx
 * non-overlapping windows of ctx ids, each run from position 0 (up to
 * max_batch windows per forward).  window_nll [n_ids / ctx] receives, per
 * window, the sum over t = 1..ctx-1 of logsumexp(l) - l[ids[t]] for the
 * float32 logits l at position t - 1, in double on the host.  Needs
 * 2 <= ctx <= max_seq; PTQ_EDATA when a logit is not finite. */
int ptqrt_eval_nll(ptqrt_model *m, const int32_t *ids, size_t n_ids, int ctx, double *window_nll,
                   ptq_err *e);

/* Deterministic random numbers: xoshiro256** seeded through splitmix64 (the
 * same stream as the CPU runtime of ptqc for the same seed). */
typedef struct ptqrt_rng { uint64_t s[4]; } ptqrt_rng;
void ptqrt_rng_seed(ptqrt_rng *r, uint64_t seed);
double ptqrt_rng_uniform(ptqrt_rng *r); /* [0, 1), 53 random bits */

/* Sample an id from logits [vocab]: temp <= 0 is greedy (lowest id among
 * equal maxima); else softmax(logits / temp) restricted to the smallest set
 * of most probable tokens whose mass reaches top_p (ties by id), then one
 * uniform draw.  Returns -1 on allocation failure. */
int ptqrt_sample(const float *logits, int vocab, float temp, float top_p, ptqrt_rng *rng);

typedef struct ptqrt_sampling {
    float temp;    /* 0: greedy */
    float top_p;   /* 1: no truncation */
    uint64_t seed;
} ptqrt_sampling;

/* Called with each generated token; return nonzero to stop. */
typedef int (*ptqrt_token_cb)(void *ud, int32_t token);

/* Batch-1 generation: prefill prompt [n_prompt] (n_prompt >= 1), then sample
 * up to max_new tokens into out, stopping after EOS (kept in out) or at
 * max_seq.  *n_out = tokens written. */
int ptqrt_generate(ptqrt_model *m, const int32_t *prompt, int n_prompt, int max_new,
                   const ptqrt_sampling *s, int32_t *out, int *n_out, ptqrt_token_cb cb, void *ud,
                   ptq_err *e);

#ifdef __cplusplus
}
#endif

#endif
