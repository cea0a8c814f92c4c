/* The tokenizer files of a Hugging Face export: what a model file carries,
 * completed so that AutoTokenizer.from_pretrained loads the directory
 * unchanged and encodes as dapt did.
 *
 * tokenizer_config.json and special_tokens_map.json are always written
 * from the tokenizer dapt actually loads, never copied: a copied
 * model_max_length may exceed the exported model's positions (then
 * tokenizer(text, truncation=True) lets too long inputs through and the
 * forward pass fails), and BertTokenizerFast rebuilds its normaliser when
 * do_lower_case / strip_accents / tokenize_chinese_chars disagree with
 * tokenizer.json, so they must say what the tokenizer does. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/hf.h"
#include "tok_internal.h"

static dapt_blob *find_blob(dapt_model_meta *meta, const char *name)
{
    for (size_t i = 0; i < meta->ntokenizer; i++)
        if (!strcmp(meta->tokenizer[i].name, name)) return &meta->tokenizer[i];
    return NULL;
}

/* Replaces (or adds) file name with data (malloc'd; meta takes it). */
static dapt_status put_blob(dapt_model_meta *meta, const char *name, char *data, size_t size)
{
    dapt_blob *b = find_blob(meta, name);
    if (!b) {
        if (meta->ntokenizer == DAPT_MODELFILE_MAX_BLOBS) {
            free(data);
            return DAPT_ERROR(DAPT_ERR_INTERNAL, "more than %d tokenizer files", DAPT_MODELFILE_MAX_BLOBS);
        }
        b = &meta->tokenizer[meta->ntokenizer++];
        snprintf(b->name, sizeof b->name, "%s", name);
    } else {
        free(b->data);
    }
    b->data = (unsigned char *)data;
    b->size = size;
    return DAPT_OK;
}

/* Hands a finished buffer to meta as file name, or frees it when making it
 * failed (st). */
static dapt_status put_buf(dapt_model_meta *meta, const char *name, tok_buf *b, dapt_status st)
{
    if (st != DAPT_OK) {
        tok_buf_free(b);
        return st;
    }
    return put_blob(meta, name, b->data, b->len);
}

/* Every id's token, in id order: vocab.txt needs one line per id. */
static dapt_status vocab_txt(const dapt_tokenizer *tok, dapt_model_meta *meta)
{
    tok_buf b = {0};
    dapt_status st = DAPT_OK;
    for (size_t id = 0; id < tok->vocab.n && st == DAPT_OK; id++) {
        if (!tok->vocab.tokens[id])
            st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: id %zu has no token, so the vocabulary cannot be written as vocab.txt",
                            tok->source, id);
        if (st == DAPT_OK) st = tok_buf_append(&b, tok->vocab.tokens[id], tok->vocab.lens[id]);
        if (st == DAPT_OK) st = tok_buf_append(&b, "\n", 1);
    }
    return put_buf(meta, "vocab.txt", &b, st);
}

/* vocab.json (token -> id) and merges.txt (rank order) of a byte-level BPE. */
static dapt_status vocab_merges(const dapt_tokenizer *tok, dapt_model_meta *meta)
{
    json_t *vocab = json_object();
    int bad = !vocab;
    for (size_t id = 0; !bad && id < tok->vocab.n; id++)
        if (tok->vocab.tokens[id])
            bad = json_object_set_new(vocab, tok->vocab.tokens[id], json_integer((json_int_t)id)) != 0;
    char *text = bad ? NULL : json_dumps(vocab, JSON_COMPACT);
    json_decref(vocab);
    if (!text) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot build vocab.json");
    DAPT_CHECK(put_blob(meta, "vocab.json", text, strlen(text)));
    tok_buf b = {0};
    dapt_status st = tok_buf_append(&b, "#version: 0.2\n", 14);
    for (size_t r = 0; r < tok->bpe.n_merges && st == DAPT_OK; r++) {
        const int32_t *pair = tok->bpe.merge_pairs[r];
        st = tok_buf_append(&b, tok->vocab.tokens[pair[0]], tok->vocab.lens[pair[0]]);
        if (st == DAPT_OK) st = tok_buf_append(&b, " ", 1);
        if (st == DAPT_OK) st = tok_buf_append(&b, tok->vocab.tokens[pair[1]], tok->vocab.lens[pair[1]]);
        if (st == DAPT_OK) st = tok_buf_append(&b, "\n", 1);
    }
    return put_buf(meta, "merges.txt", &b, st);
}

/* The special tokens as special_tokens_map.json names them; those the
 * tokenizer lacks are left out. */
