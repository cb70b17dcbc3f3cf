/* check_tokenizer.c - tokenizer.json BPE (formats/tokenizer.c, formats/bpe.c).
 *
 * Golden ids come from the shared files only: the models' golden/tokens.jsonl
 * and tinystories-eval.ids.json (llama2.c run.c and a SentencePiece-BPE
 * reference encoder) and the tokenizers' tests.jsonl (Hugging Face
 * tokenizers, via llama.cpp's test vectors).  The synthetic Llama 3 test's
 * splits were derived by hand from the definition of the regex. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <utf8proc.h>

#include "formats/tokenizer.h"
#include "tests/testutil.h"

/* tu_shared of dir/file */
static char *shared2(const char *dir, const char *file)
{
    char *rel = tu_fmt("%s/%s", dir, file), *p = tu_shared(rel);
    free(rel);
    return p;
}

static ptq_tokenizer *load_dir(const char *dir)
{
    char *tj = shared2(dir, "tokenizer.json");
    char *tc = shared2(dir, "tokenizer_config.json");
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load(&t, tj, tc, &e) == PTQ_OK, "%s", e.msg);
    free(tj);
    free(tc);
    return t;
}

static int32_t *json_ids(const cJSON *a, size_t *n)
{
    ck_assert(cJSON_IsArray(a));
    *n = (size_t)cJSON_GetArraySize(a);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    size_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a) v[i++] = (int32_t)it->valuedouble;
    return v;
}

static void expect_ids(const ptq_tokenizer *t, const char *text, size_t len, int add_bos, const int32_t *want,
                       size_t nwant, const char *what)
{
    int32_t *ids = NULL;
    size_t n = 0;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_encode(t, text, len, add_bos, &ids, &n, &e) == PTQ_OK, "%s: %s", what, e.msg);
    size_t i = 0;
    while (i < n && i < nwant && ids[i] == want[i]) i++;
    ck_assert_msg(n == nwant && i == n, "%s: %zu ids, want %zu; first difference at %zu: %d vs %d", what, n,
                  nwant, i, i < n ? ids[i] : -1, i < nwant ? want[i] : -1);
    free(ids);
}

static char *decode(const ptq_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    char *s = NULL;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_decode(t, ids, n, &s, len, &e) == PTQ_OK, "%s", e.msg);
    ck_assert(s[*len] == 0);
    return s;
}

/* each line {"text", "ids"[, "ids_no_bos"]}; ids_no_bos present: ids has BOS.
 * Returns the number of lines whose round trip is impossible (<unk>). */
static int run_jsonl(const ptq_tokenizer *t, const char *rel, int want_lines)
{
    char *p = tu_shared(rel);
    size_t len;
    char *buf = tu_read_file(p, &len);
    ck_assert_msg(buf != NULL, "cannot read %s", p);
    int lines = 0, unk_lines = 0;
    int unk = ptq_tok_piece(t, 0) && !strcmp(ptq_tok_piece(t, 0), "<unk>") ? 0 : -1;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_msg(j != NULL, "%s: bad line %d", rel, lines + 1);
        const cJSON *text = cJSON_GetObjectItem(j, "text");
        ck_assert(cJSON_IsString(text));
        const char *s = text->valuestring;
        size_t sl = strlen(s);
        const cJSON *nb = cJSON_GetObjectItem(j, "ids_no_bos");
        size_t n, n2;
        int32_t *ids = json_ids(cJSON_GetObjectItem(j, "ids"), &n);
        char *what = tu_fmt("%s line %d", rel, lines + 1);
        int32_t *plain = ids;
        size_t np = n;
        if (nb) {
            expect_ids(t, s, sl, 1, ids, n, what);
            plain = json_ids(nb, &n2);
            np = n2;
            ck_assert(n == n2 + 1 && ids[0] == ptq_tok_bos(t));
        }
        expect_ids(t, s, sl, 0, plain, np, what);
        int has_unk = 0;
        for (size_t i = 0; i < np; i++) has_unk |= plain[i] == unk;
        size_t dl;
        char *d = decode(t, plain, np, &dl);
        if (has_unk) {
            ck_assert_msg(strcmp(d, s) != 0, "%s: <unk> decoded to the text", what);
            unk_lines++;
        } else {
            ck_assert_msg(dl == sl && !memcmp(d, s, sl), "%s: decode gives \"%s\", want \"%s\"", what, d, s);
        }
        free(d);
        if (plain != ids) free(plain);
        free(ids);
        free(what);
        cJSON_Delete(j);
        lines++;
    }
    ck_assert_msg(lines == want_lines, "%s: %d lines", rel, lines);
    free(buf);
    free(p);
    return unk_lines;
}

