/* Loading tokenizers from tokenizer.json, vocab.txt, or vocab.json +
 * merges.txt, and computing their identity and checksum. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dapt/fsio.h"
#include "dapt/sha256.h"
#include "tok_internal.h"

/* A whole text file (vocab.txt, merges.txt), NUL-terminated, checked to be
 * UTF-8. */
static dapt_status read_text(const char *path, char **out, size_t *len)
{
    DAPT_CHECK(dapt_fs_read_file(path, (size_t)1 << 31, (unsigned char **)out, len));
    size_t bad = dapt_utf8_validate(*out, *len);
    if (bad < *len) {
        free(*out);
        *out = NULL;
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: not valid UTF-8 (byte %zu)", path, bad);
    }
    return DAPT_OK;
}

static int is_dir(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int exists(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

static dapt_status load_json(const char *path, json_t **out)
{
    json_error_t err;
    *out = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    if (!*out) {
        if (!exists(path)) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open (no such file)", path);
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s", path, err.line,
                          err.column, err.text);
    }
    return DAPT_OK;
}

/* "name" of an added/special token given as a string or as {"content": ..}. */
static const char *token_name(json_t *v)
{
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static int json_flag(json_t *obj, const char *key, int dflt)
{
    json_t *v = json_object_get(obj, key);
    if (json_is_boolean(v)) return json_is_true(v);
    return dflt;
}

/* ---- vocabulary sources ---------------------------------------------------- */

/* The id table is sized by the largest id, so ids must be (nearly) dense
 * as every Hugging Face vocabulary's are: one id of 2^31 - 2 in a few-byte
 * file would otherwise ask for 16 GiB. */
static dapt_status vocab_from_json(tok_vocab *v, json_t *obj, const char *file, size_t extra_ids, size_t extra_count)
{
    if (!json_is_object(obj)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: vocabulary is not a JSON object", file);
    size_t n = extra_ids;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 || json_integer_value(val) >= INT32_MAX)
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: vocabulary entry '%s' has no valid id", file, key);
        size_t id = (size_t)json_integer_value(val);
        if (id + 1 > n) n = id + 1;
    }
    const size_t entries = json_object_size(obj) + extra_count;
    if (n > 2 * entries + 1024)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: vocabulary ids run up to %zu for %zu tokens (ids must be dense, "
                          "0 to the number of tokens - 1, as Hugging Face's)", file, n - 1, entries);
    DAPT_CHECK(tok_vocab_init(v, n, json_object_size(obj)));
    json_object_foreach(obj, key, val) {
        DAPT_CHECK(tok_vocab_set(v, (int32_t)json_integer_value(val), key, strlen(key)));
    }
    return DAPT_OK;
}

static dapt_status vocab_from_txt(tok_vocab *v, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    DAPT_CHECK(read_text(path, &data, &len));
    dapt_status st = DAPT_OK;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    if (len && data[len - 1] != '\n') lines++;
    if (!lines) DAPT_THROW(DAPT_ERR_FORMAT, "%s: empty vocabulary", path);
    DAPT_TRY(tok_vocab_init(v, lines, lines));
    size_t id = 0;
    for (size_t i = 0; i < len; id++) {
        size_t e = i;
        while (e < len && data[e] != '\n') e++;
        size_t t = e;
        /* Rust's lines() then trim_end(): drop trailing whitespace. */
        while (t > i && (data[t - 1] == '\r' || data[t - 1] == ' ' || data[t - 1] == '\t')) t--;
        DAPT_TRY(tok_vocab_set(v, (int32_t)id, data + i, t - i));
        i = e + 1;
    }
cleanup:
    free(data);
    return st;
}

/* Merges as "a b" strings or [a, b] arrays; fills tok->bpe.merge_pairs. */
static dapt_status add_merge(dapt_tokenizer *tok, const char *file, size_t rank, const char *a, size_t al,
                             const char *b, size_t bl)
{
    int32_t ia = tok_vocab_find(&tok->vocab, a, al), ib = tok_vocab_find(&tok->vocab, b, bl);
    if (ia < 0 || ib < 0)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: merge %zu refers to '%.*s', which is not in the vocabulary",
                          file, rank + 1, ia < 0 ? (int)al : (int)bl, ia < 0 ? a : b);
    tok->bpe.merge_pairs[rank][0] = ia;
    tok->bpe.merge_pairs[rank][1] = ib;
    return DAPT_OK;
}

