/* Corpus and task preparation: raw text -> one HDF5 file (docs/formats.md,
 * "Prepared corpus" and "Prepared task").
 *
 * Inputs are split among the ranks by byte ranges; a document (or task
 * example) belongs to the rank whose range holds its first byte, so every
 * document is tokenized exactly once and the output, written collectively in
 * global document order, is byte-for-byte the same whatever the number of
 * ranks.  `.gz` inputs are inflated by every rank up to the end of its range
 * (gzip streams cannot be entered in the middle).
 *
 * Both entry points are collective over comm: every rank passes the same
 * arguments, and every rank returns the same status with the same message
 * (the first failing rank's), so the caller can report it once. */
#ifndef DAPT_CORPUS_H
#define DAPT_CORPUS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/config.h"
#include "dapt/status.h"
#include "dapt/tokenizer.h"

typedef enum dapt_doc_sep {
    DAPT_DOC_LINE = 0, /* one document per line */
    DAPT_DOC_BLANK = 1 /* documents are runs of lines separated by empty lines */
} dapt_doc_sep;

typedef enum dapt_task_format {
    DAPT_TASK_AUTO = 0, /* by extension: .jsonl/.json(.gz) -> JSONL, otherwise TSV */
    DAPT_TASK_TSV,
    DAPT_TASK_JSONL
} dapt_task_format;

typedef struct dapt_prepare_opts {
    const dapt_tokenizer *tok;
    const char *tokenizer_path; /* recorded as given */
    const char *const *inputs;  /* n_inputs paths, plain or .gz */
    size_t n_inputs;
    const char *output;
    int force;                  /* replace an existing output */
    const dapt_config *cfg;     /* stored as "dapt_config"; task max_length */
    dapt_doc_sep doc_sep;       /* corpus mode only */
    dapt_task_format format;    /* task mode only */
    int regression;             /* task mode: labels are float targets */
} dapt_prepare_opts;

typedef struct dapt_prepare_stats {
    int64_t n_docs;       /* documents (corpus) or examples (task) written */
    int64_t n_tokens;     /* ids written */
    int64_t n_bytes;      /* input bytes after decompression */
    int64_t n_skipped;    /* documents with no tokens (whitespace only) */
    int64_t n_truncated;  /* task examples cut to max_length */
    int n_labels;         /* task mode */
    /* Wall seconds on rank 0 of each phase: hashing/size scan, loading and
     * tokenizing this rank's part (then waiting for the slowest), writing. */
    double t_scan, t_tokenize, t_write;
} dapt_prepare_stats;

/* Raw text -> prepared corpus: flat token array in the smallest unsigned
 * type holding the vocabulary, document offsets, per-source offsets and
 * provenance attributes.  Documents with no tokens are skipped (counted in
 * n_skipped).  Errors: missing/unreadable/empty input, invalid UTF-8 or a
 * NUL byte (file:line), truncated or corrupt .gz, existing output without
 * force, write failures (the temporary file is removed).  Collective. */
dapt_status dapt_prepare_corpus(MPI_Comm comm, const dapt_prepare_opts *opts,
                                dapt_prepare_stats *stats);

/* Labelled examples -> prepared task.  Each input is one split (group named
 * after the file: "train.tsv" -> /train); labels are mapped to ids by the
 * sorted union of names over all inputs, so every split agrees.  TSV lines
 * are `text<TAB>label` or `text_a<TAB>text_b<TAB>label`; JSONL objects have
 * "text" (or "text_a"), optional "text_b" (or "text_pair"), and "label"
 * (string or integer).  Examples are encoded with the model's template and
 * truncated (longest first) to cfg->tokenizer.max_length.  With
 * opts->regression every label must be one finite number (a JSON number or
 * a string holding one; anything else is refused naming file and line):
 * labels are stored as float32, n_labels is 1 (label name "LABEL_0"), there
 * are no label_counts, and the root attribute task_type = "regression"
 * says so.  Collective. */
dapt_status dapt_prepare_task(MPI_Comm comm, const dapt_prepare_opts *opts,
                              dapt_prepare_stats *stats);

/* The on-disk id type for a vocabulary: 1, 2 or 4 bytes.  Not collective. */
int dapt_corpus_id_bytes(size_t vocab_size);

/* Domain-salient tokens (src/data/salient.c; the guide set of MOMETAS's
 * emlm, docs/algorithms.md): ids far more frequent in a domain corpus than
 * in a general one, stored in the domain corpus as the group /salient
 * (docs/formats.md).  With c_d, c_g an id's counts and N_d, N_g the
 * corpora's token counts over a vocabulary of V ids, the add-one smoothed
 * ratio is  r = ((c_d + 1) / (N_d + V)) / ((c_g + 1) / (N_g + V)).  The guide
 * set is the `top` ids of largest r among those with r > 1, c_d >= min_count
 * and not special, ties to the smaller id.  The order only depends on
 * (c_d + 1) / (c_g + 1), compared exactly in integers. */
typedef struct dapt_salient_opts {
    const char *general; /* prepared general corpus (same tokenizer) */
    int64_t top;         /* K: at most this many ids */
    int64_t min_count;   /* domain occurrences an id needs */
} dapt_salient_opts;

#define DAPT_SALIENT_GROUP "salient"
#define DAPT_SALIENT_TOP 1000
#define DAPT_SALIENT_MIN_COUNT 5

/* counts[0..vocab) = occurrences of each id in the corpus file's /tokens
 * (each rank counts a share, summed over comm).  An id >= vocab is
 * DAPT_ERR_FORMAT naming the file.  Collective over comm. */
dapt_status dapt_corpus_token_counts(MPI_Comm comm, const char *path, int64_t vocab, int64_t *counts);

/* The guide set of counts dom, gen [vocab] (ids never chosen: special[0..n_special)):
 * ids[0..*n) most salient first, their log r in log_ratio (both hold vocab
 * entries at most).  Not collective. */
dapt_status dapt_salient_select(const int64_t *dom, const int64_t *gen, int64_t vocab, const int32_t *special,
                                size_t n_special, const dapt_salient_opts *o, int32_t *ids, double *log_ratio,
                                int64_t *n);

/* Counts the corpus at path and opts->general, selects the guide set and
 * adds /salient to the file at path (rank 0 writes; the file must not be in
 * use).  Refuses a general corpus prepared with another tokenizer.
 * tok: the tokenizer both were prepared with (vocabulary, specials).
 * Collective over comm; every rank gets the same status. */
dapt_status dapt_corpus_add_salient(MPI_Comm comm, const char *path, const dapt_tokenizer *tok,
                                    const dapt_salient_opts *opts);

/* guide[0..vocab) = 1 for the ids of the guide set stored in the corpus at
 * path, 0 elsewhere; *n = their number.  Refuses (one line) a corpus without
 * /salient and one whose guide set was made for another vocabulary size.
 * Not collective. */
dapt_status dapt_corpus_read_guide(const char *path, int64_t vocab, uint8_t *guide, int64_t *n);

#endif
