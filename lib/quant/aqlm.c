/* aqlm.c - AQLM additive codebooks (lib/quant/aqlm.h): initialisation by
 * residual k-means, beam search over codes, least-squares codebooks, closed
 * form scales, the objective and its plain-loop reference. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/half.h"
#include "lib/base/par.h"
#include "lib/base/sample.h"
#include "lib/quant/aqlm.h"

#define D PTQ_AQLM_GROUP

void ptq_aqlm_defaults(ptq_aqlm_opts *o)
{
    memset(o, 0, sizeof *o);
    o->M = 2;
    o->B = 8;
    o->beam = 8;
    o->max_iter = 20;
    o->kmeans_iter = 10;
    o->tol = 0.01;
    o->seed = 0;
    o->threads = 1;
}

int ptq_aqlm_alloc(ptq_aqlm *a, int rows, int cols, int M, int B, ptq_err *e)
{
    memset(a, 0, sizeof *a);
    a->rows = rows, a->cols = cols, a->M = M, a->B = B, a->K = 1 << B, a->G = cols / D;
    a->codes = calloc((size_t)rows * a->G * M, sizeof *a->codes);
    a->cb = calloc((size_t)M * a->K * D, sizeof *a->cb);
    a->scale = calloc((size_t)rows, sizeof *a->scale);
    if (!a->codes || !a->cb || !a->scale) {
        ptq_aqlm_free(a);
        return ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for a %d x %d linear", rows, cols);
    }
    return PTQ_OK;
}

void ptq_aqlm_free(ptq_aqlm *a)
{
    free(a->codes);
    free(a->cb);
    free(a->scale);
    memset(a, 0, sizeof *a);
}

void ptq_aqlm_row(const ptq_aqlm *a, int r, double *q)
{
    const int32_t *c = a->codes + (size_t)r * a->G * a->M;
    for (int g = 0; g < a->G; g++) {
        double *y = q + (size_t)g * D;
        for (int i = 0; i < D; i++) y[i] = 0;
        for (int m = 0; m < a->M; m++) {
            const double *v = a->cb + ((size_t)m * a->K + c[g * a->M + m]) * D;
            for (int i = 0; i < D; i++) y[i] += v[i];
        }
    }
}

/* ------------------------------------------------------------ the workers */

/* fn(ctx, r, scratch) for rows [r0, r1) of job; scratch = nscratch doubles */
typedef struct rjob {
    void (*fn)(void *ctx, int r, double *scratch);
    void *ctx;
    int r0, r1;
    double *scratch;
} rjob;

static void rjob_run(void *p)
{
    rjob *j = p;
    for (int r = j->r0; r < j->r1; r++) j->fn(j->ctx, r, j->scratch);
}

/* Rows over the workers in contiguous ranges; each row's work is its own
 * (it reads shared data and writes its own row), so any split gives the
 * same bits. */
static int par_rows(int rows, int threads, void (*fn)(void *, int, double *), void *ctx,
                    size_t nscratch, ptq_err *e)
{
    int nw = threads < 1 ? 1 : threads > PTQ_PAR_MAX ? PTQ_PAR_MAX : threads;
    if (nw > rows) nw = rows > 0 ? rows : 1;
    rjob jobs[PTQ_PAR_MAX];
    double *s = malloc((nscratch ? nscratch : 1) * nw * sizeof *s);
    if (!s) return ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for scratch");
    for (int w = 0; w < nw; w++)
        jobs[w] = (rjob){fn, ctx, (int)((long)rows * w / nw), (int)((long)rows * (w + 1) / nw),
                         s + nscratch * w};
    int nt = ptq_blas_single();
    ptq_par_run(nw, rjob_run, jobs, sizeof *jobs);
    ptq_blas_restore(nt);
    free(s);
    return PTQ_OK;
}

/* ------------------------------------------------------------- objective */

typedef struct octx {
    const ptq_aqlm *a;
    const float *W;
    const double *H;
    double *out; /* [rows] */
} octx;

/* The products with H run over fixed chunks of PTQ_AQLM_CHUNK rows (one
 * work item each, whichever worker takes it) as one dgemm: the chunk's rows
 * stream H once instead of once per row. */
#define CH PTQ_AQLM_CHUNK

static int nchunks(int rows)
{
    return (rows + CH - 1) / CH;
}

/* rows [*r0, *r0 + *n) of chunk ci */
static void chunk_rows(int rows, int ci, int *r0, int *n)
{
    *r0 = ci * CH;
    *n = rows - *r0 < CH ? rows - *r0 : CH;
}

/* U [n][C] = E [n][C] H, H symmetric */
static void hmul(const double *H, int C, const double *E, int n, double *U)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C, C, 1.0, E, C, H, C, 0.0, U, C);
}

/* e = w - s q */
static void row_residual(const ptq_aqlm *a, const float *W, int r, double *e)
{
    int C = a->cols;
    ptq_aqlm_row(a, r, e);
    const float *w = W + (size_t)r * C;
    for (int k = 0; k < C; k++) e[k] = (double)w[k] - a->scale[r] * e[k];
}

/* E, U = H E of chunk ci into s [2][CH][C]; its first row into *r0, count *n */
static void chunk_residual(const ptq_aqlm *a, const float *W, const double *H, int ci,
                           double *s, int *r0, int *n)
{
    int C = a->cols;
    chunk_rows(a->rows, ci, r0, n);
    for (int i = 0; i < *n; i++) row_residual(a, W, *r0 + i, s + (size_t)i * C);
    hmul(H, C, s, *n, s + (size_t)CH * C);
}

static void obj_chunk(void *p, int ci, double *s)
{
    octx *c = p;
    int C = c->a->cols, r0, n;
    chunk_residual(c->a, c->W, c->H, ci, s, &r0, &n);
    for (int i = 0; i < n; i++)
        c->out[r0 + i] = cblas_ddot(C, s + (size_t)i * C, 1, s + (size_t)(CH + i) * C, 1);
}

double ptq_aqlm_objective(const ptq_aqlm *a, const float *W, const double *H, int threads)
{
    double *o = calloc((size_t)a->rows, sizeof *o), L = 0;
    ptq_err e;
    octx c = {a, W, H, o};
    if (!o || par_rows(nchunks(a->rows), threads, obj_chunk, &c, 2 * (size_t)CH * a->cols,
                       &e)) {
        free(o);
        return NAN;
    }
    for (int r = 0; r < a->rows; r++) L += o[r];
    free(o);
    return L;
}

double ptq_aqlm_objective_ref(const ptq_aqlm *a, const float *W, const double *H)
{
    int C = a->cols;
    double *e = malloc((size_t)C * sizeof *e), L = 0;
    if (!e) return NAN;
    for (int r = 0; r < a->rows; r++) {
        for (int g = 0; g < a->G; g++)
            for (int i = 0; i < D; i++) {
                double y = 0;
                for (int m = 0; m < a->M; m++)
                    y += a->cb[((size_t)m * a->K + a->codes[((size_t)r * a->G + g) * a->M + m]) * D + i];
                e[g * D + i] = (double)W[(size_t)r * C + g * D + i] - a->scale[r] * y;
            }
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) L += e[i] * H[(size_t)i * C + j] * e[j];
    }
    free(e);
    return L;
}

/* ------------------------------------------------------------- scoring */

