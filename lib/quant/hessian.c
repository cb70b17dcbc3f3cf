/* hessian.c - H = 2/N sum x x^T (lib/quant/hessian.h).
 *
 * A chunk of n rows is cut into pieces of at most PTQ_HESS_PIECE rows; each
 * piece's X^T X is one float32 ssyrk (upper triangle, row-major) added into
 * the float64 accumulator, so float32 sums run over at most PTQ_HESS_PIECE
 * tokens.  The result depends on the chunking and on OpenBLAS's thread count
 * (its threaded ssyrk rounds differently): ptq_hessian_add_chunks runs
 * every piece single-threaded, one piece per worker, and adds the pieces
 * in order, so its bits depend on the chunking only, not on --threads. */
#include "lib/quant/hessian.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/par.h"

#define PTQ_HESS_PIECE 2048

int ptq_hessian_init(ptq_hessian *h, int cols, ptq_err *e)
{
    memset(h, 0, sizeof *h);
    if (cols <= 0 || (size_t)cols > SIZE_MAX / sizeof(double) / (size_t)cols)
        return ptq_fail(e, PTQ_EINTERNAL, "Hessian of %d columns", cols);
    size_t nn = (size_t)cols * (size_t)cols;
    h->cols = cols;
    h->acc = calloc(nn, sizeof *h->acc);
    h->chunk = malloc(nn * sizeof *h->chunk);
    h->absmean = calloc((size_t)cols, sizeof *h->absmean);
    h->absmax = calloc((size_t)cols, sizeof *h->absmax);
    if (!h->acc || !h->chunk || !h->absmean || !h->absmax) {
        ptq_hessian_free(h);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for a Hessian of %d columns (%zu MB)", cols,
                        nn * (sizeof(double) + sizeof(float)) >> 20);
    }
    return PTQ_OK;
}

/* The float32 X^T X (upper triangle) of k rows into c [cols, cols]. */
static void piece_syrk(const float *X, int k, int cols, float *c)
{
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, k, 1.0f, X, cols, 0.0f, c, cols);
}

/* acc rows [i0, i1) += each of np pieces c[p] in order (upper triangle). */
static void acc_rows(double *acc, float *const *c, int np, int cols, int i0, int i1)
{
    for (int i = i0; i < i1; i++) {
        double *a = acc + (size_t)i * cols;
        for (int p = 0; p < np; p++) {
            const float *r = c[p] + (size_t)i * cols;
            for (int j = i; j < cols; j++) a[j] += r[j];
        }
    }
}

/* ---- the NaN check and the statistics, columns [c0, c1) on one worker:
 * every column's sum over the tokens in order; bad_t/bad_i
 * the first non-finite activation of the range in token order. */
typedef struct sjob {
    ptq_hessian *h;
    const float *const *X;
    const int *n;
    int count, c0, c1;
    long bad_t;
    int bad_i;
    float bad_v;
} sjob;

/* One row's columns [c0, c1): sum += |x|, max |x|; nonzero if one is not
 * finite. */
static int stats_row(const float *x, int c0, int c1, double *sum, float *mx)
{
    int bad = 0;
    for (int i = c0; i < c1; i++) {
        float a = fabsf(x[i]);
        bad |= !(a <= FLT_MAX);
        sum[i] += a;
        mx[i] = a > mx[i] ? a : mx[i];
    }
    return bad;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* stats_row eight columns at a time: each lane is its own column, so the
 * sums are those of stats_row, bit for bit (max_ps(a, m) is a > m ? a : m). */
__attribute__((target("avx2"))) static int stats_row_avx2(const float *x, int c0, int c1,
                                                          double *sum, float *mx)
{
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 fmax = _mm256_set1_ps(FLT_MAX);
    __m256 bad = _mm256_setzero_ps();
    int i = c0;
    for (; i + 8 <= c1; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), absm);
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ));
        _mm256_storeu_pd(sum + i, _mm256_add_pd(_mm256_loadu_pd(sum + i),
                                                _mm256_cvtps_pd(_mm256_castps256_ps128(a))));
        _mm256_storeu_pd(sum + i + 4, _mm256_add_pd(_mm256_loadu_pd(sum + i + 4),
                                                    _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1))));
        _mm256_storeu_ps(mx + i, _mm256_max_ps(a, _mm256_loadu_ps(mx + i)));
    }
    return _mm256_movemask_ps(bad) | stats_row(x, i, c1, sum, mx);
}
#endif

