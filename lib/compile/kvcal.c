/* kvcal.c - int8 KV-cache calibration: static scales, keys then values, one
 * per kv head and head-dim channel (lib/compile/engine.h, lib/qfmt/kvq.h). */
#include <math.h>

#include "lib/compile/engine.h"

size_t kv_dim(const cstate *s) { return (size_t)s->cfg->n_kv_heads * s->cfg->head_dim; }

/* Fold max |k| and max |v| per kv channel (kv head and head-dim channel) of n
 * tokens (kv: keys [n, kv_dim] then values [n, kv_dim]) into s->kvmax. */
int kv_absmax(cstate *s, const float *kv, int n, ptq_err *e)
{
    size_t kvd = kv_dim(s);
    for (int part = 0; part < 2; part++)
        for (size_t r = 0; r < (size_t)n; r++) {
            const float *x = kv + ((size_t)part * n + r) * kvd;
            float *m = s->kvmax + part * kvd;
            for (size_t i = 0; i < kvd; i++) {
                if (!isfinite(x[i]))
                    return ptq_fail(e, PTQ_EDATA, "calibration %s of kv head %d are not finite "
                                    "(%g)", part ? "values" : "keys",
                                    (int)(i / (size_t)s->cfg->head_dim), (double)x[i]);
                if (fabsf(x[i]) > m[i]) m[i] = fabsf(x[i]);
            }
        }
    return PTQ_OK;
}

/* max |x| / 127 of the channel over the calibration tokens (keys after RoPE)
 * of the quantized layer; a channel that stayed zero gets 1. */
void kv_scales(const cstate *s, float *kvs)
{
    size_t n = 2 * kv_dim(s);
    for (size_t i = 0; i < n; i++) kvs[i] = s->kvmax[i] > 0 ? s->kvmax[i] / 127.0f : 1.0f;
}
