/* gguf_tokenizer.c - the tokenizer.json and tokenizer_config.json a GGUF
 * file's tokenizer.ggml.* metadata stands for (see gguf_model.h).
 *
 * gpt2: BPE over the byte-level pieces, merges in file order, the
 * pre-tokenizer that tokenizer.ggml.pre names (as the Hugging Face
 * tokenizer.json of that model family has it), ByteLevel decoder.
 * llama: the Llama-2 layout of ../shared/README.md: BPE over the
 * SentencePiece pieces with byte fallback, merges derived from the scores
 * (every split of a piece into two pieces, ranked by the merged piece's
 * score, higher first), normalizer Prepend("▁") + Replace(" " -> "▁").
 */
#include "formats/gguf_model.h"

#include <cJSON.h>
#include "formats/gguf_vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


const char ptq_gguf_llama3_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char ptq_gguf_qwen2_re[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* token_type[i] (NORMAL when absent or out of range). */
static int tok_type(const ptq_gguf_kv *tt, uint64_t i)
{
    double v = tt ? ptq_gguf_arr_num(tt, i) : TT_NORMAL;
    return v >= 0 && v <= 255 ? (int)v : 0;
}

static cJSON *byte_level(int use_regex)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static cJSON *seq2(cJSON *a, cJSON *b)
{
    cJSON *o = cJSON_CreateObject(), *l = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "type", "Sequence");
    cJSON_AddItemToArray(l, a);
    cJSON_AddItemToArray(l, b);
    cJSON_AddItemToObject(o, "pretokenizers", l);
    return o;
}

static cJSON *split_re(const char *re)
{
    cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "Split");
    cJSON_AddStringToObject(p, "Regex", re);
    cJSON_AddItemToObject(o, "pattern", p);
    cJSON_AddStringToObject(o, "behavior", "Isolated");
    cJSON_AddBoolToObject(o, "invert", 0);
    return o;
}

/* The pre-tokenizer (and normalizer) of tokenizer.ggml.pre. */
static int gpt2_pre(const ptq_gguf *g, cJSON *root, cJSON *model, ptq_err *e)
{
    const char *s = "gpt-2";
    size_t n = 5;
    int rc = ptq_gguf_find(g, "tokenizer.ggml.pre") ? ptq_gguf_str(g, "tokenizer.ggml.pre", 1, &s, &n, e) : 0;
    if (rc) return rc;
#define IS(lit) (n == sizeof lit - 1 && !memcmp(s, lit, n))
    cJSON *pre = NULL;
    if (IS("gpt-2") || IS("default")) {
        pre = byte_level(1);
    } else if (IS("smollm")) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", "Digits");
        cJSON_AddBoolToObject(d, "individual_digits", 1);
        pre = seq2(d, byte_level(1));
    } else if (IS("llama-bpe") || IS("llama3")) {
        pre = seq2(split_re(ptq_gguf_llama3_re), byte_level(0));
        cJSON_AddBoolToObject(model, "ignore_merges", 1);
    } else if (IS("qwen2")) {
        pre = seq2(split_re(ptq_gguf_qwen2_re), byte_level(0));
        cJSON *nfc = cJSON_CreateObject();
        cJSON_AddStringToObject(nfc, "type", "NFC");
        cJSON_AddItemToObject(root, "normalizer", nfc);
    } else {
        return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer.ggml.pre '%.*s' is not supported: ptqc "
                        "knows gpt-2, default, smollm, llama-bpe, llama3, qwen2", g->path,
                        (int)(n > 64 ? 64 : n), s);
    }
#undef IS
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddItemToObject(root, "decoder", dec);
    return PTQ_OK;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

