/* tokenizer.c - load a Hugging Face tokenizer.json (BPE) and its
 * tokenizer_config.json into a validated ptq_tokenizer.
 *
 * Supported pipeline pieces (anything else is refused by name):
 *   model:         BPE (vocab, merges as "a b" strings or ["a","b"] pairs,
 *                  unk_token, fuse_unk, byte_fallback)
 *   normalizer:    null, Sequence, Prepend, Replace(String), NFC, NFD, NFKC,
 *                  NFKD
 *   pre_tokenizer: null, ByteLevel, Split(Regex|String, Isolated), Digits,
 *                  Metaspace, Sequence of these
 *   decoder:       null, ByteLevel, Replace("▁" -> " "), ByteFallback, Fuse,
 *                  Strip(" ", n, 0), Metaspace, Sequence of these
 * Encode/decode are in formats/bpe.c.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "formats/tokenizer_impl.h"
#include "lib/base/file.h"

#define META "\xe2\x96\x81" /* U+2581 "▁" */

/* The GPT-2 pattern that ByteLevel(use_regex true) applies. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------ utf-8 */

int ptq_tok_utf8_len(const unsigned char *s, size_t n)
{
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    unsigned cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int ptq_tok_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        int l = ptq_tok_utf8_len(p + i, n - i);
        if (!l) return 0;
        i += (size_t)l;
    }
    return 1;
}

/* ------------------------------------------------------------------ hashes */

uint64_t ptq_tok_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    while (n--) h = (h ^ *s++) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 29);
}

static size_t table_size(size_t n)
{
    size_t m = 4;
    while (m < 2 * n + 2) m <<= 1;
    return m;
}

int32_t ptq_tok_lookup(const ptq_tokenizer *t, const char *s, size_t n)
{
    size_t i = (size_t)ptq_tok_hash(s, n) & t->vmap.mask;
    for (;;) {
        uint32_t v = t->vmap.slot[i];
        if (v == 0) return -1;
        int32_t id = (int32_t)(v - 1);
        if (t->plen[id] == n && memcmp(t->piece[id], s, n) == 0) return id;
        i = (i + 1) & t->vmap.mask;
    }
}

/* insert id (its piece already set); 0 if the piece is already there */
static int vmap_insert(ptq_tokenizer *t, int32_t id)
{
    size_t n = t->plen[id];
    size_t i = (size_t)ptq_tok_hash(t->piece[id], n) & t->vmap.mask;
    for (;;) {
        uint32_t v = t->vmap.slot[i];
        if (v == 0) {
            t->vmap.slot[i] = (uint32_t)id + 1;
            return 1;
        }
        int32_t o = (int32_t)(v - 1);
        if (t->plen[o] == n && memcmp(t->piece[o], t->piece[id], n) == 0) return 0;
        i = (i + 1) & t->vmap.mask;
    }
}

static void mmap_put(ptq_tokenizer *t, int32_t l, int32_t r, int32_t rank, int32_t new_id)
{
    uint64_t k = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t i = (size_t)ptq_tok_mix(k) & t->mmap.mask;
    while (t->mmap.key[i] != 0 && t->mmap.key[i] != k) i = (i + 1) & t->mmap.mask;
    /* a repeated pair takes the later rank, as Hugging Face's map does */
    t->mmap.key[i] = k;
    t->mmap.rank[i] = rank;
    t->mmap.new_id[i] = new_id;
}

/* ------------------------------------------------------------------ helpers */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* boolean member; def when absent or null; -1 when present but not a bool */
static int jbool(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v) ? 1 : 0;
}

static int jid(const cJSON *v, int32_t *id)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < PTQ_TOK_MAX_VOCAB) || d != floor(d)) return 0;
    *id = (int32_t)d;
    return 1;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int compile_re(pcre2_code **re, const char *pat, size_t len, const char *fname, ptq_err *e)
{
    int ec;
    PCRE2_SIZE off;
    *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
    if (!*re) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(ec, buf, sizeof buf);
        return ptq_fail(e, PTQ_EFORMAT, "%s: pre_tokenizer regex does not compile at offset %zu: %s",
                        fname, (size_t)off, (char *)buf);
    }
    /* JIT is an optimisation: without it pcre2_match interprets the pattern */
    (void)pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);
    return PTQ_OK;
}

