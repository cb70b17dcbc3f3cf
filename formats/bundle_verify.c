/* bundle_verify.c - ptq_bundle_verify (bundle.h): every checksum, every
 * member accounted for, and the tensors against the model's config.json. */
#include <stdio.h>
#include <string.h>

#include "formats/arch.h"
#include "formats/bundle_impl.h"
#include "formats/config.h"

/* The tensors a config implies, with their shapes. */
static void expect_tensor(ptq_bndl_checker *ck, const char *name, int rows, int cols)
{
    const cJSON *ent = ptq_bndl_find_entry(ck->b, name);
    double r = -1, c = -1;
    if (!ent) {
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: tensor %s is missing", ck->b->path, name);
        return;
    }
    if (!ptq_bndl_get_int(ent, "rows", 0, 2147483647.0, &r) || !ptq_bndl_get_int(ent, "cols", 0, 2147483647.0, &c) ||
        (int)r != rows || (int)c != cols)
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: tensor %s has shape %.0f x %.0f, the config implies %d x %d",
                ck->b->path, name, r, c, rows, cols);
}

/* The int8 KV-cache scales of a layer, when present: F32 dense, 2 rows (keys,
 * values) of one scale per kv head and head-dim channel, or, as written
 * before, one per kv head. */
static void expect_kv_scale(ptq_bndl_checker *ck, const char *name, const ptq_config *c)
{
    const cJSON *ent = ptq_bndl_find_entry(ck->b, name);
    double r = -1, k = -1;
    if (!ent) return;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(ent, "format");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(ent, "dtype");
    int kvd = c->n_kv_heads * c->head_dim;
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "dense") || !cJSON_IsString(d) ||
        strcmp(d->valuestring, "F32") || !ptq_bndl_get_int(ent, "rows", 0, 2147483647.0, &r) ||
        !ptq_bndl_get_int(ent, "cols", 0, 2147483647.0, &k) || (int)r != 2 ||
        ((int)k != kvd && (int)k != c->n_kv_heads))
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: tensor %s is not dense F32 2 x %d (per channel) or 2 x %d "
                "(per head)", ck->b->path, name, kvd, c->n_kv_heads);
}

static int config_names(const ptq_config *c, const char *name)
{
    char buf[160];
    if (!strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "model.norm.weight"))
        return 1;
    if (!c->tie_embeddings && !strcmp(name, "lm_head.weight")) return 1;
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(buf, sizeof buf, "model.layers.%d.", l);
        size_t n = strlen(buf);
        if (strncmp(name, buf, n)) continue;
        const char *rest = name + n;
        if (!strcmp(rest, "input_layernorm.weight") ||
            !strcmp(rest, "post_attention_layernorm.weight") ||
            !strcmp(rest, "self_attn.kv_scale")) /* int8 KV cache scales */
            return 1;
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            snprintf(buf, sizeof buf, "%s.weight", ptq_linear_name(i));
            if (!strcmp(rest, buf)) return 1;
            snprintf(buf, sizeof buf, "%s.bias", ptq_linear_name(i));
            if (c->qkv_bias && i <= PTQ_V && !strcmp(rest, buf)) return 1;
        }
    }
    return 0;
}

