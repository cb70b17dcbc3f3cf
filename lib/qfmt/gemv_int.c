/* gemv_int.c - the packed-integer GEMV of one activation row (gemv_int.h). */
#include "lib/qfmt/gemv_int.h"

#include <stdlib.h>

#include "lib/base/par.h"
#include "lib/qfmt/pack.h"

#define LANES 8

typedef struct gemv_job {
    const ptq_qtensor *q;
    const float *x, *xsum; /* xsum [ngroups]: sum of x over each group */
    const float *xp;       /* the lane order of x (lane_x), or NULL: no fast path */
    float *y;
    float *codes;          /* [kblocks * 32 + ngroups] scratch of this worker */
    int r0, r1;
    int avx2;              /* the lane path's AVX2 loop (same bits) */
} gemv_job;

/* ---- the lane path: bits 2, 4, 8 (codes never straddle words), groups of
 * whole blocks (G % 32 == 0 or G == 0), no g_idx.
 * Code s of word w of a block (column w * cpw + s, cpw = 32 / bits) is
 * multiplied in lane s * bits + w by xp [block * 32 + s * bits + w], x
 * permuted once per call (zero past cols), so that for each shift s the
 * `bits` words are decoded with one shift and one mask over as many float
 * lanes (SSE2 for bits >= 4: gcc -O2 vectorizes the loops below).  Each
 * group's lanes are scaled into the row's 32 lanes, added pairwise at the
 * end; the zero points come off as sum_g s_g z_g X_g. */
static int lane_ok(const ptq_qtensor *q)
{
    return (q->bits == 2 || q->bits == 4 || q->bits == 8) && !q->g_idx &&
           q->group % PTQ_PACK_BLOCK == 0;
}

static void lane_x(const float *x, int cols, int bits, float *xp)
{
    int cpw = 32 / bits, nb = ptq_pack_kblocks(cols);
    for (int b = 0; b < nb; b++)
        for (int w = 0; w < bits; w++)
            for (int s = 0; s < cpw; s++) {
                int k = b * 32 + w * cpw + s;
                xp[b * 32 + s * bits + w] = k < cols ? x[k] : 0.0f;
            }
}

/* yl [32] += s * the lanes of blocks [b0, b1) of one row, B bits: for each
 * shift sh the B lanes sh * B .. sh * B + B - 1 summed over the blocks in
 * registers (B floats), then scaled into yl. */
#define LANE_GROUP(B)                                                              \
    for (int sh = 0; sh < 32 / (B); sh++) {                                        \
        float a[B] = {0};                                                          \
        for (int b = b0; b < b1; b++)                                              \
            for (int w = 0; w < (B); w++)                                          \
                a[w] += (float)((row[b * (B) + w] >> (sh * (B))) & ((1u << (B)) - 1u)) * \
                        xp[b * 32 + sh * (B) + w];                                 \
        for (int w = 0; w < (B); w++) yl[sh * (B) + w] += s * a[w];                \
    }

/* x86-64 with AVX2 (checked at run time), 4 bits: the lanes of two shifts
 * (2p, 2p + 1) in one 8-wide register, the block's 4 words in both halves
 * shifted by (8p, 8p + 4); each lane's multiply and add (no FMA) in the
 * same order as LANE_GROUP(4): the same bits. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LANE_AVX2 1

__attribute__((target("avx2"))) static float lane_row4_avx2(const uint32_t *row,
                                                             const uint16_t *sc,
                                                             const uint8_t *zr, const float *xsum,
                                                             const float *xp, int ng, int nb,
                                                             int gb)
{
    const __m256i mask = _mm256_set1_epi32(15);
    __m256i sh[4];
    for (int p = 0; p < 4; p++)
        sh[p] = _mm256_setr_epi32(8 * p, 8 * p, 8 * p, 8 * p, 8 * p + 4, 8 * p + 4, 8 * p + 4,
                                  8 * p + 4);
    __m256 yl[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                    _mm256_setzero_ps()};
    float zs = 0.0f;
    for (int g = 0; g < ng; g++) {
        float s = ptq_f16_to_f32(sc[g]);
        int b0 = g * gb, b1 = (g + 1) * gb < nb ? (g + 1) * gb : nb;
        __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                       _mm256_setzero_ps()};
        for (int b = b0; b < b1; b++) { /* one load, four independent lane sums */
            __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(row + b * 4)));
            for (int p = 0; p < 4; p++) {
                __m256i q = _mm256_and_si256(_mm256_srlv_epi32(v, sh[p]), mask);
                a[p] = _mm256_add_ps(a[p], _mm256_mul_ps(_mm256_cvtepi32_ps(q),
                                                         _mm256_loadu_ps(xp + b * 32 + 8 * p)));
            }
        }
        for (int p = 0; p < 4; p++)
            yl[p] = _mm256_add_ps(yl[p], _mm256_mul_ps(_mm256_set1_ps(s), a[p]));
        zs += s * ((float)zr[g] * xsum[g]);
    }
    /* the pairwise order of lane_row: h = 16, 8, then 4, 2, 1 */
    __m256 v = _mm256_add_ps(_mm256_add_ps(yl[0], yl[2]), _mm256_add_ps(yl[1], yl[3]));
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int h = 4; h > 0; h /= 2)
        for (int l = 0; l < h; l++) t[l] += t[l + h];
    return t[0] - zs;
}
#endif

