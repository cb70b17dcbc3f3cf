/* check_aqlm.c - AQLM (lib/quant/aqlm.c) and its packed format
 * (lib/qfmt/qf_aqlm.c).
 *
 * Golden facts used, each computed here independently of the code under
 * test: the objective sum_r e_r^T H e_r summed in plain loops; greedy
 * coordinate descent (each code in turn set to the codeword minimising the
 * full objective) is what a beam of 1 must give; the brute-force minimum
 * over every combination of a group's codes is what the exhaustive beam
 * must give; with H = I and unit scales the least-squares codeword is the
 * mean of the groups assigned to it (a k-means step); the least-squares
 * codebooks solve the normal equations sum s^2 J^T H J v = sum s J^T H w
 * (J the 0/1 placement of row r's codes), built and solved here by Gaussian
 * elimination in float64; decode is s * sum of fp16 codewords. */
#include <check.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/base/sample.h"
#include "lib/qfmt/qfmt.h"
#include "lib/quant/aqlm.h"
#include "tests/testutil.h"

static double gauss(ptq_rng *r)
{
    double u = ptq_rng_uniform(r) + 1e-12, v = ptq_rng_uniform(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* H = X^T X / n + 0.1 I from n random rows (SPD, coupled) */
static double *rand_H(int C, ptq_rng *rng)
{
    int n = 3 * C;
    double *X = malloc((size_t)n * C * sizeof *X), *H = calloc((size_t)C * C, sizeof *H);
    for (int i = 0; i < n * C; i++) X[i] = gauss(rng);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) H[i * C + j] += X[t * C + i] * X[t * C + j] / n;
    for (int i = 0; i < C; i++) H[i * C + i] += 0.1;
    free(X);
    return H;
}

static float *rand_W(int R, int C, ptq_rng *rng)
{
    float *W = malloc((size_t)R * C * sizeof *W);
    for (int i = 0; i < R * C; i++) W[i] = (float)gauss(rng);
    return W;
}

static void rand_state(ptq_aqlm *a, ptq_rng *rng)
{
    for (int i = 0; i < a->M * a->K * 8; i++) a->cb[i] = 0.5 * gauss(rng);
    for (int i = 0; i < a->rows * a->G * a->M; i++)
        a->codes[i] = (int32_t)(ptq_rng_uniform(rng) * a->K);
    for (int r = 0; r < a->rows; r++) a->scale[r] = 0.5 + ptq_rng_uniform(rng);
}

/* a random state in a and the same state in g (both allocated R x C, MxB) */
static void twin_states(ptq_aqlm *a, ptq_aqlm *g, int R, int C, int M, int B, ptq_rng *rng)
{
    ptq_err e;
    ptq_aqlm_alloc(a, R, C, M, B, &e);
    ptq_aqlm_alloc(g, R, C, M, B, &e);
    rand_state(a, rng);
    memcpy(g->cb, a->cb, sizeof *a->cb * M * a->K * 8);
    memcpy(g->codes, a->codes, sizeof *a->codes * R * a->G * M);
    memcpy(g->scale, a->scale, sizeof *a->scale * R);
}

/* the objective of row r, plain loops */
static double row_obj(const ptq_aqlm *a, const float *W, const double *H, int r)
{
    int C = a->cols;
    double *e = malloc((size_t)C * sizeof *e), L = 0;
    for (int k = 0; k < C; k++) {
        int g = k / 8, i = k % 8;
        double y = 0;
        for (int m = 0; m < a->M; m++)
            y += a->cb[((size_t)m * a->K + a->codes[(r * a->G + g) * a->M + m]) * 8 + i];
        e[k] = W[r * C + k] - a->scale[r] * y;
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) L += e[i] * H[i * C + j] * e[j];
    free(e);
    return L;
}

static int32_t *code(ptq_aqlm *a, int r, int g, int m) { return &a->codes[(r * a->G + g) * a->M + m]; }

START_TEST(objective_matches_reference)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 1);
    ptq_aqlm a;
    ptq_err e;
    ck_assert_int_eq(ptq_aqlm_alloc(&a, 7, 24, 2, 3, &e), 0);
    rand_state(&a, &rng);
    float *W = rand_W(7, 24, &rng);
    double *H = rand_H(24, &rng), L = 0;
    for (int r = 0; r < 7; r++) L += row_obj(&a, W, H, r);
    ck_assert_double_eq_tol(ptq_aqlm_objective_ref(&a, W, H), L, 1e-9 * L);
    ck_assert_double_eq_tol(ptq_aqlm_objective(&a, W, H, 2), L, 1e-9 * L);
    ptq_aqlm_free(&a), free(W), free(H);
}
END_TEST