static dapt_status split_merge_line(dapt_tokenizer *tok, const char *file, size_t rank, const char *s, size_t n)
{
    const char *sp = memchr(s, ' ', n);
    if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s)) || sp == s || sp + 1 == s + n)
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: merge %zu ('%.*s') is not two tokens separated by one space",
                          file, rank + 1, (int)(n > 80 ? 80 : n), s);
    return add_merge(tok, file, rank, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s));
}

static dapt_status merges_from_json(dapt_tokenizer *tok, json_t *arr, const char *file)
{
    if (!json_is_array(arr)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: model.merges is not an array", file);
    size_t n = json_array_size(arr);
    DAPT_CHECK(dapt_calloc((void **)&tok->bpe.merge_pairs, n ? n : 1, sizeof *tok->bpe.merge_pairs, "merges"));
    tok->bpe.n_merges = n;
    for (size_t r = 0; r < n; r++) {
        json_t *m = json_array_get(arr, r);
        if (json_is_string(m)) {
            DAPT_CHECK(split_merge_line(tok, file, r, json_string_value(m), json_string_length(m)));
        } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                   json_is_string(json_array_get(m, 1))) {
            json_t *a = json_array_get(m, 0), *b = json_array_get(m, 1);
            DAPT_CHECK(add_merge(tok, file, r, json_string_value(a), json_string_length(a), json_string_value(b),
                                 json_string_length(b)));
        } else {
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", file, r + 1);
        }
    }
    return DAPT_OK;
}

static dapt_status merges_from_txt(dapt_tokenizer *tok, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    DAPT_CHECK(read_text(path, &data, &len));
    dapt_status st = DAPT_OK;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
    DAPT_TRY(dapt_calloc((void **)&tok->bpe.merge_pairs, lines, sizeof *tok->bpe.merge_pairs, "merges"));
    size_t rank = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && data[e] != '\n') e++;
        size_t t = e;
        if (t > i && data[t - 1] == '\r') t--;
        if (t > i && !(rank == 0 && t - i >= 8 && memcmp(data + i, "#version", 8) == 0)) {
            DAPT_TRY(split_merge_line(tok, path, rank, data + i, t - i));
            rank++;
        }
        i = e + 1;
    }
    tok->bpe.n_merges = rank;
cleanup:
    free(data);
    return st;
}

/* ---- added tokens, specials, template ---------------------------------- */

static dapt_status add_token(dapt_tokenizer *tok, const char *content, int32_t id, int special, int lstrip,
                             int rstrip, int single_word, int normalized)
{
    tok_added *grown = realloc(tok->added, (tok->n_added + 1) * sizeof *grown);
    if (!grown) return DAPT_ERROR(DAPT_ERR_NOMEM, "added tokens");
    tok->added = grown;
    tok_added *a = &tok->added[tok->n_added];
    memset(a, 0, sizeof *a);
    a->len = strlen(content);
    if (!a->len) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: empty added token (id %d)", tok->source, (int)id);
    DAPT_CHECK(dapt_alloc((void **)&a->content, a->len + 1, "added token"));
    memcpy(a->content, content, a->len + 1);
    a->id = id;
    a->special = special;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->single_word = single_word;
    a->normalized = normalized;
    tok->n_added++;
    tok->added_first[(unsigned char)content[0]] = 1;
    return DAPT_OK;
}

