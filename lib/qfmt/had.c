/* had.c - Hadamard plans: the K-point matrices from their constructions
 * (Paley I and II over GF(p^k), Williamson arrays of three known sequence
 * sets, Sylvester doubling), the DCT fallback, and
 * the fast apply (lib/qfmt/had.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/qfmt/had.h"

enum { KMAX = 1024 };

/* ---- GF(p^k), k <= 3: elements are base-p digit strings 0..q-1 ---- */

typedef struct gf {
    int p, k, q;
    int f[4]; /* monic irreducible x^k + f[k-1] x^(k-1) + ... + f[0] */
} gf;

static int is_prime(int p)
{
    if (p < 2) return 0;
    for (int d = 2; d * d <= p; d++)
        if (p % d == 0) return 0;
    return 1;
}

/* q = p^k with k <= 3: fills p, k; else 0. */
static int prime_power(int q, int *p, int *k)
{
    for (int d = 2; d <= q; d++)
        if (q % d == 0) {
            int e = 0, r = q;
            while (r % d == 0) r /= d, e++;
            if (r != 1 || !is_prime(d) || e > 3) return 0;
            *p = d, *k = e;
            return 1;
        }
    return 0;
}

static void digits(const gf *g, int a, int *d)
{
    for (int i = 0; i < g->k; i++) d[i] = a % g->p, a /= g->p;
}

static int undigits(const gf *g, const int *d)
{
    int a = 0;
    for (int i = g->k - 1; i >= 0; i--) a = a * g->p + d[i];
    return a;
}

static int gf_sub(const gf *g, int a, int b)
{
    int da[3], db[3];
    digits(g, a, da), digits(g, b, db);
    for (int i = 0; i < g->k; i++) da[i] = ((da[i] - db[i]) % g->p + g->p) % g->p;
    return undigits(g, da);
}

static int gf_mul(const gf *g, int a, int b)
{
    int da[3], db[3], pr[6] = {0};
    int k = g->k, p = g->p;
    digits(g, a, da), digits(g, b, db);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) pr[i + j] = (pr[i + j] + da[i] * db[j]) % p;
    for (int t = 2 * k - 2; t >= k; t--) /* x^t = -f(x) x^(t-k) + ... */
        if (pr[t]) {
            int c = pr[t];
            pr[t] = 0;
            for (int i = 0; i < k; i++) pr[t - k + i] = ((pr[t - k + i] - c * g->f[i]) % p + p) % p;
        }
    return undigits(g, pr);
}

/* An irreducible polynomial: for k <= 3, one with no root in GF(p). */
static void gf_init(gf *g, int p, int k)
{
    g->p = p, g->k = k, g->q = 1;
    for (int i = 0; i < k; i++) g->q *= p;
    memset(g->f, 0, sizeof g->f);
    if (k == 1) return;
    int n = 1;
    for (int i = 0; i < k; i++) n *= p;
    for (int c = 0; c < n; c++) {
        int t = c, root = 0;
        for (int i = 0; i < k; i++) g->f[i] = t % p, t /= p;
        for (int x = 0; x < p && !root; x++) {
            long v = 1;
            for (int i = k - 1; i >= 0; i--) v = (v * x + g->f[i]) % p;
            root = v == 0;
        }
        if (!root) return;
    }
}

/* chi[a] = quadratic character of a: 0, +1 (nonzero square), -1. */
static int quad_char(const gf *g, int8_t *chi)
{
    for (int a = 0; a < g->q; a++) chi[a] = -1;
    chi[0] = 0;
    for (int a = 1; a < g->q; a++) chi[gf_mul(g, a, a)] = 1;
    return 0;
}

/* ---- Hadamard constructions ---- */