/* beam 1 = greedy coordinate descent over m inside each group, groups in
 * order (the test's greedy evaluates the full objective for every choice) */
START_TEST(beam1_is_greedy)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 2);
    int R = 5, C = 24, M = 3, B = 3;
    ptq_aqlm a, g;
    ptq_err e;
    twin_states(&a, &g, R, C, M, B, &rng);
    float *W = rand_W(R, C, &rng);
    double *H = rand_H(C, &rng);
    ck_assert_int_eq(ptq_aqlm_beam(&a, W, H, 1, 1, &e), 0);
    for (int r = 0; r < R; r++)
        for (int gg = 0; gg < g.G; gg++)
            for (int m = 0; m < M; m++) {
                int best = 0;
                double bl = INFINITY;
                for (int k = 0; k < g.K; k++) {
                    *code(&g, r, gg, m) = k;
                    double L = row_obj(&g, W, H, r);
                    if (L < bl) bl = L, best = k;
                }
                *code(&g, r, gg, m) = best;
            }
    for (int i = 0; i < R * a.G * M; i++)
        ck_assert_msg(a.codes[i] == g.codes[i], "code %d: beam 1 %d, greedy %d", i, a.codes[i],
                      g.codes[i]);
    ptq_aqlm_free(&a), ptq_aqlm_free(&g), free(W), free(H);
}
END_TEST

/* the beam's AVX2 scoring (where the CPU has it) and its generic loops give
 * the same codes: beam 8 and 3 codebooks (a middle codebook keeps a list,
 * the last one only its best), 1 and 3 threads */
START_TEST(beam_simd_matches_generic)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 12);
    int R = 40, C = 64, M = 3, B = 5;
    ptq_aqlm a, g;
    ptq_err e;
    twin_states(&a, &g, R, C, M, B, &rng);
    float *W = rand_W(R, C, &rng);
    double *H = rand_H(C, &rng);
    ck_assert_int_eq(ptq_aqlm_beam_path(&a, W, H, 8, 1, 1, &e), 0);
    ck_assert_int_eq(ptq_aqlm_beam_path(&g, W, H, 8, 3, 0, &e), 0);
    ck_assert(!memcmp(a.codes, g.codes, sizeof *a.codes * R * a.G * M));
    ptq_aqlm_free(&a), ptq_aqlm_free(&g), free(W), free(H);
}
END_TEST

/* the tiled Cholesky (n = 600: tiles of 256, the last one short) against
 * LAPACKE_dpotrf within 1e-12 relative; the same bits for 1 and 3 threads */