static void template_simple(tok_template *t, const char *name, int32_t cls, int32_t sep, int roberta)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (cls < 0 || sep < 0) {
        snprintf(t->name, sizeof t->name, "none");
        t->single[0] = (tok_tmpl_item){-1, 0};
        t->n_single = 1;
        t->pair[0] = (tok_tmpl_item){-1, 0};
        t->pair[1] = (tok_tmpl_item){-2, 1};
        t->n_pair = 2;
        return;
    }
    tok_tmpl_item s[] = {{cls, 0}, {-1, 0}, {sep, 0}};
    memcpy(t->single, s, sizeof s);
    t->n_single = 3;
    if (roberta) {
        tok_tmpl_item p[] = {{cls, 0}, {-1, 0}, {sep, 0}, {sep, 0}, {-2, 0}, {sep, 0}};
        memcpy(t->pair, p, sizeof p);
        t->n_pair = 6;
    } else {
        tok_tmpl_item p[] = {{cls, 0}, {-1, 0}, {sep, 0}, {-2, 1}, {sep, 1}};
        memcpy(t->pair, p, sizeof p);
        t->n_pair = 5;
    }
}

static dapt_status template_items(dapt_tokenizer *tok, json_t *list, json_t *specials, tok_tmpl_item *items,
                                  size_t cap, size_t *n)
{
    const char *file = tok->source;
    if (!json_is_array(list) || json_array_size(list) > cap)
        return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: post_processor template is not an array of at most %zu items",
                          file, cap);
    *n = json_array_size(list);
    for (size_t i = 0; i < *n; i++) {
        json_t *it = json_array_get(list, i), *sp = json_object_get(it, "SpecialToken"),
               *sq = json_object_get(it, "Sequence");
        json_t *obj = sp ? sp : sq;
        const char *id = json_string_value(json_object_get(obj, "id"));
        json_t *type = json_object_get(obj, "type_id");
        if (!obj || !id) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: post_processor template item %zu malformed", file, i);
        items[i].type_id = json_is_integer(type) ? (int32_t)json_integer_value(type) : 0;
        if (sq) {
            if (strcmp(id, "A") && strcmp(id, "B"))
                return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: template sequence '%s' is neither A nor B", file, id);
            items[i].id = id[0] == 'A' ? -1 : -2;
            continue;
        }
        json_t *ids = json_object_get(json_object_get(specials, id), "ids");
        if (!json_is_array(ids) || json_array_size(ids) != 1 || !json_is_integer(json_array_get(ids, 0)))
            return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: template special token '%s' must map to exactly one id",
                              file, id);
        items[i].id = (int32_t)json_integer_value(json_array_get(ids, 0));
        /* In range is not enough: a vocabulary may leave ids without a token. */
        if (!dapt_tokenizer_id_to_token(tok, items[i].id))
            return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: template special token '%s' has id %d, which is not in the "
                              "vocabulary", file, id, (int)items[i].id);
    }
    return DAPT_OK;
}

static dapt_status pair_token(dapt_tokenizer *tok, json_t *pair, int32_t *id)
{
    json_t *n = json_array_get(pair, 1);
    if (!json_is_array(pair) || !json_is_integer(n) || json_integer_value(n) < 0 ||
        json_integer_value(n) > INT32_MAX || !dapt_tokenizer_id_to_token(tok, (int32_t)json_integer_value(n)))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: post_processor cls/sep is not [token, id] with a valid id",
                          tok->source);
    *id = (int32_t)json_integer_value(n);
    return DAPT_OK;
}

