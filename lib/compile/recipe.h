/* recipe.h - per-layer quantization recipes for ptqc compile (--recipe FILE).
 *
 *   {"default":   {"method": "gptq", "bits": 4, "group": 128},
 *    "overrides": [{"match": "model.layers.0.*", "method": "rtn", "bits": 8},
 *                  {"match": "*.mlp.down_proj.weight", "skip": true}]}
 *
 * Settings: method (a weight-only method of lib/compile/method.h: "rtn",
 * "gptq", "awq", "awq+gptq"), bits (2..8), group
 * (0 or a divisor of the input size), sym (true/false), skip (true: kept
 * dense), rotate ("hadamard" or "none": --rotate).  Each linear starts
 * from the command line's settings, then
 * "default", then every override whose fnmatch(3) pattern matches its tensor
 * name (model.layers.L.self_attn.q_proj.weight) or module name (the same
 * without .weight), in file order: later overrides win, key by key.
 * Errors: unreadable file PTQ_EIO; invalid JSON (with the line and column),
 * unknown keys, wrong types, values out of range, an override without
 * "match", or a recipe with neither "default" nor "overrides" (it names no
 * layer): PTQ_EFORMAT naming the file; an override whose pattern matches no
 * linear of the model: PTQ_EUSAGE naming the pattern (recipe_check_used).
 */
#ifndef PTQC_RECIPE_H
#define PTQC_RECIPE_H

#include <cJSON.h>

#include "lib/base/err.h"

struct ptq_method;

/* One set of settings; -1 (method NULL) = not set. */
typedef struct recipe_set {
    const struct ptq_method *method; /* a weight-only row of lib/compile/method.h */
    int bits, group, sym, skip;
    int rotate; /* "rotate": "hadamard" 1 or "none" 0 (lib/compile/rotate.c) */
} recipe_set;

typedef struct recipe_rule {
    char *match;
    recipe_set set;
} recipe_rule;

typedef struct recipe {
    char *path;
    recipe_set def;
    recipe_rule *rules;
    int nrules;
    cJSON *json; /* the parsed file, recorded in the manifest and journal key */
} recipe;

int recipe_load(recipe *r, const char *path, ptq_err *e);
/* Apply the default and the matching overrides onto *set; used[i] is set to
 * 1 for every override i that matched (used may be NULL). */
void recipe_apply(const recipe *r, const char *tensor, const char *module, recipe_set *set,
                  int *used);
/* PTQ_EUSAGE naming the first override with used[i] == 0. */
int recipe_check_used(const recipe *r, const int *used, const char *model, ptq_err *e);
void recipe_free(recipe *r);

#endif
