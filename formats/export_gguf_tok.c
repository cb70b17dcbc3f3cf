/* export_gguf_tok.c - the tokenizer.ggml.* metadata of a gguf export
 * (export_gguf.h), from the bundle's tokenizer.json and
 * tokenizer_config.json.
 *
 * SentencePiece-style BPE (byte fallback, Prepend("▁") normalizer) becomes
 * tokenizer.ggml.model "llama": tokens, scores, token_type.  llama.cpp and
 * ptqc's reader merge the pair whose merged piece scores highest, so the
 * score of a piece is minus the rank of the first merge that makes it
 * (single characters 0); a multi-character piece no merge makes is typed
 * UNUSED, so neither tokenizer can make it.  <0xNN> pieces are BYTE.
 * Byte-level BPE becomes "gpt2": tokens, token_type and merges in rank
 * order, and tokenizer.ggml.pre named after the pre-tokenizer: ByteLevel
 * alone "gpt-2", Digits(individual) + ByteLevel "smollm", the Llama-3
 * Split regex "llama-bpe", the Qwen2 regex with NFC "qwen2"; any other is
 * refused.  Added tokens are CONTROL (special) or USER_DEFINED, the unk
 * token UNKNOWN unless it is an added token (then the text matches it as
 * Hugging Face does); ids the tokenizer leaves free below the model's vocabulary
 * size are "[PADn]" UNUSED.  bos/eos/unk/pad ids, add_bos_token,
 * add_eos_token, tokenizer.chat_template (when tokenizer_config.json has
 * one) and (llama) add_space_prefix complete it.
 */
#include "formats/export_gguf.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf_vocab.h"
#include "formats/tokenizer.h"

typedef struct {
    const char *s;
    int32_t id;
} pref;

typedef struct tk {
    const ptq_bundle *b;
    int n;           /* n_vocab */
    char **tok;      /* [n] borrowed from the JSON or owned (pads: in own) */
    char **own;      /* [n] */
    int32_t *type;   /* [n] */
    float *score;    /* [n] */
    pref *ix;        /* sorted by piece */
    int nix;
    cJSON *root, *cfg;
    ptq_err *e;
} tk;

static int bad(tk *t, const char *fmt, const char *what)
{
    return ptq_fail(t->e, PTQ_EDATA, "%s: tokenizer.json: %s%s", t->b->path, fmt, what ? what : "");
}

static int cmp_pref(const void *a, const void *b)
{
    return strcmp(((const pref *)a)->s, ((const pref *)b)->s);
}

static int32_t lookup(const tk *t, const char *s)
{
    pref key = {s, 0};
    const pref *r = bsearch(&key, t->ix, (size_t)t->nix, sizeof *r, cmp_pref);
    return r ? r->id : -1;
}

/* tokens from model.vocab and added_tokens; pads in the holes. */
static int fill_tokens(tk *t, const cJSON *model)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return bad(t, "model.vocab missing", NULL);
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int id = cJSON_IsNumber(it) ? it->valueint : -1;
        if (id < 0 || id >= t->n) return bad(t, "a token id outside the model's vocabulary: ", it->string);
        t->tok[id] = it->string;
        t->type[id] = TT_NORMAL;
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(t->root, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(c) || id->valueint < 0 || id->valueint >= t->n)
            return bad(t, "an added token without id and content in the vocabulary", NULL);
        t->tok[id->valueint] = c->valuestring;
        t->type[id->valueint] =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special")) ? TT_CONTROL : TT_USER;
    }
    for (int i = 0; i < t->n; i++) {
        if (t->tok[i] && !t->tok[i][0]) return bad(t, "an empty token", NULL);
        if (t->tok[i]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", i);
        if (!(t->own[i] = strdup(pad))) return ptq_fail(t->e, PTQ_ENOMEM, "out of memory");
        t->tok[i] = t->own[i];
        t->type[i] = TT_UNUSED;
    }
    t->ix = malloc((size_t)t->n * sizeof *t->ix);
    if (!t->ix) return ptq_fail(t->e, PTQ_ENOMEM, "out of memory");
    for (int i = 0; i < t->n; i++) t->ix[t->nix++] = (pref){t->tok[i], i};
    qsort(t->ix, (size_t)t->nix, sizeof *t->ix, cmp_pref);
    return PTQ_OK;
}

/* Merge i as the two pieces "a b" (string) or ["a", "b"]; 0 when malformed. */
static int merge_pair(const cJSON *m, char *buf, size_t n, const char **a, const char **b)
{
    if (cJSON_IsString(m)) {
        const char *sp = strchr(m->valuestring, ' ');
        if (!sp || strchr(sp + 1, ' ') || strlen(m->valuestring) >= n) return 0;
        strcpy(buf, m->valuestring);
        buf[sp - m->valuestring] = 0;
        *a = buf;
        *b = buf + (sp - m->valuestring) + 1;
        return 1;
    }
    const cJSON *x = cJSON_GetArrayItem(m, 0), *y = cJSON_GetArrayItem(m, 1);
    if (cJSON_GetArraySize(m) != 2 || !cJSON_IsString(x) || !cJSON_IsString(y)) return 0;
    *a = x->valuestring;
    *b = y->valuestring;
    return 1;
}

