/* write.c - tensors into the bundle: kept dense from the checkpoint, the
 * compile's own float32 vectors, a finished layer in a fixed order; and the
 * checkpoint's pages dropped once written (lib/compile/engine.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/compile/engine.h"

static const char *dense_method(int dtype)
{
    return dtype == PTQ_DT_BF16 ? "bf16" : dtype == PTQ_DT_F32 ? "fp32" : "fp16";
}

static int add_f32(cstate *s, const char *name, const float *x, int rows, int cols,
                   const char *method, ptq_err *e);

/* A source tensor kept as it is (validated finite first); from a .gguf the
 * exact float32 dequantization. */
int add_dense(cstate *s, const char *name, float *scratch, size_t nscratch, ptq_err *e)
{
    if (s->ck.gguf) {
        float *x;
        int r, c;
        int rc = ptq_ckpt_read_tensor(&s->ck, name, &x, &r, &c, e);
        if (!rc) rc = add_f32(s, name, x, r, c, dense_method(PTQ_DT_F32), e);
        free(x);
        return rc;
    }
    const ptq_st_tensor *t = ptq_st_find(&s->ck.st, name);
    if (!t) return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s missing", s->o->model, name);
    if (t->ndim < 1 || t->ndim > 2)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tensor %s has %d dimensions", s->o->model, name,
                        t->ndim);
    uint64_t n = ptq_st_numel(t);
    for (uint64_t i = 0; i < n; i += nscratch) {
        size_t m = n - i < nscratch ? (size_t)(n - i) : nscratch;
        int rc = ptq_st_read_f32(&s->ck.st, t, (size_t)i, m, scratch, e);
        if (rc) return rc;
    }
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    q.format = PTQ_QF_DENSE;
    q.rows = t->ndim == 2 ? (int)t->shape[0] : 1;
    q.cols = t->ndim == 2 ? (int)t->shape[1] : (int)t->shape[0];
    q.dtype = t->dtype;
    q.data = (void *)t->data;
    q.mapped = 1;
    return ptq_bw_add_tensor(s->bw, name, dense_method(t->dtype), &q, NULL, e);
}

/* A float32 vector or matrix of the compile's own (a folded norm, KV scales). */
static int add_f32(cstate *s, const char *name, const float *x, int rows, int cols,
                   const char *method, ptq_err *e)
{
    ptq_qtensor q;
    memset(&q, 0, sizeof q);
    q.format = PTQ_QF_DENSE;
    q.rows = rows;
    q.cols = cols;
    q.dtype = PTQ_DT_F32;
    q.data = (void *)x;
    q.mapped = 1;
    return ptq_bw_add_tensor(s->bw, name, method, &q, NULL, e);
}

/* A norm: folded by a transform (stored F32 under its name) or as it was. */
static int add_norm(cstate *s, const char *name, const float *w, const char *folded, ptq_err *e)
{
    return folded ? add_f32(s, name, w, 1, s->cfg->hidden, folded, e)
                  : add_dense(s, name, s->x32, s->nscratch, e);
}

/* A quantized linear, its report entry (less what the manifest has
 * elsewhere) as the tensor's extra metadata; or, kept, the source tensor. */
static int add_linear(cstate *s, int l, int which, const ptq_qtensor *qt, const cJSON *entry,
                      ptq_err *e)
{
    char nm[256];
    weight_name(nm, sizeof nm, l, which, "weight");
    if (!qt->rows) return add_dense(s, nm, s->x32, (size_t)s->chunk * s->seqlen * s->cfg->hidden, e);
    cJSON *extra = cJSON_Duplicate(entry, 1);
    static const char *const drop[] = {"seconds", "name", "method", "rows", "cols", "bits", "group",
                                       "sym"};
    for (size_t k = 0; k < sizeof drop / sizeof *drop; k++) cJSON_DeleteItemFromObject(extra, drop[k]);
    int rc = ptq_bw_add_tensor(s->bw, nm, plan_of(s, l, which)->m->name, qt, extra, e);
    cJSON_Delete(extra);
    return rc;
}

/* Layer l into the bundle, in a fixed order: input_layernorm, q, k, v (and
 * their biases), o, post_attention_layernorm, gate, up, down, KV scales. */
int write_layer(cstate *s, int l, const ptq_layer_w *lw, const ptq_qtensor *qt,
                const char *const folded[2], const cJSON *lin, ptq_err *e)
{
    static const char *const biases[3] = {"q_proj", "k_proj", "v_proj"};
    size_t nscratch = (size_t)s->chunk * s->seqlen * s->cfg->hidden;
    char nm[256];
    snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", l);
    int rc = add_norm(s, nm, lw->attn_norm, folded[0], e);
    for (int which = 0; which < PTQ_NLINEAR && !rc; which++) {
        if (which == PTQ_GATE) {
            snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", l);
            if ((rc = add_norm(s, nm, lw->mlp_norm, folded[1], e))) break;
        }
        rc = add_linear(s, l, which, &qt[which], cJSON_GetArrayItem(lin, which), e);
        if (!rc && which <= PTQ_V && s->cfg->qkv_bias) {
            snprintf(nm, sizeof nm, "model.layers.%d.self_attn.%s.bias", l, biases[which]);
            if (which == PTQ_V && s->awq.scale[1]) /* o's AWQ scales folded into v */
                rc = add_f32(s, nm, lw->bias[PTQ_V], 1, (int)kv_dim(s), "awq", e);
            else
                rc = add_dense(s, nm, s->x32, nscratch, e);
        }
    }
    if (!rc && s->kvmax) {
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.kv_scale", l);
        rc = add_f32(s, nm, s->kvscale, 2, (int)kv_dim(s), "int8-kv", e);
    }
    return rc;
}

/* Take the source pages of tensors whose name starts with prefix out of this
 * process's resident set once they are no longer needed.  They are pages of
 * the mmapped checkpoint (file-backed, clean): they stay in the page cache and
 * a later read faults them back in.  Without this, peak RSS grows by one
 * layer of source weights per layer compiled. */
void drop_source_pages(cstate *s, const char *prefix)
{
    const ptq_safetensors *st = &s->ck.st;
    size_t n = strlen(prefix);
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < st->ntensors; i++) {
        const ptq_st_tensor *t = &st->tensors[i];
        if (!t->data || strncmp(t->name, prefix, n)) continue;
        uintptr_t a = ((uintptr_t)t->data + pg - 1) / pg * pg;
        uintptr_t b = ((uintptr_t)t->data + t->nbytes) / pg * pg;
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
}
