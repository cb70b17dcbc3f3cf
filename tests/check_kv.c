/* check_kv.c - the int8 KV cache and the KV-cached decoder over every format.
 *
 * - ptq_kv_int8 rounds to the codes of its column's scale (the definition).
 * - lib/qfmt/kvq.h's ptq_kv_code, which the int8 caches of the KV-cached decoder
 *   and of the CUDA runtime store, is clamp(nearbyint(x / s), -127, 127) bit
 *   for bit (hand-worked codes, then 10^6 random values against the formula),
 *   and ptq_kv_int8 is ptq_kv_code(x, s) * s exactly.
 * - lib/model/generate.c's KV-cached steps give ptq_forward's logits (within 1e-4)
 *   on bundles that ptqc compile wrote from examples/stories260k: W8A8 with
 *   dynamic activation scales, int8 KV alone, FP8 with static activation
 *   scales and int8 KV; and each of those bundles' logits move by more than
 *   1e-2 when their 8-bit linears and KV rounding are ignored (so the
 *   comparison can fail).
 * - kv_scale tensors: the per-head, per-channel [2, kv heads * head_dim] that
 *   ptqc compile writes, and the per-head [2, kv heads] of earlier bundles,
 *   which still verify and load: a per-head bundle gives bit for bit the
 *   logits of the per-channel bundle holding each head's scale in all of its
 *   channels.  Other shapes and non-positive scales are refused.
 */
#include <cJSON.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/bundle.h"
#include "lib/model/forward_ops.h"
#include "lib/model/generate.h"
#include "lib/qfmt/kvq.h"
#include "lib/model/model.h"
#include "lib/qfmt/qtensor.h"
#include "lib/runtime/runtime_cpu.h"
#include "tests/testutil.h"

#define FLAGS "--nsamples 16 --seqlen 128 --quiet"

/* ---------------------------------------------------------------- rounding */

START_TEST(kv_int8_definition)
{
    /* 2 rows of 4 columns, one scale per column */
    float s[4] = {0.01f, 0.5f, 2.0f, 0.25f};
    float x[8] = {0.3f, -1.26f, 5.0f, 100.0f, -2.0f, 0.24f, -255.0f, 0.125f};
    float want[8] = {0.3f, -1.5f, 4.0f, 31.75f, -1.27f, 0.0f, -254.0f, 0.0f};
    /* 0.3/0.01 = 30; -1.26/0.5 = -2.52 -> -3; 5/2 = 2.5 -> 2 (ties to even);
     * 100/0.25 = 400 -> 127; -2/0.01 -> -127; 0.24/0.5 = 0.48 -> 0;
     * -255/2 = -127.5 -> -127; 0.125/0.25 = 0.5 -> 0 (ties to even) */
    ptq_kv_int8(x, s, 2, 4);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(fabsf(x[i] - want[i]) <= 1e-6f * fabsf(want[i]), "x[%d] = %g, want %g", i,
                      (double)x[i], (double)want[i]);
    for (int i = 0; i < 8; i++) { /* and every value is code * scale exactly */
        float c = rintf(x[i] / s[i % 4]);
        ck_assert(x[i] == c * s[i % 4] && fabsf(c) <= 127.0f);
    }
}
END_TEST

/* The formula of the issue, written out here with nearbyintf. */
static int code_formula(float x, float s)
{
    float q = nearbyintf(x / s);
    if (isnan(q)) return 0;
    return q > 127.0f ? 127 : q < -127.0f ? -127 : (int)q;
}

START_TEST(kv_code_shared)
{
    /* hand-worked: ties to even, the clamp at both ends, infinities, NaN */
    struct { float x, s; int code; } hand[] = {
        {2.5f, 1.0f, 2},     {3.5f, 1.0f, 4},      {-2.5f, 1.0f, -2},   {0.49f, 1.0f, 0},
        {126.5f, 1.0f, 126}, {127.49f, 1.0f, 127}, {127.5f, 1.0f, 127}, {1e30f, 1e-3f, 127},
        {-500.0f, 2.0f, -127}, {-253.0f, 2.0f, -126}, {INFINITY, 0.5f, 127},
        {-INFINITY, 0.5f, -127}, {NAN, 0.5f, 0},    {0.3f, 0.01f, 30},  {-0.0f, 1.0f, 0},
    };
    for (size_t i = 0; i < sizeof hand / sizeof *hand; i++)
        ck_assert_msg(ptq_kv_code(hand[i].x, hand[i].s) == hand[i].code, "code(%g, %g) = %d, want %d",
                      (double)hand[i].x, (double)hand[i].s, ptq_kv_code(hand[i].x, hand[i].s),
                      hand[i].code);
    uint64_t st = 0x243f6a8885a308d3ull;
    for (int i = 0; i < 1000000; i++) {
        uint64_t r = tu_rng_next(&st);
        uint32_t r1 = (uint32_t)(r >> 32), r2 = (uint32_t)r;
        float s = ldexpf(1.0f + (float)(r2 & 0xffff) / 65536.0f, (int)((r2 >> 16) % 24) - 16);
        /* x spans about +-200 codes, with exact ties in a quarter of the draws */
        float c = (float)((int)(r1 % 400001) - 200000) / 1000.0f;
        if ((r1 >> 30) == 0) c = (float)((int)(r1 % 401) - 200) + 0.5f;
        float x = c * s, v = x;
        int8_t q = ptq_kv_code(x, s);
        ck_assert_msg(q == code_formula(x, s), "code(%a, %a) = %d, formula %d", (double)x, (double)s,
                      q, code_formula(x, s));
        ptq_kv_int8(&v, &s, 1, 1);
        ck_assert(v == ptq_kv_value(q, s) && ptq_kv_value(q, s) == (float)q * s);
    }
}
END_TEST

