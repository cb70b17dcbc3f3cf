/* arch.c - names, shapes and buffers of a decoder layer (see arch.h). */
#include "formats/arch.h"

#include <stdlib.h>
#include <string.h>

static const char *const linear_names[PTQ_NLINEAR] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

const char *ptq_linear_name(int which)
{
    return (which >= 0 && which < PTQ_NLINEAR) ? linear_names[which] : "?";
}

void ptq_linear_shape(const ptq_config *c, int which, int *rows, int *cols)
{
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    int r = 0, k = 0;
    switch (which) {
    case PTQ_Q: r = q; k = c->hidden; break;
    case PTQ_K:
    case PTQ_V: r = kv; k = c->hidden; break;
    case PTQ_O: r = c->hidden; k = q; break;
    case PTQ_GATE:
    case PTQ_UP: r = c->intermediate; k = c->hidden; break;
    case PTQ_DOWN: r = c->hidden; k = c->intermediate; break;
    }
    *rows = r;
    *cols = k;
}

int ptq_layer_w_alloc(ptq_layer_w *w, const ptq_config *c, ptq_err *e)
{
    memset(w, 0, sizeof *w);
    w->attn_norm = malloc(sizeof(float) * (size_t)c->hidden);
    w->mlp_norm = malloc(sizeof(float) * (size_t)c->hidden);
    int ok = w->attn_norm && w->mlp_norm;
    for (int i = 0; i < PTQ_NLINEAR && ok; i++) {
        int r, k;
        ptq_linear_shape(c, i, &r, &k);
        w->w[i] = malloc(sizeof(float) * (size_t)r * (size_t)k);
        ok = w->w[i] != NULL;
        if (ok && c->qkv_bias && i <= PTQ_V) {
            w->bias[i] = malloc(sizeof(float) * (size_t)r);
            ok = w->bias[i] != NULL;
        }
    }
    if (!ok) {
        ptq_layer_w_free(w);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory allocating one layer's float32 weights");
    }
    return PTQ_OK;
}

void ptq_layer_w_free(ptq_layer_w *w)
{
    free(w->attn_norm);
    free(w->mlp_norm);
    for (int i = 0; i < PTQ_NLINEAR; i++) {
        free(w->w[i]);
        free(w->bias[i]);
    }
    memset(w, 0, sizeof *w);
}
