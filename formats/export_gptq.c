/* export_gptq.c - the gptq row of the exporter table (export.h): the
 * AutoGPTQ / GPTQModel "gptq" v1 checkpoint that transformers (optimum) and
 * vLLM load.  Per quantized linear M (out x in, b bits, groups of G):
 *
 *   M.qweight  int32 [in * b / 32][out]: column o holds the codes of
 *              W[o][0..in) as one little-endian bit stream down the rows:
 *              code k in bits [k*b, k*b + b) (3 bits straddle words)
 *   M.qzeros   int32 [ngroups][out * b / 32]: row g holds (zero - 1) of
 *              each output o, a bit stream along the row (v1's zero - 1)
 *   M.scales   fp16 [ngroups][out]
 *   M.g_idx    int32 [in]: the group of each input column (the bundle's
 *              act-order g_idx, else k / G; per channel: 0)
 *
 *   w[o][k] = scales[g][o] * (q - (stored zero + 1)),  g = g_idx[k]: exact.
 *
 * ngroups = ceil(in / G) (AutoGPTQ's own count), so a shorter last group is
 * held.  quantize_config.json and config.json's quantization_config carry
 * bits, group_size (-1: per channel), sym and desc_act (any g_idx).
 * Refused: bits other than 2, 3, 4, 8; in or out not a multiple of 32; linears
 * with different bits or group (one quantize_config); a zero point of 0
 * (v1 cannot store zero - 1 = -1); kept (dense) linears, W8A8/FP8 tensors and
 * int8 KV-cache scales.
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/export.h"
#include "lib/qfmt/qfmt.h"

int ptq_ex_gptq_check(const ptq_bundle *b, ptq_err *e);
int ptq_ex_gptq_write(const ptq_bundle *b, const char *dir, ptq_err *e);

typedef struct gq {
    int bits, group, sym, desc_act, n; /* of the first linear; n linears seen */
    ptq_ex_tensors *t;
} gq;

static int check_one(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    gq *c = ctx;
    char mod[256];
    int lin = ptq_ex_linear(name, mod, sizeof mod);
    if (q->format == PTQ_QF_DENSE) {
        if (ptq_ex_is_kv_scale(name))
            return ptq_fail(e, PTQ_EDATA, "%s: int8 KV-cache scales have no place in gptq", name);
        if (lin)
            return ptq_fail(e, PTQ_EDATA,
                            "%s: kept unquantized (--skip); a gptq v1 quantize_config cannot "
                            "mark a linear dense",
                            name);
        return PTQ_OK;
    }
    if (q->format != PTQ_QF_INT)
        return ptq_fail(e, PTQ_EDATA, "%s: %s weights: gptq holds integer weights only", name,
                        ptq_ex_kind_words(q));
    if (!lin) return ptq_fail(e, PTQ_EDATA, "%s: a quantized tensor that is not a linear", name);
    if (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8)
        return ptq_fail(e, PTQ_EDATA, "%s: %d-bit; gptq v1 packs 2, 3, 4 or 8 bits", name,
                        q->bits);
    if (q->cols % 32 || q->rows % 32)
        return ptq_fail(e, PTQ_EDATA, "%s: shape %dx%d; gptq packs in and out in words of 32",
                        name, q->rows, q->cols);
    if (c->n && (q->bits != c->bits || q->group != c->group))
        return ptq_fail(e, PTQ_EDATA,
                        "%s: bits %d group %d differ from the first linear's (%d, %d); gptq has "
                        "one quantize_config",
                        name, q->bits, q->group, c->bits, c->group);
    size_t nz = (size_t)q->rows * (size_t)q->ngroups;
    for (size_t i = 0; i < nz; i++)
        if (q->zeros[i] == 0)
            return ptq_fail(e, PTQ_EDATA,
                            "%s: zero point 0 (row %zu, group %zu); gptq v1 stores zero - 1 and "
                            "cannot hold it",
                            name, i / (size_t)q->ngroups, i % (size_t)q->ngroups);
    if (!c->n++) c->bits = q->bits, c->group = q->group, c->sym = 1;
    if (!ptq_ex_is_sym(q)) c->sym = 0;
    if (q->g_idx) c->desc_act = 1;
    return PTQ_OK;
}

int ptq_ex_gptq_check(const ptq_bundle *b, ptq_err *e)
{
    gq c = {0};
    int rc = ptq_ex_each(b, check_one, &c, e);
    if (rc == PTQ_OK && !c.n)
        rc = ptq_fail(e, PTQ_EDATA, "%s: no quantized linear to export", b->path);
    return rc;
}

