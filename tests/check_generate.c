/* check_generate.c - KV-cached decoding against llama2.c's golden logits,
 * the random number generator and the sampler, data-free samples. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "lib/base/half.h"
#include "lib/model/generate.h"
#include "lib/qfmt/gemv_int.h"
#include "lib/qfmt/pack.h"
#include "lib/runtime/runtime_cpu.h"
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

/* ---- the packed GEMV (lib/qfmt/gemv_int.h) ---- */

/* A random PTQ_QF_INT tensor: codes uniform, zeros 2^(b-1) (sym) or uniform,
 * scales in +-[0.01, 0.1) as fp16; act_order: g_idx = a random permutation's
 * column / G (every group non-empty, columns of a group scattered). */
static void rand_int_tensor(ptq_qtensor *q, int rows, int cols, int bits, int G, int sym,
                            int act_order, uint64_t *rs)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_INT;
    q->rows = rows, q->cols = cols, q->bits = bits, q->group = G, q->sym = sym;
    q->ngroups = ptq_pack_ngroups(cols, G);
    size_t rw = (size_t)ptq_pack_row_words(cols, bits), ng = (size_t)q->ngroups;
    q->qweight = calloc((size_t)rows * rw, sizeof(uint32_t));
    q->scales = malloc(sizeof(uint16_t) * rows * ng);
    q->zeros = malloc((size_t)rows * ng);
    ck_assert(q->qweight && q->scales && q->zeros);
    uint32_t top = 1u << bits;
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < cols; k++)
            ptq_pack_set(q->qweight + r * rw, k, bits, (uint32_t)(tu_rng_next(rs) % top));
        for (size_t g = 0; g < ng; g++) {
            float s = (float)(0.01 + 0.09 * tu_rng_unif(rs));
            q->scales[r * ng + g] = ptq_f32_to_f16(tu_rng_next(rs) & 1 ? s : -s);
            q->zeros[r * ng + g] = (uint8_t)(sym ? top / 2 : tu_rng_next(rs) % top);
        }
    }
    if (act_order && G) {
        q->g_idx = malloc(sizeof(int32_t) * cols);
        int *perm = malloc(sizeof(int) * cols);
        ck_assert(q->g_idx && perm);
        for (int k = 0; k < cols; k++) perm[k] = k;
        for (int k = cols - 1; k > 0; k--) {
            int j = (int)(tu_rng_next(rs) % (uint64_t)(k + 1)), t = perm[k];
            perm[k] = perm[j], perm[j] = t;
        }
        for (int k = 0; k < cols; k++) q->g_idx[k] = perm[k] / G;
        free(perm);
    }
}

/* The bound of gemv_int.h: 2 (n + 2) u sum_k |s| (|q| + |z|) |x|, u = 2^-24. */
static double gemv_bound(const ptq_qtensor *q, int r, const float *x)
{
    size_t rw = (size_t)ptq_pack_row_words(q->cols, q->bits);
    double m = 0;
    for (int k = 0; k < q->cols; k++) {
        int g = q->g_idx ? q->g_idx[k] : q->group ? k / q->group : 0;
        double s = fabs(ptq_f16_to_f32(q->scales[(size_t)r * q->ngroups + g]));
        double z = q->zeros[(size_t)r * q->ngroups + g];
        m += s * (ptq_pack_get(q->qweight + r * rw, k, q->bits) + z) * fabs(x[k]);
    }
    return 2.0 * (q->cols + 2) * ldexp(1.0, -24) * m;
}

START_TEST(gemv_int_matches_reference)
{
    static const int bits[] = {2, 3, 4, 8}, groups[] = {0, 32, 48, 128};
    uint64_t rs = 2024;
    int rows = 37, cols = 300; /* 300 = 9 blocks + 12; groups 32/48/128 end short */
    float *x = malloc(sizeof(float) * cols), *ref = malloc(sizeof(float) * rows),
          *y1 = malloc(sizeof(float) * rows), *y3 = malloc(sizeof(float) * rows);
    ptq_err e;
    for (int bi = 0; bi < 4; bi++)
        for (int gi = 0; gi < 4; gi++)
            for (int sym = 0; sym < 2; sym++)
                for (int ao = 0; ao < 1 + (groups[gi] > 0); ao++) {
                    ptq_qtensor q;
                    rand_int_tensor(&q, rows, cols, bits[bi], groups[gi], sym, ao, &rs);
                    for (int k = 0; k < cols; k++) x[k] = tu_rng_normal(&rs);
                    ck_assert_msg(ptq_gemv_int_ref(&q, x, ref, &e) == 0, "%s", e.msg);
                    ck_assert_msg(ptq_gemv_int(&q, x, y1, 1, &e) == 0, "%s", e.msg);
                    ck_assert_msg(ptq_gemv_int(&q, x, y3, 3, &e) == 0, "%s", e.msg);
                    ck_assert_mem_eq(y1, y3, sizeof(float) * rows);
                    for (int r = 0; r < rows; r++) {
                        double d = fabs((double)y1[r] - ref[r]), b = gemv_bound(&q, r, x);
                        ck_assert_msg(d <= b, "b%d g%d sym%d ao%d row %d: |fast - ref| = %g > %g",
                                      bits[bi], groups[gi], sym, ao, r, d, b);
                        if (ao) ck_assert_float_eq(y1[r], ref[r]); /* same order */
                    }
                    ptq_qtensor_free(&q);
                }
    /* not an int tensor */
    ptq_qtensor d = {.format = PTQ_QF_DENSE, .rows = 1, .cols = 1, .dtype = PTQ_DT_F32,
                     .data = x};
    ck_assert_int_ne(ptq_gemv_int(&d, x, y1, 1, &e), 0);
    free(x); free(ref); free(y1); free(y3);
}
END_TEST

