/* recipe.c - per-layer recipes (lib/compile/recipe.h). */
#include "lib/compile/recipe.h"

#include "lib/base/file.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/compile/method.h"

static int read_file(const char *path, char **out, ptq_err *e)
{
    char *buf;
    size_t n;
    int rc = ptq_read_file(path, (size_t)64 << 20, &buf, &n, e);
    if (rc) return ptq_fail_prefix(e, "recipe");
    if (strlen(buf) != n) {
        free(buf);
        return ptq_fail(e, PTQ_EFORMAT, "recipe %s: contains a NUL byte", path);
    }
    *out = buf;
    return PTQ_OK;
}

/* settings of one object; where names it in messages */
static int parse_set(const char *path, const char *where, const cJSON *o, int is_override,
                     recipe_set *s, char **match, ptq_err *e)
{
    s->method = NULL;
    s->bits = s->group = s->sym = s->skip = s->rotate = -1;
    if (!cJSON_IsObject(o)) return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s is not an object", path, where);
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        if (!strcmp(k, "match") && is_override) {
            if (!cJSON_IsString(it) || !it->valuestring[0])
                return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: \"match\" is not a non-empty string",
                                path, where);
            *match = it->valuestring;
        } else if (!strcmp(k, "method")) {
            if (!cJSON_IsString(it))
                return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: \"method\" is not a string", path, where);
            s->method = ptq_method_find(it->valuestring);
            if (!s->method || !ptq_method_per_linear(s->method)) {
                char list[256];
                ptq_method_list(list, sizeof list, 1);
                return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: method \"%s\" is not %s", path,
                                where, it->valuestring, list);
            }
        } else if (!strcmp(k, "bits") || !strcmp(k, "group")) {
            int bits = !strcmp(k, "bits");
            double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
            if (!cJSON_IsNumber(it) || v != (double)(int)v || (bits ? v < 2 || v > 8 : v < 0 || v > (1 << 20)))
                return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: \"%s\" is not an integer in %s", path,
                                where, k, bits ? "2..8" : "0..1048576");
            if (bits) s->bits = (int)v;
            else s->group = (int)v;
        } else if (!strcmp(k, "sym") || !strcmp(k, "skip")) {
            if (!cJSON_IsBool(it))
                return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: \"%s\" is not true or false", path,
                                where, k);
            *(!strcmp(k, "sym") ? &s->sym : &s->skip) = cJSON_IsTrue(it);
        } else if (!strcmp(k, "rotate")) {
            const char *v = cJSON_IsString(it) ? it->valuestring : "";
            if (strcmp(v, "hadamard") && strcmp(v, "none"))
                return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: \"rotate\" is not \"hadamard\" "
                                "or \"none\"", path, where);
            s->rotate = !strcmp(v, "hadamard");
        } else {
            return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s: unknown key \"%s\" (method, bits, group, "
                            "sym, skip, rotate%s)", path, where, k, is_override ? ", match" : "");
        }
    }
    if (is_override && !*match)
        return ptq_fail(e, PTQ_EFORMAT, "recipe %s: %s has no \"match\" pattern: it names no layer",
                        path, where);
    return PTQ_OK;
}

static void where_in(const char *text, size_t off, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n') ++*line, *col = 1;
        else ++*col;
    }
}

int recipe_load(recipe *r, const char *path, ptq_err *e)
{
    memset(r, 0, sizeof *r);
    r->def.method = NULL;
    r->def.bits = r->def.group = r->def.sym = r->def.skip = r->def.rotate = -1;
    char *text = NULL;
    int rc = read_file(path, &text, e);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        int line, col;
        where_in(text, off, &line, &col);
        free(text);
        return ptq_fail(e, PTQ_EFORMAT, "recipe %s: invalid JSON at line %d, column %d (byte %zu)",
                        path, line, col, off);
    }
    free(text);
    r->json = root;
    r->path = strdup(path);
    if (!r->path) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
    if (!rc && !cJSON_IsObject(root))
        rc = ptq_fail(e, PTQ_EFORMAT, "recipe %s: the top level is not an object", path);
    const cJSON *def = NULL, *ov = NULL, *it;
    if (!rc) cJSON_ArrayForEach(it, root) {
        if (!strcmp(it->string, "default")) def = it;
        else if (!strcmp(it->string, "overrides")) ov = it;
        else {
            rc = ptq_fail(e, PTQ_EFORMAT, "recipe %s: unknown key \"%s\" (default, overrides)", path,
                          it->string);
            break;
        }
    }
    if (!rc && ov && !cJSON_IsArray(ov))
        rc = ptq_fail(e, PTQ_EFORMAT, "recipe %s: \"overrides\" is not an array", path);
    if (!rc && !def && !cJSON_GetArraySize(ov))
        rc = ptq_fail(e, PTQ_EFORMAT, "recipe %s: names no layer (no \"default\" and no "
                      "\"overrides\")", path);
    char *m = NULL;
    if (!rc && def) rc = parse_set(path, "\"default\"", def, 0, &r->def, &m, e);
    if (!rc && ov) {
        int n = cJSON_GetArraySize(ov);
        r->rules = calloc((size_t)n + 1, sizeof *r->rules);
        if (!r->rules) rc = ptq_fail(e, PTQ_ENOMEM, "out of memory");
        for (int i = 0; i < n && !rc; i++) {
            char where[64];
            snprintf(where, sizeof where, "override %d", i + 1);
            m = NULL;
            rc = parse_set(path, where, cJSON_GetArrayItem(ov, i), 1, &r->rules[i].set, &m, e);
            if (!rc) r->rules[i].match = m; /* points into r->json */
            r->nrules = i + 1;
        }
    }
    if (rc) recipe_free(r);
    return rc;
}

static void merge(recipe_set *dst, const recipe_set *src)
{
    if (src->method) dst->method = src->method;
    if (src->bits >= 0) dst->bits = src->bits;
    if (src->group >= 0) dst->group = src->group;
    if (src->sym >= 0) dst->sym = src->sym;
    if (src->skip >= 0) dst->skip = src->skip;
    if (src->rotate >= 0) dst->rotate = src->rotate;
}

void recipe_apply(const recipe *r, const char *tensor, const char *module, recipe_set *set,
                  int *used)
{
    merge(set, &r->def);
    for (int i = 0; i < r->nrules; i++) {
        const char *p = r->rules[i].match;
        if (!fnmatch(p, tensor, 0) || !fnmatch(p, module, 0)) {
            merge(set, &r->rules[i].set);
            if (used) used[i] = 1;
        }
    }
}

int recipe_check_used(const recipe *r, const int *used, const char *model, ptq_err *e)
{
    for (int i = 0; i < r->nrules; i++)
        if (!used[i])
            return ptq_fail(e, PTQ_EUSAGE, "recipe %s: override %d: pattern \"%s\" matches no "
                            "linear of %s", r->path, i + 1, r->rules[i].match, model);
    return PTQ_OK;
}

void recipe_free(recipe *r)
{
    cJSON_Delete(r->json);
    free(r->rules);
    free(r->path);
    memset(r, 0, sizeof *r);
}