/* OR code v (< 2^bits) into bit position i * bits of a stream of words
 * base[0], base[stride], base[2 * stride], ... */
static void stream_set(uint32_t *base, size_t stride, int i, int bits, uint32_t v)
{
    size_t bit = (size_t)i * (size_t)bits, w = bit / 32;
    int sh = (int)(bit % 32);
    uint64_t x = (uint64_t)v << sh;
    base[w * stride] |= (uint32_t)x;
    if (sh + bits > 32) base[(w + 1) * stride] |= (uint32_t)(x >> 32);
}

static int add_linear(gq *c, const char *mod, const ptq_qtensor *q, ptq_err *e)
{
    int out = q->rows, in = q->cols, ng = q->ngroups, b = q->bits;
    size_t kw = (size_t)in * b / 32, ow = (size_t)out * b / 32;
    uint32_t *qw = calloc(kw * out, 4), *qz = calloc((size_t)ng * ow, 4);
    uint16_t *sc = malloc((size_t)ng * out * 2);
    int32_t *gi = malloc((size_t)in * 4);
    if (!qw || !qz || !sc || !gi) {
        free(qw), free(qz), free(sc), free(gi);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", mod);
    }
    uint32_t mask = (1u << b) - 1u;
    for (int o = 0; o < out; o++) {
        for (int k = 0; k < in; k++) stream_set(qw + o, (size_t)out, k, b, ptq_ex_code(q, o, k));
        for (int g = 0; g < ng; g++) {
            sc[(size_t)g * out + o] = q->scales[(size_t)o * ng + g];
            uint32_t z = ((uint32_t)q->zeros[(size_t)o * ng + g] - 1u) & mask;
            stream_set(qz + (size_t)g * ow, 1, o, b, z);
        }
    }
    for (int k = 0; k < in; k++) gi[k] = q->g_idx ? q->g_idx[k] : (q->group ? k / q->group : 0);
    char nm[300];
    int rc;
    snprintf(nm, sizeof nm, "%s.qweight", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, (int64_t)kw, out, qw, 1, e))) goto fail1;
    snprintf(nm, sizeof nm, "%s.qzeros", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, ng, (int64_t)ow, qz, 1, e))) goto fail2;
    snprintf(nm, sizeof nm, "%s.scales", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_F16, ng, out, sc, 1, e))) goto fail3;
    snprintf(nm, sizeof nm, "%s.g_idx", mod);
    return ptq_ex_add(c->t, nm, PTQ_DT_I32, in, 0, gi, 1, e);
fail1:
    free(qz);
fail2:
    free(sc);
fail3:
    free(gi);
    return rc;
}

static int write_one(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    char mod[256];
    if (q->format == PTQ_QF_DENSE) return ptq_ex_add_dense(((gq *)ctx)->t, q, name, e);
    ptq_ex_linear(name, mod, sizeof mod);
    return add_linear(ctx, mod, q, e);
}

static cJSON *quantize_config(const gq *c)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "bits", c->bits);
    cJSON_AddNumberToObject(j, "group_size", c->group ? c->group : -1);
    cJSON_AddNumberToObject(j, "damp_percent", 0.01);
    cJSON_AddBoolToObject(j, "desc_act", c->desc_act);
    cJSON_AddBoolToObject(j, "static_groups", 0);
    cJSON_AddBoolToObject(j, "sym", c->sym);
    cJSON_AddBoolToObject(j, "true_sequential", 1);
    cJSON_AddStringToObject(j, "model_file_base_name", "model");
    cJSON_AddStringToObject(j, "quant_method", "gptq");
    cJSON_AddStringToObject(j, "checkpoint_format", "gptq");
    return j;
}

int ptq_ex_gptq_write(const ptq_bundle *b, const char *dir, ptq_err *e)
{
    gq c = {0};
    int rc = ptq_ex_each(b, check_one, &c, e); /* the config's bits, group, sym, desc_act */
    if (rc) return rc;
    if (!(c.t = ptq_ex_new())) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    rc = ptq_ex_each(b, write_one, &c, e);
    if (rc == PTQ_OK) rc = ptq_ex_write_st(c.t, dir, e);
    cJSON *qc = quantize_config(&c);
    if (rc == PTQ_OK) rc = ptq_ex_write_json(dir, "quantize_config.json", qc, e);
    if (rc == PTQ_OK) rc = ptq_ex_write_hf_files(b, dir, qc, e); /* takes qc */
    else cJSON_Delete(qc);
    ptq_ex_free(c.t);
    return rc;
}
