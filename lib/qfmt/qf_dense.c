/* qf_dense.c - the "dense" row of the format table (qfmt.h): a tensor kept
 * unquantized in its source dtype F16, BF16 or F32 (embeddings, norms,
 * --skip'ped linears), little-endian [rows][cols]. */
#include <string.h>

#include "lib/base/dtype.h"
#include "lib/base/half.h"
#include "lib/base/par.h"
#include "lib/qfmt/qfmt.h"

uint64_t ptq_qf_dense_bytes(const ptq_qtensor *q, int i)
{
    (void)i; /* one payload: data */
    return (uint64_t)q->rows * (uint64_t)q->cols * ptq_dtype_size((ptq_dtype)q->dtype);
}

int ptq_qf_dense_check(const ptq_qtensor *q, const char *what, int row0, int n, ptq_err *e)
{
    (void)row0, (void)n;
    if (q->dtype != PTQ_DT_F16 && q->dtype != PTQ_DT_BF16 && q->dtype != PTQ_DT_F32)
        return ptq_fail(e, PTQ_EFORMAT, "%s: dense dtype %s is not F16, BF16 or F32", what,
                        ptq_dtype_name((ptq_dtype)q->dtype));
    if (!q->data) return ptq_fail(e, PTQ_EFORMAT, "%s: dense tensor without data", what);
    return PTQ_OK;
}

void ptq_qf_dense_decode(const ptq_qtensor *q, int row0, int n, float *w)
{
    size_t first = (size_t)row0 * (size_t)q->cols, count = (size_t)n * (size_t)q->cols;
    if (q->dtype == PTQ_DT_F32) {
        memcpy(w, (const float *)q->data + first, count * sizeof(float));
    } else if (q->dtype == PTQ_DT_F16) {
        const uint16_t *s = (const uint16_t *)q->data + first;
        for (size_t i = 0; i < count; i++) w[i] = ptq_f16_to_f32(s[i]);
    } else {
        const uint16_t *s = (const uint16_t *)q->data + first;
        for (size_t i = 0; i < count; i++) w[i] = ptq_bf16_to_f32(s[i]);
    }
}

/* ---- the fused batch-1 product (qfmt.h's gemv) ----
 *
 * y[r] = sum_k w[r][k] x[k] with w widened inside the dot product: F16 by
 * the exact branch-free conversion below (the same value as ptq_f16_to_f32
 * for every code: normals by moving the exponent, subnormals as
 * (2^-14 + m 2^-24) - 2^-14, exact by Sterbenz, Inf/NaN by a second
 * exponent move), BF16 by a shift.  The sum runs in LANES float lanes, lane
 * j taking the columns k = j mod 32 in increasing k (the lanes added pairwise
 * at the end), so gcc -O2 vectorizes it; only the summation order differs from decode-then-multiply
 * (k ascending), hence (u = 2^-24, n = cols)
 *     |fast - ref| <= 2 (n + 2) u sum_k |w_k| |x_k|
 * (tests/check_dense_gemv.c checks it).  Rows are split over the workers in
 * contiguous ranges and each row is summed by one worker in a fixed order:
 * the same bits for any thread count. */
#define LANES 32 /* = DBLK: four independent 8-wide sums in the AVX2 loops */
#define DBLK 32

static inline float f16_fast(uint16_t h)
{
    uint32_t em = h & 0x7fffu, sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t u = (em << 13) + 0x38000000u;    /* exponent - 15 + 127 */
    u += -(uint32_t)(em >= 0x7c00u) & 0x38000000u; /* Inf/NaN: exponent 255 */
    float sub = ptq_bits_to_f32(u + 0x00800000u) - 6.103515625e-05f; /* 2^-14 */
    uint32_t m = -(uint32_t)(em < 0x0400u);   /* zero and subnormals */
    u = (m & ptq_f32_to_bits(sub)) | (~m & u);
    return ptq_bits_to_f32(u | sign);
}

/* One row of n columns: the lanes over whole blocks, then the tail. */
static float dot_f16(const uint16_t *w, const float *x, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + DBLK <= n; k += DBLK)
        for (int j = 0; j < LANES; j++) acc[j] += f16_fast(w[k + j]) * x[k + j];
    for (int j = 0; k < n; k++, j = (j + 1) % LANES) acc[j] += f16_fast(w[k]) * x[k];
    for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) acc[j] += acc[j + s];
    return acc[0];
}

static float dot_bf16(const uint16_t *w, const float *x, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + DBLK <= n; k += DBLK)
        for (int j = 0; j < LANES; j++) acc[j] += ptq_bf16_to_f32(w[k + j]) * x[k + j];
    for (int j = 0; k < n; k++, j = (j + 1) % LANES) acc[j] += ptq_bf16_to_f32(w[k]) * x[k];
    for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) acc[j] += acc[j + s];
    return acc[0];
}

