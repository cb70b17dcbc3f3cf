/* check_smollm2.c - SmolLM2-135M end to end: GPTQ W4 g128 (the defaults:
 * act-order, static groups, damp 0.01) from the shared GGUF, compiled ONCE
 * in the fixture and reused by every test: the bundle verifies, and on a
 * held-out slice its perplexity and its KL against the source stay within
 * bounds measured on this model (see BOUNDS below).
 *
 * Texts (../shared/README.md, ptqc-ppl-v1): calibration is wiki.test.raw
 * after its first 100058 bytes (those are wiki.test.100k.raw, the held-out
 * golden text) — a CALIB_BYTES slice of it; evaluation is the first
 * EVAL_BYTES of wiki.test.100k.raw at ctx 512.  The two never share a byte.
 *
 * Time: the compile (16 x 128 tokens, 210 linears) took 226 s and the test
 * 307 s in all on this 2-core machine while it ran six other engineers'
 * jobs (load average ~10); on the idle CI machine expect well under half
 * (the timeout below is generous for the loaded case).
 *
 * The sanitizer build (configure --enable-sanitizers, .ci/test's second
 * pass) skips the compile and the evals: ASan/UBSan make a 135M-parameter
 * forward ~20x slower, and this test covers numerics, not memory safety
 * (check_gptq, check_compile and check_gguf run the same code on small
 * models under the sanitizers). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "tests/testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define SMOL "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
#define HELD_OUT_BYTES 100058L /* wiki.test.100k.raw = wiki.test.raw's first bytes */
#define CALIB_BYTES 200000L
#define EVAL_BYTES 4000L
#define FLAGS "--method gptq --bits 4 --group 128 --nsamples 16 --seqlen 128 --seed 0 --threads 2"

/* BOUNDS, from the run of 2026-12-02 (one run; the results are
 * deterministic for one build, any thread count): on these EVAL_BYTES (2
 * windows of 512) the source has ppl 26.532; the bundle measured ppl 36.092
 * (ratio 1.360), KL 0.324, top-1 0.739.  For scale, on 12 kB of the same
 * text with 16 x 256 calibration tokens (bench/RESULTS-peers.md) RTN W4 g128
 * has KL 0.535 and GPTQ 0.255.  The bounds leave ~10 % (ppl) and ~30 % (KL)
 * for another BLAS or compiler, and still fail a GPTQ that degrades toward
 * RTN (lost error feedback, wrong permutation or groups). */
#define PPL_RATIO_MAX 1.50
#define KL_MAX 0.42

static char *dir, *bundle, *evaltxt, *gguf;
static int compile_status = -1;
static double compile_s;

static char *slice(const char *rel, long off, long n, const char *name)
{
    char *src = tu_shared(rel);
    size_t len = 0;
    char *all = tu_read_file(src, &len);
    ck_assert_msg(all && (long)len >= off + n, "%s: shorter than %ld bytes", src, off + n);
    char *p = tu_fmt("%s/%s", dir, name);
    ck_assert(tu_write_file(p, all + off, (size_t)n) == 0);
    free(all);
    free(src);
    return p;
}

static void setup(void)
{
    dir = tu_tmpdir();
    bundle = tu_fmt("%s/smol-w4g128.ptq", dir);
    gguf = tu_shared(SMOL);
    evaltxt = slice("text/wikitext-2-raw/wiki.test.100k.raw", 0, EVAL_BYTES, "eval.txt");
    if (SANITIZED) return;
    char *cal = slice("text/wikitext-2-raw/wiki.test.raw", HELD_OUT_BYTES, CALIB_BYTES, "calib.txt");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *err = NULL;
    compile_status = tu_compile(gguf, bundle, cal, FLAGS " --quiet", &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    compile_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (compile_status) fprintf(stderr, "check_smollm2: compile failed (%d): %s\n", compile_status, err ? err : "");
    else fprintf(stderr, "check_smollm2: compile %.1f s\n", compile_s);
    free(err);
    free(cal);
}

static void teardown(void)
{
    tu_rmrf(dir);
    free(dir), free(bundle), free(evaltxt), free(gguf);
}

#define SKIP_IF_SANITIZED()                                                               \
    do {                                                                                  \
        if (SANITIZED) {                                                                  \
            fprintf(stderr, "check_smollm2: sanitizer build, SmolLM2 compile skipped\n"); \
            return;                                                                       \
        }                                                                                 \
    } while (0)

START_TEST(test_compile_verify)
{
    SKIP_IF_SANITIZED();
    ck_assert_int_eq(compile_status, 0);
    char *a = tu_fmt("verify '%s'", bundle), *out = NULL;
    ck_assert_int_eq(tu_ptqc(a, &out, NULL), 0);
    free(out);
    free(a);
}
END_TEST

START_TEST(test_ppl_kl)
{
    SKIP_IF_SANITIZED();
    ck_assert_int_eq(compile_status, 0);
    char *a = tu_fmt("eval '%s' --text '%s' --ctx 512 --reference '%s' --threads 2", bundle,
                     evaltxt, gguf);
    cJSON *j = tu_eval_json(a);
    double ppl = tu_json_num(j, "ppl"), ref = tu_json_num(j, "ref_ppl");
    double kl = tu_json_num(j, "kl_mean"), top1 = tu_json_num(j, "top1_agree");
    fprintf(stderr, "check_smollm2: W4 g128 gptq ppl %.4f (source %.4f, ratio %.4f) KL %.4f top-1 %.4f\n",
            ppl, ref, ppl / ref, kl, top1);
    ck_assert_msg(isfinite(ppl) && ref > 1.0, "ppl %g, source %g", ppl, ref);
    ck_assert_msg(ppl / ref < PPL_RATIO_MAX, "ppl %g / source %g = %g >= %g", ppl, ref, ppl / ref,
                  PPL_RATIO_MAX);
    ck_assert_msg(kl >= 0.0 && kl < KL_MAX, "KL %g not in [0, %g)", kl, KL_MAX);
    cJSON_Delete(j);
    free(a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("smollm2");
    TCase *tc = tcase_create("gptq-w4g128");
    tcase_set_timeout(tc, 900);
    tcase_add_unchecked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_compile_verify);
    tcase_add_test(tc, test_ppl_kl);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
