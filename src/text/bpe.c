/* Byte-level BPE (GPT-2, RoBERTa), as Hugging Face's ByteLevel
 * pre-tokeniser + BPE model.
 *
 * Pre-tokenisation splits the text with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Rust's tokenizers runs it through Oniguruma, whose \s is the Unicode
 * White_Space property (with U+0085, without U+FEFF); PCRE2's \s under UCP
 * differs (it leaves out U+0085), so the class is written out explicitly.
 * Pieces made only of ASCII are split by a hand-written matcher that follows
 * the same alternatives in the same order (tests compare it with PCRE2 on
 * random text); as soon as a candidate match could involve a non-ASCII
 * character, PCRE2 (JIT-compiled) decides.  Each piece's bytes are mapped to
 * GPT-2's printable byte alphabet and merged: repeatedly the adjacent pair
 * with the lowest merge rank (leftmost on ties), as the Rust library's
 * priority queue does.  Results per piece are cached in the caller's state. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define WS_CLASS "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS_CLASS "\\p{L}\\p{N}]+"
    "|[" WS_CLASS "]+(?![^" WS_CLASS "])|[" WS_CLASS "]+";

/* Set to 0 by tests to force every piece through PCRE2. */
int tok_bpe_ascii_fast_path = 1;

int32_t tok_bpe_byte_char(unsigned b)
{
    /* Printable bytes map to themselves; the others, in byte order, to
     * U+0100 upward. */
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return (int32_t)b;
    int n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174)) n++;
    return 256 + n;
}

static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static const tok_merge_entry *merge_find(const tok_bpe *b, int32_t l, int32_t r)
{
    uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)r) + 1;
    for (size_t i = mix64(key) & b->merge_mask;; i = (i + 1) & b->merge_mask) {
        if (b->merges[i].key == key) return &b->merges[i];
        if (!b->merges[i].key) return NULL;
    }
}

dapt_status tok_bpe_prepare(dapt_tokenizer *tok, const char *file)
{
    tok_bpe *b = &tok->bpe;
    for (int i = 0; i < 324; i++) b->char_to_byte[i] = -1;
    for (unsigned byte = 0; byte < 256; byte++) {
        int32_t cp = tok_bpe_byte_char(byte);
        char enc[4];
        size_t k = dapt_utf8_encode(cp, enc);
        b->char_to_byte[cp] = (int32_t)byte;
        b->byte_id[byte] = tok_vocab_find(&tok->vocab, enc, k);
        if (b->byte_id[byte] < 0)
            return DAPT_ERROR(DAPT_ERR_FORMAT,
                              "%s: byte-level vocabulary has no token for byte 0x%02x ('%.*s')",
                              file, byte, (int)k, enc);
    }
    size_t sz = 64;
    while (sz < 2 * b->n_merges + 16) sz <<= 1;
    DAPT_CHECK(dapt_calloc((void **)&b->merges, sz, sizeof *b->merges, "merge table"));
    b->merge_mask = sz - 1;
    tok_buf joined = {0};
    dapt_status st = DAPT_OK;
    for (size_t r = 0; r < b->n_merges; r++) {
        int32_t l = b->merge_pairs[r][0], rt = b->merge_pairs[r][1];
        joined.len = 0;
        DAPT_TRY(tok_buf_append(&joined, tok->vocab.tokens[l], tok->vocab.lens[l]));
        DAPT_TRY(tok_buf_append(&joined, tok->vocab.tokens[rt], tok->vocab.lens[rt]));
        int32_t res = tok_vocab_find(&tok->vocab, joined.data, joined.len);
        if (res < 0)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: merge %zu ('%s %s') makes '%.*s', which is not in the vocabulary",
                       file, r + 1, tok->vocab.tokens[l], tok->vocab.tokens[rt], (int)joined.len, joined.data);
        uint64_t key = ((uint64_t)(uint32_t)l << 32 | (uint32_t)rt) + 1;
        for (size_t i = mix64(key) & b->merge_mask;; i = (i + 1) & b->merge_mask) {
            if (b->merges[i].key == key) break; /* duplicate merge: first (lowest rank) stays */
            if (!b->merges[i].key) {
                b->merges[i].key = key;
                b->merges[i].rank = (int32_t)r;
                b->merges[i].result = res;
                break;
            }
        }
    }
    int err;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)gpt2_pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        DAPT_THROW(DAPT_ERR_INTERNAL, "GPT-2 pattern does not compile at %zu: %s", (size_t)erroff, msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    b->regex = re;
cleanup:
    tok_buf_free(&joined);
    return st;
}