/* The CPU runtime over a stories260k W4 bundle with short last groups: the
 * batch-1 decoder runs the packed GEMV (the provider hands q[], no widened
 * linear) and its logits follow ptq_forward's (dequantize + sgemm) within
 * summation-order noise with the same greedy tokens; --threads 1 and 2 give
 * the same bits. */
enum { GEN_PROMPT = 8, GEN_NEW = 24, GEN_T = GEN_PROMPT + GEN_NEW };

static void greedy(ptq_weights *w, int threads, int32_t *tok, float *lg)
{
    ptq_err e;
    ptq_gen *g;
    int V = w->cfg->vocab;
    ck_assert_int_eq(ptq_gen_create(&g, w->cfg, 1, GEN_T, &e), 0);
    ptq_gen_set_threads(g, threads);
    for (int t = 0; t < GEN_T; t++) {
        ck_assert_msg(ptq_gen_step(g, w, tok + t, t, lg + (size_t)t * V, &e) == 0, "%s", e.msg);
        if (t + 1 >= GEN_PROMPT && t + 1 < GEN_T) {
            float best = -INFINITY;
            for (int i = 0; i < V; i++)
                if (lg[(size_t)t * V + i] > best) best = lg[(size_t)t * V + i], tok[t + 1] = i;
        }
    }
    ptq_gen_free(g);
}

START_TEST(packed_decode_w4)
{
    char *dir = tu_tmpdir(), *model = tu_src("examples/stories260k");
    char *path = tu_fmt("%s/w4.ptq", dir);
    tu_compile_ok(model, path, NULL, "--method rtn --bits 4 --group 48", 0);
    ptq_cpu_model m;
    ptq_err e;
    ck_assert_msg(ptq_cpu_open(&m, path, 1, &e) == 0, "%s", e.msg);
    ptq_weights w;
    ptq_cpu_weights(&m, &w);
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, w.cfg, &e), 0);
    lw.want_packed = 1;
    ck_assert_int_eq(w.layer(w.ctx, 1, &lw, &e), 0);
    for (int i = 0; i < PTQ_NLINEAR; i++) ck_assert_ptr_nonnull(lw.q[i]);
    ck_assert_int_eq(lw.q[PTQ_DOWN]->ngroups, 4); /* 172 = 3 x 48 + 28 */
    ptq_layer_w_free(&lw);

    int V = w.cfg->vocab;
    int32_t t1[GEN_T] = {1, 400, 32, 77, 5, 300, 12, 9}, t2[GEN_T];
    memcpy(t2, t1, sizeof t1);
    float *l1 = malloc(sizeof(float) * GEN_T * V), *l2 = malloc(sizeof(float) * GEN_T * V);
    float *ref = malloc(sizeof(float) * GEN_T * V);
    greedy(&w, 1, t1, l1);
    greedy(&w, 2, t2, l2);
    ck_assert_mem_eq(t1, t2, sizeof t1);
    ck_assert_mem_eq(l1, l2, sizeof(float) * GEN_T * V);
    /* the forward pass (widened layers, sgemm) over the generated sequence */
    ptq_fwd *f;
    ck_assert_int_eq(ptq_fwd_create(&f, w.cfg, GEN_T, GEN_T, &e), 0);
    ck_assert_msg(ptq_forward(f, &w, t1, 1, GEN_T, ref, &e) == 0, "%s", e.msg);
    ptq_fwd_free(f);
    double d = 0;
    for (size_t i = 0; i < (size_t)GEN_T * V; i++) d = fmax(d, fabs((double)l1[i] - ref[i]));
    printf("packed W4 g48 decode: max |step - forward| = %.3g\n", d);
    ck_assert_msg(d < 1e-4, "packed decode logits differ from the forward's by %g", d);
    for (int t = GEN_PROMPT - 1; t + 1 < GEN_T; t++) {
        const float *r = ref + (size_t)t * V;
        int am = 0;
        for (int i = 1; i < V; i++)
            if (r[i] > r[am]) am = i;
        ck_assert_msg(am == t1[t + 1], "position %d: generated %d, forward argmax %d", t,
                      (int)t1[t + 1], am);
    }
    free(l1); free(l2); free(ref);
    ptq_cpu_close(&m);
    tu_rmrf(dir);
    free(dir); free(model); free(path);
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
    tcase_add_test(tc, gemv_int_matches_reference);
    tcase_add_test(tc, packed_decode_w4);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