START_TEST(stories260k_golden)
{
    ptq_tokenizer *t = load_dir("models/stories260k");
    ck_assert_int_eq(ptq_tok_vocab_size(t), 512);
    ck_assert_int_eq(ptq_tok_n_merges(t), 165);
    ck_assert_int_eq(ptq_tok_bos(t), 1);
    ck_assert_int_eq(ptq_tok_eos(t), 2);
    ck_assert_int_eq(ptq_tok_add_bos(t), 1);
    ck_assert_str_eq(ptq_tok_style(t), "sentencepiece-bpe");
    /* byte fallback: every text round-trips */
    ck_assert_int_eq(run_jsonl(t, "models/stories260k/golden/tokens.jsonl", 40), 0);
    ptq_tok_free(t);
}
END_TEST

START_TEST(babyllama_golden)
{
    ptq_tokenizer *t = load_dir("models/babyllama-105");
    ck_assert_int_eq(ptq_tok_vocab_size(t), 105);
    ck_assert_int_eq(ptq_tok_n_merges(t), 0);
    /* no byte fallback: lines with "\n", CJK, emoji... hold <unk> and
     * cannot round-trip; the others must */
    int unk = run_jsonl(t, "models/babyllama-105/golden/tokens.jsonl", 40);
    ck_assert_msg(unk > 0 && unk < 40, "%d lines with <unk>", unk);
    ptq_tok_free(t);
}
END_TEST

START_TEST(llama_spm_vectors)
{
    ptq_tokenizer *t = load_dir("tokenizers/llama-spm");
    ck_assert_int_eq(ptq_tok_vocab_size(t), 32000);
    ck_assert_int_eq(ptq_tok_n_merges(t), 61249);
    ck_assert_int_eq(run_jsonl(t, "tokenizers/llama-spm/tests.jsonl", 46), 0);
    ptq_tok_free(t);
}
END_TEST

START_TEST(gpt2_vectors)
{
    ptq_tokenizer *t = load_dir("tokenizers/gpt2");
    ck_assert_int_eq(ptq_tok_vocab_size(t), 50257);
    ck_assert_int_eq(ptq_tok_n_merges(t), 50000);
    ck_assert_str_eq(ptq_tok_style(t), "byte-level-bpe");
    ck_assert_int_eq(ptq_tok_bos(t), 50256);
    ck_assert_int_eq(ptq_tok_eos(t), 50256);
    ck_assert_int_eq(ptq_tok_add_bos(t), 0);
    ck_assert_int_eq(run_jsonl(t, "tokenizers/gpt2/tests.jsonl", 46), 0);
    /* the special token is cut out before BPE; each side is encoded alone.
     * "Hello world" = 15496 995 (tests.jsonl), <|endoftext|> = 50256 */
    const char *s = "Hello world<|endoftext|>Hello world";
    int32_t want[] = {15496, 995, 50256, 15496, 995};
    expect_ids(t, s, strlen(s), 0, want, 5, "special token");
    size_t dl;
    char *d = decode(t, want, 5, &dl);
    ck_assert_str_eq(d, s);
    free(d);
    ptq_tok_free(t);
}
END_TEST

static void eval_ids(const char *model, int roundtrip)
{
    ptq_tokenizer *t = load_dir(model);
    char *tp = tu_shared("text/tinystories-eval.txt");
    char *gp = shared2(model, "golden/tinystories-eval.ids.json");
    size_t tl, gl, n;
    char *text = tu_read_file(tp, &tl), *g = tu_read_file(gp, &gl);
    ck_assert(text && g);
    cJSON *j = cJSON_Parse(g);
    int32_t *want = json_ids(cJSON_GetObjectItem(j, "ids"), &n);
    expect_ids(t, text, tl, 1, want, n, gp);
    if (!roundtrip) { /* babyllama-105 maps "\n" to <unk> */
        int unk = 0;
        for (size_t i = 0; i < n; i++) unk += want[i] == 0;
        ck_assert(unk > 0);
    } else {
        size_t dl;
        char *d = decode(t, want + 1, n - 1, &dl);
        ck_assert_msg(dl == tl && !memcmp(d, text, tl), "%s: decode differs", tp);
        free(d);
    }
    cJSON_Delete(j);
    free(want);
    free(text);
    free(g);
    free(tp);
    free(gp);
    ptq_tok_free(t);
}

START_TEST(tinystories_eval_stories260k) { eval_ids("models/stories260k", 1); }
END_TEST
START_TEST(tinystories_eval_babyllama) { eval_ids("models/babyllama-105", 0); }
END_TEST