static int set_specials(const dapt_tokenizer *tok, json_t *obj)
{
    const dapt_special_ids *s = &tok->specials;
    const struct {
        const char *key;
        int32_t id;
    } named[] = {{"bos_token", s->bos}, {"cls_token", s->cls}, {"eos_token", s->eos}, {"mask_token", s->mask},
                 {"pad_token", s->pad}, {"sep_token", s->sep}, {"unk_token", s->unk}};
    int bad = 0;
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (tok->kind == DAPT_TOK_WORDPIECE && (!strcmp(named[i].key, "bos_token") || !strcmp(named[i].key, "eos_token")))
            continue; /* BertTokenizer has neither */
        const char *t = named[i].id >= 0 ? dapt_tokenizer_id_to_token(tok, named[i].id) : NULL;
        if (t) bad |= json_object_set_new(obj, named[i].key, json_string(t));
    }
    return bad;
}

/* The tokenizer class's own arguments, as its __init__ reads them. */
static int set_class_args(const dapt_tokenizer *tok, json_t *cfg)
{
    int bad = 0;
    if (tok->kind == DAPT_TOK_WORDPIECE) {
        const tok_wordpiece *wp = &tok->wp;
        bad |= json_object_set_new(cfg, "tokenizer_class", json_string("BertTokenizer"));
        bad |= json_object_set_new(cfg, "do_lower_case", json_boolean(wp->lowercase));
        bad |= json_object_set_new(cfg, "do_basic_tokenize", json_true());
        /* null: accents follow do_lower_case, as in Hugging Face's default */
        bad |= json_object_set_new(cfg, "strip_accents",
                                   wp->strip_accents == wp->lowercase ? json_null() : json_boolean(wp->strip_accents));
        bad |= json_object_set_new(cfg, "tokenize_chinese_chars", json_boolean(wp->chinese_chars));
        bad |= json_object_set_new(cfg, "never_split", json_null());
        bad |= json_object_set_new(cfg, "clean_up_tokenization_spaces", json_boolean(wp->decode_cleanup));
    } else {
        /* With <s> and </s> the RoBERTa template; without, GPT-2's (none),
         * as the loaders decide (tokenizer_load.c). */
        const int roberta = tok->specials.cls >= 0 && tok->specials.sep >= 0;
        bad |= json_object_set_new(cfg, "tokenizer_class", json_string(roberta ? "RobertaTokenizer" : "GPT2Tokenizer"));
        bad |= json_object_set_new(cfg, "add_prefix_space", json_boolean(tok->bpe.add_prefix_space));
        bad |= json_object_set_new(cfg, "errors", json_string("replace"));
        if (roberta) bad |= json_object_set_new(cfg, "trim_offsets", json_true());
    }
    return bad;
}

static dapt_status put_json(dapt_model_meta *meta, const char *name, json_t *value)
{
    char *text = NULL;
    dapt_status st = dapt_hf_json_pretty(value, &text);
    json_decref(value);
    DAPT_CHECK(st);
    return put_blob(meta, name, text, strlen(text));
}

static dapt_status config_files(const dapt_tokenizer *tok, int64_t model_max_length, dapt_model_meta *meta)
{
    json_t *map = json_object(), *cfg = json_object();
    int bad = !map || !cfg;
    if (!bad) bad |= set_specials(tok, map) | set_specials(tok, cfg) | set_class_args(tok, cfg);
    if (!bad) bad |= json_object_set_new(cfg, "model_max_length", json_integer((json_int_t)model_max_length));
    if (bad) {
        json_decref(map);
        json_decref(cfg);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot build tokenizer_config.json");
    }
    dapt_status st = put_json(meta, "special_tokens_map.json", map);
    if (st != DAPT_OK) {
        json_decref(cfg);
        return st;
    }
    return put_json(meta, "tokenizer_config.json", cfg);
}

dapt_status dapt_model_tokenizer_hf(dapt_model_meta *meta, const char *model_path, int64_t model_max_length)
{
    dapt_tokenizer *tok = NULL;
    DAPT_CHECK(dapt_model_tokenizer(meta, model_path, &tok));
    dapt_status st = DAPT_OK;
    if (tok->kind == DAPT_TOK_WORDPIECE && !find_blob(meta, "vocab.txt")) st = vocab_txt(tok, meta);
    else if (tok->kind == DAPT_TOK_BPE && !(find_blob(meta, "vocab.json") && find_blob(meta, "merges.txt")))
        st = vocab_merges(tok, meta);
    if (st == DAPT_OK) st = config_files(tok, model_max_length, meta);
    dapt_tokenizer_free(tok);
    return st;
}
