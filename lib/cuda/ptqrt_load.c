/* ptqrt_load.c - libptqrt's loader: tensors from any source (a bundle, or a
 * test's or benchmark's provider) validated and uploaded, packed integer
 * linears as stored, dense ones as fp16, vectors as float32; ptqrt_open reads
 * a bundle through it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/bundle.h"
#include "lib/base/dtype.h"
#include "lib/cuda/ptqrt_impl.h"
#include "lib/qfmt/qfmt.h"
#include "lib/qfmt/qtensor.h"

static const char *lin_names[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                   "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                   "mlp.down_proj"};

/* ---------------------------------------------------------------- tensors */
static int expect_shape(const ptq_qtensor *q, const char *name, int rows, int cols, ptq_err *e)
{
    if (q->rows != rows || q->cols != cols)
        return ptq_fail(e, PTQ_EFORMAT, "%s: shape %d x %d, expected %d x %d for this config", name,
                        q->rows, q->cols, rows, cols);
    return PTQ_OK;
}

/* Element i of a dense tensor as float. */
static float dense_at(const ptq_qtensor *q, size_t i)
{
    const uint8_t *p = q->data;
    uint16_t h;
    float f;
    switch (q->dtype) {
    case PTQ_DT_F16: memcpy(&h, p + 2 * i, 2); return ptq_f16_to_f32(h);
    case PTQ_DT_BF16: memcpy(&h, p + 2 * i, 2); return ptq_bf16_to_f32(h);
    default: memcpy(&f, p + 4 * i, 4); return f;
    }
}

/* A vector (norm weight, bias) of n floats. */
static int upload_vec(ptqrt_model *m, ptqrt_tensor_fn get, void *ctx, const char *name, int n,
                      float **dst, ptq_err *e)
{
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    int rc = get(ctx, name, &q, e);
    if (rc) return rc;
    if ((rc = ptq_qtensor_check(&q, name, e))) goto out;
    if (q.format != PTQ_QF_DENSE || (size_t)q.rows * q.cols != (size_t)n) {
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: expected a dense vector of %d values", name, n);
        goto out;
    }
    float *h = malloc(sizeof *h * (size_t)n);
    if (!h) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        h[i] = dense_at(&q, (size_t)i);
        if (!isfinite(h[i])) {
            free(h);
            rc = ptq_fail(e, PTQ_EDATA, "%s: value %d is not finite", name, i);
            goto out;
        }
    }
    rc = ptqrt_upload(m, (void **)dst, h, sizeof *h * (size_t)n, e);
    free(h);
out:
    ptq_qtensor_free(&q);
    return rc;
}

/* The rows of an AQLM tensor whose decoded weights could exceed fp16 (the
 * prefill decode, ptqk_decode_aqlm, stores fp16): a bound |s| sum_m max|v_m|
 * per row, and the row's exact decode only where the bound is over 65504. */
static int aqlm_fits_f16(const ptq_qtensor *q, const char *name, ptq_err *e)
{
    double mx[8] = {0}, sum = 0;
    size_t per = (size_t)8 << q->aq_b;
    for (int m = 0; m < q->aq_m; m++) {
        for (size_t i = 0; i < per; i++)
            mx[m] = fmax(mx[m], fabs(ptq_f16_to_f32(q->aq_codebooks[(size_t)m * per + i])));
        sum += mx[m];
    }
    float *row = NULL;
    int rc = PTQ_OK;
    for (int r = 0; !rc && r < q->rows; r++) {
        if (fabs(ptq_f16_to_f32(q->aq_scales[r])) * sum <= 65504.0) continue;
        if (!row && !(row = malloc(sizeof *row * (size_t)q->cols)))
            return ptq_fail(e, PTQ_ENOMEM, "out of host memory");
        if ((rc = ptq_qtensor_dequant_rows(q, r, 1, row, e))) break;
        for (int k = 0; k < q->cols; k++)
            if (fabs(row[k]) > 65504.0f) {
                rc = ptq_fail(e, PTQ_EDATA, "%s: AQLM weight [%d][%d] = %g does not fit in fp16 (the "
                              "CUDA prefill decodes to fp16); evaluate this bundle with --device cpu",
                              name, r, k, (double)row[k]);
                break;
            }
    }
    free(row);
    return rc;
}

/* An AQLM linear as stored (codes, fp16 codebooks and scales). */
static int upload_aqlm(ptqrt_model *m, const ptq_qtensor *q, const char *name, lin *l, ptq_err *e)
{
    const ptq_qfmt *f = ptq_qfmt_get(PTQ_QF_AQLM);
    void *codes, *cb, *sc;
    int rc = aqlm_fits_f16(q, name, e);
    if (rc || (rc = ptqrt_upload(m, &codes, q->aq_codes, f->payload_bytes(q, 0), e)) ||
        (rc = ptqrt_upload(m, &cb, q->aq_codebooks, f->payload_bytes(q, 1), e)) ||
        (rc = ptqrt_upload(m, &sc, q->aq_scales, f->payload_bytes(q, 2), e)))
        return rc;
    l->is_aqlm = 1;
    l->aw = (ptqk_aqlm_w){q->rows, q->cols, q->aq_m, q->aq_b, codes, cb, sc};
    size_t n = (size_t)q->rows * q->cols;
    if (n > m->aq_scratch_n) m->aq_scratch_n = n;
    int bits = q->aq_m * q->aq_b % 8 ? 0 : q->aq_m * q->aq_b / 8;
    m->weight_bits = m->weight_bits < 0 ? bits : (m->weight_bits == bits ? bits : 0);
    return PTQ_OK;
}

