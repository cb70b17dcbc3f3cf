/* work.c - the run's buffers: the hidden states of every sample (in memory
 * or in an unlinked file under --tmpdir), the per-worker forward scratch,
 * the Hessians; and freeing all of it (lib/compile/engine.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/compile/engine.h"
#include "lib/quant/err_metric.h"

/* bytes in an unlinked file under --tmpdir, mapped at *out */
static int map_tmp(cstate *s, size_t bytes, void **out, ptq_err *e)
{
    char *p = dir_join(s->o->tmpdir, "ptqc-act-XXXXXX");
    if (!p) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
    int fd = mkstemp(p);
    if (fd < 0) {
        int rc = ptq_fail(e, PTQ_EOUTPUT, "--tmpdir %s: cannot create a file: %s", s->o->tmpdir,
                          strerror(errno));
        free(p);
        return rc;
    }
    unlink(p);
    free(p);
    int err = posix_fallocate(fd, 0, (off_t)bytes);
    if (err) {
        close(fd);
        return ptq_fail(e, PTQ_EOUTPUT, "--tmpdir %s: cannot reserve %zu bytes: %s", s->o->tmpdir,
                        bytes, strerror(err));
    }
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return ptq_fail(e, PTQ_EOUTPUT, "--tmpdir %s: mmap failed: %s", s->o->tmpdir,
                        strerror(errno));
    *out = m;
    return PTQ_OK;
}

int alloc_hidden(cstate *s, ptq_err *e)
{
    s->ntok = (size_t)s->nsamples * (size_t)s->seqlen;
    s->hidden_bytes = s->ntok * (size_t)s->cfg->hidden * sizeof(uint16_t);
    /* the layer between its stages (pass.c): the attention output, then h */
    int qd = s->cfg->n_heads * s->cfg->head_dim;
    s->stage_w = (size_t)(qd > s->cfg->hidden ? qd : s->cfg->hidden);
    s->stage_bytes = s->ntok * s->stage_w * sizeof(float);
    if (s->ntok == 0) return PTQ_OK; /* no calibration */
    if (s->o->tmpdir) {
        void *h = NULL, *st = NULL;
        int rc = map_tmp(s, s->hidden_bytes, &h, e);
        if (!rc) s->hidden = h, s->hidden_mapped = 1;
        if (!rc) rc = map_tmp(s, s->stage_bytes, &st, e);
        if (!rc) s->stage = st, s->stage_mapped = 1;
        return rc;
    }
    s->hidden = malloc(s->hidden_bytes);
    s->stage = malloc(s->stage_bytes);
    if (!s->hidden || !s->stage)
        return ptq_fail(e, PTQ_ENOMEM,
                        "calibration activations: out of memory for %zu bytes "
                        "(use --tmpdir, or fewer --nsamples / a shorter --seqlen)",
                        s->hidden_bytes + s->stage_bytes);
    return PTQ_OK;
}

static void workers(cstate *s)
{
    if (s->nocal) { /* no forward passes: one scratch buffer only */
        s->chunk = 0;
        s->nworkers = 0;
        return;
    }
    int ct = s->o->chunk_tokens > 0 ? s->o->chunk_tokens : 512;
    s->chunk = ct / s->seqlen;
    if (s->chunk < 1) s->chunk = 1;
    if (s->chunk > s->nsamples) s->chunk = s->nsamples;
    s->nworkers = s->o->threads > 0 ? s->o->threads : 1;
    if (s->nworkers > PTQ_MAX_WORKERS) s->nworkers = PTQ_MAX_WORKERS;
    int nchunks = (s->nsamples + s->chunk - 1) / s->chunk;
    if (s->nworkers > nchunks) s->nworkers = nchunks;
}

