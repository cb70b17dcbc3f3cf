/* check_run_src.c - `ptqc run` of a source model (a checkpoint directory), and
 * the dense GEMV (lib/qfmt/qf_dense.c) that its batch-1 decoder multiplies
 * the F16 weights with.
 *
 * Golden values: the greedy tokens are the argmax of ptq_forward's logits
 * (every layer widened to float32, one cblas_sgemm per linear: a code path
 * that shares nothing with the decoder's views and GEMV) over the sequence
 * that `ptqc run` printed; the dense GEMV against decode-then-multiply (k
 * ascending) within the standard summation bound 2 (n + 2) u sum |w||x| and
 * the F16 widening exact against ptq_f16_to_f32 for every finite code; the
 * dense GEMV and gemv_int's 4-bit lane path bit-exact against the summation
 * orders their headers document (so the AVX2 and portable loops agree). */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/tokenizer.h"
#include "lib/base/dtype.h"
#include "lib/base/half.h"
#include "lib/model/model.h"
#include "lib/model/generate.h"
#include "lib/qfmt/gemv_int.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"
#include "lib/runtime/runtime_cpu.h"
#include "tests/testutil.h"

enum { NEW = 24 };
static const char prompt[] = "Once upon a time";

/* The ids printed by --print-ids ("ID MARGIN" lines) into ids; their count. */
static int parse_ids(const char *out, int32_t *ids, int max)
{
    int n = 0;
    for (const char *p = out; p && *p && n < max; n++) {
        ids[n] = (int32_t)strtol(p, NULL, 10);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return n;
}

static int run_ids(const char *model, const char *flags, int32_t *ids)
{
    char *args = tu_fmt("run '%s' --prompt '%s' -n %d --print-ids --ignore-eos %s", model, prompt,
                        NEW, flags), *out = NULL, *err = NULL;
    int st = tu_ptqc(args, &out, &err);
    ck_assert_msg(st == 0, "%s: exit %d: %s", args, st, err ? err : "");
    int n = parse_ids(out, ids, NEW);
    free(args); free(out); free(err);
    return n;
}

START_TEST(run_source_greedy)
{
    char *model = tu_src("examples/stories260k");
    int32_t a[NEW], b[NEW];
    ck_assert_int_eq(run_ids(model, "--threads 1", a), NEW);
    ck_assert_int_eq(run_ids(model, "--device cpu --threads 2", b), NEW);
    ck_assert_mem_eq(a, b, sizeof a);

    ptq_model_src s;
    ptq_err e;
    ck_assert_msg(ptq_model_src_open(&s, model, &e) == 0, "%s", e.msg);
    int32_t *pid = NULL;
    size_t np = 0;
    ck_assert_int_eq(ptq_tok_encode(s.tok, prompt, strlen(prompt), ptq_tok_add_bos(s.tok), &pid,
                                    &np, &e), 0);
    int T = (int)np + NEW - 1, V = s.w.cfg->vocab;
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)T);
    memcpy(seq, pid, sizeof(int32_t) * np);
    memcpy(seq + np, a, sizeof(int32_t) * (NEW - 1));
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    ptq_fwd *f;
    ck_assert_int_eq(ptq_fwd_create(&f, s.w.cfg, T, T, &e), 0);
    ck_assert_msg(ptq_forward(f, &s.w, seq, 1, T, lg, &e) == 0, "%s", e.msg);
    for (int t = (int)np - 1; t < T; t++) {
        const float *r = lg + (size_t)t * V;
        int am = 0;
        for (int i = 1; i < V; i++)
            if (r[i] > r[am]) am = i;
        ck_assert_msg(am == a[t - (int)np + 1], "step %d: run gave %d, forward argmax %d",
                      t - (int)np + 1, (int)a[t - (int)np + 1], am);
    }
    ptq_fwd_free(f);
    free(lg); free(seq); free(pid);
    ptq_model_src_close(&s);
    free(model);
}
END_TEST