static void stats_job(void *arg)
{
    sjob *j = arg;
    ptq_hessian *h = j->h;
    const int cols = h->cols;
    int (*row)(const float *, int, int, double *, float *) = stats_row;
#if defined(__x86_64__) && defined(__GNUC__)
    if (__builtin_cpu_supports("avx2")) row = stats_row_avx2;
#endif
    long t0 = h->ntokens;
    j->bad_t = -1;
    for (int c = 0; c < j->count; t0 += j->n[c], c++)
        for (int t = 0; t < j->n[c]; t++) {
            const float *x = j->X[c] + (size_t)t * cols;
            if (row(x, j->c0, j->c1, h->absmean, h->absmax)) {
                int i = j->c0;
                while (isfinite(x[i])) i++;
                j->bad_t = t0 + t, j->bad_i = i, j->bad_v = x[i];
                return;
            }
        }
}

static int stats_col(int cols, int t, int nt)
{
    return t >= nt ? cols : (int)((long)cols * t / nt) / 16 * 16;
}

/* The statistics of the chunks on up to `threads` workers by column ranges
 * (each column summed over the tokens in order, so the same sums for any
 * count); PTQ_EDATA naming the first NaN/Inf in token order. */
static int add_stats_chunks(ptq_hessian *h, const float *const *X, const int *n, int count,
                            int threads, ptq_err *e)
{
    sjob jobs[PTQ_PAR_MAX];
    int nt = threads < h->cols ? threads : h->cols;
    for (int t = 0; t < nt; t++) /* ranges of whole cache lines of absmean */
        jobs[t] = (sjob){h, X, n, count, stats_col(h->cols, t, nt), stats_col(h->cols, t + 1, nt),
                         -1, 0, 0.0f};
    if (nt == 1) stats_job(&jobs[0]);
    else ptq_par_run(nt, stats_job, jobs, sizeof jobs[0]);
    const sjob *first = NULL;
    for (int t = 0; t < nt; t++)
        if (jobs[t].bad_t >= 0 && (!first || jobs[t].bad_t < first->bad_t)) first = &jobs[t];
    if (first)
        return ptq_fail(e, PTQ_EDATA, "activation [%ld][%d] is %g", first->bad_t, first->bad_i,
                        (double)first->bad_v);
    return PTQ_OK;
}

int ptq_hessian_add(ptq_hessian *h, const float *X, int n, ptq_err *e)
{
    const int cols = h->cols;
    if (n < 0) return ptq_fail(e, PTQ_EINTERNAL, "%d activation rows", n);
    int rc = add_stats_chunks(h, &X, &n, 1, 1, e);
    if (rc) return rc;
    for (int t0 = 0; t0 < n; t0 += PTQ_HESS_PIECE) {
        int k = n - t0 < PTQ_HESS_PIECE ? n - t0 : PTQ_HESS_PIECE;
        piece_syrk(X + (size_t)t0 * cols, k, cols, h->chunk);
        acc_rows(h->acc, &h->chunk, 1, cols, 0, cols);
    }
    h->ntokens += n;
    return PTQ_OK;
}

/* ---- ptq_hessian_add_chunks: one round of at most `threads` pieces. */
typedef struct hjob {
    ptq_hessian *h;
    const float *X; /* this worker's piece (syrk phase) */
    int k;
    float *c;       /* its buffer */
    float *const *cs; /* every piece's buffer (accumulate phase) */
    int np, i0, i1;
} hjob;

static void syrk_job(void *arg)
{
    hjob *j = arg;
    piece_syrk(j->X, j->k, j->h->cols, j->c);
}

static void acc_job(void *arg)
{
    hjob *j = arg;
    acc_rows(j->h->acc, j->cs, j->np, j->h->cols, j->i0, j->i1);
}

/* Worker t's first row of the upper triangle: equal shares of its area. */
static int tri_row(int cols, int t, int threads)
{
    if (t >= threads) return cols;
    double f = 1.0 - sqrt(1.0 - (double)t / threads);
    int i = (int)(f * cols);
    return i < 0 ? 0 : i > cols ? cols : i;
}