static dapt_status post_processor(dapt_tokenizer *tok, json_t *pp)
{
    if (!pp || json_is_null(pp)) {
        template_simple(&tok->tmpl, "none", -1, -1, 0);
        return DAPT_OK;
    }
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: post_processor has no type", tok->source);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(pp, "processors");
        template_simple(&tok->tmpl, "none", -1, -1, 0);
        for (size_t i = 0; i < json_array_size(list); i++) {
            const char *t = json_string_value(json_object_get(json_array_get(list, i), "type"));
            if (t && strcmp(t, "ByteLevel")) DAPT_CHECK(post_processor(tok, json_array_get(list, i)));
        }
        return DAPT_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        template_simple(&tok->tmpl, "none", -1, -1, 0);
        return DAPT_OK;
    }
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls, sep;
        DAPT_CHECK(pair_token(tok, json_object_get(pp, "cls"), &cls));
        DAPT_CHECK(pair_token(tok, json_object_get(pp, "sep"), &sep));
        int roberta = type[0] == 'R';
        template_simple(&tok->tmpl, roberta ? "roberta" : "bert", cls, sep, roberta);
        return DAPT_OK;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        json_t *sp = json_object_get(pp, "special_tokens");
        memset(&tok->tmpl, 0, sizeof tok->tmpl);
        DAPT_CHECK(template_items(tok, json_object_get(pp, "single"), sp, tok->tmpl.single, 8, &tok->tmpl.n_single));
        DAPT_CHECK(template_items(tok, json_object_get(pp, "pair"), sp, tok->tmpl.pair, 12, &tok->tmpl.n_pair));
        snprintf(tok->tmpl.name, sizeof tok->tmpl.name, "template");
        /* Name the two classic layouts, so that the identity (and checksum)
         * does not depend on how the file spells them. */
        if (tok->tmpl.n_single == 3 && tok->tmpl.single[1].id == -1) {
            tok_template t;
            int32_t cls = tok->tmpl.single[0].id, sep = tok->tmpl.single[2].id;
            for (int roberta = 0; roberta < 2; roberta++) {
                template_simple(&t, roberta ? "roberta" : "bert", cls, sep, roberta);
                if (t.n_single == tok->tmpl.n_single && t.n_pair == tok->tmpl.n_pair &&
                    !memcmp(t.single, tok->tmpl.single, t.n_single * sizeof t.single[0]) &&
                    !memcmp(t.pair, tok->tmpl.pair, t.n_pair * sizeof t.pair[0]))
                    tok->tmpl = t;
            }
        }
        return DAPT_OK;
    }
    return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "%s: post_processor type '%s' is not supported", tok->source, type);
}

