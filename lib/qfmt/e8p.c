/* e8p.c - the E8P source table and the exact nearest-codeword search
 * (lib/qfmt/e8p.h). */
#include <string.h>

#include "lib/qfmt/e8p.h"

/* The 29 sources of norm^2 12 that fill the table to 256, as the QuIP#
 * code lists them: digit 3 = 3/2, digit 1 = 1/2. */
static const char norm12[29][9] = {
    "31113333", "13113333", "11313333", "11133333", "33313311", "33313131", "33311331",
    "33313113", "33311313", "33311133", "33133311", "33133131", "33131331", "33133113",
    "33131313", "33131133", "31333311", "31333131", "31331331", "31333113", "31331313",
    "13331133", "13333311", "13333131", "13331331", "13333113", "13331313", "11331333",
    "33113331",
};

/* Store source twice-values t[i] = 2 s_i (odd integers), fixing the parity. */
static void put(ptq_e8p_book *b, int k, int t[8])
{
    int sum = 0;
    for (int i = 0; i < 8; i++) sum += t[i];
    if ((sum / 2) % 2) t[7] = -t[7]; /* sum of the s_i = sum / 2 is odd */
    uint32_t w = 0;
    b->neg[k] = 0;
    b->n2[k] = 0.0;
    for (int i = 0; i < 8; i++) {
        w |= (uint32_t)(t[i] + 8) << (4 * i);
        b->abs[i][k] = (double)(t[i] < 0 ? -t[i] : t[i]) * 0.5;
        b->n2[k] += b->abs[i][k] * b->abs[i][k];
        b->absf[i][k] = (float)b->abs[i][k];
        if (t[i] < 0) b->neg[k] |= (uint8_t)(1u << i);
    }
    b->n2f[k] = (float)b->n2[k];
    b->tab[k] = w;
}

void ptq_e8p_init(ptq_e8p_book *b)
{
    memset(b, 0, sizeof *b);
    int k = 0;
    /* |x| of D8^ within norm^2 10: every vector of positive half-integers
     * (one sign flip fixes the parity), coordinate 0 most significant */
    for (int c = 0; c < 1 << 16; c++) {
        int t[8], n2 = 0;
        for (int i = 0; i < 8; i++) {
            t[i] = 2 * ((c >> (2 * (7 - i))) & 3) + 1;
            n2 += t[i] * t[i];
        }
        if (n2 <= 40 && k < PTQ_E8P_NSRC) put(b, k++, t);
    }
    for (int r = 0; r < 29 && k < PTQ_E8P_NSRC; r++) {
        int t[8];
        for (int i = 0; i < 8; i++) t[i] = norm12[r][i] - '0';
        put(b, k++, t);
    }
}

/* Exact distance (double) from x to the best codeword of source k at shift
 * sh; *code gets that codeword. */
static double exact(const ptq_e8p_book *b, const float x[8], int sh, int k, unsigned *code)
{
    double t = sh ? -0.25 : 0.25, d = 0.0, mn = 1e300;
    unsigned flips = 0;
    int mi = 0;
    for (int i = 0; i < 8; i++) {
        double y = (double)x[i] - t, a = y < 0 ? -y : y, s = b->abs[i][k], u = a - s;
        if (y < 0) flips |= 1u << i;
        d += u * u;
        if (4.0 * a * s < mn) mn = 4.0 * a * s, mi = i;
    }
    flips = (flips ^ b->neg[k]) & 255u;
    if (ptq_e8p_parity(flips)) d += mn, flips ^= 1u << mi;
    *code = ((unsigned)k << 8) | (flips ^ (unsigned)sh);
    return d;
}

uint16_t ptq_e8p_nearest(const ptq_e8p_book *b, const float x[8], float q[8])
{
    enum { N = PTQ_E8P_NSRC };
    float df[2][N], dot[N], mn[N], bestf = 3e38f, y2max = 0.0f;
    for (int sh = 0; sh < 2; sh++) {
        float t = sh ? -0.25f : 0.25f, y2 = 0.0f;
        unsigned yneg = 0;
        for (int k = 0; k < N; k++) dot[k] = 0.0f, mn[k] = 3e38f;
        for (int i = 0; i < 8; i++) {
            float y = x[i] - t, a = y < 0 ? -y : y;
            if (y < 0) yneg |= 1u << i;
            y2 += y * y;
            const float *s = b->absf[i];
            for (int k = 0; k < N; k++) {
                float p = a * s[k];
                dot[k] += p;
                mn[k] = p < mn[k] ? p : mn[k];
            }
        }
        for (int k = 0; k < N; k++) {
            float d = y2 + b->n2f[k] - 2.0f * dot[k];
            if (ptq_e8p_parity(yneg ^ b->neg[k])) d += 4.0f * mn[k];
            df[sh][k] = d;
            bestf = d < bestf ? d : bestf;
        }
        y2max = y2 > y2max ? y2 : y2max;
    }
    float lim = bestf + 1e-5f * (y2max + 13.0f);
    double best = 0.0;
    unsigned code = 0;
    int have = 0;
    for (int sh = 0; sh < 2; sh++)
        for (int k = 0; k < N; k++) {
            if (!(df[sh][k] <= lim)) continue;
            unsigned c;
            double d = exact(b, x, sh, k, &c);
            if (!have || d < best) have = 1, best = d, code = c;
        }
    if (q) ptq_e8p_decode(b->tab, (uint16_t)code, q);
    return (uint16_t)code;
}