/* a literal string as a regex (Split with a String pattern) */
static char *quote_re(const char *s)
{
    size_t n = strlen(s);
    char *q = malloc(n + 5);
    if (!q) return NULL;
    memcpy(q, "\\Q", 2);
    memcpy(q + 2, s, n);
    memcpy(q + 2 + n, "\\E", 3);
    /* a "\E" inside s would end the quote early: refuse such strings */
    if (strstr(s, "\\E")) {
        free(q);
        return NULL;
    }
    return q;
}

/* ------------------------------------------------------------------ parts */

static int add_norm(ptq_tokenizer *t, const cJSON *n, const char *fname, ptq_err *e)
{
    const char *type = jstr(n, "type");
    if (!type) return ptq_fail(e, PTQ_EFORMAT, "%s: normalizer without a \"type\"", fname);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Sequence normalizer without a \"normalizers\" list", fname);
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            int rc = add_norm(t, it, fname, e);
            if (rc) return rc;
        }
        return PTQ_OK;
    }
    if (t->n_norm >= PTQ_TOK_MAX_STEPS)
        return ptq_fail(e, PTQ_EFORMAT, "%s: more than %d normalizer steps", fname, PTQ_TOK_MAX_STEPS);
    ptq_tok_norm *s = &t->norm[t->n_norm++]; /* counted now so free() sees its strings */
    memset(s, 0, sizeof *s);
    if (!strcmp(type, "NFC")) {
        s->kind = PTQ_NORM_NFC;
    } else if (!strcmp(type, "NFD")) {
        s->kind = PTQ_NORM_NFD;
    } else if (!strcmp(type, "NFKC")) {
        s->kind = PTQ_NORM_NFKC;
    } else if (!strcmp(type, "NFKD")) {
        s->kind = PTQ_NORM_NFKD;
    } else if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p || !ptq_tok_utf8_valid(p, strlen(p)))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Prepend normalizer without a valid \"prepend\" string", fname);
        s->kind = PTQ_NORM_PREPEND;
        s->to = dupn(p, s->to_len = strlen(p));
        if (!s->to) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *from = jstr(pat, "String");
        const char *to = jstr(n, "content");
        if (!from) {
            if (jstr(pat, "Regex"))
                return ptq_fail(e, PTQ_EFORMAT, "%s: Replace normalizer with a Regex pattern is not supported", fname);
            return ptq_fail(e, PTQ_EFORMAT, "%s: Replace normalizer without a \"pattern\" String", fname);
        }
        if (!to) return ptq_fail(e, PTQ_EFORMAT, "%s: Replace normalizer without \"content\"", fname);
        if (!*from || !ptq_tok_utf8_valid(from, strlen(from)) || !ptq_tok_utf8_valid(to, strlen(to)))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Replace normalizer with an empty or invalid pattern", fname);
        s->kind = PTQ_NORM_REPLACE;
        s->from = dupn(from, s->from_len = strlen(from));
        s->to = dupn(to, s->to_len = strlen(to));
        if (!s->from || !s->to) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    } else {
        return ptq_fail(e, PTQ_EFORMAT, "%s: normalizer \"%s\" is not supported", fname, type);
    }
    return PTQ_OK;
}