/* ---------------------------------------------------------------- helpers */

static char *compile(const char *dir, const char *name, const char *flags)
{
    char *model = tu_src("examples/stories260k");
    char *out = tu_fmt("%s/%s", dir, name), *fl = tu_fmt("%s " FLAGS, flags);
    tu_compile_ok(model, out, NULL, fl, 0);
    free(fl), free(model);
    return out;
}

/* A provider that hides the 8-bit linears and the KV scales of another: the
 * dequantized float32 weights, float KV. */
static int strip(const tu_fold *f, int l, ptq_layer_w *w, ptq_err *e)
{
    (void)f, (void)l, (void)e;
    for (int i = 0; i < PTQ_NLINEAR; i++) w->aq[i] = NULL;
    w->kv_scale = NULL;
    return PTQ_OK;
}

enum { B = 2, T = 32 };

/* Two prefixes of the eval text's ids (shared stories260k golden/logits.json;
 * examples/stories260k is the same model), each from BOS. */
static void prefixes(int32_t *tok)
{
    char *path = tu_shared("models/stories260k/golden/logits.json");
    char *js = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(js);
    cJSON *j = cJSON_Parse(js);
    const cJSON *ids = cJSON_GetObjectItem(j, "ids");
    ck_assert_int_ge(cJSON_GetArraySize(ids), 2 * T);
    for (int b = 0; b < B; b++) {
        tok[b * T] = 1;
        for (int t = 1; t < T; t++) tok[b * T + t] = cJSON_GetArrayItem(ids, b * T + t)->valueint;
    }
    cJSON_Delete(j);
    free(js), free(path);
}

/* logits [B*T, V] of ptq_forward over the two prefixes */
static float *forward_logits(const ptq_weights *w, const int32_t *tok)
{
    ptq_fwd *f;
    ptq_err e;
    ck_assert_msg(ptq_fwd_create(&f, w->cfg, B * T, T, &e) == 0, "%s", e.msg);
    float *lg = malloc(sizeof(float) * B * T * w->cfg->vocab);
    ck_assert_msg(ptq_forward(f, w, tok, B, T, lg, &e) == 0, "%s", e.msg);
    ptq_fwd_free(f);
    return lg;
}

static double maxdiff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---------------------------------------------------------------- decoder */

static void step_equals_forward(const char *flags, int want_aq, int want_kv)
{
    char *dir = tu_tmpdir(), *path = compile(dir, "b.ptq", flags);
    ptq_cpu_model m;
    ptq_err e;
    ck_assert_msg(ptq_cpu_open(&m, path, 1, &e) == 0, "%s", e.msg);
    ptq_weights w;
    ptq_cpu_weights(&m, &w);
    /* the bundle holds what the flags ask for */
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, w.cfg, &e), 0);
    ck_assert_int_eq(w.layer(w.ctx, 2, &lw, &e), 0);
    ck_assert_int_eq(lw.aq[PTQ_UP] != NULL, want_aq);
    ck_assert_int_eq(lw.kv_scale != NULL, want_kv);
    ptq_layer_w_free(&lw);

    int V = w.cfg->vocab;
    int32_t tok[B * T];
    prefixes(tok);
    float *ref = forward_logits(&w, tok);
    ptq_gen *g;
    ck_assert_int_eq(ptq_gen_create(&g, w.cfg, B, T, &e), 0);
    float *lg = malloc(sizeof(float) * B * V);
    double d = 0;
    for (int t = 0; t < T; t++) {
        int32_t step[B];
        for (int b = 0; b < B; b++) step[b] = tok[b * T + t];
        ck_assert_msg(ptq_gen_step(g, &w, step, t, lg, &e) == 0, "%s", e.msg);
        for (int b = 0; b < B; b++)
            d = fmax(d, maxdiff(lg + (size_t)b * V, ref + ((size_t)b * T + t) * V, V));
    }
    printf("%s: max |step - forward| = %.3g\n", flags, d);
    ck_assert_msg(d < 1e-4, "%s: KV-cached logits differ from the forward's by %g", flags, d);

    /* the same bundle with its 8-bit linears and KV rounding ignored */
    tu_fold fold = {w, strip, NULL};
    ptq_weights s = tu_fold_weights(&fold);
    float *plain = forward_logits(&s, tok);
    double dp = maxdiff(plain, ref, (size_t)B * T * V);
    printf("%s: max |forward - forward ignoring them| = %.3g\n", flags, dp);
    ck_assert_msg(dp > 1e-2, "%s: the 8-bit parts change the logits by only %g", flags, dp);

    free(plain), free(lg), free(ref);
    ptq_gen_free(g);
    ptq_cpu_close(&m);
    tu_rmrf(dir);
    free(dir), free(path);
}