/* The beam's candidates and k-means' distances.  Hypothesis h against
 * codeword k of codebook m (vt [8][K] its codewords transposed): f_k = (fz + sq[k]) + p.v_k, sq[k] =
 * s^2 v_k^T A v_k, the dot product summed as a pairwise tree.  The generic
 * loops and the AVX2 ones do the same operations in the same order (no
 * fused multiply-add): the same bits. */
static double score1(const double *vt, size_t K, int k, double fz, const double *p,
                     const double *sq)
{
    const double *v = vt + k;
    double d = ((p[0] * v[0] + p[1] * v[K]) + (p[2] * v[2 * K] + p[3] * v[3 * K])) +
               ((p[4] * v[4 * K] + p[5] * v[5 * K]) + (p[6] * v[6 * K] + p[7] * v[7 * K]));
    return (fz + sq[k]) + d;
}

/* every f_k into f [K] */
static void scores_ref(const double *vt, int K, const double *sq, double fz, const double *p,
                       double *f)
{
    for (int k = 0; k < K; k++) f[k] = score1(vt, (size_t)K, k, fz, p, sq);
}

/* the least f_k into *fb (ties: the lower k; +inf and k 0 when none is
 * below +inf), its k returned */
static int best_ref(const double *vt, int K, const double *sq, double fz, const double *p,
                    double *fb)
{
    double b = INFINITY;
    int kb = 0;
    for (int k = 0; k < K; k++) {
        double f = score1(vt, (size_t)K, k, fz, p, sq);
        kb = f < b ? k : kb;
        b = f < b ? f : b;
    }
    *fb = b;
    return kb;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SCAN_AVX2 __attribute__((target("avx2"), optimize("fp-contract=off")))

/* f of codewords [k, k + 4) as score1 computes them */
SCAN_AVX2 static inline __m256d score4(const double *vt, size_t K, int k, __m256d fzv,
                                       const __m256d *pv, const double *sq)
{
    const double *v = vt + k;
#define PV(i) _mm256_mul_pd(pv[i], _mm256_loadu_pd(v + (i) * K))
    __m256d d = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(PV(0), PV(1)), _mm256_add_pd(PV(2), PV(3))),
                              _mm256_add_pd(_mm256_add_pd(PV(4), PV(5)), _mm256_add_pd(PV(6), PV(7))));
#undef PV
    return _mm256_add_pd(_mm256_add_pd(fzv, _mm256_loadu_pd(sq + k)), d);
}

SCAN_AVX2 static void scores_avx2(const double *vt, int K, const double *sq, double fz,
                                  const double *p, double *f)
{
    __m256d pv[D], fzv = _mm256_set1_pd(fz);
    for (int i = 0; i < D; i++) pv[i] = _mm256_set1_pd(p[i]);
    int k = 0;
    for (; k + 4 <= K; k += 4) _mm256_storeu_pd(f + k, score4(vt, (size_t)K, k, fzv, pv, sq));
    for (; k < K; k++) f[k] = score1(vt, (size_t)K, k, fz, p, sq);
}

/* best_ref, eight codewords a step in two lanes of four (each lane keeps
 * its first least; the lanes' results are then ordered by (f, k)) */
SCAN_AVX2 static int best_avx2(const double *vt, int K, const double *sq, double fz,
                               const double *p, double *fb)
{
    if (K < 8) return best_ref(vt, K, sq, fz, p, fb);
    __m256d pv[D], fzv = _mm256_set1_pd(fz);
    for (int i = 0; i < D; i++) pv[i] = _mm256_set1_pd(p[i]);
    __m256d b0 = _mm256_set1_pd(INFINITY), b1 = b0, k0 = _mm256_setr_pd(0, 1, 2, 3);
    __m256d k1 = _mm256_setr_pd(4, 5, 6, 7), kb0 = _mm256_setzero_pd(), kb1 = kb0;
    __m256d eight = _mm256_set1_pd(8);
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256d f0 = score4(vt, (size_t)K, k, fzv, pv, sq);
        __m256d f1 = score4(vt, (size_t)K, k + 4, fzv, pv, sq);
        __m256d m0 = _mm256_cmp_pd(f0, b0, _CMP_LT_OQ), m1 = _mm256_cmp_pd(f1, b1, _CMP_LT_OQ);
        b0 = _mm256_blendv_pd(b0, f0, m0), kb0 = _mm256_blendv_pd(kb0, k0, m0);
        b1 = _mm256_blendv_pd(b1, f1, m1), kb1 = _mm256_blendv_pd(kb1, k1, m1);
        k0 = _mm256_add_pd(k0, eight), k1 = _mm256_add_pd(k1, eight);
    }
    double bl[8], kl[8], b = INFINITY;
    _mm256_storeu_pd(bl, b0), _mm256_storeu_pd(bl + 4, b1);
    _mm256_storeu_pd(kl, kb0), _mm256_storeu_pd(kl + 4, kb1);
    int kb = 0;
    for (int l = 0; l < 8; l++)
        if (bl[l] < b || (bl[l] == b && (int)kl[l] < kb)) b = bl[l], kb = (int)kl[l];
    for (; k < K; k++) {
        double f = score1(vt, (size_t)K, k, fz, p, sq);
        kb = f < b ? k : kb;
        b = f < b ? f : b;
    }
    *fb = b;
    return kb;
}
#define HAVE_SCAN_AVX2 1
#else
#define HAVE_SCAN_AVX2 0
#endif

/* --------------------------------------------------------------- k-means */

/* The assignment step: points in fixed blocks of KM_PB (one work item);
 * each point's nearest centroid by best_ref / best_avx2 on |c|^2 - 2 x.c
 * (ties: the lower index).  The blocks do not depend on the thread count:
 * the same bits for any. */
#define KM_PB 128

typedef struct kctx {
    const double *X;  /* [n][8] */
    const double *ct; /* [8][K] the centroids transposed */
    const double *cn; /* [K] |c|^2 */
    int n, K, simd;
    int32_t *as;      /* [n] */
} kctx;

static void assign_block(void *p, int blk, double *s)
{
    (void)s;
    kctx *k = p;
    int i0 = blk * KM_PB, np = k->n - i0 < KM_PB ? k->n - i0 : KM_PB;
    for (int i = i0; i < i0 + np; i++) {
        double pv[D], fb;
        for (int t = 0; t < D; t++) pv[t] = -2 * k->X[(size_t)i * D + t];
#if HAVE_SCAN_AVX2
        if (k->simd) {
            k->as[i] = best_avx2(k->ct, k->K, k->cn, 0.0, pv, &fb);
            continue;
        }
#endif
        k->as[i] = best_ref(k->ct, k->K, k->cn, 0.0, pv, &fb);
    }
}

/* Lloyd on X [n][8] into c [K][8], assignments as [n]; initial centroids
 * distinct random points (the rest zero when n < K); empty clusters keep
 * their centroid.  n <= K (1x16 on a small linear): the points themselves,
 * exact, no iterations. */
