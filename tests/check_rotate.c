/* check_rotate.c - `ptqc compile --rotate hadamard` (lib/compile/rotate.c)
 * and its packed format int-had (lib/qfmt/qf_int_had.c).
 *
 * Golden facts used: decode's W = U^T W' V recomputed here in double from
 * the dense matrices Q (columns Q e_j; had.c's fast transform is held equal
 * to the dense product by tests/check_quip.c) and the int grid's own
 * definition w = s (q - z) (pack.h); an orthogonal U, V leaves
 * U^T (U W V^T) V = W, so the rotation alone keeps the logits; the gemv
 * bound stated in qf_int_had.c; the documented sign rule (seed * golden
 * ratio + 2 (7 layer + linear), ptq_incoh_signs); and the property that
 * incoherence lowers the round-to-nearest error of heavy-tailed weights
 * (QuIP, Chee et al. 2023: max |W'| / ||W'||_F shrinks to ~ sqrt(log n / n)),
 * which would fail if the rotation were missing or wrong. */
#include <check.h>
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "formats/checkpoint.h"
#include "lib/base/half.h"
#include "lib/model/model.h"
#include "lib/qfmt/had.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"
#include "lib/quant/hadamard.h"
#include "tests/synth.h"
#include "tests/testutil.h"

/* A random int-had tensor: codes, scales, zeros, signs (g_idx when gi). */
static void random_had(ptq_qtensor *q, int m, int n, int bits, int group, int gi, uint64_t sd)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_INT_HAD;
    q->rows = m, q->cols = n, q->bits = bits, q->group = group, q->sym = 0;
    q->ngroups = ptq_pack_ngroups(n, group);
    int words = ptq_pack_row_words(n, bits), ng = q->ngroups;
    q->qweight = calloc((size_t)m * words, 4);
    q->scales = malloc(sizeof *q->scales * (size_t)m * ng);
    q->zeros = malloc((size_t)m * ng);
    q->e8_su = malloc((size_t)n);
    q->e8_sv = malloc((size_t)m);
    uint32_t maxq = (1u << bits) - 1;
    for (int r = 0; r < m; r++)
        for (int k = 0; k < n; k++)
            ptq_pack_set(q->qweight + (size_t)r * words, k, bits,
                         (uint32_t)(tu_rng_next(&sd) % (maxq + 1)));
    for (size_t i = 0; i < (size_t)m * ng; i++) {
        q->scales[i] = ptq_f32_to_f16((float)(0.01 + 0.05 * tu_rng_unif(&sd)));
        q->zeros[i] = (uint8_t)(tu_rng_next(&sd) % (maxq + 1));
    }
    for (int i = 0; i < n; i++) q->e8_su[i] = tu_rng_next(&sd) & 1 ? -1 : 1;
    for (int i = 0; i < m; i++) q->e8_sv[i] = tu_rng_next(&sd) & 1 ? -1 : 1;
    if (gi) {
        q->g_idx = malloc(sizeof *q->g_idx * (size_t)n);
        for (int k = 0; k < n; k++) q->g_idx[k] = (int32_t)(tu_rng_next(&sd) % (uint64_t)ng);
    }
}

/* The dense Q of length n in double: column j = Q e_j (had.c's transform). */
static double *dense_q(int n)
{
    ptq_had h;
    ptq_err e;
    ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
    double *Q = malloc(sizeof *Q * (size_t)n * n);
    float *x = malloc(sizeof *x * n), *tmp = malloc(sizeof *tmp * n);
    for (int j = 0; j < n; j++) {
        memset(x, 0, sizeof *x * n);
        x[j] = 1;
        ptq_had_apply(&h, x, 1, tmp);
        for (int i = 0; i < n; i++) Q[(size_t)i * n + j] = x[i];
    }
    ptq_had_free(&h);
    free(x), free(tmp);
    return Q;
}

