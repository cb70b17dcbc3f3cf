/* progress.c - see progress.h */
#include "src/progress.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "lib/base/clock.h"

void progress_init(progress *p, int mode)
{
    if (mode == PROG_AUTO) mode = isatty(2) ? PROG_TTY : PROG_LINES;
    p->mode = mode;
    p->nlayers = 0;
    p->first_layer = 0;
    p->t0 = p->tl0 = ptq_now();
    p->line_open = 0;
    p->last_calib = 0;
    p->calib0 = -1;
    p->tc0 = 0;
}

void progress_clear(progress *p)
{
    if (p->mode == PROG_TTY && p->line_open) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->line_open = 0;
    }
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

/* Seconds per layer so far in this run, and the remaining time. */
static void rate(const progress *p, int layers_done, double *per_layer, double *eta)
{
    int done = layers_done - p->first_layer;
    double el = ptq_now() - p->tl0;
    *per_layer = done > 0 ? el / done : 0;
    *eta = done > 0 ? *per_layer * (p->nlayers - layers_done) : -1;
}

static void draw(progress *p, int layer, const char *step)
{
    double per, eta;
    rate(p, layer, &per, &eta);
    char e[32] = "?", el[32];
    if (eta >= 0) fmt_time(e, sizeof e, eta);
    fmt_time(el, sizeof el, ptq_now() - p->t0);
    fprintf(stderr, "\r\033[Kcompile: layer %d/%d %-6s %s elapsed", layer + 1, p->nlayers, step, el);
    if (per > 0) fprintf(stderr, ", %.2f s/layer, ETA %s", per, e);
    fflush(stderr);
    p->line_open = 1;
}

static void json_line(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fprintf(stderr, "%s\n", s);
        fflush(stderr);
        cJSON_free(s);
    }
    cJSON_Delete(o);
}

void progress_start(progress *p, int nlayers, int first_layer, int samples, int seqlen)
{
    p->nlayers = nlayers;
    p->first_layer = first_layer;
    p->tl0 = ptq_now();
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "start");
        cJSON_AddNumberToObject(o, "layers", nlayers);
        cJSON_AddNumberToObject(o, "first_layer", first_layer);
        cJSON_AddNumberToObject(o, "samples", samples);
        cJSON_AddNumberToObject(o, "seqlen", seqlen);
        json_line(o);
    }
}

/* Tokens per second since the first calib event, and the remaining time
 * (-1 while unknown). */
static void calib_rate(progress *p, int done, int total, double *rate, double *eta)
{
    double now = ptq_now();
    if (p->calib0 < 0) { /* the first event: the clock starts */
        p->calib0 = done;
        p->tc0 = now;
    }
    double el = now - p->tc0;
    *rate = el > 0 && done > p->calib0 ? (done - p->calib0) / el : 0;
    *eta = *rate > 0 ? (total - done) / *rate : -1;
}

void progress_calib(progress *p, int done, int total)
{
    int steps = p->mode == PROG_LINES ? 10 : 50; /* events or redraws, about */
    int first = p->calib0 < 0;
    if (!first && done < total &&
        (long)done * steps / total == (long)p->last_calib * steps / total)
        return;
    p->last_calib = done;
    double rate, eta;
    calib_rate(p, done, total, &rate, &eta);
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "calib");
        cJSON_AddNumberToObject(o, "done", done);
        cJSON_AddNumberToObject(o, "total", total);
        cJSON_AddNumberToObject(o, "tokens_per_s", rate);
        cJSON_AddNumberToObject(o, "eta", eta);
        json_line(o);
        return;
    }
    if (p->mode != PROG_TTY && p->mode != PROG_LINES) return;
    char e[32] = "?";
    if (eta >= 0) fmt_time(e, sizeof e, eta);
    fprintf(stderr, "%scompile: data-free calibration samples %d/%d tokens, %.1f tokens/s, ETA %s%s",
            p->mode == PROG_TTY ? "\r\033[K" : "", done, total, rate, e,
            p->mode == PROG_TTY ? "" : "\n");
    fflush(stderr);
    p->line_open = p->mode == PROG_TTY;
}

void progress_step(progress *p, int layer, const char *step)
{
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "step");
        cJSON_AddNumberToObject(o, "layer", layer);
        cJSON_AddNumberToObject(o, "layers", p->nlayers);
        cJSON_AddStringToObject(o, "step", step);
        json_line(o);
    } else if (p->mode == PROG_TTY) {
        draw(p, layer, step);
    }
}

void progress_layer_done(progress *p, int layer)
{
    double per, eta;
    rate(p, layer + 1, &per, &eta);
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "layer_done");
        cJSON_AddNumberToObject(o, "layer", layer);
        cJSON_AddNumberToObject(o, "layers", p->nlayers);
        cJSON_AddNumberToObject(o, "seconds", ptq_now() - p->t0);
        cJSON_AddNumberToObject(o, "eta", eta);
        json_line(o);
    } else if (p->mode == PROG_TTY) {
        draw(p, layer + 1 < p->nlayers ? layer + 1 : layer, "done");
    } else if (p->mode == PROG_LINES) {
        fprintf(stderr, "compile: layer %d/%d done (%.1f s)\n", layer + 1, p->nlayers,
                ptq_now() - p->t0);
    }
}

void progress_warn(progress *p, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "warning");
        cJSON_AddStringToObject(o, "message", msg);
        json_line(o);
        return;
    }
    progress_clear(p);
    fprintf(stderr, "ptqc compile: warning: %s\n", msg);
}

void progress_done(progress *p, const char *output)
{
    double s = ptq_now() - p->t0;
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "done");
        cJSON_AddStringToObject(o, "output", output);
        cJSON_AddNumberToObject(o, "seconds", s);
        json_line(o);
    } else if (p->mode == PROG_TTY || p->mode == PROG_LINES) {
        progress_clear(p);
        fprintf(stderr, "compile: wrote %s in %.1f s\n", output, s);
    }
}

/* ---------------------------------------------------------------- callbacks */

static void cb_start(void *p, int nlayers, int first, int samples, int seqlen)
{
    progress_start(p, nlayers, first, samples, seqlen);
}
static void cb_calib(void *p, int done, int total) { progress_calib(p, done, total); }
static void cb_step(void *p, int layer, const char *step) { progress_step(p, layer, step); }
static void cb_layer_done(void *p, int layer) { progress_layer_done(p, layer); }
static void cb_warn(void *p, const char *msg) { progress_warn(p, "%s", msg); }
static void cb_done(void *p, const char *output) { progress_done(p, output); }

void progress_callbacks(progress *p, ptq_compile_progress *cb)
{
    cb->ctx = p;
    cb->start = cb_start;
    cb->calib = cb_calib;
    cb->step = cb_step;
    cb->layer_done = cb_layer_done;
    cb->warn = cb_warn;
    cb->done = cb_done;
}
