/* check_generate.c - KV-cached decoding against llama2.c's golden logits,
 * the random number generator and the sampler, data-free samples. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "lib/model/generate.h"
#include "tests/testutil.h"

/* Golden: logits.f32 [T, V] of llama2.c run.c (float32, one token at a time
 * with a KV cache) for the 64 ids of logits.json. */
static void check_golden(const char *model)
{
    char *rel = tu_fmt("models/%s", model);
    char *dir = tu_shared(rel);
    free(rel);
    char *jpath = tu_fmt("%s/golden/logits.json", dir), *lpath = tu_fmt("%s/golden/logits.f32", dir);
    char *js = tu_read_file(jpath, NULL);
    ck_assert_ptr_nonnull(js);
    cJSON *j = cJSON_Parse(js);
    ck_assert_ptr_nonnull(j);
    cJSON *ids = cJSON_GetObjectItem(j, "ids");
    int T = cJSON_GetArraySize(ids);
    size_t nbytes;
    float *golden = (float *)tu_read_file(lpath, &nbytes);
    ck_assert_ptr_nonnull(golden);

    ptq_checkpoint ck;
    ptq_err e = {0};
    ck_assert_msg(ptq_ckpt_open(&ck, dir, &e) == 0, "%s", e.msg);
    int V = ck.cfg.vocab;
    ck_assert_uint_eq(nbytes, (size_t)T * V * sizeof(float));
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_gen *g;
    ck_assert_msg(ptq_gen_create(&g, &ck.cfg, 1, T, &e) == 0, "%s", e.msg);
    float *logits = malloc(sizeof(float) * V);
    double maxdiff = 0;
    for (int t = 0; t < T; t++) {
        int32_t tok = cJSON_GetArrayItem(ids, t)->valueint;
        ck_assert_msg(ptq_gen_step(g, &w, &tok, t, logits, &e) == 0, "%s", e.msg);
        for (int i = 0; i < V; i++) {
            double d = fabs((double)logits[i] - golden[(size_t)t * V + i]);
            if (d > maxdiff) maxdiff = d;
        }
    }
    ck_assert_msg(maxdiff < 1e-3, "%s: max |logit - golden| = %g", model, maxdiff);
    free(logits);
    ptq_gen_free(g);
    ptq_ckpt_close(&ck);
    cJSON_Delete(j);
    free(golden); free(js); free(jpath); free(lpath); free(dir);
}

START_TEST(golden_stories260k) { check_golden("stories260k"); }
END_TEST

START_TEST(golden_babyllama105) { check_golden("babyllama-105"); }
END_TEST

/* Batched decoding: two sequences side by side equal each one alone. */
START_TEST(batch_equals_single)
{
    char *dir = tu_src("examples/stories260k");
    ptq_checkpoint ck;
    ptq_err e = {0};
    ptq_weights w = tu_ckpt_open(&ck, dir);
    int V = ck.cfg.vocab, T = 12;
    int32_t seq[2][12] = {{1, 400, 32, 77, 5, 300, 12, 9, 100, 200, 250, 3},
                          {1, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27}};
    ptq_gen *g2, *g1;
    ck_assert_int_eq(ptq_gen_create(&g2, &ck.cfg, 2, T, &e), 0);
    float *l2 = malloc(sizeof(float) * 2 * V), *l1 = malloc(sizeof(float) * V);
    float *single = malloc(sizeof(float) * 2 * T * V);
    for (int s = 0; s < 2; s++) {
        ck_assert_int_eq(ptq_gen_create(&g1, &ck.cfg, 1, T, &e), 0);
        for (int t = 0; t < T; t++) {
            ck_assert_int_eq(ptq_gen_step(g1, &w, &seq[s][t], t, l1, &e), 0);
            memcpy(single + ((size_t)s * T + t) * V, l1, sizeof(float) * V);
        }
        ptq_gen_free(g1);
    }
    for (int t = 0; t < T; t++) {
        int32_t tok[2] = {seq[0][t], seq[1][t]};
        ck_assert_int_eq(ptq_gen_step(g2, &w, tok, t, l2, &e), 0);
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < V; i++)
                ck_assert_float_eq_tol(l2[(size_t)s * V + i], single[((size_t)s * T + t) * V + i], 1e-5);
    }
    free(l1); free(l2); free(single);
    ptq_gen_free(g2);
    ptq_ckpt_close(&ck);
    free(dir);
}
END_TEST