/* Paley I, q = 3 mod 4: H = I + [[0, 1^T], [-1, Q]], Q_ab = chi(a - b). */
static void paley1(const gf *g, const int8_t *chi, int8_t *H)
{
    int q = g->q, K = q + 1;
    for (int r = 0; r < K; r++)
        for (int c = 0; c < K; c++) {
            int s;
            if (r == 0) s = c == 0 ? 0 : 1;
            else if (c == 0) s = -1;
            else s = chi[gf_sub(g, r - 1, c - 1)];
            H[r * K + c] = (int8_t)(s + (r == c));
        }
}

/* Paley II, q = 1 mod 4: C = [[0, 1^T], [1, Q]] (symmetric),
 * H = C (x) [[1, -1], [-1, -1]] + I (x) [[1, 1], [1, -1]]. */
static void paley2(const gf *g, const int8_t *chi, int8_t *H)
{
    static const int A[2][2] = {{1, -1}, {-1, -1}}, B[2][2] = {{1, 1}, {1, -1}};
    int q = g->q, K = 2 * (q + 1);
    for (int u = 0; u <= q; u++)
        for (int v = 0; v <= q; v++) {
            int cuv = u == v ? 0 : (u == 0 || v == 0) ? 1 : chi[gf_sub(g, u - 1, v - 1)];
            for (int s = 0; s < 2; s++)
                for (int t = 0; t < 2; t++)
                    H[(2 * u + s) * K + 2 * v + t] =
                        (int8_t)(u == v ? B[s][t] : cuv * A[s][t]);
        }
}

static int paley(int q, int which, int8_t *H)
{
    int p, k;
    if (!prime_power(q, &p, &k) || q % 4 != (which == 1 ? 3 : 1)) return -1;
    gf g;
    gf_init(&g, p, k);
    int8_t *chi = malloc((size_t)q);
    if (!chi) return -2;
    quad_char(&g, chi);
    if (which == 1) paley1(&g, chi, H);
    else paley2(&g, chi, H);
    free(chi);
    return 0;
}

/* Williamson matrices: for K = 4n, A, B, C, D symmetric circulant +-1
 * matrices of order n with A^2 + B^2 + C^2 + D^2 = 4n I give the Hadamard
 * matrix
 *     [ A  B  C  D]
 *     [-B  A -D  C]
 *     [-C  D  A -B]
 *     [-D -C  B  A].
 * The first rows ('+' = 1) of the Williamson sequences of n = 29, 39, 43
 * from N. J. A. Sloane's library of Hadamard matrices (had.116.will,
 * had.156.will, had.172.will; the matrices QuIP#'s code ships). */
static const struct {
    int K;
    const char *row[4];
} will[] = {
    {116, {"++--+--+-+++-++++-+++-+--+--+",
          "++++-++-+---++++++---+-++-+++",
          "+-+---++--+-++++++-+--++---+-",
          "+++---++--+-+----+-+--++---++"}},
    {156, {"+++--+-+-----+--++----++--+-----+-+--++",
          "++++---+--++----+-+--+-+----++--+---+++",
          "+++--++-+---+-+--+----+--+-+---+-++--++",
          "+---++-+-+-----+++-++-+++-----+-+-++---"}},
    {172, {"+---++--++++-+-+++-++--++-+++-+-++++--++---",
          "++-++++++----+-+--++-++-++--+-+----++++++-+",
          "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
          "++---++++-+--+--++--------++--+--+-++++---+"}},
};

static int williamson(int K, int8_t *H)
{
    static const int blk[4][4] = {{1, 2, 3, 4}, {-2, 1, -4, 3}, {-3, 4, 1, -2}, {-4, -3, 2, 1}};
    for (size_t t = 0; t < sizeof will / sizeof *will; t++) {
        if (will[t].K != K) continue;
        int n = K / 4;
        for (int bi = 0; bi < 4; bi++)
            for (int bj = 0; bj < 4; bj++) {
                int w = blk[bi][bj], sg = w < 0 ? -1 : 1;
                const char *a = will[t].row[(w < 0 ? -w : w) - 1];
                for (int r = 0; r < n; r++)
                    for (int c = 0; c < n; c++)
                        H[(bi * n + r) * K + bj * n + c] =
                            (int8_t)(sg * (a[((c - r) % n + n) % n] == '+' ? 1 : -1));
            }
        return 0;
    }
    return -1;
}