/* Special ids by conventional names, overridden by tokenizer_config.json. */
static void find_specials(dapt_tokenizer *tok, json_t *cfg)
{
    dapt_special_ids *s = &tok->specials;
    int wp = tok->kind == DAPT_TOK_WORDPIECE;
    struct { int32_t *slot; const char *key; const char *dflt; } names[] = {
        {&s->cls, "cls_token", wp ? "[CLS]" : "<s>"},   {&s->sep, "sep_token", wp ? "[SEP]" : "</s>"},
        {&s->pad, "pad_token", wp ? "[PAD]" : "<pad>"}, {&s->mask, "mask_token", wp ? "[MASK]" : "<mask>"},
        {&s->unk, "unk_token", wp ? "[UNK]" : "<unk>"}, {&s->bos, "bos_token", wp ? "" : "<s>"},
        {&s->eos, "eos_token", wp ? "" : "</s>"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *name = names[i].dflt;
        const char *c = cfg ? token_name(json_object_get(cfg, names[i].key)) : NULL;
        if (c) name = c;
        *names[i].slot = *name ? dapt_tokenizer_token_to_id(tok, name) : -1;
    }
    if (!wp && s->bos < 0 && s->eos < 0) { /* GPT-2 */
        int32_t e = dapt_tokenizer_token_to_id(tok, "<|endoftext|>");
        s->bos = s->eos = e;
    }
    if (wp) s->unk = tok->wp.unk_id;
}

/* ---- the three formats ----------------------------------------------------- */

static dapt_status wordpiece_defaults(dapt_tokenizer *tok)
{
    tok->kind = DAPT_TOK_WORDPIECE;
    tok->wp.lowercase = tok->wp.strip_accents = tok->wp.clean_text = tok->wp.chinese_chars = 1;
    memcpy(tok->wp.prefix, "##", 3);
    tok->wp.prefix_len = 2;
    tok->wp.max_chars = 100;
    tok->wp.decode_cleanup = 1;
    return DAPT_OK;
}

static dapt_status load_tokenizer_json(dapt_tokenizer *tok, const char *path, json_t *cfg)
{
    json_t *root = NULL;
    DAPT_CHECK(load_json(path, &root));
    dapt_status st = DAPT_OK;
    json_t *model = json_object_get(root, "model");
    if (!json_is_object(model)) DAPT_THROW(DAPT_ERR_FORMAT, "%s: no \"model\" object", path);
    const char *type = json_string_value(json_object_get(model, "type"));
    if (!type) type = json_object_get(model, "merges") ? "BPE" : "WordPiece";
    json_t *added = json_object_get(root, "added_tokens");
    size_t extra = 0;
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *id = json_object_get(json_array_get(added, i), "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= INT32_MAX ||
            !json_is_string(json_object_get(json_array_get(added, i), "content")))
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: added_tokens[%zu] has no valid id or content", path, i);
        if ((size_t)json_integer_value(id) + 1 > extra) extra = (size_t)json_integer_value(id) + 1;
    }
    json_t *norm = json_object_get(root, "normalizer"), *pre = json_object_get(root, "pre_tokenizer");
    const char *norm_type = json_string_value(json_object_get(norm, "type"));
    const char *pre_type = json_string_value(json_object_get(pre, "type"));
    if (!strcmp(type, "WordPiece")) {
        wordpiece_defaults(tok);
        if (norm && !json_is_null(norm)) {
            if (!norm_type || strcmp(norm_type, "BertNormalizer"))
                DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported with WordPiece "
                           "(only BertNormalizer)", path, norm_type ? norm_type : "?");
            tok->wp.clean_text = json_flag(norm, "clean_text", 1);
            tok->wp.chinese_chars = json_flag(norm, "handle_chinese_chars", 1);
            tok->wp.lowercase = json_flag(norm, "lowercase", 1);
            tok->wp.strip_accents = json_flag(norm, "strip_accents", tok->wp.lowercase);
        } else {
            tok->wp.clean_text = tok->wp.chinese_chars = tok->wp.lowercase = tok->wp.strip_accents = 0;
        }
        if (!pre_type || strcmp(pre_type, "BertPreTokenizer"))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported with WordPiece "
                       "(only BertPreTokenizer)", path, pre_type ? pre_type : "null");
        DAPT_TRY(vocab_from_json(&tok->vocab, json_object_get(model, "vocab"), path, extra, json_array_size(added)));
        const char *prefix = json_string_value(json_object_get(model, "continuing_subword_prefix"));
        if (prefix) {
            if (strlen(prefix) >= sizeof tok->wp.prefix)
                DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: continuing_subword_prefix too long", path);
            snprintf(tok->wp.prefix, sizeof tok->wp.prefix, "%s", prefix);
            tok->wp.prefix_len = strlen(prefix);
        }
        json_t *mx = json_object_get(model, "max_input_chars_per_word");
        if (json_is_integer(mx) && json_integer_value(mx) > 0) tok->wp.max_chars = (size_t)json_integer_value(mx);
        const char *unk = json_string_value(json_object_get(model, "unk_token"));
        tok->wp.unk_id = dapt_tokenizer_token_to_id(tok, unk ? unk : "[UNK]");
        if (tok->wp.unk_id < 0)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: unk_token '%s' is not in the vocabulary", path, unk ? unk : "[UNK]");
        json_t *dec = json_object_get(root, "decoder");
        tok->wp.decode_cleanup = json_flag(dec, "cleanup", 1);
    } else if (!strcmp(type, "BPE")) {
        tok->kind = DAPT_TOK_BPE;
        if (norm && !json_is_null(norm))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported with BPE (only none)", path,
                       norm_type ? norm_type : "?");
        if (!pre_type || strcmp(pre_type, "ByteLevel"))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: pre_tokenizer '%s' is not supported with BPE (only ByteLevel)",
                       path, pre_type ? pre_type : "null");
        if (!json_flag(pre, "use_regex", 1))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: ByteLevel with use_regex false is not supported", path);
        tok->bpe.add_prefix_space = json_flag(pre, "add_prefix_space", 0);
        json_t *drop = json_object_get(model, "dropout");
        if (drop && !json_is_null(drop) && json_number_value(drop) != 0.0)
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: BPE dropout is not supported (ids would be random)", path);
        const char *cont = json_string_value(json_object_get(model, "continuing_subword_prefix"));
        const char *suf = json_string_value(json_object_get(model, "end_of_word_suffix"));
        if ((cont && *cont) || (suf && *suf) || json_flag(model, "byte_fallback", 0) ||
            json_flag(model, "ignore_merges", 0))
            DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: BPE with a subword prefix/suffix, byte_fallback or "
                       "ignore_merges is not supported", path);
        DAPT_TRY(vocab_from_json(&tok->vocab, json_object_get(model, "vocab"), path, extra, json_array_size(added)));
        DAPT_TRY(merges_from_json(tok, json_object_get(model, "merges"), path));
    } else {
        DAPT_THROW(DAPT_ERR_UNSUPPORTED, "%s: model type '%s' is not supported (WordPiece or BPE)", path, type);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i);
        const char *content = json_string_value(json_object_get(a, "content"));
        int32_t id = (int32_t)json_integer_value(json_object_get(a, "id"));
        if (!tok->vocab.tokens[id]) DAPT_TRY(tok_vocab_set(&tok->vocab, id, content, strlen(content)));
        else if (strcmp(tok->vocab.tokens[id], content))
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: added token '%s' has id %d, which the vocabulary gives to '%s'", path,
                       content, (int)id, tok->vocab.tokens[id]);
        DAPT_TRY(add_token(tok, content, id, json_flag(a, "special", 0), json_flag(a, "lstrip", 0),
                           json_flag(a, "rstrip", 0), json_flag(a, "single_word", 0), json_flag(a, "normalized", 0)));
    }
    DAPT_TRY(post_processor(tok, json_object_get(root, "post_processor")));
    find_specials(tok, cfg);
