/* Tokenizers that give the same ids as Hugging Face's (Rust) tokenizers.
 *
 * Two model kinds: WordPiece (BERT: basic tokenizer + greedy longest-match
 * WordPiece) and byte-level BPE (GPT-2, RoBERTa).  A tokenizer is loaded from
 * the files users have (tokenizer.json, vocab.txt, or vocab.json+merges.txt)
 * and is immutable afterwards.
 *
 * Thread safety: a loaded dapt_tokenizer is read-only, so any number of
 * threads may call the functions below on the same tokenizer at once.  The
 * mutable parts of encoding (the BPE merge cache, scratch buffers) live in a
 * dapt_tok_state, which must be used by one thread at a time: give each
 * OpenMP thread its own (or pass NULL, which is correct but slower because
 * every call allocates and nothing is cached).
 *
 * Nothing in this module is collective or touches MPI. */
#ifndef DAPT_TOKENIZER_H
#define DAPT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/modelfile.h"
#include "dapt/status.h"

typedef struct dapt_tokenizer dapt_tokenizer;
typedef struct dapt_tok_state dapt_tok_state;

typedef enum dapt_tokenizer_kind {
    DAPT_TOK_WORDPIECE = 1, /* BERT */
    DAPT_TOK_BPE = 2        /* byte-level BPE: GPT-2, RoBERTa */
} dapt_tokenizer_kind;

/* A caller-owned growable array of ids.  Zero-initialise ({0}) before first
 * use; functions append and grow it; dapt_ids_free releases it. */
typedef struct dapt_ids {
    int32_t *data;
    size_t len;
    size_t cap;
} dapt_ids;

/* Makes room for at least `extra` more ids. */
dapt_status dapt_ids_reserve(dapt_ids *ids, size_t extra);
dapt_status dapt_ids_push(dapt_ids *ids, int32_t id);
void dapt_ids_free(dapt_ids *ids);

/* ---- loading ----------------------------------------------------------- */

/* Loads a tokenizer from `path`, which is one of
 *   - a tokenizer.json file (model WordPiece or BPE; normalizer flags,
 *     added/special tokens and post-processor template are honoured),
 *   - a vocab.txt file (WordPiece, BERT uncased defaults: lowercase, strip
 *     accents, clean text, split CJK; specials [CLS] [SEP] [PAD] [MASK] [UNK]),
 *   - a directory holding tokenizer.json (preferred), or vocab.txt, or
 *     vocab.json + merges.txt (byte-level BPE; RoBERTa template when the
 *     vocabulary has <s> and </s>, else none like GPT-2).
 * A directory's tokenizer_config.json is read when present for do_lower_case
 * (vocab.txt) and add_prefix_space (BPE).
 * Errors (DAPT_ERR_IO / DAPT_ERR_FORMAT / DAPT_ERR_UNSUPPORTED) name the file
 * and the cause in one line. */
dapt_status dapt_tokenizer_load(const char *path, dapt_tokenizer **out);
void dapt_tokenizer_free(dapt_tokenizer *tok);

/* Per-thread mutable encoding state (caches, scratch).  See above. */
dapt_status dapt_tok_state_new(const dapt_tokenizer *tok, dapt_tok_state **out);
void dapt_tok_state_free(dapt_tok_state *st);

/* ---- encoding ---------------------------------------------------------- */

/* Appends the ids of text[0..len) to `out`, without special tokens or
 * template (what `dapt prepare` stores).  `text` must be valid UTF-8 (it need
 * not be NUL-terminated); otherwise DAPT_ERR_FORMAT is returned with the byte
 * offset of the first bad sequence, and `out` is left as it was.  Added and
 * special tokens written literally in the text (e.g. "[MASK]", "<|endoftext|>")
 * are matched as whole tokens, as Hugging Face does.  `st` may be NULL. */
dapt_status dapt_tokenizer_encode(const dapt_tokenizer *tok, dapt_tok_state *st,
                                  const char *text, size_t len, dapt_ids *out);

typedef enum dapt_truncation {
    DAPT_TRUNC_NONE = 0,
    DAPT_TRUNC_LONGEST_FIRST, /* remove one token at a time from the longer */
    DAPT_TRUNC_ONLY_FIRST,
    DAPT_TRUNC_ONLY_SECOND
} dapt_truncation;

typedef struct dapt_encode_opts {
    int add_special;            /* apply the model's template ([CLS] A [SEP] ...) */
    dapt_truncation truncation; /* applied when max_length > 0 */
    size_t max_length;          /* total length including special tokens; 0 = none */
    int pad_to_max_length;      /* pad with the pad id up to max_length (right side) */
} dapt_encode_opts;

/* One encoded (pair of) text(s); all arrays have the same length.
 * Zero-initialise before first use; reuse across calls; free with
 * dapt_encoding_free. */
typedef struct dapt_encoding {
    dapt_ids ids;
    dapt_ids type_ids;       /* 0 for A and its specials, 1 for B (BERT) */
    dapt_ids attention_mask; /* 1 for real tokens, 0 for padding */
    dapt_ids special_mask;   /* 1 for template tokens and padding */
} dapt_encoding;

void dapt_encoding_free(dapt_encoding *enc);

/* Encodes text a (and b, when b != NULL) as Hugging Face's
 * tokenizer(a, b, truncation=..., max_length=..., padding=...) does:
 * tokenize, truncate the content to max_length minus the template's special
 * tokens, apply the template, pad.  The encoding is overwritten.  Returns
 * DAPT_ERR_ARG when truncation cannot fit (e.g. only_second with no b, or
 * max_length smaller than the special tokens), and when padding is asked
 * for but the model has no pad token. */