/* W = U^T W' V in double, W' from the int grid's definition s (q - z). */
static double *reference_decode(const ptq_qtensor *q)
{
    int m = q->rows, n = q->cols, words = ptq_pack_row_words(n, q->bits);
    double *Qm = dense_q(m), *Qn = dense_q(n);
    double *Wp = malloc(sizeof *Wp * (size_t)m * n), *T = calloc((size_t)m * n, sizeof *T);
    double *W = calloc((size_t)m * n, sizeof *W);
    for (int r = 0; r < m; r++)
        for (int k = 0; k < n; k++) {
            int g = q->g_idx ? q->g_idx[k] : q->group ? k / q->group : 0;
            double s = ptq_f16_to_f32(q->scales[(size_t)r * q->ngroups + g]);
            double z = q->zeros[(size_t)r * q->ngroups + g];
            Wp[(size_t)r * n + k] = s * ((double)ptq_pack_get(q->qweight + (size_t)r * words, k,
                                                             q->bits) - z);
        }
    for (int r = 0; r < m; r++) /* T = W' V, V[k][c] = Qn[k][c] su[c] */
        for (int k = 0; k < n; k++)
            for (int c = 0; c < n; c++)
                T[(size_t)r * n + c] += Wp[(size_t)r * n + k] * Qn[(size_t)k * n + c] * q->e8_su[c];
    for (int i = 0; i < m; i++) /* W = U^T T, U[i][r] = Qm[i][r] sv[r] */
        for (int r = 0; r < m; r++) {
            double u = Qm[(size_t)i * m + r] * q->e8_sv[r];
            for (int c = 0; c < n; c++) W[(size_t)r * n + c] += u * T[(size_t)i * n + c];
        }
    free(Qm), free(Qn), free(Wp), free(T);
    return W;
}

START_TEST(decode_is_the_reference)
{
    static const int shapes[][5] = {{64, 96, 4, 32, 0}, {96, 64, 2, 0, 0}, {48, 80, 3, 48, 0},
                                    {40, 128, 8, 64, 1}, {36, 72, 3, 0, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int m = shapes[t][0], n = shapes[t][1];
        ptq_qtensor q;
        random_had(&q, m, n, shapes[t][2], shapes[t][3], shapes[t][4], 7 + t);
        ptq_err e;
        ck_assert_msg(ptq_qtensor_check(&q, "random", &e) == 0, "%s", e.msg);
        float *w = malloc(sizeof *w * (size_t)m * n), *part = malloc(sizeof *w * 8 * n);
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        double *ref = reference_decode(&q), err = 0, mx = 0;
        for (size_t i = 0; i < (size_t)m * n; i++) {
            err = fmax(err, fabs(w[i] - ref[i]));
            mx = fmax(mx, fabs(ref[i]));
        }
        printf("decode %dx%d bits %d group %d: max |float - double| / max = %.3g\n", m, n,
               q.bits, q.group, err / mx);
        ck_assert_msg(err <= 1e-5 * mx, "%dx%d: %g", m, n, err / mx);
        ck_assert_int_eq(ptq_qtensor_dequant_rows(&q, 3, 8, part, &e), 0);
        ck_assert(!memcmp(part, w + 3 * (size_t)n, sizeof *w * 8 * n));
        free(w), free(part), free(ref);
        ptq_qtensor_free(&q);
    }
}
END_TEST

/* qf_int_had.c's bound: a_n = log2(P) + K + 2 of the plan of n */
static double a_of(int n)
{
    ptq_had h;
    ptq_err e;
    ck_assert_int_eq(ptq_had_plan(&h, n, &e), 0);
    double a = log2((double)h.P) + h.K + 2;
    ptq_had_free(&h);
    return a;
}

/* ||A||_F, A[r][k] = |s_g| (|q_rk| + |z_g|) */
static double mag_norm(const ptq_qtensor *q)
{
    int words = ptq_pack_row_words(q->cols, q->bits);
    double t = 0;
    for (int r = 0; r < q->rows; r++)
        for (int k = 0; k < q->cols; k++) {
            int g = q->g_idx ? q->g_idx[k] : q->group ? k / q->group : 0;
            double s = fabs(ptq_f16_to_f32(q->scales[(size_t)r * q->ngroups + g]));
            double a = s * (ptq_pack_get(q->qweight + (size_t)r * words, k, q->bits) +
                            (double)q->zeros[(size_t)r * q->ngroups + g]);
            t += a * a;
        }
    return sqrt(t);
}

START_TEST(gemv_within_bound_any_threads)
{
    static const int shapes[][5] = {{64, 96, 4, 32, 0}, {576, 576, 4, 128, 0},
                                    {1536, 576, 2, 64, 0}, {576, 1536, 3, 128, 0},
                                    {192, 576, 4, 0, 1}, {96, 80, 3, 48, 0}};
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int m = shapes[t][0], n = shapes[t][1];
        ptq_qtensor q;
        random_had(&q, m, n, shapes[t][2], shapes[t][3], shapes[t][4], 100 + t);
        uint64_t sd = 5 + t;
        float *x = malloc(sizeof *x * n), *w = malloc(sizeof *w * (size_t)m * n);
        float *y1 = malloc(sizeof *y1 * m), *y3 = malloc(sizeof *y3 * m);
        for (int i = 0; i < n; i++) x[i] = tu_rng_normal(&sd);
        ptq_err e;
        const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_INT_HAD);
        ck_assert_int_eq(f->gemv(&q, x, y1, 1, &e), 0);
        ck_assert_int_eq(f->gemv(&q, x, y3, 3, &e), 0);
        ck_assert(!memcmp(y1, y3, sizeof *y1 * m));
        ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
        double d2 = 0, xn = 0;
        for (int r = 0; r < m; r++) {
            float acc = 0;
            for (int k = 0; k < n; k++) acc += w[(size_t)r * n + k] * x[k];
            d2 += ((double)acc - y1[r]) * ((double)acc - y1[r]);
        }
        for (int k = 0; k < n; k++) xn += (double)x[k] * x[k];
        double bound = 2 * (a_of(m) + a_of(n) + n + 4) * ldexp(1, -24) * mag_norm(&q) * sqrt(xn);
        printf("gemv %dx%d: ||gemv - decode x|| = %.3g, bound %.3g\n", m, n, sqrt(d2), bound);
        ck_assert_msg(sqrt(d2) <= bound, "%dx%d: %g > %g", m, n, sqrt(d2), bound);
        free(x), free(w), free(y1), free(y3);
        ptq_qtensor_free(&q);
    }
}
END_TEST