START_TEST(step_w8a8) { step_equals_forward("--method w8a8", 1, 0); }
END_TEST

START_TEST(step_kv_int8)
{
    step_equals_forward("--method rtn --bits 8 --skip '*' --kv-cache int8", 0, 1);
}
END_TEST

START_TEST(step_fp8_static_kv_int8)
{
    step_equals_forward("--method fp8 --act-scales static --kv-cache int8", 1, 1);
}
END_TEST

/* ---------------------------------------------------------------- kv_scale shapes */

enum { KV_PER_HEAD, KV_HEAD_EXPANDED, KV_BAD_SHAPE, KV_ZERO };

/* Copy bundle src to dst with every layer's kv_scale rewritten: KV_PER_HEAD
 * [2, kv heads] = the largest channel scale of each head (what max |x| / 127
 * per head gives); KV_HEAD_EXPANDED the same scales in every channel of
 * their head [2, kv heads * head_dim]; KV_BAD_SHAPE [2, 3]; KV_ZERO one
 * scale 0. */
static void rewrite(const char *src, const char *dst, int mode)
{
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, src, 1, &e) == 0, "%s", e.msg);
    ptq_bundle_writer *w;
    ck_assert_int_eq(ptq_bw_open(&w, dst, &e), 0);
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json"};
    for (int i = 0; i < 3; i++) {
        uint64_t len;
        const void *d = ptq_bundle_member_data(&b, files[i], &len);
        ck_assert_ptr_nonnull(d);
        ck_assert_int_eq(ptq_bw_add_file(w, files[i], d, (size_t)len, &e), 0);
    }
    const cJSON *cfgm = cJSON_GetObjectItem(b.manifest, "model");
    int KV = cJSON_GetObjectItem(cfgm, "num_key_value_heads")->valueint;
    int hd = cJSON_GetObjectItem(cfgm, "head_dim")->valueint;
    const cJSON *ts = cJSON_GetObjectItem(b.manifest, "tensors");
    float scales[2 * 64];
    int nkv = 0;
    for (const cJSON *t = ts->child; t; t = t->next) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        const char *method = cJSON_GetObjectItem(t, "method")->valuestring;
        ptq_qtensor q;
        ck_assert_msg(ptq_bundle_tensor(&b, name, &q, &e) == 0, "%s", e.msg);
        size_t ln = strlen(name);
        if (ln > 9 && !strcmp(name + ln - 9, ".kv_scale")) {
            nkv++;
            ck_assert_int_eq(q.rows, 2);
            ck_assert_int_eq(q.cols, KV * hd);
            ck_assert_int_le(2 * KV * hd, 2 * 64);
            const float *s = q.data;
            float head[2 * 64];
            for (int i = 0; i < 2 * KV; i++) {
                head[i] = 0;
                for (int j = 0; j < hd; j++) head[i] = fmaxf(head[i], s[i * hd + j]);
            }
            q.cols = KV;
            if (mode == KV_PER_HEAD) memcpy(scales, head, sizeof(float) * 2 * KV);
            if (mode == KV_HEAD_EXPANDED) {
                for (int i = 0; i < 2 * KV * hd; i++) scales[i] = head[i / hd];
                q.cols = KV * hd;
            }
            if (mode == KV_BAD_SHAPE) q.cols = 3;
            if (mode == KV_ZERO) {
                memcpy(scales, s, sizeof(float) * 2 * KV * hd);
                scales[5] = 0.0f;
                q.cols = KV * hd;
            }
            if (mode != KV_ZERO && mode != KV_HEAD_EXPANDED && mode != KV_PER_HEAD)
                memcpy(scales, head, sizeof(float) * 6);
            q.data = scales;
        }
        ck_assert_msg(ptq_bw_add_tensor(w, name, method, &q, NULL, &e) == 0, "%s", e.msg);
    }
    ck_assert_int_gt(nkv, 0);
    ck_assert_msg(ptq_bw_finish(w, NULL, &e) == 0, "%s", e.msg);
    ptq_bundle_close(&b);
}