/* The batch-1 decoder over the source model's views (dense GEMV, F16 in the
 * map) against ptq_forward, step by step, and the provider hands views. */
START_TEST(source_views_decode)
{
    char *model = tu_src("examples/stories260k");
    ptq_model_src s;
    ptq_err e;
    ck_assert_msg(ptq_model_src_open(&s, model, &e) == 0, "%s", e.msg);
    const ptq_config *c = s.w.cfg;
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, c, &e), 0);
    lw.want_packed = 1;
    ck_assert_int_eq(s.w.layer(s.w.ctx, 2, &lw, &e), 0);
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        ck_assert_ptr_nonnull(lw.q[i]);
        ck_assert_int_eq(lw.q[i]->format, PTQ_QF_DENSE);
        ck_assert_int_eq(lw.q[i]->dtype, PTQ_DT_F16);
    }
    ptq_layer_w_free(&lw);
    enum { T = 20 };
    int32_t tok[T];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)((t * 37 + 1) % c->vocab);
    int V = c->vocab;
    float *ref = malloc(sizeof(float) * T * V), *lg = malloc(sizeof(float) * V);
    ptq_fwd *f;
    ck_assert_int_eq(ptq_fwd_create(&f, c, T, T, &e), 0);
    ck_assert_msg(ptq_forward(f, &s.w, tok, 1, T, ref, &e) == 0, "%s", e.msg);
    ptq_fwd_free(f);
    ptq_gen *g;
    ck_assert_int_eq(ptq_gen_create(&g, c, 1, T, &e), 0);
    ptq_gen_set_threads(g, 2);
    double d = 0;
    for (int t = 0; t < T; t++) {
        ck_assert_msg(ptq_gen_step(g, &s.w, tok + t, t, lg, &e) == 0, "%s", e.msg);
        for (int i = 0; i < V; i++) d = fmax(d, fabs((double)lg[i] - ref[(size_t)t * V + i]));
    }
    printf("source F16 views decode: max |step - forward| = %.3g\n", d);
    ck_assert_msg(d < 1e-4, "decode over views differs from the forward by %g", d);
    ptq_gen_free(g);
    free(ref); free(lg);
    ptq_model_src_close(&s);
    free(model);
}
END_TEST

START_TEST(run_source_on_gpu_refused)
{
    char *model = tu_src("examples/stories260k");
    char *args = tu_fmt("run '%s' --prompt hi --device cuda", model);
    tu_expect_fail(args, 2, "--device cpu only", NULL);
    free(args);
    free(model);
}
END_TEST

/* 2 (n + 2) u sum_k |w_k x_k| for row r of a dense tensor. */
static double dense_bound(const ptq_qtensor *q, int r, const float *x)
{
    float *w = malloc(sizeof(float) * (size_t)q->cols);
    ptq_err e;
    ck_assert_int_eq(ptq_qtensor_dequant_rows(q, r, 1, w, &e), 0);
    double m = 0;
    for (int k = 0; k < q->cols; k++) m += fabs((double)w[k] * x[k]);
    free(w);
    return 2.0 * (q->cols + 2) * ldexp(1.0, -24) * m;
}

