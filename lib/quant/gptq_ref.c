/* gptq_ref.c - GPTQ one column at a time (the paper's algorithm without lazy
 * batches): quantize column i of every row, then subtract its error times
 * row i of U from every later column at once.  The same preparation (dead
 * columns, order, grids fixed in advance, U) and output as ptq_gptq
 * (lib/quant/gptq_impl.h); the blocked ptq_gptq is tested against it. */
#include <stdlib.h>

#include "lib/quant/gptq_impl.h"
#include "lib/qfmt/pack.h"

static int column_loop(ptq_gptq_state *s, const ptq_gptq_opts *o, int nt, double *loss_out,
                       ptq_err *e)
{
    (void)nt;
    int rows = s->rows, cols = s->cols, rc = PTQ_OK;
    double loss = 0.0;
    for (int i = 0; i < cols && !rc; i++) {
        const float *u = s->U + (size_t)i * cols;
        float d = u[i];
        for (int r = 0; r < rows && !rc; r++) {
            float *w = s->W + (size_t)r * cols;
            ptq_qgrid *g = ptq_gptq_grid_at(s, r, i);
            if (!s->fixed && i % s->group == 0) {
                /* the group's grid on its weights as updated so far */
                int len = ptq_pack_group_len(cols, s->group, i / s->group); /* last: shorter */
                ptq_quant_grid(w + i, len, 1, &o->q, g);
                if ((rc = ptq_int_grid_check(g, r, s->perm[i], e))) break;
            }
            int q = 0;
            float wq = 0.0f;
            if ((rc = ptq_gptq_code(g, w[i], r, s->perm[i], &q, &wq, e))) break;
            float dq = w[i] - wq, ev = dq / d;
            loss += (double)dq * dq / ((double)d * d) / 2;
            s->Q[(size_t)r * cols + i] = (uint8_t)q;
            for (int j = i + 1; j < cols; j++) w[j] -= ev * u[j];
        }
    }
    *loss_out = loss;
    return rc;
}

int ptq_gptq_reference(const float *W, float *H, int rows, int cols, const ptq_gptq_opts *o,
                       ptq_qtensor *out, ptq_gptq_report *rep, ptq_err *e)
{
    return ptq_gptq_run(W, H, rows, cols, o, column_loop, out, rep, e);
}