START_TEST(check_refuses_bad_tensors)
{
    ptq_qtensor q;
    ptq_err e;
    random_had(&q, 64, 96, 4, 32, 0, 1);
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), 0);
    q.e8_su[5] = 0;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    printf("bad sign: %s\n", e.msg);
    ck_assert_ptr_nonnull(strstr(e.msg, "su[5]"));
    q.e8_su[5] = 1;
    q.e8_sv[63] = 2;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "sv[63]"));
    q.e8_sv[63] = -1;
    int8_t *sv = q.e8_sv;
    q.e8_sv = NULL;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    printf("no signs: %s\n", e.msg);
    q.e8_sv = sv;
    q.zeros[3] = 16; /* int's own checks still run */
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    q.zeros[3] = 1;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), 0);
    ptq_qtensor_free(&q);
}
END_TEST

/* rotate.c's documented sign seed of linear i of layer l */
static uint64_t seed_of(uint64_t seed, int l, int i)
{
    return seed * 0x9E3779B97F4A7C15ull + 2u * (uint64_t)(l * PTQ_NLINEAR + i);
}

/* The rotation alone (before rounding): each linear through U^T (U W V^T) V
 * with the signs --rotate uses at --seed 0. */
static int rotate_back(const tu_fold *f, int l, ptq_layer_w *w, ptq_err *e)
{
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        int rows, cols;
        ptq_linear_shape(f->base.cfg, i, &rows, &cols);
        ptq_incoh c;
        int rc = ptq_incoh_init(&c, rows, cols, seed_of(0, l, i), e);
        if (!rc) rc = ptq_incoh_weights(&c, w->w[i], e);
        if (!rc) rc = ptq_incoh_weights_inv(&c, w->w[i], e);
        ptq_incoh_free(&c);
        if (rc) return rc;
    }
    return PTQ_OK;
}