static void lane_group(const uint32_t *row, const float *xp, int b0, int b1, int bits, float s,
                       float yl[PTQ_PACK_BLOCK])
{
    if (bits == 4) {
        LANE_GROUP(4)
    } else if (bits == 8) {
        LANE_GROUP(8)
    } else {
        LANE_GROUP(2)
    }
}

static float lane_row(const gemv_job *j, int r)
{
    const ptq_qtensor *q = j->q;
    int ng = q->ngroups, nb = ptq_pack_kblocks(q->cols);
    int gb = q->group ? q->group / PTQ_PACK_BLOCK : nb; /* blocks per group */
    const uint32_t *row = q->qweight + (size_t)r * ptq_pack_row_words(q->cols, q->bits);
    const uint16_t *sc = q->scales + (size_t)r * ng;
    const uint8_t *zr = q->zeros + (size_t)r * ng;
#ifdef LANE_AVX2
    if (q->bits == 4 && j->avx2) return lane_row4_avx2(row, sc, zr, j->xsum, j->xp, ng, nb, gb);
#endif
    float yl[PTQ_PACK_BLOCK] = {0}, zs = 0.0f;
    for (int g = 0; g < ng; g++) {
        float s = ptq_f16_to_f32(sc[g]);
        int b1 = (g + 1) * gb < nb ? (g + 1) * gb : nb;
        lane_group(row, j->xp, g * gb, b1, q->bits, s, yl);
        zs += s * ((float)zr[g] * j->xsum[g]);
    }
    for (int h = PTQ_PACK_BLOCK / 2; h > 0; h /= 2)
        for (int l = 0; l < h; l++) yl[l] += yl[l + h];
    return yl[0] - zs;
}

/* The codes of one packed row as floats, codes [kblocks * 32]. */
static void row_codes(const uint32_t *row, int cols, int bits, float *codes)
{
    int nb = ptq_pack_kblocks(cols);
    if (bits == 4) {
        for (int b = 0; b < nb; b++)
            for (int w = 0; w < 4; w++) {
                uint32_t v = row[b * 4 + w];
                float *o = codes + b * 32 + w * 8;
                for (int j = 0; j < 8; j++) o[j] = (float)((v >> (4 * j)) & 15u);
            }
        return;
    }
    if (bits == 8) {
        for (int b = 0; b < nb * 8; b++) {
            uint32_t v = row[b];
            for (int j = 0; j < 4; j++) codes[b * 4 + j] = (float)((v >> (8 * j)) & 255u);
        }
        return;
    }
    uint32_t qb[PTQ_PACK_BLOCK];
    for (int b = 0; b < nb; b++) {
        ptq_pack_block_codes(row + (size_t)b * bits, bits, qb);
        for (int j = 0; j < PTQ_PACK_BLOCK; j++) codes[b * 32 + j] = (float)qb[j];
    }
}