static int n_chars(const char *s)
{
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* SentencePiece: scores from the merge ranks, BYTE and UNUSED types. */
static int spm_scores(tk *t, const cJSON *merges)
{
    char *made = calloc((size_t)t->n, 1);
    if (!made) return ptq_fail(t->e, PTQ_ENOMEM, "out of memory");
    int i = 0, rc = PTQ_OK;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        char buf[1024], cat[1024];
        const char *a, *b;
        if (!merge_pair(m, buf, sizeof buf, &a, &b) || strlen(a) + strlen(b) >= sizeof cat) {
            rc = bad(t, "a malformed merge", NULL);
            break;
        }
        size_t la = strlen(a);
        memcpy(cat, a, la);
        memcpy(cat + la, b, strlen(b) + 1);
        int32_t id = lookup(t, cat);
        if (id >= 0 && !made[id]) made[id] = 1, t->score[id] = -(float)i;
        i++;
    }
    for (int k = 0; k < t->n && rc == PTQ_OK; k++) {
        const char *s = t->tok[k];
        if (t->type[k] != TT_NORMAL) continue;
        if (strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>') t->type[k] = TT_BYTE;
        else if (!made[k] && n_chars(s) > 1) t->type[k] = TT_UNUSED;
    }
    free(made);
    return rc;
}

static const char *type_of(const cJSON *o)
{
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

/* tokenizer.ggml.pre for a byte-level pre-tokenizer, or NULL. */
static const char *pre_name(const tk *t)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(t->root, "pre_tokenizer");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(t->root, "normalizer");
    int nfc = norm && !strcmp(type_of(norm), "NFC");
    if (norm && !cJSON_IsNull(norm) && !nfc) return NULL;
    if (!strcmp(type_of(p), "ByteLevel"))
        return nfc || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space")) ? NULL
                                                                                            : "gpt-2";
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    const cJSON *a = cJSON_GetArrayItem(l, 0), *b = cJSON_GetArrayItem(l, 1);
    if (strcmp(type_of(p), "Sequence") || cJSON_GetArraySize(l) != 2 ||
        strcmp(type_of(b), "ByteLevel") ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "add_prefix_space")))
        return NULL;
    int regex = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "use_regex"));
    if (!strcmp(type_of(a), "Digits") && regex && !nfc &&
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "individual_digits")))
        return "smollm";
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(a, "pattern"), "Regex");
    if (strcmp(type_of(a), "Split") || regex || !cJSON_IsString(re)) return NULL;
    if (!nfc && !strcmp(re->valuestring, ptq_gguf_llama3_re)) return "llama-bpe";
    if (nfc && !strcmp(re->valuestring, ptq_gguf_qwen2_re)) return "qwen2";
    return NULL;
}

/* Does the SentencePiece pipeline put "▁" in front of the text? */
static int add_space(const tk *t)
{
    const cJSON *n;
    cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(t->root, "normalizer"), "normalizers"))
        if (!strcmp(type_of(n), "Prepend")) return 1;
    return 0;
}

/* tokenizer_config.json's key as a token id (a string or {content}), -1. */
static int32_t cfg_token(const tk *t, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(t->cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? lookup(t, v->valuestring) : -1;
}

static int put_id(ptq_gguf_w *w, const char *key, int32_t id, ptq_err *e)
{
    return id < 0 ? PTQ_OK : ptq_gguf_w_u32(w, key, (uint32_t)id, e);
}

/* The special ids and flags. */
static int put_specials(tk *t, const ptq_tokenizer *pt, int spm, ptq_gguf_w *w)
{
    ptq_err *e = t->e;
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(t->root, "model"), "unk_token");
    int32_t unk_id = cJSON_IsString(unk) ? lookup(t, unk->valuestring) : -1;
    if (unk_id >= 0 && t->type[unk_id] == TT_NORMAL) t->type[unk_id] = TT_UNKNOWN;
    int rc;
    if ((rc = put_id(w, "tokenizer.ggml.bos_token_id", ptq_tok_bos(pt), e)) ||
        (rc = put_id(w, "tokenizer.ggml.eos_token_id", ptq_tok_eos(pt), e)) ||
        (rc = put_id(w, "tokenizer.ggml.unknown_token_id", unk_id, e)) ||
        (rc = put_id(w, "tokenizer.ggml.padding_token_id", cfg_token(t, "pad_token"), e)) ||
        (rc = ptq_gguf_w_bool(w, "tokenizer.ggml.add_bos_token", ptq_tok_add_bos(pt), e)) ||
        (rc = ptq_gguf_w_bool(w, "tokenizer.ggml.add_eos_token",
                              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t->cfg, "add_eos_token")),
                              e)))
        return rc;
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(t->cfg, "chat_template");
    if (cJSON_IsString(tpl) && (rc = ptq_gguf_w_str(w, "tokenizer.chat_template", tpl->valuestring, e)))
        return rc;
    return spm ? ptq_gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", add_space(t), e) : PTQ_OK;
}