START_TEST(rotation_keeps_the_logits)
{
    char *dir = tu_shared("models/babyllama-105");
    ptq_checkpoint ck;
    ptq_weights w = tu_ckpt_open(&ck, dir);
    enum { B = 2, T = 24 };
    int32_t tok[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = 3 + (i * 37) % (ck.cfg.vocab - 3);
    ptq_fwd *f;
    ptq_err e;
    ck_assert_int_eq(ptq_fwd_create(&f, &ck.cfg, B * T, T, &e), 0);
    tu_fold fold = {w, rotate_back, NULL};
    ptq_weights rw = tu_fold_weights(&fold);
    double d = tu_logit_change(f, &w, &rw, tok, B, T);
    printf("babyllama-105 rotation before rounding: max |dlogit| / max |logit| = %.3g\n", d);
    ck_assert_msg(d <= 1e-5, "%g", d);
    ptq_fwd_free(f);
    ptq_ckpt_close(&ck);
    free(dir);
}
END_TEST

/* Every linear of the bundle is int-had with the documented signs, passes
 * its check, and its gemv agrees with its decode. */
static void bundle_is_rotated(const char *path, int nlayers, uint64_t seed)
{
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, path, 1, &e) == 0, "%s", e.msg);
    for (int l = 0; l < nlayers; l++)
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            char *nm = tu_fmt("model.layers.%d.%s.weight", l, ptq_linear_name(i));
            ptq_qtensor q;
            ck_assert_msg(ptq_bundle_tensor(&b, nm, &q, &e) == 0, "%s", e.msg);
            ck_assert_int_eq(q.format, PTQ_QF_INT_HAD);
            ck_assert_int_eq(ptq_qtensor_check(&q, nm, &e), 0);
            int8_t *sv = malloc((size_t)q.rows), *su = malloc((size_t)q.cols);
            ptq_incoh_signs(seed_of(seed, l, i), sv, q.rows);
            ptq_incoh_signs(seed_of(seed, l, i) + 1, su, q.cols);
            ck_assert_msg(!memcmp(sv, q.e8_sv, (size_t)q.rows) &&
                          !memcmp(su, q.e8_su, (size_t)q.cols), "%s: signs", nm);
            float *x = malloc(sizeof *x * q.cols), *y = malloc(sizeof *y * q.rows);
            float *w = malloc(sizeof *w * (size_t)q.rows * q.cols);
            for (int k = 0; k < q.cols; k++) x[k] = (float)sin(k + 1.0);
            ck_assert_int_eq(ptq_qfmt_get(q.format)->gemv(&q, x, y, 2, &e), 0);
            ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
            double d = 0, ym = 0;
            for (int r = 0; r < q.rows; r++) {
                double acc = 0;
                for (int k = 0; k < q.cols; k++) acc += (double)w[(size_t)r * q.cols + k] * x[k];
                d = fmax(d, fabs(acc - y[r]));
                ym = fmax(ym, fabs(acc));
            }
            ck_assert_msg(d <= 1e-4 * ym, "%s: gemv %g", nm, d / ym);
            free(sv), free(su), free(x), free(y), free(w), free(nm);
            ptq_qtensor_free(&q);
        }
    const cJSON *ver = cJSON_GetObjectItem(b.manifest, "version");
    ck_assert(cJSON_IsNumber(ver) && ver->valueint == 5);
    ptq_bundle_close(&b);
}

