/* export_gguf.c - the gguf row of the exporter table (export.h): one
 * llama.cpp GGUF v3 file (formats/gguf_write.h), architecture llama (also
 * for mistral) or qwen2, with the metadata llama.cpp reads and the
 * tokenizer (export_gguf_tok.c).
 *
 * Tensors (ggml dims: dims[0] = the row length):
 *   model.embed_tokens.weight        token_embd.weight      [hidden, vocab]
 *   model.norm.weight                output_norm.weight     F32
 *   lm_head.weight (untied only)     output.weight
 *   model.layers.N.input_layernorm / post_attention_layernorm
 *                                    blk.N.attn_norm / ffn_norm .weight  F32
 *   self_attn.{q,k,v,o}_proj         blk.N.attn_{q,k,v,output}
 *   mlp.{gate,up,down}_proj          blk.N.ffn_{gate,up,down}
 *   self_attn.{q,k,v}_proj.bias      blk.N.attn_{q,k,v}.bias  F32
 * llama's attn_q / attn_k rows go into llama.cpp's interleaved RoPE order:
 * GGUF row h*hd + 2r + i is Hugging Face row h*hd + i*hd/2 + r.
 *
 * An int linear is repacked, never re-rounded, into the smallest ggml block
 * type whose formula gives the bundle's values bit for bit (w = s (q - z),
 * s fp16, groups along the row): every block of 32 columns must lie in one
 * group (group a multiple of 32, an act-order g_idx that keeps blocks
 * whole), then Q4_0 (d = s, code q - z + 8 when every q - z is in -8..7),
 * Q4_1 (d = s, m = -s z when every code is below 16 and every -s z is an
 * fp16), Q5_0, Q5_1 (likewise with 5 bits), Q8_0 (q - z in -128..127).
 * A linear whose row length is not a multiple of 32 (no block type holds it;
 * llama.cpp's own converter does the same) is stored dequantized, exactly:
 * F16 when every value is an fp16, else F32.  Dense tensors keep their
 * dtype (F16, BF16, F32); vectors are F32.
 * Refused (PTQ_EDATA naming the tensor), unless --allow-requantize: blocks
 * that straddle groups (group 16, act-order), 8-bit asymmetric codes beyond
 * Q8_0, W8A8, FP8, E8P, AQLM.  Requantized: int of 4 bits or fewer to Q4_1,
 * 5..8 bits, W8A8 and FP8 to Q8_0 (ggml's reference rounding), anything
 * else and rows not a multiple of 32 to F16; the added error goes to the log.
 * Never exported: int8 KV-cache scales and tensors with no GGUF name.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/arch.h"
#include "formats/config.h"
#include "formats/export.h"
#include "formats/export_gguf.h"
#include "lib/base/half.h"
#include "lib/qfmt/ggml.h"
#include "lib/qfmt/pack.h"
#include "lib/qfmt/qfmt.h"

int ptq_ex_gguf_check(const ptq_bundle *b, const ptq_export_opts *o, ptq_err *e);
int ptq_ex_gguf_write(const ptq_bundle *b, FILE *f, const char *path, const ptq_export_opts *o,
                      ptq_err *e);

enum { P_BLOCK = 1, P_DENSE, P_DEQ, P_REQ };

typedef struct gmap {
    char name[96];
    int heads; /* rows to permute in heads of head_dim (0: none) */
    int vec;   /* a vector: F32 */
    int lin;   /* one of the 7 linears */
} gmap;

typedef struct plan {
    uint32_t type; /* the ggml type written */
    int how;       /* P_* */
    char why[256]; /* P_DEQ / P_REQ: the reason; a refusal's reason */
} plan;

typedef struct gx {
    const ptq_bundle *b;
    const ptq_export_opts *o;
    ptq_config cfg;
    const char *arch;
    ptq_gguf_w *w;
    int writing;
    int ntype[PTQ_GGML_NTYPES]; /* linears per written type */
} gx;

/* ---------------------------------------------------------------- names */