cleanup:
    json_decref(root);
    return st;
}

static dapt_status load_vocab_txt(dapt_tokenizer *tok, const char *path, json_t *cfg)
{
    wordpiece_defaults(tok);
    if (cfg) {
        tok->wp.lowercase = json_flag(cfg, "do_lower_case", 1);
        tok->wp.strip_accents = json_flag(cfg, "strip_accents", tok->wp.lowercase);
        tok->wp.chinese_chars = json_flag(cfg, "tokenize_chinese_chars", 1);
    }
    DAPT_CHECK(vocab_from_txt(&tok->vocab, path));
    find_specials(tok, cfg);
    tok->wp.unk_id = tok->specials.unk = dapt_tokenizer_token_to_id(
        tok, cfg && token_name(json_object_get(cfg, "unk_token")) ? token_name(json_object_get(cfg, "unk_token"))
                                                                   : "[UNK]");
    if (tok->wp.unk_id < 0) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no [UNK] token in the vocabulary", path);
    const dapt_special_ids *s = &tok->specials;
    int32_t ids[] = {s->pad, s->unk, s->cls, s->sep, s->mask};
    for (size_t i = 0; i < 5; i++)
        if (ids[i] >= 0) DAPT_CHECK(add_token(tok, tok->vocab.tokens[ids[i]], ids[i], 1, 0, 0, 0, 0));
    template_simple(&tok->tmpl, "bert", s->cls, s->sep, 0);
    return DAPT_OK;
}

