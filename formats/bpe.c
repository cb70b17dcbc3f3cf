/* bpe.c - encode and decode with a loaded tokenizer (formats/tokenizer.c).
 *
 * encode: split the text at added tokens (leftmost-longest), then for each
 * section between them: normalize (Prepend/Replace/Metaspace, the Unicode
 * forms NFC/NFD/NFKC/NFKD through utf8proc), pre-tokenize
 * (regex splits through PCRE2, Isolated), and run BPE on each word.  BPE
 * keeps the word as a linked list of symbols and a binary heap of candidate
 * merges ordered by (rank, position), so a word of n symbols costs
 * O(n log n), as Hugging Face's merge_word does.  Words seen before in the
 * same call come from a cache.  SentencePiece-style text has no
 * pre-tokenizer; it is cut before each "▁" when the loader proved no merge
 * crosses such a cut, so the words stay short.
 */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "formats/tokenizer_impl.h"

#define META "\xe2\x96\x81"

/* ------------------------------------------------------------------ buffers */

typedef struct {
    int32_t *v;
    size_t n, cap;
} ivec;

static int ivec_push(ivec *a, int32_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return 0;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 1;
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sbuf_add(sbuf *b, const void *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return 0;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 1;
}

/* ------------------------------------------------------------------ state */

typedef struct {
    int32_t rank, pos, new_id;
} merge_cand;

/* word -> ids cache, per encode call */
typedef struct {
    uint64_t *hash; /* 0 = empty */
    uint32_t *koff, *klen, *voff, *vlen;
    size_t mask, used;
    sbuf keys;
    ivec vals;
} wcache;

typedef struct {
    const ptq_tokenizer *t;
    ivec *out;
    /* BPE scratch */
    int32_t *sym, *prev, *next;
    merge_cand *heap;
    size_t cap, nheap;
    wcache cache;
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
    sbuf norm[2];
    sbuf mapped; /* a byte-level word as its chars (ignore_merges) */
    int first_section;
} enc;

static int grow(enc *s, size_t n)
{
    if (n <= s->cap) return 1;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(s->sym, cap * sizeof *a);
    if (a) s->sym = a;
    int32_t *b = realloc(s->prev, cap * sizeof *b);
    if (b) s->prev = b;
    int32_t *c = realloc(s->next, cap * sizeof *c);
    if (c) s->next = c;
    merge_cand *h = realloc(s->heap, 3 * cap * sizeof *h);
    if (h) s->heap = h;
    if (!a || !b || !c || !h) return 0;
    s->cap = cap;
    return 1;
}

static int cand_less(merge_cand a, merge_cand b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(enc *s, merge_cand c)
{
    size_t i = s->nheap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(c, s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = c;
}

static merge_cand heap_pop(enc *s)
{
    merge_cand top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0, n = s->nheap;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        merge_cand best = last;
        if (l < n && cand_less(s->heap[l], best)) m = l, best = s->heap[l];
        if (l + 1 < n && cand_less(s->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (n) s->heap[i] = last;
    return top;
}

static void try_pair(enc *s, int32_t pos)
{
    int32_t nx = s->next[pos], rank, nid;
    if (nx < 0) return;
    if (ptq_tok_merge(s->t, s->sym[pos], s->sym[nx], &rank, &nid))
        heap_push(s, (merge_cand){rank, pos, nid});
}

/* the symbols s->sym[0..n) -> merged ids appended to out.  The heap gets
 * n - 1 candidates, then at most 2 per merge and at most n - 1 merges: it is
 * sized 3n. */
static int bpe_merge(enc *s, size_t n, ivec *out)
{
    for (size_t i = 0; i < n; i++) {
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->nheap = 0;
    for (size_t i = 0; i + 1 < n; i++) try_pair(s, (int32_t)i);
    while (s->nheap) {
        merge_cand c = heap_pop(s);
        int32_t p = c.pos;
        if (s->sym[p] < 0) continue; /* absorbed into its left neighbour */
        int32_t nx = s->next[p], rank, nid;
        if (nx < 0) continue;
        /* stale if the pair changed since the candidate was pushed */
        if (!ptq_tok_merge(s->t, s->sym[p], s->sym[nx], &rank, &nid) || nid != c.new_id || rank != c.rank)
            continue;
        s->sym[p] = nid;
        s->sym[nx] = -1;
        s->next[p] = s->next[nx];
        if (s->next[p] >= 0) s->prev[s->next[p]] = p;
        if (s->prev[p] >= 0) try_pair(s, s->prev[p]);
        try_pair(s, p);
    }
    for (int32_t i = 0; i >= 0 && (size_t)i < n; i = s->next[i])
        if (!ivec_push(out, s->sym[i])) return 0;
    return 1;
}

/* word bytes -> initial symbols (chars, byte-level chars, <0xNN>, <unk>) */
static int bpe_word(enc *s, const char *w, size_t n, ivec *out)
{
    const ptq_tokenizer *t = s->t;
    if (t->ignore_merges) { /* a word that is a piece as a whole */
        const char *q = w;
        size_t qn = n;
        if (t->style == PTQ_TOK_BYTELEVEL) {
            s->mapped.n = 0;
            for (size_t i = 0; i < n; i++)
                if (!sbuf_add(&s->mapped, t->bl_chr[(unsigned char)w[i]], t->bl_chrlen[(unsigned char)w[i]]))
                    return 0;
            q = s->mapped.p;
            qn = s->mapped.n;
        }
        int32_t id = ptq_tok_lookup(t, q, qn);
        if (id >= 0) return ivec_push(out, id);
    }
    if (!grow(s, n + 1)) return 0; /* at most one symbol per byte */
    size_t k = 0;
    int32_t unk_pending = 0;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < n;) {
        int32_t id;
        size_t cl;
        if (t->style == PTQ_TOK_BYTELEVEL) {
            id = t->bl_id[u[i]];
            cl = 1;
        } else {
            cl = (size_t)ptq_tok_utf8_len(u + i, n - i);
            if (!cl) cl = 1; /* not reached: text was validated */
            id = ptq_tok_lookup(t, w + i, cl);
        }
        if (id >= 0) {
            if (unk_pending) s->sym[k++] = t->unk_id;
            unk_pending = 0;
            s->sym[k++] = id;
        } else {
            int fb = t->byte_fallback;
            for (size_t j = 0; fb && j < cl; j++) fb = t->byte_id[u[i + j]] >= 0;
            if (fb) {
                if (unk_pending) s->sym[k++] = t->unk_id;
                unk_pending = 0;
                for (size_t j = 0; j < cl; j++) s->sym[k++] = t->byte_id[u[i + j]];
            } else if (t->unk_id >= 0) {
                if (unk_pending && !t->fuse_unk) s->sym[k++] = t->unk_id;
                unk_pending = 1;
            } /* no unk token: the char is dropped, as Hugging Face does */
        }
        i += cl;
    }
    if (unk_pending) s->sym[k++] = t->unk_id;
    return bpe_merge(s, k, out);
}

/* ------------------------------------------------------------------ cache */

#define CACHE_MAX_WORD 256
#define CACHE_MAX_ENTRIES (1u << 20)

static int cached_word(enc *s, const char *w, size_t n)
{
    wcache *c = &s->cache;
    if (n > CACHE_MAX_WORD) return bpe_word(s, w, n, s->out);
    uint64_t h = ptq_tok_hash(w, n) | 1;
    size_t i = (size_t)h & c->mask;
    if (c->hash) {
        for (; c->hash[i]; i = (i + 1) & c->mask) {
            if (c->hash[i] == h && c->klen[i] == n && !memcmp(c->keys.p + c->koff[i], w, n)) {
                for (uint32_t j = 0; j < c->vlen[i]; j++)
                    if (!ivec_push(s->out, c->vals.v[c->voff[i] + j])) return 0;
                return 1;
            }
        }
    }
    size_t before = s->out->n;
    if (!bpe_word(s, w, n, s->out)) return 0;
    if (c->used >= CACHE_MAX_ENTRIES || c->keys.n + n > UINT32_MAX / 2 || c->vals.n > UINT32_MAX / 2)
        return 1;
    if (!c->hash || 2 * (c->used + 1) > c->mask + 1) {
        /* grow and rehash */
        size_t nm = c->hash ? 2 * (c->mask + 1) : 4096;
        uint64_t *nh = calloc(nm, sizeof *nh);
        uint32_t *a = malloc(nm * sizeof *a), *b = malloc(nm * sizeof *b);
        uint32_t *d = malloc(nm * sizeof *d), *f = malloc(nm * sizeof *f);
        if (!nh || !a || !b || !d || !f) {
            free(nh), free(a), free(b), free(d), free(f);
            return 1; /* no cache is only slower */
        }
        for (size_t j = 0; c->hash && j <= c->mask; j++) {
            if (!c->hash[j]) continue;
            size_t q = (size_t)c->hash[j] & (nm - 1);
            while (nh[q]) q = (q + 1) & (nm - 1);
            nh[q] = c->hash[j], a[q] = c->koff[j], b[q] = c->klen[j], d[q] = c->voff[j], f[q] = c->vlen[j];
        }
        free(c->hash), free(c->koff), free(c->klen), free(c->voff), free(c->vlen);
        c->hash = nh, c->koff = a, c->klen = b, c->voff = d, c->vlen = f;
        c->mask = nm - 1;
        i = (size_t)h & c->mask;
        while (c->hash[i]) i = (i + 1) & c->mask;
    }
    uint32_t koff = (uint32_t)c->keys.n, voff = (uint32_t)c->vals.n;
    if (!sbuf_add(&c->keys, w, n)) return 1;
    for (size_t j = before; j < s->out->n; j++)
        if (!ivec_push(&c->vals, s->out->v[j])) {
            c->vals.n = voff;
            return 1;
        }
    c->hash[i] = h, c->koff[i] = koff, c->klen[i] = (uint32_t)n;
    c->voff[i] = voff, c->vlen[i] = (uint32_t)(s->out->n - before);
    c->used++;
    return 1;
}

/* SentencePiece-style words: cut before each "▁" that follows a non-"▁" */
static int spm_word(enc *s, const char *w, size_t n)
{
    if (!s->t->spm_cut) return cached_word(s, w, n);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= n; i++) {
        if (memcmp(w + i, META, 3) || (i >= 3 && !memcmp(w + i - 3, META, 3))) continue;
        /* w[i-3..i) is not "▁"; i is a char start since ▁'s lead byte E2 is one */
        if (!cached_word(s, w + start, i - start)) return 0;
        start = i;
        i += 2;
    }
    return cached_word(s, w + start, n - start);
}

/* ------------------------------------------------------------------ pre-tokenize */

static int pre_step(enc *s, int step, const char *p, size_t n, int *err)
{
    const ptq_tokenizer *t = s->t;
    if (n == 0) return 1;
    if (step == t->n_pre) return t->style == PTQ_TOK_SPM ? spm_word(s, p, n) : cached_word(s, p, n);
    const ptq_tok_pre *ps = &t->pre[step];
    if (ps->kind == PTQ_PRE_METASPACE) {
        size_t start = 0;
        for (size_t i = 1; i + t->meta_len <= n; i++) {
            if (memcmp(p + i, t->meta, t->meta_len)) continue;
            if (!pre_step(s, step + 1, p + start, i - start, err)) return 0;
            start = i;
        }
        return pre_step(s, step + 1, p + start, n - start, err);
    }
    /* Split(regex, Isolated): each match is a piece, and so is each gap */
    size_t off = 0, done = 0;
    while (off <= n) {
        int rc = pcre2_match(ps->re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK, s->md, s->mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            *err = rc;
            return 0;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t a = ov[0], b = ov[1];
        if (b <= a) { /* empty match: step one char on */
            if (a >= n) break;
            int cl = ptq_tok_utf8_len((const unsigned char *)p + a, n - a);
            off = a + (size_t)(cl ? cl : 1);
            continue;
        }
        if (a > done && !pre_step(s, step + 1, p + done, a - done, err)) return 0;
        if (!pre_step(s, step + 1, p + a, b - a, err)) return 0;
        done = off = b;
    }
    return pre_step(s, step + 1, p + done, n - done, err);
}

/* ------------------------------------------------------------------ unicode forms */

/* A Unicode normalization form (UAX #15) of q[0..qn) into o with *changed
 * = 1, or *changed = 0 when the form surely leaves the text as it is (o
 * untouched).  The forms need the Unicode Character Database: canonical and
 * compatibility decompositions, canonical combining classes, composition
 * pairs and exclusions - thousands of entries that change with each Unicode
 * version.  Written by hand they would be error-prone and go stale, so they
 * come from utf8proc (Debian libutf8proc-dev), which generates its tables
 * from the UCD and implements exactly these forms.
 *
 * Fast path (tokenizers without a Unicode normalizer never come here):
 * ASCII is unchanged by every form; under NFC so is any text below U+0300,
 * as no char there has a canonical decomposition other than the precomposed
 * Latin ones NFC keeps, a nonzero combining class, or a composition with
 * another char below U+0300 (tests/check_tokenizer.c checks every pair).
 * In UTF-8 those are exactly the texts with no byte >= 0x80 resp. >= 0xCC. */
static int unicode_form(int kind, const char *q, size_t qn, sbuf *o, int *changed, ptq_err *e)
{
    unsigned char limit = kind == PTQ_NORM_NFC ? 0xCC : 0x80;
    size_t i = 0;
    while (i < qn && (unsigned char)q[i] < limit) i++;
    *changed = 0;
    if (i == qn) return PTQ_OK;
    utf8proc_option_t opt = UTF8PROC_STABLE;
    if (kind == PTQ_NORM_NFC || kind == PTQ_NORM_NFKC) opt |= UTF8PROC_COMPOSE;
    else opt |= UTF8PROC_DECOMPOSE;
    if (kind == PTQ_NORM_NFKC || kind == PTQ_NORM_NFKD) opt |= UTF8PROC_COMPAT;
    /* utf8proc counts in ssize_t and a char can decompose into 18 chars of 4 bytes */
    if (qn > (size_t)(PTRDIFF_MAX / 128))
        return ptq_fail(e, PTQ_EDATA, "text: section of %zu bytes too long to normalize", qn);
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t rn = utf8proc_map((const utf8proc_uint8_t *)q, (utf8proc_ssize_t)qn, &r, opt);
    if (rn < 0) {
        free(r);
        if (rn == UTF8PROC_ERROR_NOMEM) return ptq_fail(e, PTQ_ENOMEM, "text: out of memory normalizing");
        return ptq_fail(e, PTQ_EDATA, "text: Unicode normalization failed: %s", utf8proc_errmsg(rn));
    }
    o->n = 0;
    int ok = sbuf_add(o, r, (size_t)rn);
    free(r);
    if (!ok) return ptq_fail(e, PTQ_ENOMEM, "text: out of memory normalizing");
    *changed = 1;
    return PTQ_OK;
}

/* one text section between added tokens */
static int encode_section(enc *s, const char *p, size_t n, ptq_err *e)
{
    const ptq_tokenizer *t = s->t;
    int first = s->first_section;
    s->first_section = 0;
    if (n == 0) return PTQ_OK;
    /* normalize into s->norm[cur] (edits ping-pong between the two buffers) */
    int cur = -1;
    const char *q = p;
    size_t qn = n;
    for (int k = 0; k < t->n_norm; k++) {
        const ptq_tok_norm *nm = &t->norm[k];
        if (qn == 0) break;
        sbuf *o = &s->norm[cur == 0 ? 1 : 0];
        if (nm->kind != PTQ_NORM_PREPEND && nm->kind != PTQ_NORM_REPLACE) {
            int changed, rc = unicode_form(nm->kind, q, qn, o, &changed, e);
            if (rc) return rc;
            if (!changed) continue;
            cur = cur == 0 ? 1 : 0;
            q = o->p;
            qn = o->n;
            continue;
        }
        o->n = 0;
        int ok = 1;
        if (nm->kind == PTQ_NORM_PREPEND) {
            ok = sbuf_add(o, nm->to, nm->to_len) && sbuf_add(o, q, qn);
        } else {
            size_t i = 0, last = 0;
            while (ok && i + nm->from_len <= qn) {
                if (!memcmp(q + i, nm->from, nm->from_len)) {
                    ok = sbuf_add(o, q + last, i - last) && sbuf_add(o, nm->to, nm->to_len);
                    i += nm->from_len;
                    last = i;
                } else {
                    i++;
                }
            }
            ok = ok && sbuf_add(o, q + last, qn - last);
        }
        if (!ok) return ptq_fail(e, PTQ_ENOMEM, "text: out of memory normalizing");
        cur = cur == 0 ? 1 : 0;
        q = o->p;
        qn = o->n;
    }
    if (t->metaspace || (t->style == PTQ_TOK_BYTELEVEL && t->bl_prefix_space)) {
        sbuf *o = &s->norm[cur == 0 ? 1 : 0];
        o->n = 0;
        int ok = 1;
        if (t->metaspace) {
            int pre = t->meta_prepend == 2 || (t->meta_prepend == 1 && first);
            if (pre && !(qn >= t->meta_len && !memcmp(q, t->meta, t->meta_len))) ok = sbuf_add(o, t->meta, t->meta_len);
            for (size_t i = 0, last = 0; ok && i <= qn; i++) {
                if (i == qn || q[i] == ' ') {
                    ok = sbuf_add(o, q + last, i - last) && (i == qn || sbuf_add(o, t->meta, t->meta_len));
                    last = i + 1;
                }
            }
        } else {
            if (q[0] != ' ') ok = sbuf_add(o, " ", 1);
            ok = ok && sbuf_add(o, q, qn);
        }
        if (!ok) return ptq_fail(e, PTQ_ENOMEM, "text: out of memory normalizing");
        q = o->p;
        qn = o->n;
    }
    int err = 0;
    if (!pre_step(s, 0, q, qn, &err)) {
        if (err) {
            PCRE2_UCHAR buf[256];
            pcre2_get_error_message(err, buf, sizeof buf);
            return ptq_fail(e, PTQ_EDATA, "text: pre_tokenizer regex failed: %s", (char *)buf);
        }
        return ptq_fail(e, PTQ_ENOMEM, "text: out of memory encoding");
    }
    return PTQ_OK;
}

/* ------------------------------------------------------------------ added tokens */

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_word(unsigned char c) { return c >= 0x80 || c == '_' || (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z'); }

/* longest added token at text[i], honoring single_word; -1 if none */
static int added_at(const ptq_tokenizer *t, const char *text, size_t len, size_t i)
{
    int best = -1;
    for (int k = 0; k < t->n_added; k++) {
        const ptq_tok_added *a = &t->added[k];
        if (a->len > len - i || (best >= 0 && a->len <= t->added[best].len)) continue;
        if (memcmp(text + i, a->content, a->len)) continue;
        if (a->single_word && ((i > 0 && is_word((unsigned char)text[i - 1])) ||
                               (i + a->len < len && is_word((unsigned char)text[i + a->len]))))
            continue;
        best = k;
    }
    return best;
}

int ptq_tok_encode(const ptq_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                   size_t *n, ptq_err *e)
{
    *ids = NULL;
    *n = 0;
    if (!text && len) return ptq_fail(e, PTQ_EINTERNAL, "text: NULL with a length");
    const unsigned char *u = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int l = ptq_tok_utf8_len(u + i, len - i);
        if (!l) return ptq_fail(e, PTQ_EDATA, "text: invalid UTF-8 at byte %zu", i);
        i += (size_t)l;
    }
    ivec out = {0};
    enc s = {.t = t, .out = &out, .first_section = 1};
    int rc = PTQ_OK;
    if (add_bos) {
        if (t->bos < 0) return ptq_fail(e, PTQ_EDATA, "text: BOS requested but the tokenizer has none");
        if (!ivec_push(&out, t->bos)) return ptq_fail(e, PTQ_ENOMEM, "text: out of memory encoding");
    }
    if (t->n_pre) {
        s.md = pcre2_match_data_create(4, NULL);
        s.mc = pcre2_match_context_create(NULL);
        s.js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
        if (!s.md || !s.mc || !s.js) {
            rc = ptq_fail(e, PTQ_ENOMEM, "text: out of memory for the regex matcher");
            goto done;
        }
        pcre2_jit_stack_assign(s.mc, NULL, s.js);
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (!t->added_first[u[i]]) continue;
        int k = added_at(t, text, len, i);
        if (k < 0) continue;
        const ptq_tok_added *a = &t->added[k];
        size_t end = i, next = i + a->len;
        if (a->lstrip)
            while (end > start && is_space(u[end - 1])) end--;
        if (a->rstrip)
            while (next < len && is_space(u[next])) next++;
        if ((rc = encode_section(&s, text + start, end - start, e))) goto done;
        if (!ivec_push(&out, a->id)) {
            rc = ptq_fail(e, PTQ_ENOMEM, "text: out of memory encoding");
            goto done;
        }
        start = next;
        i = next - 1;
    }
    rc = encode_section(&s, text + start, len - start, e);
done:
    free(s.sym), free(s.prev), free(s.next), free(s.heap);
    free(s.cache.hash), free(s.cache.koff), free(s.cache.klen), free(s.cache.voff), free(s.cache.vlen);
    free(s.cache.keys.p), free(s.cache.vals.v);
    free(s.norm[0].p), free(s.norm[1].p), free(s.mapped.p);
    if (s.md) pcre2_match_data_free(s.md);
    if (s.mc) pcre2_match_context_free(s.mc);
    if (s.js) pcre2_jit_stack_free(s.js);
    if (rc) {
        free(out.v);
        return rc;
    }
    if (!out.v && !(out.v = malloc(sizeof *out.v))) return ptq_fail(e, PTQ_ENOMEM, "text: out of memory encoding");
    *ids = out.v;
    *n = out.n;
    return PTQ_OK;
}

/* ------------------------------------------------------------------ decode */

/* bytes -> UTF-8 with each maximal invalid subpart replaced by U+FFFD (as
 * Rust's from_utf8_lossy, which Hugging Face uses) */
static int add_lossy(sbuf *o, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        int l = ptq_tok_utf8_len(p + i, n - i);
        if (l) {
            if (!sbuf_add(o, p + i, (size_t)l)) return 0;
            i += (size_t)l;
            continue;
        }
        /* length of the maximal subpart: a lead byte and the continuation
         * bytes that could still start a valid sequence */
        unsigned c = p[i];
        size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        size_t k = 1;
        while (k < need && i + k < n) {
            unsigned d = p[i + k];
            unsigned lo = 0x80, hi = 0xBF;
            if (k == 1) {
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
                else if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
            }
            if (d < lo || d > hi) break;
            k++;
        }
        if (!sbuf_add(o, "\xef\xbf\xbd", 3)) return 0;
        i += k;
    }
    return 1;
}

static int byte_piece(const char *p, size_t n)
{
    if (n != 6 || p[0] != '<' || p[1] != '0' || p[2] != 'x' || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int ptq_tok_decode(const ptq_tokenizer *t, const int32_t *ids, size_t n, char **out, size_t *outlen,
                   ptq_err *e)
{
    *out = NULL;
    if (outlen) *outlen = 0;
    sbuf o = {0}, bytes = {0};
    int ok = sbuf_add(&o, "", 0);
    if (t->dec_bytelevel) {
        /* inverse byte table: the byte-level chars are U+0000..U+0143 */
        int16_t inv[0x144];
        for (int i = 0; i < 0x144; i++) inv[i] = -1;
        for (int b = 0; b < 256; b++) {
            const unsigned char *c = (const unsigned char *)t->bl_chr[b];
            int cp = t->bl_chrlen[b] == 1 ? c[0] : ((c[0] & 0x1F) << 6) | (c[1] & 0x3F);
            inv[cp] = (int16_t)b;
        }
        for (size_t i = 0; ok && i < n; i++) {
            if (ids[i] < 0 || ids[i] >= t->n_vocab || !t->piece[ids[i]]) goto bad_id;
            const unsigned char *p = (const unsigned char *)t->piece[ids[i]];
            size_t pn = t->plen[ids[i]], mark = bytes.n;
            for (size_t j = 0; ok && j < pn;) {
                int l = ptq_tok_utf8_len(p + j, pn - j);
                int cp = l == 1 ? p[j] : l == 2 ? ((p[j] & 0x1F) << 6) | (p[j + 1] & 0x3F) : 0x144;
                if (cp >= 0x144 || inv[cp] < 0) { /* not byte-level: the token's own bytes */
                    bytes.n = mark;
                    ok = sbuf_add(&bytes, p, pn);
                    break;
                }
                char b = (char)inv[cp];
                ok = sbuf_add(&bytes, &b, 1);
                j += (size_t)l;
            }
        }
        ok = ok && add_lossy(&o, (const unsigned char *)bytes.p, bytes.n);
    } else {
        for (size_t i = 0; ok && i <= n; i++) {
            if (i < n && (ids[i] < 0 || ids[i] >= t->n_vocab || !t->piece[ids[i]])) goto bad_id;
            const char *p = i < n ? t->piece[ids[i]] : NULL;
            size_t pn = i < n ? t->plen[ids[i]] : 0;
            int b = p && t->dec_bytefb ? byte_piece(p, pn) : -1;
            if (b >= 0) {
                char c = (char)b;
                ok = sbuf_add(&bytes, &c, 1);
                continue;
            }
            if (bytes.n) { /* a run of byte tokens: UTF-8, or one U+FFFD per byte */
                if (ptq_tok_utf8_valid(bytes.p, bytes.n)) ok = sbuf_add(&o, bytes.p, bytes.n);
                else
                    for (size_t j = 0; ok && j < bytes.n; j++) ok = sbuf_add(&o, "\xef\xbf\xbd", 3);
                bytes.n = 0;
            }
            if (!p) break;
            if (!t->dec_meta) {
                ok = ok && sbuf_add(&o, p, pn);
                continue;
            }
            for (size_t j = 0, last = 0; ok && j <= pn; j++) {
                if (j == pn || (j + 3 <= pn && !memcmp(p + j, META, 3))) {
                    ok = sbuf_add(&o, p + last, j - last) && (j == pn || sbuf_add(&o, " ", 1));
                    last = j + 3;
                    j += 2;
                }
            }
        }
        if (ok && t->dec_strip) {
            size_t k = 0;
            while (k < (size_t)t->dec_strip && k < o.n && o.p[k] == ' ') k++;
            memmove(o.p, o.p + k, o.n - k + 1);
            o.n -= k;
        }
    }
    free(bytes.p);
    if (!ok) {
        free(o.p);
        return ptq_fail(e, PTQ_ENOMEM, "decode: out of memory");
    }
    *out = o.p;
    if (outlen) *outlen = o.n;
    return PTQ_OK;
bad_id:
    free(o.p);
    free(bytes.p);
    return ptq_fail(e, PTQ_EDATA, "decode: token id out of range or unused (vocab size %d)", (int)t->n_vocab);
}