static int kmeans(const double *X, int n, int K, int iters, ptq_rng *rng, int threads, double *c,
                  int32_t *as, ptq_err *e)
{
    int *idx = malloc((size_t)n * sizeof *idx);
    double *cn = malloc((size_t)K * sizeof *cn), *sum = malloc((size_t)K * D * sizeof *sum);
    double *ct = malloc((size_t)K * D * sizeof *ct);
    int *cnt = malloc((size_t)K * sizeof *cnt), rc = PTQ_OK;
    if (!idx || !cn || !sum || !ct || !cnt)
        rc = ptq_fail(e, PTQ_ENOMEM, "AQLM k-means: out of memory");
#if HAVE_SCAN_AVX2
    int simd = __builtin_cpu_supports("avx2");
#else
    int simd = 0;
#endif
    for (int i = 0; i < n && !rc; i++) idx[i] = i;
    memset(c, 0, (size_t)K * D * sizeof *c);
    for (int j = 0; j < K && j < n && !rc; j++) {
        int t = j + (int)(ptq_rng_uniform(rng) * (n - j));
        int x = idx[j];
        idx[j] = idx[t], idx[t] = x;
        memcpy(c + (size_t)j * D, X + (size_t)idx[j] * D, D * sizeof *c);
    }
    if (n <= K && !rc) { /* every point is its own centroid: Lloyd is done */
        for (int j = 0; j < n; j++) as[idx[j]] = j;
        iters = -1;
    }
    for (int it = 0; it <= iters && !rc; it++) {
        for (int j = 0; j < K; j++) {
            cn[j] = 0;
            for (int t = 0; t < D; t++) {
                cn[j] += c[j * D + t] * c[j * D + t];
                ct[(size_t)t * K + j] = c[j * D + t];
            }
        }
        kctx k = {X, ct, cn, n, K, simd, as};
        rc = par_rows((n + KM_PB - 1) / KM_PB, threads, assign_block, &k, 0, e);
        if (rc || it == iters) break;
        memset(sum, 0, (size_t)K * D * sizeof *sum);
        memset(cnt, 0, (size_t)K * sizeof *cnt);
        for (int i = 0; i < n; i++) {
            cnt[as[i]]++;
            for (int t = 0; t < D; t++) sum[(size_t)as[i] * D + t] += X[(size_t)i * D + t];
        }
        for (int j = 0; j < K; j++)
            if (cnt[j])
                for (int t = 0; t < D; t++) c[j * D + t] = sum[j * D + t] / cnt[j];
    }
    free(idx), free(cn), free(sum), free(ct), free(cnt);
    return rc;
}

int ptq_aqlm_init(ptq_aqlm *a, const float *W, const ptq_aqlm_opts *o, ptq_err *e)
{
    size_t n = (size_t)a->rows * a->G;
    double *X = malloc(n * D * sizeof *X);
    int32_t *as = malloc(n * sizeof *as);
    int rc = X && as ? PTQ_OK : ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for k-means");
    if (n > 2147483647u && !rc) rc = ptq_fail(e, PTQ_EUSAGE, "AQLM: linear too large");
    ptq_rng rng;
    ptq_rng_seed(&rng, o->seed);
    for (int r = 0; r < a->rows && !rc; r++) {
        double ss = 0;
        const float *w = W + (size_t)r * a->cols;
        for (int k = 0; k < a->cols; k++) ss += (double)w[k] * w[k];
        a->scale[r] = ss > 0 ? sqrt(ss / a->cols) : 1.0;
        for (int k = 0; k < a->cols; k++) X[(size_t)r * a->cols + k] = w[k] / a->scale[r];
    }
    for (int m = 0; m < a->M && !rc; m++) {
        double *c = a->cb + (size_t)m * a->K * D;
        rc = kmeans(X, (int)n, a->K, o->kmeans_iter, &rng, o->threads, c, as, e);
        for (size_t i = 0; i < n && !rc; i++) {
            a->codes[i * a->M + m] = as[i];
            for (int t = 0; t < D; t++) X[i * D + t] -= c[(size_t)as[i] * D + t];
        }
    }
    free(X), free(as);
    return rc;
}

/* ----------------------------------------------------------- beam search */

typedef struct bctx {
    const ptq_aqlm *a;
    const float *W;
    const double *H;
    const double *VT; /* [M][8][K] the codebooks transposed */
    const double *Q;  /* [G][M][K] v^T H_gg v */
    int beam;
    int simd;         /* the AVX2 scan (the CPU has it and the caller wants it) */
} bctx;

typedef struct cand {
    double f;
    int h, k;
} cand;

/* insert (f, h, k) into top [n of cap] sorted by f (equal f: earlier first) */
static void top_insert(cand *top, int *n, int cap, double f, int h, int k)
{
    if (*n == cap && !(f < top[cap - 1].f)) return;
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && f < top[i - 1].f) top[i] = top[i - 1], i--;
    top[i] = (cand){f, h, k};
}

/* y^T A y - 2 y.b, Ay into ay */
static double quad(const double *A, const double *y, const double *b, double *ay)
{
    double f = 0;
    for (int i = 0; i < D; i++) {
        double t = 0;
        for (int j = 0; j < D; j++) t += A[i * D + j] * y[j];
        ay[i] = t;
        f += y[i] * t - 2 * y[i] * b[i];
    }
    return f;
}


/* f [K] of hypothesis h into the top list (cap entries), in order of k;
 * eight scores that all fail a full list's last entry are skipped at once
 * (exact: the last entry only falls) */
static void select_top(const double *f, int K, int h, cand *top, int *nt, int cap)
{
    for (int k0 = 0; k0 < K; k0 += 8) {
        int k1 = K - k0 < 8 ? K : k0 + 8;
        if (*nt == cap) {
            double mn = f[k0];
            for (int k = k0 + 1; k < k1; k++) mn = f[k] < mn ? f[k] : mn;
            if (!(mn < top[cap - 1].f) && mn == mn) continue;
        }
        for (int k = k0; k < k1; k++)
            if (*nt < cap || f[k] < top[*nt - 1].f) top_insert(top, nt, cap, f[k], h, k);
    }
}

/* The beam over group g of one row: hc [beam][M] codes, hy [beam][8]
 * reconstructions (hypothesis 0 = the current codes, y_cur); the best
 * ends in hc[0], hy[0].  After the last codebook only the best is used:
 * that step keeps the least (f, h, k) (the first of the beam's ordered
 * list). */