int ptq_had_matrix(int K, int8_t *H)
{
    if (K == 1) {
        H[0] = 1;
        return 0;
    }
    if (K == 2) {
        H[0] = H[1] = H[2] = 1, H[3] = -1;
        return 0;
    }
    if (K < 1 || K % 4 || K > KMAX) return -1;
    if (!paley(K - 1, 1, H)) return 0;
    if (!paley(K / 2 - 1, 2, H)) return 0;
    if (!williamson(K, H)) return 0;
    int h = K / 2;
    int8_t *S = malloc((size_t)h * h);
    if (!S) return -2;
    int rc = ptq_had_matrix(h, S);
    if (!rc)
        for (int r = 0; r < K; r++)
            for (int c = 0; c < K; c++) {
                int8_t v = S[(r % h) * h + c % h];
                H[r * K + c] = (int8_t)(r >= h && c >= h ? -v : v);
            }
    free(S);
    return rc;
}

/* ---- plans ---- */

static int plan_hadamard(ptq_had *h, int K, ptq_err *e)
{
    int8_t *tmp = malloc((size_t)K * K);
    h->mk = malloc((size_t)K * K * sizeof *h->mk);
    if (!tmp || !h->mk) {
        free(tmp);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for a %d-point Hadamard matrix", K);
    }
    int rc = ptq_had_matrix(K, tmp);
    for (int i = 0; !rc && i < K * K; i++) h->mk[i] = (float)tmp[i];
    free(tmp);
    if (rc) {
        free(h->mk);
        h->mk = NULL;
    }
    if (rc == -2) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a %d-point Hadamard matrix", K);
    return rc;
}

static int plan_dct(ptq_had *h, int m, ptq_err *e)
{
    h->mk = malloc((size_t)m * m * sizeof *h->mk);
    if (!h->mk) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a %d-point DCT", m);
    for (int k = 0; k < m; k++) {
        double c = sqrt((k ? 2.0 : 1.0) / m);
        for (int i = 0; i < m; i++)
            h->mk[k * m + i] = (float)(c * cos(3.14159265358979323846 * (i + 0.5) * k / m));
    }
    return 0;
}

int ptq_had_plan(ptq_had *h, int n, ptq_err *e)
{
    memset(h, 0, sizeof *h);
    if (n < 1) return ptq_fail(e, PTQ_EUSAGE, "Hadamard transform of length %d", n);
    int m = n, pow2 = 1;
    while (m % 2 == 0) m /= 2, pow2 *= 2;
    h->n = n;
    if (m == 1) {
        h->K = 1, h->P = n, h->kind = PTQ_HAD_PURE, h->scale = (float)(1.0 / sqrt(n));
        h->mk = malloc(sizeof *h->mk);
        if (!h->mk) return ptq_fail(e, PTQ_ENOMEM, "out of memory for a Hadamard plan");
        h->mk[0] = 1.0f;
        return 0;
    }
    for (int K = 4 * m; K <= KMAX && n % K == 0; K *= 2) {
        int rc = plan_hadamard(h, K, e);
        if (rc == 0) {
            h->K = K, h->P = n / K, h->kind = PTQ_HAD_HADAMARD;
            h->scale = (float)(1.0 / sqrt(n));
            return 0;
        }
        if (rc != -1) return rc;
    }
    if (m > KMAX)
        return ptq_fail(e, PTQ_EUSAGE,
                        "no fast orthogonal transform for length %d: its odd factor %d is over %d",
                        n, m, KMAX);
    h->K = m, h->P = pow2, h->kind = PTQ_HAD_DCT, h->scale = (float)(1.0 / sqrt(pow2));
    return plan_dct(h, m, e);
}

