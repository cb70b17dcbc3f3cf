/* bundle_info.c - what an open bundle's manifest says, as plain structs for
 * listings (ptqc inspect): tensors, files and totals (bundle.h).  The
 * manifest was checked when the bundle was opened. */
#include <string.h>

#include "formats/bundle_impl.h"
#include "formats/config.h"

static double num(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : cJSON_IsTrue(x) ? 1 : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : "";
}

static const cJSON *nth(const ptq_bundle *b, const char *key, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(b->manifest, key), i);
}

int ptq_bundle_ntensors(const ptq_bundle *b)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b->manifest, "tensors"));
}

void ptq_bundle_tensor_info(const ptq_bundle *b, int i, ptq_bundle_tinfo *t)
{
    const cJSON *e = nth(b, "tensors", i);
    memset(t, 0, sizeof *t);
    t->name = str(e, "name");
    t->method = str(e, "method");
    t->format = str(e, "format");
    t->dtype = str(e, "dtype");
    t->rows = (int)num(e, "rows");
    t->cols = (int)num(e, "cols");
    t->bits = (int)num(e, "bits");
    t->group = (int)num(e, "group");
    t->sym = num(e, "sym") != 0;
    t->act_order = num(e, "act_order") != 0;
    t->aq_m = (int)num(e, "codebooks");
    t->aq_b = (int)num(e, "code_bits");
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(e, "payloads");
    for (const cJSON *p = pl ? pl->child : NULL; p; p = p->next)
        t->bytes += (uint64_t)num(p, "size");
}

int ptq_bundle_nfiles(const ptq_bundle *b)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(b->manifest, "files"));
}

void ptq_bundle_file_info(const ptq_bundle *b, int i, const char **member, uint64_t *size,
                          const char **sha256)
{
    const cJSON *f = nth(b, "files", i);
    *member = str(f, "member");
    *size = (uint64_t)num(f, "size");
    *sha256 = str(f, "sha256");
}

void ptq_bundle_get_totals(const ptq_bundle *b, ptq_bundle_totals *t)
{
    memset(t, 0, sizeof *t);
    t->tensors = ptq_bundle_ntensors(b);
    for (int i = 0; i < t->tensors; i++) {
        ptq_bundle_tinfo ti;
        ptq_bundle_tensor_info(b, i, &ti);
        t->payload_bytes += (double)ti.bytes;
        t->params += (double)ti.rows * (double)ti.cols;
    }
    t->fp16_bytes = 2 * t->params;
}

int ptq_bundle_config(const ptq_bundle *b, ptq_config *c, ptq_err *e)
{
    uint64_t len;
    const char *json = ptq_bundle_member_data(b, "config.json", &len);
    if (!json) return ptq_fail(e, PTQ_EFORMAT, "%s: the bundle has no config.json member", b->path);
    if (ptq_config_parse(c, json, (size_t)len, "config.json", e))
        return ptq_fail_prefix(e, "%s", b->path);
    return PTQ_OK;
}