/* gpt2 merges as "a b" strings. */
static int put_merges(tk *t, const cJSON *merges, ptq_gguf_w *w)
{
    int n = cJSON_GetArraySize(merges), i = 0, rc = PTQ_OK;
    char **s = calloc((size_t)n + 1, sizeof *s);
    if (!s) return ptq_fail(t->e, PTQ_ENOMEM, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        char buf[1024];
        const char *a, *b;
        if (!merge_pair(m, buf, sizeof buf, &a, &b) || strchr(a, ' ') || strchr(b, ' ')) {
            rc = bad(t, "a malformed merge (or a piece with a space)", NULL);
            break;
        }
        size_t len = strlen(a) + strlen(b) + 2;
        if (!(s[i] = malloc(len))) {
            rc = ptq_fail(t->e, PTQ_ENOMEM, "out of memory");
            break;
        }
        snprintf(s[i++], len, "%s %s", a, b);
    }
    if (rc == PTQ_OK)
        rc = ptq_gguf_w_arr_str(w, "tokenizer.ggml.merges", (const char *const *)s, (uint64_t)n, t->e);
    for (int k = 0; k < i; k++) free(s[k]);
    free(s);
    return rc;
}

static int build(tk *t, const ptq_tokenizer *pt, ptq_gguf_w *w)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(t->root, "model");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (strcmp(type_of(model), "BPE") || !cJSON_IsArray(merges))
        return bad(t, "model is not BPE with merges", NULL);
    int spm = !strcmp(ptq_tok_style(pt), "sentencepiece-bpe"), rc;
    const char *pre = spm ? NULL : pre_name(t);
    if (!spm && !pre)
        return bad(t, "the pre-tokenizer has no tokenizer.ggml.pre name ptqc knows (ByteLevel: "
                   "gpt-2, Digits + ByteLevel: smollm, the Llama-3 regex: llama-bpe, the Qwen2 "
                   "regex: qwen2)", NULL);
    if ((rc = fill_tokens(t, model))) return rc;
    if (spm && (rc = spm_scores(t, merges))) return rc;
    if ((rc = ptq_gguf_w_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2", t->e)) ||
        (!spm && (rc = ptq_gguf_w_str(w, "tokenizer.ggml.pre", pre, t->e))) ||
        (rc = ptq_gguf_w_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t->tok,
                                 (uint64_t)t->n, t->e)) ||
        (spm && (rc = ptq_gguf_w_arr(w, "tokenizer.ggml.scores", PTQ_GGUF_F32, t->score,
                                     (uint64_t)t->n, t->e))))
        return rc;
    /* the specials retype unk before token_type is written */
    if ((rc = put_specials(t, pt, spm, w)) ||
        (rc = ptq_gguf_w_arr(w, "tokenizer.ggml.token_type", PTQ_GGUF_I32, t->type,
                             (uint64_t)t->n, t->e)))
        return rc;
    return spm ? PTQ_OK : put_merges(t, merges, w);
}

int ptq_ex_gguf_tokenizer(const ptq_bundle *b, int n_vocab, ptq_gguf_w *w, ptq_err *e)
{
    uint64_t n = 0, cn = 0;
    const char *json = ptq_bundle_member_data(b, "tokenizer.json", &n);
    const char *cj = ptq_bundle_member_data(b, "tokenizer_config.json", &cn);
    if (!json)
        return ptq_fail(e, PTQ_EDATA, "%s: has no tokenizer.json; a GGUF file needs the tokenizer",
                        b->path);
    ptq_tokenizer *pt = NULL;
    char fname[600];
    snprintf(fname, sizeof fname, "%s (tokenizer.json)", b->path);
    int rc = ptq_tok_load_mem(&pt, json, (size_t)n, cj, cj ? (size_t)cn : 0, fname, e);
    if (rc) return rc;
    tk t = {.b = b, .n = n_vocab, .e = e};
    t.root = cJSON_ParseWithLength(json, (size_t)n);
    t.cfg = cj ? cJSON_ParseWithLength(cj, (size_t)cn) : NULL;
    t.tok = calloc((size_t)n_vocab, sizeof *t.tok);
    t.own = calloc((size_t)n_vocab, sizeof *t.own);
    t.type = calloc((size_t)n_vocab, sizeof *t.type);
    t.score = calloc((size_t)n_vocab, sizeof *t.score);
    if (!t.root || !t.tok || !t.own || !t.type || !t.score)
        rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory for the tokenizer", b->path);
    else rc = build(&t, pt, w);
    for (int i = 0; t.own && i < n_vocab; i++) free(t.own[i]);
    free(t.tok), free(t.own), free(t.type), free(t.score), free(t.ix);
    cJSON_Delete(t.root);
    cJSON_Delete(t.cfg);
    ptq_tok_free(pt);
    return rc;
}
