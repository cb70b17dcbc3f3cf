/* check_forward.c - the FP32 forward pass, ptqc-ppl-v1 and `ptqc eval`.
 *
 * Golden values: logits.f32 and ppl.json of the shared models (llama2.c run.c,
 * see shared/README.md), and for synthetic checkpoints a naive per-token
 * forward in double written below, independent of lib/model/forward.c.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/checkpoint.h"
#include "formats/tokenizer.h"
#include "lib/model/act.h"
#include "lib/model/eval.h"
#include "lib/model/model.h"
#include "tests/synth.h"
#include "tests/testutil.h"

/* ------------------------------------------------------------ naive reference */

/* inv_freq of pair i, with rope scaling, in double. */
static double naive_freq(const ptq_config *c, int i)
{
    double f = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / c->head_dim);
    if (c->rope_scaling == PTQ_ROPE_LINEAR) {
        f = f / c->rope_factor;
    } else if (c->rope_scaling == PTQ_ROPE_LLAMA3) {
        double wl = 2 * M_PI / f;
        double lo_wl = c->rope_orig_max_pos / c->rope_low_freq_factor;
        double hi_wl = c->rope_orig_max_pos / c->rope_high_freq_factor;
        if (wl > lo_wl) {
            f = f / c->rope_factor;
        } else if (wl >= hi_wl) {
            double s = (c->rope_orig_max_pos / wl - c->rope_low_freq_factor) /
                       (c->rope_high_freq_factor - c->rope_low_freq_factor);
            f = (1 - s) * (f / c->rope_factor) + s * f;
        }
    }
    return f;
}

static void naive_rms(double *o, const double *x, const float *w, int D, double eps)
{
    double ss = 0;
    for (int i = 0; i < D; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / D + eps);
    for (int i = 0; i < D; i++) o[i] = x[i] * s * w[i];
}

static void naive_mv(double *y, const float *W, const float *b, const double *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = b ? b[r] : 0.0;
        for (int k = 0; k < cols; k++) s += (double)W[(size_t)r * cols + k] * x[k];
        y[r] = s;
    }
}

static void naive_rope(double *v, int nh, int hd, int pos, const ptq_config *c)
{
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < hd / 2; i++) {
            double a = pos * naive_freq(c, i);
            double x0 = v[h * hd + i], x1 = v[h * hd + i + hd / 2];
            v[h * hd + i] = x0 * cos(a) - x1 * sin(a);
            v[h * hd + i + hd / 2] = x1 * cos(a) + x0 * sin(a);
        }
}

/* Logits [T, V] of one sequence, one token at a time with a KV cache. */
static void naive_forward(const synth_model *m, const int32_t *ids, int T, double *out)
{
    const ptq_config *c = &m->cfg;
    int D = c->hidden, hd = c->head_dim, H = c->n_heads, KV = c->n_kv_heads, I = c->intermediate;
    int V = c->vocab, L = c->n_layers;
    double *x = calloc(D, sizeof *x), *xn = calloc(D, sizeof *xn), *tmp = calloc(D, sizeof *tmp);
    double *q = calloc(H * hd, sizeof *q), *att = calloc(H * hd, sizeof *att);
    double *kc = calloc((size_t)L * T * KV * hd, sizeof *kc);
    double *vc = calloc((size_t)L * T * KV * hd, sizeof *vc);
    double *g = calloc(I, sizeof *g), *u = calloc(I, sizeof *u), *p = calloc(T, sizeof *p);
    for (int pos = 0; pos < T; pos++) {
        for (int i = 0; i < D; i++) x[i] = m->embed[(size_t)ids[pos] * D + i];
        for (int l = 0; l < L; l++) {
            const ptq_layer_w *w = &m->layers[l];
            double *kl = kc + ((size_t)l * T + pos) * KV * hd;
            double *vl = vc + ((size_t)l * T + pos) * KV * hd;
            naive_rms(xn, x, w->attn_norm, D, c->rms_eps);
            naive_mv(q, w->w[PTQ_Q], w->bias[PTQ_Q], xn, H * hd, D);
            naive_mv(kl, w->w[PTQ_K], w->bias[PTQ_K], xn, KV * hd, D);
            naive_mv(vl, w->w[PTQ_V], w->bias[PTQ_V], xn, KV * hd, D);
            naive_rope(q, H, hd, pos, c);
            naive_rope(kl, KV, hd, pos, c);
            for (int h = 0; h < H; h++) {
                int kh = h * KV / H;
                double mx = -1e300, sum = 0;
                for (int t = 0; t <= pos; t++) {
                    const double *kt = kc + ((size_t)l * T + t) * KV * hd + kh * hd;
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += q[h * hd + i] * kt[i];
                    p[t] = s / sqrt((double)hd);
                    if (p[t] > mx) mx = p[t];
                }
                for (int t = 0; t <= pos; t++) sum += (p[t] = exp(p[t] - mx));
                for (int i = 0; i < hd; i++) {
                    double s = 0;
                    for (int t = 0; t <= pos; t++)
                        s += p[t] / sum * vc[((size_t)l * T + t) * KV * hd + kh * hd + i];
                    att[h * hd + i] = s;
                }
            }
            naive_mv(tmp, w->w[PTQ_O], NULL, att, D, H * hd);
            for (int i = 0; i < D; i++) x[i] += tmp[i];
            naive_rms(xn, x, w->mlp_norm, D, c->rms_eps);
            naive_mv(g, w->w[PTQ_GATE], NULL, xn, I, D);
            naive_mv(u, w->w[PTQ_UP], NULL, xn, I, D);
            for (int i = 0; i < I; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            naive_mv(tmp, w->w[PTQ_DOWN], NULL, g, D, I);
            for (int i = 0; i < D; i++) x[i] += tmp[i];
        }
        naive_rms(xn, x, m->norm, D, c->rms_eps);
        naive_mv(out + (size_t)pos * V, m->lm_head ? m->lm_head : m->embed, NULL, xn, V, D);
    }
    free(x); free(xn); free(tmp); free(q); free(att); free(kc); free(vc); free(g); free(u); free(p);
}

/* ------------------------------------------------------------ helpers */

static void rand_ids(int32_t *ids, int n, int V, uint64_t seed)
{
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(tu_rng_next(&seed) % (uint64_t)V);
}

static float *fwd_logits(const ptq_weights *w, const int32_t *ids, int B, int T)
{
    ptq_err e = {0};
    ptq_fwd *f = NULL;
    ck_assert_msg(ptq_fwd_create(&f, w->cfg, B * T, T, &e) == 0, "%s", e.msg);
    float *lg = malloc(sizeof(float) * (size_t)B * T * w->cfg->vocab);
    ck_assert_msg(ptq_forward(f, w, ids, B, T, lg, &e) == 0, "%s", e.msg);
    ptq_fwd_free(f);
    return lg;
}

/* Logits of a checkpoint directory through the real reader. */
static float *ck_logits(const char *dir, const int32_t *ids, int B, int T)
{
    ptq_checkpoint ck;
    ptq_weights w = tu_ckpt_open(&ck, dir);
    float *lg = fwd_logits(&w, ids, B, T);
    ptq_ckpt_close(&ck);
    return lg;
}

static double max_diff_fd(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static double max_diff_ff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Write m to a fresh directory; returns the malloc'ed path. */
static char *write_model(const synth_model *m, ptq_dtype dt, int shards)
{
    char *dir = tu_tmpdir();
    ptq_err e = {0};
    ck_assert_msg(synth_write(m, dir, dt, shards, &e) == 0, "%s", e.msg);
    return dir;
}

/* naive logits vs the checkpoint's forward; returns the forward's logits */
static float *check_vs_naive(const synth_model *m, const char *dir, int T, double tol)
{
    int32_t ids[64];
    rand_ids(ids, T, m->cfg.vocab, 42);
    double *ref = malloc(sizeof(double) * (size_t)T * m->cfg.vocab);
    naive_forward(m, ids, T, ref);
    float *lg = ck_logits(dir, ids, 1, T);
    double d = max_diff_fd(lg, ref, (size_t)T * m->cfg.vocab);
    ck_assert_msg(d < tol, "forward vs naive reference: max |diff| %g >= %g", d, tol);
    free(ref);
    return lg;
}

static cJSON *read_json(const char *path)
{
    size_t n;
    char *s = tu_read_file(path, &n);
    ck_assert_msg(s != NULL, "cannot read %s", path);
    cJSON *j = cJSON_Parse(s);
    ck_assert_msg(j != NULL, "%s: not JSON", path);
    free(s);
    return j;
}

static int32_t *json_ids(const cJSON *arr, size_t *n)
{
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc(sizeof(int32_t) * *n);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) ids[i++] = (int32_t)it->valueint;
    return ids;
}

/* ------------------------------------------------------------ synthetic: math */

/* The forward over an in-memory provider of synth model `mseed` on T random
 * tokens (`iseed`) against the naive reference: max |diff|, and the largest
 * reference logit in *mx. */
static double inmemory_vs_naive(uint64_t mseed, uint64_t iseed, int T, double *mx)
{
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, mseed), 0);
    ptq_weights w;
    synth_weights(&m, &w);
    int32_t *ids = malloc(sizeof(int32_t) * T);
    rand_ids(ids, T, c.vocab, iseed);
    double *ref = malloc(sizeof(double) * T * c.vocab);
    naive_forward(&m, ids, T, ref);
    float *lg = fwd_logits(&w, ids, 1, T);
    double d = max_diff_fd(lg, ref, (size_t)T * c.vocab);
    *mx = 0;
    for (int i = 0; i < T * c.vocab; i++) *mx = fmax(*mx, fabs(ref[i]));
    free(ids);
    free(ref);
    free(lg);
    synth_free(&m);
    return d;
}

