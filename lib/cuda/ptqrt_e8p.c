/* ptqrt_e8p.c - QuIP# (E8P) linears onto the device for libptqrt: the codes
 * of each stage, the sign vectors and the stage scales as stored
 * (lib/qfmt/qf_e8p.c), the two 256-entry decode tables once per model, the
 * Hadamard plans of had.h once per length, and one scratch for the largest
 * linear (ptqk_linear_e8p, lib/cuda/e8p.cu). */
#include <string.h>

#include "lib/cuda/e8p_view.h"
#include "lib/cuda/ptqrt_impl.h"
#include "lib/qfmt/qfmt.h"

/* The device plan of length n (cached by length in m->e8_had). */
static int e8p_plan(ptqrt_model *m, int n, ptqk_had *out, ptq_err *e)
{
    for (int i = 0; i < m->e8_nhad; i++)
        if (m->e8_had[i].n == n) {
            *out = m->e8_had[i];
            return PTQ_OK;
        }
    ptq_had h;
    int rc = ptq_had_plan(&h, n, e);
    if (rc) return rc;
    void *mk;
    rc = ptqrt_upload(m, &mk, h.mk, sizeof *h.mk * (size_t)h.K * (size_t)h.K, e);
    if (!rc) {
        *out = ptqk_had_view(&h);
        out->mk = mk;
        if (m->e8_nhad < (int)(sizeof m->e8_had / sizeof m->e8_had[0])) m->e8_had[m->e8_nhad++] = *out;
    }
    ptq_had_free(&h);
    return rc;
}

int ptqrt_upload_e8p(ptqrt_model *m, const ptq_qtensor *q, const char *name, lin *l, ptq_err *e)
{
    ptqk_e8p_w w;
    if (ptqk_e8p_view(q, NULL, NULL, &w))
        return ptq_fail(e, PTQ_EFORMAT, "%s: E8P tensor of %d bits; the CUDA runtime runs 2, 3 and 4",
                        name, q->bits);
    int rc = PTQ_OK;
    void *p;
    if (!m->e8_tab) {
        if ((rc = ptqrt_upload(m, &p, ptq_e8p_tab, sizeof ptq_e8p_tab, e))) return rc;
        m->e8_tab = p;
    }
    if (w.tab1 && !m->e8_tab1) {
        if ((rc = ptqrt_upload(m, &p, ptq_e81b_tab, sizeof ptq_e81b_tab, e))) return rc;
        m->e8_tab1 = p;
    }
    w.tab = m->e8_tab;
    w.tab1 = w.tab1 ? m->e8_tab1 : NULL;
    size_t per = (size_t)q->rows * (size_t)(q->cols / 8);
    for (int s = 0; s < w.nstages; s++) {
        size_t bytes = per * (w.st[s].kind == PTQK_E8P_STAGE ? 2 : 1);
        if ((rc = ptqrt_upload(m, &p, w.st[s].codes, bytes, e))) return rc;
        w.st[s].codes = p;
    }
    if ((rc = ptqrt_upload(m, &p, q->e8_su, (size_t)q->cols, e))) return rc;
    w.su = p;
    if ((rc = ptqrt_upload(m, &p, q->e8_sv, (size_t)q->rows, e))) return rc;
    w.sv = p;
    if ((rc = e8p_plan(m, q->cols, &w.hin, e)) || (rc = e8p_plan(m, q->rows, &w.hout, e)))
        return ptq_fail_prefix(e, "%s", name);
    l->is_e8p = 1;
    l->ew = w;
    size_t sf = ptqk_e8p_scratch_floats(&w, m->opt.max_tokens);
    if (sf > m->e8_scratch_n) m->e8_scratch_n = sf;
    m->weight_bits = m->weight_bits < 0 ? q->bits : (m->weight_bits == q->bits ? q->bits : 0);
    return PTQ_OK;
}

int ptqrt_e8p_finish(ptqrt_model *m, ptq_err *e)
{
    if (m->embed.is_e8p)
        return ptq_fail(e, PTQ_EFORMAT, "model.embed_tokens.weight: an E8P embedding table is not "
                        "supported by the CUDA runtime; evaluate this bundle with --device cpu");
    if (!m->e8_scratch_n) return PTQ_OK;
    return ptqrt_dalloc(m, (void **)&m->e8_scratch, sizeof(float) * m->e8_scratch_n, &m->bytes_scratch, e);
}
