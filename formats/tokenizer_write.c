/* tokenizer_write.c - a tokenizer.json as ptqc reads it (possibly generated
 * from GGUF metadata, formats/gguf_tokenizer.c) written out in the full form
 * Hugging Face's tokenizers library deserializes (see convert.h).
 *
 * ptqc's reader takes defaults for absent fields; the Rust deserializer
 * requires most of them (AddedToken's flags, ByteLevel's add_prefix_space
 * and trim_offsets, ...).  Every default filled in here is the value
 * ptqc's reader (formats/tokenizer.c) assumes when the field is absent, so
 * the completed file tokenizes exactly as the input did in both readers.
 */
#include "formats/convert.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static void put_bool(cJSON *o, const char *k, int v)
{
    if (!cJSON_GetObjectItemCaseSensitive(o, k)) cJSON_AddBoolToObject(o, k, v);
}

static void put_null(cJSON *o, const char *k)
{
    if (!cJSON_GetObjectItemCaseSensitive(o, k)) cJSON_AddNullToObject(o, k);
}

static void put_str(cJSON *o, const char *k, const char *v)
{
    if (!cJSON_GetObjectItemCaseSensitive(o, k)) cJSON_AddStringToObject(o, k, v);
}

/* Defaults of one normalizer / pre-tokenizer / decoder / post-processor
 * node, then of its children. */
static void complete_node(cJSON *n)
{
    if (!cJSON_IsObject(n)) return;
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(n, "type");
    const char *t = cJSON_IsString(ty) ? ty->valuestring : "";
    if (!strcmp(t, "ByteLevel")) {
        put_bool(n, "add_prefix_space", 0);
        put_bool(n, "trim_offsets", 1);
        put_bool(n, "use_regex", 1);
    } else if (!strcmp(t, "Digits")) {
        put_bool(n, "individual_digits", 0);
    } else if (!strcmp(t, "Split")) {
        put_bool(n, "invert", 0);
    } else if (!strcmp(t, "Metaspace")) {
        put_str(n, "replacement", "\xe2\x96\x81");
        put_str(n, "prepend_scheme", "always");
        put_bool(n, "split", 1);
    }
    static const char *const lists[] = {"normalizers", "pretokenizers", "decoders", "processors"};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        cJSON *l = cJSON_GetObjectItemCaseSensitive(n, lists[i]), *it;
        cJSON_ArrayForEach(it, l) complete_node(it);
    }
}

static void complete_added(cJSON *added)
{
    cJSON *a;
    cJSON_ArrayForEach(a, added)
    {
        put_bool(a, "single_word", 0);
        put_bool(a, "lstrip", 0);
        put_bool(a, "rstrip", 0);
        put_bool(a, "normalized", 0);
        put_bool(a, "special", 0);
    }
}

/* ["a", "b"] pairs as "a b" strings when no piece has a space (readable by
 * every tokenizers version; the pair form needs 0.20 or later). */
static void complete_merges(cJSON *model)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
    int pairs = 0;
    cJSON_ArrayForEach(it, m)
    {
        if (cJSON_IsString(it)) continue;
        const cJSON *l = cJSON_GetArrayItem(it, 0), *r = cJSON_GetArrayItem(it, 1);
        if (cJSON_GetArraySize(it) != 2 || !cJSON_IsString(l) || !cJSON_IsString(r) ||
            strchr(l->valuestring, ' ') || strchr(r->valuestring, ' '))
            return;
        pairs++;
    }
    if (!pairs) return;
    cJSON *out = cJSON_CreateArray();
    cJSON_ArrayForEach(it, m)
    {
        if (cJSON_IsString(it)) {
            cJSON_AddItemToArray(out, cJSON_CreateString(it->valuestring));
            continue;
        }
        const char *l = cJSON_GetArrayItem(it, 0)->valuestring, *r = cJSON_GetArrayItem(it, 1)->valuestring;
        size_t ln = strlen(l), rn = strlen(r);
        char *s = malloc(ln + rn + 2);
        if (!s) continue; /* cJSON then fails the print: reported as out of memory */
        memcpy(s, l, ln);
        s[ln] = ' ';
        memcpy(s + ln + 1, r, rn + 1);
        cJSON_AddItemToArray(out, cJSON_CreateString(s));
        free(s);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", out);
}