START_TEST(test_naive_inmemory)
{
    /* the forward over an in-memory provider equals the naive reference */
    double mx, d = inmemory_vs_naive(1, 7, 24, &mx);
    ck_assert_msg(d < 1e-4, "max |diff| %g", d);
    /* and the reference is not trivially small */
    ck_assert_msg(mx > 0.5, "logits too small to be a test (%g)", mx);
}
END_TEST

START_TEST(test_attention_blocks)
{
    /* T = 300: the forward's attention runs in blocks of 128 query rows
     * (three, the last one short, keys past each block never multiplied);
     * the logits still equal the naive one-position-at-a-time reference. */
    double mx, d = inmemory_vs_naive(3, 11, 300, &mx);
    ck_assert_msg(d < 1e-4, "T = 300: max |diff| %g", d);
}
END_TEST

/* ulps between two floats of the same sign */
static double ulps(float a, double ref)
{
    float r = (float)ref;
    double u = fabs((double)nextafterf(r, INFINITY) - (double)r);
    return fabs((double)a - ref) / u;
}

START_TEST(test_exp_accuracy)
{
    /* lib/model/act.h's exp against libm's exp in double, on every 1024th
     * float of [ln FLT_MIN, 88] (its bit patterns, both signs): within 1 ulp
     * (act.h; every float of the range gave 0.990 at worst) */
    double worst = 0;
    float at = 0;
    const float lo = -87.3365448f, hi = 88.0f;
    uint32_t blo, bhi;
    memcpy(&blo, &lo, 4);
    memcpy(&bhi, &hi, 4);
    for (int sign = 0; sign < 2; sign++)
        for (uint32_t b = sign ? 0x80000000u : 0; b <= (sign ? blo : bhi); b += 1024) {
            float x;
            memcpy(&x, &b, 4);
            double u = ulps(ptq_exp(x), exp((double)x));
            if (u > worst) worst = u, at = x;
        }
    ck_assert_msg(worst <= 1.0, "exp: %g ulp at %a", worst, (double)at);
    ck_assert(ptq_exp(0.0f) == 1.0f && ptq_exp(-0.0f) == 1.0f);
    ck_assert(ptq_exp(-88.0f) == 0.0f && ptq_exp(-INFINITY) == 0.0f);
    ck_assert(isinf(ptq_exp(89.0f)) && isinf(ptq_exp(INFINITY)));
    ck_assert(isnan(ptq_exp(NAN)));
}
END_TEST

