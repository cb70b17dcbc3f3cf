/* export_ct.c - the compressed-tensors row of the exporter table (export.h):
 * format "pack-quantized", as llm-compressor writes it and vLLM and
 * transformers load it.  Per quantized linear M (M.weight in the bundle):
 *
 *   M.weight_packed      int32 [out][ceil(in / p)], p = 32 / bits codes a word:
 *                        column k in bits [(k % p) * bits, +bits) of word k / p,
 *                        the code stored unsigned (compressed-tensors' signed
 *                        value + 2^(bits-1)), which is ptqc's code as is
 *   M.weight_scale       fp16 [out][ngroups]   (channel strategy: ngroups 1)
 *   M.weight_zero_point  int32 [ceil(out / p)][ngroups], asymmetric only:
 *                        the unsigned zero points packed the same way along
 *                        the output dimension (rows)
 *   M.weight_g_idx       int32 [in], act-order bundles with a g_idx
 *   M.weight_shape       int64 [2] = {out, in} (as torch.tensor(weight.shape))
 *
 *   w = (q_signed - zp_signed) * scale = (code - zero) * scale: exact.
 *
 * The 8-bit bundles (W8A8: int8, FP8: E4M3 weights and activations) are
 * format "int-quantized" / "float-quantized":
 *
 *   M.weight        I8 / F8_E4M3 [out][in]: the codes as they are
 *   M.weight_scale  F32 [out][1]            (strategy channel)
 *   M.input_scale   F32 [1], static activation scales only (strategy
 *                   tensor); dynamic ones are per token (strategy token)
 *
 *   w = code * scale: exact.
 *
 * config.json quantization_config holds one config group per distinct
 * scheme (bits, group, symmetric, actorder; or the 8-bit kind and its
 * activation scales), targeting its linears by name; kept (dense) linears
 * and lm_head are in "ignore".  Refused: packed integer and 8-bit linears
 * in one bundle (one "format"), int8 KV-cache scales (not yet exported),
 * and a group that does not divide the input (the group strategy needs
 * whole groups).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/export.h"
#include "lib/qfmt/qfmt.h"

int ptq_ex_ct_check(const ptq_bundle *b, ptq_err *e);
int ptq_ex_ct_write(const ptq_bundle *b, const char *dir, ptq_err *e);

/* the top-level format a linear needs: 1 pack-quantized, 2 int-quantized,
 * 3 float-quantized */
static int kind_of(const ptq_qtensor *q)
{
    return q->format == PTQ_QF_INT ? 1 : q->format == PTQ_QF_W8A8 ? 2 : 3;
}
static const char *const kind_name[] = {"", "pack-quantized", "int-quantized", "float-quantized"};

static int check_one(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    int *kind = ctx;
    char mod[256];
    if (q->format == PTQ_QF_DENSE) {
        if (ptq_ex_is_kv_scale(name))
            return ptq_fail(e, PTQ_EDATA,
                            "%s: int8 KV-cache scales: compressed-tensors export of a "
                            "kv_cache_scheme is not implemented",
                            name);
        return PTQ_OK;
    }
    if (!ptq_ex_linear(name, mod, sizeof mod))
        return ptq_fail(e, PTQ_EDATA, "%s: a quantized tensor that is not a linear", name);
    if (q->format == PTQ_QF_INT_HAD)
        return ptq_fail(e, PTQ_EDATA, "%s: %s weights", name, ptq_ex_kind_words(q));
    if (*kind && *kind != kind_of(q))
        return ptq_fail(e, PTQ_EDATA,
                        "%s: would be %s after %s linears; one compressed-tensors checkpoint "
                        "has one format",
                        name, kind_name[kind_of(q)], kind_name[*kind]);
    *kind = kind_of(q);
    if (q->format == PTQ_QF_INT && !ptq_ex_full_groups(q))
        return ptq_fail(e, PTQ_EDATA,
                        "%s: group %d does not divide the input %d (a shorter last group); the "
                        "compressed-tensors group strategy holds whole groups only",
                        name, q->group, q->cols);
    return PTQ_OK;
}

int ptq_ex_ct_check(const ptq_bundle *b, ptq_err *e)
{
    int kind = 0;
    return ptq_ex_each(b, check_one, &kind, e);
}

/* ---------------------------------------------------------------- tensors */

/* codes v[i * stride] (i < n, unsigned, < 2^bits) packed p a word into out */
static void pack_line(uint32_t *out, int n, int bits, uint32_t (*get)(const void *, int, int),
                      const void *src, int line)
{
    int p = 32 / bits;
    for (int i = 0; i < n; i++) out[i / p] |= get(src, line, i) << ((i % p) * bits);
}

static uint32_t get_code(const void *q, int r, int k) { return ptq_ex_code(q, r, k); }
static uint32_t get_zero(const void *q, int g, int r)
{
    const ptq_qtensor *t = q;
    return t->zeros[(size_t)r * (size_t)t->ngroups + (size_t)g];
}