/* Pieces X[p] of k[p] rows, p < np <= threads: the ssyrks, then the sums. */
static void add_round(ptq_hessian *h, const float *const *X, const int *k, int np, int threads)
{
    float *cs[PTQ_PAR_MAX];
    hjob jobs[PTQ_PAR_MAX];
    size_t nn = (size_t)h->cols * (size_t)h->cols;
    for (int p = 0; p < np; p++) {
        cs[p] = p == 0 ? h->chunk : h->wchunk + (size_t)(p - 1) * nn;
        jobs[p] = (hjob){h, X[p], k[p], cs[p], NULL, 0, 0, 0};
    }
    if (np == 1) syrk_job(&jobs[0]);
    else ptq_par_run(np, syrk_job, jobs, sizeof jobs[0]);
    int nt = threads < h->cols ? threads : h->cols;
    for (int t = 0; t < nt; t++)
        jobs[t] = (hjob){h, NULL, 0, NULL, cs, np, tri_row(h->cols, t, nt),
                         tri_row(h->cols, t + 1, nt)};
    if (nt == 1) acc_job(&jobs[0]);
    else ptq_par_run(nt, acc_job, jobs, sizeof jobs[0]);
}

/* h->wchunk holds at least threads - 1 buffers of cols^2 floats. */
static int grow_wchunk(ptq_hessian *h, int threads, ptq_err *e)
{
    if (h->nwchunk >= threads - 1) return PTQ_OK;
    size_t nn = (size_t)h->cols * (size_t)h->cols;
    if ((size_t)(threads - 1) > SIZE_MAX / sizeof(float) / nn)
        return ptq_fail(e, PTQ_ENOMEM, "Hessian scratch for %d workers", threads);
    float *w = realloc(h->wchunk, (size_t)(threads - 1) * nn * sizeof *w);
    if (!w)
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for %d Hessian worker buffers (%zu MB)",
                        threads - 1, ((size_t)(threads - 1) * nn * sizeof *w) >> 20);
    h->wchunk = w;
    h->nwchunk = threads - 1;
    return PTQ_OK;
}

int ptq_hessian_add_chunks(ptq_hessian *h, const float *const *X, const int *n, int count,
                           int threads, ptq_err *e)
{
    const int cols = h->cols;
    if (threads < 1) threads = 1;
    if (threads > PTQ_PAR_MAX) threads = PTQ_PAR_MAX;
    long t0 = h->ntokens;
    for (int c = 0; c < count; c++) {
        if (n[c] < 0) return ptq_fail(e, PTQ_EINTERNAL, "%d activation rows", n[c]);
        t0 += n[c];
    }
    int rc = grow_wchunk(h, threads, e);
    if (!rc) rc = add_stats_chunks(h, X, n, count, threads, e);
    if (rc) return rc;
    const float *px[PTQ_PAR_MAX];
    int pk[PTQ_PAR_MAX], np = 0;
    int blas = ptq_blas_single();
    for (int c = 0; c < count; c++)
        for (int r0 = 0; r0 < n[c]; r0 += PTQ_HESS_PIECE) {
            px[np] = X[c] + (size_t)r0 * cols;
            pk[np++] = n[c] - r0 < PTQ_HESS_PIECE ? n[c] - r0 : PTQ_HESS_PIECE;
            if (np == threads) add_round(h, px, pk, np, threads), np = 0;
        }
    if (np) add_round(h, px, pk, np, threads);
    ptq_blas_restore(blas);
    h->ntokens = t0;
    return PTQ_OK;
}

int ptq_hessian_finalize(ptq_hessian *h, float *H, ptq_err *e)
{
    const int cols = h->cols;
    if (h->ntokens <= 0) return ptq_fail(e, PTQ_EDATA, "Hessian of no tokens");
    double f = 2.0 / (double)h->ntokens;
    for (int i = 0; i < cols; i++)
        for (int j = i; j < cols; j++) {
            float v = (float)(f * h->acc[(size_t)i * cols + j]);
            if (!isfinite(v))
                return ptq_fail(e, PTQ_EDATA,
                                "Hessian [%d][%d] overflows float32 (activations too large)", i, j);
            H[(size_t)i * cols + j] = v;
            H[(size_t)j * cols + i] = v;
        }
    for (int i = 0; i < cols; i++) h->absmean[i] /= (double)h->ntokens;
    return PTQ_OK;
}

void ptq_hessian_free(ptq_hessian *h)
{
    if (!h) return;
    free(h->acc);
    free(h->chunk);
    free(h->absmean);
    free(h->absmax);
    free(h->wchunk);
    memset(h, 0, sizeof *h);
}
