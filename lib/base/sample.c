/* sample.c - see sample.h */
#include "lib/base/sample.h"

#include <math.h>
#include <stdlib.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ptq_rng_seed(ptq_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ptq_rng_next(ptq_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double ptq_rng_uniform(ptq_rng *r) { return (double)(ptq_rng_next(r) >> 11) * 0x1.0p-53; }

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct { double p; int id; } prob_id;

static int by_prob_desc(const void *a, const void *b)
{
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;
}

int ptq_sample(const float *logits, int vocab, float temp, float top_p, ptq_rng *rng)
{
    if (temp <= 0.0f) return argmax(logits, vocab);
    prob_id *p = malloc(sizeof *p * (size_t)vocab);
    if (!p) return argmax(logits, vocab); /* degrade to greedy rather than fail */
    float mx = logits[argmax(logits, vocab)];
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) {
        p[i].p = exp((double)(logits[i] - mx) / temp);
        p[i].id = i;
        sum += p[i].p;
    }
    int n = vocab;
    if (top_p < 1.0f) {
        qsort(p, (size_t)vocab, sizeof *p, by_prob_desc);
        double cum = 0.0;
        for (n = 0; n < vocab;) {
            cum += p[n++].p / sum;
            if (cum >= top_p) break;
        }
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += p[i].p;
    }
    double u = ptq_rng_uniform(rng) * sum, cum = 0.0;
    int pick = p[n - 1].id;
    for (int i = 0; i < n; i++) {
        cum += p[i].p;
        if (u < cum) {
            pick = p[i].id;
            break;
        }
    }
    free(p);
    return pick;
}