void ptq_had_free(ptq_had *h)
{
    free(h->mk);
    memset(h, 0, sizeof *h);
}

/* ---- apply ---- */

static void fwht(float *x, int P)
{
    for (int len = 1; len < P; len <<= 1)
        for (int i = 0; i < P; i += len << 1)
            for (int j = i; j < i + len; j++) {
                float a = x[j], b = x[j + len];
                x[j] = a + b, x[j + len] = a - b;
            }
}

/* t[k][j] = sum_i M[k][i] x[i][j] (M = mk, or its transpose), each sum from
 * 0 in ascending i: columns j in blocks of 16 held in registers (every
 * output the same operations in the same order as one j at a time). */
static void dense_k(const float *restrict mk, int K, int P, const float *restrict x,
                    float *restrict t, int trans)
{
    int si = trans ? K : 1, sk = trans ? 1 : K, j0 = 0;
    for (; j0 + 16 <= P; j0 += 16)
        for (int k = 0; k < K; k++) {
            float acc[16] = {0};
            const float *m = mk + (size_t)k * sk;
            for (int i = 0; i < K; i++) {
                float c = m[(size_t)i * si];
                const float *xi = x + (size_t)i * P + j0;
                for (int j = 0; j < 16; j++) acc[j] += c * xi[j];
            }
            memcpy(t + (size_t)k * P + j0, acc, sizeof acc);
        }
    for (int k = 0; j0 < P && k < K; k++) /* the last P % 16 columns */
        for (int j = j0; j < P; j++) {
            float acc = 0.0f;
            for (int i = 0; i < K; i++) acc += mk[(size_t)k * sk + (size_t)i * si] * x[(size_t)i * P + j];
            t[(size_t)k * P + j] = acc;
        }
}

static void apply_one(const ptq_had *h, float *x, float *tmp, int trans)
{
    int K = h->K, P = h->P;
    for (int i = 0; i < K; i++) fwht(x + (size_t)i * P, P);
    if (K == 1) {
        for (int j = 0; j < P; j++) x[j] *= h->scale;
        return;
    }
    dense_k(h->mk, K, P, x, tmp, trans);
    for (int j = 0; j < h->n; j++) x[j] = tmp[j] * h->scale;
}

void ptq_had_apply(const ptq_had *h, float *x, int count, float *tmp)
{
    for (int c = 0; c < count; c++) apply_one(h, x + (size_t)c * h->n, tmp, 0);
}

void ptq_had_apply_t(const ptq_had *h, float *x, int count, float *tmp)
{
    for (int c = 0; c < count; c++) apply_one(h, x + (size_t)c * h->n, tmp, 1);
}

void ptq_had_fwd(const ptq_had *h, const int8_t *s, float *x, int count, float *tmp)
{
    for (int c = 0; c < count; c++) {
        float *v = x + (size_t)c * h->n;
        for (int j = 0; j < h->n; j++) v[j] *= (float)s[j];
        apply_one(h, v, tmp, 0);
    }
}

void ptq_had_inv(const ptq_had *h, const int8_t *s, float *x, int count, float *tmp)
{
    for (int c = 0; c < count; c++) {
        float *v = x + (size_t)c * h->n;
        apply_one(h, v, tmp, 1);
        for (int j = 0; j < h->n; j++) v[j] *= (float)s[j];
    }
}

void ptq_had_transpose(const float *a, int r, int c, float *t)
{
    enum { B = 32 };
    for (int i0 = 0; i0 < r; i0 += B)
        for (int j0 = 0; j0 < c; j0 += B) {
            int i1 = i0 + B < r ? i0 + B : r, j1 = j0 + B < c ? j0 + B : c;
            for (int i = i0; i < i1; i++)
                for (int j = j0; j < j1; j++) t[(size_t)j * r + i] = a[(size_t)i * c + j];
        }
}