START_TEST(dense_gemv_matches_reference)
{
    static const int dts[] = {PTQ_DT_F16, PTQ_DT_BF16, PTQ_DT_F32}, colss[] = {1, 31, 300, 576};
    const ptq_qfmt *fmt = ptq_qfmt_get(PTQ_QF_DENSE);
    ck_assert_ptr_nonnull(fmt->gemv);
    uint64_t rs = 99;
    int rows = 41;
    ptq_err e;
    for (int di = 0; di < 3; di++)
        for (int ci = 0; ci < 4; ci++) {
            int cols = colss[ci];
            size_t n = (size_t)rows * cols, es = ptq_dtype_size((ptq_dtype)dts[di]);
            unsigned char *data = malloc(n * es);
            float *x = malloc(sizeof(float) * cols), *wr = malloc(sizeof(float) * cols);
            float *y1 = malloc(sizeof(float) * rows), *y3 = malloc(sizeof(float) * rows);
            for (size_t i = 0; i < n; i++) {
                float v = tu_rng_normal(&rs) * 0.05f;
                if (dts[di] == PTQ_DT_F32) memcpy(data + 4 * i, &v, 4);
                else {
                    uint16_t h = dts[di] == PTQ_DT_F16 ? ptq_f32_to_f16(v) : ptq_f32_to_bf16(v);
                    memcpy(data + 2 * i, &h, 2);
                }
            }
            for (int k = 0; k < cols; k++) x[k] = tu_rng_normal(&rs);
            ptq_qtensor q = {.format = PTQ_QF_DENSE, .rows = rows, .cols = cols,
                             .dtype = dts[di], .data = data, .mapped = 1};
            ck_assert_msg(fmt->gemv(&q, x, y1, 1, &e) == 0, "%s", e.msg);
            ck_assert_msg(fmt->gemv(&q, x, y3, 3, &e) == 0, "%s", e.msg);
            ck_assert_mem_eq(y1, y3, sizeof(float) * rows);
            for (int r = 0; r < rows; r++) {
                ck_assert_int_eq(ptq_qtensor_dequant_rows(&q, r, 1, wr, &e), 0);
                float ref = 0.0f;
                for (int k = 0; k < cols; k++) ref += wr[k] * x[k];
                /* the documented order: lane j = columns k = j mod 32 in
                 * increasing k, lanes added pairwise (16, 8, 4, 2, 1) */
                float lane[32] = {0};
                for (int k = 0; k < cols; k++) lane[k % 32] += wr[k] * x[k];
                for (int h = 16; h > 0; h /= 2)
                    for (int l = 0; l < h; l++) lane[l] += lane[l + h];
                ck_assert_msg(memcmp(&lane[0], &y1[r], 4) == 0, "dtype %d cols %d row %d: %a "
                              "is not the lane order's %a", dts[di], cols, r, (double)y1[r],
                              (double)lane[0]);
                double d = fabs((double)y1[r] - ref), b = dense_bound(&q, r, x);
                ck_assert_msg(d <= b, "dtype %d cols %d row %d: |fast - ref| = %g > %g", dts[di],
                              cols, r, d, b);
            }
            free(data); free(x); free(wr); free(y1); free(y3);
        }
}
END_TEST

/* Every finite F16 code widened inside the GEMV is ptq_f16_to_f32's value:
 * row r, column j holds code 32 r + j (Inf/NaN codes replaced by zero), and
 * x = e_j picks column j out exactly. */
START_TEST(dense_f16_widening_exact)
{
    const ptq_qfmt *fmt = ptq_qfmt_get(PTQ_QF_DENSE);
    enum { C = 32, R = 65536 / C };
    uint16_t *w = malloc(sizeof(uint16_t) * 65536);
    for (int i = 0; i < 65536; i++) w[i] = (i & 0x7c00) == 0x7c00 ? 0 : (uint16_t)i;
    ptq_qtensor q = {.format = PTQ_QF_DENSE, .rows = R, .cols = C, .dtype = PTQ_DT_F16,
                     .data = w, .mapped = 1};
    float x[C], *y = malloc(sizeof(float) * R);
    ptq_err e;
    for (int j = 0; j < C; j++) {
        for (int k = 0; k < C; k++) x[k] = k == j;
        ck_assert_int_eq(fmt->gemv(&q, x, y, 2, &e), 0);
        for (int r = 0; r < R; r++) {
            float want = ptq_f16_to_f32(w[r * C + j]);
            ck_assert_msg(memcmp(&y[r], &want, 4) == 0 || (want == 0 && y[r] == 0),
                          "code 0x%04x: %a, want %a", w[r * C + j], (double)y[r], (double)want);
        }
    }
    uint16_t inf[2] = {0x7c00, 0xfc00};
    float one = 1.0f, yi[2];
    ptq_qtensor qi = {.format = PTQ_QF_DENSE, .rows = 2, .cols = 1, .dtype = PTQ_DT_F16,
                      .data = inf, .mapped = 1};
    ck_assert_int_eq(fmt->gemv(&qi, &one, yi, 1, &e), 0);
    ck_assert(isinf(yi[0]) && yi[0] > 0 && isinf(yi[1]) && yi[1] < 0);
    free(w); free(y);
}
END_TEST