static void beam_group(const bctx *x, int g, double s, const double *A, const double *b,
                       int32_t *hc, double *hy, int32_t *nc, double *ny, cand *top, double *sq)
{
    const ptq_aqlm *a = x->a;
    int M = a->M, K = a->K, nh = 1;
    double s2 = s * s, *sc = sq + K;
    for (int m = 0; m < M; m++) {
        int nt = 0, last = m == M - 1;
        const double *q = x->Q + ((size_t)g * M + m) * K, *vt = x->VT + (size_t)m * D * K;
        for (int k = 0; k < K; k++) sq[k] = s2 * q[k];
        if (last) top[0] = (cand){INFINITY, 0, 0}, nt = 1;
        for (int h = 0; h < nh; h++) {
            double z[D], az[D], p[D];
            const double *v = a->cb + ((size_t)m * K + hc[h * M + m]) * D;
            for (int i = 0; i < D; i++) z[i] = hy[h * D + i] - s * v[i];
            double fz = quad(A, z, b, az);
            for (int i = 0; i < D; i++) p[i] = 2 * s * (az[i] - b[i]);
            if (last) {
                double fb;
#if HAVE_SCAN_AVX2
                int kb = x->simd ? best_avx2(vt, K, sq, fz, p, &fb) : best_ref(vt, K, sq, fz, p, &fb);
#else
                int kb = best_ref(vt, K, sq, fz, p, &fb);
#endif
                if (fb < top[0].f) top[0] = (cand){fb, h, kb};
                continue;
            }
#if HAVE_SCAN_AVX2
            if (x->simd) scores_avx2(vt, K, sq, fz, p, sc);
            else
#endif
                scores_ref(vt, K, sq, fz, p, sc);
            select_top(sc, K, h, top, &nt, x->beam);
        }
        for (int t = 0; t < nt; t++) {
            int h = top[t].h, k = top[t].k;
            memcpy(nc + t * M, hc + h * M, M * sizeof *nc);
            nc[t * M + m] = k;
            const double *vo = a->cb + ((size_t)m * K + hc[h * M + m]) * D;
            const double *vn = a->cb + ((size_t)m * K + k) * D;
            for (int i = 0; i < D; i++) ny[t * D + i] = hy[h * D + i] - s * vo[i] + s * vn[i];
        }
        memcpy(hc, nc, (size_t)nt * M * sizeof *hc);
        memcpy(hy, ny, (size_t)nt * D * sizeof *hy);
        nh = nt;
    }
}

/* The groups of a chunk's rows go in blocks of BG: inside a block each
 * row's u is updated group by group on the block's columns only; after the
 * block, u of every later column of the chunk's rows moves by one dgemm,
 * U[:, after] -= dY H[block, after] (dY [rows][8 BG] the block's changes of
 * the reconstructions).  u of a group is exact when the group is searched. */
#define BG 16

static size_t beam_scratch(const ptq_aqlm *a, int beam)
{
    /* E, U [CH][C]; dY [CH][8 BG]; hy, ny [beam][8]; sq, sc [K]; top; hc, nc (as doubles) */
    return 2 * (size_t)CH * a->cols + (size_t)CH * BG * D + 2 * (size_t)beam * D + 2 * (size_t)a->K +
           2 * (size_t)beam + (size_t)beam * a->M + 4;
}

/* groups [g0, g1) of row r in order, u = H e of the row (updated inside the
 * block as codes move), the changes y_new - y_cur into dy [8 (g1 - g0)] */
static void beam_row(const bctx *x, int r, int g0, int g1, double *u, double *dy, double *s)
{
    const ptq_aqlm *a = x->a;
    int C = a->cols, M = a->M, B = x->beam;
    double *hy = s, *ny = hy + (size_t)B * D, *sq = ny + (size_t)B * D;
    cand *top = (cand *)(sq + 2 * (size_t)a->K);
    int32_t *hc = (int32_t *)(top + B), *nc = hc + (size_t)B * M;
    double sr = a->scale[r];
    int32_t *codes = a->codes + (size_t)r * a->G * M;
    for (int g = g0; g < g1; g++) {
        double A[D * D], ycur[D], b[D], ay[D];
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) A[i * D + j] = x->H[(size_t)(g * D + i) * C + g * D + j];
        for (int i = 0; i < D; i++) ycur[i] = 0;
        for (int m = 0; m < M; m++)
            for (int i = 0; i < D; i++)
                ycur[i] += sr * a->cb[((size_t)m * a->K + codes[g * M + m]) * D + i];
        quad(A, ycur, ycur, ay);
        for (int i = 0; i < D; i++) b[i] = u[g * D + i] + ay[i];
        memcpy(hc, codes + g * M, M * sizeof *hc);
        memcpy(hy, ycur, sizeof ycur);
        beam_group(x, g, sr, A, b, hc, hy, nc, ny, top, sq);
        memcpy(codes + g * M, hc, M * sizeof *hc);
        int c0 = (g + 1) * D, c1 = g1 * D;
        for (int i = 0; i < D; i++) {
            double d = hy[i] - ycur[i];
            dy[(g - g0) * D + i] = d;
            const double *h = x->H + (size_t)(g * D + i) * C;
            if (d != 0)
                for (int k = c0; k < c1; k++) u[k] -= d * h[k];
        }
    }
}

static void beam_chunk(void *p, int ci, double *s)
{
    bctx *x = p;
    int C = x->a->cols, G = x->a->G, r0, n;
    chunk_residual(x->a, x->W, x->H, ci, s, &r0, &n);
    double *U = s + (size_t)CH * C, *dY = s + 2 * (size_t)CH * C, *rest = dY + (size_t)CH * BG * D;
    for (int g0 = 0; g0 < G; g0 += BG) {
        int g1 = G - g0 < BG ? G : g0 + BG, c1 = g1 * D;
        for (int i = 0; i < n; i++)
            beam_row(x, r0 + i, g0, g1, U + (size_t)i * C, dY + (size_t)i * BG * D, rest);
        if (c1 < C)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, C - c1, (g1 - g0) * D, -1.0,
                        dY, BG * D, x->H + (size_t)g0 * D * C + c1, C, 1.0, U + c1, C);
    }
}

typedef struct qctx {
    const ptq_aqlm *a;
    const double *H;
    double *Q;
} qctx;

/* Q[g][m][k] = v_mk^T H_gg v_mk (a "row" here is a group) */
static void gram_group(void *p, int g, double *s)
{
    (void)s;
    qctx *c = p;
    const ptq_aqlm *a = c->a;
    for (int m = 0; m < a->M; m++)
        for (int k = 0; k < a->K; k++) {
            const double *v = a->cb + ((size_t)m * a->K + k) * D;
            double q = 0;
            for (int i = 0; i < D; i++) {
                double t = 0;
                for (int j = 0; j < D; j++) t += c->H[(size_t)(g * D + i) * a->cols + g * D + j] * v[j];
                q += v[i] * t;
            }
            c->Q[((size_t)g * a->M + m) * a->K + k] = q;
        }
}

int ptq_aqlm_beam(ptq_aqlm *a, const float *W, const double *H, int beam, int threads,
                  ptq_err *e)
{
    return ptq_aqlm_beam_path(a, W, H, beam, threads, 1, e);
}

int ptq_aqlm_beam_path(ptq_aqlm *a, const float *W, const double *H, int beam, int threads,
                       int simd, ptq_err *e)
{
    if (beam < 1 || beam > PTQ_AQLM_MAX_BEAM)
        return ptq_fail(e, PTQ_EUSAGE, "AQLM: beam %d is not in 1..%d", beam, PTQ_AQLM_MAX_BEAM);
    size_t K = (size_t)a->K;
    double *VT = malloc((size_t)a->M * D * K * sizeof *VT);
    double *Q = malloc((size_t)a->G * a->M * K * sizeof *Q);
    int rc = VT && Q ? PTQ_OK : ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for the beam");
    for (int m = 0; m < a->M && !rc; m++)
        for (size_t k = 0; k < K; k++)
            for (int i = 0; i < D; i++)
                VT[((size_t)m * D + i) * K + k] = a->cb[((size_t)m * K + k) * D + i];
    qctx qc = {a, H, Q};
    if (!rc) rc = par_rows(a->G, threads, gram_group, &qc, 0, e);
#if HAVE_SCAN_AVX2
    simd = simd && __builtin_cpu_supports("avx2");
#else
    simd = 0;
#endif
    bctx x = {a, W, H, VT, Q, beam, simd};
    if (!rc) rc = par_rows(nchunks(a->rows), threads, beam_chunk, &x, beam_scratch(a, beam), e);
    free(VT), free(Q);
    return rc;
}