#define MAX_SCHEMES 32
typedef struct scheme {
    int kind, bits, group, sym, actorder, act_static;
    cJSON *targets;
} scheme;

typedef struct ct {
    ptq_ex_tensors *t;
    int kind;
    scheme s[MAX_SCHEMES];
    int ns;
    cJSON *ignore;
} ct;

static int add_linear(ct *c, const char *mod, const ptq_qtensor *q, ptq_err *e)
{
    int p = 32 / q->bits, ng = q->ngroups, sym = ptq_ex_is_sym(q);
    int kw = (q->cols + p - 1) / p, rw = (q->rows + p - 1) / p;
    char nm[300];
    uint32_t *wp = calloc((size_t)q->rows * (size_t)kw, 4);
    uint32_t *zp = sym ? NULL : calloc((size_t)rw * (size_t)ng, 4);
    int64_t *shape = malloc(16);
    uint16_t *sc = malloc((size_t)q->rows * (size_t)ng * 2);
    int32_t *gi = q->g_idx ? malloc((size_t)q->cols * 4) : NULL;
    if (!wp || (!sym && !zp) || !shape || !sc || (q->g_idx && !gi)) {
        free(wp), free(zp), free(shape), free(sc), free(gi);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", mod);
    }
    for (int r = 0; r < q->rows; r++) pack_line(wp + (size_t)r * kw, q->cols, q->bits, get_code, q, r);
    if (zp) { /* [ngroups][rows] packed along rows, then stored [rw][ngroups] */
        uint32_t *line = calloc((size_t)rw, 4);
        if (!line) {
            free(wp), free(zp), free(shape), free(sc), free(gi);
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for %s", mod);
        }
        for (int g = 0; g < ng; g++) {
            memset(line, 0, (size_t)rw * 4);
            pack_line(line, q->rows, q->bits, get_zero, q, g);
            for (int w = 0; w < rw; w++) zp[(size_t)w * ng + g] = line[w];
        }
        free(line);
    }
    memcpy(sc, q->scales, (size_t)q->rows * (size_t)ng * 2);
    if (gi) memcpy(gi, q->g_idx, (size_t)q->cols * 4);
    shape[0] = q->rows, shape[1] = q->cols;
    int rc;
    snprintf(nm, sizeof nm, "%s.weight_packed", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, q->rows, kw, wp, 1, e))) goto fail1;
    snprintf(nm, sizeof nm, "%s.weight_scale", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_F16, q->rows, ng, sc, 1, e))) goto fail2;
    snprintf(nm, sizeof nm, "%s.weight_shape", mod);
    if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I64, 2, 0, shape, 1, e))) goto fail3;
    if (zp) {
        snprintf(nm, sizeof nm, "%s.weight_zero_point", mod);
        if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, rw, ng, zp, 1, e))) goto fail4;
    }
    if (gi) {
        snprintf(nm, sizeof nm, "%s.weight_g_idx", mod);
        if ((rc = ptq_ex_add(c->t, nm, PTQ_DT_I32, q->cols, 0, gi, 1, e))) return rc;
    }
    return PTQ_OK;
fail1:
    free(sc);
fail2:
    free(shape);
fail3:
    free(zp);
fail4:
    free(gi);
    return rc;
}

/* the 8-bit linears: codes, per-row scales, the static input scale */
static int add_a8(ct *c, const char *mod, const ptq_qtensor *q, ptq_err *e)
{
    char nm[300];
    ptq_dtype dt = q->format == PTQ_QF_W8A8 ? PTQ_DT_I8 : PTQ_DT_F8_E4M3;
    snprintf(nm, sizeof nm, "%s.weight", mod);
    int rc = ptq_ex_add(c->t, nm, dt, q->rows, q->cols, q->codes, 0, e);
    snprintf(nm, sizeof nm, "%s.weight_scale", mod);
    if (!rc) rc = ptq_ex_add(c->t, nm, PTQ_DT_F32, q->rows, 1, q->wscale, 0, e);
    snprintf(nm, sizeof nm, "%s.input_scale", mod);
    if (!rc && q->act_scale) rc = ptq_ex_add(c->t, nm, PTQ_DT_F32, 1, 0, q->act_scale, 0, e);
    return rc;
}

static int scheme_add(ct *c, const char *mod, const ptq_qtensor *q, ptq_err *e)
{
    int kind = kind_of(q), a8 = kind != 1, i;
    scheme k = {kind, a8 ? 8 : q->bits, a8 ? 0 : q->group, a8 ? 1 : ptq_ex_is_sym(q),
                !a8 && q->g_idx != NULL, a8 && q->act_scale != NULL, NULL};
    for (i = 0; i < c->ns; i++)
        if (c->s[i].kind == k.kind && c->s[i].bits == k.bits && c->s[i].group == k.group &&
            c->s[i].sym == k.sym && c->s[i].actorder == k.actorder &&
            c->s[i].act_static == k.act_static)
            break;
    if (i == c->ns) {
        if (c->ns == MAX_SCHEMES)
            return ptq_fail(e, PTQ_EDATA, "%s: more than %d distinct quantization schemes", mod,
                            MAX_SCHEMES);
        k.targets = cJSON_CreateArray();
        c->s[c->ns++] = k;
    }
    c->kind = kind;
    cJSON_AddItemToArray(c->s[i].targets, cJSON_CreateString(mod));
    return PTQ_OK;
}

