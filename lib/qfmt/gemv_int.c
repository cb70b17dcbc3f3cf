/* gemv_int.c - the packed-integer GEMV of one activation row (gemv_int.h). */
#include "lib/qfmt/gemv_int.h"

#include <stdlib.h>

#include "lib/base/par.h"
#include "lib/qfmt/pack.h"

#define LANES 8
/* Weights per worker below which another worker costs more than it saves: a
 * fork/join of ptq_par_run is 50-90 us on the 2-core test machine
 * (bench/RESULTS-decode.md), about what 2^17 4-bit weights take on one core;
 * SmolLM2's 192 x 576 k/v projections then run on one worker.  Rows are
 * summed the same way on any worker, so this changes no bits. */
#define GEMV_MIN_WORK (1L << 17)

typedef struct gemv_job {
    const ptq_qtensor *q;
    const float *x, *xsum; /* xsum [ngroups]: sum of x over each group */
    const float *xp;       /* the lane order of x (lane_x), or NULL: no fast path */
    float *y;
    float *codes;          /* [kblocks * 32 + ngroups] scratch of this worker */
    int r0, r1;
    int simd;              /* the lane path's loop: PTQ_GEMV_PORTABLE, PTQ_GEMV_AVX2, PTQ_GEMV_AVX512 */
    int nat;               /* xp is x in column order (nat_row_avx512) */
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

/* x86-64 (checked at run time): the same lanes with fused multiply-adds,
 * which round once per product-add instead of twice (other bits than the
 * portable loop, within the same bound), two blocks in flight.
 *  AVX2 + FMA, 4 bits: the lanes of two shifts (2p, 2p + 1) in one 8-wide
 *    register, the block's 4 words broadcast to both halves and shifted by
 *    (8p, 8p + 4); 8 bits: the 8 words of a block, shifted by 8p.
 *  AVX-512F, 4 bits: four shifts (4p .. 4p + 3) per 16-wide register;
 *    8 bits: two shifts (2p, 2p + 1) per register.
 * Each group's lanes are scaled by s_g into the row's registers, reduced at
 * the end in a fixed order; the zero points come off as sum_g s_g z_g X_g. */
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define LANE_SIMD 1

#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX512_FN __attribute__((target("avx512f")))

/* One block of 32 codes (B bits) times its 32 lanes of xp, into a[4]. */
#define AVX2_BLOCK4(a, blk, xb)                                                    \
    do {                                                                           \
        __m256i v_ = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(blk))); \
        for (int p = 0; p < 4; p++)                                                \
            a[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(            \
                                       _mm256_srlv_epi32(v_, sh[p]), mask)),        \
                                   _mm256_loadu_ps((xb) + 8 * p), a[p]);             \
    } while (0)
#define AVX2_BLOCK8(a, blk, xb)                                                    \
    do {                                                                           \
        __m256i v_ = _mm256_loadu_si256((const __m256i *)(blk));                   \
        for (int p = 0; p < 4; p++)                                                \
            a[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(            \
                                       _mm256_srlv_epi32(v_, sh[p]), mask)),        \
                                   _mm256_loadu_ps((xb) + 8 * p), a[p]);             \
    } while (0)

AVX2_FN static float lane_row_avx2(const uint32_t *row, int bits, const uint16_t *sc,
                                   const uint8_t *zr, const float *xsum, const float *xp, int ng,
                                   int nb, int gb)
{
    const __m256i mask = _mm256_set1_epi32(bits == 4 ? 15 : 255);
    __m256i sh[4];
    for (int p = 0; p < 4; p++)
        sh[p] = bits == 4 ? _mm256_setr_epi32(8 * p, 8 * p, 8 * p, 8 * p, 8 * p + 4, 8 * p + 4,
                                              8 * p + 4, 8 * p + 4)
                          : _mm256_set1_epi32(8 * p);
    __m256 y[4];
    for (int p = 0; p < 4; p++) y[p] = _mm256_setzero_ps();
    float zs = 0.0f;
    for (int g = 0; g < ng; g++) {
        float s = ptq_f16_to_f32(sc[g]);
        int b = g * gb, b1 = (g + 1) * gb < nb ? (g + 1) * gb : nb;
        __m256 a[4], c[4];
        for (int p = 0; p < 4; p++) a[p] = c[p] = _mm256_setzero_ps();
        if (bits == 4) {
            for (; b + 2 <= b1; b += 2) {
                AVX2_BLOCK4(a, row + b * 4, xp + b * 32);
                AVX2_BLOCK4(c, row + b * 4 + 4, xp + b * 32 + 32);
            }
            if (b < b1) AVX2_BLOCK4(a, row + b * 4, xp + b * 32);
        } else {
            for (; b + 2 <= b1; b += 2) {
                AVX2_BLOCK8(a, row + b * 8, xp + b * 32);
                AVX2_BLOCK8(c, row + b * 8 + 8, xp + b * 32 + 32);
            }
            if (b < b1) AVX2_BLOCK8(a, row + b * 8, xp + b * 32);
        }
        __m256 sv = _mm256_set1_ps(s);
        for (int p = 0; p < 4; p++) y[p] = _mm256_fmadd_ps(sv, _mm256_add_ps(a[p], c[p]), y[p]);
        zs += s * ((float)zr[g] * xsum[g]);
    }
    __m256 v = _mm256_add_ps(_mm256_add_ps(y[0], y[2]), _mm256_add_ps(y[1], y[3]));
    float t[8];
    _mm256_storeu_ps(t, v);
    for (int h = 4; h > 0; h /= 2)
        for (int l = 0; l < h; l++) t[l] += t[l + h];
    return t[0] - zs;
}