START_TEST(test_act_simd_twins)
{
    /* the AVX2 and AVX-512 softmax and silu compute the reference's bits (the
     * AVX-512 case is the AVX2 one on a CPU without it), at every
     * length 1..80 (full vectors and tails), with scores spread over the
     * whole range and silu inputs including the edges */
    uint64_t seed = 5;
    float a[80], b[80], c[80], u[80];
    for (int n = 1; n <= 80; n++)
        for (int rep = 0; rep < 20; rep++) {
            float spread = rep < 10 ? 8.0f : 200.0f;
            for (int i = 0; i < n; i++) {
                a[i] = b[i] = spread * ((float)tu_rng_unif(&seed) - 0.5f);
                u[i] = (float)tu_rng_unif(&seed) - 0.5f;
            }
            memcpy(c, a, sizeof(float) * n);
            ptq_softmax(a, n, PTQ_ACT_REF);
            ptq_softmax(b, n, PTQ_ACT_AVX2);
            ptq_softmax(c, n, PTQ_ACT_BEST);
            ck_assert_msg(memcmp(a, b, sizeof(float) * n) == 0, "softmax n %d rep %d", n, rep);
            ck_assert_msg(memcmp(a, c, sizeof(float) * n) == 0, "softmax512 n %d rep %d", n, rep);
            double sum = 0;
            for (int i = 0; i < n; i++) sum += a[i];
            ck_assert_msg(fabs(sum - 1.0) < 1e-5, "softmax sums to %g", sum);
            for (int i = 0; i < n; i++) a[i] = b[i] = spread * ((float)tu_rng_unif(&seed) - 0.5f);
            if (rep == 0 && n >= 8) {
                const float edge[8] = {0.0f, -0.0f, 87.5f, -87.5f, 88.5f, -88.5f, 1e-30f, 300.0f};
                memcpy(a, edge, sizeof edge);
                memcpy(b, edge, sizeof edge);
            }
            memcpy(c, a, sizeof(float) * n);
            ptq_silu_mul(a, u, (size_t)n, PTQ_ACT_REF);
            ptq_silu_mul(b, u, (size_t)n, PTQ_ACT_AVX2);
            ptq_silu_mul(c, u, (size_t)n, PTQ_ACT_BEST);
            ck_assert_msg(memcmp(a, b, sizeof(float) * n) == 0, "silu n %d rep %d", n, rep);
            ck_assert_msg(memcmp(a, c, sizeof(float) * n) == 0, "silu512 n %d rep %d", n, rep);
        }
    /* rmsnorm: the AVX2 twin's bits at every width 1..80 (in place too), and
     * within float rounding of a float64 evaluation */
    for (int D = 1; D <= 80; D++) {
        float x[80], w[80], o1[80], o2[80];
        for (int i = 0; i < D; i++) {
            x[i] = 3.0f * ((float)tu_rng_unif(&seed) - 0.5f);
            w[i] = (float)tu_rng_unif(&seed) + 0.5f;
        }
        ptq_rmsnorm_row(o1, x, w, D, 1e-5f, PTQ_ACT_REF);
        ptq_rmsnorm_row(o2, x, w, D, 1e-5f, PTQ_ACT_BEST);
        ck_assert_msg(memcmp(o1, o2, sizeof(float) * D) == 0, "rmsnorm D %d", D);
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
        double sc = 1.0 / sqrt(ss / D + 1e-5);
        for (int i = 0; i < D; i++)
            ck_assert_msg(fabs(o1[i] - x[i] * sc * w[i]) <= 4e-7 * fabs(x[i] * sc * w[i]) + 1e-30,
                          "rmsnorm D %d [%d]: %g vs %g", D, i, o1[i], x[i] * sc * w[i]);
        memcpy(o2, x, sizeof(float) * D);
        ptq_rmsnorm_row(o2, o2, w, D, 1e-5f, PTQ_ACT_BEST);
        ck_assert(memcmp(o1, o2, sizeof(float) * D) == 0);
    }
    /* NaN stays NaN in every path (17 lanes: a full AVX-512 step and a tail) */
    for (int l = PTQ_ACT_AVX2; l <= PTQ_ACT_BEST; l++) {
        float x[17] = {NAN, 1, 2, 3, 4, 5, 6, 7, NAN, 9, 10, 11, 12, 13, 14, NAN, NAN}, y[17];
        float one[17];
        for (int i = 0; i < 17; i++) one[i] = 1;
        memcpy(y, x, sizeof x);
        ptq_silu_mul(x, one, 17, PTQ_ACT_REF);
        ptq_silu_mul(y, one, 17, l);
        for (int i = 0; i < 17; i++)
            ck_assert(isnan(x[i]) ? isnan(y[i]) : memcmp(&x[i], &y[i], sizeof x[i]) == 0);
    }
}
END_TEST

START_TEST(test_batching)
{
    /* B sequences at once give each sequence's logits alone */
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 3), 0);
    ptq_weights w;
    synth_weights(&m, &w);
    enum { B = 3, T = 20 };
    int32_t ids[B * T];
    rand_ids(ids, B * T, c.vocab, 11);
    float *all = fwd_logits(&w, ids, B, T);
    for (int b = 0; b < B; b++) {
        float *one = fwd_logits(&w, ids + b * T, 1, T);
        double d = max_diff_ff(one, all + (size_t)b * T * c.vocab, (size_t)T * c.vocab);
        ck_assert_msg(d < 1e-5, "sequence %d: batched vs alone max |diff| %g", b, d);
        free(one);
    }
    /* prefix property (causality): the first 10 rows of a sequence do not
     * depend on what follows */
    float *pre = fwd_logits(&w, ids, 1, 10);
    double d = max_diff_ff(pre, all, (size_t)10 * c.vocab);
    ck_assert_msg(d < 1e-5, "causal prefix max |diff| %g", d);
    free(pre);
    free(all);
    synth_free(&m);
}
END_TEST

/* Records the order in which a provider's layers are widened. */
typedef struct order_log {
    int calls[16];
    int ncalls;
} order_log;

static int order_edit(const tu_fold *f, int l, ptq_layer_w *w, ptq_err *e)
{
    (void)w, (void)e;
    order_log *o = f->ctx;
    if (o->ncalls < 16) o->calls[o->ncalls] = l;
    o->ncalls++;
    return PTQ_OK;
}

START_TEST(test_layer_order)
{
    /* ptq_forward widens each layer once, in order, into one reused buffer */
    ptq_config c = synth_tiny_config();
    c.n_layers = 5;
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 4), 0);
    order_log o = {0};
    tu_fold fold = {.edit = order_edit, .ctx = &o};
    synth_weights(&m, &fold.base);
    ptq_weights w = tu_fold_weights(&fold);
    int32_t ids[8];
    rand_ids(ids, 8, c.vocab, 3);
    float *lg = fwd_logits(&w, ids, 1, 8);
    ck_assert_int_eq(o.ncalls, 5);
    for (int l = 0; l < 5; l++) ck_assert_int_eq(o.calls[l], l);
    free(lg);
    synth_free(&m);
}
END_TEST