START_TEST(tiled_cholesky)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 13);
    int n = 600;
    double *A = rand_H(n, &rng), *L1 = malloc(sizeof *L1 * n * n), *L3 = malloc(sizeof *L3 * n * n);
    memcpy(L1, A, sizeof *A * n * n), memcpy(L3, A, sizeof *A * n * n);
    ptq_err e;
    ck_assert_int_eq(ptq_aqlm_cholesky(L1, n, 1, &e), 0);
    ck_assert_int_eq(ptq_aqlm_cholesky(L3, n, 3, &e), 0);
    ck_assert_int_eq(LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A, n), 0);
    double mx = 0, dmax = 0;
    for (int j = 0; j < n; j++)
        for (int i = j; i < n; i++) {
            size_t x = (size_t)j * n + i;
            ck_assert(L1[x] == L3[x]);
            mx = fmax(mx, fabs(A[x])), dmax = fmax(dmax, fabs(L1[x] - A[x]));
        }
    ck_assert_msg(dmax <= 1e-12 * mx, "tiled Cholesky off by %g (max %g)", dmax, mx);
    /* not positive definite at column 300: dpotrf's info */
    for (int i = 0; i < n * n; i++) L1[i] = 0;
    for (int i = 0; i < n; i++) L1[(size_t)i * n + i] = i == 300 ? -1 : 1;
    ck_assert_int_eq(ptq_aqlm_cholesky(L1, n, 2, &e), 301);
    free(A), free(L1), free(L3);
}
END_TEST

/* beam K^(M-1) with M = 2: the brute-force optimum of each group (every
 * combination, full objective), groups in order */
static void exhaustive(int B, uint64_t seed)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, seed);
    int R = 4, C = 24, M = 2;
    ptq_aqlm a, g;
    ptq_err e;
    twin_states(&a, &g, R, C, M, B, &rng);
    float *W = rand_W(R, C, &rng);
    double *H = rand_H(C, &rng);
    ck_assert_int_eq(ptq_aqlm_beam(&a, W, H, a.K, 2, &e), 0);
    for (int r = 0; r < R; r++)
        for (int gg = 0; gg < g.G; gg++) {
            int b0 = 0, b1 = 0;
            double bl = INFINITY;
            for (int k0 = 0; k0 < g.K; k0++)
                for (int k1 = 0; k1 < g.K; k1++) {
                    *code(&g, r, gg, 0) = k0, *code(&g, r, gg, 1) = k1;
                    double L = row_obj(&g, W, H, r);
                    if (L < bl) bl = L, b0 = k0, b1 = k1;
                }
            *code(&g, r, gg, 0) = b0, *code(&g, r, gg, 1) = b1;
            /* the beam's choice for this group, the earlier groups equal */
            int32_t c0 = *code(&a, r, gg, 0), c1 = *code(&a, r, gg, 1);
            ck_assert_msg(c0 == b0 && c1 == b1, "B=%d row %d group %d: beam (%d,%d), brute "
                          "force (%d,%d)", B, r, gg, c0, c1, b0, b1);
        }
    ptq_aqlm_free(&a), ptq_aqlm_free(&g), free(W), free(H);
}

START_TEST(exhaustive_beam_is_optimal)
{
    exhaustive(3, 3);
    exhaustive(4, 4);
    exhaustive(3, 5);
}
END_TEST

/* every step of every round leaves L no larger (joint LS, per codebook LS,
 * diagonal blocks) */
static void monotone(int R, int C, int M, int B)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, (uint64_t)(M * 100 + B));
    ptq_aqlm a;
    ptq_err e;
    ptq_aqlm_opts o;
    ptq_aqlm_defaults(&o);
    o.M = M, o.B = B, o.beam = 4, o.threads = 2, o.kmeans_iter = 5;
    ptq_aqlm_alloc(&a, R, C, M, B, &e);
    float *W = rand_W(R, C, &rng);
    double *H = rand_H(C, &rng);
    ck_assert_int_eq(ptq_aqlm_init(&a, W, &o, &e), 0);
    double L = ptq_aqlm_objective_ref(&a, W, H), L0 = L;
    double floor = 1e-12 * L0; /* rounding at L near 0 */
    for (int it = 0; it < 4; it++)
        for (int step = 0; step < 3; step++) {
            int rc = step == 0   ? ptq_aqlm_beam(&a, W, H, o.beam, 2, &e)
                     : step == 1 ? ptq_aqlm_codebooks(&a, W, H, 2, &e)
                                 : ptq_aqlm_scales(&a, W, H, 2, &e);
            ck_assert_int_eq(rc, 0);
            double L1 = ptq_aqlm_objective_ref(&a, W, H);
            ck_assert_msg(L1 <= L * (1 + 1e-9) + floor, "%dx%d round %d step %d: L %g -> %g", M, B, it,
                          step, L, L1);
            L = L1;
        }
    ck_assert_msg(L < L0, "%dx%d: no progress (%g)", M, B, L);
    printf("aqlm %dx%d %dx%d: L %.4g -> %.4g in 4 rounds\n", M, B, R, C, L0, L);
    ptq_aqlm_free(&a), free(W), free(H);
}