static void check_against_config(ptq_bndl_checker *ck)
{
    const ptq_bundle *b = ck->b;
    uint64_t len;
    const char *json = ptq_bundle_member_data(b, "config.json", &len);
    if (!json) {
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: member config.json is missing", b->path);
        return;
    }
    if (!ptq_bundle_member_data(b, "tokenizer.json", NULL))
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: member tokenizer.json is missing", b->path);
    ptq_err e2;
    ptq_config c;
    if (ptq_config_parse(&c, json, (size_t)len, "config.json", &e2)) {
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: %s", b->path, e2.msg);
        return;
    }
    cJSON *sum = ptq_bndl_model_summary(json, (size_t)len, &e2);
    if (!sum || !cJSON_Compare(sum, cJSON_GetObjectItemCaseSensitive(b->manifest, "model"), 1))
        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: the manifest's model summary disagrees with config.json",
                b->path);
    cJSON_Delete(sum);
    char name[160];
    expect_tensor(ck, "model.embed_tokens.weight", c.vocab, c.hidden);
    for (int l = 0; l < c.n_layers; l++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        expect_tensor(ck, name, 1, c.hidden);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        expect_tensor(ck, name, 1, c.hidden);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_scale", l);
        expect_kv_scale(ck, name, &c);
        for (int i = 0; i < PTQ_NLINEAR; i++) {
            int r, k;
            ptq_linear_shape(&c, i, &r, &k);
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, ptq_linear_name(i));
            expect_tensor(ck, name, r, k);
            if (c.qkv_bias && i <= PTQ_V) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, ptq_linear_name(i));
                expect_tensor(ck, name, 1, r);
            }
        }
    }
    expect_tensor(ck, "model.norm.weight", 1, c.hidden);
    if (!c.tie_embeddings) expect_tensor(ck, "lm_head.weight", c.vocab, c.hidden);
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(b->manifest, "tensors");
    for (const cJSON *t = ts->child; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (cJSON_IsString(n) && !config_names(&c, n->valuestring))
            ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: tensor %s is not part of a %s model with this config",
                    b->path, n->valuestring, c.model_type);
    }
}

/* Every member must be accounted for: a file, a payload, an entry, the manifest. */
static void check_members(ptq_bndl_checker *ck)
{
    const ptq_bundle *b = ck->b;
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(b->manifest, "tensors");
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(b->manifest, "files");
    for (int i = 0; i < b->nmembers - 1; i++) {
        const char *mn = b->members[i].name;
        int known = 0;
        for (const cJSON *x = fs->child; x && !known; x = x->next) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(x, "member");
            known = cJSON_IsString(m) && !strcmp(m->valuestring, mn);
        }
        for (const cJSON *t = ts->child; t && !known; t = t->next) {
            const cJSON *pl = cJSON_GetObjectItemCaseSensitive(t, "payloads");
            for (const cJSON *p = pl ? pl->child : NULL; p && !known; p = p->next) {
                const cJSON *m = cJSON_GetObjectItemCaseSensitive(p, "member");
                known = cJSON_IsString(m) && !strcmp(m->valuestring, mn);
            }
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
            char ent[160];
            if (!known && cJSON_IsString(n)) {
                snprintf(ent, sizeof ent, TPREFIX "%s.json", n->valuestring);
                if (!strcmp(ent, mn)) {
                    known = 1;
                    const ptq_bundle_member *m = &b->members[i];
                    cJSON *copy =
                        cJSON_ParseWithLength((const char *)b->map + m->offset, (size_t)m->size);
                    if (!cJSON_Compare(copy, t, 1))
                        ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: entry member %s disagrees with the manifest",
                                b->path, mn);
                    cJSON_Delete(copy);
                }
            }
        }
        if (!known) ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: unknown member %s", b->path, mn);
    }
    /* duplicate tensor names, act_order consistency */
    for (const cJSON *t = ts->child; t; t = t->next) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name");
        if (!cJSON_IsString(n)) continue;
        for (const cJSON *u = t->next; u; u = u->next) {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(u, "name");
            if (cJSON_IsString(m) && !strcmp(m->valuestring, n->valuestring))
                ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: tensor %s is listed twice", b->path, n->valuestring);
        }
        const cJSON *ao = cJSON_GetObjectItemCaseSensitive(t, "act_order");
        const cJSON *pl = cJSON_GetObjectItemCaseSensitive(t, "payloads");
        if (ao && cJSON_IsTrue(ao) != (cJSON_GetObjectItemCaseSensitive(pl, "g_idx") != NULL))
            ptq_bndl_problem(ck, PTQ_EVERIFY, "%s: tensor %s: act_order disagrees with its g_idx payload",
                    b->path, n->valuestring);
    }
}

int ptq_bundle_verify(const ptq_bundle *b, int *nbad, void (*cb)(void *ud, const char *line),
                      void *ud, ptq_err *e)
{
    ptq_bndl_checker ck = {.b = b, .cb = cb, .ud = ud};
    ptq_bndl_check_manifest(&ck, 1);
    check_members(&ck);
    check_against_config(&ck);
    *nbad = ck.n;
    if (ck.n) return ptq_fail(e, PTQ_EVERIFY, "%s", ck.first);
    return PTQ_OK;
}
