/* Private types shared by the tokenizer sources (src/text). */
#ifndef DAPT_TEXT_TOK_INTERNAL_H
#define DAPT_TEXT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/tokenizer.h"
#include "dapt/utf8.h" /* the tokenizers decode UTF-8 through it */

/* ---- string -> id table (open addressing, linear probing) -------------- */

typedef struct tok_vocab {
    char **tokens;   /* id -> NUL-terminated token, NULL for unused ids */
    uint32_t *lens;  /* id -> byte length */
    size_t n;        /* number of ids (1 + largest id) */
    uint32_t *slots; /* id + 1, 0 = empty */
    uint32_t *slot_hash;
    size_t mask;     /* slot count - 1 */
    size_t max_len;  /* longest token in bytes */
} tok_vocab;

/* A second, lookup-optimised table keyed by borrowed strings (e.g. WordPiece
 * pieces without their "##"), mapping to vocabulary ids.  Each entry keeps
 * the key's first 8 bytes, so most lookups touch one cache line. */
typedef struct tok_strmap_entry {
    uint64_t head;   /* first min(8, len) bytes, zero-padded */
    const char *key; /* NULL = empty slot */
    uint32_t hash, len;
    int32_t id;
} tok_strmap_entry;

typedef struct tok_strmap {
    tok_strmap_entry *e;
    size_t mask, count;
    size_t max_len;
} tok_strmap;

uint32_t tok_hash(const char *s, size_t n);

/* Sets id <- token (copying it).  Later duplicates of a token win for
 * token->id (as in Hugging Face); every id keeps its own string. */
dapt_status tok_vocab_init(tok_vocab *v, size_t n_ids, size_t n_tokens_hint);
dapt_status tok_vocab_set(tok_vocab *v, int32_t id, const char *tok, size_t len);
int32_t tok_vocab_find(const tok_vocab *v, const char *s, size_t n);
void tok_vocab_free(tok_vocab *v);

dapt_status tok_strmap_init(tok_strmap *m, size_t capacity_hint);
dapt_status tok_strmap_put(tok_strmap *m, const char *key, size_t n, int32_t id);
int32_t tok_strmap_find(const tok_strmap *m, const char *s, size_t n);
void tok_strmap_free(tok_strmap *m);

/* ---- growable byte buffer ------------------------------------------------ */

typedef struct tok_buf {
    char *data;
    size_t len, cap;
} tok_buf;

dapt_status tok_buf_reserve(tok_buf *b, size_t extra);
dapt_status tok_buf_append(tok_buf *b, const char *s, size_t n);
void tok_buf_free(tok_buf *b);

/* ---- models -------------------------------------------------------------- */

typedef struct tok_wordpiece {
    int lowercase, strip_accents, clean_text, chinese_chars;
    int32_t unk_id;
    char prefix[16];
    size_t prefix_len;
    size_t max_chars;  /* max_input_chars_per_word */
    tok_strmap full;   /* every token (lookups at the start of a word) */
    tok_strmap cont;   /* continuation pieces, keyed without the prefix */
    int decode_cleanup;
    unsigned char ascii_cls[128]; /* class of each ASCII byte under these flags */
    unsigned char ascii_low[128];
} tok_wordpiece;

typedef struct tok_merge_entry {
    uint64_t key; /* (left id << 32 | right id) + 1; 0 = empty */
    int32_t rank;
    int32_t result;
} tok_merge_entry;

typedef struct tok_bpe {
    int add_prefix_space;
    int32_t byte_id[256];        /* id of the byte-level character of each byte */
    int32_t char_to_byte[324];   /* byte-level code point -> byte, -1 if none */
    tok_merge_entry *merges;     /* hash table */
    size_t merge_mask;
    size_t n_merges;
    int32_t (*merge_pairs)[2];   /* rank -> (left, right) ids, for the checksum */
    void *regex;                 /* pcre2_code_8 * (JIT-compiled when possible) */
} tok_bpe;

/* An added token (special or not) matched as a whole in raw text. */
typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tok_added;

/* Template item: a special token id, or sequence A (-1) / B (-2). */
typedef struct tok_tmpl_item {
    int32_t id;
    int32_t type_id;
} tok_tmpl_item;

typedef struct tok_template {
    tok_tmpl_item single[8], pair[12];
    size_t n_single, n_pair;
    char name[32]; /* "bert", "roberta", "none", "template" */
} tok_template;

struct dapt_tokenizer {
    dapt_tokenizer_kind kind;
    tok_vocab vocab;
    tok_wordpiece wp;
    tok_bpe bpe;
    tok_added *added;
    size_t n_added;
    unsigned char added_first[256]; /* 1 if some added token starts with this byte */
    tok_template tmpl;
    dapt_special_ids specials;
    char identity[256];
    char checksum[65];
    char source[4096]; /* file the tokenizer came from, for messages */
};

/* Per-thread state. */
typedef struct tok_cache_entry {
    uint32_t hash;
    uint32_t key_len;
    size_t key_off;  /* into arena */
    size_t ids_off;  /* into ids arena */
    uint32_t n_ids;
} tok_cache_entry;

struct dapt_tok_state {
    const dapt_tokenizer *tok;
    tok_buf word;       /* scratch for a normalised word / pre-token */
    tok_buf seg;        /* scratch for a text segment */
    int32_t *sym;       /* BPE symbols */
    int32_t *next, *prev;
    size_t sym_cap;
    void *match_data;   /* pcre2_match_data_8 * */
    /* BPE cache: open addressing over entries, arenas for keys and ids */
    tok_cache_entry *cache; /* allocated on first use when use_cache */
    int use_cache;          /* 0 for the throw-away state of a NULL-state call */
    size_t cache_mask, cache_count;
    tok_buf cache_keys;
    dapt_ids cache_ids;
};

/* Model entry points: text is valid UTF-8 without added tokens. */
dapt_status tok_wordpiece_encode(const dapt_tokenizer *tok, dapt_tok_state *st,
                                 const char *text, size_t len, dapt_ids *out);
dapt_status tok_bpe_encode(const dapt_tokenizer *tok, dapt_tok_state *st,
                           const char *text, size_t len, dapt_ids *out);

/* Builds the BPE byte tables, merge table and regex once vocab and merges
 * (as pairs of ids) are known.  `file` names the source for errors. */
dapt_status tok_bpe_prepare(dapt_tokenizer *tok, const char *file);
void tok_bpe_free(tok_bpe *b);
dapt_status tok_bpe_state_init(const dapt_tokenizer *tok, dapt_tok_state *st);
/* A state for one call (no cache: not worth filling for one text). */
dapt_status tok_state_new_uncached(const dapt_tokenizer *tok, dapt_tok_state **out);
void tok_bpe_state_free(dapt_tok_state *st);
/* Code point that represents byte b in the byte-level alphabet. */
int32_t tok_bpe_byte_char(unsigned b);

/* Builds the WordPiece continuation table. */
dapt_status tok_wordpiece_prepare(dapt_tokenizer *tok);

/* Loader helpers (tokenizer_load.c) finish with this: identity, checksum. */
void tok_finish_identity(dapt_tokenizer *tok);

#endif