START_TEST(objective_never_increases)
{
    monotone(12, 32, 2, 3); /* joint least squares */
    monotone(160, 32, 2, 8); /* one codebook at a time */
    monotone(200, 64, 1, 9); /* diagonal blocks */
}
END_TEST

/* H = I, unit scales, M = 1: codeword k = the mean of the groups coded k */
START_TEST(identity_is_kmeans)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 7);
    int R = 9, C = 32, B = 3;
    ptq_aqlm a;
    ptq_err e;
    ptq_aqlm_alloc(&a, R, C, 1, B, &e);
    rand_state(&a, &rng);
    a.codes[0] = 0; /* codeword 7 unused: it must stay */
    for (int i = 0; i < R * a.G; i++)
        if (a.codes[i] == 7) a.codes[i] = 6;
    for (int r = 0; r < R; r++) a.scale[r] = 1;
    float *W = rand_W(R, C, &rng);
    double *H = calloc((size_t)C * C, sizeof *H), old7[8];
    for (int i = 0; i < C; i++) H[i * C + i] = 1;
    memcpy(old7, a.cb + 7 * 8, sizeof old7);
    ck_assert_int_eq(ptq_aqlm_ls(&a, W, H, 0, 1, 1, &e), 0);
    for (int k = 0; k < 8; k++) {
        double mean[8] = {0};
        int n = 0;
        for (int i = 0; i < R * a.G; i++)
            if (a.codes[i] == k) {
                n++;
                for (int t = 0; t < 8; t++) mean[t] += W[i * 8 + t];
            }
        for (int t = 0; t < 8; t++) {
            double want = n ? mean[t] / n : old7[t];
            ck_assert_msg(fabs(a.cb[k * 8 + t] - want) < 1e-7 * (1 + fabs(want)),
                          "codeword %d[%d]: %g, k-means %g", k, t, a.cb[k * 8 + t], want);
        }
    }
    ptq_aqlm_free(&a), free(W), free(H);
}
END_TEST

/* solve A x = b (n x n) by Gaussian elimination with partial pivoting */
static void gauss_solve(double *A, double *b, int n)
{
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int i = c + 1; i < n; i++)
            if (fabs(A[i * n + c]) > fabs(A[p * n + c])) p = i;
        for (int j = 0; j < n; j++) {
            double t = A[c * n + j];
            A[c * n + j] = A[p * n + j], A[p * n + j] = t;
        }
        double t = b[c];
        b[c] = b[p], b[p] = t;
        for (int i = c + 1; i < n; i++) {
            double f = A[i * n + c] / A[c * n + c];
            for (int j = c; j < n; j++) A[i * n + j] -= f * A[c * n + j];
            b[i] -= f * b[c];
        }
    }
    for (int i = n - 1; i >= 0; i--) {
        for (int j = i + 1; j < n; j++) b[i] -= A[i * n + j] * b[j];
        b[i] /= A[i * n + i];
    }
}

