/* e8p.c - the E8P source table and the exact nearest-codeword search
 * (lib/qfmt/e8p.h). */
#include <math.h>
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

/* The 1-bit codebook (e8p.h) as a constant (tests/check_quip.c holds it
 * equal to e81b_build's). */
const uint32_t ptq_e81b_tab[PTQ_E81B_NCODE] = {
    0x88888866u, 0x88888686u, 0x88886886u, 0x88868886u, 0x88688886u, 0x86888886u,
    0x68888886u, 0xa8888886u, 0x8a888886u, 0x88a88886u, 0x888a8886u, 0x8888a886u,
    0x88888a86u, 0x888888a6u, 0x88888668u, 0x88886868u, 0x88868868u, 0x88688868u,
    0x86888868u, 0x68888868u, 0xa8888868u, 0x8a888868u, 0x88a88868u, 0x888a8868u,
    0x8888a868u, 0x88888a68u, 0x88886688u, 0x88868688u, 0x88688688u, 0x86888688u,
    0x68888688u, 0xa8888688u, 0x8a888688u, 0x88a88688u, 0x888a8688u, 0x8888a688u,
    0x88866888u, 0x88686888u, 0x86886888u, 0x68886888u, 0xa8886888u, 0x8a886888u,
    0x88a86888u, 0x888a6888u, 0x88668888u, 0x86868888u, 0x68868888u, 0xa8868888u,
    0x8a868888u, 0x88a68888u, 0x86688888u, 0x68688888u, 0xa8688888u, 0x8a688888u,
    0x66888888u, 0xa6888888u, 0x88888888u, 0x6a888888u, 0xaa888888u, 0x86a88888u,
    0x68a88888u, 0xa8a88888u, 0x8aa88888u, 0x886a8888u, 0x868a8888u, 0x688a8888u,
    0xa88a8888u, 0x8a8a8888u, 0x88aa8888u, 0x8886a888u, 0x8868a888u, 0x8688a888u,
    0x6888a888u, 0xa888a888u, 0x8a88a888u, 0x88a8a888u, 0x888aa888u, 0x88886a88u,
    0x88868a88u, 0x88688a88u, 0x86888a88u, 0x68888a88u, 0xa8888a88u, 0x8a888a88u,
    0x88a88a88u, 0x888a8a88u, 0x8888aa88u, 0x888886a8u, 0x888868a8u, 0x888688a8u,
    0x886888a8u, 0x868888a8u, 0x688888a8u, 0xa88888a8u, 0x8a8888a8u, 0x88a888a8u,
    0x888a88a8u, 0x8888a8a8u, 0x88888aa8u, 0x8888886au, 0x8888868au, 0x8888688au,
    0x8886888au, 0x8868888au, 0x8688888au, 0x6888888au, 0xa888888au, 0x8a88888au,
    0x88a8888au, 0x888a888au, 0x8888a88au, 0x88888a8au, 0x888888aau, 0x77777777u,
    0x99777777u, 0x97977777u, 0x79977777u, 0x97797777u, 0x79797777u, 0x77997777u,
    0x99997777u, 0x97779777u, 0x79779777u, 0x77979777u, 0x99979777u, 0x77799777u,
    0x99799777u, 0x97999777u, 0x79999777u, 0x97777977u, 0x79777977u, 0x77977977u,
    0x99977977u, 0x77797977u, 0x99797977u, 0x97997977u, 0x79997977u, 0x77779977u,
    0x99779977u, 0x97979977u, 0x79979977u, 0x97799977u, 0x79799977u, 0x77999977u,
    0x99999977u, 0x97777797u, 0x79777797u, 0x77977797u, 0x99977797u, 0x77797797u,
    0x99797797u, 0x97997797u, 0x79997797u, 0x77779797u, 0x99779797u, 0x97979797u,
    0x79979797u, 0x97799797u, 0x79799797u, 0x77999797u, 0x99999797u, 0x77777997u,
    0x99777997u, 0x97977997u, 0x79977997u, 0x97797997u, 0x79797997u, 0x77997997u,
    0x99997997u, 0x97779997u, 0x79779997u, 0x77979997u, 0x99979997u, 0x77799997u,
    0x99799997u, 0x97999997u, 0x79999997u, 0x97777779u, 0x79777779u, 0x77977779u,
    0x99977779u, 0x77797779u, 0x99797779u, 0x97997779u, 0x79997779u, 0x77779779u,
    0x99779779u, 0x97979779u, 0x79979779u, 0x97799779u, 0x79799779u, 0x77999779u,
    0x99999779u, 0x77777979u, 0x99777979u, 0x97977979u, 0x79977979u, 0x97797979u,
    0x79797979u, 0x77997979u, 0x99997979u, 0x97779979u, 0x79779979u, 0x77979979u,
    0x99979979u, 0x77799979u, 0x99799979u, 0x97999979u, 0x79999979u, 0x77777799u,
    0x99777799u, 0x97977799u, 0x79977799u, 0x97797799u, 0x79797799u, 0x77997799u,
    0x99997799u, 0x97779799u, 0x79779799u, 0x77979799u, 0x99979799u, 0x77799799u,
    0x99799799u, 0x97999799u, 0x79999799u, 0x97777999u, 0x79777999u, 0x77977999u,
    0x99977999u, 0x77797999u, 0x99797999u, 0x97997999u, 0x79997999u, 0x77779999u,
    0x99779999u, 0x97979999u, 0x79979999u, 0x97799999u, 0x79799999u, 0x77999999u,
    0x99999999u, 0x8888888cu, 0x888888c8u, 0x88888c88u, 0x8888c888u, 0x888c8888u,
    0x88c88888u, 0x8c888888u, 0xc8888888u, 0x88888884u, 0x88888848u, 0x88888488u,
    0x88884888u, 0x88848888u, 0x88488888u, 0x84888888u
};