int alloc_work(cstate *s, ptq_err *e)
{
    const ptq_config *c = s->cfg;
    workers(s);
    size_t maxcols = 0, maxw = 0, wtotal = 0;
    for (int w = 0; w < PTQ_NLINEAR; w++) {
        int rows, cols;
        ptq_linear_shape(c, w, &rows, &cols);
        if ((size_t)cols > maxcols) maxcols = (size_t)cols;
        if ((size_t)rows * cols > maxw) maxw = (size_t)rows * cols;
        wtotal += (size_t)rows * cols;
    }
    size_t ctok = (size_t)s->chunk * s->seqlen;
    for (int i = 0; i < s->nworkers; i++) {
        int rc = ptq_fwd_create(&s->fwds[i], c, s->chunk * s->seqlen, s->seqlen, e);
        if (rc) return rc;
        s->x32s[i] = malloc(ctok * c->hidden * sizeof(float));
        s->caps[i] = malloc(ctok * maxcols * sizeof(float));
        if (!s->x32s[i] || !s->caps[i])
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's work buffers");
    }
    s->nscratch = ctok * c->hidden;
    if (s->nocal) { /* a scratch of 512 rows for reading dense tensors */
        s->nscratch = (size_t)512 * c->hidden;
        if (!(s->x32s[0] = malloc(s->nscratch * sizeof(float))))
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's work buffers");
    }
    s->x32 = s->x32s[0];
    /* ptq_hessian: double acc + a float chunk per worker; H and its GPTQ copy */
    size_t hbufs = 2 + (size_t)(s->nworkers > 1 ? s->nworkers : 1);
    s->mem_hess = maxcols * maxcols * (sizeof(double) + hbufs * sizeof(float));
    s->H = malloc(maxcols * maxcols * sizeof(float));
    s->Hw = malloc(maxcols * maxcols * sizeof(float));
    s->wq = malloc(maxw * sizeof(float));
    s->wclip = malloc(maxw * sizeof(float));
    s->errbuf = malloc(2 * PTQ_ERR_ROWS * maxcols * sizeof(float));
    s->amax = malloc(maxcols * sizeof(float));
    if (!s->H || !s->Hw || !s->wq || !s->wclip || !s->errbuf || !s->amax)
        return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's work buffers");
    for (int g = 0; g < 4 && s->hess_layer && !s->nocal; g++) { /* --hessians layer */
        int rows, cols;
        ptq_linear_shape(c, ptq_group_first[g], &rows, &cols);
        s->Hl[g] = malloc((size_t)cols * cols * sizeof(float));
        s->amaxl[g] = malloc((size_t)cols * sizeof(float));
        if (!s->Hl[g] || !s->amaxl[g])
            return ptq_fail(e, PTQ_ENOMEM, "out of memory for the layer's Hessians");
        s->mem_hess += (size_t)cols * cols * sizeof(float);
    }
    if (s->o->kv_int8) {
        size_t kvd = kv_dim(s);
        s->kvmax = calloc(2 * kvd, sizeof(float));
        s->kvscale = calloc(2 * kvd, sizeof(float));
        if (!s->kvmax || !s->kvscale) return ptq_fail(e, PTQ_ENOMEM, "out of memory");
        for (int i = 0; i < s->nworkers; i++)
            if (!(s->kvcaps[i] = malloc(2 * ctok * kvd * sizeof(float))))
                return ptq_fail(e, PTQ_ENOMEM, "out of memory for the KV-cache statistics");
    }
    s->mem_weights = (wtotal + 2 * (size_t)c->hidden) * sizeof(float) + maxw * sizeof(float);
    s->mem_acts = s->hidden_bytes + s->stage_bytes + (size_t)s->nworkers * ctok * (c->hidden + maxcols) * sizeof(float);
    return PTQ_OK;
}

void cleanup(cstate *s, int failed)
{
    if (s->bw) {
        if (failed) ptq_bw_abort(s->bw);
        s->bw = NULL;
        if (failed) {
            unlink(s->journal_path);
            if (s->hidden_path) unlink(s->hidden_path);
        }
    }
    if (s->hidden) {
        if (s->hidden_mapped) munmap(s->hidden, s->hidden_bytes);
        else free(s->hidden);
    }
    if (s->stage) {
        if (s->stage_mapped) munmap(s->stage, s->stage_bytes);
        else free(s->stage);
    }
    for (int i = 0; i < PTQ_MAX_WORKERS; i++) {
        ptq_fwd_free(s->fwds[i]);
        free(s->x32s[i]);
        free(s->caps[i]);
        free(s->kvcaps[i]);
    }
    free(s->H), free(s->Hw), free(s->wq), free(s->wclip), free(s->plan);
    recipe_free(&s->rec);
    awq_layer_res_free(&s->awq);
    free(s->errbuf), free(s->amax), free(s->kvmax), free(s->kvscale);
    for (int g = 0; g < 4; g++) free(s->Hl[g]), free(s->amaxl[g]);
    ptq_samples_free(&s->smp);
    cJSON_Delete(s->key);
    cJSON_Delete(s->state);
    cJSON_Delete(s->files);
    free(s->partial_path), free(s->journal_path), free(s->hidden_path);
    if (s->ck_open) ptq_ckpt_close(&s->ck);
}