static float dot_f32(const float *w, const float *x, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + DBLK <= n; k += DBLK)
        for (int j = 0; j < LANES; j++) acc[j] += w[k + j] * x[k + j];
    for (int j = 0; k < n; k++, j = (j + 1) % LANES) acc[j] += w[k] * x[k];
    for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) acc[j] += acc[j + s];
    return acc[0];
}

/* x86-64 with AVX2 and F16C (checked at run time): the same 32 lanes as four
 * 8-wide registers, the F16 widening by vcvtph2ps (exact).  Lane j sums the
 * columns k = j mod 32 in increasing k with a separate multiply and add (no
 * FMA), as the portable loops above, and the lanes are added in the same
 * pairwise order: the same bits. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DENSE_AVX2 1

static float hsum(float a[LANES])
{
    for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) a[j] += a[j + s];
    return a[0];
}

__attribute__((target("avx2,f16c"))) static float dot_f16_avx2(const uint16_t *w, const float *x,
                                                                int n)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int k = 0;
    for (; k + DBLK <= n; k += DBLK)
        for (int i = 0; i < 4; i++) {
            __m256 wv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k + 8 * i)));
            acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(wv, _mm256_loadu_ps(x + k + 8 * i)));
        }
    float a[LANES];
    for (int i = 0; i < 4; i++) _mm256_storeu_ps(a + 8 * i, acc[i]);
    for (int j = 0; k < n; k++, j++) a[j] += ptq_f16_to_f32(w[k]) * x[k];
    return hsum(a);
}

__attribute__((target("avx2,f16c"))) static float dot_f32_avx2(const float *w, const float *x,
                                                                int n)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                     _mm256_setzero_ps()};
    int k = 0;
    for (; k + DBLK <= n; k += DBLK)
        for (int i = 0; i < 4; i++)
            acc[i] = _mm256_add_ps(acc[i], _mm256_mul_ps(_mm256_loadu_ps(w + k + 8 * i),
                                                         _mm256_loadu_ps(x + k + 8 * i)));
    float a[LANES];
    for (int i = 0; i < 4; i++) _mm256_storeu_ps(a + 8 * i, acc[i]);
    for (int j = 0; k < n; k++, j++) a[j] += w[k] * x[k];
    return hsum(a);
}
#endif

typedef struct dense_job {
    const ptq_qtensor *q;
    const float *x;
    float *y;
    int r0, r1;
    int avx2; /* the AVX2 + F16C loops (same bits) */
} dense_job;

static void dense_rows(void *arg)
{
    const dense_job *j = arg;
    const ptq_qtensor *q = j->q;
    size_t n = (size_t)q->cols;
#ifdef DENSE_AVX2
    for (int r = j->r0; r < j->r1 && j->avx2 && q->dtype != PTQ_DT_BF16; r++)
        j->y[r] = q->dtype == PTQ_DT_F16
                      ? dot_f16_avx2((const uint16_t *)q->data + r * n, j->x, q->cols)
                      : dot_f32_avx2((const float *)q->data + r * n, j->x, q->cols);
    if (j->avx2 && q->dtype != PTQ_DT_BF16) return;
#endif
    for (int r = j->r0; r < j->r1; r++) {
        if (q->dtype == PTQ_DT_F16)
            j->y[r] = dot_f16((const uint16_t *)q->data + r * n, j->x, q->cols);
        else if (q->dtype == PTQ_DT_BF16)
            j->y[r] = dot_bf16((const uint16_t *)q->data + r * n, j->x, q->cols);
        else
            j->y[r] = dot_f32((const float *)q->data + r * n, j->x, q->cols);
    }
}

int ptq_qf_dense_gemv(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    int rc = ptq_qtensor_check(q, "dense GEMV", e);
    if (rc) return rc;
    if (q->format != PTQ_QF_DENSE)
        return ptq_fail(e, PTQ_EINTERNAL, "dense GEMV of a tensor of format %d", q->format);
    if (threads < 1) threads = 1;
    if (threads > q->rows) threads = q->rows > 0 ? q->rows : 1;
    if (threads > PTQ_PAR_MAX) threads = PTQ_PAR_MAX;
    int avx2 = 0;
#ifdef DENSE_AVX2
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
    dense_job jobs[PTQ_PAR_MAX];
    for (int t = 0; t < threads; t++)
        jobs[t] = (dense_job){q, x, y, (int)((long)q->rows * t / threads),
                              (int)((long)q->rows * (t + 1) / threads), avx2};
    if (threads == 1) dense_rows(&jobs[0]);
    else ptq_par_run(threads, dense_rows, jobs, sizeof jobs[0]);
    return PTQ_OK;
}
