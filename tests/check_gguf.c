/* check_gguf.c - GGUF input: the ggml block decoders (lib/qfmt/ggml.c), the
 * reader and its validation (formats/gguf.c), config / tokenizer / weights
 * from the metadata (formats/gguf_*.c) and SmolLM2-135M end to end.
 *
 * Golden values: the decoders are checked on blocks the test packs itself
 * from chosen codes and scales following the published ggml layouts
 * (ggml-common.h, quantize_row_*_ref packing), with scales that are powers
 * of two so the expected x = d*sc*q - dmin*m is exact in float32.  The
 * SmolLM2 figures are Hugging Face transformers' (../shared/models/
 * smollm2-135m/golden, see ../shared/README.md).  Bad files are built here by
 * a small writer that follows the GGUF format description. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "formats/checkpoint.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "lib/base/half.h"
#include "lib/model/eval.h"
#include "lib/model/model.h"
#include "lib/qfmt/ggml.h"
#include "tests/testutil.h"

#define SMOL "models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"

/* ------------------------------------------------------------ block decoders */

static void put_h(uint8_t *p, float f)
{
    uint16_t h = ptq_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void expect_block(uint32_t type, const uint8_t *blk, const float *want, int n)
{
    float got[256];
    int bv, bb;
    ck_assert(ptq_ggml_block(type, &bv, &bb));
    ck_assert_int_eq(bv, n);
    ptq_ggml_decode(type, blk, 1, got);
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s value %d: %.9g, want %.9g", ptq_ggml_type_name(type),
                      i, (double)got[i], (double)want[i]);
}

START_TEST(test_block_sizes)
{
    /* sizeof(block_*) in ggml-common.h */
    static const struct { uint32_t t; int v, b; } s[] = {
        {PTQ_GGML_F32, 1, 4},    {PTQ_GGML_F16, 1, 2},    {PTQ_GGML_BF16, 1, 2},
        {PTQ_GGML_Q4_0, 32, 18}, {PTQ_GGML_Q4_1, 32, 20}, {PTQ_GGML_Q5_0, 32, 22},
        {PTQ_GGML_Q5_1, 32, 24}, {PTQ_GGML_Q8_0, 32, 34}, {PTQ_GGML_Q2_K, 256, 84},
        {PTQ_GGML_Q3_K, 256, 110}, {PTQ_GGML_Q4_K, 256, 144}, {PTQ_GGML_Q5_K, 256, 176},
        {PTQ_GGML_Q6_K, 256, 210}};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        int v, b;
        ck_assert(ptq_ggml_block(s[i].t, &v, &b));
        ck_assert_int_eq(v, s[i].v);
        ck_assert_int_eq(b, s[i].b);
    }
    int v, b;
    ck_assert(!ptq_ggml_block(PTQ_GGML_Q8_1, &v, &b)); /* known, not read */
    ck_assert(!ptq_ggml_block(16, &v, &b));            /* IQ2_XXS */
    ck_assert_str_eq(ptq_ggml_type_name(16), "IQ2_XXS");
    ck_assert_ptr_null(ptq_ggml_type_name(4)); /* removed Q4_2 */
    ck_assert_ptr_null(ptq_ggml_type_name(99));
}
END_TEST

START_TEST(test_plain)
{
    uint8_t b[4];
    float f = -3.140625f, w;
    memcpy(b, &f, 4);
    expect_block(PTQ_GGML_F32, b, &f, 1);
    b[0] = 0x01, b[1] = 0x00; /* smallest F16 subnormal */
    w = 5.9604644775390625e-8f;
    expect_block(PTQ_GGML_F16, b, &w, 1);
    b[0] = 0x00, b[1] = 0xbc; /* -1.0 */
    w = -1.0f;
    expect_block(PTQ_GGML_F16, b, &w, 1);
    b[0] = 0x49, b[1] = 0x40; /* bf16 0x4049 = 3.140625 */
    w = 3.140625f;
    expect_block(PTQ_GGML_BF16, b, &w, 1);
}
END_TEST

/* The 32-value types: codes q[i] chosen, packed as quantize_row_*_ref does
 * (value j < 16 low nibble of qs[j], j >= 16 high nibble of qs[j - 16],
 * the fifth bit of value j in bit j of the little-endian u32 qh). */