START_TEST(test_capture)
{
    /* the captured linear inputs of layer 0 are what the naive reference sees */
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 5), 0);
    enum { T = 6 };
    int32_t ids[T];
    rand_ids(ids, T, c.vocab, 13);
    int D = c.hidden;
    float *x = malloc(sizeof(float) * T * D);
    for (int t = 0; t < T; t++) memcpy(x + t * D, m.embed + (size_t)ids[t] * D, sizeof(float) * D);
    float *ain = malloc(sizeof(float) * T * D), *din = malloc(sizeof(float) * T * c.intermediate);
    ptq_capture cap = {.attn_in = ain, .down_in = din};
    ptq_fwd *f = NULL;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_fwd_create(&f, &c, T, T, &e), 0);
    ck_assert_msg(ptq_fwd_layer(f, &m.layers[0], x, 1, T, &cap, &e) == 0, "%s", e.msg);
    double xd[64], xn[64];
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < D; i++) xd[i] = m.embed[(size_t)ids[t] * D + i];
        naive_rms(xn, xd, m.layers[0].attn_norm, D, c.rms_eps);
        ck_assert_msg(max_diff_fd(ain + t * D, xn, D) < 1e-5, "attn_in row %d", t);
    }
    /* down_in of token 0: position 0 attends only to itself */
    double v[64], o[64], h[64], g[128], u[128];
    const ptq_layer_w *w = &m.layers[0];
    for (int i = 0; i < D; i++) xd[i] = m.embed[(size_t)ids[0] * D + i];
    naive_rms(xn, xd, w->attn_norm, D, c.rms_eps);
    naive_mv(v, w->w[PTQ_V], NULL, xn, c.n_kv_heads * c.head_dim, D);
    double ao[64];
    for (int hh = 0; hh < c.n_heads; hh++)
        for (int i = 0; i < c.head_dim; i++)
            ao[hh * c.head_dim + i] = v[(hh * c.n_kv_heads / c.n_heads) * c.head_dim + i];
    naive_mv(o, w->w[PTQ_O], NULL, ao, D, c.n_heads * c.head_dim);
    for (int i = 0; i < D; i++) h[i] = xd[i] + o[i];
    naive_rms(xn, h, w->mlp_norm, D, c.rms_eps);
    naive_mv(g, w->w[PTQ_GATE], NULL, xn, c.intermediate, D);
    naive_mv(u, w->w[PTQ_UP], NULL, xn, c.intermediate, D);
    for (int i = 0; i < c.intermediate; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
    ck_assert_msg(max_diff_fd(din, g, c.intermediate) < 1e-5, "down_in row 0");
    ptq_fwd_free(f);
    free(x); free(ain); free(din);
    synth_free(&m);
}
END_TEST

/* ------------------------------------------------------------ synthetic checkpoints */

START_TEST(test_synth_llama)
{
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 21), 0);
    char *dir = write_model(&m, PTQ_DT_F32, 1);
    free(check_vs_naive(&m, dir, 32, 1e-4));
    tu_rmrf(dir);
    free(dir);
    synth_free(&m);
}
END_TEST

START_TEST(test_synth_qwen2_bias)
{
    ptq_config c = synth_tiny_config();
    strcpy(c.model_type, "qwen2");
    c.qkv_bias = 1;
    c.rope_theta = 1000000.0f;
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 22), 0);
    char *dir = write_model(&m, PTQ_DT_F32, 1);
    float *with = check_vs_naive(&m, dir, 32, 1e-4);
    tu_rmrf(dir);
    free(dir);
    /* zero the biases: the logits change (and still match the reference) */
    for (int l = 0; l < c.n_layers; l++)
        for (int i = PTQ_Q; i <= PTQ_V; i++) {
            int r, k;
            ptq_linear_shape(&c, i, &r, &k);
            memset(m.layers[l].bias[i], 0, sizeof(float) * r);
        }
    dir = write_model(&m, PTQ_DT_F32, 1);
    float *without = check_vs_naive(&m, dir, 32, 1e-4);
    double d = max_diff_ff(with, without, (size_t)32 * c.vocab);
    ck_assert_msg(d > 1e-2, "q/k/v biases have no effect on the logits (max |diff| %g)", d);
    tu_rmrf(dir);
    free(dir);
    free(with);
    free(without);
    synth_free(&m);
}
END_TEST

START_TEST(test_synth_untied)
{
    ptq_config c = synth_tiny_config();
    c.tie_embeddings = 0;
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 23), 0);
    char *dir = write_model(&m, PTQ_DT_F32, 1);
    float *lg = check_vs_naive(&m, dir, 16, 1e-4);
    /* the logits follow lm_head, not the embedding */
    float *keep = m.lm_head;
    m.lm_head = NULL;
    int32_t ids[16];
    rand_ids(ids, 16, c.vocab, 42);
    double *tied = malloc(sizeof(double) * 16 * c.vocab);
    naive_forward(&m, ids, 16, tied);
    m.lm_head = keep;
    double d = max_diff_fd(lg, tied, (size_t)16 * c.vocab);
    ck_assert_msg(d > 0.1, "untied logits equal the tied ones (max |diff| %g)", d);
    free(tied);
    free(lg);
    tu_rmrf(dir);
    free(dir);
    synth_free(&m);
}
END_TEST

START_TEST(test_synth_sharded)
{
    ptq_config c = synth_tiny_config();
    c.tie_embeddings = 0;
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 24), 0);
    char *one = write_model(&m, PTQ_DT_F32, 1);
    char *two = write_model(&m, PTQ_DT_F32, 2);
    int32_t ids[16];
    rand_ids(ids, 16, c.vocab, 9);
    float *a = ck_logits(one, ids, 1, 16), *b = ck_logits(two, ids, 1, 16);
    ck_assert_msg(memcmp(a, b, sizeof(float) * 16 * c.vocab) == 0,
                  "sharded logits differ from unsharded (max |diff| %g)",
                  max_diff_ff(a, b, (size_t)16 * c.vocab));
    free(a);
    free(b);
    tu_rmrf(one);
    tu_rmrf(two);
    free(one);
    free(two);
    synth_free(&m);
}
END_TEST