static int add_pre(ptq_tokenizer *t, const cJSON *p, int *has_bl, const char *fname, ptq_err *e)
{
    const char *type = jstr(p, "type");
    if (!type) return ptq_fail(e, PTQ_EFORMAT, "%s: pre_tokenizer without a \"type\"", fname);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Sequence pre_tokenizer without a \"pretokenizers\" list", fname);
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            int rc = add_pre(t, it, has_bl, fname, e);
            if (rc) return rc;
        }
        return PTQ_OK;
    }
    if (*has_bl)
        return ptq_fail(e, PTQ_EFORMAT, "%s: pre_tokenizer \"%s\" after ByteLevel is not supported", fname, type);
    if (t->n_pre >= PTQ_TOK_MAX_STEPS)
        return ptq_fail(e, PTQ_EFORMAT, "%s: more than %d pre_tokenizer steps", fname, PTQ_TOK_MAX_STEPS);
    ptq_tok_pre *s = &t->pre[t->n_pre];
    s->kind = PTQ_PRE_REGEX;
    s->re = NULL;
    if (!strcmp(type, "ByteLevel")) {
        int aps = jbool(p, "add_prefix_space", 0), ure = jbool(p, "use_regex", 1);
        if (aps < 0 || ure < 0)
            return ptq_fail(e, PTQ_EFORMAT, "%s: ByteLevel pre_tokenizer with a non-boolean flag", fname);
        *has_bl = 1;
        t->bl_prefix_space = aps;
        if (!ure) return PTQ_OK;
        int rc = compile_re(&s->re, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, fname, e);
        if (rc) return rc;
    } else if (!strcmp(type, "Split")) {
        const char *beh = jstr(p, "behavior");
        int inv = jbool(p, "invert", 0);
        if (!beh || strcmp(beh, "Isolated") || inv != 0)
            return ptq_fail(e, PTQ_EFORMAT, "%s: Split pre_tokenizer supports only behavior Isolated, invert false", fname);
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *rx = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        const char *str = jstr(pat, "String");
        int rc;
        if (cJSON_IsString(rx)) {
            if (!ptq_tok_utf8_valid(rx->valuestring, strlen(rx->valuestring)))
                return ptq_fail(e, PTQ_EFORMAT, "%s: Split pattern is not valid UTF-8", fname);
            rc = compile_re(&s->re, rx->valuestring, strlen(rx->valuestring), fname, e);
        } else if (str && *str && ptq_tok_utf8_valid(str, strlen(str))) {
            char *q = quote_re(str);
            if (!q) return ptq_fail(e, PTQ_EFORMAT, "%s: Split String pattern not supported", fname);
            rc = compile_re(&s->re, q, strlen(q), fname, e);
            free(q);
        } else {
            return ptq_fail(e, PTQ_EFORMAT, "%s: Split pre_tokenizer without a Regex or String pattern", fname);
        }
        if (rc) return rc;
    } else if (!strcmp(type, "Digits")) {
        int ind = jbool(p, "individual_digits", 0);
        if (ind < 0) return ptq_fail(e, PTQ_EFORMAT, "%s: Digits pre_tokenizer with a non-boolean flag", fname);
        /* Hugging Face splits on char::is_ascii_digit: "½" or "٣" are not digits here */
        const char *pat = ind ? "[0-9]" : "[0-9]+";
        int rc = compile_re(&s->re, pat, strlen(pat), fname, e);
        if (rc) return rc;
    } else if (!strcmp(type, "Metaspace")) {
        const char *rep = jstr(p, "replacement");
        if (!rep || !*rep || strlen(rep) >= sizeof t->meta || !ptq_tok_utf8_valid(rep, strlen(rep)) ||
            ptq_tok_utf8_len((const unsigned char *)rep, strlen(rep)) != (int)strlen(rep))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Metaspace pre_tokenizer needs a one-character replacement", fname);
        if (t->metaspace || t->n_pre)
            return ptq_fail(e, PTQ_EFORMAT, "%s: Metaspace must be the first pre_tokenizer", fname);
        t->metaspace = 1;
        strcpy(t->meta, rep);
        t->meta_len = strlen(rep);
        const char *scheme = jstr(p, "prepend_scheme");
        int aps = jbool(p, "add_prefix_space", 1);
        if (scheme) {
            if (!strcmp(scheme, "always")) t->meta_prepend = 2;
            else if (!strcmp(scheme, "first")) t->meta_prepend = 1;
            else if (!strcmp(scheme, "never")) t->meta_prepend = 0;
            else return ptq_fail(e, PTQ_EFORMAT, "%s: Metaspace prepend_scheme \"%s\" unknown", fname, scheme);
        } else {
            if (aps < 0) return ptq_fail(e, PTQ_EFORMAT, "%s: Metaspace with a non-boolean flag", fname);
            t->meta_prepend = aps ? 2 : 0;
        }
        int split = jbool(p, "split", 1);
        if (split < 0) return ptq_fail(e, PTQ_EFORMAT, "%s: Metaspace with a non-boolean flag", fname);
        if (!split) return PTQ_OK;
        s->kind = PTQ_PRE_METASPACE;
    } else {
        return ptq_fail(e, PTQ_EFORMAT, "%s: pre_tokenizer \"%s\" is not supported", fname, type);
    }
    t->n_pre++;
    return PTQ_OK;
}