/* Entry of the twice-values t[8] (nibble i: t_i + 8). */
static uint32_t pack2(const int t[8])
{
    uint32_t w = 0;
    for (int i = 0; i < 8; i++) w |= (uint32_t)(t[i] + 8) << (4 * i);
    return w;
}

/* The 1-bit codebook in e8p.h's order into b->tab1, v1, n21. */
static void e81b_build(ptq_e8p_book *b)
{
    int k = 0, t[8];
    for (int c = 0; c < 6561; c++) { /* integer points in {-1,0,1}^8, ascending */
        int sum = 0, n2 = 0;
        for (int i = 0, r = c; i < 8; i++) {
            int p = 1;
            for (int j = i + 1; j < 8; j++) p *= 3;
            t[i] = 2 * ((r / p) % 3 - 1);
            sum += t[i] / 2, n2 += t[i] * t[i];
        }
        if (n2 <= 8 && sum % 2 == 0) b->tab1[k++] = pack2(t);
    }
    for (int c = 0; c < 256; c++) { /* (+-1/2)^8, ascending, even sum */
        int sum = 0;
        for (int i = 0; i < 8; i++) t[i] = (c >> (7 - i)) & 1 ? 1 : -1, sum += t[i];
        if (sum % 4 == 0) b->tab1[k++] = pack2(t);
    }
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 8 - s; i++) {
            for (int j = 0; j < 8; j++) t[j] = j == i ? (s ? -4 : 4) : 0;
            b->tab1[k++] = pack2(t);
        }
    for (k = 0; k < PTQ_E81B_NCODE; k++) { /* insertion sort of the keys */
        int j = k;
        for (; j > 0 && b->key1[j - 1] > b->tab1[k]; j--)
            b->key1[j] = b->key1[j - 1], b->code1[j] = b->code1[j - 1];
        b->key1[j] = b->tab1[k], b->code1[j] = (uint8_t)k;
    }
    for (k = 0; k < PTQ_E81B_NCODE; k++) {
        b->n21[k] = 0.0;
        for (int i = 0; i < 8; i++) {
            b->v1[i][k] = (double)((int)((b->tab1[k] >> (4 * i)) & 15u) - 8) * 0.5;
            b->n21[k] += b->v1[i][k] * b->v1[i][k];
            b->v1f[i][k] = (float)b->v1[i][k];
        }
        b->n21f[k] = (float)b->n21[k];
    }
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
    for (int c = 0; c < 1 << 16; c++) b->src_of[c] = -1;
    for (k = 0; k < PTQ_E8P_NSRC; k++) {
        unsigned key = 0;
        for (int i = 0; i < 8; i++) key |= (unsigned)((int)(2.0 * b->abs[i][k]) / 2) << (2 * i);
        b->src_of[key] = (int16_t)k;
    }
    e81b_build(b);
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

/* The nearest point z of D8 + h to y (h = 0 or 1/2, in double): *d gets
 * ||y - z||^2.  Returns 1 when another point of D8 + h may be as near (a
 * coordinate halfway between two integers, or two equal candidates for
 * the parity fix): the caller then leaves the choice among equals to the
 * full search, whose order decides ties. */
static int near_d8(const double y[8], double h, double z[8], double *d)
{
    int sum = 0, wi = 0, tie = 0, half = 0;
    double wd = -1.0;
    for (int i = 0; i < 8; i++) {
        double r = floor(y[i] - h + 0.5), u = y[i] - h - r, a = u < 0 ? -u : u;
        z[i] = r;
        sum += (int)r;
        half |= a == 0.5;
        if (a == wd) tie = 1;
        if (a > wd) wd = a, wi = i, tie = 0;
    }
    if (sum & 1) z[wi] += y[wi] - h > z[wi] ? 1.0 : -1.0;
    *d = 0.0;
    for (int i = 0; i < 8; i++) {
        z[i] += h;
        *d += (y[i] - z[i]) * (y[i] - z[i]);
    }
    return half || ((sum & 1) && tie);
}