START_TEST(test_synth_bf16)
{
    /* BF16 tensors give the logits of the F32 weights rounded to bf16 */
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 25), 0);
    char *bf = write_model(&m, PTQ_DT_BF16, 1);
    int32_t ids[16];
    rand_ids(ids, 16, c.vocab, 42);
    ptq_weights mem;
    synth_weights(&m, &mem);
    float *unrounded = fwd_logits(&mem, ids, 1, 16);
    synth_round(&m, PTQ_DT_BF16);
    char *f32 = write_model(&m, PTQ_DT_F32, 1);
    float *a = ck_logits(bf, ids, 1, 16), *b = ck_logits(f32, ids, 1, 16);
    ck_assert_msg(memcmp(a, b, sizeof(float) * 16 * c.vocab) == 0,
                  "bf16 checkpoint differs from its f32 rounding (max |diff| %g)",
                  max_diff_ff(a, b, (size_t)16 * c.vocab));
    free(check_vs_naive(&m, bf, 16, 1e-4));
    /* the rounding is visible: the unrounded model gives other logits */
    ck_assert_msg(max_diff_ff(unrounded, a, (size_t)16 * c.vocab) > 1e-4,
                  "bf16 rounding had no effect");
    free(unrounded);
    free(a);
    free(b);
    tu_rmrf(bf);
    tu_rmrf(f32);
    free(bf);
    free(f32);
    synth_free(&m);
}
END_TEST

START_TEST(test_synth_rope_scaling)
{
    /* linear and llama3 rope scaling; the llama3 parameters put the four
     * frequencies of head_dim 8 in all three regimes (kept, interpolated,
     * divided) */
    for (int kind = 0; kind < 2; kind++) {
        ptq_config c = synth_tiny_config();
        if (kind == 0) {
            c.rope_scaling = PTQ_ROPE_LINEAR;
            c.rope_factor = 4.0f;
        } else {
            c.rope_scaling = PTQ_ROPE_LLAMA3;
            c.rope_factor = 8.0f;
            c.rope_low_freq_factor = 1.0f;
            c.rope_high_freq_factor = 4.0f;
            c.rope_orig_max_pos = 64;
            c.max_pos = 512;
        }
        synth_model m;
        ck_assert_int_eq(synth_init(&m, &c, 26 + kind), 0);
        char *dir = write_model(&m, PTQ_DT_F32, 1);
        float *lg = check_vs_naive(&m, dir, 48, 1e-4);
        /* scaling matters: without it the reference differs */
        ptq_config keep = m.cfg;
        m.cfg.rope_scaling = PTQ_ROPE_NONE;
        int32_t ids[48];
        rand_ids(ids, 48, c.vocab, 42);
        double *plain = malloc(sizeof(double) * 48 * c.vocab);
        naive_forward(&m, ids, 48, plain);
        m.cfg = keep;
        ck_assert_msg(max_diff_fd(lg, plain, (size_t)48 * c.vocab) > 1e-3,
                      "rope scaling %d had no effect", kind);
        free(plain);
        free(lg);
        tu_rmrf(dir);
        free(dir);
        synth_free(&m);
    }
}
END_TEST

/* ------------------------------------------------------------ eval on synthetic models */

START_TEST(test_eval_validation)
{
    ptq_config c = synth_tiny_config();
    synth_model m;
    ck_assert_int_eq(synth_init(&m, &c, 30), 0);
    ptq_weights w;
    synth_weights(&m, &w);
    int32_t ids[100];
    rand_ids(ids, 100, c.vocab, 1);
    ptq_eval_result r;
    ptq_err e = {0};
    ck_assert_int_eq(ptq_eval_ppl(&w, NULL, ids, 20, 32, 0, 1, &r, NULL, NULL, &e), PTQ_EDATA);
    ck_assert_msg(strstr(e.msg, "20 tokens") && strstr(e.msg, "ctx 32"), "%s", e.msg);
    ck_assert_int_eq(ptq_eval_ppl(&w, NULL, ids, 100, 1, 0, 1, &r, NULL, NULL, &e), PTQ_EUSAGE);
    ck_assert_int_eq(ptq_eval_ppl(&w, NULL, ids, 100, 65, 0, 1, &r, NULL, NULL, &e), PTQ_EUSAGE);
    ck_assert_msg(strstr(e.msg, "max_position_embeddings"), "%s", e.msg);
    ids[50] = c.vocab;
    ck_assert_int_eq(ptq_eval_ppl(&w, NULL, ids, 100, 16, 0, 1, &r, NULL, NULL, &e), PTQ_EDATA);
    synth_free(&m);
}
END_TEST