static int add_dec(ptq_tokenizer *t, const cJSON *d, const char *fname, ptq_err *e)
{
    const char *type = jstr(d, "type");
    if (!type) return ptq_fail(e, PTQ_EFORMAT, "%s: decoder without a \"type\"", fname);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Sequence decoder without a \"decoders\" list", fname);
        const cJSON *it;
        cJSON_ArrayForEach(it, list)
        {
            int rc = add_dec(t, it, fname, e);
            if (rc) return rc;
        }
        return PTQ_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        t->dec_bytelevel = 1;
    } else if (!strcmp(type, "ByteFallback")) {
        t->dec_bytefb = 1;
    } else if (!strcmp(type, "Fuse")) {
        /* decoding always fuses */
    } else if (!strcmp(type, "Replace")) {
        const char *from = jstr(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        const char *to = jstr(d, "content");
        if (!from || !to || strcmp(from, META) || strcmp(to, " "))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Replace decoder other than \"\xe2\x96\x81\" -> \" \" is not supported", fname);
        t->dec_meta = 1;
    } else if (!strcmp(type, "Strip")) {
        const char *c = jstr(d, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!c || strcmp(c, " ") || !cJSON_IsNumber(st) || !cJSON_IsNumber(sp) || sp->valuedouble != 0 ||
            !(st->valuedouble >= 0 && st->valuedouble <= 64) || st->valuedouble != floor(st->valuedouble))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Strip decoder other than (\" \", n, 0) is not supported", fname);
        t->dec_strip = (int)st->valuedouble;
    } else if (!strcmp(type, "Metaspace")) {
        const char *rep = jstr(d, "replacement");
        if (!rep || strcmp(rep, META))
            return ptq_fail(e, PTQ_EFORMAT, "%s: Metaspace decoder other than \"\xe2\x96\x81\" is not supported", fname);
        t->dec_meta = 1;
        const char *scheme = jstr(d, "prepend_scheme");
        int aps = jbool(d, "add_prefix_space", 1);
        t->dec_strip = scheme ? strcmp(scheme, "never") != 0 : aps == 1;
    } else {
        return ptq_fail(e, PTQ_EFORMAT, "%s: decoder \"%s\" is not supported", fname, type);
    }
    return PTQ_OK;
}

/* GPT-2's byte-to-unicode table: printable Latin-1 bytes map to themselves,
 * the rest to U+0100 upwards in byte order. */
static void byte_table(ptq_tokenizer *t)
{
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        unsigned cp = keep ? (unsigned)b : 256u + (unsigned)n++;
        if (cp < 0x80) {
            t->bl_chr[b][0] = (char)cp;
            t->bl_chrlen[b] = 1;
        } else {
            t->bl_chr[b][0] = (char)(0xC0 | (cp >> 6));
            t->bl_chr[b][1] = (char)(0x80 | (cp & 0x3F));
            t->bl_chrlen[b] = 2;
        }
    }
}

static int find_token(const ptq_tokenizer *t, const char *s)
{
    for (int i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].content, s)) return t->added[i].id;
    return ptq_tok_lookup(t, s, strlen(s));
}

/* bos_token/eos_token: a string, an object with "content", or null */
static int config_token(const ptq_tokenizer *t, const cJSON *cfg, const char *key, int32_t *id,
                        const char *fname, ptq_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return PTQ_OK;
    if (cJSON_IsNull(v)) {
        *id = -1;
        return PTQ_OK;
    }
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    if (!s) return ptq_fail(e, PTQ_EFORMAT, "%s: \"%s\" is neither a string nor {\"content\": ...}", fname, key);
    int found = find_token(t, s);
    if (found < 0) return ptq_fail(e, PTQ_EFORMAT, "%s: %s \"%.100s\" is not a token of the vocabulary", fname, key, s);
    *id = found;
    return PTQ_OK;
}

/* ------------------------------------------------------------------ load */