START_TEST(least_squares_matches_normal_equations)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 8);
    int R = 8, C = 32, M = 2, B = 2, K = 4, n = M * K * 8;
    ptq_aqlm a;
    ptq_err e;
    ptq_aqlm_alloc(&a, R, C, M, B, &e);
    rand_state(&a, &rng);
    for (int i = 0; i < K; i++) /* every codeword used, codes independent */
        for (int m = 0; m < M; m++) a.codes[(i + 7 * m) * M + m] = i;
    float *W = rand_W(R, C, &rng);
    double *H = rand_H(C, &rng);
    double *J = calloc((size_t)C * n, sizeof *J), *N = calloc((size_t)n * n, sizeof *N);
    double *rhs = calloc((size_t)n, sizeof *rhs);
    for (int r = 0; r < R; r++) {
        memset(J, 0, sizeof *J * C * n);
        for (int g = 0; g < a.G; g++)
            for (int m = 0; m < M; m++)
                for (int i = 0; i < 8; i++)
                    J[(g * 8 + i) * n + (m * K + *code(&a, r, g, m)) * 8 + i] = 1;
        double s = a.scale[r];
        for (int p = 0; p < n; p++)
            for (int q = 0; q < n; q++) {
                double t = 0;
                for (int i = 0; i < C; i++)
                    for (int j = 0; j < C; j++) t += J[i * n + p] * H[i * C + j] * J[j * n + q];
                N[p * n + q] += s * s * t;
            }
        for (int p = 0; p < n; p++)
            for (int i = 0; i < C; i++)
                for (int j = 0; j < C; j++) rhs[p] += s * J[i * n + p] * H[i * C + j] * W[r * C + j];
    }
    /* v -> v + (d on codebook 0, -d on codebook 1) changes no reconstruction:
     * pin codeword 0 of codebook 1 at its value (8 unknowns out) and compare
     * the reconstructions, which are unique */
    int p0 = K * 8;
    for (int p = 0; p < n; p++)
        for (int i = 0; i < 8; i++) {
            if (p >= p0 && p < p0 + 8) continue;
            rhs[p] -= N[p * n + p0 + i] * a.cb[p0 + i];
        }
    for (int p = 0; p < n; p++)
        for (int i = 0; i < 8; i++) {
            N[p * n + p0 + i] = N[(p0 + i) * n + p] = 0;
        }
    for (int i = 0; i < 8; i++) N[(p0 + i) * n + p0 + i] = 1, rhs[p0 + i] = a.cb[p0 + i];
    gauss_solve(N, rhs, n);
    ck_assert_int_eq(ptq_aqlm_ls(&a, W, H, 0, M, 2, &e), 0);
    ptq_aqlm b = a;
    b.cb = rhs;
    double *q1 = malloc(C * sizeof *q1), *q2 = malloc(C * sizeof *q2);
    for (int r = 0; r < R; r++) {
        ptq_aqlm_row(&a, r, q1);
        ptq_aqlm_row(&b, r, q2);
        for (int k = 0; k < C; k++)
            ck_assert_msg(fabs(q1[k] - q2[k]) < 1e-6 * (1 + fabs(q2[k])), "row %d [%d]: %g, "
                          "normal equations %g", r, k, q1[k], q2[k]);
    }
    free(q1), free(q2);
    ptq_aqlm_free(&a), free(W), free(H), free(J), free(N), free(rhs);
}
END_TEST

static float *to_float(const double *H, int C)
{
    float *f = malloc((size_t)C * C * sizeof *f);
    for (int i = 0; i < C * C; i++) f[i] = (float)H[i];
    return f;
}

static void quantize(int R, int C, int M, int B, int threads, ptq_qtensor *q, ptq_aqlm_report *rep)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 11);
    float *W = rand_W(R, C, &rng);
    double *H = rand_H(C, &rng);
    float *Hf = to_float(H, C);
    ptq_aqlm_opts o;
    ptq_aqlm_defaults(&o);
    o.M = M, o.B = B, o.beam = 4, o.threads = threads, o.seed = 5;
    ptq_err e;
    int rc = ptq_aqlm_quantize(W, Hf, R, C, &o, q, rep, &e);
    ck_assert_msg(rc == 0, "%s", e.msg);
    free(W), free(H), free(Hf);
}

