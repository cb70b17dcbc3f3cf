/* export_awq.c - the awq row of the exporter table (export.h): the AutoAWQ
 * GEMM checkpoint (version "gemm") that transformers and vLLM load.  4-bit
 * only.  Per quantized linear M (out x in, groups of G):
 *
 *   M.qweight  int32 [in][out / 8]: word (k, j) holds the codes of outputs
 *              o = 8j + ORDER[i] of input k in nibble i (bits 4i..4i+3),
 *              ORDER = {0, 2, 4, 6, 1, 3, 5, 7} (AutoAWQ's interleave)
 *   M.qzeros   int32 [ngroups][out / 8]: the zero points, packed the same way
 *   M.scales   fp16 [ngroups][out]
 *
 *   w[o][k] = scales[g][o] * (q - zero),  g = k / G: exact.
 *
 * config.json quantization_config (and AutoAWQ's quant_config.json):
 * bits 4, group_size (-1: per channel), zero_point true, version gemm, kept
 * linears in modules_to_not_convert.  Refused: other bit widths, act-order
 * bundles (AWQ has no g_idx), a shorter last group, out not a multiple of
 * 8, linears with different groups, W8A8/FP8 and int8 KV-cache scales.
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/export.h"
#include "lib/qfmt/qfmt.h"

int ptq_ex_awq_check(const ptq_bundle *b, ptq_err *e);
int ptq_ex_awq_write(const ptq_bundle *b, const char *dir, ptq_err *e);

static const int awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

typedef struct aw {
    int group, n;
    ptq_ex_tensors *t;
    cJSON *dense;
} aw;

static int check_one(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    aw *c = ctx;
    char mod[256];
    int lin = ptq_ex_linear(name, mod, sizeof mod);
    if (q->format == PTQ_QF_DENSE) {
        if (ptq_ex_is_kv_scale(name))
            return ptq_fail(e, PTQ_EDATA, "%s: int8 KV-cache scales have no place in awq", name);
        return PTQ_OK;
    }
    if (q->format != PTQ_QF_INT)
        return ptq_fail(e, PTQ_EDATA, "%s: %s weights: AWQ GEMM holds 4-bit integer weights only",
                        name, ptq_ex_kind_words(q));
    if (!lin) return ptq_fail(e, PTQ_EDATA, "%s: a quantized tensor that is not a linear", name);
    if (q->bits != 4)
        return ptq_fail(e, PTQ_EDATA, "%s: %d-bit; AWQ GEMM is 4-bit only", name, q->bits);
    if (q->g_idx)
        return ptq_fail(e, PTQ_EDATA,
                        "%s: act-order g_idx; AWQ GEMM has no g_idx (export as gptq instead)",
                        name);
    if (!ptq_ex_full_groups(q))
        return ptq_fail(e, PTQ_EDATA,
                        "%s: group %d does not divide the input %d (a shorter last group); AWQ "
                        "GEMM holds whole groups only",
                        name, q->group, q->cols);
    if (q->rows % 8)
        return ptq_fail(e, PTQ_EDATA, "%s: %d outputs; AWQ GEMM packs 8 outputs a word", name,
                        q->rows);
    if (c->n && q->group != c->group)
        return ptq_fail(e, PTQ_EDATA,
                        "%s: group %d differs from the first linear's %d; AWQ has one group_size",
                        name, q->group, c->group);
    if (!c->n++) c->group = q->group;
    return PTQ_OK;
}

int ptq_ex_awq_check(const ptq_bundle *b, ptq_err *e)
{
    aw c = {0};
    int rc = ptq_ex_each(b, check_one, &c, e);
    if (rc == PTQ_OK && !c.n)
        rc = ptq_fail(e, PTQ_EDATA, "%s: no quantized linear to export", b->path);
    return rc;
}

static int add_linear(aw *c, const char *mod, const ptq_qtensor *q, ptq_err *e)
{
    int out = q->rows, in = q->cols, ng = q->ngroups, ow = out / 8;
    uint32_t *qw = calloc((size_t)in * ow, 4), *qz = calloc((size_t)ng * ow, 4);
    uint16_t *sc = malloc((size_t)ng * out * 2);
    if (!qw || !qz || !sc) {
        free(qw), free(qz), free(sc);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", mod);
    }
    for (int j = 0; j < ow; j++)
        for (int i = 0; i < 8; i++) {
            int o = 8 * j + awq_order[i];
            for (int k = 0; k < in; k++) qw[(size_t)k * ow + j] |= ptq_ex_code(q, o, k) << (4 * i);
            for (int g = 0; g < ng; g++)
                qz[(size_t)g * ow + j] |= (uint32_t)q->zeros[(size_t)o * ng + g] << (4 * i);
        }
    for (int o = 0; o < out; o++)
        for (int g = 0; g < ng; g++) sc[(size_t)g * out + o] = q->scales[(size_t)o * ng + g];
    char nm[300];
    int rc;
    snprintf(nm, sizeof nm, "%s.qweight", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, in, ow, qw, 1, e))) {
        free(qz), free(sc);
        return rc;
    }
    snprintf(nm, sizeof nm, "%s.qzeros", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, ng, ow, qz, 1, e))) {
        free(sc);
        return rc;
    }
    snprintf(nm, sizeof nm, "%s.scales", mod);
    return ptq_ex_add(c->t, nm, PTQ_DT_F16, ng, out, sc, 1, e);
}

static int write_one(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    aw *c = ctx;
    char mod[256];
    int lin = ptq_ex_linear(name, mod, sizeof mod);
    if (q->format == PTQ_QF_DENSE) {
        if (lin) cJSON_AddItemToArray(c->dense, cJSON_CreateString(mod));
        return ptq_ex_add_dense(c->t, q, name, e);
    }
    return add_linear(c, mod, q, e);
}

static cJSON *awq_config(const aw *c, int autoawq)
{
    cJSON *j = cJSON_CreateObject();
    if (!autoawq) {
        cJSON_AddStringToObject(j, "quant_method", "awq");
        cJSON_AddNumberToObject(j, "bits", 4);
        cJSON_AddNumberToObject(j, "group_size", c->group ? c->group : -1);
    } else {
        cJSON_AddNumberToObject(j, "w_bit", 4);
        cJSON_AddNumberToObject(j, "q_group_size", c->group ? c->group : -1);
    }
    cJSON_AddBoolToObject(j, "zero_point", 1);
    cJSON_AddStringToObject(j, "version", "gemm");
    if (cJSON_GetArraySize(c->dense))
        cJSON_AddItemToObject(j, "modules_to_not_convert", cJSON_Duplicate(c->dense, 1));
    else cJSON_AddNullToObject(j, "modules_to_not_convert");
    return j;
}

int ptq_ex_awq_write(const ptq_bundle *b, const char *dir, ptq_err *e)
{
    aw c = {0};
    int rc = ptq_ex_each(b, check_one, &c, e); /* the group */
    if (rc) return rc;
    c.t = ptq_ex_new();
    c.dense = cJSON_CreateArray();
    if (!c.t) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (rc == PTQ_OK) rc = ptq_ex_each(b, write_one, &c, e);
    if (rc == PTQ_OK) rc = ptq_ex_write_st(c.t, dir, e);
    if (rc == PTQ_OK) {
        cJSON *qc = awq_config(&c, 1);
        rc = ptq_ex_write_json(dir, "quant_config.json", qc, e);
        cJSON_Delete(qc);
    }
    if (rc == PTQ_OK) rc = ptq_ex_write_hf_files(b, dir, awq_config(&c, 0), e);
    cJSON_Delete(c.dense);
    ptq_ex_free(c.t);
    return rc;
}