static int map_name(const gx *c, const char *hf, gmap *m)
{
    static const char *const lin[PTQ_NLINEAR] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};
    memset(m, 0, sizeof *m);
    if (!strcmp(hf, "model.embed_tokens.weight")) return snprintf(m->name, sizeof m->name, "token_embd.weight"), 1;
    if (!strcmp(hf, "lm_head.weight")) return snprintf(m->name, sizeof m->name, "output.weight"), 1;
    if (!strcmp(hf, "model.norm.weight")) {
        m->vec = 1;
        return snprintf(m->name, sizeof m->name, "output_norm.weight"), 1;
    }
    int l, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &l, &n) != 1 || !n || l < 0 || l >= c->cfg.n_layers) return 0;
    const char *rest = hf + n;
    m->vec = 1;
    if (!strcmp(rest, "input_layernorm.weight"))
        return snprintf(m->name, sizeof m->name, "blk.%d.attn_norm.weight", l), 1;
    if (!strcmp(rest, "post_attention_layernorm.weight"))
        return snprintf(m->name, sizeof m->name, "blk.%d.ffn_norm.weight", l), 1;
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        size_t k = strlen(ptq_linear_name(i));
        if (strncmp(rest, ptq_linear_name(i), k)) continue;
        if (!strcmp(rest + k, ".bias") && i <= PTQ_V)
            return snprintf(m->name, sizeof m->name, "blk.%d.%s.bias", l, lin[i]), 1;
        if (strcmp(rest + k, ".weight")) return 0;
        m->vec = 0;
        m->lin = 1;
        if (!strcmp(c->arch, "llama") && i == PTQ_Q) m->heads = c->cfg.n_heads;
        if (!strcmp(c->arch, "llama") && i == PTQ_K) m->heads = c->cfg.n_kv_heads;
        return snprintf(m->name, sizeof m->name, "blk.%d.%s.weight", l, lin[i]), 1;
    }
    return 0;
}

/* The bundle row stored as GGUF row g (llama.cpp's RoPE order for q/k). */
static int src_row(const gmap *m, int hd, int g)
{
    if (!m->heads) return g;
    int h = g / hd, j = g % hd;
    return h * hd + (j % 2) * (hd / 2) + j / 2;
}

/* ---------------------------------------------------------------- plans */

static int grp(const ptq_qtensor *q, int k)
{
    return q->g_idx ? q->g_idx[k] : q->group ? k / q->group : 0;
}

static int m_exact(uint16_t s, int z)
{
    float m = -(ptq_f16_to_f32(s) * (float)z);
    return isfinite(m) && ptq_f16_to_f32(ptq_f32_to_f16(m)) == m;
}

/* The block type holding int q exactly, or 0 with why. */
static uint32_t int_block_type(const ptq_qtensor *q, char *why, size_t n)
{
    for (int k = 0; k < q->cols; k++)
        if (grp(q, k) != grp(q, k - k % 32)) {
            int b = k / 32 * 32;
            if (q->g_idx)
                snprintf(why, n, "act-order g_idx: the ggml block of columns %d..%d spans groups "
                         "%d and %d (GGUF has no g_idx)", b, b + 31, grp(q, b), grp(q, k));
            else
                snprintf(why, n, "group %d: the ggml block of columns %d..%d spans two groups "
                         "(ggml blocks are 32 columns with one scale)", q->group, b, b + 31);
            return 0;
        }
    int dmin = 0, dmax = 0, qmax = 0, mex = 1;
    for (int r = 0; r < q->rows; r++) {
        for (int g = 0; g < q->ngroups; g++) {
            size_t i = (size_t)r * (size_t)q->ngroups + (size_t)g;
            mex = mex && m_exact(q->scales[i], q->zeros[i]);
        }
        for (int k = 0; k < q->cols; k++) {
            int c = (int)ptq_ex_code(q, r, k);
            int d = c - (int)q->zeros[(size_t)r * (size_t)q->ngroups + (size_t)grp(q, k)];
            if (d < dmin) dmin = d;
            if (d > dmax) dmax = d;
            if (c > qmax) qmax = c;
        }
    }
    if (dmin >= -8 && dmax <= 7) return PTQ_GGML_Q4_0;
    if (qmax <= 15 && mex) return PTQ_GGML_Q4_1;
    if (dmin >= -16 && dmax <= 15) return PTQ_GGML_Q5_0;
    if (qmax <= 31 && mex) return PTQ_GGML_Q5_1;
    if (dmin >= -128 && dmax <= 127) return PTQ_GGML_Q8_0;
    snprintf(why, n, "%d-bit asymmetric: codes minus zero points reach %d..%d, Q8_0 holds "
             "-128..127", q->bits, dmin, dmax);
    return 0;
}

