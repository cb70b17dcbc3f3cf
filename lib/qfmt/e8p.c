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

/* The table ptq_e8p_init builds, as a constant (the decoders' table;
 * tests/check_quip_e2e.c holds it equal to ptq_e8p_init's). */
const uint32_t ptq_e8p_tab[PTQ_E8P_NSRC] = {
    0x99999999u, 0x59999999u, 0xd9999999u, 0x7b999999u, 0xbb999999u, 0x3b999999u,
    0x9d999999u, 0x5d999999u, 0x79b99999u, 0xb9b99999u, 0x39b99999u, 0x9bb99999u,
    0x5bb99999u, 0x7db99999u, 0x99d99999u, 0x59d99999u, 0x7bd99999u, 0x799b9999u,
    0xb99b9999u, 0x399b9999u, 0x9b9b9999u, 0x5b9b9999u, 0x7d9b9999u, 0x99bb9999u,
    0x59bb9999u, 0x7bbb9999u, 0xbbbb9999u, 0x79db9999u, 0x999d9999u, 0x599d9999u,
    0x7b9d9999u, 0x79bd9999u, 0x7999b999u, 0xb999b999u, 0x3999b999u, 0x9b99b999u,
    0x5b99b999u, 0x7d99b999u, 0x99b9b999u, 0x59b9b999u, 0x7bb9b999u, 0xbbb9b999u,
    0x79d9b999u, 0x999bb999u, 0x599bb999u, 0x7b9bb999u, 0xbb9bb999u, 0x79bbb999u,
    0xb9bbb999u, 0x9bbbb999u, 0x799db999u, 0x9999d999u, 0x5999d999u, 0x7b99d999u,
    0x79b9d999u, 0x799bd999u, 0x79999b99u, 0xb9999b99u, 0x39999b99u, 0x9b999b99u,
    0x5b999b99u, 0x7d999b99u, 0x99b99b99u, 0x59b99b99u, 0x7bb99b99u, 0xbbb99b99u,
    0x79d99b99u, 0x999b9b99u, 0x599b9b99u, 0x7b9b9b99u, 0xbb9b9b99u, 0x79bb9b99u,
    0xb9bb9b99u, 0x9bbb9b99u, 0x799d9b99u, 0x9999bb99u, 0x5999bb99u, 0x7b99bb99u,
    0xbb99bb99u, 0x79b9bb99u, 0xb9b9bb99u, 0x9bb9bb99u, 0x799bbb99u, 0xb99bbb99u,
    0x9b9bbb99u, 0x99bbbb99u, 0x7999db99u, 0x99999d99u, 0x59999d99u, 0x7b999d99u,
    0x79b99d99u, 0x799b9d99u, 0x7999bd99u, 0x799999b9u, 0xb99999b9u, 0x399999b9u,
    0x9b9999b9u, 0x5b9999b9u, 0x7d9999b9u, 0x99b999b9u, 0x59b999b9u, 0x7bb999b9u,
    0xbbb999b9u, 0x79d999b9u, 0x999b99b9u, 0x599b99b9u, 0x7b9b99b9u, 0xbb9b99b9u,
    0x79bb99b9u, 0xb9bb99b9u, 0x9bbb99b9u, 0x799d99b9u, 0x9999b9b9u, 0x5999b9b9u,
    0x7b99b9b9u, 0xbb99b9b9u, 0x79b9b9b9u, 0xb9b9b9b9u, 0x9bb9b9b9u, 0x799bb9b9u,
    0xb99bb9b9u, 0x9b9bb9b9u, 0x99bbb9b9u, 0x7999d9b9u, 0x99999bb9u, 0x59999bb9u,
    0x7b999bb9u, 0xbb999bb9u, 0x79b99bb9u, 0xb9b99bb9u, 0x9bb99bb9u, 0x799b9bb9u,
    0xb99b9bb9u, 0x9b9b9bb9u, 0x99bb9bb9u, 0x7999bbb9u, 0xb999bbb9u, 0x9b99bbb9u,
    0x99b9bbb9u, 0x999bbbb9u, 0x79999db9u, 0x999999d9u, 0x599999d9u, 0x7b9999d9u,
    0x79b999d9u, 0x799b99d9u, 0x7999b9d9u, 0x79999bd9u, 0x7999999bu, 0xb999999bu,
    0x3999999bu, 0x9b99999bu, 0x5b99999bu, 0x7d99999bu, 0x99b9999bu, 0x59b9999bu,
    0x7bb9999bu, 0xbbb9999bu, 0x79d9999bu, 0x999b999bu, 0x599b999bu, 0x7b9b999bu,
    0xbb9b999bu, 0x79bb999bu, 0xb9bb999bu, 0x9bbb999bu, 0x799d999bu, 0x9999b99bu,
    0x5999b99bu, 0x7b99b99bu, 0xbb99b99bu, 0x79b9b99bu, 0xb9b9b99bu, 0x9bb9b99bu,
    0x799bb99bu, 0xb99bb99bu, 0x9b9bb99bu, 0x99bbb99bu, 0x7999d99bu, 0x99999b9bu,
    0x59999b9bu, 0x7b999b9bu, 0xbb999b9bu, 0x79b99b9bu, 0xb9b99b9bu, 0x9bb99b9bu,
    0x799b9b9bu, 0xb99b9b9bu, 0x9b9b9b9bu, 0x99bb9b9bu, 0x7999bb9bu, 0xb999bb9bu,
    0x9b99bb9bu, 0x99b9bb9bu, 0x999bbb9bu, 0x79999d9bu, 0x999999bbu, 0x599999bbu,
    0x7b9999bbu, 0xbb9999bbu, 0x79b999bbu, 0xb9b999bbu, 0x9bb999bbu, 0x799b99bbu,
    0xb99b99bbu, 0x9b9b99bbu, 0x99bb99bbu, 0x7999b9bbu, 0xb999b9bbu, 0x9b99b9bbu,
    0x99b9b9bbu, 0x999bb9bbu, 0x79999bbbu, 0xb9999bbbu, 0x9b999bbbu, 0x99b99bbbu,
    0x999b9bbbu, 0x9999bbbbu, 0x799999dbu, 0x9999999du, 0x5999999du, 0x7b99999du,
    0x79b9999du, 0x799b999du, 0x7999b99du, 0x79999b9du, 0x799999bdu, 0x5bbb999bu,
    0x5bbb99b9u, 0x5bbb9b99u, 0x5bbbb999u, 0x79bb9bbbu, 0x7b9b9bbbu, 0x7bb99bbbu,
    0x599b9bbbu, 0x59b99bbbu, 0x5b999bbbu, 0x79bbb9bbu, 0x7b9bb9bbu, 0x7bb9b9bbu,
    0x599bb9bbu, 0x59b9b9bbu, 0x5b99b9bbu, 0x79bbbb9bu, 0x7b9bbb9bu, 0x7bb9bb9bu,
    0x599bbb9bu, 0x59b9bb9bu, 0x5b99bbb9u, 0x79bbbbb9u, 0x7b9bbbb9u, 0x7bb9bbb9u,
    0x599bbbb9u, 0x59b9bbb9u, 0x5bb9bb99u, 0x7bbb99bbu
};

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