/* sum_k a[k] b[k] over n in LANES float lanes, added pairwise at the end. */
static float dot(const float *a, const float *b, int n)
{
    float acc[LANES] = {0};
    int k = 0;
    for (; k + LANES <= n; k += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += a[k + j] * b[k + j];
    for (int j = 0; k < n; k++, j++) acc[j] += a[k] * b[k];
    for (int s = LANES / 2; s > 0; s /= 2)
        for (int j = 0; j < s; j++) acc[j] += acc[j + s];
    return acc[0];
}

static void gemv_rows(void *arg)
{
    gemv_job *j = arg;
    const ptq_qtensor *q = j->q;
    int cols = q->cols, G = q->group, ng = q->ngroups;
    size_t rw = (size_t)ptq_pack_row_words(cols, q->bits);
    for (int r = j->r0; r < j->r1 && j->xp; r++) j->y[r] = lane_row(j, r);
    for (int r = j->r0; r < j->r1 && !j->xp; r++) {
        const uint16_t *sc = q->scales + (size_t)r * ng;
        const uint8_t *zr = q->zeros + (size_t)r * ng;
        row_codes(q->qweight + (size_t)r * rw, cols, q->bits, j->codes);
        float y = 0.0f;
        if (q->g_idx) { /* the reference's order: (s * (q - z)) * x, k ascending */
            float *sf = j->codes + (size_t)ptq_pack_kblocks(cols) * PTQ_PACK_BLOCK;
            for (int g = 0; g < ng; g++) sf[g] = ptq_f16_to_f32(sc[g]);
            for (int k = 0; k < cols; k++) {
                int g = q->g_idx[k];
                y += sf[g] * (j->codes[k] - (float)zr[g]) * j->x[k];
            }
        } else {
            for (int g = 0; g < ng; g++) {
                int k0 = G ? g * G : 0, n = ptq_pack_group_len(cols, G, g);
                float s = dot(j->codes + k0, j->x + k0, n) - (float)zr[g] * j->xsum[g];
                y += ptq_f16_to_f32(sc[g]) * s;
            }
        }
        j->y[r] = y;
    }
}

int ptq_gemv_int(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    int rc = ptq_qtensor_check(q, "packed GEMV", e);
    if (rc) return rc;
    if (q->format != PTQ_QF_INT)
        return ptq_fail(e, PTQ_EINTERNAL, "packed GEMV of a tensor of format %d", q->format);
    if (threads < 1) threads = 1;
    if (threads > q->rows) threads = q->rows > 0 ? q->rows : 1;
    if (threads > PTQ_PAR_MAX) threads = PTQ_PAR_MAX;
    size_t nc = (size_t)ptq_pack_kblocks(q->cols) * PTQ_PACK_BLOCK + (size_t)q->ngroups;
    int lane = lane_ok(q); /* the lane path: one permuted x instead of codes per worker */
    size_t per = lane ? 0 : nc, nxp = lane ? nc : 0;
    float *buf = malloc(sizeof(float) * ((size_t)q->ngroups + nxp + per * (size_t)threads));
    if (!buf) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a packed GEMV");
    float *xsum = buf;
    for (int g = 0; g < q->ngroups; g++) {
        int k0 = q->group ? g * q->group : 0, n = ptq_pack_group_len(q->cols, q->group, g);
        float s = 0.0f;
        for (int k = 0; k < n; k++) s += x[k0 + k];
        xsum[g] = s;
    }
    float *xp = lane ? buf + q->ngroups : NULL;
    if (lane) lane_x(x, q->cols, q->bits, xp);
    int avx2 = 0;
#ifdef LANE_AVX2
    avx2 = __builtin_cpu_supports("avx2");
#endif
    gemv_job jobs[PTQ_PAR_MAX];
    for (int t = 0; t < threads; t++)
        jobs[t] = (gemv_job){q, x, xsum, xp, y, buf + q->ngroups + nxp + per * (size_t)t,
                             (int)((long)q->rows * t / threads),
                             (int)((long)q->rows * (t + 1) / threads), avx2};
    if (threads == 1) gemv_rows(&jobs[0]);
    else ptq_par_run(threads, gemv_rows, jobs, sizeof jobs[0]);
    free(buf);
    return PTQ_OK;
}

int ptq_gemv_int_ref(const ptq_qtensor *q, const float *x, float *y, ptq_err *e)
{
    float *w = malloc(sizeof(float) * (q->cols > 0 ? (size_t)q->cols : 1));
    if (!w) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a reference GEMV");
    int rc = PTQ_OK;
    for (int r = 0; r < q->rows && !rc; r++) {
        if ((rc = ptq_qtensor_dequant_rows(q, r, 1, w, e))) break;
        float s = 0.0f;
        for (int k = 0; k < q->cols; k++) s += w[k] * x[k];
        y[r] = s;
    }
    free(w);
    return rc;
}
