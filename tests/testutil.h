/* testutil.h - shared helpers for the Check tests. */
#ifndef PTQC_TESTUTIL_H
#define PTQC_TESTUTIL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "formats/arch.h"

struct cJSON;
struct Suite;
struct ptq_checkpoint;
struct ptq_fwd;
struct ptq_tokenizer;

/* Path under the shared data directory ($PTQC_SHARED, default ../shared);
 * malloc'ed.  Aborts with a clear message if the directory is missing. */
char *tu_shared(const char *rel);
/* Path under the source tree ($PTQC_SRCDIR, default "."); malloc'ed. */
char *tu_src(const char *rel);
/* A fresh temporary directory (malloc'ed path); tu_rmrf removes it. */
char *tu_tmpdir(void);
void tu_rmrf(const char *path);
/* Whole file into a NUL-terminated buffer (NULL on failure). */
char *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *data, size_t len);
/* Run the built ptqc with a shell-quoted argument string; captures stdout and
 * stderr (malloc'ed, may be NULL) and returns the exit status (or -1). */
int tu_ptqc(const char *args, char **out, char **err);
/* Run every test of s (CK_NORMAL); the exit status for main: 0 when all
 * passed, else 1. */
int tu_run(struct Suite *s);
/* printf into a malloc'ed string. */
char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The tests' one RNG: splitmix64 on a caller's state (seed it by
 * assignment); unif in (0, 1), normal by Box-Muller on two unifs.  Inline so
 * tests/synth.c needs no library (the benches link it alone). */
static inline uint64_t tu_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline double tu_rng_unif(uint64_t *s)
{
    return ((double)(tu_rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}
static inline float tu_rng_normal(uint64_t *s)
{
    double u = tu_rng_unif(s);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * tu_rng_unif(s)));
}

/* The helpers below fail the running Check test (ck_assert) on any error. */

/* `ptqc compile 'model' -o 'out' --calib 'calib' FLAGS` (calib NULL: the
 * shared text/tinystories-calib.txt); returns the exit status, *err the
 * stderr text (err may be NULL). */
int tu_compile(const char *model, const char *out, const char *calib, const char *flags,
               char **err);
/* tu_compile that must succeed; with verify, `ptqc verify` of out too. */
void tu_compile_ok(const char *model, const char *out, const char *calib, const char *flags,
                   int verify);
/* tu_compile (calib NULL as there) with --progress=json, the child exec'ed
 * as ptqc itself, SIGKILLed at the nth stderr line containing match: 1 when
 * it was killed, 0 when it finished first. */
int tu_compile_kill(const char *model, const char *out, const char *calib, const char *flags,
                    const char *match, int nth);
/* `ptqc ARGS --json` must exit 0 and print JSON: returned (cJSON_Delete it). */
struct cJSON *tu_eval_json(const char *args);
/* The number j[key] (asserted to be one). */
double tu_json_num(const struct cJSON *j, const char *key);
/* Perplexity of a model directory or bundle on the shared
 * text/tinystories-eval.txt at ctx 128 (ptqc eval --json). */
double tu_ppl(const char *model_or_bundle);
/* tu_ptqc(args) must exit with status and print one message (at most two
 * lines: usage errors add a hint) containing needle on stderr; with out
 * non-NULL, neither out nor out.partial nor out.journal may exist after. */
void tu_expect_fail(const char *args, int status, const char *needle, const char *out);
/* Neither out nor out.partial nor out.journal exists. */
void tu_assert_no_output(const char *out);
int tu_exists(const char *path);

/* Each line {"text": ..., "ids": [...]} of the shared file rel: t encodes
 * text (no BOS) to exactly ids and, with decode, decodes ids back to text.
 * Returns the number of lines. */
int tu_tok_vectors(const struct ptq_tokenizer *t, const char *rel, int decode);

/* A provider over another (the "fold providers"): base's embeddings and
 * head, and each layer as base widens it then changed by edit(f, l, w) (not
 * called when base fails); ctx is the edit's.  f must outlive the provider. */
typedef struct tu_fold {
    ptq_weights base;
    int (*edit)(const struct tu_fold *f, int l, ptq_layer_w *w, ptq_err *e);
    void *ctx;
} tu_fold;
ptq_weights tu_fold_weights(tu_fold *f);

/* Forward tok [B, T] through a and through b with f; returns
 * max |logit_a - logit_b| / max |logit_a|. */
double tu_logit_change(struct ptq_fwd *f, const ptq_weights *a, const ptq_weights *b,
                       const int32_t *tok, int B, int T);
/* Folding leaves the logits alone: tu_logit_change of fold's base and fold
 * at most 1e-5, printed as "LABEL WHAT: ..." with spread (max |log s|). */
void tu_assert_fold_exact(struct ptq_fwd *f, tu_fold *fold, const int32_t *tok, int B, int T,
                          const char *label, const char *what, double spread);
/* Open the checkpoint directory dir into ck (asserted); its provider. */
ptq_weights tu_ckpt_open(struct ptq_checkpoint *ck, const char *dir);
/* fn(provider, name) on each shared real model: examples/stories260k and
 * the shared models/babyllama-105 checkpoints. */
void tu_each_real_model(void (*fn)(const ptq_weights *w, const char *name));
/* fn(provider, name) on the first n synth_variant models (tests/synth.h),
 * variant v with random weights of seed + v. */
void tu_each_synth_variant(int n, uint64_t seed,
                           void (*fn)(const ptq_weights *w, const char *name));

#endif