START_TEST(babyllama_end_to_end)
{
    char *model = tu_shared("models/babyllama-105"), *tmp = tu_tmpdir(), *tmp2 = tu_tmpdir();
    char *o1 = tu_fmt("%s/g.ptq", tmp), *o2 = tu_fmt("%s/g.ptq", tmp2);
    char *o0 = tu_fmt("%s/plain.ptq", tmp), *or = tu_fmt("%s/rtn.ptq", tmp);
    const char *fl = "--method gptq --bits 4 --group 32 --rotate hadamard --nsamples 16 "
                     "--seqlen 64 --seed 3";
    char *f1 = tu_fmt("%s --threads 1", fl), *f2 = tu_fmt("%s --threads 2", fl);
    tu_compile_ok(model, o1, NULL, f1, 1);
    tu_compile_ok(model, o2, NULL, f2, 1);
    size_t n1, n2;
    char *a = tu_read_file(o1, &n1), *b = tu_read_file(o2, &n2);
    ck_assert_msg(n1 == n2 && !memcmp(a, b, n1), "bundles differ across --threads");
    free(a), free(b);
    bundle_is_rotated(o1, 5, 3);
    tu_compile_ok(model, o0, NULL, "--method gptq --bits 4 --group 32 --nsamples 16 --seqlen 64 "
                  "--seed 3", 1);
    tu_compile_ok(model, or, NULL, "--method rtn --bits 4 --group 32 --rotate hadamard", 1);
    bundle_is_rotated(or, 5, 0);
    double p0 = tu_ppl(model), pr = tu_ppl(o1), pg = tu_ppl(o0), prt = tu_ppl(or);
    printf("babyllama-105 ppl: fp16 %.4f, gptq W4 g32 %.4f, with --rotate %.4f, rtn --rotate "
           "%.4f\n", p0, pg, pr, prt);
    ck_assert(isfinite(pr) && pr < 1.5 * p0);
    ck_assert(isfinite(prt) && prt < 2 * p0);
    char *out = NULL, *err = NULL;
    char *args = tu_fmt("run '%s' -p 'Once upon a time' -n 16 --device cpu --ignore-eos "
                        "--threads 2", o1);
    ck_assert_msg(tu_ptqc(args, &out, &err) == 0, "%s", err ? err : "");
    printf("run: %s\n", out);
    ck_assert(out && strlen(out) > 16);
    free(out), free(err), free(args);
    /* exporters refuse it by name */
    char *ex = tu_fmt("export '%s' --format gptq -o '%s/ex'", o1, tmp);
    tu_expect_fail(ex, 5, "int-had", NULL);
    free(ex);
    ex = tu_fmt("export '%s' --format compressed-tensors -o '%s/ex2'", o1, tmp);
    tu_expect_fail(ex, 5, "int-had", NULL);
    free(ex);
    tu_rmrf(tmp);
    tu_rmrf(tmp2);
    free(o0), free(o1), free(o2), free(or), free(f1), free(f2), free(model), free(tmp), free(tmp2);
}
END_TEST

/* A synthetic model whose linears have Student-t (3 degrees of freedom)
 * weights, written as float32 into dir. */
static void heavy_model(const char *dir)
{
    ptq_config c = synth_tiny_config();
    c.hidden = 128, c.intermediate = 256, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 32;
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 9), 0);
    uint64_t sd = 77;
    for (int l = 0; l < c.n_layers; l++)
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int rows, cols;
            ptq_linear_shape(&c, i, &rows, &cols);
            for (size_t k = 0; k < (size_t)rows * cols; k++) {
                double chi = 0;
                for (int d = 0; d < 3; d++) {
                    double z = tu_rng_normal(&sd);
                    chi += z * z;
                }
                m.layers[l].w[i][k] = (float)(0.02 * tu_rng_normal(&sd) / sqrt(chi / 3));
            }
        }
    ptq_err e;
    ck_assert_msg(synth_write(&m, dir, PTQ_DT_F32, 1, &e) == 0, "%s", e.msg);
    synth_free(&m);
}

static double mean_err(const char *model, const char *out, const char *flags)
{
    char *rep = tu_fmt("%s.json", out), *err = NULL;
    char *fl = tu_fmt("compile '%s' -o '%s' %s --report '%s' --quiet", model, out, flags, rep);
    ck_assert_msg(tu_ptqc(fl, NULL, &err) == 0, "%s: %s", fl, err ? err : ""); /* no calibration */
    free(err);
    size_t n;
    char *text = tu_read_file(rep, &n);
    cJSON *j = cJSON_Parse(text);
    ck_assert_ptr_nonnull(j);
    double v = tu_json_num(cJSON_GetObjectItem(j, "summary"), "mean_rel_weight_error");
    cJSON_Delete(j);
    free(text), free(rep), free(fl);
    return v;
}

START_TEST(rotate_lowers_rtn_error_on_heavy_tails)
{
    char *tmp = tu_tmpdir(), *dir = tu_fmt("%s/heavy", tmp), *o = tu_fmt("%s/o.ptq", tmp);
    char *mk = tu_fmt("mkdir -p '%s'", dir);
    ck_assert_int_eq(system(mk), 0);
    heavy_model(dir);
    static const char *const grids[] = {"--bits 2 --group 0", "--bits 3 --group 0",
                                        "--bits 2 --group 64", "--bits 3 --group 64"};
    for (int g = 0; g < 4; g++) {
        char *plain = tu_fmt("--method rtn %s", grids[g]);
        char *rot = tu_fmt("--method rtn %s --rotate hadamard", grids[g]);
        double e0 = mean_err(dir, o, plain), e1 = mean_err(dir, o, rot);
        printf("heavy-tailed rtn %s: weight-space error %.4f, with --rotate %.4f\n", grids[g], e0,
               e1);
        ck_assert_msg(e1 < e0, "%s: %g >= %g", grids[g], e1, e0);
        free(plain), free(rot);
    }
    tu_rmrf(tmp);
    free(tmp), free(dir), free(o), free(mk);
}
END_TEST