/* gemv_int's portable lane loop (4 bits, groups of whole blocks) computes
 * exactly the order lib/qfmt/gemv_int.h documents (the SIMD loops, with
 * FMA, are checked against the bound in tests/check_cpu_kernels.c):
 * code s of word w of a block in lane 4 s + w, each group's lanes summed over
 * its blocks then scaled into 32 row lanes, added pairwise, minus
 * sum_g s_g (z_g X_g). */
START_TEST(gemv_int_lane_order)
{
    enum { R = 13, C = 200, G = 64, NG = 4, RW = 7 * 4 };
    uint64_t rs = 7;
    uint32_t *qw = calloc(R * RW, sizeof(uint32_t));
    uint16_t sc[R * NG];
    uint8_t z[R * NG];
    float x[C], y[R], xs[NG] = {0};
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) ptq_pack_set(qw + r * RW, k, 4, tu_rng_next(&rs) & 15);
    for (int i = 0; i < R * NG; i++) {
        sc[i] = ptq_f32_to_f16(0.01f + 0.02f * (float)tu_rng_unif(&rs));
        z[i] = (uint8_t)(tu_rng_next(&rs) & 15);
    }
    for (int k = 0; k < C; k++) x[k] = tu_rng_normal(&rs);
    for (int k = 0; k < C; k++) xs[k / G] += x[k];
    ptq_qtensor q = {.format = PTQ_QF_INT, .rows = R, .cols = C, .bits = 4, .group = G,
                     .ngroups = NG, .qweight = qw, .scales = sc, .zeros = z, .mapped = 1};
    ptq_err e;
    ck_assert_msg(ptq_gemv_int_path(&q, x, y, 2, PTQ_GEMV_PORTABLE, &e) == 0, "%s", e.msg);
    for (int r = 0; r < R; r++) {
        float yl[32] = {0}, zs = 0.0f;
        for (int g = 0; g < NG; g++) {
            float s = ptq_f16_to_f32(sc[r * NG + g]);
            for (int sh = 0; sh < 8; sh++) {
                float a[4] = {0};
                for (int b = 2 * g; b < 2 * g + 2 && b < 7; b++)
                    for (int w = 0; w < 4; w++) {
                        int k = b * 32 + w * 8 + sh;
                        float qv = k < C ? (float)ptq_pack_get(qw + r * RW, k, 4) : 0.0f;
                        a[w] += qv * (k < C ? x[k] : 0.0f);
                    }
                for (int w = 0; w < 4; w++) yl[sh * 4 + w] += s * a[w];
            }
            zs += s * ((float)z[r * NG + g] * xs[g]);
        }
        for (int h = 16; h > 0; h /= 2)
            for (int l = 0; l < h; l++) yl[l] += yl[l + h];
        float want = yl[0] - zs;
        ck_assert_msg(memcmp(&want, &y[r], 4) == 0, "row %d: %a, the documented order gives %a", r,
                      (double)y[r], (double)want);
    }
    free(qw);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run_src");
    TCase *tc = tcase_create("run_src");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, run_source_greedy);
    tcase_add_test(tc, source_views_decode);
    tcase_add_test(tc, run_source_on_gpu_refused);
    tcase_add_test(tc, dense_gemv_matches_reference);
    tcase_add_test(tc, dense_f16_widening_exact);
    tcase_add_test(tc, gemv_int_lane_order);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
