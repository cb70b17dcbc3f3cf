/* calibrate.c - the calibration samples: windows cut from the --calib text,
 * or sequences the model writes itself (data-free) (lib/compile/engine.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/samples.h"
#include "calib/text.h"
#include "formats/tokenizer.h"
#include "lib/base/sha256.h"
#include "lib/compile/engine.h"
#include "lib/model/generate.h"

/* Read the calibration text (hash only; tokenized later by cut_text). */
int read_text(cstate *s, ptq_text *txt, ptq_err *e)
{
    ptq_text_opts to;
    memset(&to, 0, sizeof to);
    to.jsonl_field = s->o->jsonl_field;
    to.utf8_policy = PTQ_UTF8_REPLACE;
    int rc = ptq_text_read(txt, s->o->calib, s->o->ncalib, &to, e);
    if (rc) return rc;
    if (txt->n_replaced)
        cs_warn(s, "calibration text: %zu invalid UTF-8 sequences replaced by U+FFFD",
                txt->n_replaced);
    return PTQ_OK;
}

static int bos_id(const cstate *s)
{
    if (s->ck.tok && ptq_tok_bos(s->ck.tok) >= 0) return ptq_tok_bos(s->ck.tok);
    return s->cfg->bos_id;
}

static int cut_text(cstate *s, const ptq_text *txt, cJSON *cal, ptq_err *e)
{
    if (!s->ck.tok)
        return ptq_fail(e, PTQ_EFORMAT, "%s: no tokenizer.json: cannot tokenize --calib text",
                        s->o->model);
    int n = txt->ndocs;
    int32_t **ids = calloc((size_t)(n ? n : 1), sizeof *ids);
    size_t *lens = calloc((size_t)(n ? n : 1), sizeof *lens);
    int rc = (!ids || !lens) ? ptq_fail(e, PTQ_ENOMEM, "calibration: out of memory") : PTQ_OK;
    for (int i = 0; i < n && !rc; i++) {
        rc = ptq_tok_encode(s->ck.tok, txt->docs[i].text, txt->docs[i].len, 0, &ids[i], &lens[i], e);
        if (rc) ptq_fail_prefix(e, "%s", txt->docs[i].name);
    }
    if (!rc)
        rc = ptq_samples_cut((const int32_t *const *)ids, lens, n, bos_id(s), s->want_nsamples,
                             s->seqlen, s->o->seed, s->o->calib[0], &s->smp, e);
    for (int i = 0; i < n && ids; i++) free(ids[i]);
    free(ids);
    free(lens);
    if (rc) return rc;
    if (s->smp.short_corpus)
        cs_warn(s, "calibration text has only %ld tokens, less than one window of %d: "
                   "using one window of %d tokens",
                s->smp.stream_tokens, s->seqlen, s->smp.seqlen);
    cJSON_AddNumberToObject(cal, "documents", n);
    cJSON_AddNumberToObject(cal, "stream_tokens", (double)s->smp.stream_tokens);
    return PTQ_OK;
}

static void calib_progress(void *ud, int done, int total)
{
    const ptq_compile_progress *p = ((cstate *)ud)->o->progress;
    if (p && p->calib) p->calib(p->ctx, done, total);
}

static int data_free(cstate *s, ptq_err *e)
{
    int bos = bos_id(s);
    if (bos < 0 || bos >= s->cfg->vocab)
        return ptq_fail(e, PTQ_EDATA, "%s: the model has no BOS token to start data-free "
                                      "calibration samples from; give --calib", s->o->model);
    ptq_samples *m = &s->smp;
    memset(m, 0, sizeof *m);
    m->n = s->want_nsamples;
    m->seqlen = s->seqlen;
    m->ids = malloc((size_t)m->n * (size_t)m->seqlen * sizeof *m->ids);
    if (!m->ids) return ptq_fail(e, PTQ_ENOMEM, "data-free calibration: out of memory");
    int rc = ptq_gen_samples(&s->src, bos, m->n, m->seqlen, s->o->seed, m->ids, calib_progress,
                             s, e);
    int total = m->n * m->seqlen;
    if (!rc) calib_progress(s, total, total); /* every token, the BOS positions too */
    return rc;
}

/* The samples of a fresh run into s->smp, described in cal; s->nsamples and
 * s->seqlen become what was cut. */
int calibrate(cstate *s, const ptq_text *txt, cJSON *cal, ptq_err *e)
{
    const ptq_compile_opts *o = s->o;
    int rc;
    char hex[65];
    if (s->nocal) {
        cJSON_AddStringToObject(cal, "source", "none");
        char why[256];
        snprintf(why, sizeof why, "no calibration: weight-space error (no --calib, and %s "
                 "rounds each weight from the weights alone)", s->m->name);
        cJSON_AddStringToObject(cal, "reason", why);
        cJSON_AddNumberToObject(cal, "nsamples", 0);
        cJSON_AddNumberToObject(cal, "seqlen", 0);
        s->nsamples = s->seqlen = 0;
        return PTQ_OK;
    }
    if (o->ncalib) {
        ptq_sha256_hex(txt->sha256, hex);
        cJSON_AddStringToObject(cal, "source", "text");
        cJSON *f = cJSON_AddArrayToObject(cal, "files");
        for (int i = 0; i < o->ncalib; i++) cJSON_AddItemToArray(f, cJSON_CreateString(o->calib[i]));
        cJSON_AddStringToObject(cal, "sha256", hex);
        rc = cut_text(s, txt, cal, e);
    } else {
        cJSON_AddStringToObject(cal, "source", "data-free");
        cJSON_AddStringToObject(cal, "sampling", "from BOS, temperature 1, top-p 1");
        rc = data_free(s, e);
    }
    if (rc) return rc;
    uint8_t d[32];
    ptq_sha256(s->smp.ids, (size_t)s->smp.n * s->smp.seqlen * sizeof(int32_t), d);
    ptq_sha256_hex(d, hex);
    cJSON_AddStringToObject(cal, "samples_sha256", hex);
    cJSON_AddNumberToObject(cal, "nsamples", s->smp.n);
    cJSON_AddNumberToObject(cal, "seqlen", s->smp.seqlen);
    s->nsamples = s->smp.n;
    s->seqlen = s->smp.seqlen;
    return PTQ_OK;
}