START_TEST(threads_bit_identical)
{
    static const int cfg[][2] = {{2, 4}, {1, 9}, {2, 8}};
    for (int t = 0; t < 3; t++) {
        ptq_qtensor q1, q2;
        ptq_aqlm_report r1, r2;
        quantize(96, 64, cfg[t][0], cfg[t][1], 1, &q1, &r1);
        quantize(96, 64, cfg[t][0], cfg[t][1], 3, &q2, &r2);
        printf("aqlm %dx%d 96x64: L %.4g after init, %.4g after %d rounds (fp16)\n",
               cfg[t][0], cfg[t][1], r1.obj_init, r1.obj, r1.iters);
        const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_AQLM);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(!memcmp(ptq_qfmt_payload_ptr(f, &q1, i), ptq_qfmt_payload_ptr(f, &q2, i),
                                  f->payload_bytes(&q1, i)),
                          "%dx%d payload %s differs between 1 and 3 threads", cfg[t][0],
                          cfg[t][1], f->payloads[i].name);
        ck_assert_int_eq(r1.iters, r2.iters);
        ck_assert_msg(r1.obj < r1.obj_init, "no progress");
        ptq_qtensor_free(&q1), ptq_qtensor_free(&q2);
    }
}
END_TEST

/* decode = s * sum of the fp16 codewords; the LUT gemv within its bound of
 * decode-then-multiply; the same bits for 1 and 3 threads */
static void format_case(int M, int B)
{
    ptq_qtensor q;
    ptq_aqlm_report rep;
    int R = 24, C = 48;
    quantize(R, C, M, B, 2, &q, &rep);
    ptq_err e;
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), 0);
    float *w = malloc((size_t)R * C * sizeof *w), x[48], y1[24], y3[24];
    ck_assert_int_eq(ptq_qtensor_dequant(&q, w, &e), 0);
    int G = C / 8, K = 1 << B;
    ptq_rng rng;
    ptq_rng_seed(&rng, 3);
    for (int k = 0; k < C; k++) x[k] = (float)gauss(&rng);
    ck_assert_int_eq(ptq_qfmt_get(PTQ_QF_AQLM)->gemv(&q, x, y1, 1, &e), 0);
    ck_assert_int_eq(ptq_qfmt_get(PTQ_QF_AQLM)->gemv(&q, x, y3, 3, &e), 0);
    ck_assert(!memcmp(y1, y3, sizeof y1));
    for (int r = 0; r < R; r++) {
        double s = ptq_f16_to_f32(q.aq_scales[r]), ref = 0, mag = 0;
        for (int g = 0; g < G; g++)
            for (int i = 0; i < 8; i++) {
                double v = 0, av = 0;
                for (int m = 0; m < M; m++) {
                    size_t ci = ((size_t)r * G + g) * M + m;
                    unsigned c = B > 8 ? ((uint16_t *)q.aq_codes)[ci] : ((uint8_t *)q.aq_codes)[ci];
                    ck_assert_uint_lt(c, (unsigned)K);
                    float cw = ptq_f16_to_f32(q.aq_codebooks[((size_t)m * K + c) * 8 + i]);
                    v += cw, av += fabs(cw);
                }
                ck_assert_msg(fabs(w[r * C + g * 8 + i] - s * v) <= 1e-6 * fabs(s) * av,
                              "decode [%d][%d]", r, g * 8 + i);
                ref += (double)w[r * C + g * 8 + i] * x[g * 8 + i];
                mag += fabs(s) * av * fabs(x[g * 8 + i]);
            }
        double bound = 2.0 * (C + M + 2) * ldexp(1, -24) * mag;
        ck_assert_msg(fabs(y1[r] - ref) <= bound + 1e-6 * mag, "gemv row %d: %g vs %g (bound %g)",
                      r, y1[r], ref, bound);
    }
    free(w);
    ptq_qtensor_free(&q);
}