/* ------------------------------------------------------ codebooks, scales */

/* rhs: t_r = H (w_r - s_r P_r) for every row, P_r = the codebooks outside
 * [m0, m1) (m0 == m1: t_r = H e_r, the gradient form of the diagonal step) */
typedef struct tctx {
    const ptq_aqlm *a;
    const float *W;
    const double *H;
    int m0, m1;
    double *T; /* [rows][C] */
} tctx;

static void rhs_chunk(void *p, int ci, double *s)
{
    tctx *c = p;
    const ptq_aqlm *a = c->a;
    int C = a->cols, r0, nr;
    chunk_rows(a->rows, ci, &r0, &nr);
    for (int r = r0; r < r0 + nr; r++) {
        const int32_t *cd = a->codes + (size_t)r * a->G * a->M;
        double *e = s + (size_t)(r - r0) * C;
        for (int g = 0; g < a->G; g++)
            for (int i = 0; i < D; i++) {
                double y = 0;
                for (int m = 0; m < a->M; m++)
                    if (c->m0 == c->m1 || m < c->m0 || m >= c->m1)
                        y += a->cb[((size_t)m * a->K + cd[g * a->M + m]) * D + i];
                e[g * D + i] = (double)c->W[(size_t)r * C + g * D + i] - a->scale[r] * y;
            }
    }
    hmul(c->H, C, s, nr, c->T + (size_t)r0 * C);
}

typedef struct nctx {
    const ptq_aqlm *a;
    const double *H, *T;
    const int *start, *list; /* [(m1-m0) K + 1], [(m1-m0) rows G]: the (r, g)
                                of each codeword, ascending */
    const double *Hb;        /* not diag: H in 8 x 8 blocks [G][G][8][8] */
    const int *pg, *pw;      /* not diag: per row its (g', word) pairs sorted
                                by word, g' ascending for one word */
    const int *ws;           /* [rows][words + 1] where each word starts there */
    const int *tst, *org, *ow; /* not diag: per tile of NW_T words [tiles + 1]
                                  its occurrences (r G + g, word) by g */
    int m0, m1, n;   /* unknowns n = (m1 - m0) K 8 */
    int diag;        /* only each codeword's own 8 x 8 block */
    int simd;        /* the AVX2 block adds (the same bits) */
    double *N, *rhs; /* [n][n] (diag: [n / 8][8][8]), [n] */
} nctx;

/* codewords per work item of the normal equations (their panels, 4 x 128
 * KiB at 2048 unknowns, stay in the L2 cache) */
#define NW_T 4

/* d [64] += a x [64] (an 8 x 8 block; d and x never overlap) */
static void block_axpy(double *restrict d, const double *restrict x, double a)
{
    for (int l = 0; l < D * D; l++) d[l] += a * x[l];
}

/* panel block pw[q] += a H block pg[q] for the pairs q in [q0, q1) (the
 * blocks of d and x are 8 x 8, i.e. 64 doubles apart) */
static void pairs_axpy(double *restrict d, const double *restrict x, const int *pw, const int *pg,
                       int q0, int q1, double a)
{
    for (int q = q0; q < q1; q++) block_axpy(d + (size_t)pw[q] * D * D, x + (size_t)pg[q] * D * D, a);
}

#if HAVE_SCAN_AVX2
/* pairs_axpy four doubles a step (a multiply then an add: the same bits) */
SCAN_AVX2 static void pairs_axpy_avx2(double *restrict d, const double *restrict x, const int *pw,
                                      const int *pg, int q0, int q1, double a)
{
    __m256d av = _mm256_set1_pd(a);
    for (int q = q0; q < q1; q++) {
        double *dq = d + (size_t)pw[q] * D * D;
        const double *xq = x + (size_t)pg[q] * D * D;
        for (int l = 0; l < D * D; l += 4)
            _mm256_storeu_pd(dq + l, _mm256_add_pd(_mm256_loadu_pd(dq + l),
                                                   _mm256_mul_pd(av, _mm256_loadu_pd(xq + l))));
    }
}
#endif

/* The diagonal blocks only (diag): codeword j, over rows r, groups g. */
static void normal_diag(void *p, int j, double *s)
{
    (void)s;
    nctx *c = p;
    const ptq_aqlm *a = c->a;
    int C = a->cols, G = a->G;
    double *rhs = c->rhs + (size_t)j * D, *Nj = c->N + (size_t)j * D * D;
    for (int x = c->start[j]; x < c->start[j + 1]; x++) {
        int r = c->list[x] / G, g = c->list[x] % G;
        double sr = a->scale[r], s2 = sr * sr;
        const double *t = c->T + (size_t)r * C + g * D;
        for (int i = 0; i < D; i++) rhs[i] += sr * t[i];
        for (int i = 0; i < D; i++)
            for (int l = 0; l < D; l++)
                Nj[i * D + l] += s2 * c->H[(size_t)(g * D + i) * C + g * D + l];
    }
}

/* Rows [8j, 8j + 8) of the normal equations for the NW_T codewords j of
 * tile it (work items alternate between the ends: the work per codeword
 * falls with j), their blocks at codewords >= j (the solve reads the upper
 * triangle only).  The tile's occurrences (r, g) run by g, then j, then r
 * (H's row of blocks g is read once per g, not once per occurrence); each
 * adds s_r^2 H_{g g'} for the pairs (g', word >= j) of row r (sorted by word:
 * no branch) to the blocked panel s [NW_T][words][8][8], copied into N's rows
 * at the end.  One fixed order for every sum, whoever owns the tile.
 * (Tiling the panel for the L1 cache measured slower: H's blocks are then
 * read from L3 once per tile.) */
static void normal_tile(void *p, int it, double *s)
{
    nctx *c = p;
    const ptq_aqlm *a = c->a;
    int C = a->cols, G = a->G, words = c->n / D, nt = (words + NW_T - 1) / NW_T;
    int tl = it % 2 ? nt - 1 - it / 2 : it / 2, j0 = tl * NW_T, nj = words - j0 < NW_T ? words - j0 : NW_T;
    size_t n = (size_t)c->n, np = (size_t)(c->m1 - c->m0) * G, pan = (size_t)words * D * D;
    for (int j = j0; j < j0 + nj; j++) memset(s + (j - j0) * pan + (size_t)j * D * D, 0,
                                              (size_t)(words - j) * D * D * sizeof *s);
    for (int x = c->tst[tl]; x < c->tst[tl + 1]; x++) {
        int r = c->org[x] / G, g = c->org[x] % G, j = c->ow[x];
        double sr = a->scale[r], s2 = sr * sr, *rhs = c->rhs + (size_t)j * D;
        const double *t = c->T + (size_t)r * C + g * D;
        for (int i = 0; i < D; i++) rhs[i] += sr * t[i];
        const double *hg = c->Hb + (size_t)g * G * D * D;
        const int *pg = c->pg + (size_t)r * np, *pw = c->pw + (size_t)r * np;
        double *sj = s + (j - j0) * pan;
        int q0 = c->ws[(size_t)r * (words + 1) + j];
#if HAVE_SCAN_AVX2
        if (c->simd) {
            pairs_axpy_avx2(sj, hg, pw, pg, q0, (int)np, s2);
            continue;
        }
#endif
        pairs_axpy(sj, hg, pw, pg, q0, (int)np, s2);
    }
    for (int j = j0; j < j0 + nj; j++)
        for (int w = j; w < words; w++)
            for (int i = 0; i < D; i++)
                memcpy(c->N + ((size_t)j * D + i) * n + (size_t)w * D,
                       s + (j - j0) * pan + ((size_t)w * D + i) * D, D * sizeof *s);
}