START_TEST(test_eval_math)
{
    /* ppl, KL and top-1 against the naive reference, and independence of
     * the batch size */
    ptq_config c = synth_tiny_config();
    synth_model m, q;
    ck_assert_int_eq(synth_init(&m, &c, 31), 0);
    ck_assert_int_eq(synth_init(&q, &c, 31), 0);
    synth_round(&q, PTQ_DT_BF16);
    ptq_weights wm, wq;
    synth_weights(&m, &wm);
    synth_weights(&q, &wq);
    enum { N = 70, CTX = 16 };
    int32_t ids[N];
    rand_ids(ids, N, c.vocab, 2);
    int V = c.vocab;
    double nll = 0, nll_ref = 0, kl = 0;
    long agree = 0;
    double *lm = malloc(sizeof(double) * CTX * V), *lr = malloc(sizeof(double) * CTX * V);
    for (int w = 0; w < N / CTX; w++) {
        naive_forward(&q, ids + w * CTX, CTX, lm); /* model: the rounded one */
        naive_forward(&m, ids + w * CTX, CTX, lr); /* reference */
        for (int t = 0; t + 1 < CTX; t++) {
            const double *a = lm + t * V, *b = lr + t * V;
            double za = 0, zb = 0;
            int ia = 0, ib = 0;
            for (int v = 0; v < V; v++) {
                za += exp(a[v]);
                zb += exp(b[v]);
                if (a[v] > a[ia]) ia = v;
                if (b[v] > b[ib]) ib = v;
            }
            int tgt = ids[w * CTX + t + 1];
            nll += log(za) - a[tgt];
            nll_ref += log(zb) - b[tgt];
            for (int v = 0; v < V; v++)
                kl += exp(b[v]) / zb * ((b[v] - log(zb)) - (a[v] - log(za)));
            agree += ia == ib;
        }
    }
    long pred = (N / CTX) * (CTX - 1);
    ptq_eval_result r1, r2;
    ptq_err e = {0};
    ck_assert_msg(ptq_eval_ppl(&wq, &wm, ids, N, CTX, 1, 1, &r1, NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_eval_ppl(&wq, &wm, ids, N, CTX, 3, 1, &r2, NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(r1.windows, N / CTX);
    ck_assert_int_eq(r1.predicted, pred);
    ck_assert_int_eq(r1.dropped, N % CTX);
    ck_assert_msg(fabs(r1.ppl / exp(nll / pred) - 1) < 1e-5, "ppl %g vs %g", r1.ppl,
                  exp(nll / pred));
    ck_assert_msg(fabs(r1.ref_ppl / exp(nll_ref / pred) - 1) < 1e-5, "ref ppl");
    ck_assert_msg(fabs(r1.kl_mean - kl / pred) < 1e-6 + 1e-3 * kl / pred, "kl %g vs %g",
                  r1.kl_mean, kl / pred);
    ck_assert_msg(kl > 0, "rounded model has zero KL");
    ck_assert_msg(fabs(r1.top1_agree - (double)agree / pred) < 1.5 / pred, "top1 %g vs %g",
                  r1.top1_agree, (double)agree / pred);
    ck_assert_msg(fabs(r1.nll_total - r2.nll_total) < 1e-6 * fabs(r1.nll_total),
                  "batch size changes the result: %.12g vs %.12g", r1.nll_total, r2.nll_total);
    /* a model against itself: KL 0, full agreement */
    ptq_eval_result r3;
    ck_assert_msg(ptq_eval_ppl(&wm, &wm, ids, N, CTX, 0, 1, &r3, NULL, NULL, &e) == 0, "%s", e.msg);
    ck_assert_msg(fabs(r3.kl_mean) < 1e-9, "self KL %g", r3.kl_mean);
    ck_assert_msg(r3.top1_agree == 1.0, "self top-1 %g", r3.top1_agree);
    ck_assert_msg(r3.ppl == r3.ref_ppl, "self ppl");
    ptq_eval_result_free(&r1);
    ptq_eval_result_free(&r2);
    ptq_eval_result_free(&r3);
    free(lm);
    free(lr);
    synth_free(&m);
    synth_free(&q);
}
END_TEST

/* ------------------------------------------------------------ shared real models */

static const char *const models[] = {"stories260k", "babyllama-105"};

static char *model_dir(int i)
{
    char *rel = tu_fmt("models/%s", models[i]);
    char *dir = tu_shared(rel);
    free(rel);
    return dir;
}

START_TEST(test_golden_logits)
{
    char *dir = model_dir(_i);
    char *jpath = tu_fmt("%s/golden/logits.json", dir), *fpath = tu_fmt("%s/golden/logits.f32", dir);
    cJSON *j = read_json(jpath);
    size_t n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(j, "ids"), &n);
    int T = cJSON_GetObjectItem(j, "T")->valueint, V = cJSON_GetObjectItem(j, "vocab")->valueint;
    ck_assert_int_eq((int)n, T);
    size_t len;
    float *gold = (float *)tu_read_file(fpath, &len);
    ck_assert_msg(gold && len == sizeof(float) * T * V, "%s: size %zu", fpath, len);
    float *lg = ck_logits(dir, ids, 1, T);
    double worst = 0;
    int wrow = 0;
    for (int t = 0; t < T; t++) {
        double d = max_diff_ff(lg + (size_t)t * V, gold + (size_t)t * V, V);
        if (d > worst) { worst = d; wrow = t; }
    }
    ck_assert_msg(worst < 1e-3, "%s: max |logit - golden| %g at row %d", models[_i], worst, wrow);
    fprintf(stderr, "%s: max |logit - golden| = %.3g (row %d)\n", models[_i], worst, wrow);
    free(lg);
    free(gold);
    free(ids);
    cJSON_Delete(j);
    free(jpath);
    free(fpath);
    free(dir);
}
END_TEST

static void check_ppl(const char *model, const char *dir, const int32_t *ids, size_t n,
                      const cJSON *gold_results)
{
    ptq_err e = {0};
    ptq_checkpoint ck;
    ptq_weights w = tu_ckpt_open(&ck, dir);
    const cJSON *g;
    cJSON_ArrayForEach(g, gold_results)
    {
        int ctx = cJSON_GetObjectItem(g, "ctx")->valueint;
        double gppl = cJSON_GetObjectItem(g, "ppl")->valuedouble;
        ptq_eval_result r;
        ck_assert_msg(ptq_eval_ppl(&w, NULL, ids, n, ctx, 0, 1, &r, NULL, NULL, &e) == 0, "%s",
                      e.msg);
        ck_assert_int_eq(r.windows, cJSON_GetObjectItem(g, "windows")->valueint);
        ck_assert_int_eq(r.predicted, cJSON_GetObjectItem(g, "predicted_tokens")->valueint);
        ck_assert_int_eq(r.dropped, cJSON_GetObjectItem(g, "tokens_dropped")->valueint);
        double rel = fabs(r.ppl / gppl - 1);
        ck_assert_msg(rel < 1e-3, "%s ctx %d: ppl %.9g vs golden %.9g (rel %.3g)", model, ctx,
                      r.ppl, gppl, rel);
        const cJSON *wn = cJSON_GetObjectItem(g, "window_nll");
        ck_assert_int_eq(cJSON_GetArraySize(wn), r.windows);
        double wworst = 0;
        for (long i = 0; i < r.windows; i++) {
            double gw = cJSON_GetArrayItem(wn, (int)i)->valuedouble;
            wworst = fmax(wworst, fabs(r.window_nll[i] / gw - 1));
        }
        ck_assert_msg(wworst < 1e-3, "%s ctx %d: a window's NLL is off by rel %g", model, ctx,
                      wworst);
        fprintf(stderr, "%s ctx %d: ppl %.9g golden %.9g rel %.2e, worst window rel %.2e\n",
                model, ctx, r.ppl, gppl, rel, wworst);
        ptq_eval_result_free(&r);
    }
    ptq_ckpt_close(&ck);
}

START_TEST(test_golden_ppl_ids)
{
    char *dir = model_dir(_i);
    char *ipath = tu_fmt("%s/golden/tinystories-eval.ids.json", dir);
    char *ppath = tu_fmt("%s/golden/ppl.json", dir);
    cJSON *ij = read_json(ipath), *pj = read_json(ppath);
    size_t n;
    int32_t *ids = json_ids(cJSON_GetObjectItem(ij, "ids"), &n);
    check_ppl(models[_i], dir, ids, n, cJSON_GetObjectItem(pj, "results"));
    free(ids);
    cJSON_Delete(ij);
    cJSON_Delete(pj);
    free(ipath);
    free(ppath);
    free(dir);
}
END_TEST

START_TEST(test_golden_ppl_encode)
{
    /* the same through the model's tokenizer */
    char *dir = model_dir(_i);
    char *tj = tu_fmt("%s/tokenizer.json", dir), *tc = tu_fmt("%s/tokenizer_config.json", dir);
    char *tp = tu_shared("text/tinystories-eval.txt");
    char *ppath = tu_fmt("%s/golden/ppl.json", dir);
    ptq_err e = {0};
    ptq_tokenizer *tok = NULL;
    ck_assert_msg(ptq_tok_load(&tok, tj, tc, &e) == 0, "%s", e.msg);
    size_t len, n;
    char *text = tu_read_file(tp, &len);
    ck_assert(text != NULL);
    int32_t *ids = NULL;
    ck_assert_msg(ptq_tok_encode(tok, text, len, 1, &ids, &n, &e) == 0, "%s", e.msg);
    cJSON *pj = read_json(ppath);
    ck_assert_int_eq((long)n, cJSON_GetObjectItem(pj, "n_ids")->valueint);
    check_ppl(models[_i], dir, ids, n, cJSON_GetObjectItem(pj, "results"));
    cJSON_Delete(pj);
    free(ids);
    free(text);
    ptq_tok_free(tok);
    free(tj); free(tc); free(tp); free(ppath); free(dir);
}
END_TEST

/* ------------------------------------------------------------ ptqc eval */

START_TEST(test_cli_eval)
{
    char *model = tu_src("examples/stories260k");
    char *text = tu_shared("text/tinystories-eval.txt");
    char *gpath = tu_shared("models/stories260k/golden/ppl.json");
    cJSON *gold = read_json(gpath);
    const cJSON *g;
    cJSON_ArrayForEach(g, cJSON_GetObjectItem(gold, "results"))
    {
        int ctx = cJSON_GetObjectItem(g, "ctx")->valueint;
        char *args = tu_fmt("eval '%s' --text '%s' --ctx %d", model, text, ctx);
        cJSON *j = tu_eval_json(args);
        double ppl = cJSON_GetObjectItem(j, "ppl")->valuedouble;
        double gppl = cJSON_GetObjectItem(g, "ppl")->valuedouble;
        ck_assert_msg(fabs(ppl / gppl - 1) < 1e-3, "ctx %d: ppl %.9g vs golden %.9g", ctx, ppl,
                      gppl);
        ck_assert_int_eq(cJSON_GetObjectItem(j, "windows")->valueint,
                         cJSON_GetObjectItem(g, "windows")->valueint);
        ck_assert_int_eq(cJSON_GetObjectItem(j, "predicted")->valueint,
                         cJSON_GetObjectItem(g, "predicted_tokens")->valueint);
        ck_assert_int_eq(cJSON_GetObjectItem(j, "n_ids")->valueint, 11735);
        cJSON_Delete(j);
        free(args);
    }
    /* human-readable output names the perplexity */
    char *args = tu_fmt("eval '%s' --text '%s' --reference '%s'", model, text, model);
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_ptqc(args, &out, &err), 0);
    ck_assert_msg(strstr(out, "perplexity") && strstr(out, "5.8456"), "%s", out);
    ck_assert_msg(strstr(out, "KL") && strstr(out, "top-1"), "%s", out);
    free(out); free(err); free(args);
    cJSON_Delete(gold);
    free(gpath); free(model); free(text);
}
END_TEST

/* The figures of an eval as %.17g text, window NLLs included. */
static char *eval_figures(const cJSON *j)
{
    static const char *const keys[] = {"ppl", "nll_total", "nll_mean", "ref_ppl", "kl_mean",
                                       "top1_agree"};
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    ck_assert(s != NULL);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItem(j, keys[i]);
        ck_assert_msg(cJSON_IsNumber(v), "no %s", keys[i]);
        len += (size_t)snprintf(s + len, cap - len, "%s %.17g\n", keys[i], v->valuedouble);
    }
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItem(j, "window_nll"))
    {
        ck_assert(len + 32 < cap);
        len += (size_t)snprintf(s + len, cap - len, "%.17g\n", w->valuedouble);
    }
    return s;
}