/* The vocabulary and the ids of the added tokens: sizes the tables. */
static int load_vocab(ptq_tokenizer *t, const cJSON *model, const cJSON *added, const char *fname, ptq_err *e)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    /* size: 1 + the largest id of the vocabulary and the added tokens */
    int32_t maxid = -1, id = 0;
    size_t nv = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab)
    {
        if (!jid(it, &id))
            return ptq_fail(e, PTQ_EFORMAT, "%s: vocab entry \"%.64s\" has no valid id (0..%d)", fname,
                            it->string, PTQ_TOK_MAX_VOCAB - 1);
        if (id > maxid) maxid = id;
        nv++;
    }
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        return ptq_fail(e, PTQ_EFORMAT, "%s: \"added_tokens\" is not a list", fname);
    cJSON_ArrayForEach(it, added)
    {
        if (!jid(cJSON_GetObjectItemCaseSensitive(it, "id"), &id))
            return ptq_fail(e, PTQ_EFORMAT, "%s: added token without a valid \"id\"", fname);
        if (id > maxid) maxid = id;
    }
    t->n_vocab = maxid + 1;
    t->piece = calloc((size_t)t->n_vocab, sizeof *t->piece);
    t->plen = calloc((size_t)t->n_vocab, sizeof *t->plen);
    t->vmap.mask = table_size(nv) - 1;
    t->vmap.slot = calloc(t->vmap.mask + 1, sizeof *t->vmap.slot);
    if (!t->piece || !t->plen || !t->vmap.slot) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);

    cJSON_ArrayForEach(it, vocab)
    {
        jid(it, &id);
        size_t n = strlen(it->string);
        if (!n || !ptq_tok_utf8_valid(it->string, n))
            return ptq_fail(e, PTQ_EFORMAT, "%s: vocab id %d has an empty or invalid UTF-8 piece", fname, (int)id);
        if (t->piece[id])
            return ptq_fail(e, PTQ_EFORMAT, "%s: vocab id %d is given to both \"%.64s\" and \"%.64s\"", fname,
                            (int)id, t->piece[id], it->string);
        if (!(t->piece[id] = dupn(it->string, n))) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
        t->plen[id] = (uint32_t)n;
        if (!vmap_insert(t, id))
            return ptq_fail(e, PTQ_EFORMAT, "%s: vocab piece \"%.64s\" appears twice", fname, it->string);
    }

    return PTQ_OK;
}

/* The added tokens: an id of the vocabulary must carry the same piece. */
static int load_added(ptq_tokenizer *t, const cJSON *added, const char *fname, ptq_err *e)
{
    const cJSON *it;
    t->n_added = cJSON_GetArraySize(added);
    if (t->n_added) {
        t->added = calloc((size_t)t->n_added, sizeof *t->added);
        if (!t->added) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    }
    int k = 0;
    cJSON_ArrayForEach(it, added)
    {
        ptq_tok_added *a = &t->added[k++];
        const char *c = jstr(it, "content");
        jid(cJSON_GetObjectItemCaseSensitive(it, "id"), &a->id);
        if (!c || !*c || !ptq_tok_utf8_valid(c, strlen(c)))
            return ptq_fail(e, PTQ_EFORMAT, "%s: added token %d has no valid \"content\"", fname, (int)a->id);
        a->len = strlen(c);
        if (!(a->content = dupn(c, a->len))) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
        a->special = jbool(it, "special", 0);
        a->lstrip = jbool(it, "lstrip", 0);
        a->rstrip = jbool(it, "rstrip", 0);
        a->single_word = jbool(it, "single_word", 0);
        a->normalized = jbool(it, "normalized", 0);
        if (a->special < 0 || a->lstrip < 0 || a->rstrip < 0 || a->single_word < 0 || a->normalized < 0)
            return ptq_fail(e, PTQ_EFORMAT, "%s: added token \"%.64s\" has a non-boolean flag", fname, c);
        if (t->piece[a->id]) {
            if (strcmp(t->piece[a->id], c))
                return ptq_fail(e, PTQ_EFORMAT, "%s: added token \"%.64s\" has id %d, which is \"%.64s\"", fname,
                                c, (int)a->id, t->piece[a->id]);
        } else {
            int32_t other = ptq_tok_lookup(t, c, a->len);
            if (other >= 0)
                return ptq_fail(e, PTQ_EFORMAT, "%s: added token \"%.64s\" has id %d but the vocab says %d", fname,
                                c, (int)a->id, (int)other);
            if (!(t->piece[a->id] = dupn(c, a->len))) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
            t->plen[a->id] = (uint32_t)a->len;
        }
        for (int j = 0; j < k - 1; j++)
            if (t->added[j].id == a->id || !strcmp(t->added[j].content, c))
                return ptq_fail(e, PTQ_EFORMAT, "%s: added token \"%.64s\" (id %d) is listed twice", fname, c,
                                (int)a->id);
        t->added_first[(unsigned char)c[0]] = 1;
    }

    return PTQ_OK;
}

