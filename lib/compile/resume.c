/* resume.c - after each layer: the bundle synced, the hidden states saved,
 * the journal written; on --resume: the journal checked against this run's
 * key and the run reopened after its last finished layer
 * (lib/compile/engine.h, lib/compile/journal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/compile/engine.h"

static char *hidden_file(const cstate *s, int layer)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".hidden.%d", layer);
    if (!s->o->tmpdir) return path_cat(s->o->out, suffix);
    char *b = dir_join(s->o->tmpdir, base_name(s->o->out));
    char *p = b ? path_cat(b, suffix) : NULL;
    free(b);
    return p;
}

/* The background part of a commit: save the hidden states, write the
 * journal (commit_wait then drops the previous hidden states). */
static void commit_run(void *arg)
{
    commit_job *c = arg;
    const cstate *s = c->s;
    char sha[65];
    c->rc = journal_save_hidden(c->hp, s->hidden, s->ntok * (size_t)s->cfg->hidden, sha, &c->e);
    if (!c->rc)
        c->rc = journal_write(s->journal_path, s->key, c->layer + 1, c->off, c->hp, sha, c->state,
                              &c->e);
}

int commit_layer(cstate *s, int l, ptq_err *e)
{
    int rc = commit_wait(s, e);
    uint64_t off;
    if (!rc) rc = ptq_bw_sync(s->bw, &off, e);
    if (rc) return rc;
    commit_job *c = &s->commit;
    memset(c, 0, sizeof *c);
    c->s = s, c->layer = l, c->off = off;
    c->hp = hidden_file(s, l + 1);
    c->state = cJSON_Duplicate(s->state, 1);
    if (!c->hp || !c->state) {
        free(c->hp);
        cJSON_Delete(c->state);
        return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    }
    c->active = 1;
    ptq_task_start(&c->task, commit_run, c);
    return PTQ_OK;
}

int commit_wait(cstate *s, ptq_err *e)
{
    commit_job *c = &s->commit;
    if (!c->active) return PTQ_OK;
    ptq_task_join(&c->task);
    c->active = 0;
    cJSON_Delete(c->state);
    if (c->rc) {
        unlink(c->hp);
        free(c->hp);
        *e = c->e;
        return c->rc;
    }
    if (s->hidden_path) {
        unlink(s->hidden_path);
        free(s->hidden_path);
    }
    s->hidden_path = c->hp;
    const ptq_compile_progress *p = s->o->progress;
    if (p && p->layer_done) p->layer_done(p->ctx, c->layer);
    return PTQ_OK;
}

/* --resume: read and check the journal; *start the first layer to compile
 * (0 without a journal). */
int resume_point(cstate *s, journal *j, int *start, ptq_err *e)
{
    *start = 0;
    if (access(s->journal_path, F_OK) != 0) {
        cs_warn(s, "--resume: no journal %s: starting from the beginning", s->journal_path);
        return PTQ_OK;
    }
    int rc = journal_read(s->journal_path, j, e);
    if (!rc) rc = journal_check(j, s->key, s->journal_path, e);
    if (rc) return rc;
    const cJSON *cal = cJSON_GetObjectItem(j->state, "calibration");
    const cJSON *ns = cJSON_GetObjectItem(cal, "nsamples");
    const cJSON *sl = cJSON_GetObjectItem(cal, "seqlen");
    const cJSON *ly = cJSON_GetObjectItem(j->state, "layers");
    if (!cJSON_IsNumber(ns) || !cJSON_IsNumber(sl) || !cJSON_IsArray(ly) ||
        cJSON_GetArraySize(ly) != j->layers_done || j->layers_done > s->cfg->n_layers ||
        (s->nocal ? ns->valueint != 0 || sl->valueint != 0
                  : ns->valueint < 1 || sl->valueint < 1 || sl->valueint > s->seqlen))
        return ptq_fail(e, PTQ_EFORMAT, "%s: journal state is damaged", s->journal_path);
    s->nsamples = ns->valueint;
    s->seqlen = sl->valueint;
    *start = j->layers_done;
    return PTQ_OK;
}

/* Reopen the bundle at the journal's offset and load its hidden states. */
int resume_open(cstate *s, const journal *j, ptq_err *e)
{
    s->state = cJSON_Duplicate(j->state, 1);
    int rc = ptq_bw_resume(&s->bw, s->o->out, j->offset, e);
    if (rc) return ptq_fail_prefix(e, "--resume");
    rc = alloc_hidden(s, e);
    if (!rc) rc = journal_load_hidden(j->hidden, s->hidden, s->ntok * (size_t)s->cfg->hidden,
                                      j->hidden_sha256, e);
    if (!rc) s->hidden_path = strdup(j->hidden);
    if (!rc) rc = alloc_work(s, e);
    return rc;
}