/* 1 when every value of x [n] is an fp16. */
static int all_f16(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ptq_f16_to_f32(ptq_f32_to_f16(x[i])) != x[i]) return 0;
    return 1;
}

static const char *kind_words(const ptq_qtensor *q)
{
    switch (q->format) {
    case PTQ_QF_W8A8: return "W8A8 (8-bit activations) weights: GGUF has no activation quantization";
    case PTQ_QF_FP8: return "FP8 (E4M3) weights: GGUF has no E4M3 type";
    case PTQ_QF_E8P: return "E8P lattice codes (QuIP#): no ggml type holds them";
    case PTQ_QF_AQLM: return "AQLM codebooks: no ggml type holds them";
    case PTQ_QF_INT_HAD:
        return "int-had (Hadamard-rotated integer) codes: no ggml type holds the rotation";
    default: return "a packed format no ggml type holds";
    }
}

/* The requantization target of q (rows of cols a multiple of 32 or not). */
static uint32_t req_type(const ptq_qtensor *q)
{
    if (q->cols % 32) return PTQ_GGML_F16;
    if (q->format == PTQ_QF_INT) return q->bits <= 4 ? PTQ_GGML_Q4_1 : PTQ_GGML_Q8_0;
    if (q->format == PTQ_QF_W8A8 || q->format == PTQ_QF_FP8) return PTQ_GGML_Q8_0;
    return PTQ_GGML_F16;
}

/* Plan q; PTQ_EDATA naming it when refused.  A P_DEQ plan needs the
 * dequantized values: *deq (malloc'ed, the caller frees) keeps them. */
static int plan_tensor(const gx *c, const char *name, const ptq_qtensor *q, const gmap *m,
                       plan *p, ptq_err *e)
{
    memset(p, 0, sizeof *p);
    if (q->format == PTQ_QF_DENSE) {
        p->how = P_DENSE;
        p->type = m->vec || q->dtype == PTQ_DT_F32 ? PTQ_GGML_F32
                  : q->dtype == PTQ_DT_BF16        ? PTQ_GGML_BF16
                                                   : PTQ_GGML_F16;
        return PTQ_OK;
    }
    if (q->format == PTQ_QF_INT && q->cols % 32 == 0) {
        if ((p->type = int_block_type(q, p->why, sizeof p->why))) {
            p->how = P_BLOCK;
            return PTQ_OK;
        }
    } else if (q->format == PTQ_QF_INT) {
        size_t n = (size_t)q->rows * (size_t)q->cols;
        float *x = malloc(n * sizeof *x);
        if (!x) return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
        int rc = ptq_qtensor_dequant(q, x, e);
        if (rc == PTQ_OK) {
            p->how = P_DEQ;
            p->type = all_f16(x, n) ? PTQ_GGML_F16 : PTQ_GGML_F32;
            snprintf(p->why, sizeof p->why, "rows of %d are not a multiple of ggml's block of 32",
                     q->cols);
        }
        free(x);
        return rc;
    } else {
        snprintf(p->why, sizeof p->why, "%s", kind_words(q));
    }
    if (!c->o->allow_requantize)
        return ptq_fail(e, PTQ_EDATA, "%s: %s; refused (--allow-requantize requantizes it)", name,
                        p->why);
    p->how = P_REQ;
    p->type = req_type(q);
    return PTQ_OK;
}

