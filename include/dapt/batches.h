/* Training and held-out sequences from a prepared corpus file, and the
 * global sample order.
 *
 * The corpus (dapt prepare, docs/formats.md) is a flat token array plus
 * int64 document offsets.  Documents are split into train / held-out by
 * dapt_rng (seed, DAPT_RNG_SPLIT, 0, sample = document, 0) < eval_fraction.
 * Empty documents are skipped.  Within a split, documents keep file order and
 * become sequences of seq_len ids:
 *   concat    Hugging Face run_mlm's group_texts: every document wrapped as
 *             [CLS] doc [SEP] (<s> doc </s> for RoBERTa), all concatenated
 *             and cut into seq_len blocks, the last partial block dropped
 *             (run_mlm drops one remainder per 1000 documents; dapt one per
 *             split, so no text is lost at chunk-group borders);
 *   document  one document per sequence: [CLS] doc[:seq_len-2] [SEP], then
 *             padding (attention mask 0).
 * Every rank reads the offsets (small), computes the sequence -> token range
 * map itself, and reads only the token ranges of the sequences it asks for
 * (one hyperslab-union read per call, through its own serial HDF5 handle,
 * so ranks never wait for each other).
 *
 * Sample order: global sample g (g = step * batch + i) is train sequence
 * perm_e[g mod n] of epoch e = g div n, where perm_e is the permutation
 * dapt_rng_permutation(dapt_rng_make(seed, DAPT_RNG_SHUFFLE, e), 0, ., n).
 * It depends only on (seed, epoch), so the global batch is the same for any
 * number of ranks.
 *
 * Nothing in this header is collective. */
#ifndef DAPT_BATCHES_H
#define DAPT_BATCHES_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/share.h"
#include "dapt/status.h"

/* Dataset names inside the corpus file (docs/formats.md). */
#define DAPT_CORPUS_TOKENS "tokens"
#define DAPT_CORPUS_OFFSETS "doc_offsets"

typedef enum { DAPT_SPLIT_TRAIN = 0, DAPT_SPLIT_EVAL = 1 } dapt_split;
typedef enum { DAPT_PACK_CONCAT = 0, DAPT_PACK_DOCUMENT = 1 } dapt_packing;

typedef struct dapt_seq_spec {
    int64_t seq_len;
    dapt_packing packing;
    double eval_fraction;
    uint64_t seed;
    int32_t begin_id; /* [CLS] / <s>, or -1 for no begin token */
    int32_t end_id;   /* [SEP] / </s>, or -1 for no end token */
    int32_t pad_id;   /* padding for document packing */
} dapt_seq_spec;

typedef struct dapt_sequences dapt_sequences;

/* Opens the corpus file, reads the offsets, decides the split and builds the
 * sequence map.  Errors name the file and the dataset. */
dapt_status dapt_sequences_open(const char *path, const dapt_seq_spec *spec, dapt_sequences **out);
void dapt_sequences_close(dapt_sequences *s);

struct dapt_tokenizer;

/* Refuses a corpus file (path) prepared with another tokenizer than tok
 * (`whose` names tok in the message: "the model's", a tokenizer path);
 * a file without a tokenizer checksum passes. */
dapt_status dapt_sequences_check_tokenizer(const char *path, const char *whose, const struct dapt_tokenizer *tok);

/* Tokens per sequence (the spec's seq_len). */
int64_t dapt_sequences_seq_len(const dapt_sequences *s);
/* Number of sequences in a split; documents in it; tokens in the file. */
int64_t dapt_sequences_count(const dapt_sequences *s, dapt_split split);
int64_t dapt_sequences_docs(const dapt_sequences *s, dapt_split split);
int64_t dapt_sequences_file_tokens(const dapt_sequences *s);
/* The largest token id + 1 the file declares (attribute vocab_size), or 0. */
int64_t dapt_sequences_vocab(const dapt_sequences *s);
/* File document index of the first token of sequence k of a split (-1 when
 * k is out of range). */
int64_t dapt_sequences_doc(const dapt_sequences *s, dapt_split split, int64_t k);

/* The file document indices of a split's documents, ascending; *n of them.
 * The array belongs to s. */
const int64_t *dapt_sequences_split_docs(const dapt_sequences *s, dapt_split split, int64_t *n);

/* Reads sequences idx[0..n) of a split into ids[n * seq_len] and
 * attention[n * seq_len] (1 = token, 0 = padding). */
dapt_status dapt_sequences_read(dapt_sequences *s, dapt_split split, const int64_t *idx, int64_t n,
                                int32_t *ids, int32_t *attention);

/* The global sample order over n train sequences (caches one epoch). */
typedef struct dapt_order {
    uint64_t seed;
    int64_t n;
    int64_t epoch; /* cached epoch, -1 = none */
    uint64_t *perm;
} dapt_order;

dapt_status dapt_order_init(dapt_order *o, uint64_t seed, int64_t n);
void dapt_order_free(dapt_order *o);
/* Train sequence index of global sample g; epoch of g in *epoch (may be NULL). */
int64_t dapt_order_at(dapt_order *o, uint64_t g, int64_t *epoch);

/* dapt_share (the even split of n items over R ranks) is in share.h. */

#endif