START_TEST(bad_input)
{
    char *model = tu_src("examples/stories260k"), *tmp = tu_tmpdir();
    char *out = tu_fmt("%s/x.ptq", tmp), *rec = tu_fmt("%s/r.json", tmp), *a;
    a = tu_fmt("compile '%s' -o '%s' --rotate foo", model, out);
    tu_expect_fail(a, 2, "--rotate: 'foo' is not hadamard or none", out);
    free(a);
    static const char *const refused[] = {"awq", "awq+gptq", "w8a8", "quip", "aqlm"};
    for (int i = 0; i < 5; i++) {
        a = tu_fmt("compile '%s' -o '%s' --method %s --rotate hadamard", model, out, refused[i]);
        char *needle = tu_fmt("applies to --method rtn and gptq, not %s", refused[i]);
        tu_expect_fail(a, 2, needle, out);
        free(a), free(needle);
    }
    const char *r1 = "{\"default\": {\"rotate\": \"yes\"}}";
    ck_assert_int_eq(tu_write_file(rec, r1, strlen(r1)), 0);
    a = tu_fmt("compile '%s' -o '%s' --method rtn --recipe '%s'", model, out, rec);
    tu_expect_fail(a, 4, "\"rotate\" is not \"hadamard\" or \"none\"", out);
    free(a);
    const char *r2 = "{\"overrides\": [{\"match\": \"model.layers.1.*\", \"method\": \"awq\"}]}";
    ck_assert_int_eq(tu_write_file(rec, r2, strlen(r2)), 0);
    a = tu_fmt("compile '%s' -o '%s' --method rtn --rotate hadamard --recipe '%s'", model, out,
               rec);
    tu_expect_fail(a, 2, "model.layers.1.self_attn.q_proj.weight: --rotate hadamard", out);
    free(a);
    /* a recipe may rotate some linears: the others stay int */
    const char *r3 = "{\"overrides\": [{\"match\": \"*.mlp.*\", \"rotate\": \"hadamard\"}]}";
    ck_assert_int_eq(tu_write_file(rec, r3, strlen(r3)), 0);
    a = tu_fmt("--method rtn --bits 4 --group 0 --recipe '%s'", rec);
    tu_compile_ok(model, out, NULL, a, 1);
    free(a);
    ptq_bundle b;
    ptq_err e;
    ck_assert_int_eq(ptq_bundle_open(&b, out, 1, &e), 0);
    ptq_qtensor q;
    ck_assert_int_eq(ptq_bundle_tensor(&b, "model.layers.0.mlp.up_proj.weight", &q, &e), 0);
    ck_assert_int_eq(q.format, PTQ_QF_INT_HAD);
    ptq_qtensor_free(&q);
    ck_assert_int_eq(ptq_bundle_tensor(&b, "model.layers.0.self_attn.o_proj.weight", &q, &e), 0);
    ck_assert_int_eq(q.format, PTQ_QF_INT);
    ptq_qtensor_free(&q);
    ptq_bundle_close(&b);
    tu_rmrf(tmp);
    free(model), free(tmp), free(out), free(rec);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rotate");
    TCase *t = tcase_create("rotate");
    tcase_set_timeout(t, 900);
    tcase_add_test(t, decode_is_the_reference);
    tcase_add_test(t, gemv_within_bound_any_threads);
    tcase_add_test(t, check_refuses_bad_tensors);
    tcase_add_test(t, rotation_keeps_the_logits);
    tcase_add_test(t, rotate_lowers_rtn_error_on_heavy_tails);
    tcase_add_test(t, bad_input);
    tcase_add_test(t, babyllama_end_to_end);
    suite_add_tcase(s, t);
    return tu_run(s);
}