/* The blocked H and every row's (g', word) pairs by word, for normal_word */
static int word_pairs(const ptq_aqlm *a, const double *H, int m0, int m1, double **Hbp, int **pgp,
                      int **pwp, int **wsp, ptq_err *e)
{
    int C = a->cols, G = a->G, M = a->M, words = (m1 - m0) * a->K;
    size_t np = (size_t)(m1 - m0) * G;
    double *Hb = malloc((size_t)C * C * sizeof *Hb);
    int *pg = malloc((size_t)a->rows * np * sizeof *pg), *pw = malloc((size_t)a->rows * np * sizeof *pw);
    int *ws = malloc((size_t)a->rows * (words + 1) * sizeof *ws);
    *Hbp = Hb, *pgp = pg, *pwp = pw, *wsp = ws;
    if (!Hb || !pg || !pw || !ws)
        return ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for the blocked Hessian");
    for (int g = 0; g < G; g++) /* Hb [g][g2][i][l] = H [8g + i][8g2 + l] */
        for (int g2 = 0; g2 < G; g2++)
            for (int i = 0; i < D; i++)
                memcpy(Hb + (((size_t)g * G + g2) * D + i) * D, H + (size_t)(g * D + i) * C + g2 * D,
                       D * sizeof *Hb);
    for (int r = 0; r < a->rows; r++) { /* stable counting sort by word */
        const int32_t *cd = a->codes + (size_t)r * G * M;
        int *t = ws + (size_t)r * (words + 1), *g_ = pg + (size_t)r * np, *w_ = pw + (size_t)r * np;
        for (int i = 0; i <= words; i++) t[i] = 0;
        for (int g2 = 0; g2 < G; g2++)
            for (int m2 = m0; m2 < m1; m2++) t[(m2 - m0) * a->K + cd[g2 * M + m2] + 1]++;
        for (int i = 0; i < words; i++) t[i + 1] += t[i];
        for (int g2 = 0; g2 < G; g2++)
            for (int m2 = m0; m2 < m1; m2++) {
                int w = (m2 - m0) * a->K + cd[g2 * M + m2], q = t[w]++;
                g_[q] = g2, w_[q] = w;
            }
        for (int i = words; i > 0; i--) t[i] = t[i - 1];
        t[0] = 0;
    }
    return PTQ_OK;
}

/* Per tile of NW_T codewords its occurrences sorted by g (then word, r). */
static int tile_occ(const ptq_aqlm *a, int words, const int *start, const int *list, int **tstp,
                    int **orgp, int **owp, ptq_err *e)
{
    int G = a->G, nt = (words + NW_T - 1) / NW_T;
    int *tst = malloc(((size_t)nt + 1) * sizeof *tst), *cnt = malloc(((size_t)G + 1) * sizeof *cnt);
    int *org = malloc(((size_t)start[words] + 1) * sizeof *org);
    int *ow = malloc(((size_t)start[words] + 1) * sizeof *ow);
    *tstp = tst, *orgp = org, *owp = ow;
    if (!tst || !cnt || !org || !ow) {
        free(cnt);
        return ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for the normal equations");
    }
    for (int t = 0; t < nt; t++) {
        int j0 = t * NW_T, j1 = words - j0 < NW_T ? words : j0 + NW_T, o = start[j0];
        tst[t] = o;
        for (int g = 0; g <= G; g++) cnt[g] = 0;
        for (int x = start[j0]; x < start[j1]; x++) cnt[list[x] % G + 1]++;
        for (int g = 0; g < G; g++) cnt[g + 1] += cnt[g];
        for (int j = j0; j < j1; j++)
            for (int x = start[j]; x < start[j + 1]; x++) {
                int q = o + cnt[list[x] % G]++;
                org[q] = list[x], ow[q] = j;
            }
    }
    tst[nt] = start[words];
    free(cnt);
    return PTQ_OK;
}

static int normal_eqs(ptq_aqlm *a, const float *W, const double *H, int m0, int m1, int diag,
                      int threads, double **Np, double **rp, ptq_err *e)
{
    int C = a->cols, words = (m1 - m0) * a->K, n = words * D;
    double *T = malloc((size_t)a->rows * C * sizeof *T);
    size_t nn = diag ? (size_t)words * D * D : (size_t)n * n;
    double *N = calloc(nn, sizeof *N), *rhs = calloc((size_t)n, sizeof *rhs);
    int rc = T && N && rhs ? PTQ_OK : ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for the "
                                               "codebook normal equations (%d unknowns)", n);
    tctx tc = {a, W, H, diag ? 0 : m0, diag ? 0 : m1, T};
    if (!rc) rc = par_rows(nchunks(a->rows), threads, rhs_chunk, &tc, (size_t)CH * C, e);
    int *start = calloc((size_t)words + 1, sizeof *start);
    int *list = malloc((size_t)(m1 - m0) * a->rows * a->G * sizeof *list);
    if (!rc && (!start || !list)) rc = ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory");
    for (int r = 0; r < a->rows && !rc; r++) /* counting sort by codeword */
        for (int g = 0; g < a->G; g++)
            for (int m = m0; m < m1; m++)
                start[(m - m0) * a->K + a->codes[((size_t)r * a->G + g) * a->M + m] + 1]++;
    for (int j = 0; j < words && !rc; j++) start[j + 1] += start[j];
    for (int r = 0; r < a->rows && !rc; r++)
        for (int g = 0; g < a->G; g++)
            for (int m = m0; m < m1; m++)
                list[start[(m - m0) * a->K + a->codes[((size_t)r * a->G + g) * a->M + m]]++] =
                    r * a->G + g;
    for (int j = words; j > 0 && !rc; j--) start[j] = start[j - 1];
    if (!rc) start[0] = 0;
    double *Hb = NULL;
    int *pg = NULL, *pw = NULL, *ws = NULL, *tst = NULL, *org = NULL, *ow = NULL;
    if (!rc && !diag) rc = word_pairs(a, H, m0, m1, &Hb, &pg, &pw, &ws, e);
    if (!rc && !diag) rc = tile_occ(a, words, start, list, &tst, &org, &ow, e);
#if HAVE_SCAN_AVX2
    int simd = __builtin_cpu_supports("avx2");
#else
    int simd = 0;
#endif
    nctx nc = {a, H, T, start, list, Hb, pg, pw, ws, tst, org, ow, m0, m1, n, diag, simd, N, rhs};
    if (!rc && diag) rc = par_rows(words, threads, normal_diag, &nc, 0, e);
    if (!rc && !diag)
        rc = par_rows((words + NW_T - 1) / NW_T, threads, normal_tile, &nc,
                      (size_t)NW_T * words * D * D, e);
    free(T), free(start), free(list), free(Hb), free(pg), free(pw), free(ws);
    free(tst), free(org), free(ow);
    if (rc) free(N), free(rhs), N = rhs = NULL;
    *Np = N, *rp = rhs;
    return rc;
}

