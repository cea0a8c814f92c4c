/* Hash tables and byte buffers for the tokenizers (UTF-8: dapt/utf8.h). */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* FNV-1a: short keys, good enough spread for power-of-two tables. */
uint32_t tok_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h ^ (h >> 15);
}

static size_t table_size(size_t n)
{
    size_t sz = 64;
    while (sz < 2 * n + 16) sz <<= 1;
    return sz;
}

dapt_status tok_vocab_init(tok_vocab *v, size_t n_ids, size_t n_tokens_hint)
{
    memset(v, 0, sizeof *v);
    size_t sz = table_size(n_tokens_hint > n_ids ? n_tokens_hint : n_ids);
    DAPT_CHECK(dapt_calloc((void **)&v->tokens, n_ids ? n_ids : 1, sizeof *v->tokens, "vocabulary"));
    DAPT_CHECK(dapt_calloc((void **)&v->lens, n_ids ? n_ids : 1, sizeof *v->lens, "vocabulary"));
    DAPT_CHECK(dapt_calloc((void **)&v->slots, sz, sizeof *v->slots, "vocabulary table"));
    DAPT_CHECK(dapt_calloc((void **)&v->slot_hash, sz, sizeof *v->slot_hash, "vocabulary table"));
    v->n = n_ids;
    v->mask = sz - 1;
    return DAPT_OK;
}

int32_t tok_vocab_find(const tok_vocab *v, const char *s, size_t n)
{
    uint32_t h = tok_hash(s, n);
    for (size_t i = h & v->mask;; i = (i + 1) & v->mask) {
        uint32_t slot = v->slots[i];
        if (!slot) return -1;
        uint32_t id = slot - 1;
        if (v->slot_hash[i] == h && v->lens[id] == n && memcmp(v->tokens[id], s, n) == 0)
            return (int32_t)id;
    }
}

dapt_status tok_vocab_set(tok_vocab *v, int32_t id, const char *tok, size_t len)
{
    if (id < 0 || (size_t)id >= v->n)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "vocabulary id %d outside 0..%zu", id, v->n);
    if (len > UINT32_MAX) return DAPT_ERROR(DAPT_ERR_FORMAT, "token of %zu bytes", len);
    char *copy = NULL;
    DAPT_CHECK(dapt_alloc((void **)&copy, len + 1, "token"));
    memcpy(copy, tok, len);
    copy[len] = '\0';
    free(v->tokens[id]);
    v->tokens[id] = copy;
    v->lens[id] = (uint32_t)len;
    if (len > v->max_len) v->max_len = len;
    uint32_t h = tok_hash(tok, len);
    for (size_t i = h & v->mask;; i = (i + 1) & v->mask) {
        uint32_t slot = v->slots[i];
        if (slot && v->slot_hash[i] == h && v->lens[slot - 1] == len &&
            memcmp(v->tokens[slot - 1], tok, len) == 0) {
            v->slots[i] = (uint32_t)id + 1; /* later duplicate wins */
            return DAPT_OK;
        }
        if (!slot) {
            v->slots[i] = (uint32_t)id + 1;
            v->slot_hash[i] = h;
            return DAPT_OK;
        }
    }
}

void tok_vocab_free(tok_vocab *v)
{
    if (v->tokens)
        for (size_t i = 0; i < v->n; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->lens);
    free(v->slots);
    free(v->slot_hash);
    memset(v, 0, sizeof *v);
}

/* Word-at-a-time hash for the lookup tables (keys are short). */
static uint32_t strmap_hash(const char *s, size_t n, uint64_t *head)
{
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull, w = 0;
    memcpy(&w, s, n < 8 ? n : 8);
    *head = w;
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    for (size_t i = 8; i < n; i += 8) {
        w = 0;
        memcpy(&w, s + i, n - i < 8 ? n - i : 8);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 29;
    }
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h >> 32);
}

dapt_status tok_strmap_init(tok_strmap *m, size_t capacity_hint)
{
    memset(m, 0, sizeof *m);
    size_t sz = table_size(capacity_hint);
    DAPT_CHECK(dapt_calloc((void **)&m->e, sz, sizeof *m->e, "string table"));
    m->mask = sz - 1;
    return DAPT_OK;
}

static int entry_is(const tok_strmap_entry *e, uint32_t h, uint64_t head, const char *s, size_t n)
{
    return e->hash == h && e->len == n && e->head == head && (n <= 8 || memcmp(e->key + 8, s + 8, n - 8) == 0);
}

/* Keys are borrowed (they point into vocabulary strings that outlive m). */
dapt_status tok_strmap_put(tok_strmap *m, const char *key, size_t n, int32_t id)
{
    if (2 * (m->count + 1) > m->mask + 1)
        return DAPT_ERROR(DAPT_ERR_INTERNAL, "string table sized too small");
    uint64_t head;
    uint32_t h = strmap_hash(key, n, &head);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        tok_strmap_entry *e = &m->e[i];
        if (!e->key) {
            *e = (tok_strmap_entry){head, key, h, (uint32_t)n, id};
            m->count++;
            if (n > m->max_len) m->max_len = n;
            return DAPT_OK;
        }
        if (entry_is(e, h, head, key, n)) {
            e->id = id;
            return DAPT_OK;
        }
    }
}

int32_t tok_strmap_find(const tok_strmap *m, const char *s, size_t n)
{
    uint64_t head;
    uint32_t h = strmap_hash(s, n, &head);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const tok_strmap_entry *e = &m->e[i];
        if (!e->key) return -1;
        if (entry_is(e, h, head, s, n)) return e->id;
    }
}

void tok_strmap_free(tok_strmap *m)
{
    free(m->e);
    memset(m, 0, sizeof *m);
}

/* Grows *data (capacity *cap elements of elem bytes, first capacity
 * `first`) by doubling until it holds need elements. */
static dapt_status grow(void **data, size_t *cap, size_t need, size_t elem, size_t first, const char *what)
{
    if (need <= *cap) return DAPT_OK;
    size_t n = *cap ? *cap : first;
    while (n < need) n *= 2;
    void *p = realloc(*data, n * elem);
    if (!p) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot grow %s to %zu", what, n);
    *data = p;
    *cap = n;
    return DAPT_OK;
}

dapt_status tok_buf_reserve(tok_buf *b, size_t extra)
{
    return grow((void **)&b->data, &b->cap, b->len + extra, 1, 256, "a text buffer (bytes)");
}

dapt_status tok_buf_append(tok_buf *b, const char *s, size_t n)
{
    if (n == 0) return DAPT_OK; /* b->data may still be NULL: NULL + 0 is undefined */
    DAPT_CHECK(tok_buf_reserve(b, n));
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return DAPT_OK;
}

void tok_buf_free(tok_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

dapt_status dapt_ids_reserve(dapt_ids *ids, size_t extra)
{
    return grow((void **)&ids->data, &ids->cap, ids->len + extra, sizeof *ids->data, 64, "an id buffer (ids)");
}

dapt_status dapt_ids_push(dapt_ids *ids, int32_t id)
{
    if (ids->len == ids->cap) DAPT_CHECK(dapt_ids_reserve(ids, 1));
    ids->data[ids->len++] = id;
    return DAPT_OK;
}

void dapt_ids_free(dapt_ids *ids)
{
    free(ids->data);
    memset(ids, 0, sizeof *ids);
}