static dapt_status load_vocab_merges(dapt_tokenizer *tok, const char *vocab, const char *merges, json_t *cfg)
{
    tok->kind = DAPT_TOK_BPE;
    json_t *root = NULL;
    DAPT_CHECK(load_json(vocab, &root));
    dapt_status st = vocab_from_json(&tok->vocab, root, vocab, 0, 0);
    json_decref(root);
    DAPT_CHECK(st);
    DAPT_CHECK(merges_from_txt(tok, merges));
    tok->bpe.add_prefix_space = cfg ? json_flag(cfg, "add_prefix_space", 0) : 0;
    find_specials(tok, cfg);
    const dapt_special_ids *s = &tok->specials;
    if (s->cls >= 0 && s->sep >= 0) { /* RoBERTa */
        int32_t ids[] = {s->cls, s->pad, s->sep, s->unk, s->mask};
        for (size_t i = 0; i < 5; i++)
            if (ids[i] >= 0)
                DAPT_CHECK(add_token(tok, tok->vocab.tokens[ids[i]], ids[i], 1, ids[i] == s->mask, 0, 0, 0));
        template_simple(&tok->tmpl, "roberta", s->cls, s->sep, 1);
    } else {
        if (s->eos >= 0) DAPT_CHECK(add_token(tok, tok->vocab.tokens[s->eos], s->eos, 1, 0, 0, 0, 1));
        template_simple(&tok->tmpl, "none", -1, -1, 0);
    }
    return DAPT_OK;
}

/* ---- identity and checksum ------------------------------------------------- */

void tok_finish_identity(dapt_tokenizer *tok)
{
    if (tok->kind == DAPT_TOK_WORDPIECE)
        snprintf(tok->identity, sizeof tok->identity,
                 "wordpiece lowercase=%d strip_accents=%d clean_text=%d chinese_chars=%d prefix=%s "
                 "max_chars=%zu vocab=%zu added=%zu template=%s",
                 tok->wp.lowercase, tok->wp.strip_accents, tok->wp.clean_text, tok->wp.chinese_chars,
                 tok->wp.prefix, tok->wp.max_chars, tok->vocab.n, tok->n_added, tok->tmpl.name);
    else
        snprintf(tok->identity, sizeof tok->identity,
                 "bpe byte_level add_prefix_space=%d vocab=%zu merges=%zu added=%zu template=%s",
                 tok->bpe.add_prefix_space, tok->vocab.n, tok->bpe.n_merges, tok->n_added, tok->tmpl.name);
    dapt_sha256 h;
    dapt_sha256_init(&h);
    char line[96];
    dapt_sha256_update(&h, tok->identity, strlen(tok->identity));
    dapt_sha256_update(&h, "\nvocab\n", 7);
    for (size_t id = 0; id < tok->vocab.n; id++) {
        if (!tok->vocab.tokens[id]) continue;
        int k = snprintf(line, sizeof line, "%zu\t", id);
        dapt_sha256_update(&h, line, (size_t)k);
        dapt_sha256_update(&h, tok->vocab.tokens[id], tok->vocab.lens[id]);
        dapt_sha256_update(&h, "\n", 1);
    }
    dapt_sha256_update(&h, "merges\n", 7);
    for (size_t r = 0; r < tok->bpe.n_merges; r++) {
        int k = snprintf(line, sizeof line, "%d %d\n", (int)tok->bpe.merge_pairs[r][0], (int)tok->bpe.merge_pairs[r][1]);
        dapt_sha256_update(&h, line, (size_t)k);
    }
    dapt_sha256_update(&h, "added\n", 6);
    for (size_t a = 0; a < tok->n_added; a++) {
        const tok_added *ad = &tok->added[a];
        int k = snprintf(line, sizeof line, "%d %d%d%d%d\t", (int)ad->id, ad->special, ad->lstrip, ad->rstrip,
                         ad->single_word);
        dapt_sha256_update(&h, line, (size_t)k);
        dapt_sha256_update(&h, ad->content, ad->len);
        dapt_sha256_update(&h, "\n", 1);
    }
    dapt_sha256_update(&h, "template\n", 9);
    for (size_t i = 0; i < tok->tmpl.n_single; i++) {
        int k = snprintf(line, sizeof line, "s %d %d\n", (int)tok->tmpl.single[i].id, (int)tok->tmpl.single[i].type_id);
        dapt_sha256_update(&h, line, (size_t)k);
    }
    for (size_t i = 0; i < tok->tmpl.n_pair; i++) {
        int k = snprintf(line, sizeof line, "p %d %d\n", (int)tok->tmpl.pair[i].id, (int)tok->tmpl.pair[i].type_id);
        dapt_sha256_update(&h, line, (size_t)k);
    }
    unsigned char d[32];
    dapt_sha256_final(&h, d);
    dapt_sha256_hex(d, tok->checksum);
}