/* vocab {piece: id} and added_tokens from tokens + token_type. */
static int put_vocab(const ptq_gguf *g, const ptq_gguf_kv *tok, const ptq_gguf_kv *tt,
                     cJSON *model, cJSON *added, ptq_err *e)
{
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (uint64_t i = 0; i < tok->n; i++) {
        const char *s;
        size_t n;
        ptq_gguf_arr_str(tok, i, &s, &n);
        char *p = dup_n(s, n);
        if (!p) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
        if (n == 0 || strlen(p) != n) {
            free(p);
            return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer.ggml.tokens[%llu] is empty or has a "
                            "NUL byte", g->path, (unsigned long long)i);
        }
        cJSON_AddItemToObject(vocab, p, cJSON_CreateNumber((double)i));
        int type = tok_type(tt, i);
        if (type == TT_CONTROL || type == TT_USER) {
            cJSON *a = cJSON_CreateObject();
            cJSON_AddNumberToObject(a, "id", (double)i);
            cJSON_AddStringToObject(a, "content", p);
            cJSON_AddBoolToObject(a, "special", type == TT_CONTROL);
            cJSON_AddItemToArray(added, a);
        }
        free(p);
    }
    return PTQ_OK;
}

static int put_merges(const ptq_gguf *g, cJSON *model, ptq_err *e)
{
    const ptq_gguf_kv *m;
    int rc = ptq_gguf_array(g, "tokenizer.ggml.merges", 1, PTQ_GGUF_STRING, &m, e);
    if (rc) return rc;
    cJSON *list = cJSON_AddArrayToObject(model, "merges");
    for (uint64_t i = 0; i < m->n; i++) {
        const char *s;
        size_t n;
        ptq_gguf_arr_str(m, i, &s, &n);
        char *p = dup_n(s, n);
        if (!p) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
        cJSON_AddItemToArray(list, cJSON_CreateString(p));
        free(p);
    }
    return PTQ_OK;
}

/* ---------------------------------------------------------------- llama (SentencePiece) */

typedef struct {
    float score;
    int32_t merged, left, right;
} spm_merge;

static int cmp_merge(const void *a, const void *b)
{
    const spm_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->merged != y->merged) return x->merged < y->merged ? -1 : 1;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return 0;
}

/* The pieces sorted by bytes, for finding the id of a split's halves. */
typedef struct {
    const char *s;
    size_t n;
    int32_t id;
} piece_ref;

static int cmp_piece(const void *a, const void *b)
{
    const piece_ref *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int32_t find_piece(const piece_ref *ix, size_t n, const char *s, size_t len)
{
    piece_ref key = {s, len, 0};
    const piece_ref *r = bsearch(&key, ix, n, sizeof *ix, cmp_piece);
    return r ? r->id : -1;
}

/* Merges of a SentencePiece BPE vocabulary: each normal piece split into
 * two normal pieces at every char boundary, ranked by the piece's score. */
static int spm_merges(const ptq_gguf *g, const ptq_gguf_kv *tok, const ptq_gguf_kv *tt,
                      cJSON *model, ptq_err *e)
{
    const ptq_gguf_kv *sc;
    int rc = ptq_gguf_array(g, "tokenizer.ggml.scores", 1, PTQ_GGUF_F32, &sc, e);
    if (rc) return rc;
    if (sc->n != tok->n)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer.ggml.scores has %llu entries for %llu "
                        "tokens", g->path, (unsigned long long)sc->n, (unsigned long long)tok->n);
    size_t cap = 1024, nm = 0, ni = 0;
    spm_merge *ms = malloc(cap * sizeof *ms);
    piece_ref *ix = malloc((tok->n ? tok->n : 1) * sizeof *ix);
    if (!ms || !ix) rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
    for (uint64_t i = 0; i < tok->n && rc == PTQ_OK; i++) {
        if (tok_type(tt, i) != TT_NORMAL) continue;
        ptq_gguf_arr_str(tok, i, &ix[ni].s, &ix[ni].n);
        ix[ni++].id = (int32_t)i;
    }
    if (rc == PTQ_OK) qsort(ix, ni, sizeof *ix, cmp_piece);
    for (size_t j = 0; j < ni && rc == PTQ_OK; j++) {
        const char *s = ix[j].s;
        size_t n = ix[j].n;
        for (size_t k = 1; k < n; k++) {
            if (((unsigned char)s[k] & 0xc0) == 0x80) continue; /* inside a UTF-8 char */
            int32_t l = find_piece(ix, ni, s, k), r = find_piece(ix, ni, s + k, n - k);
            if (l < 0 || r < 0) continue;
            if (nm == cap) {
                spm_merge *nb = realloc(ms, 2 * cap * sizeof *ms);
                if (!nb) { rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path); break; }
                ms = nb;
                cap *= 2;
            }
            double v = ptq_gguf_arr_num(sc, (uint64_t)ix[j].id);
            float f = v >= -3e38 && v <= 3e38 ? (float)v : v > 0 ? 3e38f : -3e38f; /* NaN lowest */
            ms[nm++] = (spm_merge){f, ix[j].id, l, r};
        }
    }
    free(ix);
    if (rc == PTQ_OK) {
        qsort(ms, nm, sizeof *ms, cmp_merge);
        cJSON *list = cJSON_AddArrayToObject(model, "merges");
        const char *ls, *rs;
        size_t ln, rn;
        for (size_t i = 0; i < nm && rc == PTQ_OK; i++) {
            ptq_gguf_arr_str(tok, (uint64_t)ms[i].left, &ls, &ln);
            ptq_gguf_arr_str(tok, (uint64_t)ms[i].right, &rs, &rn);
            cJSON *pair = cJSON_CreateArray();
            char *a = dup_n(ls, ln), *b = dup_n(rs, rn);
            if (!a || !b) rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
            else {
                cJSON_AddItemToArray(pair, cJSON_CreateString(a));
                cJSON_AddItemToArray(pair, cJSON_CreateString(b));
            }
            free(a);
            free(b);
            cJSON_AddItemToArray(list, pair);
        }
    }
    free(ms);
    return rc;
}