/* The code of the nearest point of E8 + 1/4 to x when it is a codeword;
 * -1 when it is not (or x is not finite or too large). */
static int lattice_code(const ptq_e8p_book *b, const float x[8])
{
    double y[8], z0[8], z1[8], d0, d1;
    for (int i = 0; i < 8; i++) {
        if (!(x[i] > -64.0f && x[i] < 64.0f)) return -1;
        y[i] = (double)x[i] - 0.25;
    }
    int t0 = near_d8(y, 0.5, z0, &d0); /* D8 + 1/2 + 1/4: codes of parity 0 */
    int t1 = near_d8(y, 0.0, z1, &d1); /* D8 + 1/4 = D8^ - 1/4: parity 1 */
    int p = d1 < d0;
    if ((p ? t1 : t0) || fabs(d0 - d1) <= 1e-9 * (d0 + d1)) return -1; /* ties: the search */
    const double *z = p ? z1 : z0;
    unsigned key = 0, neg = 0;
    for (int i = 0; i < 8; i++) {
        double sv = p ? z[i] + 0.5 : z[i], a = sv < 0 ? -sv : sv; /* s in D8^ */
        if (a > 3.5) return -1;
        key |= (unsigned)((int)(2.0 * a) / 2) << (2 * i);
        if (sv < 0) neg |= 1u << i;
    }
    int k = b->src_of[key];
    if (k < 0) return -1;
    unsigned f = (neg ^ b->neg[k]) & 255u; /* even: s and the source are both in D8^ */
    return (k << 8) | (int)(f ^ (unsigned)p);
}

uint16_t ptq_e8p_nearest(const ptq_e8p_book *b, const float x[8], float q[8])
{
    int lc = lattice_code(b, x);
    if (lc >= 0) {
        if (q) ptq_e8p_decode(b->tab, (uint16_t)lc, q);
        return (uint16_t)lc;
    }
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

/* The code of the nearest point of E8 to x when it is a 1-bit codeword;
 * -1 when it is not. */
static int e81b_lattice(const ptq_e8p_book *b, const float x[8])
{
    double y[8], z0[8], z1[8], d0, d1;
    for (int i = 0; i < 8; i++) {
        if (!(x[i] > -64.0f && x[i] < 64.0f)) return -1;
        y[i] = (double)x[i];
    }
    int t0 = near_d8(y, 0.0, z0, &d0), t1 = near_d8(y, 0.5, z1, &d1);
    if ((d1 < d0 ? t1 : t0) || fabs(d0 - d1) <= 1e-9 * (d0 + d1)) return -1; /* ties */
    const double *z = d1 < d0 ? z1 : z0;
    uint32_t key = 0;
    for (int i = 0; i < 8; i++) {
        if (z[i] < -2.0 || z[i] > 2.0) return -1;
        key |= (uint32_t)(int)(2.0 * z[i] + 8.0) << (4 * i);
    }
    int lo = 0, hi = PTQ_E81B_NCODE - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (b->key1[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return b->key1[lo] == key ? b->code1[lo] : -1;
}

uint8_t ptq_e81b_nearest(const ptq_e8p_book *b, const float x[8], float q[8])
{
    int lc = e81b_lattice(b, x);
    if (lc >= 0) {
        if (q) ptq_e81b_decode(b->tab1, (uint8_t)lc, q);
        return (uint8_t)lc;
    }
    enum { N = PTQ_E81B_NCODE };
    float dot[N], x2 = 0.0f, bf = 3e38f;
    for (int k = 0; k < N; k++) dot[k] = b->n21f[k];
    for (int i = 0; i < 8; i++) {
        const float xi = -2.0f * x[i], *v = b->v1f[i];
        x2 += x[i] * x[i];
        for (int k = 0; k < N; k++) dot[k] += xi * v[k];
    }
    for (int k = 0; k < N; k++) bf = dot[k] < bf ? dot[k] : bf;
    /* the float pass screens; those within 1e-5 (||x||^2 + 4), far above
     * its rounding error, are evaluated again in double, in code order */
    float lim = bf + 1e-5f * (x2 + 4.0f);
    int best = -1;
    double bd = 0.0;
    for (int k = 0; k < N; k++) {
        if (!(dot[k] <= lim)) continue;
        double d = b->n21[k];
        for (int i = 0; i < 8; i++) d -= 2.0 * (double)x[i] * b->v1[i][k];
        if (best < 0 || d < bd) bd = d, best = k;
    }
    if (best < 0) best = 0; /* x not finite */
    if (q) ptq_e81b_decode(b->tab1, (uint8_t)best, q);
    return (uint8_t)best;
}