/* ------------------------------------------------------------ synthetic */

#define LLAMA3_PATTERN                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* GPT-2's byte-to-unicode map, written out from its definition */
static void byte_char(int b, char out[3])
{
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!keep) {
        int k = 0;
        for (int c = 0; c < b; c++)
            if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

static char *bl_string(const char *s, size_t n)
{
    char *o = calloc(2 * n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        char c[3];
        byte_char((unsigned char)s[i], c);
        strcat(o, c);
    }
    return o;
}

/* The Llama 3 text and its pre-tokenization, derived by hand from the
 * pattern's alternatives (leftmost alternative that matches wins). */
static const char *const L3_PIECES[] = {
    "Hello", " WORLD", "'S", " ", "123", "45", " apples", "\n\n", " ", " don", "'t", "!!", "  \r\n",
    "x", " \xe4\xb8\xad\xe6\x96\x87", " ", "42", "ab", " end", "   ",
};
#define N_L3 (sizeof L3_PIECES / sizeof *L3_PIECES)

/* vocab: the 256 byte chars (id = byte), then for every piece the chain of
 * merges that builds it left to right; each adjacent pair of pieces gets a
 * merge of rank 0 across their boundary, so a missing split changes the ids */
static char *llama3_json(int32_t *piece_id)
{
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *vocab = cJSON_CreateObject();
    cJSON *merges = cJSON_CreateArray();
    int next = 256;
    for (int b = 0; b < 256; b++) {
        char c[3];
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, b);
    }
    for (size_t k = 0; k + 1 < N_L3; k++) {
        const char *a = L3_PIECES[k], *b = L3_PIECES[k + 1];
        char *l = bl_string(a + strlen(a) - 1, 1), *r = bl_string(b, 1);
        char *cat = tu_fmt("%s%s", l, r);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, cat)) cJSON_AddNumberToObject(vocab, cat, next++);
        cJSON *m = cJSON_CreateArray();
        cJSON_AddItemToArray(m, cJSON_CreateString(l));
        cJSON_AddItemToArray(m, cJSON_CreateString(r));
        cJSON_AddItemToArray(merges, m);
        free(l), free(r), free(cat);
    }
    for (size_t k = 0; k < N_L3; k++) {
        const char *p = L3_PIECES[k];
        size_t n = strlen(p);
        char *prev = bl_string(p, 1);
        for (size_t j = 1; j < n; j++) {
            char *c = bl_string(p + j, 1), *cat = tu_fmt("%s%s", prev, c);
            if (!cJSON_GetObjectItemCaseSensitive(vocab, cat)) {
                cJSON_AddNumberToObject(vocab, cat, next++);
                cJSON *m = cJSON_CreateArray();
                cJSON_AddItemToArray(m, cJSON_CreateString(prev));
                cJSON_AddItemToArray(m, cJSON_CreateString(c));
                cJSON_AddItemToArray(merges, m);
            }
            free(prev), free(c);
            prev = cat;
        }
        piece_id[k] = (int32_t)cJSON_GetObjectItemCaseSensitive(vocab, prev)->valuedouble;
        free(prev);
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    cJSON *pre = cJSON_CreateObject(), *list = cJSON_CreateArray(), *split = cJSON_CreateObject();
    cJSON *pat = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(pat, "Regex", LLAMA3_PATTERN);
    cJSON_AddItemToObject(split, "pattern", pat);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", 0);
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "trim_offsets", 1);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, bl);
    cJSON_AddItemToObject(pre, "pretokenizers", list);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    /* Llama 3.1's post_processor: the BOS template inside a Sequence */
    cJSON *pp = cJSON_CreateObject(), *procs = cJSON_CreateArray(), *bp = cJSON_CreateObject();
    cJSON *tp = cJSON_CreateObject(), *single = cJSON_CreateArray(), *sp = cJSON_CreateObject();
    cJSON *st = cJSON_CreateObject();
    cJSON_AddStringToObject(pp, "type", "Sequence");
    cJSON_AddStringToObject(bp, "type", "ByteLevel");
    cJSON_AddStringToObject(tp, "type", "TemplateProcessing");
    cJSON_AddStringToObject(st, "id", "<|begin_of_text|>");
    cJSON_AddItemToObject(sp, "SpecialToken", st);
    cJSON_AddItemToArray(single, sp);
    cJSON_AddItemToObject(tp, "single", single);
    cJSON_AddItemToArray(procs, bp);
    cJSON_AddItemToArray(procs, tp);
    cJSON_AddItemToObject(pp, "processors", procs);
    cJSON_AddItemToObject(root, "post_processor", pp);
    cJSON *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddItemToObject(root, "decoder", dec);
    /* an added token with lstrip and rstrip */
    cJSON *added = cJSON_CreateArray(), *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", next);
    cJSON_AddStringToObject(a, "content", "<|eot_id|>");
    cJSON_AddBoolToObject(a, "lstrip", 1);
    cJSON_AddBoolToObject(a, "rstrip", 1);
    cJSON_AddBoolToObject(a, "special", 1);
    cJSON_AddItemToArray(added, a);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddNumberToObject(b, "id", next + 1);
    cJSON_AddStringToObject(b, "content", "<|begin_of_text|>");
    cJSON_AddBoolToObject(b, "special", 1);
    cJSON_AddItemToArray(added, b);
    cJSON_AddItemToObject(root, "added_tokens", added);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