static cJSON *typed(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

/* The Llama-2 normalizer and decoder. */
static void spm_pipeline(cJSON *root, cJSON *model, int add_space)
{
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON *norm = typed("Sequence"), *nl = cJSON_AddArrayToObject(norm, "normalizers");
    if (add_space) {
        cJSON *p = typed("Prepend");
        cJSON_AddStringToObject(p, "prepend", "\xe2\x96\x81");
        cJSON_AddItemToArray(nl, p);
    }
    cJSON *r = typed("Replace"), *pat = cJSON_CreateObject();
    cJSON_AddStringToObject(pat, "String", " ");
    cJSON_AddItemToObject(r, "pattern", pat);
    cJSON_AddStringToObject(r, "content", "\xe2\x96\x81");
    cJSON_AddItemToArray(nl, r);
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON *dec = typed("Sequence"), *dl = cJSON_AddArrayToObject(dec, "decoders");
    cJSON *rep = typed("Replace"), *p2 = cJSON_CreateObject();
    cJSON_AddStringToObject(p2, "String", "\xe2\x96\x81");
    cJSON_AddItemToObject(rep, "pattern", p2);
    cJSON_AddStringToObject(rep, "content", " ");
    cJSON_AddItemToArray(dl, rep);
    cJSON_AddItemToArray(dl, typed("ByteFallback"));
    cJSON_AddItemToArray(dl, typed("Fuse"));
    if (add_space) {
        cJSON *st = typed("Strip");
        cJSON_AddStringToObject(st, "content", " ");
        cJSON_AddNumberToObject(st, "start", 1);
        cJSON_AddNumberToObject(st, "stop", 0);
        cJSON_AddItemToArray(dl, st);
    }
    cJSON_AddItemToObject(root, "decoder", dec);
}

/* tokenizer_config.json: bos/eos/unk by content, add_bos_token. */
static int put_config(const ptq_gguf *g, const ptq_gguf_kv *tok, cJSON *cfg, cJSON *model,
                      int add_bos_default, ptq_err *e)
{
    static const char *const keys[3] = {"bos", "eos", "unknown"};
    static const char *const names[3] = {"bos_token", "eos_token", "unk_token"};
    for (int k = 0; k < 3; k++) {
        char key[64];
        snprintf(key, sizeof key, "tokenizer.ggml.%s_token_id", keys[k]);
        int64_t id = -1;
        int rc = ptq_gguf_int(g, key, 0, 0, (int64_t)tok->n - 1, &id, e);
        if (rc) return rc;
        if (id < 0) continue;
        const char *s;
        size_t n;
        ptq_gguf_arr_str(tok, (uint64_t)id, &s, &n);
        char *p = dup_n(s, n);
        if (!p) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
        cJSON_AddStringToObject(k == 2 ? model : cfg, names[k], p);
        free(p);
    }
    int add_bos = add_bos_default;
    int rc = ptq_gguf_bool(g, "tokenizer.ggml.add_bos_token", 0, &add_bos, e);
    if (rc) return rc;
    cJSON_AddBoolToObject(cfg, "add_bos_token", add_bos);
    return PTQ_OK;
}

static int build(const ptq_gguf *g, cJSON *root, cJSON *cfg, ptq_err *e)
{
    const char *m;
    size_t mn;
    const ptq_gguf_kv *tok, *tt = NULL;
    int rc;
    if ((rc = ptq_gguf_str(g, "tokenizer.ggml.model", 1, &m, &mn, e)) ||
        (rc = ptq_gguf_array(g, "tokenizer.ggml.tokens", 1, PTQ_GGUF_STRING, &tok, e)))
        return rc;
    if (ptq_gguf_find(g, "tokenizer.ggml.token_type") &&
        (rc = ptq_gguf_array(g, "tokenizer.ggml.token_type", 1, PTQ_GGUF_I32, &tt, e)))
        return rc;
    if (tt && tt->n != tok->n)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu "
                        "tokens", g->path, (unsigned long long)tt->n, (unsigned long long)tok->n);
    int gpt2 = mn == 4 && !memcmp(m, "gpt2", 4), llama = mn == 5 && !memcmp(m, "llama", 5);
    if (!gpt2 && !llama)
        return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer.ggml.model '%.*s' is not supported: ptqc "
                        "knows gpt2 (byte-level BPE) and llama (SentencePiece)", g->path,
                        (int)(mn > 64 ? 64 : mn), m);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    if ((rc = put_vocab(g, tok, tt, model, added, e))) return rc;
    if (gpt2) {
        if ((rc = gpt2_pre(g, root, model, e)) || (rc = put_merges(g, model, e))) return rc;
    } else {
        int add_space = 1;
        if ((rc = ptq_gguf_bool(g, "tokenizer.ggml.add_space_prefix", 0, &add_space, e)) ||
            (rc = spm_merges(g, tok, tt, model, e)))
            return rc;
        spm_pipeline(root, model, add_space);
    }
    return put_config(g, tok, cfg, model, llama, e);
}

int ptq_gguf_tokenizer_json(const ptq_gguf *g, char **tok_json, char **cfg_json, ptq_err *e)
{
    *tok_json = *cfg_json = NULL;
    cJSON *root = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
    int rc = root && cfg ? build(g, root, cfg, e) : ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
    if (rc == PTQ_OK) {
        *tok_json = cJSON_PrintUnformatted(root);
        *cfg_json = cJSON_PrintUnformatted(cfg);
        if (!*tok_json || !*cfg_json) {
            free(*tok_json);
            free(*cfg_json);
            *tok_json = *cfg_json = NULL;
            rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", g->path);
        }
    }
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return rc;
}

int ptq_gguf_tokenizer(const ptq_gguf *g, ptq_tokenizer **t, ptq_err *e)
{
    char *tj, *cj;
    *t = NULL;
    int rc = ptq_gguf_tokenizer_json(g, &tj, &cj, e);
    if (rc) return rc;
    char fname[512];
    snprintf(fname, sizeof fname, "%s (tokenizer from its metadata)", g->path);
    rc = ptq_tok_load_mem(t, tj, strlen(tj), cj, strlen(cj), fname, e);
    free(tj);
    free(cj);
    return rc;
}