/* The Cholesky factor of the normal equations, tiled so that the work of
 * a step runs on every worker: for each diagonal tile k, dpotrf of the tile
 * (the caller's thread), the tiles below it by dtrsm, then every trailing
 * tile (i, j), k < j <= i, by one dsyrk (i = j) or dgemm, each tile a work
 * item.  A tile's arithmetic is one BLAS call on the same operands whoever
 * runs it, and the steps k run in order: the same bits for any count. */
#define CHOL_T 256

typedef struct cholctx {
    double *A; /* column-major, lower triangle, leading dimension n */
    int n, k;  /* the step: tile column k done by dpotrf */
} cholctx;

static int tile_n(int n, int t)
{
    return n - t * CHOL_T < CHOL_T ? n - t * CHOL_T : CHOL_T;
}

static double *tile_at(const cholctx *c, int i, int j)
{
    return c->A + (size_t)j * CHOL_T * c->n + (size_t)i * CHOL_T;
}

/* A_ik = A_ik L_kk^-T for the tile i = k + 1 + it */
static void chol_trsm(void *p, int it, double *s)
{
    (void)s;
    cholctx *c = p;
    int i = c->k + 1 + it;
    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, tile_n(c->n, i),
                CHOL_T, 1.0, tile_at(c, c->k, c->k), c->n, tile_at(c, i, c->k), c->n);
}

/* A_ij -= A_ik A_jk^T for the it-th pair k < j <= i (by i, then j) */
static void chol_update(void *p, int it, double *s)
{
    (void)s;
    cholctx *c = p;
    int i = c->k + 1, j;
    while (it >= i - c->k) it -= i - c->k, i++;
    j = c->k + 1 + it;
    int ni = tile_n(c->n, i), nj = tile_n(c->n, j);
    if (i == j)
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, ni, CHOL_T, -1.0, tile_at(c, i, c->k),
                    c->n, 1.0, tile_at(c, i, i), c->n);
    else
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, ni, nj, CHOL_T, -1.0,
                    tile_at(c, i, c->k), c->n, tile_at(c, j, c->k), c->n, 1.0, tile_at(c, i, j), c->n);
}

int ptq_aqlm_cholesky(double *A, int n, int threads, ptq_err *e)
{
    int nt = (n + CHOL_T - 1) / CHOL_T, rc = PTQ_OK, info = 0;
    cholctx c = {A, n, 0};
    for (int k = 0; k < nt && !rc && !info; k++) {
        c.k = k;
        int bt = ptq_blas_single();
        info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', tile_n(n, k), tile_at(&c, k, k), n);
        ptq_blas_restore(bt);
        if (info) info += k * CHOL_T;
        int rest = nt - 1 - k;
        if (!info && rest) rc = par_rows(rest, threads, chol_trsm, &c, 0, e);
        if (!info && rest && !rc) rc = par_rows(rest * (rest + 1) / 2, threads, chol_update, &c, 0, e);
    }
    return rc ? -1 : info;
}

/* Solve N x = rhs (n x n, SPD up to the ridge lam toward x0) into x0 (1:
 * solved; 0: not, x0 kept).  N is symmetric: read as column-major it is
 * itself (no transposed copy); the lower triangle of the column-major view
 * is the row-major upper triangle, the only part normal_tile fills. */
static int ridge_solve(double *N, double *rhs, int n, double *x0, int threads)
{
    double tr = 0;
    for (int i = 0; i < n; i++) tr += N[(size_t)i * n + i];
    double lam = 1e-9 * (tr > 0 ? tr / n : 1.0) + 1e-300;
    for (int i = 0; i < n; i++) N[(size_t)i * n + i] += lam, rhs[i] += lam * x0[i];
    ptq_err e;
    if (ptq_aqlm_cholesky(N, n, threads, &e)) return 0;
    int nt = ptq_blas_single();
    int info = LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', n, 1, N, n, rhs, n);
    ptq_blas_restore(nt);
    if (info) return 0;
    for (int i = 0; i < n; i++)
        if (!isfinite(rhs[i])) return 0;
    memcpy(x0, rhs, (size_t)n * sizeof *x0);
    return 1;
}

int ptq_aqlm_ls(ptq_aqlm *a, const float *W, const double *H, int m0, int m1, int threads,
                ptq_err *e)
{
    double *N, *rhs;
    int rc = normal_eqs(a, W, H, m0, m1, 0, threads, &N, &rhs, e);
    if (rc) return rc;
    ridge_solve(N, rhs, (m1 - m0) * a->K * D, a->cb + (size_t)m0 * a->K * D, threads);
    free(N), free(rhs);
    return PTQ_OK;
}

/* The diagonal-block step (codebooks too large for the normal equations):
 * every codeword moves by its block's Newton step on the current gradient,
 * v += N_kk^-1 sum s_r (H e_r)_g; kept when L decreases. */
static int diag_step(ptq_aqlm *a, const float *W, const double *H, int threads, ptq_err *e)
{
    double *N, *g, L0 = ptq_aqlm_objective(a, W, H, threads);
    int words = a->M * a->K, rc = normal_eqs(a, W, H, 0, a->M, 1, threads, &N, &g, e);
    if (rc) return rc;
    size_t nb = (size_t)words * D;
    double *old = malloc(nb * sizeof *old);
    if (!old) rc = ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory");
    if (!rc) memcpy(old, a->cb, nb * sizeof *old);
    for (int j = 0; j < words && !rc; j++) {
        double step[D] = {0};
        if (ridge_solve(N + (size_t)j * D * D, g + (size_t)j * D, D, step, 1))
            for (int i = 0; i < D; i++) a->cb[(size_t)j * D + i] += step[i];
    }
    if (!rc && !(ptq_aqlm_objective(a, W, H, threads) < L0)) memcpy(a->cb, old, nb * sizeof *old);
    free(old), free(N), free(g);
    return rc;
}

int ptq_aqlm_codebooks(ptq_aqlm *a, const float *W, const double *H, int threads, ptq_err *e)
{
    if ((long)a->M * a->K * D <= PTQ_AQLM_LS_MAX) return ptq_aqlm_ls(a, W, H, 0, a->M, threads, e);
    if ((long)a->K * D > PTQ_AQLM_LS_MAX) return diag_step(a, W, H, threads, e);
    int rc = PTQ_OK;
    for (int m = 0; m < a->M && !rc; m++) rc = ptq_aqlm_ls(a, W, H, m, m + 1, threads, e);
    return rc;
}

typedef struct sctx {
    ptq_aqlm *a;
    const float *W;
    const double *H;
} sctx;

static void scale_chunk(void *p, int ci, double *s)
{
    sctx *c = p;
    int C = c->a->cols, r0, n;
    chunk_rows(c->a->rows, ci, &r0, &n);
    for (int i = 0; i < n; i++) ptq_aqlm_row(c->a, r0 + i, s + (size_t)i * C);
    hmul(c->H, C, s, n, s + (size_t)CH * C);
    for (int i = 0; i < n; i++) {
        const double *q = s + (size_t)i * C, *hq = s + (size_t)(CH + i) * C;
        const float *w = c->W + (size_t)(r0 + i) * C;
        double num = 0, den = 0;
        for (int k = 0; k < C; k++) num += hq[k] * w[k], den += hq[k] * q[k];
        if (den > 0 && isfinite(num / den) && num / den != 0) c->a->scale[r0 + i] = num / den;
    }
}

