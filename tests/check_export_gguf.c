/* check_export_gguf.c - ptqc export --format gguf (formats/export_gguf.c).
 *
 * (a) The file is parsed by a minimal GGUF v3 reader written here from the
 *     published specification (ggml's docs/gguf.md: header, typed metadata,
 *     tensor infos, general.alignment, data) with the block decoders of
 *     ggml-common.h (Q4_0 x = (q - 8) d, Q4_1 x = q d + m, Q5_0, Q5_1, Q8_0
 *     x = q d; value j < 16 in the low nibble of byte j, j + 16 in the high
 *     nibble, the fifth bit of value i in bit i of qh); every linear equals
 *     the bundle's ptq_qtensor_dequant bit for bit once llama.cpp's RoPE row
 *     order of attn_q / attn_k is undone, and the metadata is the model's.
 * (b) ptqc's own GGUF reader gives the logits of the bundle's CPU runtime.
 * (c) Bundles no ggml type holds are refused by name (exit 5, nothing
 *     written); --allow-requantize writes them and reports the error.
 */
#include <check.h>
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "lib/runtime/runtime_cpu.h"
#include "tests/testutil.h"

static char *tmp;

static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmrf(tmp); free(tmp); }

/* ---------------------------------------------------------------- reader */

static float f16(uint16_t h)
{
    int s = h >> 15, ex = (h >> 10) & 31, m = h & 1023;
    float v;
    if (ex == 0) v = ldexpf((float)m, -24);
    else if (ex == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), ex - 25);
    return s ? -v : v;
}

typedef struct kv {
    char key[128];
    uint32_t type, elem;
    uint64_t n;          /* array length */
    const uint8_t *val;  /* scalar / string (u64 length first) / first array element */
} kv;

typedef struct gt {
    char name[128];
    uint32_t nd, type;
    uint64_t dims[4], off;
} gt;

typedef struct gf {
    uint8_t *buf;
    size_t len, pos, data0;
    uint64_t nkv, nt;
    kv *kv;
    gt *t;
} gf;