static void print_line(void *ud, const char *line) { printf("%s: %s\n", (const char *)ud, line); }

/* Problems ptq_bundle_verify finds in the bundle at path (printed). */
static int verify_problems(const char *path)
{
    ptq_bundle b;
    ptq_err e;
    ck_assert_msg(ptq_bundle_open(&b, path, 1, &e) == 0, "%s", e.msg);
    int nbad = 0, rc = ptq_bundle_verify(&b, &nbad, print_line, (void *)path, &e);
    ck_assert_int_eq(rc, nbad ? PTQ_EVERIFY : PTQ_OK);
    ptq_bundle_close(&b);
    return nbad;
}

/* ptq_forward over the bundle at path: logits into *out, or the status */
static int bundle_forward(const char *path, const int32_t *tok, float **out, ptq_err *e)
{
    ptq_cpu_model m;
    ck_assert_msg(ptq_cpu_open(&m, path, 1, e) == 0, "%s", e->msg);
    ptq_weights w;
    ptq_cpu_weights(&m, &w);
    ptq_fwd *f;
    ck_assert_int_eq(ptq_fwd_create(&f, w.cfg, B * T, T, e), 0);
    *out = malloc(sizeof(float) * B * T * w.cfg->vocab);
    int rc = ptq_forward(f, &w, tok, B, T, *out, e);
    ptq_fwd_free(f);
    ptq_cpu_close(&m);
    return rc;
}

START_TEST(per_head_bundles_load)
{
    char *dir = tu_tmpdir();
    char *chan = compile(dir, "c.ptq", "--method rtn --bits 8 --skip '*' --kv-cache int8");
    char *head = tu_fmt("%s/h.ptq", dir), *exp = tu_fmt("%s/x.ptq", dir);
    char *bad = tu_fmt("%s/bad.ptq", dir), *zero = tu_fmt("%s/zero.ptq", dir);
    rewrite(chan, head, KV_PER_HEAD);
    rewrite(chan, exp, KV_HEAD_EXPANDED);
    rewrite(chan, bad, KV_BAD_SHAPE);
    rewrite(chan, zero, KV_ZERO);
    ck_assert_int_eq(verify_problems(chan), 0);
    ck_assert_int_eq(verify_problems(head), 0);
    ck_assert_int_eq(verify_problems(exp), 0);
    ck_assert_int_gt(verify_problems(bad), 0);

    int32_t tok[B * T];
    prefixes(tok);
    ptq_err e;
    float *lc, *lh, *lx, *lb, *lz;
    ck_assert_int_eq(bundle_forward(chan, tok, &lc, &e), 0);
    ck_assert_msg(bundle_forward(head, tok, &lh, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(bundle_forward(exp, tok, &lx, &e), 0);
    size_t n = (size_t)B * T * 512;
    ck_assert_msg(!memcmp(lh, lx, sizeof(float) * n), "per-head bundle: %g from its expansion",
                  maxdiff(lh, lx, n));
    ck_assert_msg(maxdiff(lh, lc, n) > 1e-3, "per-head and per-channel scales agree");
    ck_assert_int_eq(bundle_forward(bad, tok, &lb, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "kv_scale") && strstr(e.msg, "2 x 32"), "%s", e.msg);
    ck_assert_int_eq(bundle_forward(zero, tok, &lz, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "positive"), "%s", e.msg);

    /* and the command line agrees */
    char *a = tu_fmt("verify '%s'", head);
    ck_assert_int_eq(tu_ptqc(a, NULL, NULL), 0);
    free(a);
    a = tu_fmt("verify '%s'", bad);
    ck_assert_int_eq(tu_ptqc(a, NULL, NULL), PTQ_EVERIFY);
    free(a);
    free(lc), free(lh), free(lx), free(lb), free(lz);
    free(chan), free(head), free(exp), free(bad), free(zero);
    tu_rmrf(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, kv_int8_definition);
    tcase_add_test(tc, kv_code_shared);
    tcase_add_test(tc, step_w8a8);
    tcase_add_test(tc, step_kv_int8);
    tcase_add_test(tc, step_fp8_static_kv_int8);
    tcase_add_test(tc, per_head_bundles_load);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