static void complete_model(cJSON *model)
{
    put_null(model, "dropout");
    put_null(model, "unk_token");
    put_null(model, "continuing_subword_prefix");
    put_null(model, "end_of_word_suffix");
    put_bool(model, "fuse_unk", 0);
    put_bool(model, "byte_fallback", 0);
    put_bool(model, "ignore_merges", 0);
    complete_merges(model);
}

/* TemplateProcessing "bos $A" (pair "bos $A bos $B", as Llama 2's). */
static cJSON *bos_template(const char *bos, int id)
{
    cJSON *pp = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    static const char *const keys[2] = {"single", "pair"};
    for (int k = 0; k < 2; k++) {
        cJSON *l = cJSON_AddArrayToObject(pp, keys[k]);
        for (int s = 0; s <= k; s++) {
            cJSON *st = cJSON_CreateObject(), *sq = cJSON_CreateObject();
            cJSON *sti = cJSON_AddObjectToObject(st, "SpecialToken");
            cJSON_AddStringToObject(sti, "id", bos);
            cJSON_AddNumberToObject(sti, "type_id", s);
            cJSON *sqi = cJSON_AddObjectToObject(sq, "Sequence");
            cJSON_AddStringToObject(sqi, "id", s ? "B" : "A");
            cJSON_AddNumberToObject(sqi, "type_id", s);
            cJSON_AddItemToArray(l, st);
            cJSON_AddItemToArray(l, sq);
        }
    }
    cJSON *sp = cJSON_AddObjectToObject(pp, "special_tokens"), *b = cJSON_AddObjectToObject(sp, bos);
    cJSON_AddStringToObject(b, "id", bos);
    cJSON_AddItemToObject(b, "ids", cJSON_CreateIntArray(&id, 1));
    cJSON *toks = cJSON_AddArrayToObject(b, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(bos));
    return pp;
}

/* The id of added token content (-1 if none). */
static int added_id(const cJSON *added, const char *content)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, added)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsString(c) && !strcmp(c->valuestring, content) && cJSON_IsNumber(id))
            return id->valueint;
    }
    return -1;
}

int ptq_tok_json_complete(const char *json, size_t len, const char *bos, int add_bos, char **out,
                          ptq_err *e)
{
    *out = NULL;
    cJSON *in = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return ptq_fail(e, PTQ_EFORMAT, "tokenizer.json is not a JSON object");
    }
    complete_added(cJSON_GetObjectItemCaseSensitive(in, "added_tokens"));
    complete_model(cJSON_GetObjectItemCaseSensitive(in, "model"));
    static const char *const comps[] = {"normalizer", "pre_tokenizer", "post_processor", "decoder"};
    for (size_t i = 0; i < sizeof comps / sizeof *comps; i++)
        complete_node(cJSON_GetObjectItemCaseSensitive(in, comps[i]));
    int bos_id = bos ? added_id(cJSON_GetObjectItemCaseSensitive(in, "added_tokens"), bos) : -1;
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(in, "post_processor");
    if (add_bos && bos_id >= 0 && (!pp || cJSON_IsNull(pp))) {
        cJSON_DeleteItemFromObjectCaseSensitive(in, "post_processor");
        cJSON_AddItemToObject(in, "post_processor", bos_template(bos, bos_id));
    }
    /* the key order of the files the tokenizers library writes */
    static const char *const order[] = {"version",       "truncation",     "padding",
                                        "added_tokens",  "normalizer",     "pre_tokenizer",
                                        "post_processor", "decoder",       "model"};
    cJSON *root = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        cJSON *it = cJSON_DetachItemFromObjectCaseSensitive(in, order[i]);
        if (!it && i == 0) it = cJSON_CreateString("1.0");
        if (!it && i == 3) it = cJSON_CreateArray();
        if (!it) it = cJSON_CreateNull();
        cJSON_AddItemToObject(root, order[i], it);
    }
    cJSON *rest;
    while ((rest = in->child)) { /* any other key, after those */
        cJSON_DetachItemViaPointer(in, rest);
        cJSON_AddItemToObject(root, rest->string, rest);
    }
    cJSON_Delete(in);
    *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return *out ? PTQ_OK : ptq_fail(e, PTQ_ENOMEM, "out of memory writing tokenizer.json");
}