static uint64_t rd(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static uint64_t take(gf *g, int n)
{
    ck_assert(g->pos + (size_t)n <= g->len);
    uint64_t v = rd(g->buf + g->pos, n);
    g->pos += (size_t)n;
    return v;
}

static void take_str(gf *g, char *out, size_t cap)
{
    uint64_t n = take(g, 8);
    ck_assert(n < cap && g->pos + n <= g->len);
    memcpy(out, g->buf + g->pos, n);
    out[n] = 0;
    g->pos += n;
}

static const int scalar_size[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static void skip_value(gf *g, uint32_t type)
{
    if (type == 8) g->pos += take(g, 8);
    else {
        ck_assert(type < 13 && type != 9);
        g->pos += (size_t)scalar_size[type];
    }
    ck_assert(g->pos <= g->len);
}

static void gf_open(gf *g, const char *path)
{
    memset(g, 0, sizeof *g);
    g->buf = (uint8_t *)tu_read_file(path, &g->len);
    ck_assert_msg(g->buf != NULL, "%s missing", path);
    ck_assert(g->len > 24 && !memcmp(g->buf, "GGUF", 4));
    g->pos = 4;
    ck_assert_int_eq(take(g, 4), 3);
    g->nt = take(g, 8);
    g->nkv = take(g, 8);
    g->kv = calloc(g->nkv, sizeof *g->kv);
    g->t = calloc(g->nt, sizeof *g->t);
    uint64_t align = 32;
    for (uint64_t i = 0; i < g->nkv; i++) {
        kv *k = &g->kv[i];
        take_str(g, k->key, sizeof k->key);
        k->type = (uint32_t)take(g, 4);
        if (k->type == 9) {
            k->elem = (uint32_t)take(g, 4);
            k->n = take(g, 8);
            k->val = g->buf + g->pos;
            for (uint64_t j = 0; j < k->n; j++) skip_value(g, k->elem);
        } else {
            k->val = g->buf + g->pos;
            skip_value(g, k->type);
        }
        if (!strcmp(k->key, "general.alignment")) align = rd(k->val, 4);
    }
    for (uint64_t i = 0; i < g->nt; i++) {
        gt *t = &g->t[i];
        take_str(g, t->name, sizeof t->name);
        t->nd = (uint32_t)take(g, 4);
        ck_assert(t->nd >= 1 && t->nd <= 4);
        for (uint32_t d = 0; d < t->nd; d++) t->dims[d] = take(g, 8);
        t->type = (uint32_t)take(g, 4);
        t->off = take(g, 8);
        ck_assert_msg(t->off % align == 0, "%s offset %llu", t->name, (unsigned long long)t->off);
    }
    g->data0 = (g->pos + align - 1) / align * align;
}

static void gf_close(gf *g)
{
    free(g->buf);
    free(g->kv);
    free(g->t);
}

static const kv *gf_kv(const gf *g, const char *key)
{
    for (uint64_t i = 0; i < g->nkv; i++)
        if (!strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

static const gt *gf_t(const gf *g, const char *name)
{
    for (uint64_t i = 0; i < g->nt; i++)
        if (!strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

static uint64_t kv_uint(const gf *g, const char *key)
{
    const kv *k = gf_kv(g, key);
    ck_assert_msg(k != NULL, "no %s", key);
    ck_assert_msg(k->type == 4 || k->type == 5 || k->type == 10, "%s type %u", key, k->type);
    return rd(k->val, k->type == 10 ? 8 : 4);
}

static int kv_str_is(const gf *g, const char *key, const char *want)
{
    const kv *k = gf_kv(g, key);
    ck_assert_msg(k && k->type == 8, "no string %s", key);
    uint64_t n = rd(k->val, 8);
    return n == strlen(want) && !memcmp(k->val + 8, want, n);
}

/* Decode tensor t (rows of dims[0]) into out. */
static void gf_decode(const gf *g, const gt *t, float *out)
{
    uint64_t cols = t->dims[0], rows = t->nd > 1 ? t->dims[1] : 1, n = cols * rows;
    const uint8_t *p = g->buf + g->data0 + t->off;
    if (t->type == 0) {
        ck_assert(g->data0 + t->off + 4 * n <= g->len);
        memcpy(out, p, 4 * n);
        return;
    }
    if (t->type == 1) {
        for (uint64_t i = 0; i < n; i++) out[i] = f16((uint16_t)rd(p + 2 * i, 2));
        return;
    }
    int t4 = t->type == 2 || t->type == 3, t5 = t->type == 6 || t->type == 7;
    int hasm = t->type == 3 || t->type == 7;
    ck_assert_msg(t4 || t5 || t->type == 8, "%s: ggml type %u", t->name, t->type);
    size_t bs = t->type == 8 ? 34 : (size_t)(2 + 2 * hasm + 4 * t5 + 16);
    ck_assert(cols % 32 == 0 && g->data0 + t->off + n / 32 * bs <= g->len);
    for (uint64_t b = 0; b < n / 32; b++, p += bs) {
        float d = f16((uint16_t)rd(p, 2)), m = hasm ? f16((uint16_t)rd(p + 2, 2)) : 0;
        float *y = out + b * 32;
        if (t->type == 8) {
            for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)p[2 + j] * d;
            continue;
        }
        const uint8_t *qs = p + 2 + 2 * hasm + 4 * t5;
        uint32_t qh = t5 ? (uint32_t)rd(p + 2 + 2 * hasm, 4) : 0;
        for (int j = 0; j < 32; j++) {
            int q = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
            if (t5) q |= (int)((qh >> j) & 1) << 4;
            y[j] = hasm ? (float)q * d + m : (float)(q - (t5 ? 16 : 8)) * d;
        }
    }
}

/* ---------------------------------------------------------------- (a) */

static const char *const hf_lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                      "mlp.down_proj"};
static const char *const gg_lin[7] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                      "ffn_gate", "ffn_up", "ffn_down"};

static char *compile(const char *name, const char *flags)
{
    char *model = tu_src("examples/stories260k");
    char *out = tu_fmt("%s/%s.ptq", tmp, name);
    tu_compile_ok(model, out, NULL, flags, 0);
    free(model);
    return out;
}

#define QUICK "--nsamples 8 --seqlen 64 --quiet"

static char *export_ok(const char *bundle, const char *name, const char *extra, char **err)
{
    char *out = tu_fmt("%s/%s.gguf", tmp, name), *so = NULL, *se = NULL;
    char *args = tu_fmt("export '%s' -o '%s' --format gguf %s", bundle, out, extra);
    int st = tu_ptqc(args, &so, &se);
    ck_assert_msg(st == 0, "%s: exit %d: %s", args, st, se);
    if (err) *err = se;
    else free(se);
    free(so);
    free(args);
    return out;
}

/* Every linear of bundle vs the file; *types gets the ggml type of the
 * first q_proj and of the first down_proj.  Returns the linears compared. */
static int compare_linears(const char *bundle, const gf *g, uint32_t *tq, uint32_t *tdown)
{
    ptq_bundle b;
    ptq_err e = {0};
    ck_assert_msg(ptq_bundle_open(&b, bundle, 1, &e) == 0, "%s", e.msg);
    int nlin = 0, hd = 8; /* stories260k: head_dim 8 */
    for (int l = 0; l < 5; l++)
        for (int i = 0; i < 7; i++) {
            char *hn = tu_fmt("model.layers.%d.%s.weight", l, hf_lin[i]);
            char *gn = tu_fmt("blk.%d.%s.weight", l, gg_lin[i]);
            ptq_qtensor q;
            ck_assert_msg(ptq_bundle_tensor(&b, hn, &q, &e) == 0, "%s", e.msg);
            const gt *t = gf_t(g, gn);
            ck_assert_msg(t && t->nd == 2 && t->dims[0] == (uint64_t)q.cols &&
                          t->dims[1] == (uint64_t)q.rows, "%s: dims", gn);
            if (l == 0 && i == 0) *tq = t->type;
            if (l == 0 && i == 6) *tdown = t->type;
            size_t n = (size_t)q.rows * (size_t)q.cols;
            float *want = malloc(n * 4), *got = malloc(n * 4);
            ck_assert(ptq_qtensor_dequant(&q, want, &e) == 0);
            gf_decode(g, t, got);
            for (int r = 0; r < q.rows; r++) {
                int src = r; /* GGUF row r of attn_q/attn_k = HF row h*hd + (j%2)*hd/2 + j/2 */
                if (i <= 1) src = r / hd * hd + (r % hd % 2) * (hd / 2) + r % hd / 2;
                for (int k = 0; k < q.cols; k++) {
                    float a = want[(size_t)src * q.cols + k], c = got[(size_t)r * q.cols + k];
                    ck_assert_msg(a == c, "%s row %d col %d: %.9g != bundle %.9g", gn, r, k, c, a);
                }
            }
            free(want), free(got), free(hn), free(gn);
            ptq_qtensor_free(&q);
            nlin++;
        }
    ptq_bundle_close(&b);
    return nlin;
}

static void check_meta(const gf *g)
{
    ck_assert_uint_eq(kv_uint(g, "general.alignment"), 32);
    ck_assert(kv_str_is(g, "general.architecture", "llama"));
    ck_assert_uint_eq(kv_uint(g, "llama.block_count"), 5);
    ck_assert_uint_eq(kv_uint(g, "llama.embedding_length"), 64);
    ck_assert_uint_eq(kv_uint(g, "llama.feed_forward_length"), 172);
    ck_assert_uint_eq(kv_uint(g, "llama.attention.head_count"), 8);
    ck_assert_uint_eq(kv_uint(g, "llama.attention.head_count_kv"), 4);
    ck_assert_uint_eq(kv_uint(g, "llama.context_length"), 512);
    ck_assert_uint_eq(kv_uint(g, "llama.vocab_size"), 512);
    const kv *eps = gf_kv(g, "llama.attention.layer_norm_rms_epsilon");
    ck_assert(eps && eps->type == 6);
    float f;
    uint32_t u = (uint32_t)rd(eps->val, 4);
    memcpy(&f, &u, 4);
    ck_assert(f == 1e-5f);
    ck_assert(kv_str_is(g, "tokenizer.ggml.model", "llama"));
    const kv *tok = gf_kv(g, "tokenizer.ggml.tokens"), *sc = gf_kv(g, "tokenizer.ggml.scores");
    const kv *tt = gf_kv(g, "tokenizer.ggml.token_type");
    ck_assert(tok && tok->type == 9 && tok->elem == 8 && tok->n == 512);
    ck_assert(sc && sc->elem == 6 && sc->n == 512 && tt && tt->elem == 5 && tt->n == 512);
    ck_assert(rd(tok->val, 8) == 5 && !memcmp(tok->val + 8, "<unk>", 5)); /* id 0 */
    ck_assert_uint_eq(kv_uint(g, "tokenizer.ggml.bos_token_id"), 1);
    ck_assert_uint_eq(kv_uint(g, "tokenizer.ggml.eos_token_id"), 2);
    const kv *ab = gf_kv(g, "tokenizer.ggml.add_bos_token");
    ck_assert(ab && ab->type == 7 && ab->val[0] == 1);
    /* tied: no output.weight; norms F32 1-d */
    ck_assert(gf_t(g, "output.weight") == NULL);
    const gt *n = gf_t(g, "blk.0.attn_norm.weight"), *emb = gf_t(g, "token_embd.weight");
    ck_assert(n && n->nd == 1 && n->type == 0 && n->dims[0] == 64);
    ck_assert(emb && emb->nd == 2 && emb->dims[0] == 64 && emb->dims[1] == 512);
}

/* want_q: the ggml type of attn_q; 99: Q4_1 or Q5_0 (4-bit asymmetric) */
static void exact_case(const char *name, const char *flags, uint32_t want_q)
{
    char *b = compile(name, flags), *out = export_ok(b, name, "", NULL);
    gf g;
    gf_open(&g, out);
    check_meta(&g);
    uint32_t tq = 99, td = 99;
    ck_assert_int_eq(compare_linears(b, &g, &tq, &td), 35);
    if (want_q == 99) ck_assert_msg(tq == 3 || tq == 6, "%s: attn_q type %u", name, tq);
    else ck_assert_msg(tq == want_q, "%s: attn_q is ggml type %u, want %u", name, tq, want_q);
    ck_assert_msg(td == 0 || td == 1, "ffn_down (rows of 172) is type %u, want F32/F16", td);
    fprintf(stderr, "gguf %s: 35 linears bit-exact, attn_q type %u, ffn_down type %u\n", name, tq, td);
    gf_close(&g);
    free(b), free(out);
}

START_TEST(test_w4_g32_sym) { exact_case("w4", "--method rtn --bits 4 --group 32 --sym " QUICK, 2); }
END_TEST
START_TEST(test_w8_g32) { exact_case("w8", "--method rtn --bits 8 --group 32 --sym " QUICK, 8); }
END_TEST
/* exact beyond g32: groups of 64 repeat their scale in each block; 4-bit
 * asymmetric is Q4_1 (m = -s z is an fp16) or Q5_0 */
START_TEST(test_g64) { exact_case("g64", "--method rtn --bits 4 --group 64 --sym " QUICK, 2); }
END_TEST
START_TEST(test_w4_asym) { exact_case("w4a", "--method rtn --bits 4 --group 32 --asym " QUICK, 99); }
END_TEST
START_TEST(test_w3) { exact_case("w3", "--method rtn --bits 3 --group 32 --sym " QUICK, 2); }
END_TEST
START_TEST(test_w5) { exact_case("w5", "--method rtn --bits 5 --group 32 --sym " QUICK, 6); }
END_TEST

/* ---------------------------------------------------------------- (b) */

START_TEST(test_logits)
{
    char *b = compile("w4l", "--method gptq --bits 4 --group 32 --sym " QUICK);
    char *out = export_ok(b, "w4l", "--quiet", NULL);
    ptq_model_src sb, sg;
    ptq_err e = {0};
    ck_assert_msg(ptq_model_src_open(&sb, b, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_model_src_open(&sg, out, &e) == 0, "%s", e.msg);
    enum { T = 24 };
    int32_t ids[T];
    uint64_t s = 7;
    for (int i = 0; i < T; i++) ids[i] = (int32_t)(tu_rng_next(&s) % 512);
    int V = 512;
    float *la = malloc(sizeof(float) * T * V), *lb = malloc(sizeof(float) * T * V);
    ptq_fwd *f;
    ck_assert_msg(ptq_fwd_create(&f, sb.w.cfg, T, T, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_forward(f, &sb.w, ids, 1, T, la, &e) == 0, "%s", e.msg);
    ck_assert_msg(ptq_forward(f, &sg.w, ids, 1, T, lb, &e) == 0, "%s", e.msg);
    double md = 0;
    for (int i = 0; i < T * V; i++) md = fmax(md, fabs((double)la[i] - lb[i]));
    fprintf(stderr, "gguf logits: max |bundle - gguf| = %.3g\n", md);
    ck_assert_msg(md <= 1e-4, "max |logit diff| %g", md);
    ptq_fwd_free(f);
    free(la), free(lb);
    ptq_model_src_close(&sb);
    ptq_model_src_close(&sg);
    /* the tokenizer too: eval of the file against the bundle sees the same ids */
    char *txt = tu_shared("text/tinystories-eval.txt");
    char *args = tu_fmt("eval '%s' --text '%s' --ctx 64 --reference '%s'", out, txt, b);
    cJSON *j = tu_eval_json(args);
    ck_assert_msg(tu_json_num(j, "kl_mean") <= 1e-9, "kl %g", tu_json_num(j, "kl_mean"));
    ck_assert(tu_json_num(j, "top1_agree") == 1.0);
    cJSON_Delete(j);
    free(args), free(txt), free(b), free(out);
}
END_TEST

/* ---------------------------------------------------------------- (c) */

/* No OUT.tmp.* is left in tmp. */
static void no_temp(void)
{
    DIR *d = opendir(tmp);
    struct dirent *de;
    while ((de = readdir(d)))
        ck_assert_msg(!strstr(de->d_name, ".tmp."), "left behind: %s", de->d_name);
    closedir(d);
}

static void refused(const char *name, const char *flags, const char *needle)
{
    char *b = compile(name, flags), *out = tu_fmt("%s/%s.gguf", tmp, name);
    char *args = tu_fmt("export '%s' -o '%s' --format gguf", b, out);
    tu_expect_fail(args, 5, needle, out);
    ck_assert(!tu_exists(out));
    no_temp();
    free(args), free(b), free(out);
}

START_TEST(test_refuse_act_order)
{
    refused("ao", "--method gptq --bits 4 --group 32 --act-order --no-static-groups " QUICK,
            "act-order g_idx");
}
END_TEST
START_TEST(test_refuse_g16)
{
    refused("g16", "--method rtn --bits 4 --group 16 --sym " QUICK,
            "model.layers.0.self_attn.q_proj.weight: group 16");
}
END_TEST
START_TEST(test_refuse_w8a8)
{
    refused("a8", "--method w8a8 " QUICK, "W8A8");
}
END_TEST

START_TEST(test_requantize)
{
    char *b = compile("g16r", "--method rtn --bits 4 --group 16 --sym " QUICK), *err = NULL;
    char *out = export_ok(b, "g16r", "--allow-requantize", &err);
    ck_assert_msg(strstr(err, "model.layers.0.self_attn.q_proj.weight -> blk.0.attn_q.weight "
                         "requantized to Q4_1") && strstr(err, "relative Frobenius error"),
                  "stderr: %s", err);
    gf g;
    gf_open(&g, out);
    const gt *t = gf_t(&g, "blk.0.attn_q.weight");
    ck_assert(t && t->type == 3);
    gf_close(&g);
    /* --allow-requantize belongs to gguf */
    char *ct = tu_fmt("%s/ct", tmp);
    char *args = tu_fmt("export '%s' -o '%s' --format gptq --allow-requantize", b, ct);
    tu_expect_fail(args, 2, "--allow-requantize", ct);
    free(args), free(ct), free(err), free(b), free(out);
}
END_TEST

START_TEST(test_exists)
{
    char *b = compile("ex", "--method rtn --bits 4 --group 32 --sym " QUICK);
    char *out = export_ok(b, "ex", "--quiet", NULL);
    char *args = tu_fmt("export '%s' -o '%s' --format gguf", b, out);
    char *so = NULL, *se = NULL;
    ck_assert_int_eq(tu_ptqc(args, &so, &se), 6);
    ck_assert(strstr(se, "already exists"));
    free(so), free(se), free(args), free(b), free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("export_gguf");
    TCase *tc = tcase_create("gguf");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_w4_g32_sym);
    tcase_add_test(tc, test_w8_g32);
    tcase_add_test(tc, test_g64);
    tcase_add_test(tc, test_w4_asym);
    tcase_add_test(tc, test_w3);
    tcase_add_test(tc, test_w5);
    tcase_add_test(tc, test_logits);
    tcase_add_test(tc, test_refuse_act_order);
    tcase_add_test(tc, test_refuse_g16);
    tcase_add_test(tc, test_refuse_w8a8);
    tcase_add_test(tc, test_requantize);
    tcase_add_test(tc, test_exists);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
