/* progress.h - progress of long runs on stderr.
 *
 * PROG_TTY: one line redrawn in place (layer k/n, step, rate, ETA);
 * PROG_LINES: one plain line per finished layer and per tenth of the
 * data-free sampling (stderr is not a terminal);
 * PROG_JSON: one JSON object per event and line, for build farms:
 *   {"event":"start","layers":n,"samples":s,"seqlen":t}
 *   {"event":"calib","done":tokens,"total":tokens,"tokens_per_s":r,"eta":s}
 *       (data-free sampling; eta -1 until a rate is known)
 *   {"event":"step","layer":k,"layers":n,"step":"qkv"}   (qkv, o, mlp, down, output)
 *   {"event":"layer_done","layer":k,"layers":n,"seconds":s,"eta":s}
 *       emitted after the layer is in the bundle and the journal is on disk
 *   {"event":"warning","message":"..."}
 *   {"event":"done","output":path,"seconds":s}
 * PROG_QUIET: nothing but warnings.
 * Layers are numbered from 0 in JSON and from 1 on the terminal line.
 */
#ifndef PTQC_PROGRESS_H
#define PTQC_PROGRESS_H

#include "lib/compile/compile.h"

enum prog_mode { PROG_AUTO = 0, PROG_TTY, PROG_LINES, PROG_JSON, PROG_QUIET };

typedef struct progress {
    int mode;
    int nlayers;
    int first_layer;   /* layer the run started at (after --resume) */
    double t0;         /* start of the run */
    double tl0;        /* start of the first layer of this run */
    int line_open;     /* a TTY line is drawn and must be cleared */
    int last_calib;    /* calibration tokens at the last calib event */
    int calib0;        /* tokens at the first calib event, at time tc0 */
    double tc0;
} progress;

/* mode PROG_AUTO picks PROG_TTY when stderr is a terminal, else PROG_LINES. */
void progress_init(progress *p, int mode);
void progress_start(progress *p, int nlayers, int first_layer, int samples, int seqlen);
void progress_calib(progress *p, int done, int total);
void progress_step(progress *p, int layer, const char *step);
void progress_layer_done(progress *p, int layer);
void progress_warn(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress_done(progress *p, const char *output);
/* Clear a drawn terminal line (before an error message). */
void progress_clear(progress *p);
/* The compile engine's callbacks (lib/compile/compile.h) printing through p. */
void progress_callbacks(progress *p, ptq_compile_progress *cb);

#endif