START_TEST(test_cli_eval_deterministic)
{
    /* --threads and --batch change the speed, never a bit of the figures:
     * babyllama-105 against an RTN 4-bit bundle of itself (so KL and top-1
     * are not trivial), ctx 128 = groups of 4 windows, 187 windows */
    char *model = tu_shared("models/babyllama-105");
    char *text = tu_shared("text/tinystories-eval.txt");
    char *gpath = tu_shared("models/babyllama-105/golden/ppl.json");
    char *dir = tu_tmpdir(), *q = tu_fmt("%s/q4.ptq", dir);
    tu_compile_ok(model, q, text, "--method rtn --bits 4 --nsamples 2 --seqlen 64 --quiet", 0);
    static const struct { const char *opts; int threads, batch; } runs[] = {
        {"--threads 1 --batch 1", 1, 4},  /* one group per round */
        {"--threads 2", 2, 16},           /* default: 4 groups per round on 2 workers */
        {"--threads 2 --batch 4", 1, 4},  /* one group: one worker */
        {"--threads 3 --batch 12", 3, 12}, /* 3 workers, a partial last round */
        {"--threads 4 --batch 9", 3, 12}, /* rounded up to 3 groups */
    };
    char *first = NULL;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char *args = tu_fmt("eval '%s' --reference '%s' --text '%s' --ctx 128 %s", model, q, text,
                            runs[i].opts);
        cJSON *j = tu_eval_json(args);
        ck_assert_int_eq(cJSON_GetObjectItem(j, "group")->valueint, 4);
        ck_assert_msg(cJSON_GetObjectItem(j, "threads")->valueint == runs[i].threads &&
                          cJSON_GetObjectItem(j, "batch")->valueint == runs[i].batch,
                      "%s: threads %d batch %d", runs[i].opts,
                      cJSON_GetObjectItem(j, "threads")->valueint,
                      cJSON_GetObjectItem(j, "batch")->valueint);
        ck_assert_int_eq(cJSON_GetObjectItem(j, "windows")->valueint, 187);
        ck_assert_msg(cJSON_GetObjectItem(j, "kl_mean")->valuedouble > 1e-4, "KL is trivial");
        char *fig = eval_figures(j);
        if (!first) {
            first = fig;
            /* the model's perplexity is still the golden one */
            cJSON *gold = read_json(gpath);
            const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(gold, "results"), 0);
            ck_assert_int_eq(cJSON_GetObjectItem(g, "ctx")->valueint, 128);
            double gppl = cJSON_GetObjectItem(g, "ppl")->valuedouble;
            double ppl = cJSON_GetObjectItem(j, "ppl")->valuedouble;
            ck_assert_msg(fabs(ppl / gppl - 1) < 1e-3, "ppl %.9g vs golden %.9g", ppl, gppl);
            cJSON_Delete(gold);
        } else {
            ck_assert_msg(!strcmp(fig, first), "%s: figures differ from --threads 1 --batch 1:\n"
                          "%.400s\nvs\n%.400s", runs[i].opts, fig, first);
            free(fig);
        }
        cJSON_Delete(j);
        free(args);
    }
    free(first);
    tu_rmrf(dir);
    free(dir); free(q); free(model); free(text); free(gpath);
}
END_TEST

