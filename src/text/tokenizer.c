/* Encoding, templates, truncation, padding and decoding on a loaded
 * tokenizer (loading is in tokenizer_load.c, the models in wordpiece.c and
 * bpe.c). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

static dapt_status state_new(const dapt_tokenizer *tok, int use_cache, dapt_tok_state **out)
{
    *out = NULL;
    dapt_tok_state *st = NULL;
    DAPT_CHECK(dapt_calloc((void **)&st, 1, sizeof *st, "tokenizer state"));
    st->tok = tok;
    st->use_cache = use_cache;
    if (tok->kind == DAPT_TOK_BPE) {
        dapt_status s = tok_bpe_state_init(tok, st);
        if (s) {
            dapt_tok_state_free(st);
            return s;
        }
    }
    *out = st;
    return DAPT_OK;
}

dapt_status dapt_tok_state_new(const dapt_tokenizer *tok, dapt_tok_state **out)
{
    return state_new(tok, 1, out);
}

dapt_status tok_state_new_uncached(const dapt_tokenizer *tok, dapt_tok_state **out)
{
    return state_new(tok, 0, out);
}

void dapt_tok_state_free(dapt_tok_state *st)
{
    if (!st) return;
    tok_bpe_state_free(st);
    tok_buf_free(&st->word);
    tok_buf_free(&st->seg);
    free(st);
}

static int is_ws_cp(int32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Word characters for single_word added tokens: letters, digits, '_'
 * (ASCII only; none of the supported models uses single_word). */
static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}

/* Finds the leftmost-longest added token at or after `from`; returns its
 * index or -1 and the match bounds (after lstrip/rstrip). */
static long find_added(const dapt_tokenizer *tok, const char *t, size_t len, size_t from, size_t floor,
                       size_t *ms, size_t *me)
{
    const unsigned char *u = (const unsigned char *)t;
    for (size_t i = from; i < len; i++) {
        if (!tok->added_first[u[i]]) continue;
        long best = -1;
        size_t blen = 0;
        for (size_t a = 0; a < tok->n_added; a++) {
            const tok_added *ad = &tok->added[a];
            if (ad->len <= blen || ad->len > len - i || memcmp(t + i, ad->content, ad->len)) continue;
            if (ad->single_word && ((i > 0 && is_word_byte(u[i - 1])) ||
                                    (i + ad->len < len && is_word_byte(u[i + ad->len]))))
                continue;
            best = (long)a;
            blen = ad->len;
        }
        if (best < 0) continue;
        size_t s = i, e = i + blen;
        const tok_added *ad = &tok->added[best];
        if (ad->lstrip) {
            while (s > floor) {
                size_t p = s - 1;
                while (p > floor && (u[p] & 0xC0) == 0x80) p--;
                int32_t cp;
                if (!dapt_utf8_decode(u + p, s - p, &cp) || !is_ws_cp(cp)) break;
                s = p;
            }
        }
        if (ad->rstrip) {
            while (e < len) {
                int32_t cp;
                size_t k = dapt_utf8_decode(u + e, len - e, &cp);
                if (!k || !is_ws_cp(cp)) break;
                e += k;
            }
        }
        *ms = s;
        *me = e;
        return best;
    }
    return -1;
}

static dapt_status model_encode(const dapt_tokenizer *tok, dapt_tok_state *st, const char *t, size_t n,
                                dapt_ids *out)
{
    if (!n) return DAPT_OK;
    return tok->kind == DAPT_TOK_WORDPIECE ? tok_wordpiece_encode(tok, st, t, n, out)
                                           : tok_bpe_encode(tok, st, t, n, out);
}

static dapt_status encode_with_state(const dapt_tokenizer *tok, dapt_tok_state *st, const char *text,
                                     size_t len, dapt_ids *out)
{
    size_t bad = dapt_utf8_validate(text, len);
    if (bad < len) return DAPT_ERROR(DAPT_ERR_FORMAT, "invalid UTF-8 at byte %zu", bad);
    size_t mark = out->len;
    size_t pos = 0;
    dapt_status s = DAPT_OK;
    while (pos < len) {
        size_t ms = len, me = len;
        long a = tok->n_added ? find_added(tok, text, len, pos, pos, &ms, &me) : -1;
        if (a < 0) {
            s = model_encode(tok, st, text + pos, len - pos, out);
            break;
        }
        if ((s = model_encode(tok, st, text + pos, ms - pos, out)) != DAPT_OK) break;
        if ((s = dapt_ids_push(out, tok->added[a].id)) != DAPT_OK) break;
        pos = me;
    }
    if (s) out->len = mark;
    return s;
}