int ptq_aqlm_scales(ptq_aqlm *a, const float *W, const double *H, int threads, ptq_err *e)
{
    sctx c = {a, W, H};
    return par_rows(nchunks(a->rows), threads, scale_chunk, &c, 2 * (size_t)CH * a->cols, e);
}

/* ---------------------------------------------------------------- driver */

static int check_input(const float *W, const float *H, int rows, int cols,
                       const ptq_aqlm_opts *o, ptq_err *e)
{
    if (rows < 1 || cols < D || cols % D)
        return ptq_fail(e, PTQ_EUSAGE, "AQLM: %d input columns are not a positive multiple of "
                        "the group of %d", cols, D);
    if (o->M < 1 || o->M > PTQ_AQLM_MAX_M || o->B < 1 || o->B > PTQ_AQLM_MAX_B ||
        o->M * o->B > 64)
        return ptq_fail(e, PTQ_EUSAGE, "AQLM: codebooks %dx%d: M must be 1..%d and B 1..%d",
                        o->M, o->B, PTQ_AQLM_MAX_M, PTQ_AQLM_MAX_B);
    if (o->beam < 1 || o->beam > PTQ_AQLM_MAX_BEAM)
        return ptq_fail(e, PTQ_EUSAGE, "AQLM: beam %d is not in 1..%d", o->beam,
                        PTQ_AQLM_MAX_BEAM);
    size_t n = (size_t)rows * cols;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(W[i]))
            return ptq_fail(e, PTQ_EDATA, "weight [%zu][%zu] is %g", i / cols, i % cols,
                            (double)W[i]);
    for (size_t i = 0; H && i < (size_t)cols * cols; i++)
        if (!isfinite(H[i]))
            return ptq_fail(e, PTQ_EDATA, "Hessian [%zu][%zu] is %g", i / cols, i % cols,
                            (double)H[i]);
    return PTQ_OK;
}

/* fp16 codebooks, then the scales for them, in fp16 */
static int round_fp16(ptq_aqlm *a, const float *W, const double *H, int threads, ptq_err *e)
{
    for (size_t i = 0; i < (size_t)a->M * a->K * D; i++)
        a->cb[i] = ptq_f16_to_f32(ptq_f32_to_f16((float)a->cb[i]));
    int rc = ptq_aqlm_scales(a, W, H, threads, e);
    for (int r = 0; r < a->rows && !rc; r++) {
        float s = ptq_f16_to_f32(ptq_f32_to_f16((float)a->scale[r]));
        a->scale[r] = isfinite(s) && s != 0 ? s : (a->scale[r] > 0 ? 6.0e-8 : -6.0e-8);
    }
    return rc;
}

/* tr(W H W^T) */
static double weight_energy(const float *W, const double *H, int rows, int cols)
{
    double *w = malloc((size_t)cols * 2 * sizeof *w), t = 0;
    if (!w) return 0;
    for (int r = 0; r < rows; r++) {
        for (int k = 0; k < cols; k++) w[k] = W[(size_t)r * cols + k];
        cblas_dgemv(CblasRowMajor, CblasNoTrans, cols, cols, 1.0, H, cols, w, 1, 0.0, w + cols, 1);
        t += cblas_ddot(cols, w, 1, w + cols, 1);
    }
    free(w);
    return t;
}

int ptq_aqlm_quantize(const float *W, const float *Hf, int rows, int cols,
                      const ptq_aqlm_opts *o, ptq_qtensor *out, ptq_aqlm_report *rep,
                      ptq_err *e)
{
    memset(out, 0, sizeof *out);
    memset(rep, 0, sizeof *rep);
    int rc = check_input(W, Hf, rows, cols, o, e);
    if (rc) return rc;
    size_t nn = (size_t)cols * cols;
    double *H = malloc(nn * sizeof *H);
    if (!H) return ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory for the Hessian");
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++)
            H[(size_t)i * cols + j] = Hf ? 0.5 * ((double)Hf[(size_t)i * cols + j] +
                                                  (double)Hf[(size_t)j * cols + i])
                                         : (double)(i == j);
    ptq_aqlm a;
    rc = ptq_aqlm_alloc(&a, rows, cols, o->M, o->B, e);
    if (!rc) rc = ptq_aqlm_init(&a, W, o, e);
    if (!rc) rc = ptq_aqlm_scales(&a, W, H, o->threads, e);
    double L = rc ? 0 : ptq_aqlm_objective(&a, W, H, o->threads);
    rep->obj_init = L;
    double floor = PTQ_AQLM_REL_FLOOR * weight_energy(W, H, rows, cols);
    for (int it = 0; it < o->max_iter && !rc && L > floor; it++) {
        rc = ptq_aqlm_beam(&a, W, H, o->beam, o->threads, e);
        if (!rc) rc = ptq_aqlm_codebooks(&a, W, H, o->threads, e);
        if (!rc) rc = ptq_aqlm_scales(&a, W, H, o->threads, e);
        double L1 = ptq_aqlm_objective(&a, W, H, o->threads);
        rep->iters = it + 1;
        int done = !(L - L1 >= o->tol * L);
        L = L1;
        if (done) break;
    }
    if (!rc) rc = round_fp16(&a, W, H, o->threads, e);
    if (!rc) rep->obj = ptq_aqlm_objective(&a, W, H, o->threads);
    if (!rc) rc = ptq_aqlm_pack(&a, out, e);
    ptq_aqlm_free(&a);
    free(H);
    return rc;
}

int ptq_aqlm_pack(const ptq_aqlm *a, ptq_qtensor *q, ptq_err *e)
{
    memset(q, 0, sizeof *q);
    q->format = PTQ_QF_AQLM;
    q->rows = a->rows, q->cols = a->cols, q->aq_m = a->M, q->aq_b = a->B;
    size_t nc = (size_t)a->rows * a->G * a->M, nb = (size_t)a->M * a->K * D;
    int wide = a->B > 8;
    q->aq_codes = malloc(nc * (wide ? 2 : 1));
    q->aq_codebooks = malloc(nb * sizeof *q->aq_codebooks);
    q->aq_scales = malloc((size_t)a->rows * sizeof *q->aq_scales);
    if (!q->aq_codes || !q->aq_codebooks || !q->aq_scales) {
        ptq_qtensor_free(q);
        return ptq_fail(e, PTQ_ENOMEM, "AQLM: out of memory packing a %d x %d linear", a->rows,
                        a->cols);
    }
    for (size_t i = 0; i < nc; i++) {
        if (wide) ((uint16_t *)q->aq_codes)[i] = (uint16_t)a->codes[i];
        else ((uint8_t *)q->aq_codes)[i] = (uint8_t)a->codes[i];
    }
    for (size_t i = 0; i < nb; i++) q->aq_codebooks[i] = ptq_f32_to_f16((float)a->cb[i]);
    for (int r = 0; r < a->rows; r++) q->aq_scales[r] = ptq_f32_to_f16((float)a->scale[r]);
    return PTQ_OK;
}