/* unk_token, fuse_unk, byte_fallback and the other model options. */
static int load_options(ptq_tokenizer *t, const cJSON *model, const char *fname, ptq_err *e)
{
    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = -1;
    if (unk && !cJSON_IsNull(unk)) {
        if (!cJSON_IsString(unk)) return ptq_fail(e, PTQ_EFORMAT, "%s: model \"unk_token\" is not a string", fname);
        t->unk_id = ptq_tok_lookup(t, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0)
            return ptq_fail(e, PTQ_EFORMAT, "%s: unk_token \"%.64s\" is not in the vocab", fname, unk->valuestring);
    }
    t->fuse_unk = jbool(model, "fuse_unk", 0);
    t->byte_fallback = jbool(model, "byte_fallback", 0);
    if (t->fuse_unk < 0 || t->byte_fallback < 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: model fuse_unk/byte_fallback is not a boolean", fname);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return ptq_fail(e, PTQ_EFORMAT, "%s: BPE dropout is not supported", fname);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    if (t->ignore_merges < 0) return ptq_fail(e, PTQ_EFORMAT, "%s: model ignore_merges is not a boolean", fname);
    const char *csp = jstr(model, "continuing_subword_prefix"), *ews = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (ews && *ews))
        return ptq_fail(e, PTQ_EFORMAT, "%s: continuing_subword_prefix / end_of_word_suffix are not supported", fname);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = ptq_tok_lookup(t, name, 6);
    }

    return PTQ_OK;
}

/* The merges: both parts and their concatenation must be pieces. */
static int load_merges(ptq_tokenizer *t, const cJSON *merges, const char *fname, ptq_err *e)
{
    const cJSON *it;
    t->n_merges = cJSON_GetArraySize(merges);
    t->mmap.mask = table_size((size_t)t->n_merges) - 1;
    t->mmap.key = calloc(t->mmap.mask + 1, sizeof *t->mmap.key);
    t->mmap.rank = calloc(t->mmap.mask + 1, sizeof *t->mmap.rank);
    t->mmap.new_id = calloc(t->mmap.mask + 1, sizeof *t->mmap.new_id);
    if (!t->mmap.key || !t->mmap.rank || !t->mmap.new_id) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    char *buf = NULL;
    size_t cap = 0;
    int rank = 0, rc = PTQ_OK;
    cJSON_ArrayForEach(it, merges)
    {
        const char *l, *r;
        size_t ll, rl;
        if (cJSON_IsString(it)) {
            l = it->valuestring;
            const char *sp = strchr(l, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = ptq_fail(e, PTQ_EFORMAT, "%s: merge %d \"%.64s\" is not \"left right\"", fname, rank, l);
                break;
            }
            ll = (size_t)(sp - l);
            r = sp + 1;
            rl = strlen(r);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            l = it->child->valuestring;
            r = it->child->next->valuestring;
            ll = strlen(l);
            rl = strlen(r);
        } else {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: merge %d is neither \"left right\" nor [left, right]", fname, rank);
            break;
        }
        int32_t li = ptq_tok_lookup(t, l, ll), ri = ptq_tok_lookup(t, r, rl);
        if (li < 0 || ri < 0) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: merge %d names \"%.*s\", which is not in the vocab", fname, rank,
                          li < 0 ? (int)(ll > 64 ? 64 : ll) : (int)(rl > 64 ? 64 : rl), li < 0 ? l : r);
            break;
        }
        if (ll + rl + 1 > cap) {
            cap = 2 * (ll + rl + 1);
            char *nb = realloc(buf, cap);
            if (!nb) {
                rc = ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
                break;
            }
            buf = nb;
        }
        memcpy(buf, l, ll);
        memcpy(buf + ll, r, rl);
        int32_t ni = ptq_tok_lookup(t, buf, ll + rl);
        if (ni < 0) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: merge %d makes \"%.*s\", which is not in the vocab", fname, rank,
                          (int)(ll + rl > 64 ? 64 : ll + rl), buf);
            break;
        }
        mmap_put(t, li, ri, rank, ni);
        rank++;
    }
    free(buf);
    return rc;
}