dapt_status dapt_tokenizer_encode(const dapt_tokenizer *tok, dapt_tok_state *st, const char *text,
                                  size_t len, dapt_ids *out)
{
    if (st) return encode_with_state(tok, st, text, len, out);
    dapt_tok_state *tmp = NULL;
    DAPT_CHECK(tok_state_new_uncached(tok, &tmp));
    dapt_status s = encode_with_state(tok, tmp, text, len, out);
    dapt_tok_state_free(tmp);
    return s;
}

size_t dapt_tokenizer_num_special(const dapt_tokenizer *tok, int pair)
{
    const tok_tmpl_item *it = pair ? tok->tmpl.pair : tok->tmpl.single;
    size_t n = pair ? tok->tmpl.n_pair : tok->tmpl.n_single, k = 0;
    for (size_t i = 0; i < n; i++) k += it[i].id >= 0;
    return k;
}

void dapt_encoding_free(dapt_encoding *enc)
{
    dapt_ids_free(&enc->ids);
    dapt_ids_free(&enc->type_ids);
    dapt_ids_free(&enc->attention_mask);
    dapt_ids_free(&enc->special_mask);
}

static dapt_status push4(dapt_encoding *e, int32_t id, int32_t type, int32_t att, int32_t special)
{
    DAPT_CHECK(dapt_ids_push(&e->ids, id));
    DAPT_CHECK(dapt_ids_push(&e->type_ids, type));
    DAPT_CHECK(dapt_ids_push(&e->attention_mask, att));
    return dapt_ids_push(&e->special_mask, special);
}

/* The Rust library's truncate_encodings for a budget of `max` content
 * tokens: longest_first gives the shorter sequence what it needs (or half
 * the budget, rounded down, when both are long) and the rest to the other. */
static dapt_status truncate(dapt_truncation how, size_t max, int has_b, size_t *na, size_t *nb)
{
    size_t total = *na + *nb;
    if (total <= max) return DAPT_OK;
    size_t remove = total - max;
    switch (how) {
    case DAPT_TRUNC_NONE:
        return DAPT_OK;
    case DAPT_TRUNC_LONGEST_FIRST:
        if (!has_b) {
            *na = max;
            return DAPT_OK;
        } else {
            size_t n1 = *na, n2 = *nb;
            int swap = n1 > n2;
            if (swap) { size_t t = n1; n1 = n2; n2 = t; }
            n2 = n1 > max ? n1 : (n1 > max - n1 ? n1 : max - n1);
            if (n1 + n2 > max) {
                n1 = max / 2;
                n2 = n1 + max % 2;
            }
            if (swap) { size_t t = n1; n1 = n2; n2 = t; }
            *na = n1 < *na ? n1 : *na;
            *nb = n2 < *nb ? n2 : *nb;
            return DAPT_OK;
        }
    case DAPT_TRUNC_ONLY_FIRST:
        if (*na <= remove)
            return DAPT_ERROR(DAPT_ERR_ARG, "truncation only_first: the first text (%zu tokens) is too short "
                              "to remove %zu tokens", *na, remove);
        *na -= remove;
        return DAPT_OK;
    case DAPT_TRUNC_ONLY_SECOND:
        if (!has_b) return DAPT_ERROR(DAPT_ERR_ARG, "truncation only_second needs a second text");
        if (*nb <= remove)
            return DAPT_ERROR(DAPT_ERR_ARG, "truncation only_second: the second text (%zu tokens) is too "
                              "short to remove %zu tokens", *nb, remove);
        *nb -= remove;
        return DAPT_OK;
    }
    return DAPT_ERROR(DAPT_ERR_ARG, "unknown truncation strategy %d", (int)how);
}