static dapt_status join(char *out, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return DAPT_ERROR(DAPT_ERR_ARG, "%s: path too long", dir);
    return DAPT_OK;
}

static dapt_status load_any(dapt_tokenizer *tok, const char *path)
{
    char a[4096], b[4096], c[4096];
    json_t *cfg = NULL;
    dapt_status st = DAPT_OK;
    if (is_dir(path)) {
        DAPT_CHECK(join(c, sizeof c, path, "tokenizer_config.json"));
        if (exists(c)) DAPT_CHECK(load_json(c, &cfg));
        DAPT_TRY(join(a, sizeof a, path, "tokenizer.json"));
        if (exists(a)) {
            snprintf(tok->source, sizeof tok->source, "%s", a);
            DAPT_TRY(load_tokenizer_json(tok, a, cfg));
            goto cleanup;
        }
        DAPT_TRY(join(a, sizeof a, path, "vocab.txt"));
        if (exists(a)) {
            snprintf(tok->source, sizeof tok->source, "%s", a);
            DAPT_TRY(load_vocab_txt(tok, a, cfg));
            goto cleanup;
        }
        DAPT_TRY(join(a, sizeof a, path, "vocab.json"));
        DAPT_TRY(join(b, sizeof b, path, "merges.txt"));
        if (exists(a) || exists(b)) {
            if (!exists(a)) DAPT_THROW(DAPT_ERR_IO, "%s: missing (merges.txt is there, vocab.json is not)", a);
            if (!exists(b)) DAPT_THROW(DAPT_ERR_IO, "%s: missing (vocab.json is there, merges.txt is not)", b);
            snprintf(tok->source, sizeof tok->source, "%s", a);
            DAPT_TRY(load_vocab_merges(tok, a, b, cfg));
            goto cleanup;
        }
        DAPT_THROW(DAPT_ERR_IO, "%s: no tokenizer.json, vocab.txt or vocab.json+merges.txt in this directory", path);
    }
    if (!exists(path)) DAPT_THROW(DAPT_ERR_IO, "%s: cannot open tokenizer (no such file or directory)", path);
    snprintf(tok->source, sizeof tok->source, "%s", path);
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) DAPT_TRY(load_tokenizer_json(tok, path, NULL));
    else DAPT_TRY(load_vocab_txt(tok, path, NULL));
cleanup:
    json_decref(cfg);
    return st;
}

dapt_status dapt_tokenizer_load(const char *path, dapt_tokenizer **out)
{
    *out = NULL;
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_calloc((void **)&tok, 1, sizeof *tok, "tokenizer"));
    dapt_status st = DAPT_OK;
    DAPT_TRY(load_any(tok, path));
    if (tok->kind == DAPT_TOK_WORDPIECE) DAPT_TRY(tok_wordpiece_prepare(tok));
    else DAPT_TRY(tok_bpe_prepare(tok, tok->source));
    tok_finish_identity(tok);
    *out = tok;
    tok = NULL;
cleanup:
    dapt_tokenizer_free(tok);
    return st;
}

void dapt_tokenizer_free(dapt_tokenizer *tok)
{
    if (!tok) return;
    tok_vocab_free(&tok->vocab);
    tok_strmap_free(&tok->wp.cont);
    tok_strmap_free(&tok->wp.full);
    tok_bpe_free(&tok->bpe);
    for (size_t a = 0; a < tok->n_added; a++) free(tok->added[a].content);
    free(tok->added);
    free(tok);
}