static int load_model(ptq_tokenizer *t, const cJSON *model, const cJSON *added, const char *fname, ptq_err *e)
{
    if (!cJSON_IsObject(model)) return ptq_fail(e, PTQ_EFORMAT, "%s: no \"model\" object", fname);
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE"))
        return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer model type \"%.64s\" is not supported (only BPE)", fname, type);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return ptq_fail(e, PTQ_EFORMAT, "%s: model has no \"vocab\" object", fname);
    if (merges && !cJSON_IsArray(merges) && !cJSON_IsNull(merges))
        return ptq_fail(e, PTQ_EFORMAT, "%s: model \"merges\" is not a list", fname);
    if (!cJSON_GetArraySize(vocab)) return ptq_fail(e, PTQ_EFORMAT, "%s: model \"vocab\" is empty", fname);

    int rc = load_vocab(t, model, added, fname, e);
    if (!rc) rc = load_added(t, added, fname, e);
    if (!rc) rc = load_options(t, model, fname, e);
    if (!rc) rc = load_merges(t, merges, fname, e);
    return rc;
}

/* Can a SentencePiece-style text be cut before every "▁" that follows a
 * non-"▁" char?  Only if no merge result has such a "▁" inside it (then no
 * merge can join the two sides), and "▁" itself is a piece (so fused <unk>
 * runs cannot cross either). */
static int spm_cut_safe(const ptq_tokenizer *t)
{
    if (ptq_tok_lookup(t, META, 3) < 0) return 0;
    for (size_t i = 0; i <= t->mmap.mask; i++) {
        if (!t->mmap.key[i]) continue;
        const char *p = t->piece[t->mmap.new_id[i]];
        size_t n = t->plen[t->mmap.new_id[i]];
        for (size_t j = 1; j + 3 <= n; j++)
            if (!memcmp(p + j, META, 3) && !(j >= 3 && !memcmp(p + j - 3, META, 3))) return 0;
    }
    return 1;
}

static int load(ptq_tokenizer *t, const cJSON *root, const cJSON *cfg, const char *fname, ptq_err *e)
{
    if (!cJSON_IsObject(root)) return ptq_fail(e, PTQ_EFORMAT, "%s: not a JSON object", fname);
    int rc = load_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"),
                        cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), fname, e);
    if (rc) return rc;

    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm) && (rc = add_norm(t, norm, fname, e))) return rc;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    int has_bl = 0;
    if (pre && !cJSON_IsNull(pre) && (rc = add_pre(t, pre, &has_bl, fname, e))) return rc;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec) && (rc = add_dec(t, dec, fname, e))) return rc;

    t->style = has_bl ? PTQ_TOK_BYTELEVEL : PTQ_TOK_SPM;
    for (int b = 0; b < 256; b++) t->bl_id[b] = -1;
    if (has_bl) {
        int bad = t->metaspace;
        for (int i = 0; i < t->n_norm; i++)
            bad |= t->norm[i].kind == PTQ_NORM_PREPEND || t->norm[i].kind == PTQ_NORM_REPLACE;
        if (bad)
            return ptq_fail(e, PTQ_EFORMAT,
                            "%s: ByteLevel with Metaspace or a Prepend/Replace normalizer is not supported", fname);
        byte_table(t);
        for (int b = 0; b < 256; b++) t->bl_id[b] = ptq_tok_lookup(t, t->bl_chr[b], t->bl_chrlen[b]);
    } else if (t->dec_bytelevel) {
        return ptq_fail(e, PTQ_EFORMAT, "%s: ByteLevel decoder without a ByteLevel pre_tokenizer", fname);
    }
    if (t->style == PTQ_TOK_SPM && !t->metaspace && t->n_pre == 0) t->spm_cut = spm_cut_safe(t);

    /* BOS/EOS: tokenizer_config.json, else the usual names among the added tokens */
    t->bos = t->eos = -1;
    static const char *const bos_names[] = {"<s>", "<|begin_of_text|>"};
    static const char *const eos_names[] = {"</s>", "<|end_of_text|>", "<|endoftext|>"};
    for (size_t i = 0; i < sizeof bos_names / sizeof *bos_names && t->bos < 0; i++)
        for (int j = 0; j < t->n_added; j++)
            if (!strcmp(t->added[j].content, bos_names[i])) t->bos = t->added[j].id;
    for (size_t i = 0; i < sizeof eos_names / sizeof *eos_names && t->eos < 0; i++)
        for (int j = 0; j < t->n_added; j++)
            if (!strcmp(t->added[j].content, eos_names[i])) t->eos = t->added[j].id;
    /* add_bos default: the post_processor template starts with the BOS */
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const cJSON *procs = cJSON_GetObjectItemCaseSensitive(pp, "processors"), *it;
    cJSON_ArrayForEach(it, procs) /* Sequence[ByteLevel, TemplateProcessing] (Llama 3.1) */
        if (cJSON_GetObjectItemCaseSensitive(it, "single")) pp = it;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    if (t->bos >= 0 && cJSON_IsArray(single) && single->child) {
        const char *first = jstr(cJSON_GetObjectItemCaseSensitive(single->child, "SpecialToken"), "id");
        if (first && !strcmp(first, t->piece[t->bos])) t->add_bos = 1;
    }
    if (cfg) {
        if (!cJSON_IsObject(cfg)) return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer_config.json is not a JSON object", fname);
        if ((rc = config_token(t, cfg, "bos_token", &t->bos, fname, e))) return rc;
        if ((rc = config_token(t, cfg, "eos_token", &t->eos, fname, e))) return rc;
        int ab = jbool(cfg, "add_bos_token", -2);
        if (ab == -1) return ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer_config add_bos_token is not a boolean", fname);
        if (ab >= 0) t->add_bos = ab;
    }
    if (t->add_bos && t->bos < 0)
        return ptq_fail(e, PTQ_EFORMAT, "%s: add_bos_token is set but there is no BOS token", fname);
    return PTQ_OK;
}