static dapt_status encode_full(const dapt_tokenizer *tok, dapt_tok_state *st, const char *a, size_t alen,
                               const char *b, size_t blen, const dapt_encode_opts *o, dapt_encoding *out,
                               dapt_ids *ia, dapt_ids *ib)
{
    DAPT_CHECK(encode_with_state(tok, st, a, alen, ia));
    if (b) DAPT_CHECK(encode_with_state(tok, st, b, blen, ib));
    size_t na = ia->len, nb = ib->len;
    size_t nspecial = o->add_special ? dapt_tokenizer_num_special(tok, b != NULL) : 0;
    if (o->max_length > 0 && o->truncation != DAPT_TRUNC_NONE) {
        if (o->max_length < nspecial)
            return DAPT_ERROR(DAPT_ERR_ARG, "max_length %zu is smaller than the %zu special tokens",
                              o->max_length, nspecial);
        DAPT_CHECK(truncate(o->truncation, o->max_length - nspecial, b != NULL, &na, &nb));
    }
    out->ids.len = out->type_ids.len = out->attention_mask.len = out->special_mask.len = 0;
    if (o->add_special) {
        const tok_tmpl_item *it = b ? tok->tmpl.pair : tok->tmpl.single;
        size_t n = b ? tok->tmpl.n_pair : tok->tmpl.n_single;
        for (size_t i = 0; i < n; i++) {
            if (it[i].id >= 0) {
                DAPT_CHECK(push4(out, it[i].id, it[i].type_id, 1, 1));
                continue;
            }
            const dapt_ids *src = it[i].id == -1 ? ia : ib;
            size_t cnt = it[i].id == -1 ? na : nb;
            for (size_t k = 0; k < cnt; k++) DAPT_CHECK(push4(out, src->data[k], it[i].type_id, 1, 0));
        }
    } else {
        for (size_t k = 0; k < na; k++) DAPT_CHECK(push4(out, ia->data[k], 0, 1, 0));
        for (size_t k = 0; k < nb; k++) DAPT_CHECK(push4(out, ib->data[k], 1, 1, 0));
    }
    if (o->pad_to_max_length && o->max_length > out->ids.len) {
        if (tok->specials.pad < 0)
            return DAPT_ERROR(DAPT_ERR_ARG, "padding asked for, but tokenizer %s has no pad token", tok->source);
        while (out->ids.len < o->max_length) DAPT_CHECK(push4(out, tok->specials.pad, 0, 0, 1));
    }
    return DAPT_OK;
}

dapt_status dapt_tokenizer_encode_full(const dapt_tokenizer *tok, dapt_tok_state *st, const char *a,
                                       size_t alen, const char *b, size_t blen, const dapt_encode_opts *opts,
                                       dapt_encoding *out)
{
    dapt_encode_opts none = {0};
    dapt_tok_state *tmp = NULL;
    if (!st) {
        DAPT_CHECK(tok_state_new_uncached(tok, &tmp));
        st = tmp;
    }
    dapt_ids ia = {0}, ib = {0};
    dapt_status s = encode_full(tok, st, a, alen, b, blen, opts ? opts : &none, out, &ia, &ib);
    dapt_ids_free(&ia);
    dapt_ids_free(&ib);
    dapt_tok_state_free(tmp);
    return s;
}

/* ---- decoding ------------------------------------------------------------ */

static int is_special_id(const dapt_tokenizer *tok, int32_t id)
{
    for (size_t a = 0; a < tok->n_added; a++)
        if (tok->added[a].id == id && tok->added[a].special) return 1;
    return 0;
}

/* WordPiece decoder's clean-up (per token, as the Rust library does). */
static dapt_status append_cleaned(tok_buf *b, const char *s, size_t n)
{
    static const char *const from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " do not", " 's", " 've", " 're"};
    static const char *const to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s", "'ve", "'re"};
    tok_buf cur = {0}, nxt = {0};
    dapt_status st = DAPT_OK;
    DAPT_TRY(tok_buf_append(&cur, s, n));
    for (size_t r = 0; r < sizeof from / sizeof from[0]; r++) {
        size_t fl = strlen(from[r]), tl = strlen(to[r]);
        nxt.len = 0;
        for (size_t i = 0; i < cur.len;) {
            if (i + fl <= cur.len && memcmp(cur.data + i, from[r], fl) == 0) {
                DAPT_TRY(tok_buf_append(&nxt, to[r], tl));
                i += fl;
            } else {
                DAPT_TRY(tok_buf_append(&nxt, cur.data + i, 1));
                i++;
            }
        }
        tok_buf t = cur;
        cur = nxt;
        nxt = t;
    }
    DAPT_TRY(tok_buf_append(b, cur.data ? cur.data : "", cur.len));