START_TEST(format_decode_gemv)
{
    format_case(2, 8);
    format_case(3, 4);
    format_case(1, 10);
}
END_TEST

START_TEST(bad_input)
{
    ptq_rng rng;
    ptq_rng_seed(&rng, 9);
    float *W = rand_W(4, 16, &rng);
    ptq_aqlm_opts o;
    ptq_aqlm_defaults(&o);
    o.B = 3;
    ptq_qtensor q;
    ptq_aqlm_report rep;
    ptq_err e;
    ck_assert_int_eq(ptq_aqlm_quantize(W, NULL, 4, 12, &o, &q, &rep, &e), PTQ_EUSAGE);
    ck_assert_ptr_nonnull(strstr(e.msg, "multiple"));
    o.M = 9;
    ck_assert_int_eq(ptq_aqlm_quantize(W, NULL, 4, 16, &o, &q, &rep, &e), PTQ_EUSAGE);
    o.M = 2, o.B = 17;
    ck_assert_int_eq(ptq_aqlm_quantize(W, NULL, 4, 16, &o, &q, &rep, &e), PTQ_EUSAGE);
    o.B = 3;
    W[5] = NAN;
    ck_assert_int_eq(ptq_aqlm_quantize(W, NULL, 4, 16, &o, &q, &rep, &e), PTQ_EDATA);
    ck_assert_ptr_nonnull(strstr(e.msg, "weight [0][5]"));
    W[5] = 0;
    ck_assert_int_eq(ptq_aqlm_quantize(W, NULL, 4, 16, &o, &q, &rep, &e), 0);
    ((uint8_t *)q.aq_codes)[3] = 9; /* B = 3: codes 0..7 */
    ck_assert_int_eq(ptq_qtensor_check(&q, "t", &e), PTQ_EFORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "outside 0..7"));
    ptq_qtensor_free(&q);
    free(W);
}
END_TEST

/* the command line: bad --codebooks, a method without --codebooks, inputs
 * that groups of 8 do not divide; nothing left at OUT */
START_TEST(cli_bad_input)
{
    char *dir = tu_tmpdir(), *out = tu_fmt("%s/o.ptq", dir), *st = tu_src("examples/stories260k");
    static const char *const bad[][2] = {{"0x8", "not MxB"}, {"2x", "not MxB"},
                                         {"1x17", "unsupported"}, {"9x8", "unsupported"}};
    for (int i = 0; i < 4; i++) {
        char *a = tu_fmt("compile '%s' -o '%s' --method aqlm --codebooks %s", st, out, bad[i][0]);
        tu_expect_fail(a, 2, bad[i][1], out);
        free(a);
    }
    char *a = tu_fmt("compile '%s' -o '%s' --method gptq --codebooks 2x8", st, out);
    tu_expect_fail(a, 2, "aqlm options", out);
    free(a);
    a = tu_fmt("compile '%s' -o '%s' --method aqlm --bits 3", st, out);
    tu_expect_fail(a, 2, "do not apply to --method aqlm", out);
    free(a);
    a = tu_fmt("compile '%s' -o '%s' --method aqlm", st, out);
    tu_expect_fail(a, 2, "model.layers.0.mlp.down_proj.weight: 172 inputs are not a multiple of 8",
                   out);
    free(a);
    tu_rmrf(dir);
    free(dir), free(out), free(st);
}
END_TEST

/* babyllama-105 end to end (small codebooks and budget): verify, eval, the
 * same bundle for 1 and 2 threads, and the lookup-table gemv in `ptqc run` */
