/* WordPiece (BERT): Hugging Face's BertNormalizer + BertPreTokenizer +
 * WordPiece model, fused into one pass over the text.
 *
 * The normaliser steps, in the Rust library's order: clean text (drop NUL,
 * U+FFFD and "other" characters Cc/Cf/Co except \t\n\r; map whitespace to
 * a space), put spaces around CJK ideographs, strip accents (NFD, drop Mn),
 * lowercase (Unicode to_lowercase, one character at a time, so a final Σ
 * becomes σ).  The pre-tokeniser then splits on whitespace (Rust's
 * char::is_whitespace: the White_Space property, with U+0085 and without
 * U+FEFF) and isolates punctuation (ASCII punctuation or Unicode P*).  Each
 * word is then split greedily, longest match first, into vocabulary pieces;
 * a word with no complete split, or longer than max_input_chars_per_word
 * characters, becomes the unknown token. */
#include <string.h>
#include <utf8proc.h>

#include "tok_internal.h"

enum { C_WORD = 0, C_DROP, C_SPACE, C_PUNCT };

static int is_rust_whitespace(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* The ranges of the Rust library's is_chinese_char (note 0x2B920, not the
 * Python library's 0x2B820). */
static int is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* unicode_categories' is_other(): Cc, Cf or Co (not Cs, not Cn). */
static int is_other(int32_t c)
{
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO;
}

static int is_punct(int32_t c)
{
    if (c < 0x80)
        return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
               (c >= 123 && c <= 126);
    utf8proc_category_t cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* Splits one normalised word into pieces (appends to out). */
static dapt_status wordpiece_word(const dapt_tokenizer *tok, const char *w, size_t n,
                                  size_t nchars, dapt_ids *out)
{
    const tok_wordpiece *wp = &tok->wp;
    if (nchars > wp->max_chars) return dapt_ids_push(out, wp->unk_id);
    size_t mark = out->len;
    size_t start = 0;
    while (start < n) {
        size_t lim = start == 0 ? wp->full.max_len : wp->cont.max_len;
        size_t end = n - start > lim ? start + lim : n;
        while (end > start && end < n && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        int32_t id = -1;
        while (end > start) {
            id = tok_strmap_find(start == 0 ? &wp->full : &wp->cont, w + start, end - start);
            if (id >= 0) break;
            end--;
            while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
        }
        if (id < 0) {
            out->len = mark;
            return dapt_ids_push(out, wp->unk_id);
        }
        DAPT_CHECK(dapt_ids_push(out, id));
        start = end;
    }
    return DAPT_OK;
}

typedef struct wp_ctx {
    const dapt_tokenizer *tok;
    tok_buf *word;
    size_t nchars;
    dapt_ids *out;
} wp_ctx;

static dapt_status flush(wp_ctx *c)
{
    if (!c->word->len) return DAPT_OK;
    dapt_status st = wordpiece_word(c->tok, c->word->data, c->word->len, c->nchars, c->out);
    c->word->len = 0;
    c->nchars = 0;
    return st;
}

/* Canonical combining class, 0 for starters. */
static int ccc(int32_t c) { return c < 0x300 ? 0 : utf8proc_get_property(c)->combining_class; }

/* Appends cp to the current word.  When `reorder`, a combining mark moves
 * before preceding marks of higher class (NFD's canonical ordering). */
static dapt_status append_cp(wp_ctx *c, int32_t cp, int reorder)
{
    char enc[4];
    size_t k = dapt_utf8_encode(cp, enc);
    DAPT_CHECK(tok_buf_reserve(c->word, k));
    char *w = c->word->data;
    size_t pos = c->word->len;
    int cc = reorder ? ccc(cp) : 0;
    while (cc > 0 && pos > 0) {
        size_t p = pos - 1;
        while (p > 0 && ((unsigned char)w[p] & 0xC0) == 0x80) p--;
        int32_t prev;
        if (!dapt_utf8_decode((const unsigned char *)w + p, pos - p, &prev)) break;
        if (ccc(prev) <= cc) break;
        pos = p;
    }
    memmove(w + pos + k, w + pos, c->word->len - pos);
    memcpy(w + pos, enc, k);
    c->word->len += k;
    c->nchars++;
    return DAPT_OK;
}

static int32_t lower1(int32_t cp) { return utf8proc_tolower(cp); }

/* A normalised character reaches the pre-tokeniser. */
static dapt_status pretok_cp(wp_ctx *c, int32_t cp, int reorder)
{
    if (is_rust_whitespace(cp)) return flush(c);
    if (is_punct(cp)) {
        DAPT_CHECK(flush(c));
        DAPT_CHECK(append_cp(c, cp, 0));
        return flush(c);
    }
    return append_cp(c, cp, reorder);
}

/* Lowercases (if asked) and passes on one character after NFD. */
static dapt_status lower_and_pass(wp_ctx *c, int32_t cp, int reorder)
{
    const tok_wordpiece *wp = &c->tok->wp;
    if (wp->lowercase) {
        if (cp == 0x130) { /* the one unconditional multi-character lowercase */
            DAPT_CHECK(pretok_cp(c, 'i', 0));
            return pretok_cp(c, 0x307, 0);
        }
        cp = lower1(cp);
    }
    return pretok_cp(c, cp, reorder);
}

static dapt_status normalize_cp(wp_ctx *c, int32_t cp)
{
    const tok_wordpiece *wp = &c->tok->wp;
    if (wp->strip_accents && cp >= 0xC0) {
        utf8proc_int32_t d[16];
        int last = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char(cp, d, 16, UTF8PROC_DECOMPOSE, &last);
        if (nd < 0 || nd > 16) return lower_and_pass(c, cp, 0);
        for (utf8proc_ssize_t i = 0; i < nd; i++) {
            if (utf8proc_category(d[i]) == UTF8PROC_CATEGORY_MN) continue;
            DAPT_CHECK(lower_and_pass(c, d[i], 1));
        }
        return DAPT_OK;
    }
    return lower_and_pass(c, cp, 0);
}

static dapt_status nonascii(wp_ctx *c, int32_t cp)
{
    const tok_wordpiece *wp = &c->tok->wp;
    if (wp->clean_text && (cp == 0xFFFD || is_other(cp))) return DAPT_OK;
    if (is_rust_whitespace(cp)) return flush(c);
    if (wp->chinese_chars && is_cjk(cp)) {
        DAPT_CHECK(flush(c));
        DAPT_CHECK(normalize_cp(c, cp));
        return flush(c);
    }
    return normalize_cp(c, cp);
}

dapt_status tok_wordpiece_encode(const dapt_tokenizer *tok, dapt_tok_state *st,
                                 const char *text, size_t len, dapt_ids *out)
{
    const tok_wordpiece *wp = &tok->wp;
    const unsigned char *cls = wp->ascii_cls, *low = wp->ascii_low;
    wp_ctx c = {tok, &st->word, 0, out};
    st->word.len = 0;
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    dapt_status s = DAPT_OK;
    while (i < len) {
        unsigned b = u[i];
        if (b < 0x80) {
            switch (cls[b]) {
            case C_WORD:
                if (c.word->len == c.word->cap) {
                    s = tok_buf_reserve(c.word, 1);
                    if (s) return s;
                }
                c.word->data[c.word->len++] = (char)low[b];
                c.nchars++;
                break;
            case C_SPACE:
                s = flush(&c);
                break;
            case C_PUNCT:
                if ((s = flush(&c)) == DAPT_OK && (s = append_cp(&c, (int32_t)b, 0)) == DAPT_OK)
                    s = flush(&c);
                break;
            default:
                break;
            }
            i++;
        } else {
            int32_t cp;
            size_t k = dapt_utf8_decode(u + i, len - i, &cp);
            if (!k) return DAPT_ERROR(DAPT_ERR_INTERNAL, "invalid UTF-8 reached WordPiece");
            s = nonascii(&c, cp);
            i += k;
        }
        if (s) return s;
    }
    return flush(&c);
}

dapt_status tok_wordpiece_prepare(dapt_tokenizer *tok)
{
    tok_wordpiece *wp = &tok->wp;
    for (int b = 0; b < 128; b++) {
        wp->ascii_low[b] = (unsigned char)(wp->lowercase && b >= 'A' && b <= 'Z' ? b + 32 : b);
        if (b == '\t' || b == '\n' || b == '\r' || b == ' ') wp->ascii_cls[b] = C_SPACE;
        else if (wp->clean_text && (b < 0x20 || b == 0x7F)) wp->ascii_cls[b] = C_DROP;
        else if (b == 0x0B || b == 0x0C) wp->ascii_cls[b] = C_SPACE; /* Rust whitespace */
        else if (is_punct(b)) wp->ascii_cls[b] = C_PUNCT;
        else wp->ascii_cls[b] = C_WORD;
    }
    size_t count = 0;
    for (size_t id = 0; id < tok->vocab.n; id++)
        if (tok->vocab.tokens[id] && tok->vocab.lens[id] >= wp->prefix_len &&
            memcmp(tok->vocab.tokens[id], wp->prefix, wp->prefix_len) == 0)
            count++;
    DAPT_CHECK(tok_strmap_init(&wp->cont, count));
    DAPT_CHECK(tok_strmap_init(&wp->full, tok->vocab.n));
    for (size_t id = 0; id < tok->vocab.n; id++) {
        const char *t = tok->vocab.tokens[id];
        if (t && tok_vocab_find(&tok->vocab, t, tok->vocab.lens[id]) == (int32_t)id)
            DAPT_CHECK(tok_strmap_put(&wp->full, t, tok->vocab.lens[id], (int32_t)id));
        if (!t || tok->vocab.lens[id] < wp->prefix_len || memcmp(t, wp->prefix, wp->prefix_len)) continue;
        /* Only the id that token->id lookup gives (duplicates: later wins). */
        if (tok_vocab_find(&tok->vocab, t, tok->vocab.lens[id]) != (int32_t)id) continue;
        DAPT_CHECK(tok_strmap_put(&wp->cont, t + wp->prefix_len, tok->vocab.lens[id] - wp->prefix_len,
                                  (int32_t)id));
    }
    return DAPT_OK;
}