/* A matrix [rows][cols]: packed integer as stored, dense as fp16. */
static int upload_lin(ptqrt_model *m, ptqrt_tensor_fn get, void *ctx, const char *name, int rows,
                      int cols, lin *l, ptq_err *e)
{
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    memset(l, 0, sizeof *l);
    int rc = get(ctx, name, &q, e);
    if (rc) return rc;
    if ((rc = ptq_qtensor_check(&q, name, e)) || (rc = expect_shape(&q, name, rows, cols, e))) goto out;
    l->rows = rows;
    l->cols = cols;
    if (q.format == PTQ_QF_AQLM) {
        rc = upload_aqlm(m, &q, name, l, e);
        goto out;
    }
    if (q.format == PTQ_QF_E8P) {
        rc = ptqrt_upload_e8p(m, &q, name, l, e);
        goto out;
    }
    if (q.format != PTQ_QF_INT && q.format != PTQ_QF_DENSE) {
        /* W8A8 / FP8 (activation-quantized) bundles run on the CPU reference
         * runtime; their kernels are not written yet. */
        const ptq_qfmt *f = ptq_qfmt_get(q.format);
        rc = ptq_fail(e, PTQ_EFORMAT,
                      "%s: the %s format is not supported by the CUDA runtime yet; evaluate this "
                      "bundle with --device cpu",
                      name, f ? f->name : "unknown");
        goto out;
    }
    if (q.format == PTQ_QF_INT) {
        size_t nw = (size_t)rows * (size_t)ptq_pack_row_words(cols, q.bits);
        size_t ng = (size_t)rows * (size_t)q.ngroups;
        void *qw, *sc, *zr, *gi = NULL;
        if ((rc = ptqrt_upload(m, &qw, q.qweight, nw * 4, e)) || (rc = ptqrt_upload(m, &sc, q.scales, ng * 2, e)) ||
            (rc = ptqrt_upload(m, &zr, q.zeros, ng, e)))
            goto out;
        if (q.g_idx && (rc = ptqrt_upload(m, &gi, q.g_idx, (size_t)cols * 4, e))) goto out;
        l->is_int = 1;
        l->iw = (ptqk_int_w){rows, cols, q.bits, q.group, q.ngroups, qw, sc, zr, gi};
        m->weight_bits = m->weight_bits < 0 ? q.bits : (m->weight_bits == q.bits ? q.bits : 0);
    } else {
        size_t count = (size_t)rows * cols;
        uint16_t *h = malloc(2 * count);
        if (!h) {
            rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
            goto out;
        }
        if (q.dtype == PTQ_DT_F16) {
            memcpy(h, q.data, 2 * count);
        } else {
            for (size_t i = 0; i < count; i++) {
                float f = dense_at(&q, i);
                h[i] = ptq_f32_to_f16(f);
                if (isfinite(f) && (h[i] & 0x7c00u) == 0x7c00u) {
                    free(h);
                    rc = ptq_fail(e, PTQ_EDATA, "%s: value %g does not fit in fp16", name, (double)f);
                    goto out;
                }
            }
        }
        void *d;
        rc = ptqrt_upload(m, &d, h, 2 * count, e);
        free(h);
        if (rc) goto out;
        l->fw = (ptqk_f16_w){rows, cols, d};
    }
out:
    ptq_qtensor_free(&q);
    return rc;
}

/* The int8 KV-cache scales of layer l when the source has them (tensor
 * model.layers.L.self_attn.kv_scale, F32, keys then values): [2, kv heads *
 * head_dim] per channel, or the per-head [2, kv heads] of earlier bundles,
 * expanded to every channel of its head; finite and positive. */