/* ---------------------------------------------------------------- encoding */

/* The tensor's values as float32 [rows][cols] with rows in GGUF order (*out
 * malloc'ed). */
static int widen(const gx *c, const ptq_qtensor *q, const gmap *m, const char *name, float **out,
                 ptq_err *e)
{
    size_t cols = (size_t)q->cols, n = (size_t)q->rows * cols;
    float *x = malloc(n * sizeof *x), *y = m->heads ? malloc(n * sizeof *y) : NULL;
    *out = NULL;
    if (!x || (m->heads && !y)) {
        free(x), free(y);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    }
    int rc = ptq_qtensor_dequant(q, x, e);
    if (rc || !m->heads) {
        free(y);
        if (rc) free(x);
        else *out = x;
        return rc;
    }
    for (int g = 0; g < q->rows; g++)
        memcpy(y + (size_t)g * cols, x + (size_t)src_row(m, c->cfg.head_dim, g) * cols,
               cols * sizeof *x);
    free(x);
    *out = y;
    return PTQ_OK;
}

/* The codes of int q repacked into blocks of type (a P_BLOCK plan). */
static void enc_blocks(const gx *c, const ptq_qtensor *q, const gmap *m, uint32_t type, uint8_t *dst)
{
    int nv, nb, v[32];
    ptq_ggml_block(type, &nv, &nb);
    int has_m = type == PTQ_GGML_Q4_1 || type == PTQ_GGML_Q5_1;
    int off = type == PTQ_GGML_Q4_0 ? 8 : type == PTQ_GGML_Q5_0 ? 16 : 0;
    for (int g = 0; g < q->rows; g++) {
        int r = src_row(m, c->cfg.head_dim, g);
        for (int k0 = 0; k0 < q->cols; k0 += 32, dst += nb) {
            size_t gi = (size_t)r * (size_t)q->ngroups + (size_t)grp(q, k0);
            uint16_t s = q->scales[gi];
            int z = q->zeros[gi];
            for (int j = 0; j < 32; j++) {
                int code = (int)ptq_ex_code(q, r, k0 + j);
                v[j] = has_m ? code : code - z + off;
            }
            uint16_t mm = has_m ? ptq_f32_to_f16(-(ptq_f16_to_f32(s) * (float)z)) : 0;
            ptq_ggml_pack_block(type, s, mm, v, dst);
        }
    }
}

/* Report the requantization error of x -> the blocks at data. */
static int report_req(const gx *c, const char *name, const gmap *m, const plan *p,
                      const float *x, const void *data, size_t n, ptq_err *e)
{
    int nv, nb;
    ptq_ggml_block(p->type, &nv, &nb);
    float *y = malloc(n * sizeof *y);
    if (!y) return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    ptq_ggml_decode(p->type, data, n / (size_t)nv, y);
    double mx = 0, num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - y[i];
        mx = fmax(mx, fabs(d));
        num += d * d;
        den += (double)x[i] * x[i];
    }
    free(y);
    if (c->o->log)
        fprintf(c->o->log, "ptqc export: %s -> %s requantized to %s (%s): max |error| %.4g, "
                "relative Frobenius error %.4g\n", name, m->name, ptq_ggml_type_name(p->type),
                p->why, mx, den > 0 ? sqrt(num / den) : sqrt(num));
    return PTQ_OK;
}

