/* progress.c - see progress.h */
#include "src/progress.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "src/cli.h"

void progress_init(progress *p, int mode)
{
    if (mode == PROG_AUTO) mode = isatty(2) ? PROG_TTY : PROG_LINES;
    p->mode = mode;
    p->nlayers = 0;
    p->first_layer = 0;
    p->t0 = p->tl0 = cli_now();
    p->line_open = 0;
    p->last_calib = 0;
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
    double el = cli_now() - p->tl0;
    *per_layer = done > 0 ? el / done : 0;
    *eta = done > 0 ? *per_layer * (p->nlayers - layers_done) : -1;
}

static void draw(progress *p, int layer, const char *step)
{
    double per, eta;
    rate(p, layer, &per, &eta);
    char e[32] = "?", el[32];
    if (eta >= 0) fmt_time(e, sizeof e, eta);
    fmt_time(el, sizeof el, cli_now() - p->t0);
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
    p->tl0 = cli_now();
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

void progress_calib(progress *p, int done, int total)
{
    /* at most about 50 events or redraws */
    if (done < total && (long)done * 50 / total == (long)p->last_calib * 50 / total) return;
    p->last_calib = done;
    if (p->mode == PROG_JSON) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "event", "calib");
        cJSON_AddNumberToObject(o, "done", done);
        cJSON_AddNumberToObject(o, "total", total);
        json_line(o);
    } else if (p->mode == PROG_TTY) {
        fprintf(stderr, "\r\033[Kcompile: writing data-free calibration samples %d/%d tokens", done,
                total);
        fflush(stderr);
        p->line_open = 1;
    }
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
        cJSON_AddNumberToObject(o, "seconds", cli_now() - p->t0);
        cJSON_AddNumberToObject(o, "eta", eta);
        json_line(o);
    } else if (p->mode == PROG_TTY) {
        draw(p, layer + 1 < p->nlayers ? layer + 1 : layer, "done");
    } else if (p->mode == PROG_LINES) {
        fprintf(stderr, "compile: layer %d/%d done (%.1f s)\n", layer + 1, p->nlayers,
                cli_now() - p->t0);
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
    double s = cli_now() - p->t0;
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