START_TEST(llama3_split)
{
    int32_t want[N_L3];
    char *json = llama3_json(want);
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load_mem(&t, json, strlen(json), NULL, 0, "l3/tokenizer.json", &e) == PTQ_OK, "%s",
                  e.msg);
    ck_assert_str_eq(ptq_tok_style(t), "byte-level-bpe");
    char text[256] = "";
    for (size_t k = 0; k < N_L3; k++) strcat(text, L3_PIECES[k]);
    expect_ids(t, text, strlen(text), 0, want, N_L3, "llama3 splits");
    size_t dl;
    char *d = decode(t, want, N_L3, &dl);
    ck_assert_str_eq(d, text);
    free(d);
    /* lstrip/rstrip: the spaces around the added token go with it */
    int32_t eot = ptq_tok_vocab_size(t) - 2;
    ck_assert_int_eq(ptq_tok_bos(t), eot + 1);
    ck_assert_int_eq(ptq_tok_add_bos(t), 1);
    ck_assert_int_eq(ptq_tok_eos(t), -1);
    const char *s2 = "Hello  <|eot_id|>  Hello";
    int32_t want2[] = {want[0], eot, want[0]};
    expect_ids(t, s2, strlen(s2), 0, want2, 3, "lstrip/rstrip");
    ptq_tok_free(t);
    free(json);
}
END_TEST

/* ignore_merges (Llama 3): a word that is a piece is taken whole, looked up
 * by its byte-level chars ("\xc4\xa0" = U+0120, the char of the byte ' ') */
START_TEST(ignore_merges)
{
    const char *fmt = "{\"model\": {\"type\": \"BPE\", \"ignore_merges\": %s, \"vocab\": "
                      "{\"\xc4\xa0\": 0, \"x\": 1, \"y\": 2, \"\xc4\xa0xy\": 3}, \"merges\": []}, "
                      "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
                      "\"use_regex\": true}, \"decoder\": {\"type\": \"ByteLevel\"}}";
    for (int im = 0; im < 2; im++) {
        char *json = tu_fmt(fmt, im ? "true" : "false");
        ptq_tokenizer *t = NULL;
        ptq_err e = {0};
        ck_assert_msg(ptq_tok_load_mem(&t, json, strlen(json), NULL, 0, "im.json", &e) == PTQ_OK, "%s", e.msg);
        /* GPT-2 regex pieces: " xy", " x" */
        int32_t with[] = {3, 0, 1}, without[] = {0, 1, 2, 0, 1};
        if (im) expect_ids(t, " xy x", 5, 0, with, 3, "ignore_merges true");
        else expect_ids(t, " xy x", 5, 0, without, 5, "ignore_merges false");
        ptq_tok_free(t);
        free(json);
    }
}
END_TEST

/* ------------------------------------------------------------ Unicode normalizers */

/* A Qwen2-style byte-level tokenizer with the given normalizer (JSON text,
 * "null" for none): GPT-2 ByteLevel pre-tokenizer, the 256 byte chars (id =
 * byte), then these words built by merges left to right, each prefix of two
 * or more bytes a piece (ids in order):
 *   "\xc3\xa9"      U+00E9 é: 256
 *   "\xea\xb0\x80"  U+AC00 가: 257 (EA B0), 258
 *   "\xe8\xb1\x88"  U+8C48 豈: 259 (E8 B1), 260
 *   "\xe4\xb8\xad"  U+4E2D 中: 261 (E4 B8), 262
 * and the added token "<|im_end|>" = 263. */
static const char *const UNI_WORDS[] = {"\xc3\xa9", "\xea\xb0\x80", "\xe8\xb1\x88", "\xe4\xb8\xad"};

