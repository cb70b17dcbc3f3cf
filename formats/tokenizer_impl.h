/* tokenizer_impl.h - the inside of ptq_tokenizer, shared by the loader
 * (formats/tokenizer.c) and the encoder/decoder (formats/bpe.c).  Not installed.
 *
 * The loader turns tokenizer.json into this flat description: a vocabulary
 * (id -> piece, piece -> id), merges as (left id, right id) -> (rank, new id),
 * added tokens, the normalizer as a short list of string edits, the
 * pre-tokenizer as a list of splitting steps, and decoder flags.  Everything
 * here has been validated; the encoder trusts it.
 */
#ifndef PTQC_TOKENIZER_IMPL_H
#define PTQC_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "formats/tokenizer.h"

#define PTQ_TOK_MAX_VOCAB (1 << 24)
#define PTQ_TOK_MAX_STEPS 8

enum { PTQ_TOK_SPM = 0, PTQ_TOK_BYTELEVEL = 1 };

/* normalizer steps, applied in order to each text section between added
 * tokens.  NFC/NFD/NFKC/NFKD are Unicode normalization forms (UAX #15),
 * computed by utf8proc (formats/bpe.c). */
enum { PTQ_NORM_PREPEND, PTQ_NORM_REPLACE, PTQ_NORM_NFC, PTQ_NORM_NFD, PTQ_NORM_NFKC, PTQ_NORM_NFKD };
typedef struct {
    int kind;
    char *from; /* REPLACE: pattern (non-empty) */
    char *to;   /* PREPEND: the prefix; REPLACE: the replacement */
    size_t from_len, to_len;
} ptq_tok_norm;

/* pre-tokenizer steps: each one cuts every piece the previous made */
enum {
    PTQ_PRE_REGEX,     /* Split(Regex, Isolated) or ByteLevel(use_regex) or Digits */
    PTQ_PRE_METASPACE, /* Metaspace(split true): cut before each replacement char */
};
typedef struct {
    int kind;
    pcre2_code *re;
} ptq_tok_pre;

typedef struct {
    char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} ptq_tok_added;

/* open-addressing hash: piece -> id */
typedef struct {
    uint32_t *slot; /* id + 1, 0 = empty */
    size_t mask;
} ptq_tok_vmap;

/* open-addressing hash: (left, right) -> merge index */
typedef struct {
    uint64_t *key; /* (left << 32 | right) + 1, 0 = empty */
    int32_t *rank;
    int32_t *new_id;
    size_t mask;
} ptq_tok_mmap;

struct ptq_tokenizer {
    int style;         /* PTQ_TOK_SPM or PTQ_TOK_BYTELEVEL */
    int32_t n_vocab;   /* 1 + the largest id */
    char **piece;      /* [n_vocab]: NUL-terminated, NULL for an unused id */
    uint32_t *plen;    /* [n_vocab] piece lengths */
    ptq_tok_vmap vmap; /* model vocabulary only (not added tokens) */
    int32_t n_merges;
    ptq_tok_mmap mmap;

    int32_t unk_id; /* -1 if none */
    int fuse_unk, byte_fallback;
    int ignore_merges; /* a word that is a piece is not merged (Llama 3) */
    int32_t byte_id[256]; /* <0xNN> pieces, -1 where absent */

    int n_added;
    ptq_tok_added *added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */

    int n_norm;
    ptq_tok_norm norm[PTQ_TOK_MAX_STEPS];
    /* Metaspace pre-tokenizer (as a text edit): replace ' ' by meta, prepend
     * meta per prepend scheme (0 never, 1 first section, 2 always) */
    int metaspace;
    char meta[8];
    size_t meta_len;
    int meta_prepend;
    int n_pre;
    ptq_tok_pre pre[PTQ_TOK_MAX_STEPS];
    int bl_prefix_space; /* ByteLevel add_prefix_space */
    int32_t bl_id[256];  /* byte-level: id of the one-char piece of each byte, -1 if absent */
    char bl_chr[256][3]; /* byte-level: the UTF-8 of each byte's char */
    uint8_t bl_chrlen[256];

    /* SentencePiece-style texts may be cut before each "▁" that follows a
     * non-"▁" char: set when the loader verified no merge can cross there */
    int spm_cut;

    /* decoder */
    int dec_bytelevel;  /* ByteLevel decoder */
    int dec_meta;       /* Replace("▁" -> " ") or Metaspace */
    int dec_bytefb;     /* ByteFallback */
    int dec_strip;      /* leading spaces stripped (Strip start, Metaspace) */

    int32_t bos, eos;
    int add_bos;
};

/* UTF-8: length of the valid char at s (1..4), or 0 if s[0..n) does not
 * start with one (overlong, surrogate, past U+10FFFF, truncated). */
int ptq_tok_utf8_len(const unsigned char *s, size_t n);
int ptq_tok_utf8_valid(const char *s, size_t n);

uint64_t ptq_tok_hash(const void *p, size_t n);
int32_t ptq_tok_lookup(const ptq_tokenizer *t, const char *s, size_t n);
/* a 64-bit mixer (splitmix64's finalizer) for the merge table */
static inline uint64_t ptq_tok_mix(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

/* (rank, new id) of merging left and right; 0 if there is no such merge */
static inline int ptq_tok_merge(const ptq_tokenizer *t, int32_t l, int32_t r, int32_t *rank,
                                int32_t *new_id)
{
    uint64_t k = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t i = (size_t)ptq_tok_mix(k) & t->mmap.mask;
    for (;;) {
        uint64_t s = t->mmap.key[i];
        if (s == 0) return 0;
        if (s == k) {
            *rank = t->mmap.rank[i];
            *new_id = t->mmap.new_id[i];
            return 1;
        }
        i = (i + 1) & t->mmap.mask;
    }
}

#endif