START_TEST(babyllama_end_to_end)
{
    char *dir = tu_tmpdir(), *m = tu_shared("models/babyllama-105");
    char *o1 = tu_fmt("%s/a1.ptq", dir), *o2 = tu_fmt("%s/a2.ptq", dir);
    const char *fl = "--method aqlm --codebooks 4x4 --beam 2 --nsamples 4 --seqlen 64 --seed 3";
    char *f1 = tu_fmt("%s --threads 1 --quiet", fl), *f2 = tu_fmt("%s --threads 2 --quiet", fl);
    size_t n1, n2; /* the same OUT (the manifest records the command line but --threads) */
    tu_compile_ok(m, o1, NULL, f2, 1);
    char *b2 = tu_read_file(o1, &n2);
    ck_assert_int_eq(rename(o1, o2), 0);
    tu_compile_ok(m, o1, NULL, f1, 1);
    char *b1 = tu_read_file(o1, &n1);
    ck_assert_msg(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "bundles differ across --threads");
    double p0 = tu_ppl(m), p1 = tu_ppl(o1);
    printf("babyllama-105 aqlm 4x4: ppl %.3f (fp %.3f)\n", p1, p0);
    ck_assert_msg(isfinite(p1) && p1 < 3 * p0, "ppl %g vs %g", p1, p0);
    char *a = tu_fmt("run '%s' --device cpu --prompt 'Once upon' -n 8", o1), *out = NULL;
    ck_assert_int_eq(tu_ptqc(a, &out, NULL), 0);
    free(a), free(out), free(b1), free(b2), free(f1), free(f2);
    tu_rmrf(dir);
    free(dir), free(m), free(o1), free(o2);
}
END_TEST

/* SIGKILL an aqlm compile (--threads 2) after its second layer and --resume
 * it (--threads 1): the same bytes as one uninterrupted run with --threads 3
 * (tests/testutil.c tu_compile_kill). */
START_TEST(resume_after_kill)
{
    char *m = tu_shared("models/babyllama-105"), *d1 = tu_tmpdir(), *d2 = tu_tmpdir();
    char *a = tu_fmt("%s/x.ptq", d1), *b = tu_fmt("%s/x.ptq", d2);
    const char *fl = "--method aqlm --codebooks 4x4 --beam 2 --nsamples 4 --seqlen 64 --seed 3";
    char *f3 = tu_fmt("%s --threads 3", fl), *f2 = tu_fmt("%s --threads 2", fl);
    char *f1 = tu_fmt("--resume %s --threads 1", fl);
    tu_compile_ok(m, a, NULL, f3, 0);
    int killed = tu_compile_kill(m, b, NULL, f2, "layer_done", 2);
    tu_compile_ok(m, b, NULL, f1, 1);
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    printf("aqlm resume after SIGKILL (%s), threads 3 vs 2+1: %s\n",
           killed ? "killed" : "finished first",
           x && y && na == nb && !memcmp(x, y, na) ? "identical" : "DIFFERENT");
    ck_assert(killed);
    ck_assert_msg(x && y && na == nb && !memcmp(x, y, na), "resumed bundle differs");
    free(x), free(y), free(f1), free(f2), free(f3);
    tu_rmrf(d1), tu_rmrf(d2);
    free(m), free(d1), free(d2), free(a), free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("aqlm");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, objective_matches_reference);
    tcase_add_test(tc, beam1_is_greedy);
    tcase_add_test(tc, exhaustive_beam_is_optimal);
    tcase_add_test(tc, beam_simd_matches_generic);
    tcase_add_test(tc, tiled_cholesky);
    tcase_add_test(tc, objective_never_increases);
    tcase_add_test(tc, identity_is_kmeans);
    tcase_add_test(tc, least_squares_matches_normal_equations);
    tcase_add_test(tc, threads_bit_identical);
    tcase_add_test(tc, format_decode_gemv);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, cli_bad_input);
    tcase_add_test(tc, babyllama_end_to_end);
    tcase_add_test(tc, resume_after_kill);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