START_TEST(rng_deterministic)
{
    ptq_rng a, b, c;
    ptq_rng_seed(&a, 42);
    ptq_rng_seed(&b, 42);
    ptq_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ptq_rng_next(&a), y = ptq_rng_next(&b), z = ptq_rng_next(&c);
        ck_assert_uint_eq(x, y);
        differ += x != z;
    }
    ck_assert_int_gt(differ, 990);
    /* uniform in [0,1), mean near 1/2 (1e5 draws: sd of the mean 9e-4) */
    double s = 0;
    for (int i = 0; i < 100000; i++) {
        double u = ptq_rng_uniform(&a);
        ck_assert(u >= 0.0 && u < 1.0);
        s += u;
    }
    ck_assert_double_eq_tol(s / 100000, 0.5, 5e-3);
}
END_TEST

START_TEST(sampler)
{
    float logits[4] = {1.0f, 3.0f, 3.0f, 0.0f};
    ptq_rng r;
    ptq_rng_seed(&r, 7);
    /* greedy: argmax, lowest id on ties */
    ck_assert_int_eq(ptq_sample(logits, 4, 0.0f, 1.0f, &r), 1);
    /* top_p tiny keeps only the most probable token (tie: lowest id first) */
    for (int i = 0; i < 50; i++) ck_assert_int_eq(ptq_sample(logits, 4, 1.0f, 1e-6f, &r), 1);
    /* frequencies follow softmax: p = e^x / sum; 200000 draws, sd < 1.2e-3 */
    double z = exp(1.0) + 2 * exp(3.0) + 1.0, cnt[4] = {0};
    int n = 200000;
    for (int i = 0; i < n; i++) cnt[ptq_sample(logits, 4, 1.0f, 1.0f, &r)]++;
    ck_assert_double_eq_tol(cnt[0] / n, exp(1.0) / z, 6e-3);
    ck_assert_double_eq_tol(cnt[1] / n, exp(3.0) / z, 6e-3);
    ck_assert_double_eq_tol(cnt[3] / n, 1.0 / z, 6e-3);
    /* ids 1 and 2 hold 2e^3/z = 0.9153 together, with id 0 0.9772.
     * top_p 0.95: id 0 joins, id 3 never; top_p 0.9: only ids 1 and 2. */
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < 20000; i++) cnt[ptq_sample(logits, 4, 1.0f, 0.95f, &r)]++;
    ck_assert_double_eq(cnt[3], 0);
    ck_assert_double_gt(cnt[0], 0);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < 20000; i++) cnt[ptq_sample(logits, 4, 1.0f, 0.9f, &r)]++;
    ck_assert_double_eq(cnt[0], 0);
    ck_assert_double_gt(cnt[1], 0);
    ck_assert_double_gt(cnt[2], 0);
    ck_assert_double_eq(cnt[3], 0);
}
END_TEST

START_TEST(data_free_samples)
{
    char *dir = tu_src("examples/stories260k");
    ptq_checkpoint ck;
    ptq_err e = {0};
    ptq_weights w = tu_ckpt_open(&ck, dir);
    int N = 3, L = 40;
    int32_t *a = malloc(sizeof(int32_t) * N * L), *b = malloc(sizeof(int32_t) * N * L),
            *c = malloc(sizeof(int32_t) * N * L);
    ck_assert_msg(ptq_gen_samples(&w, 1, N, L, 5, a, NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(ptq_gen_samples(&w, 1, N, L, 5, b, NULL, NULL, &e), 0);
    ck_assert_int_eq(ptq_gen_samples(&w, 1, N, L, 6, c, NULL, NULL, &e), 0);
    ck_assert_mem_eq(a, b, sizeof(int32_t) * N * L);
    ck_assert(memcmp(a, c, sizeof(int32_t) * N * L) != 0);
    for (int s = 0; s < N; s++) {
        ck_assert_int_eq(a[s * L], 1);
        for (int t = 0; t < L; t++) ck_assert(a[s * L + t] >= 0 && a[s * L + t] < ck.cfg.vocab);
    }
    ck_assert_int_eq(ptq_gen_samples(&w, -1, N, L, 5, a, NULL, NULL, &e), PTQ_EDATA);
    free(a); free(b); free(c);
    ptq_ckpt_close(&ck);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("generate");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, golden_stories260k);
    tcase_add_test(tc, golden_babyllama105);
    tcase_add_test(tc, batch_equals_single);
    tcase_add_test(tc, rng_deterministic);
    tcase_add_test(tc, sampler);
    tcase_add_test(tc, data_free_samples);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