START_TEST(test_q32_types)
{
    uint8_t blk[64];
    float want[32];
    int q[32];
    const float d = 0.25f, m = -1.5f;
    /* Q4_0: x = (q - 8) d */
    memset(blk, 0, sizeof blk);
    put_h(blk, d);
    for (int j = 0; j < 32; j++) q[j] = (j * 7 + 3) % 16;
    for (int j = 0; j < 16; j++) blk[2 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
    for (int j = 0; j < 32; j++) want[j] = (float)(q[j] - 8) * d;
    expect_block(PTQ_GGML_Q4_0, blk, want, 32);
    /* Q4_1: x = q d + m */
    memset(blk, 0, sizeof blk);
    put_h(blk, d);
    put_h(blk + 2, m);
    for (int j = 0; j < 16; j++) blk[4 + j] = (uint8_t)(q[j] | q[j + 16] << 4);
    for (int j = 0; j < 32; j++) want[j] = (float)q[j] * d + m;
    expect_block(PTQ_GGML_Q4_1, blk, want, 32);
    /* Q5_0 / Q5_1: 5-bit codes */
    for (int j = 0; j < 32; j++) q[j] = (j * 11 + 5) % 32;
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) qh |= (uint32_t)(q[j] >> 4) << j;
    memset(blk, 0, sizeof blk);
    put_h(blk, d);
    for (int i = 0; i < 4; i++) blk[2 + i] = (uint8_t)(qh >> 8 * i);
    for (int j = 0; j < 16; j++) blk[6 + j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    for (int j = 0; j < 32; j++) want[j] = (float)(q[j] - 16) * d;
    expect_block(PTQ_GGML_Q5_0, blk, want, 32);
    memset(blk, 0, sizeof blk);
    put_h(blk, d);
    put_h(blk + 2, m);
    for (int i = 0; i < 4; i++) blk[4 + i] = (uint8_t)(qh >> 8 * i);
    for (int j = 0; j < 16; j++) blk[8 + j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    for (int j = 0; j < 32; j++) want[j] = (float)q[j] * d + m;
    expect_block(PTQ_GGML_Q5_1, blk, want, 32);
    /* Q8_0: x = q d, q int8 */
    memset(blk, 0, sizeof blk);
    put_h(blk, d);
    for (int j = 0; j < 32; j++) {
        int v = j * 8 - 128 + (j % 3);
        blk[2 + j] = (uint8_t)(int8_t)v;
        want[j] = (float)v * d;
    }
    expect_block(PTQ_GGML_Q8_0, blk, want, 32);
}
END_TEST

/* Q2_K: 16 sub-blocks of 16; value k is in sub-block 8n + 2j + h where
 * n = k / 128, j = (k % 128) / 32, h = (k % 32) / 16; its 2-bit code is bits
 * 2j of qs[32n + 16h + k % 16]; scales[s] = sc | mn << 4. */
START_TEST(test_q2_k)
{
    uint8_t blk[84] = {0};
    float want[256];
    const float d = 0.5f, dmin = 0.25f;
    for (int s = 0; s < 16; s++) blk[s] = (uint8_t)(((s * 5 + 1) % 16) | ((s * 3 + 2) % 16) << 4);
    for (int k = 0; k < 256; k++) {
        int n = k / 128, j = (k % 128) / 32, h = (k % 32) / 16, l = k % 16, code = (k * 13 + 1) % 4;
        int s = 8 * n + 2 * j + h;
        blk[16 + 32 * n + 16 * h + l] |= (uint8_t)(code << 2 * j);
        want[k] = d * (float)((s * 5 + 1) % 16) * (float)code - dmin * (float)((s * 3 + 2) % 16);
    }
    put_h(blk + 80, d);
    put_h(blk + 82, dmin);
    expect_block(PTQ_GGML_Q2_K, blk, want, 256);
}
END_TEST

/* Q3_K: sub-block scales are 6-bit, stored as (scale + 32), packed as
 * quantize_row_q3_K_ref: low nibble of scale s in scales[s] (s < 8) or the
 * high nibble of scales[s - 8]; its top two bits at bit 2*(s/4) of
 * scales[8 + s%4].  Value k: n, j, h as Q2_K; low 2 bits at bits 2j of
 * qs[32n + 16h + k%16]; the high bit, bit 4n + j of hmask[16h + k%16], set
 * means +0 and clear means -4. */
START_TEST(test_q3_k)
{
    uint8_t blk[110] = {0};
    float want[256];
    int sc[16];
    const float d = 0.125f;
    for (int s = 0; s < 16; s++) {
        sc[s] = (s * 23 + 7) % 64 - 32; /* -32..31 */
        int l = sc[s] + 32;
        if (s < 8) blk[96 + s] = (uint8_t)(l & 15);
        else blk[96 + s - 8] |= (uint8_t)((l & 15) << 4);
        blk[96 + 8 + s % 4] |= (uint8_t)((l >> 4) << 2 * (s / 4));
    }
    for (int k = 0; k < 256; k++) {
        int n = k / 128, j = (k % 128) / 32, h = (k % 32) / 16, l = k % 16;
        int code = (k * 5 + 3) % 8 - 4; /* -4..3 */
        int u = code + 4, hi = u >> 2, lo = u & 3;
        blk[32 + 32 * n + 16 * h + l] |= (uint8_t)(lo << 2 * j);
        if (hi) blk[16 * h + l] |= (uint8_t)(1 << (4 * n + j));
        want[k] = d * (float)sc[8 * n + 2 * j + h] * (float)code;
    }
    put_h(blk + 108, d);
    expect_block(PTQ_GGML_Q3_K, blk, want, 256);
}
END_TEST

/* Q4_K / Q5_K scales and mins: 8 pairs of 6 bits, packed as
 * quantize_row_q4_K_ref: j < 4: scales[j] = sc, scales[j+4] = mn; j >= 4:
 * scales[j+4] = (sc & 15) | (mn & 15) << 4, the top two bits of sc at bits
 * 6-7 of scales[j-4] and of mn at bits 6-7 of scales[j]. */
static void pack_k4(uint8_t *p, const int *sc, const int *mn)
{
    memset(p, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            p[j] |= (uint8_t)sc[j];
            p[j + 4] |= (uint8_t)mn[j];
        } else {
            p[j + 4] = (uint8_t)((sc[j] & 15) | (mn[j] & 15) << 4);
            p[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            p[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

/* value k: sub-block s = k/32, code nibble of qs[32*(s/2) + k%32] (low for
 * even s); Q5_K's fifth bit is bit s of qh[k%32]. */
static void check_q45_k(int five)
{
    uint8_t blk[176] = {0};
    float want[256];
    int sc[8], mn[8];
    const float d = 0.5f, dmin = 0.125f;
    for (int s = 0; s < 8; s++) sc[s] = (s * 19 + 45) % 64, mn[s] = (s * 29 + 60) % 64;
    pack_k4(blk + 4, sc, mn);
    uint8_t *qh = blk + 16, *qs = blk + 16 + (five ? 32 : 0);
    for (int k = 0; k < 256; k++) {
        int s = k / 32, l = k % 32, code = (k * 7 + 2) % (five ? 32 : 16);
        qs[32 * (s / 2) + l] |= (uint8_t)((code & 15) << (s % 2 ? 4 : 0));
        if (code >> 4) qh[l] |= (uint8_t)(1 << s);
        want[k] = d * (float)sc[s] * (float)code - dmin * (float)mn[s];
    }
    put_h(blk, d);
    put_h(blk + 2, dmin);
    expect_block(five ? PTQ_GGML_Q5_K : PTQ_GGML_Q4_K, blk, want, 256);
}

START_TEST(test_q4_k) { check_q45_k(0); }
END_TEST

START_TEST(test_q5_k) { check_q45_k(1); }
END_TEST

/* Q6_K: value k: n = k/128, r = k%128, c = r/32, l = r%32; low 4 bits in
 * ql[64n + l + 32*(c&1)] (low nibble for c < 2), high 2 bits at bits 2c of
 * qh[32n + l]; int8 scale scales[8n + l/16 + 2c]; x = d * sc * (q - 32). */
START_TEST(test_q6_k)
{
    uint8_t blk[210] = {0};
    float want[256];
    const float d = 0.0625f;
    int8_t *sc = (int8_t *)(blk + 192);
    for (int s = 0; s < 16; s++) sc[s] = (int8_t)((s * 37 + 11) % 256 - 128);
    for (int k = 0; k < 256; k++) {
        int n = k / 128, r = k % 128, c = r / 32, l = r % 32, code = (k * 11 + 4) % 64;
        blk[64 * n + l + 32 * (c & 1)] |= (uint8_t)((code & 15) << (c < 2 ? 0 : 4));
        blk[128 + 32 * n + l] |= (uint8_t)((code >> 4) << 2 * c);
        want[k] = d * (float)sc[8 * n + l / 16 + 2 * c] * (float)(code - 32);
    }
    put_h(blk + 208, d);
    expect_block(PTQ_GGML_Q6_K, blk, want, 256);
}
END_TEST

/* ------------------------------------------------------------ a GGUF writer */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void w_bytes(wbuf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void w_u(wbuf *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++) t[i] = (uint8_t)(v >> 8 * i);
    w_bytes(b, t, (size_t)n);
}
static void w_str(wbuf *b, const char *s) { w_u(b, strlen(s), 8), w_bytes(b, s, strlen(s)); }
static void kv_str(wbuf *b, const char *k, const char *v) { w_str(b, k), w_u(b, 8, 4), w_str(b, v); }
static void kv_u32(wbuf *b, const char *k, uint32_t v) { w_str(b, k), w_u(b, 4, 4), w_u(b, v, 4); }
static void kv_f32(wbuf *b, const char *k, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    w_str(b, k), w_u(b, 6, 4), w_u(b, u, 4);
}
static void kv_bool(wbuf *b, const char *k, int v) { w_str(b, k), w_u(b, 7, 4), w_u(b, v, 1); }
static void kv_strs(wbuf *b, const char *k, const char *const *v, int n)
{
    w_str(b, k), w_u(b, 9, 4), w_u(b, 8, 4), w_u(b, (uint64_t)n, 8);
    for (int i = 0; i < n; i++) w_str(b, v[i]);
}
static void kv_i32s(wbuf *b, const char *k, const int *v, int n)
{
    w_str(b, k), w_u(b, 9, 4), w_u(b, 5, 4), w_u(b, (uint64_t)n, 8);
    for (int i = 0; i < n; i++) w_u(b, (uint64_t)(uint32_t)v[i], 4);
}

/* A tiny llama: D 16, 1 layer, 2 heads / 1 kv head (hd 8), F 24, vocab 8
 * byte-level tokens; every tensor F32. */
#define TD 16
#define TF 24
#define TV 8
#define THD 8
typedef struct {
    const char *name;
    int ndim;
    uint64_t d0, d1;
} tinfo;
static const tinfo tiny_t[] = {
    {"token_embd.weight", 2, TD, TV},       {"output_norm.weight", 1, TD, 1},
    {"blk.0.attn_norm.weight", 1, TD, 1},   {"blk.0.ffn_norm.weight", 1, TD, 1},
    {"blk.0.attn_q.weight", 2, TD, 2 * THD}, {"blk.0.attn_k.weight", 2, TD, THD},
    {"blk.0.attn_v.weight", 2, TD, THD},    {"blk.0.attn_output.weight", 2, 2 * THD, TD},
    {"blk.0.ffn_gate.weight", 2, TD, TF},   {"blk.0.ffn_up.weight", 2, TD, TF},
    {"blk.0.ffn_down.weight", 2, TF, TD},
    /* qwen2 only */
    {"blk.0.attn_q.bias", 1, 2 * THD, 1}, {"blk.0.attn_k.bias", 1, THD, 1},
    {"blk.0.attn_v.bias", 1, THD, 1}};
#define NT_ALL ((int)(sizeof tiny_t / sizeof *tiny_t))
#define NT (NT_ALL - 3)

typedef struct {
    const char *arch;      /* general.architecture */
    const char *pre;       /* tokenizer.ggml.pre */
    int version;
    int skip_tensor;       /* index of a tensor to leave out, -1 none */
    uint32_t type0;        /* ggml type of tensor 0 */
    uint64_t d0_override;  /* tensor 0's dims[0] when non-zero */
    uint64_t off_delta[NT_ALL]; /* added to a tensor's offset */
    uint64_t n_tensors_override, n_kv_override;
} tiny_opts;

static void tiny_defaults(tiny_opts *o)
{
    memset(o, 0, sizeof *o);
    o->arch = "llama";
    o->pre = "smollm";
    o->version = 3;
    o->skip_tensor = -1;
    o->type0 = 0;
}

static float tiny_value(int t, uint64_t i) { return (float)((int)((i * 7 + (uint64_t)t * 13) % 17) - 8) / 16.0f; }

/* The whole file; *size its length. */
static uint8_t *tiny_gguf(const tiny_opts *o, size_t *size)
{
    static const char *const toks[TV] = {"<|endoftext|>", "a", "b", "ab", "\xc4\xa0", "c", "\xc4\xa0" "a", "1"};
    static const int types[TV] = {3, 1, 1, 1, 1, 1, 1, 1};
    static const char *const merges[2] = {"a b", "\xc4\xa0 a"};
    wbuf b = {0};
    int qwen = !strcmp(o->arch, "qwen2"), all = qwen ? NT_ALL : NT;
    int nt = o->skip_tensor >= 0 ? all - 1 : all;
    w_bytes(&b, "GGUF", 4);
    w_u(&b, (uint64_t)o->version, 4);
    w_u(&b, o->n_tensors_override ? o->n_tensors_override : (uint64_t)nt, 8);
    w_u(&b, o->n_kv_override ? o->n_kv_override : 16, 8);
    kv_str(&b, "general.architecture", o->arch);
    char k[96];
#define AK(s) (snprintf(k, sizeof k, "%s.%s", o->arch, s), k)
    kv_u32(&b, AK("block_count"), 1);
    kv_u32(&b, AK("context_length"), 64);
    kv_u32(&b, AK("embedding_length"), TD);
    kv_u32(&b, AK("feed_forward_length"), TF);
    kv_u32(&b, AK("attention.head_count"), 2);
    kv_u32(&b, AK("attention.head_count_kv"), 1);
    kv_f32(&b, AK("rope.freq_base"), 10000.0f);
    kv_f32(&b, AK("attention.layer_norm_rms_epsilon"), 1e-5f);
#undef AK
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", o->pre);
    kv_strs(&b, "tokenizer.ggml.tokens", toks, TV);
    kv_i32s(&b, "tokenizer.ggml.token_type", types, TV);
    kv_strs(&b, "tokenizer.ggml.merges", merges, 2);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 0);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", 0);
    uint64_t off = 0;
    for (int t = 0; t < all; t++) {
        if (t == o->skip_tensor) continue;
        w_str(&b, tiny_t[t].name);
        w_u(&b, (uint64_t)tiny_t[t].ndim, 4);
        w_u(&b, t == 0 && o->d0_override ? o->d0_override : tiny_t[t].d0, 8);
        if (tiny_t[t].ndim == 2) w_u(&b, tiny_t[t].d1, 8);
        w_u(&b, t == 0 ? o->type0 : 0, 4);
        w_u(&b, off + o->off_delta[t], 8);
        off += (tiny_t[t].d0 * tiny_t[t].d1 * 4 + 31) / 32 * 32;
    }
    while (b.n % 32) w_u(&b, 0, 1);
    for (int t = 0; t < all; t++) {
        if (t == o->skip_tensor) continue;
        uint64_t n = tiny_t[t].d0 * tiny_t[t].d1;
        for (uint64_t i = 0; i < n; i++) {
            float f = tiny_value(t, i);
            uint32_t u;
            memcpy(&u, &f, 4);
            w_u(&b, u, 4);
        }
        while (b.n % 32) w_u(&b, 0, 1);
    }
    *size = b.n;
    return b.p;
}

static char *write_tmp(const uint8_t *d, size_t n, char **dir)
{
    *dir = tu_tmpdir();
    char *p = tu_fmt("%s/m.gguf", *dir);
    ck_assert(tu_write_file(p, d, n) == 0);
    return p;
}

/* Parse d[0..n) and expect status with needle in the message. */
static void expect_parse_fail(const uint8_t *d, size_t n, const char *needle)
{
    ptq_gguf g;
    ptq_err e = {0};
    int rc = ptq_gguf_parse(&g, d, n, "bad.gguf", &e);
    ptq_gguf_close(&g);
    ck_assert_msg(rc == PTQ_EFORMAT, "status %d (%s), want PTQ_EFORMAT for '%s'", rc, e.msg, needle);
    ck_assert_msg(strstr(e.msg, needle) && strstr(e.msg, "bad.gguf"), "message '%s' lacks '%s'",
                  e.msg, needle);
}

/* The GGUF of o must fail to parse with needle. */
static void expect_gguf_fail(const tiny_opts *o, const char *needle)
{
    size_t n;
    uint8_t *d = tiny_gguf(o, &n);
    expect_parse_fail(d, n, needle);
    free(d);
}

/* Open as a checkpoint and expect PTQ_EFORMAT with needle. */
static void expect_open_fail(const tiny_opts *o, const char *needle)
{
    size_t n;
    uint8_t *d = tiny_gguf(o, &n);
    char *dir, *p = write_tmp(d, n, &dir);
    ptq_checkpoint ck;
    ptq_err e = {0};
    int rc = ptq_ckpt_open(&ck, p, &e);
    ck_assert_msg(rc == PTQ_EFORMAT, "status %d (%s), want PTQ_EFORMAT for '%s'", rc, e.msg, needle);
    ck_assert_msg(strstr(e.msg, needle) && strstr(e.msg, p), "message '%s' lacks '%s'", e.msg, needle);
    tu_rmrf(dir);
    free(dir);
    free(p);
    free(d);
}

START_TEST(test_tiny_ok)
{
    tiny_opts o;
    tiny_defaults(&o);
    size_t n;
    uint8_t *d = tiny_gguf(&o, &n);
    char *dir, *p = write_tmp(d, n, &dir);
    ptq_checkpoint ck;
    ptq_err e = {0};
    ck_assert_msg(ptq_ckpt_open(&ck, p, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(ck.cfg.hidden, TD);
    ck_assert_int_eq(ck.cfg.n_kv_heads, 1);
    ck_assert_int_eq(ck.cfg.head_dim, THD);
    ck_assert_int_eq(ck.cfg.vocab, TV);
    ck_assert_int_eq(ck.cfg.tie_embeddings, 1);
    ck_assert(ck.cfg.rms_eps == 1e-5f);
    /* tokenizer: "ab a1" -> ab, Ġa, 1 (digits split, merges a b and Ġ a) */
    int32_t *ids;
    size_t nid;
    ck_assert_msg(ptq_tok_encode(ck.tok, "ab a1", 5, 0, &ids, &nid, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(nid, 3);
    ck_assert_int_eq(ids[0], 3);
    ck_assert_int_eq(ids[1], 6);
    ck_assert_int_eq(ids[2], 7);
    free(ids);
    /* q and k rows back in HF order: llama.cpp row h*hd + 2r + i holds HF row
     * h*hd + i*hd/2 + r (convert_hf_to_gguf.py permute) */
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, &ck.cfg, &e), 0);
    ck_assert_int_eq(w.layer(w.ctx, 0, &lw, &e), 0);
    static const int tix[2] = {4, 5}, rows[2] = {2 * THD, THD};
    for (int m = 0; m < 2; m++)
        for (int g = 0; g < rows[m]; g++) {
            int h = g / THD, j = g % THD, hf = h * THD + (j % 2) * (THD / 2) + j / 2;
            for (int c = 0; c < TD; c++)
                ck_assert(lw.w[m][hf * TD + c] == tiny_value(tix[m], (uint64_t)g * TD + (uint64_t)c));
        }
    for (uint64_t i = 0; i < (uint64_t)THD * TD; i++) /* v is not permuted */
        ck_assert(lw.w[PTQ_V][i] == tiny_value(6, i));
    ptq_layer_w_free(&lw);
    ptq_ckpt_close(&ck);
    tu_rmrf(dir);
    free(dir);
    free(p);
    free(d);
}
END_TEST

/* A .gguf is a model for compile and eval (--reference too): the tiny llama
 * at 8 bits per-channel RTN stays close to its source. */
START_TEST(test_tiny_compile)
{
    tiny_opts o;
    tiny_defaults(&o);
    size_t n;
    uint8_t *d = tiny_gguf(&o, &n);
    char *dir, *p = write_tmp(d, n, &dir);
    char *txt = tu_fmt("%s/t.txt", dir), *out = tu_fmt("%s/m.ptq", dir);
    char text[1200] = "";
    for (int i = 0; i < 200; i++) strcat(text, i % 3 ? "ab " : "a1 ");
    ck_assert(tu_write_file(txt, text, strlen(text)) == 0);
    tu_compile_ok(p, out, txt, "--method rtn --bits 8 --group 0 --nsamples 2 --seqlen 16", 1);
    char *args = tu_fmt("eval '%s' --text '%s' --ctx 16 --reference '%s'", out, txt, p);
    cJSON *j = tu_eval_json(args);
    double kl = tu_json_num(j, "kl_mean");
    ck_assert_msg(kl >= 0 && kl < 1e-3, "KL(gguf || 8-bit bundle) %g", kl);
    cJSON_Delete(j);
    free(args);
    tu_rmrf(dir);
    free(dir);
    free(p);
    free(txt);
    free(out);
    free(d);
}
END_TEST

/* qwen2: q/k/v biases read, rows not permuted (llama.cpp's qwen2 uses NEOX
 * RoPE, the HF order), the qwen2 pre-tokenizer. */
START_TEST(test_tiny_qwen2)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.arch = "qwen2";
    o.pre = "qwen2";
    size_t n;
    uint8_t *d = tiny_gguf(&o, &n);
    char *dir, *p = write_tmp(d, n, &dir);
    ptq_checkpoint ck;
    ptq_err e = {0};
    ck_assert_msg(ptq_ckpt_open(&ck, p, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_str_eq(ck.cfg.model_type, "qwen2");
    ck_assert(ck.cfg.qkv_bias);
    int32_t *ids;
    size_t nid;
    ck_assert_msg(ptq_tok_encode(ck.tok, "ab a1", 5, 0, &ids, &nid, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(nid, 3); /* ab, Ġa, 1 */
    ck_assert_int_eq(ids[1], 6);
    free(ids);
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_layer_w lw;
    ck_assert_int_eq(ptq_layer_w_alloc(&lw, &ck.cfg, &e), 0);
    ck_assert_int_eq(w.layer(w.ctx, 0, &lw, &e), 0);
    for (uint64_t i = 0; i < (uint64_t)2 * THD * TD; i++) ck_assert(lw.w[PTQ_Q][i] == tiny_value(4, i));
    for (int k = 0; k < 3; k++)
        for (uint64_t i = 0; i < tiny_t[NT + k].d0; i++)
            ck_assert(lw.bias[k][i] == tiny_value(NT + k, i));
    ptq_layer_w_free(&lw);
    ptq_ckpt_close(&ck);
    tu_rmrf(dir);
    free(dir);
    free(p);
    free(d);
}
END_TEST

START_TEST(test_bad_truncated)
{
    tiny_opts o;
    tiny_defaults(&o);
    size_t n;
    uint8_t *d = tiny_gguf(&o, &n);
    expect_parse_fail(d, 10, "truncated");
    expect_parse_fail(d, 200, "past the end");
    expect_parse_fail(d, n - 100, "runs past the end of the file");
    free(d);
}
END_TEST

START_TEST(test_bad_magic)
{
    tiny_opts o;
    tiny_defaults(&o);
    size_t n;
    uint8_t *d = tiny_gguf(&o, &n);
    d[0] = 'X';
    expect_parse_fail(d, n, "bad magic");
    free(d);
}
END_TEST

START_TEST(test_bad_version)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.version = 1;
    expect_gguf_fail(&o, "unsupported GGUF version 1");
    o.version = 4;
    expect_gguf_fail(&o, "unsupported GGUF version 4");
}
END_TEST

START_TEST(test_bad_counts)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.n_tensors_override = 1ull << 40;
    expect_gguf_fail(&o, "tensor count 1099511627776 is past the end");
    tiny_defaults(&o);
    o.n_kv_override = 1ull << 60;
    expect_gguf_fail(&o, "metadata count");
    /* a string length past the end: the first key's length field */
    tiny_defaults(&o);
    size_t n;
    uint8_t *d = tiny_gguf(&o, &n);
    for (int i = 0; i < 8; i++) d[24 + i] = 0x7f;
    expect_parse_fail(d, n, "string length");
    free(d);
}
END_TEST

START_TEST(test_bad_layout)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.off_delta[3] = 4; /* not a multiple of 32 */
    expect_gguf_fail(&o, "is not a multiple of the alignment 32");
    tiny_defaults(&o);
    o.off_delta[3] = (uint64_t)-(int64_t)64; /* back onto tensor 2 */
    expect_gguf_fail(&o, "overlap");
    tiny_defaults(&o);
    o.off_delta[10] = 1 << 20;
    expect_gguf_fail(&o, "runs past the end of the file");
}
END_TEST

START_TEST(test_bad_type)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.type0 = 77;
    expect_gguf_fail(&o, "unknown ggml type 77");
    o.type0 = 16;
    expect_gguf_fail(&o, "type IQ2_XXS, which ptqc does not read");
}
END_TEST

START_TEST(test_bad_dims)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.d0_override = 1ull << 62; /* times 8 rows overflows */
    expect_gguf_fail(&o, "overflows");
    o.d0_override = 0;
    o.type0 = PTQ_GGML_Q8_0; /* 16 is not a multiple of 32 */
    expect_gguf_fail(&o, "not a multiple of the Q8_0 block of 32");
}
END_TEST

/* GGUFs that parse but do not open as a checkpoint */
START_TEST(test_bad_open)
{
    tiny_opts o;
    tiny_defaults(&o);
    o.skip_tensor = 9;
    expect_open_fail(&o, "tensor blk.0.ffn_up.weight is missing");
    tiny_defaults(&o);
    o.arch = "mamba";
    expect_open_fail(&o, "general.architecture 'mamba' is not supported");
    tiny_defaults(&o);
    o.pre = "deepseek-coder";
    expect_open_fail(&o, "tokenizer.ggml.pre 'deepseek-coder' is not supported");
}
END_TEST

/* ------------------------------------------------------------ SmolLM2 */

static cJSON *read_json_file(const char *rel)
{
    char *p = tu_shared(rel);
    size_t n;
    char *s = tu_read_file(p, &n);
    ck_assert_msg(s != NULL, "cannot read %s", p);
    cJSON *j = cJSON_ParseWithLength(s, n);
    ck_assert_ptr_nonnull(j);
    free(s);
    free(p);
    return j;
}

static void open_smol(ptq_checkpoint *ck)
{
    char *p = tu_shared(SMOL);
    ptq_err e = {0};
    ck_assert_msg(ptq_ckpt_open(ck, p, &e) == PTQ_OK, "%s", e.msg);
    free(p);
}

START_TEST(test_smol_config)
{
    ptq_checkpoint ck;
    open_smol(&ck);
    const ptq_config *c = &ck.cfg;
    ck_assert_str_eq(c->model_type, "llama");
    ck_assert_int_eq(c->hidden, 576);
    ck_assert_int_eq(c->intermediate, 1536);
    ck_assert_int_eq(c->n_layers, 30);
    ck_assert_int_eq(c->n_heads, 9);
    ck_assert_int_eq(c->n_kv_heads, 3);
    ck_assert_int_eq(c->head_dim, 64);
    ck_assert_int_eq(c->vocab, 49152);
    ck_assert_int_eq(c->max_pos, 8192);
    ck_assert(c->rope_theta == 100000.0f);
    ck_assert(c->tie_embeddings);
    ck_assert_int_eq(ptq_tok_bos(ck.tok), 1);
    ck_assert_int_eq(ptq_tok_eos(ck.tok), 2);
    ck_assert_int_eq(ptq_tok_add_bos(ck.tok), 0);
    ck_assert_int_eq(ptq_tok_n_merges(ck.tok), 48900);
    ck_assert_int_eq(ptq_tok_n_added(ck.tok), 17);
    ptq_ckpt_close(&ck);
}
END_TEST

START_TEST(test_smol_tokens)
{
    ptq_checkpoint ck;
    open_smol(&ck);
    ck_assert_int_eq(tu_tok_vectors(ck.tok, "models/smollm2-135m/golden/tokens.jsonl", 1), 52);
    ptq_ckpt_close(&ck);
}
END_TEST

START_TEST(test_smol_logits)
{
    ptq_checkpoint ck;
    open_smol(&ck);
    cJSON *g = read_json_file("models/smollm2-135m/golden/golden.json");
    const cJSON *ids_j = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(g, "gguf-f32"), "logits"), "ids");
    int T = cJSON_GetArraySize(ids_j), V = ck.cfg.vocab;
    ck_assert_int_eq(T, 32);
    int32_t ids[32];
    for (int i = 0; i < T; i++) ids[i] = cJSON_GetArrayItem(ids_j, i)->valueint;
    char *p = tu_shared("models/smollm2-135m/golden/logits-gguf-f32.f32");
    size_t n;
    float *want = (float *)tu_read_file(p, &n);
    ck_assert_uint_eq(n, (size_t)T * V * 4);
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_fwd *f;
    ptq_err e = {0};
    ck_assert_msg(ptq_fwd_create(&f, &ck.cfg, T, T, &e) == 0, "%s", e.msg);
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    ck_assert_msg(ptq_forward(f, &w, ids, 1, T, lg, &e) == 0, "%s", e.msg);
    double md = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) md = fmax(md, fabs((double)lg[i] - want[i]));
    fprintf(stderr, "smollm2 gguf: logits max |diff| vs transformers %.3g\n", md);
    ck_assert_msg(md < 1e-3, "max |logit diff| %g >= 1e-3", md);
    ptq_fwd_free(f);
    free(lg);
    free(want);
    free(p);
    cJSON_Delete(g);
    ptq_ckpt_close(&ck);
}
END_TEST

/* The ids of the whole text (checked against wiki.test.100k.ids.json) and
 * ptqc-ppl-v1 at ctx 512 on the first PTQC_GGUF_PPL_WINDOWS windows (default
 * 4, ~20 s; 48 = the whole text, ~2.5 min on 2 cores) against the sum of the
 * golden per-window NLL. */
START_TEST(test_smol_ppl)
{
    ptq_checkpoint ck;
    open_smol(&ck);
    char *tp = tu_shared("text/wikitext-2-raw/wiki.test.100k.raw");
    size_t tn;
    char *text = tu_read_file(tp, &tn);
    ck_assert_ptr_nonnull(text);
    int32_t *ids;
    size_t nid;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_encode(ck.tok, text, tn, 0, &ids, &nid, &e) == 0, "%s", e.msg);
    cJSON *gi = read_json_file("models/smollm2-135m/golden/wiki.test.100k.ids.json");
    const cJSON *wi = cJSON_GetObjectItem(gi, "wiki_ids");
    ck_assert_int_eq((int)nid + 1, cJSON_GetArraySize(wi));
    int32_t *all = malloc((nid + 1) * sizeof *all);
    all[0] = 1;
    memcpy(all + 1, ids, nid * sizeof *ids);
    for (size_t i = 0; i <= nid; i++)
        ck_assert_msg(all[i] == cJSON_GetArrayItem(wi, (int)i)->valueint, "id %zu differs", i);
    cJSON *g = read_json_file("models/smollm2-135m/golden/golden.json");
    const cJSON *pj = cJSON_GetObjectItem(cJSON_GetObjectItem(g, "gguf-f32"), "ppl_wiki100k_ctx512");
    const cJSON *wn = cJSON_GetObjectItem(pj, "window_nll");
    const char *env = getenv("PTQC_GGUF_PPL_WINDOWS");
    int W = env ? atoi(env) : 4;
    if (W < 1 || W > cJSON_GetArraySize(wn)) W = cJSON_GetArraySize(wn);
    double want = 0;
    for (int i = 0; i < W; i++) want += cJSON_GetArrayItem(wn, i)->valuedouble;
    double want_ppl = exp(want / (W * 511.0));
    ptq_weights w;
    ptq_ckpt_weights(&ck, &w);
    ptq_eval_result r;
    ck_assert_msg(ptq_eval_ppl(&w, NULL, all, (size_t)W * 512, 512, 0, 2, &r, NULL, NULL, &e) == 0,
                  "%s", e.msg);
    ck_assert_int_eq(r.windows, W);
    double rel = fabs(r.ppl / want_ppl - 1);
    fprintf(stderr, "smollm2 gguf: ppl ctx 512, %d windows: %.6f, transformers %.6f (rel %.2g)\n",
            W, r.ppl, want_ppl, rel);
    ck_assert_msg(rel < 5e-4, "ppl %.6f vs golden %.6f", r.ppl, want_ppl);
    if (W == cJSON_GetArraySize(wn))
        ck_assert(fabs(r.ppl / cJSON_GetObjectItem(pj, "ppl")->valuedouble - 1) < 5e-4);
    ptq_eval_result_free(&r);
    cJSON_Delete(g);
    cJSON_Delete(gi);
    free(all);
    free(ids);
    free(text);
    free(tp);
    ptq_ckpt_close(&ck);
}
END_TEST

/* tokenizer.ggml.model "llama": the Llama 2 SentencePiece vocabulary of
 * ../shared/tokenizers/llama-spm written as GGUF metadata the way llama.cpp's
 * converter does (pieces; types UNKNOWN, CONTROL, BYTE, NORMAL; scores:
 * the shared data has no SentencePiece scores, so a piece made by merge r of
 * tokenizer.json scores -r and every other piece below all of them, which
 * gives the scores' order for the merges that matter), then the merges the
 * reader derives must be the 61249 of tokenizer.json and the 46 Hugging Face
 * vectors of tests.jsonl must come out, encode and decode. */
static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

START_TEST(test_spm_from_gguf)
{
    cJSON *tj = read_json_file("tokenizers/llama-spm/tokenizer.json");
    const cJSON *vocab = cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "vocab");
    int V = cJSON_GetArraySize(vocab);
    ck_assert_int_eq(V, 32000);
    const char **pieces = calloc((size_t)V, sizeof *pieces);
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) pieces[(int)it->valuedouble] = it->string;
    wbuf b = {0};
    w_bytes(&b, "GGUF", 4);
    w_u(&b, 3, 4);
    w_u(&b, 0, 8);
    w_u(&b, 8, 8);
    kv_str(&b, "tokenizer.ggml.model", "llama");
    kv_strs(&b, "tokenizer.ggml.tokens", pieces, V);
    w_str(&b, "tokenizer.ggml.scores"), w_u(&b, 9, 4), w_u(&b, 6, 4), w_u(&b, (uint64_t)V, 8);
    int *types = malloc((size_t)V * sizeof *types);
    float *score = malloc((size_t)V * sizeof *score);
    const char **sorted = malloc((size_t)V * sizeof *sorted);
    int *sorted_id = malloc((size_t)V * sizeof *sorted_id);
    memcpy(sorted, pieces, (size_t)V * sizeof *sorted);
    qsort(sorted, (size_t)V, sizeof *sorted, cmp_cstr);
    cJSON_ArrayForEach(it, vocab) {
        const char *key = it->string, **hit = bsearch(&key, sorted, (size_t)V, sizeof *sorted, cmp_cstr);
        sorted_id[hit - sorted] = (int)it->valuedouble;
    }
    for (int i = 0; i < V; i++) score[i] = -1e6f - (float)i;
    const cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "merges");
    int r = 0;
    cJSON_ArrayForEach(it, merges) {
        char buf[256];
        const char *sp = strchr(it->valuestring, ' ');
        ck_assert(sp && strlen(it->valuestring) < sizeof buf);
        snprintf(buf, sizeof buf, "%.*s%s", (int)(sp - it->valuestring), it->valuestring, sp + 1);
        const char *key = buf, **hit = bsearch(&key, sorted, (size_t)V, sizeof *sorted, cmp_cstr);
        ck_assert_ptr_nonnull(hit);
        int id = (int)(hit - sorted);
        id = sorted_id[id];
        if (score[id] < -(float)r) score[id] = -(float)r;
        r++;
    }
    for (int i = 0; i < V; i++) {
        float f = i < 259 ? 0.0f : score[i];
        uint32_t u;
        memcpy(&u, &f, 4);
        w_u(&b, u, 4);
        types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
    }
    kv_i32s(&b, "tokenizer.ggml.token_type", types, V);
    kv_u32(&b, "tokenizer.ggml.unknown_token_id", 0);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", 2);
    kv_bool(&b, "tokenizer.ggml.add_bos_token", 1);
    ptq_gguf g;
    ptq_err e = {0};
    ck_assert_msg(ptq_gguf_parse(&g, b.p, b.n, "spm.gguf", &e) == PTQ_OK, "%s", e.msg);
    ptq_tokenizer *t;
    ck_assert_msg(ptq_gguf_tokenizer(&g, &t, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(ptq_tok_bos(t), 1);
    ck_assert_int_eq(ptq_tok_add_bos(t), 1);
    ck_assert_int_eq(ptq_tok_n_merges(t), 61249);
    ck_assert_int_eq(tu_tok_vectors(t, "tokenizers/llama-spm/tests.jsonl", 1), 46);
    ptq_tok_free(t);
    ptq_gguf_close(&g);
    free(b.p);
    free(types);
    free(score);
    free(sorted);
    free(sorted_id);
    free(pieces);
    cJSON_Delete(tj);
}
END_TEST

START_TEST(test_smol_cli)
{
    char *p = tu_shared(SMOL), *out = NULL, *err = NULL;
    char *args = tu_fmt("inspect '%s'", p);
    int rc = tu_ptqc(args, &out, &err);
    ck_assert_msg(rc == 0, "ptqc %s: %d %s", args, rc, err ? err : "");
    ck_assert_ptr_nonnull(strstr(out, "hidden_size 576"));
    ck_assert_ptr_nonnull(strstr(out, "merges 48900"));
    free(args);
    free(out);
    free(err);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("ggml blocks");
    tcase_add_test(tc, test_block_sizes);
    tcase_add_test(tc, test_plain);
    tcase_add_test(tc, test_q32_types);
    tcase_add_test(tc, test_q2_k);
    tcase_add_test(tc, test_q3_k);
    tcase_add_test(tc, test_q4_k);
    tcase_add_test(tc, test_q5_k);
    tcase_add_test(tc, test_q6_k);
    suite_add_tcase(s, tc);
    tc = tcase_create("reader");
    tcase_add_test(tc, test_tiny_ok);
    tcase_add_test(tc, test_tiny_compile);
    tcase_add_test(tc, test_tiny_qwen2);
    tcase_add_test(tc, test_bad_truncated);
    tcase_add_test(tc, test_bad_magic);
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_bad_counts);
    tcase_add_test(tc, test_bad_layout);
    tcase_add_test(tc, test_bad_type);
    tcase_add_test(tc, test_bad_dims);
    tcase_add_test(tc, test_bad_open);
    tcase_add_test(tc, test_spm_from_gguf);
    suite_add_tcase(s, tc);
    tc = tcase_create("smollm2");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_smol_config);
    tcase_add_test(tc, test_smol_tokens);
    tcase_add_test(tc, test_smol_logits);
    tcase_add_test(tc, test_smol_ppl);
    tcase_add_test(tc, test_smol_cli);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