cleanup:
    tok_buf_free(&cur);
    tok_buf_free(&nxt);
    return st;
}

/* Appends bytes as UTF-8, replacing each maximal invalid subpart by U+FFFD
 * (what Rust's String::from_utf8_lossy does). */
static dapt_status append_lossy(tok_buf *out, const unsigned char *s, size_t n)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        size_t k = dapt_utf8_decode(s + i, n - i, &cp);
        if (k) {
            DAPT_CHECK(tok_buf_append(out, (const char *)s + i, k));
            i += k;
            continue;
        }
        size_t used = dapt_utf8_invalid(s + i, n - i, NULL);
        DAPT_CHECK(tok_buf_append(out, fffd, 3));
        i += used;
    }
    return DAPT_OK;
}

dapt_status dapt_tokenizer_decode(const dapt_tokenizer *tok, const int32_t *ids, size_t n, int skip_special,
                                  char **text, size_t *len)
{
    *text = NULL;
    tok_buf out = {0}, bytes = {0}, piece = {0};
    dapt_status st = DAPT_OK;
    size_t emitted = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= tok->vocab.n || !tok->vocab.tokens[id])
            DAPT_THROW(DAPT_ERR_ARG, "cannot decode id %d: not in the vocabulary of %s (size %zu)", (int)id,
                       tok->source, tok->vocab.n);
        if (skip_special && is_special_id(tok, id)) continue;
        const char *t = tok->vocab.tokens[id];
        size_t tl = tok->vocab.lens[id];
        if (tok->kind == DAPT_TOK_WORDPIECE) {
            piece.len = 0;
            if (emitted > 0) {
                if (tl >= tok->wp.prefix_len && memcmp(t, tok->wp.prefix, tok->wp.prefix_len) == 0) {
                    t += tok->wp.prefix_len;
                    tl -= tok->wp.prefix_len;
                } else {
                    DAPT_TRY(tok_buf_append(&piece, " ", 1));
                }
            }
            DAPT_TRY(tok_buf_append(&piece, t, tl));
            if (tok->wp.decode_cleanup) DAPT_TRY(append_cleaned(&out, piece.data, piece.len));
            else DAPT_TRY(tok_buf_append(&out, piece.data, piece.len));
        } else {
            const unsigned char *u = (const unsigned char *)t;
            for (size_t k = 0; k < tl;) {
                int32_t cp;
                size_t w = dapt_utf8_decode(u + k, tl - k, &cp);
                if (!w) { w = 1; cp = -1; }
                if (cp >= 0 && cp < 324 && tok->bpe.char_to_byte[cp] >= 0) {
                    char byte = (char)tok->bpe.char_to_byte[cp];
                    DAPT_TRY(tok_buf_append(&bytes, &byte, 1));
                } else {
                    DAPT_TRY(tok_buf_append(&bytes, t + k, w));
                }
                k += w;
            }
        }
        emitted++;
    }
    if (tok->kind == DAPT_TOK_BPE) DAPT_TRY(append_lossy(&out, (const unsigned char *)bytes.data, bytes.len));
    DAPT_TRY(tok_buf_reserve(&out, 1));
    out.data[out.len] = '\0';
    if (len) *len = out.len;
    *text = out.data;
    out.data = NULL;
cleanup:
    tok_buf_free(&out);
    tok_buf_free(&bytes);
    tok_buf_free(&piece);
    return st;
}

/* ---- accessors ----------------------------------------------------------- */

dapt_tokenizer_kind dapt_tokenizer_kind_of(const dapt_tokenizer *tok) { return tok->kind; }
size_t dapt_tokenizer_vocab_size(const dapt_tokenizer *tok) { return tok->vocab.n; }

int32_t dapt_tokenizer_token_to_id(const dapt_tokenizer *tok, const char *token)
{
    return tok_vocab_find(&tok->vocab, token, strlen(token));
}

const char *dapt_tokenizer_id_to_token(const dapt_tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->vocab.n) return NULL;
    return tok->vocab.tokens[id];
}

dapt_special_ids dapt_tokenizer_specials(const dapt_tokenizer *tok) { return tok->specials; }
const char *dapt_tokenizer_identity(const dapt_tokenizer *tok) { return tok->identity; }
const char *dapt_tokenizer_checksum(const dapt_tokenizer *tok) { return tok->checksum; }