dapt_status dapt_tokenizer_encode_full(const dapt_tokenizer *tok, dapt_tok_state *st,
                                       const char *a, size_t alen,
                                       const char *b, size_t blen,
                                       const dapt_encode_opts *opts, dapt_encoding *out);

/* Number of special tokens the template adds: single (pair = 0) or pair. */
size_t dapt_tokenizer_num_special(const dapt_tokenizer *tok, int pair);

/* ---- decoding ---------------------------------------------------------- */

/* Turns ids back into text (WordPiece: joins pieces, "##" continuations glued,
 * HF's clean-up of spaces before punctuation; BPE: bytes back from the
 * byte-level alphabet).  Special tokens are dropped when skip_special.
 * *text is malloc'd and NUL-terminated (caller frees); *len excludes the NUL
 * and may be NULL.  DAPT_ERR_ARG for an id outside the vocabulary. */
dapt_status dapt_tokenizer_decode(const dapt_tokenizer *tok, const int32_t *ids, size_t n,
                                  int skip_special, char **text, size_t *len);

/* ---- vocabulary and identity ------------------------------------------- */

dapt_tokenizer_kind dapt_tokenizer_kind_of(const dapt_tokenizer *tok);

/* 1 + the largest id (added tokens included). */
size_t dapt_tokenizer_vocab_size(const dapt_tokenizer *tok);

/* Id of a token string, or -1. */
int32_t dapt_tokenizer_token_to_id(const dapt_tokenizer *tok, const char *token);

/* Token string of an id (NUL-terminated, owned by tok), or NULL. */
const char *dapt_tokenizer_id_to_token(const dapt_tokenizer *tok, int32_t id);

/* Special-token ids; -1 when the model has none.  BERT: cls sep pad mask
 * unk; RoBERTa: bos=cls=<s>, eos=sep=</s>, pad, mask, unk; GPT-2: bos=eos=
 * <|endoftext|>, the others -1. */
typedef struct dapt_special_ids {
    int32_t cls, sep, pad, mask, unk, bos, eos;
} dapt_special_ids;

dapt_special_ids dapt_tokenizer_specials(const dapt_tokenizer *tok);

/* One-line description for provenance, stable across runs, e.g.
 * "wordpiece lowercase=1 strip_accents=1 clean_text=1 chinese_chars=1
 *  vocab=30522 template=bert" or
 * "bpe byte_level add_prefix_space=0 vocab=50265 merges=50000 template=roberta".
 * Owned by tok. */
const char *dapt_tokenizer_identity(const dapt_tokenizer *tok);

/* Lower-case hex SHA-256 (64 chars) over the content that determines ids:
 * the identity string, every token with its id in id order, and the merges
 * in rank order.  Independent of the file format the tokenizer came from
 * and of key order in JSON.  Owned by tok. */
const char *dapt_tokenizer_checksum(const dapt_tokenizer *tok);

/* ---- the tokenizer a model file carries (src/text/model_tokenizer.c) ---- */

/* Writes meta's tokenizer files into directory dir (which must exist), each
 * under a temporary name then renamed.  Not collective. */
dapt_status dapt_model_tokenizer_write(const dapt_model_meta *meta, const char *dir);

/* Writes meta's tokenizer files into a fresh private temporary directory
 * (under $TMPDIR, else /tmp), calls use(dir, ctx) and removes the directory
 * again, whatever use returned.  Returns use's status (or the unpacking's or
 * the removal's); DAPT_ERR_ARG "MODEL carries no tokenizer files" when meta
 * has none.  For readers that want a path (a tokenizer directory); the others
 * use dapt_model_tokenizer.  Not collective: each rank that calls it unpacks
 * its own copy. */
dapt_status dapt_model_tokenizer_dir(const dapt_model_meta *meta, const char *model_path,
                                     dapt_status (*use)(const char *dir, void *ctx), void *ctx);

/* The tokenizer a model file carries (meta of dapt_modelfile_get_config or
 * dapt_modelfile_load), loaded from a private temporary directory that is
 * removed before it returns; model_path only names the file in messages.
 * *tok is for dapt_tokenizer_free, NULL on failure.  Not collective. */
dapt_status dapt_model_tokenizer(const dapt_model_meta *meta, const char *model_path, dapt_tokenizer **tok);

/* Completes meta's tokenizer files into a directory Hugging Face's
 * AutoTokenizer loads unchanged (src/text/hf_tokenizer_files.c): keeps
 * tokenizer.json, vocab.txt, vocab.json, merges.txt and added_tokens.json
 * as they are, adds vocab.txt (WordPiece) or vocab.json + merges.txt (BPE)
 * when only tokenizer.json is there, and writes tokenizer_config.json and
 * special_tokens_map.json anew from the tokenizer the files load as:
 * tokenizer_class BertTokenizer / RobertaTokenizer, the special tokens,
 * do_lower_case, strip_accents and tokenize_chinese_chars (WordPiece) or
 * add_prefix_space (BPE), and model_max_length (the longest input of the
 * model being exported).  Errors: those of dapt_model_tokenizer, and
 * DAPT_ERR_FORMAT for a WordPiece vocabulary with unused ids.  Not
 * collective. */
dapt_status dapt_model_tokenizer_hf(dapt_model_meta *meta, const char *model_path, int64_t model_max_length);

#endif
