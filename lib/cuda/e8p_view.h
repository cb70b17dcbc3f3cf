/* e8p_view.h - an E8P tensor (lib/qfmt/qtensor.h, the layout of
 * lib/qfmt/qf_e8p.c) as the kernels' ptqk_e8p_w (lib/cuda/e8p_kernels.h)
 * over the same host memory: the stage list from bits (2: E8P; 4: E8P +
 * E8P; 3: E8P + the 1-bit E8 book, its uint8 codes after stage 0), the
 * decode tables of lib/qfmt/e8p.h and the had.h plans as ptqk_had.  Host C
 * only: lib/cuda/ptqrt_load.c uploads what it points to, the CPU references
 * (lib/cuda/ref/e8p_ref.c) and the GPU checks read it as is. */
#ifndef PTQC_CUDA_E8P_VIEW_H
#define PTQC_CUDA_E8P_VIEW_H

#include <string.h>

#include "lib/cuda/e8p_kernels.h"
#include "lib/qfmt/e8p.h"
#include "lib/qfmt/had.h"
#include "lib/qfmt/qtensor.h"

/* A had.h plan as the kernels' struct (mk stays the plan's host memory). */
static inline ptqk_had ptqk_had_view(const ptq_had *h)
{
    ptqk_had d = {h->n, h->K, h->P, h->scale, h->mk};
    return d;
}

/* w <- q (hin, hout: the plans of q->cols and q->rows, or NULL to leave
 * them empty); -1 when q is not an E8P tensor of 2, 3 or 4 bits. */
static inline int ptqk_e8p_view(const ptq_qtensor *q, const ptq_had *hin, const ptq_had *hout,
                                ptqk_e8p_w *w)
{
    memset(w, 0, sizeof *w);
    if (q->format != PTQ_QF_E8P || q->cols % 8 || q->bits < 2 || q->bits > 4) return -1;
    size_t stage = (size_t)q->rows * (size_t)(q->cols / 8);
    w->rows = q->rows, w->cols = q->cols, w->nstages = q->bits == 2 ? 1 : 2;
    w->tab = ptq_e8p_tab;
    w->st[0].kind = PTQK_E8P_STAGE, w->st[0].scale = q->e8_scale[0], w->st[0].codes = q->e8_codes;
    if (q->bits > 2) {
        w->st[1].scale = q->e8_scale[1], w->st[1].codes = q->e8_codes + stage;
        w->st[1].kind = q->bits == 4 ? PTQK_E8P_STAGE : PTQK_E81B_STAGE;
        if (q->bits == 3) w->tab1 = ptq_e81b_tab;
    }
    w->su = q->e8_su, w->sv = q->e8_sv;
    if (hin) w->hin = ptqk_had_view(hin);
    if (hout) w->hout = ptqk_had_view(hout);
    return 0;
}

#endif