static char *unicode_json(const char *normalizer)
{
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *vocab = cJSON_CreateObject();
    cJSON *merges = cJSON_CreateArray();
    int next = 256;
    for (int b = 0; b < 256; b++) {
        char c[3];
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, b);
    }
    for (size_t k = 0; k < sizeof UNI_WORDS / sizeof *UNI_WORDS; k++) {
        const char *w = UNI_WORDS[k];
        char *prev = bl_string(w, 1);
        for (size_t j = 1; j < strlen(w); j++) {
            char *c = bl_string(w + j, 1), *cat = tu_fmt("%s%s", prev, c);
            cJSON_AddNumberToObject(vocab, cat, next++);
            cJSON *m = cJSON_CreateArray();
            cJSON_AddItemToArray(m, cJSON_CreateString(prev));
            cJSON_AddItemToArray(m, cJSON_CreateString(c));
            cJSON_AddItemToArray(merges, m);
            free(prev), free(c);
            prev = cat;
        }
        free(prev);
    }
    ck_assert_int_eq(next, 263);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddItemToObject(root, "model", model);
    cJSON *norm = cJSON_Parse(normalizer);
    ck_assert_ptr_nonnull(norm);
    cJSON_AddItemToObject(root, "normalizer", norm);
    cJSON *pre = cJSON_CreateObject(), *dec = cJSON_CreateObject();
    cJSON_AddStringToObject(pre, "type", "ByteLevel");
    cJSON_AddBoolToObject(pre, "add_prefix_space", 0);
    cJSON_AddBoolToObject(pre, "use_regex", 1);
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddItemToObject(root, "decoder", dec);
    cJSON *added = cJSON_CreateArray(), *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "id", 263);
    cJSON_AddStringToObject(a, "content", "<|im_end|>");
    cJSON_AddBoolToObject(a, "special", 1);
    cJSON_AddItemToArray(added, a);
    cJSON_AddItemToObject(root, "added_tokens", added);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static ptq_tokenizer *unicode_tok(const char *normalizer)
{
    char *json = unicode_json(normalizer);
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load_mem(&t, json, strlen(json), NULL, 0, "uni/tokenizer.json", &e) == PTQ_OK,
                  "%s: %s", normalizer, e.msg);
    free(json);
    return t;
}

#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t)
#define EXPECT(t, text, ...) expect_ids(t, text, strlen(text), 0, IDS(__VA_ARGS__), text)

/* The normal forms below are the Unicode Standard's (UAX #15 and the
 * UnicodeData.txt decompositions), worked out by hand:
 *   NFC(U+0065 U+0301) = U+00E9           canonical composition
 *   NFD(U+00E9) = U+0065 U+0301           canonical decomposition
 *   NFC(U+1100 U+1161) = U+AC00           Hangul L+V -> LV syllable
 *   NFC(U+1100 U+1161 U+11A8) = U+AC01    Hangul L+V+T -> LVT syllable
 *   NFC(U+F900) = U+8C48                  singleton decomposition, not recomposed
 *   NFC(U+4E2D U+6587) = U+4E2D U+6587    CJK ideographs are unchanged
 *   NFKC(U+FB01) = U+0066 U+0069          compatibility ligature "fi"
 *   NFKC(U+00B2) = U+0032                 superscript two
 * In UTF-8: U+00E9 C3 A9, U+0301 CC 81, U+1100 E1 84 80, U+1161 E1 85 A1,
 * U+11A8 E1 86 A8, U+AC00 EA B0 80, U+AC01 EA B0 81, U+F900 EF A4 80,
 * U+8C48 E8 B1 88, U+4E2D E4 B8 AD, U+6587 E6 96 87, U+FB01 EF AC 81,
 * U+00B2 C2 B2. */