#define AVX512_BLOCK(a, v, xb)                                                     \
    do {                                                                           \
        for (int p = 0; p < 2; p++)                                                \
            a[p] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_and_si512(            \
                                       _mm512_srlv_epi32(v, sh[p]), mask)),        \
                                   _mm512_loadu_ps((xb) + 16 * p), a[p]);            \
    } while (0)

AVX512_FN static __m512i avx512_load(const uint32_t *blk, int bits)
{
    if (bits == 4) return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)blk));
    return _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk));
}

AVX512_FN static float lane_row_avx512(const uint32_t *row, int bits, const uint16_t *sc,
                                       const uint8_t *zr, const float *xsum, const float *xp,
                                       int ng, int nb, int gb)
{
    const __m512i mask = _mm512_set1_epi32(bits == 4 ? 15 : 255);
    __m512i sh[2];
    for (int p = 0; p < 2; p++)
        sh[p] = bits == 4 ? _mm512_setr_epi32(16 * p, 16 * p, 16 * p, 16 * p, 16 * p + 4,
                                              16 * p + 4, 16 * p + 4, 16 * p + 4, 16 * p + 8,
                                              16 * p + 8, 16 * p + 8, 16 * p + 8, 16 * p + 12,
                                              16 * p + 12, 16 * p + 12, 16 * p + 12)
                          : _mm512_setr_epi32(16 * p, 16 * p, 16 * p, 16 * p, 16 * p, 16 * p,
                                              16 * p, 16 * p, 16 * p + 8, 16 * p + 8, 16 * p + 8,
                                              16 * p + 8, 16 * p + 8, 16 * p + 8, 16 * p + 8,
                                              16 * p + 8);
    __m512 y[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    float zs = 0.0f;
    for (int g = 0; g < ng; g++) {
        float s = ptq_f16_to_f32(sc[g]);
        int b = g * gb, b1 = (g + 1) * gb < nb ? (g + 1) * gb : nb;
        __m512 a[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()}, c[2] = {a[0], a[1]};
        for (; b + 2 <= b1; b += 2) {
            __m512i v0 = avx512_load(row + b * bits, bits);
            __m512i v1 = avx512_load(row + b * bits + bits, bits);
            AVX512_BLOCK(a, v0, xp + b * 32);
            AVX512_BLOCK(c, v1, xp + b * 32 + 32);
        }
        if (b < b1) {
            __m512i v0 = avx512_load(row + b * bits, bits);
            AVX512_BLOCK(a, v0, xp + b * 32);
        }
        __m512 sv = _mm512_set1_ps(s);
        for (int p = 0; p < 2; p++) y[p] = _mm512_fmadd_ps(sv, _mm512_add_ps(a[p], c[p]), y[p]);
        zs += s * ((float)zr[g] * xsum[g]);
    }
    float t[16];
    _mm512_storeu_ps(t, _mm512_add_ps(y[0], y[1]));
    for (int h = 8; h > 0; h /= 2)
        for (int l = 0; l < h; l++) t[l] += t[l + h];
    return t[0] - zs;
}

/* AVX-512F, any other width (3, 5, 6, 7 bits; 2 too), G a multiple of 32:
 * the natural column order (x only padded).  Code j of a block starts at
 * bit j * b of its b words: each of 16 lanes gathers the word holding that
 * bit and the next one (permutexvar), shifts both into place and masks.
 * Then the same per-group sums as the lane loops. */
AVX512_FN static float nat_row_avx512(const uint32_t *row, int bits, const uint16_t *sc,
                                      const uint8_t *zr, const float *xsum, const float *xp,
                                      int ng, int nb, int gb)
{
    int lo[2][16], hi[2][16], sr[2][16], sl[2][16];
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 16; l++) {
            int bit = (16 * h + l) * bits;
            lo[h][l] = bit >> 5, hi[h][l] = (bit >> 5) + 1 < bits ? (bit >> 5) + 1 : bits - 1;
            sr[h][l] = bit & 31, sl[h][l] = 32 - (bit & 31); /* 32: no high part */
        }
    __m512i ilo[2], ihi[2], vsr[2], vsl[2];
    for (int h = 0; h < 2; h++) {
        ilo[h] = _mm512_loadu_si512(lo[h]), ihi[h] = _mm512_loadu_si512(hi[h]);
        vsr[h] = _mm512_loadu_si512(sr[h]), vsl[h] = _mm512_loadu_si512(sl[h]);
    }
    const __m512i mask = _mm512_set1_epi32((int)((1u << bits) - 1u));
    const __mmask16 wm = (__mmask16)((1u << bits) - 1u);
    __m512 y[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    float zs = 0.0f;
    for (int g = 0; g < ng; g++) {
        float s = ptq_f16_to_f32(sc[g]);
        int b1 = (g + 1) * gb < nb ? (g + 1) * gb : nb;
        __m512 a[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int b = g * gb; b < b1; b++) {
            __m512i v = _mm512_maskz_loadu_epi32(wm, row + (size_t)b * bits);
            for (int h = 0; h < 2; h++) {
                __m512i c = _mm512_ternarylogic_epi32(
                    _mm512_srlv_epi32(_mm512_permutexvar_epi32(ilo[h], v), vsr[h]),
                    _mm512_sllv_epi32(_mm512_permutexvar_epi32(ihi[h], v), vsl[h]), mask,
                    0xA8); /* (lo | hi) & mask */
                a[h] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(c), _mm512_loadu_ps(xp + b * 32 + 16 * h),
                                       a[h]);
            }
        }
        __m512 sv = _mm512_set1_ps(s);
        for (int h = 0; h < 2; h++) y[h] = _mm512_fmadd_ps(sv, a[h], y[h]);
        zs += s * ((float)zr[g] * xsum[g]);
    }
    float t[16];
    _mm512_storeu_ps(t, _mm512_add_ps(y[0], y[1]));
    for (int h = 8; h > 0; h /= 2)
        for (int l = 0; l < h; l++) t[l] += t[l + h];
    return t[0] - zs;
}