void tok_bpe_free(tok_bpe *b)
{
    free(b->merges);
    free(b->merge_pairs);
    if (b->regex) pcre2_code_free(b->regex);
    memset(b, 0, sizeof *b);
}

enum { CACHE_SLOTS = 1 << 15, CACHE_MAX_KEY = 128 };

dapt_status tok_bpe_state_init(const dapt_tokenizer *tok, dapt_tok_state *st)
{
    st->match_data = pcre2_match_data_create_from_pattern(tok->bpe.regex, NULL);
    if (!st->match_data) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot allocate PCRE2 match data");
    st->cache_mask = CACHE_SLOTS - 1;
    return DAPT_OK;
}

void tok_bpe_state_free(dapt_tok_state *st)
{
    if (st->match_data) pcre2_match_data_free(st->match_data);
    free(st->cache);
    tok_buf_free(&st->cache_keys);
    dapt_ids_free(&st->cache_ids);
    free(st->sym);
    free(st->next);
}

/* Long pieces: symbols in a linked list and candidate merges in a binary
 * min-heap ordered by (rank, position), as the Rust library does; stale
 * entries are skipped when popped.  O(n log n) instead of O(n^2). */
typedef struct heap_item {
    int32_t rank, pos;
} heap_item;

static int heap_less(heap_item a, heap_item b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
    size_t i = (*n)++;
    while (i > 0 && heap_less(x, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

static dapt_status bpe_long(const tok_bpe *b, const unsigned char *p, size_t n, dapt_ids *out)
{
    int32_t *sym = malloc(n * sizeof *sym), *nxt = malloc(n * sizeof *nxt), *prv = malloc(n * sizeof *prv);
    heap_item *h = malloc(3 * n * sizeof *h); /* n - 1 first, then at most 2 per merge */
    dapt_status st = DAPT_OK;
    if (!sym || !nxt || !prv || !h) {
        st = DAPT_ERROR(DAPT_ERR_NOMEM, "BPE work space for a %zu-byte piece", n);
        goto cleanup;
    }
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) {
        sym[i] = b->byte_id[p[i]];
        nxt[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        prv[i] = (int32_t)i - 1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        const tok_merge_entry *e = merge_find(b, sym[i], sym[i + 1]);
        if (e) heap_push(h, &hn, (heap_item){e->rank, (int32_t)i});
    }
    while (hn) {
        heap_item top = heap_pop(h, &hn);
        int32_t i = top.pos, j = nxt[i];
        if (sym[i] < 0 || j < 0) continue; /* symbol merged away, or last */
        const tok_merge_entry *e = merge_find(b, sym[i], sym[j]);
        if (!e || e->rank != top.rank) continue; /* stale */
        sym[i] = e->result;
        sym[j] = -1;
        nxt[i] = nxt[j];
        if (nxt[j] >= 0) prv[nxt[j]] = i;
        if (prv[i] >= 0) {
            const tok_merge_entry *l = merge_find(b, sym[prv[i]], sym[i]);
            if (l) heap_push(h, &hn, (heap_item){l->rank, prv[i]});
        }
        if (nxt[i] >= 0) {
            const tok_merge_entry *r = merge_find(b, sym[i], sym[nxt[i]]);
            if (r) heap_push(h, &hn, (heap_item){r->rank, i});
        }
    }
    for (int32_t i = 0; i >= 0; i = nxt[i])
        if ((st = dapt_ids_push(out, sym[i])) != DAPT_OK) break;
cleanup:
    free(sym);
    free(nxt);
    free(prv);
    free(h);
    return st;
}

enum { BPE_SHORT = 256 };

/* Merges the bytes of one piece; appends ids. */
static dapt_status bpe_piece(const tok_bpe *b, dapt_tok_state *st, const unsigned char *p, size_t n,
                             dapt_ids *out)
{
    if (n > BPE_SHORT) return bpe_long(b, p, n, out);
    if (n > st->sym_cap) {
        size_t cap = n < 64 ? 64 : n;
        int32_t *s = realloc(st->sym, cap * sizeof *s);
        if (!s) return DAPT_ERROR(DAPT_ERR_NOMEM, "BPE symbols for a %zu-byte piece", n);
        st->sym = s;
        int32_t *r = realloc(st->next, cap * sizeof *r);
        if (!r) return DAPT_ERROR(DAPT_ERR_NOMEM, "BPE ranks for a %zu-byte piece", n);
        st->next = r;
        st->sym_cap = cap;
    }
    int32_t *sym = st->sym, *rank = st->next; /* rank[i]: merge rank of (sym[i], sym[i+1]) */
    size_t m = n;
    for (size_t i = 0; i < n; i++) sym[i] = b->byte_id[p[i]];
    for (size_t i = 0; i + 1 < m; i++) {
        const tok_merge_entry *e = merge_find(b, sym[i], sym[i + 1]);
        rank[i] = e ? e->rank : INT32_MAX;
    }
    while (m > 1) {
        size_t best = 0;
        int32_t br = INT32_MAX;
        for (size_t i = 0; i + 1 < m; i++)
            if (rank[i] < br) { br = rank[i]; best = i; }
        if (br == INT32_MAX) break;
        sym[best] = merge_find(b, sym[best], sym[best + 1])->result;
        memmove(sym + best + 1, sym + best + 2, (m - best - 2) * sizeof *sym);
        memmove(rank + best + 1, rank + best + 2, (m >= best + 3 ? m - best - 3 : 0) * sizeof *rank);
        m--;
        if (best > 0) {
            const tok_merge_entry *e = merge_find(b, sym[best - 1], sym[best]);
            rank[best - 1] = e ? e->rank : INT32_MAX;
        }
        if (best + 1 < m) {
            const tok_merge_entry *e = merge_find(b, sym[best], sym[best + 1]);
            rank[best] = e ? e->rank : INT32_MAX;
        }
    }
    DAPT_CHECK(dapt_ids_reserve(out, m));
    memcpy(out->data + out->len, sym, m * sizeof *sym);
    out->len += m;
    return DAPT_OK;
}

/* bpe_piece through the per-state cache. */
static dapt_status bpe_cached(const tok_bpe *b, dapt_tok_state *st, const unsigned char *p, size_t n,
                              dapt_ids *out)
{
    if (n > CACHE_MAX_KEY || !st->use_cache) return bpe_piece(b, st, p, n, out);
    if (!st->cache) DAPT_CHECK(dapt_calloc((void **)&st->cache, CACHE_SLOTS, sizeof *st->cache, "BPE cache"));
    uint32_t h = tok_hash((const char *)p, n) | 1u; /* 0 marks an empty slot */
    size_t i = h & st->cache_mask;
    for (;; i = (i + 1) & st->cache_mask) {
        tok_cache_entry *e = &st->cache[i];
        if (!e->hash) break;
        if (e->hash == h && e->key_len == n && memcmp(st->cache_keys.data + e->key_off, p, n) == 0) {
            DAPT_CHECK(dapt_ids_reserve(out, e->n_ids));
            memcpy(out->data + out->len, st->cache_ids.data + e->ids_off, e->n_ids * sizeof(int32_t));
            out->len += e->n_ids;
            return DAPT_OK;
        }
    }
    size_t before = out->len;
    DAPT_CHECK(bpe_piece(b, st, p, n, out));
    if (2 * (st->cache_count + 1) > CACHE_SLOTS) { /* full: start afresh */
        memset(st->cache, 0, CACHE_SLOTS * sizeof *st->cache);
        st->cache_count = 0;
        st->cache_keys.len = 0;
        st->cache_ids.len = 0;
        for (i = h & st->cache_mask; st->cache[i].hash; i = (i + 1) & st->cache_mask) {}
    }
    size_t nid = out->len - before;
    tok_cache_entry *e = &st->cache[i];
    e->key_off = st->cache_keys.len;
    e->ids_off = st->cache_ids.len;
    DAPT_CHECK(tok_buf_append(&st->cache_keys, (const char *)p, n));
    DAPT_CHECK(dapt_ids_reserve(&st->cache_ids, nid));
    memcpy(st->cache_ids.data + st->cache_ids.len, out->data + before, nid * sizeof(int32_t));
    st->cache_ids.len += nid;
    e->hash = h;
    e->key_len = (uint32_t)n;
    e->n_ids = (uint32_t)nid;
    st->cache_count++;
    return DAPT_OK;
}

enum { A_OTHER = 0, A_LETTER, A_DIGIT, A_SPACE };

static unsigned char ascii_class(unsigned c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return A_LETTER;
    if (c >= '0' && c <= '9') return A_DIGIT;
    if ((c >= 9 && c <= 13) || c == ' ') return A_SPACE;
    return A_OTHER;
}

/* Length of the match at p when it can be decided from ASCII alone, or 0. */
static size_t ascii_match(const unsigned char *t, size_t p, size_t n, const unsigned char *cls)
{
    unsigned c = t[p];
    if (c >= 0x80) return 0;
    if (c == '\'' && p + 1 < n) {
        unsigned d = t[p + 1];
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return 2;
        if (p + 2 < n) {
            unsigned e = t[p + 2];
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return 3;
        }
    }
    size_t q = p;
    if (c == ' ') {
        if (p + 1 >= n) return 1; /* a final space: \s+ */
        if (t[p + 1] >= 0x80) return 0;
        q = p + 1;
    }
    unsigned k = cls[t[q]];
    if (k != A_SPACE) {
        /* ' ?' then a run of one class; the run may not stop at a non-ASCII
         * byte (it might continue with a non-ASCII letter/digit/other). */
        size_t e = q + 1;
        while (e < n && t[e] < 0x80 && cls[t[e]] == k) e++;
        if (e < n && t[e] >= 0x80) return 0;
        return e - p;
    }
    /* Whitespace run starting at p (q == p here, or p is a space followed
     * by whitespace). */
    size_t e = p;
    while (e < n && t[e] < 0x80 && cls[t[e]] == A_SPACE) e++;
    if (e == n) return e - p;
    if (t[e] >= 0x80) return 0;
    /* followed by a non-space: \s+(?!\S) leaves the last space for the next
     * piece, unless the run is a single character (then \s+ takes it). */
    return e - p > 1 ? e - p - 1 : 1;
}

/* Splits text into pieces and merges each; text has no added tokens. */
static dapt_status bpe_text(const dapt_tokenizer *tok, dapt_tok_state *st, const char *text, size_t len,
                            dapt_ids *out)
{
    const tok_bpe *b = &tok->bpe;
    const unsigned char *t = (const unsigned char *)text;
    unsigned char cls[128];
    for (unsigned c = 0; c < 128; c++) cls[c] = ascii_class(c);
    size_t p = 0;
    while (p < len) {
        size_t k = tok_bpe_ascii_fast_path ? ascii_match(t, p, len, cls) : 0;
        if (k) {
            DAPT_CHECK(bpe_cached(b, st, t + p, k, out));
            p += k;
            continue;
        }
        int rc = pcre2_match(b->regex, (PCRE2_SPTR)text, len, p, PCRE2_NO_UTF_CHECK, st->match_data, NULL);
        if (rc < 0) { /* cannot happen: every character matches an alternative */
            DAPT_CHECK(bpe_cached(b, st, t + p, len - p, out));
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(st->match_data);
        if (ov[0] > p) DAPT_CHECK(bpe_cached(b, st, t + p, ov[0] - p, out)); /* gap, kept as a piece */
        if (ov[1] == ov[0]) return DAPT_ERROR(DAPT_ERR_INTERNAL, "empty GPT-2 pattern match");
        DAPT_CHECK(bpe_cached(b, st, t + ov[0], ov[1] - ov[0], out));
        p = ov[1];
    }
    return DAPT_OK;
}

dapt_status tok_bpe_encode(const dapt_tokenizer *tok, dapt_tok_state *st, const char *text, size_t len,
                           dapt_ids *out)
{
    if (tok->bpe.add_prefix_space && len > 0 && text[0] != ' ') {
        st->seg.len = 0;
        DAPT_CHECK(tok_buf_reserve(&st->seg, len + 1));
        st->seg.data[0] = ' ';
        memcpy(st->seg.data + 1, text, len);
        return bpe_text(tok, st, st->seg.data, len + 1, out);
    }
    return bpe_text(tok, st, text, len, out);
}