static int upload_kv_scale(ptqrt_model *m, ptqrt_tensor_fn get, void *ctx, int l, float **dst,
                           ptq_err *e)
{
    const ptq_config *c = &m->cfg;
    int kvd = c->n_kv_heads * c->head_dim;
    char name[160];
    *dst = NULL;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_scale", l);
    if (!get(ctx, name, NULL, e)) return PTQ_OK;
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    int rc = get(ctx, name, &q, e);
    if (rc) return rc;
    if ((rc = ptq_qtensor_check(&q, name, e))) goto out;
    if (q.format != PTQ_QF_DENSE || q.dtype != PTQ_DT_F32 || q.rows != 2 ||
        (q.cols != kvd && q.cols != c->n_kv_heads)) {
        rc = ptq_fail(e, PTQ_EFORMAT, "tensor %s is not F32 2 x %d (per channel) or 2 x %d (per head)",
                      name, kvd, c->n_kv_heads);
        goto out;
    }
    float *h = malloc(sizeof *h * 2 * (size_t)kvd);
    if (!h) {
        rc = ptq_fail(e, PTQ_ENOMEM, "out of host memory");
        goto out;
    }
    int per = q.cols == kvd ? 1 : c->head_dim; /* channels per stored scale */
    for (int i = 0; i < 2 * kvd; i++) {
        h[i] = dense_at(&q, (size_t)(i / per));
        if (!(isfinite(h[i]) && h[i] > 0)) {
            rc = ptq_fail(e, PTQ_EFORMAT, "tensor %s: scale %g is not finite and positive", name,
                          (double)h[i]);
            break;
        }
    }
    if (!rc) rc = ptqrt_upload(m, (void **)dst, h, sizeof *h * 2 * (size_t)kvd, e);
    free(h);
out:
    ptq_qtensor_free(&q);
    return rc;
}

int ptqrt_open_tensors(ptqrt_model **out, const ptq_config *c, ptqrt_tensor_fn get, void *ctx,
                       const ptqrt_options *o, ptq_err *e)
{
    ptqrt_model *m = NULL;
    int rc = ptqrt_model_begin(&m, c, o, e);
    char name[160];
    int D = c->hidden, I = c->intermediate, QD = c->n_heads * c->head_dim,
        KVD = c->n_kv_heads * c->head_dim;
    for (int l = 0; !rc && l < c->n_layers; l++) {
        layer *L = &m->layers[l];
        int shp[7][2] = {{QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {I, D}, {I, D}, {D, I}};
        for (int j = 0; !rc && j < 7; j++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lin_names[j]);
            rc = upload_lin(m, get, ctx, name, shp[j][0], shp[j][1], &L->w[j], e);
        }
        for (int j = 0; !rc && c->qkv_bias && j < 3; j++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, lin_names[j]);
            rc = upload_vec(m, get, ctx, name, shp[j][0], &L->bias[j], e);
        }
        if (!rc) {
            snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
            rc = upload_vec(m, get, ctx, name, D, &L->attn_norm, e);
        }
        if (!rc) {
            snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
            rc = upload_vec(m, get, ctx, name, D, &L->mlp_norm, e);
        }
        if (!rc) rc = upload_kv_scale(m, get, ctx, l, &L->kv_scale, e);
        if (!rc) rc = ptqrt_alloc_kv(m, L, e);
    }
    if (!rc) rc = upload_lin(m, get, ctx, "model.embed_tokens.weight", c->vocab, D, &m->embed, e);
    if (!rc) rc = upload_vec(m, get, ctx, "model.norm.weight", D, &m->final_norm, e);
    if (!rc) {
        if (c->tie_embeddings) m->head = m->embed;
        else rc = upload_lin(m, get, ctx, "lm_head.weight", c->vocab, D, &m->head, e);
    }
    if (!rc && m->aq_scratch_n && m->opt.max_tokens > m->opt.gemv_max_n)
        rc = ptqrt_dalloc(m, (void **)&m->aq_scratch, 2 * m->aq_scratch_n, &m->bytes_scratch, e);
    if (!rc) rc = ptqrt_e8p_finish(m, e);
    if (rc) {
        ptqrt_close(m);
        return rc;
    }
    *out = m;
    return PTQ_OK;
}

/* ---------------------------------------------------------------- bundles */
static int bundle_get(void *ctx, const char *name, ptq_qtensor *q, ptq_err *e)
{
    if (!q) {
        char member[200];
        snprintf(member, sizeof member, "tensors/%s.data", name);
        return ptq_bundle_member_data((const ptq_bundle *)ctx, member, NULL) != NULL;
    }
    return ptq_bundle_tensor((const ptq_bundle *)ctx, name, q, e);
}

int ptqrt_open(ptqrt_model **m, const char *path, const ptqrt_options *o, ptq_err *e)
{
    *m = NULL;
    if (ptqrt_device_count() < 1) return ptq_fail(e, PTQ_ENODEV, "no CUDA device");
    ptqrt_options opt;
    if (o) opt = *o;
    else ptqrt_options_default(&opt);
    ptq_bundle b;
    memset(&b, 0, sizeof b);
    int rc = ptq_bundle_open(&b, path, opt.verify, e);
    if (rc) return rc;
    uint64_t len = 0;
    const void *cj = ptq_bundle_member_data(&b, "config.json", &len);
    ptq_config cfg;
    if (!cj) rc = ptq_fail(e, PTQ_EFORMAT, "%s: no config.json member", path);
    else rc = ptq_config_parse(&cfg, cj, (size_t)len, "config.json", e);
    if (!rc) rc = ptqrt_open_tensors(m, &cfg, bundle_get, &b, &opt, e);
    if (rc) ptq_fail_prefix(e, "%s", path);
    ptq_bundle_close(&b);
    return rc;
}