/* The best loop this CPU runs (and the caller allows: path 0 = any). */
static int simd_level(int path)
{
    if (path == PTQ_GEMV_PORTABLE) return PTQ_GEMV_PORTABLE;
    if (path != PTQ_GEMV_AVX2 && __builtin_cpu_supports("avx512f")) return PTQ_GEMV_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return PTQ_GEMV_AVX2;
    return PTQ_GEMV_PORTABLE;
}
#else
static int simd_level(int path)
{
    (void)path;
    return PTQ_GEMV_PORTABLE;
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
#ifdef LANE_SIMD
    if (j->nat) return nat_row_avx512(row, q->bits, sc, zr, j->xsum, j->xp, ng, nb, gb);
    if (q->bits != 2 && j->simd == PTQ_GEMV_AVX512)
        return lane_row_avx512(row, q->bits, sc, zr, j->xsum, j->xp, ng, nb, gb);
    if (q->bits != 2 && j->simd == PTQ_GEMV_AVX2)
        return lane_row_avx2(row, q->bits, sc, zr, j->xsum, j->xp, ng, nb, gb);
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

int ptq_gemv_int_path(const ptq_qtensor *q, const float *x, float *y, int threads, int path,
                      ptq_err *e)
{
    int rc = ptq_qtensor_check(q, "packed GEMV", e);
    if (rc) return rc;
    if (q->format != PTQ_QF_INT)
        return ptq_fail(e, PTQ_EINTERNAL, "packed GEMV of a tensor of format %d", q->format);
    long work = (long)q->rows * q->cols / GEMV_MIN_WORK + 1; /* workers worth a fork */
    if (threads > work) threads = (int)work;
    if (threads < 1) threads = 1;
    if (threads > q->rows) threads = q->rows > 0 ? q->rows : 1;
    if (threads > PTQ_PAR_MAX) threads = PTQ_PAR_MAX;
    size_t nc = (size_t)ptq_pack_kblocks(q->cols) * PTQ_PACK_BLOCK + (size_t)q->ngroups;
    int simd = simd_level(path);
    int nat = simd == PTQ_GEMV_AVX512 && q->bits != 4 && q->bits != 8 && !q->g_idx &&
              q->group % PTQ_PACK_BLOCK == 0;
    int lane = nat || lane_ok(q); /* the lane path: one x (permuted) instead of codes per worker */
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
    for (size_t k = 0; nat && k + q->ngroups < nc; k++) xp[k] = k < (size_t)q->cols ? x[k] : 0.0f;
    if (lane && !nat) lane_x(x, q->cols, q->bits, xp);
    gemv_job jobs[PTQ_PAR_MAX];
    for (int t = 0; t < threads; t++)
        jobs[t] = (gemv_job){q, x, xsum, xp, y, buf + q->ngroups + nxp + per * (size_t)t,
                             (int)((long)q->rows * t / threads),
                             (int)((long)q->rows * (t + 1) / threads), simd, nat};
    if (threads == 1) gemv_rows(&jobs[0]);
    else ptq_par_run(threads, gemv_rows, jobs, sizeof jobs[0]);
    free(buf);
    return PTQ_OK;
}

int ptq_gemv_int(const ptq_qtensor *q, const float *x, float *y, int threads, ptq_err *e)
{
    return ptq_gemv_int_path(q, x, y, threads, 0, e);
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