START_TEST(test_cli_errors)
{
    char *model = tu_src("examples/stories260k");
    char *dir = tu_tmpdir();
    char *empty = tu_fmt("%s/empty.txt", dir), *ws = tu_fmt("%s/ws.txt", dir);
    char *shortt = tu_fmt("%s/short.txt", dir);
    tu_write_file(empty, "", 0);
    tu_write_file(ws, " \n\t \r\n", 6);
    tu_write_file(shortt, "Once upon a time", 16);
    struct { const char *args; int status; const char *needle; } cases[] = {
        {tu_fmt("eval '%s' --text '%s'", model, empty), 5, "text is empty"},
        {tu_fmt("eval '%s' --text '%s'", model, ws), 5, "contains only whitespace"},
        {tu_fmt("eval '%s' --text '%s' --ctx 128", model, shortt), 5, "ctx 128"},
        {tu_fmt("eval '%s' --text '%s' --ctx 1", model, shortt), 2, "--ctx"},
        {tu_fmt("eval '%s' --text '%s' --ctx 513", model, shortt), 2, "max_position_embeddings"},
        {tu_fmt("eval '%s' --text '%s/missing.txt'", model, dir), 3, "missing.txt"},
        {tu_fmt("eval '%s/nomodel' --text '%s'", dir, shortt), 3, "nomodel"},
        {tu_fmt("eval '%s'", model), 2, "--text"},
        {tu_fmt("eval '%s' --text '%s' --bogus", model, shortt), 2, "bogus"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = tu_ptqc(cases[i].args, &out, &err);
        ck_assert_msg(rc == cases[i].status, "ptqc %s: exit %d, expected %d (%s)", cases[i].args,
                      rc, cases[i].status, err ? err : "");
        ck_assert_msg(err && strstr(err, cases[i].needle), "ptqc %s: stderr lacks '%s': %s",
                      cases[i].args, cases[i].needle, err ? err : "");
        ck_assert_msg(!out || !*out, "ptqc %s: printed on failure: %s", cases[i].args, out);
        free(out);
        free(err);
        free((char *)cases[i].args);
    }
    tu_rmrf(dir);
    free(dir); free(empty); free(ws); free(shortt); free(model);
}
END_TEST

START_TEST(test_cli_help_matches_man)
{
    /* every long option in the man page is in --help and vice versa */
    char *out = NULL, *err = NULL;
    ck_assert_int_eq(tu_ptqc("eval --help", &out, &err), 0);
    char *mpath = tu_src("man/ptqc-eval.1");
    char *man = tu_read_file(mpath, NULL);
    ck_assert(man != NULL);
    /* long options in the page are written \-\-name */
    for (const char *p = man; (p = strstr(p, "\\-\\-")) != NULL;) {
        p += 4;
        char name[64] = "--";
        size_t k = 2;
        while ((p[0] >= 'a' && p[0] <= 'z') || (p[0] >= '0' && p[0] <= '9') || p[0] == '-' ||
               (p[0] == '\\' && p[1] == '-')) {
            if (p[0] == '\\') p++;
            if (k < sizeof name - 1) name[k++] = *p;
            p++;
        }
        name[k] = 0;
        if (k > 2) ck_assert_msg(strstr(out, name), "man page option %s missing from --help", name);
    }
    for (const char *p = out; (p = strstr(p, "--")) != NULL;) {
        p += 2;
        char name[64] = "\\-\\-";
        size_t k = 4;
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') {
            if (*p == '-' && k < sizeof name - 3) name[k++] = '\\';
            if (k < sizeof name - 1) name[k++] = *p;
            p++;
        }
        name[k] = 0;
        if (k > 4) ck_assert_msg(strstr(man, name), "--help option %s missing from the man page", name);
    }
    free(man);
    free(mpath);
    free(out);
    free(err);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("math");
    tcase_add_test(tc, test_naive_inmemory);
    tcase_add_test(tc, test_batching);
    tcase_add_test(tc, test_attention_blocks);
    tcase_add_test(tc, test_exp_accuracy);
    tcase_add_test(tc, test_act_simd_twins);
    tcase_add_test(tc, test_capture);
    tcase_add_test(tc, test_layer_order);
    tcase_add_test(tc, test_eval_validation);
    tcase_add_test(tc, test_eval_math);
    suite_add_tcase(s, tc);
    tc = tcase_create("synthetic");
    tcase_add_test(tc, test_synth_llama);
    tcase_add_test(tc, test_synth_qwen2_bias);
    tcase_add_test(tc, test_synth_untied);
    tcase_add_test(tc, test_synth_sharded);
    tcase_add_test(tc, test_synth_bf16);
    tcase_add_test(tc, test_synth_rope_scaling);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_loop_test(tc, test_golden_logits, 0, 2);
    tcase_add_loop_test(tc, test_golden_ppl_ids, 0, 2);
    tcase_add_loop_test(tc, test_golden_ppl_encode, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("cli");
    tcase_add_test(tc, test_cli_eval);
    tcase_add_test(tc, test_cli_eval_deterministic);
    tcase_add_test(tc, test_cli_errors);
    tcase_add_test(tc, test_cli_help_matches_man);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