START_TEST(unicode_nfc)
{
    ptq_tokenizer *t = unicode_tok("{\"type\": \"NFC\"}");
    ptq_tokenizer *raw = unicode_tok("null");
    /* e + combining acute and the precomposed é encode alike under NFC */
    EXPECT(t, "e\xcc\x81", 256);
    EXPECT(t, "\xc3\xa9", 256);
    EXPECT(raw, "e\xcc\x81", 'e', 0xCC, 0x81); /* without the normalizer they differ */
    EXPECT(raw, "\xc3\xa9", 256);
    /* before pre-tokenization: U+0301 is no letter, so unnormalized
     * "café" would split after "caf" (\p{L}+) */
    EXPECT(t, "cafe\xcc\x81 \xe4\xb8\xad", 'c', 'a', 'f', 256, ' ', 262);
    EXPECT(raw, "cafe\xcc\x81 \xe4\xb8\xad", 'c', 'a', 'f', 'e', 0xCC, 0x81, ' ', 262);
    /* Hangul jamo compose arithmetically */
    EXPECT(t, "\xe1\x84\x80\xe1\x85\xa1", 258);
    EXPECT(t, "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 257, 0x81);
    EXPECT(raw, "\xe1\x84\x80\xe1\x85\xa1", 0xE1, 0x84, 0x80, 0xE1, 0x85, 0xA1);
    /* CJK passes unchanged; a compatibility ideograph maps to its unified one */
    EXPECT(t, "\xe4\xb8\xad\xe6\x96\x87", 262, 0xE6, 0x96, 0x87);
    EXPECT(raw, "\xe4\xb8\xad\xe6\x96\x87", 262, 0xE6, 0x96, 0x87);
    EXPECT(t, "\xef\xa4\x80", 260);
    /* NFC keeps compatibility chars; each section between added tokens is normalized */
    EXPECT(t, "\xef\xac\x81\xc2\xb2", 0xEF, 0xAC, 0x81, 0xC2, 0xB2);
    EXPECT(t, "e\xcc\x81<|im_end|>e\xcc\x81", 256, 263, 256);
    /* decode gives the normalized text */
    size_t dl;
    char *d = decode(t, IDS(256, 258), &dl);
    ck_assert_str_eq(d, "\xc3\xa9\xea\xb0\x80");
    free(d);
    ptq_tok_free(t);
    ptq_tok_free(raw);
}
END_TEST

START_TEST(unicode_nfd_nfkc_nfkd)
{
    ptq_tokenizer *t = unicode_tok("{\"type\": \"NFD\"}");
    EXPECT(t, "\xc3\xa9", 'e', 0xCC, 0x81);
    EXPECT(t, "\xea\xb0\x80", 0xE1, 0x84, 0x80, 0xE1, 0x85, 0xA1);
    EXPECT(t, "\xef\xac\x81", 0xEF, 0xAC, 0x81);
    EXPECT(t, "plain ascii", 'p', 'l', 'a', 'i', 'n', ' ', 'a', 's', 'c', 'i', 'i');
    ptq_tok_free(t);
    t = unicode_tok("{\"type\": \"NFKC\"}");
    EXPECT(t, "\xef\xac\x81\xc2\xb2", 'f', 'i', '2');
    EXPECT(t, "e\xcc\x81", 256);
    EXPECT(t, "\xef\xa4\x80", 260);
    ptq_tok_free(t);
    t = unicode_tok("{\"type\": \"NFKD\"}");
    EXPECT(t, "\xef\xac\x81\xc3\xa9", 'f', 'i', 'e', 0xCC, 0x81);
    ptq_tok_free(t);
    /* a Sequence: NFKD then NFC is NFKC */
    t = unicode_tok("{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKD\"}, {\"type\": \"NFC\"}]}");
    EXPECT(t, "\xef\xac\x81" "e\xcc\x81", 'f', 'i', 256);
    ptq_tok_free(t);
    /* SentencePiece style: NFKC before Prepend and Replace; "ﬁ ﬁ" -> "▁fi▁fi" */
    const char *json =
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, {\"type\": "
        "\"Prepend\", \"prepend\": \"\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "
        "\"content\": \"\u2581\"}]}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"\u2581\": 0, \"f\": 1, "
        "\"i\": 2, \"\u2581f\": 3, \"\u2581fi\": 4}, \"merges\": [\"\u2581 f\", \"\u2581f i\"]}}";
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load_mem(&t, json, strlen(json), NULL, 0, "spm.json", &e) == PTQ_OK, "%s", e.msg);
    EXPECT(t, "\xef\xac\x81 \xef\xac\x81", 4, 4);
    ptq_tok_free(t);
}
END_TEST

/* The NFC fast path (formats/bpe.c) takes text below U+0300 as already in
 * NFC.  Checked here against utf8proc's full algorithm for every char and
 * every pair of chars below U+0300 (a longer string of them could only
 * change through a pair). */
START_TEST(unicode_nfc_fast_path)
{
    for (int a = 1; a < 0x300; a++) {
        for (int b = 0; b < 0x300; b++) {
            utf8proc_uint8_t in[8], *out = NULL;
            utf8proc_ssize_t n = utf8proc_encode_char(a, in);
            if (b) n += utf8proc_encode_char(b, in + n);
            utf8proc_ssize_t m = utf8proc_map(in, n, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            ck_assert_msg(m == n && !memcmp(in, out, (size_t)n), "NFC changes U+%04X U+%04X", a, b);
            free(out);
        }
    }
}
END_TEST

/* SentencePiece-style text is cut into words before "▁" only when no merge
 * makes a piece with "▁" after another char: here "a" + "▁" does, so
 * "a b" = "▁a▁b" must give "▁" "a▁" "b" */
START_TEST(spm_merge_across_meta)
{
    const char *json =
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
        "\"\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\u2581\"}]}, "
        "\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
        "\"\u2581\"}, \"content\": \" \"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]}, "
        "\"model\": {\"type\": \"BPE\", \"vocab\": {\"\u2581\": 0, \"a\": 1, \"b\": 2, \"a\u2581\": 3}, "
        "\"merges\": [\"a \u2581\"]}}";
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load_mem(&t, json, strlen(json), NULL, 0, "m.json", &e) == PTQ_OK, "%s", e.msg);
    int32_t want[] = {0, 3, 2};
    expect_ids(t, "a b", 3, 0, want, 3, "a b");
    size_t dl;
    char *d = decode(t, want, 3, &dl);
    ck_assert_str_eq(d, "a b");
    free(d);
    ptq_tok_free(t);
}
END_TEST

START_TEST(bos_eos_config)
{
    char *tj = tu_shared("models/stories260k/tokenizer.json");
    size_t len;
    char *json = tu_read_file(tj, &len);
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    const char *cfg = "{\"bos_token\": {\"content\": \"</s>\", \"lstrip\": false}, \"eos_token\": \"<unk>\", "
                      "\"add_bos_token\": false}";
    ck_assert_msg(ptq_tok_load_mem(&t, json, len, cfg, strlen(cfg), tj, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(ptq_tok_bos(t), 2);
    ck_assert_int_eq(ptq_tok_eos(t), 0);
    ck_assert_int_eq(ptq_tok_add_bos(t), 0);
    ptq_tok_free(t);
    /* no config: from the added tokens and the post_processor template */
    ck_assert_msg(ptq_tok_load_mem(&t, json, len, NULL, 0, tj, &e) == PTQ_OK, "%s", e.msg);
    ck_assert_int_eq(ptq_tok_bos(t), 1);
    ck_assert_int_eq(ptq_tok_eos(t), 2);
    ck_assert_int_eq(ptq_tok_add_bos(t), 1);
    ck_assert_str_eq(ptq_tok_piece(t, 1), "<s>");
    ck_assert_ptr_null(ptq_tok_piece(t, 512));
    /* decode rejects ids outside the vocabulary; encode rejects bad UTF-8 */
    int32_t bad = 512;
    char *out = NULL;
    size_t ol;
    ck_assert_int_eq(ptq_tok_decode(t, &bad, 1, &out, &ol, &e), PTQ_EDATA);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ptq_tok_encode(t, "a\xc3(b", 4, 0, &ids, &n, &e), PTQ_EDATA);
    ck_assert_msg(strstr(e.msg, "UTF-8"), "%s", e.msg);
    ptq_tok_free(t);
    /* a BOS the vocabulary lacks */
    const char *cfg2 = "{\"bos_token\": \"<|begin_of_text|>\"}";
    ck_assert_int_eq(ptq_tok_load_mem(&t, json, len, cfg2, strlen(cfg2), tj, &e), PTQ_EFORMAT);
    ck_assert_msg(strstr(e.msg, "<|begin_of_text|>"), "%s", e.msg);
    free(json);
    free(tj);
}
END_TEST

/* ------------------------------------------------------------ bad input */

#define TINY_PRE "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "

static void bad(const char *json, int want, const char *what)
{
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    int rc = ptq_tok_load_mem(&t, json, strlen(json), NULL, 0, "bad/tokenizer.json", &e);
    ck_assert_msg(rc == want, "status %d for %s (%s)", rc, json, e.msg);
    ck_assert_ptr_null(t);
    ck_assert_msg(!strncmp(e.msg, "bad/tokenizer.json: ", 20), "no file name: %s", e.msg);
    ck_assert_msg(strstr(e.msg, what) != NULL, "message lacks '%s': %s", what, e.msg);
}

START_TEST(bad_inputs)
{
    /* the tiny tokenizer itself is fine */
    const char *ok = TINY_PRE "\"merges\": [\"a b\"]}}";
    ptq_tokenizer *t = NULL;
    ptq_err e = {0};
    ck_assert_msg(ptq_tok_load_mem(&t, ok, strlen(ok), NULL, 0, "ok.json", &e) == PTQ_OK, "%s", e.msg);
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ptq_tok_encode(t, "aab", 3, 0, &ids, &n, &e), PTQ_OK);
    ck_assert(n == 2 && ids[0] == 0 && ids[1] == 2);
    free(ids);
    ptq_tok_free(t);
    /* equal ranks merge leftmost first (Hugging Face orders its merge queue
     * by rank, then position): "aaa" -> "aa" "a"; "aaaaa" -> "aa" "aa" "a" */
    const char *rep = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [\"a a\"]}}";
    ck_assert_msg(ptq_tok_load_mem(&t, rep, strlen(rep), NULL, 0, "rep.json", &e) == PTQ_OK, "%s", e.msg);
    int32_t w3[] = {1, 0}, w5[] = {1, 1, 0};
    expect_ids(t, "aaa", 3, 0, w3, 2, "aaa");
    expect_ids(t, "aaaaa", 5, 0, w5, 3, "aaaaa");
    ptq_tok_free(t);

    bad("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", PTQ_EFORMAT, "\"WordPiece\"");
    bad("{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", PTQ_EFORMAT, "\"Unigram\"");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}", PTQ_EFORMAT, "malformed JSON");
    bad("", PTQ_EFORMAT, "malformed JSON");
    bad("[1, 2]", PTQ_EFORMAT, "not a JSON object");
    bad("{\"model\": {\"type\": \"BPE\", \"merges\": []}}", PTQ_EFORMAT, "no \"vocab\"");
    bad("{\"normalizer\": null}", PTQ_EFORMAT, "no \"model\"");
    bad(TINY_PRE "\"merges\": [\"a c\"]}}", PTQ_EFORMAT, "\"c\", which is not in the vocab");
    bad(TINY_PRE "\"merges\": [\"b a\"]}}", PTQ_EFORMAT, "makes \"ba\"");
    bad(TINY_PRE "\"merges\": [\"ab\"]}}", PTQ_EFORMAT, "merge 0");
    bad(TINY_PRE "\"merges\": [[\"a\"]]}}", PTQ_EFORMAT, "merge 0");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}", PTQ_EFORMAT, "vocab id 0");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", PTQ_EFORMAT, "valid id");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 1.5}}}", PTQ_EFORMAT, "valid id");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999999}}}", PTQ_EFORMAT, "valid id");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"0\"}}}", PTQ_EFORMAT, "valid id");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\\u00ff\\u00fe\": 0, \"\": 1}}}", PTQ_EFORMAT, "empty");
    bad("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"\xff\": 0}}}", PTQ_EFORMAT, "UTF-8");
    bad("{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {\"a\": 0}}}", PTQ_EFORMAT,
        "unk_token");
    bad(TINY_PRE "\"merges\": []}, \"added_tokens\": [{\"id\": 1, \"content\": \"<s>\"}]}", PTQ_EFORMAT,
        "has id 1");
    bad(TINY_PRE "\"merges\": []}, \"added_tokens\": [{\"id\": 5, \"content\": \"a\"}]}", PTQ_EFORMAT,
        "vocab says 0");
    bad(TINY_PRE "\"merges\": []}, \"added_tokens\": [{\"content\": \"<s>\"}]}", PTQ_EFORMAT, "\"id\"");
    bad(TINY_PRE "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"Whitespace\"}}", PTQ_EFORMAT,
        "\"Whitespace\"");
    bad(TINY_PRE "\"merges\": []}, \"normalizer\": {\"type\": \"Lowercase\"}}", PTQ_EFORMAT, "\"Lowercase\"");
    bad(TINY_PRE "\"merges\": []}, \"decoder\": {\"type\": \"WordPiece\"}}", PTQ_EFORMAT, "\"WordPiece\"");
    bad(TINY_PRE "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
                 "\"behavior\": \"Isolated\"}}",
        PTQ_EFORMAT, "regex");

    /* files: missing -> PTQ_EIO naming it */
    ck_assert_int_eq(ptq_tok_load(&t, "/nonexistent/tokenizer.json", NULL, &e), PTQ_EIO);
    ck_assert_msg(strstr(e.msg, "/nonexistent/tokenizer.json"), "%s", e.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("tokenizer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stories260k_golden);
    tcase_add_test(tc, babyllama_golden);
    tcase_add_test(tc, llama_spm_vectors);
    tcase_add_test(tc, gpt2_vectors);
    tcase_add_test(tc, tinystories_eval_stories260k);
    tcase_add_test(tc, tinystories_eval_babyllama);
    tcase_add_test(tc, llama3_split);
    tcase_add_test(tc, ignore_merges);
    tcase_add_test(tc, spm_merge_across_meta);
    tcase_add_test(tc, unicode_nfc);
    tcase_add_test(tc, unicode_nfd_nfkc_nfkd);
    tcase_add_test(tc, unicode_nfc_fast_path);
    tcase_add_test(tc, bos_eos_config);
    tcase_add_test(tc, bad_inputs);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
