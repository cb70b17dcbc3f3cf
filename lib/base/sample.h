/* sample.h - the random number generator and the next-token sampler, shared
 * by the CPU decoder (lib/model/generate.c) and the CUDA runtime (lib/cuda/ptqrt.c), so
 * equal logits and seeds give equal tokens on either. */
#ifndef PTQC_SAMPLE_H
#define PTQC_SAMPLE_H

#include <stdint.h>

/* xoshiro256** seeded with splitmix64: same seed, same stream, everywhere. */
typedef struct ptq_rng { uint64_t s[4]; } ptq_rng;
void ptq_rng_seed(ptq_rng *r, uint64_t seed);
uint64_t ptq_rng_next(ptq_rng *r);
double ptq_rng_uniform(ptq_rng *r); /* [0, 1) with 53 random bits */

/* Sample from logits [vocab]: temp <= 0 is greedy argmax (lowest id on ties);
 * else softmax(logits / temp) restricted to the smallest set of top tokens
 * whose mass reaches top_p (1 = all).  scratch: 2 * vocab floats or NULL. */
int ptq_sample(const float *logits, int vocab, float temp, float top_p, ptq_rng *rng);

#endif