/* The bytes of q under plan p: *data (owned or not, *own) of *nbytes. */
static int encode(const gx *c, const char *name, const ptq_qtensor *q, const gmap *m,
                  const plan *p, const void **data, uint64_t *nbytes, int *own, ptq_err *e)
{
    size_t n = (size_t)q->rows * (size_t)q->cols;
    int nv, nb;
    ptq_ggml_block(p->type, &nv, &nb);
    *nbytes = (uint64_t)(n / (size_t)nv) * (uint64_t)nb;
    *own = 1;
    if (p->how == P_DENSE && !m->heads && !m->vec) {
        *data = q->data, *own = 0; /* same dtype, same rows: the bundle's bytes */
        return PTQ_OK;
    }
    uint8_t *out = malloc((size_t)*nbytes);
    if (!out) return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", name);
    if (p->how == P_BLOCK) {
        enc_blocks(c, q, m, p->type, out);
        *data = out;
        return PTQ_OK;
    }
    int rc = PTQ_OK;
    if (p->how == P_DENSE && !m->vec) { /* permuted rows, raw bytes */
        size_t rb = (size_t)q->cols * ptq_dtype_size((ptq_dtype)q->dtype);
        for (int g = 0; g < q->rows; g++)
            memcpy(out + (size_t)g * rb,
                   (const uint8_t *)q->data + (size_t)src_row(m, c->cfg.head_dim, g) * rb, rb);
    } else {
        float *x;
        rc = widen(c, q, m, name, &x, e);
        if (x) ptq_ggml_quantize(p->type, x, n, out);
        if (x && p->how == P_REQ) rc = report_req(c, name, m, p, x, out, n, e);
        if (x && p->how == P_DEQ && c->o->log)
            fprintf(c->o->log, "ptqc export: %s -> %s stored as %s, exact (%s)\n", name, m->name,
                    ptq_ggml_type_name(p->type), p->why);
        free(x);
    }
    if (rc) free(out);
    else *data = out;
    return rc;
}

/* ---------------------------------------------------------------- tensors */

static int one_tensor(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    gx *c = ctx;
    gmap m;
    if (ptq_ex_is_kv_scale(name))
        return ptq_fail(e, PTQ_EDATA, "%s: int8 KV-cache scales have no place in GGUF (llama.cpp "
                        "quantizes its KV cache itself); compile without the KV-cache option", name);
    if (!map_name(c, name, &m))
        return ptq_fail(e, PTQ_EDATA, "%s: no GGUF tensor stands for it", name);
    if (m.vec && q->format != PTQ_QF_DENSE)
        return ptq_fail(e, PTQ_EDATA, "%s: a quantized vector; GGUF norms and biases are F32", name);
    if (m.heads && c->cfg.head_dim % 2)
        return ptq_fail(e, PTQ_EDATA, "%s: head_dim %d is odd; the RoPE row order needs pairs",
                        name, c->cfg.head_dim);
    plan p;
    int rc = plan_tensor(c, name, q, &m, &p, e);
    if (rc) return rc;
    if (m.lin) c->ntype[p.type]++;
    if (!c->writing) return PTQ_OK;
    const void *data = NULL;
    uint64_t nbytes = 0, dims[2] = {(uint64_t)q->cols, (uint64_t)q->rows};
    int own = 0;
    if ((rc = encode(c, name, q, &m, &p, &data, &nbytes, &own, e))) return rc;
    return ptq_gguf_w_tensor(c->w, m.name, p.type, m.vec ? 1 : 2, dims, data, nbytes, own, e);
}

/* ---------------------------------------------------------------- metadata */

/* llama_ftype of the most common linear type. */
static uint32_t file_type(const gx *c)
{
    static const struct { uint32_t t, ft; } map[] = {
        {PTQ_GGML_F32, 0}, {PTQ_GGML_F16, 1}, {PTQ_GGML_Q4_0, 2}, {PTQ_GGML_Q4_1, 3},
        {PTQ_GGML_Q8_0, 7}, {PTQ_GGML_Q5_0, 8}, {PTQ_GGML_Q5_1, 9}, {PTQ_GGML_BF16, 32}};
    uint32_t best = 1;
    int most = -1;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (c->ntype[map[i].t] > most) most = c->ntype[map[i].t], best = map[i].ft;
    return best;
}

static int put_arch_u32(gx *c, const char *suffix, int v, ptq_err *e)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", c->arch, suffix);
    return ptq_gguf_w_u32(c->w, k, (uint32_t)v, e);
}

static int put_arch_f32(gx *c, const char *suffix, float v, ptq_err *e)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", c->arch, suffix);
    return ptq_gguf_w_f32(c->w, k, v, e);
}