int ptq_tok_load_mem(ptq_tokenizer **out, const char *json, size_t len, const char *config_json,
                     size_t config_len, const char *fname, ptq_err *e)
{
    *out = NULL;
    if (!fname) fname = "tokenizer.json";
    ptq_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ptq_fail(e, PTQ_ENOMEM, "%s: out of memory", fname);
    cJSON *root = cJSON_ParseWithLength(json, len);
    cJSON *cfg = NULL;
    int rc;
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        rc = ptq_fail(e, PTQ_EFORMAT, "%s: malformed JSON near byte %zu", fname, off);
        goto done;
    }
    if (config_json) {
        cfg = cJSON_ParseWithLength(config_json, config_len);
        if (!cfg) {
            rc = ptq_fail(e, PTQ_EFORMAT, "%s: tokenizer_config.json beside it is malformed JSON", fname);
            goto done;
        }
    }
    rc = load(t, root, cfg, fname, e);
done:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) ptq_tok_free(t);
    else *out = t;
    return rc;
}

static char *read_all(const char *path, size_t *len, ptq_err *e, int *rc)
{
    char *buf;
    *rc = ptq_read_file(path, (size_t)1 << 32, &buf, len, e);
    return *rc ? NULL : buf;
}

int ptq_tok_load(ptq_tokenizer **t, const char *json_path, const char *config_path, ptq_err *e)
{
    *t = NULL;
    int rc = PTQ_OK;
    size_t len = 0, clen = 0;
    char *json = read_all(json_path, &len, e, &rc);
    if (!json) return rc;
    char *cfg = NULL;
    if (config_path) {
        FILE *f = fopen(config_path, "rb");
        if (f) {
            fclose(f);
            cfg = read_all(config_path, &clen, e, &rc);
            if (!cfg) {
                free(json);
                return rc;
            }
        }
    }
    rc = ptq_tok_load_mem(t, json, len, cfg, clen, json_path, e);
    free(json);
    free(cfg);
    return rc;
}

void ptq_tok_free(ptq_tokenizer *t)
{
    if (!t) return;
    if (t->piece)
        for (int32_t i = 0; i < t->n_vocab; i++) free(t->piece[i]);
    free(t->piece);
    free(t->plen);
    free(t->vmap.slot);
    free(t->mmap.key);
    free(t->mmap.rank);
    free(t->mmap.new_id);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].from);
        free(t->norm[i].to);
    }
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free(t->pre[i].re);
    free(t);
}

int ptq_tok_vocab_size(const ptq_tokenizer *t) { return t->n_vocab; }
int ptq_tok_bos(const ptq_tokenizer *t) { return t->bos; }
int ptq_tok_eos(const ptq_tokenizer *t) { return t->eos; }
int ptq_tok_add_bos(const ptq_tokenizer *t) { return t->add_bos; }
const char *ptq_tok_style(const ptq_tokenizer *t)
{
    return t->style == PTQ_TOK_BYTELEVEL ? "byte-level-bpe" : "sentencepiece-bpe";
}
int ptq_tok_n_merges(const ptq_tokenizer *t) { return t->n_merges; }
int ptq_tok_n_added(const ptq_tokenizer *t) { return t->n_added; }
const char *ptq_tok_piece(const ptq_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->piece[id] : NULL;
}