static int write_one(void *ctx, const char *name, const ptq_qtensor *q, ptq_err *e)
{
    ct *c = ctx;
    char mod[256];
    if (q->format == PTQ_QF_DENSE) {
        if (ptq_ex_linear(name, mod, sizeof mod))
            cJSON_AddItemToArray(c->ignore, cJSON_CreateString(mod));
        return ptq_ex_add_dense(c->t, q, name, e);
    }
    ptq_ex_linear(name, mod, sizeof mod);
    int rc = scheme_add(c, mod, q, e);
    if (rc) return rc;
    return q->format == PTQ_QF_INT ? add_linear(c, mod, q, e) : add_a8(c, mod, q, e);
}

/* ---------------------------------------------------------------- config */

/* 8-bit activations: symmetric, per tensor (static input_scale) or per
 * token (dynamic) */
static void add_acts(cJSON *g, const scheme *s)
{
    cJSON *a = cJSON_AddObjectToObject(g, "input_activations");
    cJSON_AddNumberToObject(a, "num_bits", 8);
    cJSON_AddStringToObject(a, "type", s->kind == 3 ? "float" : "int");
    cJSON_AddBoolToObject(a, "symmetric", 1);
    cJSON_AddStringToObject(a, "strategy", s->act_static ? "tensor" : "token");
    cJSON_AddNullToObject(a, "group_size");
    cJSON_AddNullToObject(a, "block_structure");
    cJSON_AddBoolToObject(a, "dynamic", !s->act_static);
    cJSON_AddNullToObject(a, "actorder");
    cJSON_AddStringToObject(a, "observer", s->act_static ? "minmax" : "memoryless");
    cJSON_AddObjectToObject(a, "observer_kwargs");
}

static cJSON *quant_config(ct *c)
{
    cJSON *qc = cJSON_CreateObject();
    cJSON *groups = cJSON_AddObjectToObject(qc, "config_groups");
    for (int i = 0; i < c->ns; i++) {
        scheme *s = &c->s[i];
        char gname[32];
        snprintf(gname, sizeof gname, "group_%d", i);
        cJSON *g = cJSON_AddObjectToObject(groups, gname);
        cJSON_AddItemToObject(g, "targets", s->targets);
        s->targets = NULL;
        cJSON *w = cJSON_AddObjectToObject(g, "weights");
        cJSON_AddNumberToObject(w, "num_bits", s->bits);
        cJSON_AddStringToObject(w, "type", s->kind == 3 ? "float" : "int");
        cJSON_AddBoolToObject(w, "symmetric", s->sym);
        cJSON_AddStringToObject(w, "strategy", s->group ? "group" : "channel");
        if (s->group) cJSON_AddNumberToObject(w, "group_size", s->group);
        else cJSON_AddNullToObject(w, "group_size");
        cJSON_AddNullToObject(w, "block_structure");
        cJSON_AddBoolToObject(w, "dynamic", 0);
        if (s->actorder) cJSON_AddStringToObject(w, "actorder", "group");
        else cJSON_AddNullToObject(w, "actorder");
        cJSON_AddStringToObject(w, "observer", "minmax");
        cJSON_AddObjectToObject(w, "observer_kwargs");
        if (s->kind == 1) cJSON_AddNullToObject(g, "input_activations");
        else add_acts(g, s);
        cJSON_AddNullToObject(g, "output_activations");
    }
    cJSON_AddStringToObject(qc, "format", kind_name[c->kind ? c->kind : 1]);
    cJSON_AddItemToArray(c->ignore, cJSON_CreateString("lm_head"));
    cJSON_AddItemToObject(qc, "ignore", c->ignore);
    c->ignore = NULL;
    cJSON_AddNullToObject(qc, "kv_cache_scheme");
    cJSON_AddNullToObject(qc, "global_compression_ratio");
    cJSON_AddStringToObject(qc, "quant_method", "compressed-tensors");
    cJSON_AddStringToObject(qc, "quantization_status", "compressed");
    return qc;
}

int ptq_ex_ct_write(const ptq_bundle *b, const char *dir, ptq_err *e)
{
    ct c = {.t = ptq_ex_new(), .ignore = cJSON_CreateArray()};
    int rc = c.t ? ptq_ex_each(b, write_one, &c, e) : ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (rc == PTQ_OK) rc = ptq_ex_write_st(c.t, dir, e);
    if (rc == PTQ_OK) rc = ptq_ex_write_hf_files(b, dir, quant_config(&c), e);
    for (int i = 0; i < c.ns; i++) cJSON_Delete(c.s[i].targets);
    cJSON_Delete(c.ignore);
    ptq_ex_free(c.t);
    return rc;
}