static int model_meta(gx *c, ptq_err *e)
{
    const ptq_config *f = &c->cfg;
    const char *base = strrchr(c->b->path, '/');
    char k[128];
    int rc;
    if ((rc = ptq_gguf_w_str(c->w, "general.architecture", c->arch, e)) ||
        (rc = ptq_gguf_w_str(c->w, "general.name", base ? base + 1 : c->b->path, e)) ||
        (rc = ptq_gguf_w_u32(c->w, "general.file_type", file_type(c), e)) ||
        (rc = ptq_gguf_w_u32(c->w, "general.quantization_version", 2, e)) ||
        (rc = put_arch_u32(c, "context_length", f->max_pos, e)) ||
        (rc = put_arch_u32(c, "embedding_length", f->hidden, e)) ||
        (rc = put_arch_u32(c, "block_count", f->n_layers, e)) ||
        (rc = put_arch_u32(c, "feed_forward_length", f->intermediate, e)) ||
        (rc = put_arch_u32(c, "attention.head_count", f->n_heads, e)) ||
        (rc = put_arch_u32(c, "attention.head_count_kv", f->n_kv_heads, e)) ||
        (rc = put_arch_u32(c, "attention.key_length", f->head_dim, e)) ||
        (rc = put_arch_u32(c, "attention.value_length", f->head_dim, e)) ||
        (rc = put_arch_f32(c, "attention.layer_norm_rms_epsilon", f->rms_eps, e)) ||
        (rc = put_arch_f32(c, "rope.freq_base", f->rope_theta, e)) ||
        (rc = put_arch_u32(c, "rope.dimension_count", f->head_dim, e)) ||
        (rc = put_arch_u32(c, "vocab_size", f->vocab, e)))
        return rc;
    if (f->rope_scaling == PTQ_ROPE_LINEAR) {
        snprintf(k, sizeof k, "%s.rope.scaling.type", c->arch);
        if ((rc = ptq_gguf_w_str(c->w, k, "linear", e))) return rc;
        rc = put_arch_f32(c, "rope.scaling.factor", f->rope_factor, e);
    }
    return rc ? rc : ptq_ex_gguf_tokenizer(c->b, f->vocab, c->w, e);
}

/* Check (f NULL) or write the whole file. */
static int run(const ptq_bundle *b, const ptq_export_opts *o, FILE *f, const char *path, ptq_err *e)
{
    gx c = {.b = b, .o = o, .writing = f != NULL};
    int rc = ptq_bundle_config(b, &c.cfg, e);
    if (rc) return rc;
    if (!strcmp(c.cfg.model_type, "llama") || !strcmp(c.cfg.model_type, "mistral")) c.arch = "llama";
    else if (!strcmp(c.cfg.model_type, "qwen2")) c.arch = "qwen2";
    else
        return ptq_fail(e, PTQ_EDATA, "%s: model_type %s: ptqc writes GGUF for llama, mistral "
                        "and qwen2", b->path, c.cfg.model_type);
    if (c.cfg.rope_scaling == PTQ_ROPE_LLAMA3)
        return ptq_fail(e, PTQ_EDATA, "%s: llama3 RoPE scaling: llama.cpp takes it from a "
                        "rope_freqs tensor, which ptqc does not write", b->path);
    if (!(c.w = ptq_gguf_w_new())) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    rc = ptq_ex_each(b, one_tensor, &c, e);
    if (rc == PTQ_OK) rc = model_meta(&c, e);
    if (rc == PTQ_OK && f) rc = ptq_gguf_w_write(c.w, f, path, e);
    ptq_gguf_w_free(c.w);
    return rc;
}

int ptq_ex_gguf_check(const ptq_bundle *b, const ptq_export_opts *o, ptq_err *e)
{
    return run(b, o, NULL, NULL, e);
}

int ptq_ex_gguf_write(const ptq_bundle *b, FILE *f, const char *path, const ptq_export_opts *o,
                      ptq_err *e)
{
    return run(b, o, f, path, e);
}
