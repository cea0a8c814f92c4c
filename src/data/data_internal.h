/* Shared by the src/data files: input sources split by byte ranges. */
#ifndef DAPT_DATA_INTERNAL_H
#define DAPT_DATA_INTERNAL_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/corpus.h"
#include "dapt/status.h"

/* What every rank knows about one input after src_scan. */
typedef struct src_info {
    int64_t size;     /* bytes of text (after decompression) */
    int64_t raw_size; /* bytes on disk */
    int gz;           /* gzip stream (by magic bytes, not by name) */
    char sha256[65];  /* of the bytes on disk */
} src_info;

/* Stats, hashes and (for gzip) inflates every input once, the work spread
 * over the ranks, and shares the results.  Refuses missing, unreadable,
 * empty and corrupt/truncated gzip inputs.  Collective; same status on all
 * ranks. */
dapt_status src_scan(MPI_Comm comm, const char *const *paths, size_t n, src_info *info);

/* A rank's documents in one input: text[0..len) holds whole documents,
 * starting at file offset `base`; the first starts at text[0]. */
typedef struct src_part {
    char *text;
    size_t len;
    int64_t base;
} src_part;

/* Loads the documents whose first byte lies in [s, e) of input `path`
 * (see corpus.h for the rule), reading past e to finish the last one.
 * Not collective. */
dapt_status src_load(const char *path, const src_info *info, dapt_doc_sep sep, int64_t s,
                     int64_t e, src_part *part);
void src_part_free(src_part *part);

/* Iterates documents of a loaded part: *pos is the cursor (start at 0);
 * sets doc/len (line terminators excluded, internal newlines of a blank-
 * separated document kept) and returns 1, or 0 at the end. */
int src_next_doc(const src_part *part, dapt_doc_sep sep, size_t *pos, const char **doc, size_t *len);

/* Checks text[0..len) is UTF-8 without NUL bytes; on failure returns the
 * offset of the first bad byte in *bad and a short cause.  Not collective. */
int src_check_text(const char *text, size_t len, size_t *bad, const char **why);

/* 1-based line number of file offset `off` (re-reads the input; error path). */
int64_t src_line_of(const char *path, int64_t off);

/* This rank's share [*s, *e) of total bytes: dapt_share (share.h) as a
 * begin/end pair.  The cut does not change the output (a document belongs
 * to the range holding its first byte).  Not collective. */
void data_rank_range(int64_t total, int rank, int size, int64_t *s, int64_t *e);

/* Creates a 1-D dataset of unsigned ids (1, 2 or 4 bytes per id) of global
 * length n and writes this rank's slice [start, start + count) through
 * dapt_h5_write_blocks (independent transfers); ids are narrowed from int32
 * (the caller has checked the range).  Collective. */
typedef struct dapt_h5file dapt_h5file;
dapt_status data_write_ids(dapt_h5file *f, const char *name, int id_bytes, int64_t n,
                           int64_t start, int64_t count, const int32_t *ids);
/* The same for nb ascending, disjoint blocks [starts[k], +counts[k]) taken
 * from consecutive ids.  Collective. */
dapt_status data_write_id_blocks(dapt_h5file *f, const char *name, int id_bytes, int64_t n, size_t nb,
                                 const int64_t *starts, const int64_t *counts, const int32_t *ids);
/* Work units of dapt prepare: the input bytes are cut into `data_chunks`
 * equal ranges and rank r takes ranges r, r + size, r + 2 size, ...  Many
 * interleaved ranges per rank even out text that costs more to tokenize
 * in one part of the corpus than another (the output does not depend on
 * the cut: a document belongs to the range holding its first byte). */
int64_t data_chunks(int64_t total_bytes, int size);

/* Root attributes shared by corpus and task files, in a fixed order:
 * format, format_version, tokenizer_path, tokenizer_identity,
 * tokenizer_checksum, vocab_size, token_dtype, sources, n_sources.
 * Collective over the file's communicator. */
dapt_status data_provenance_attrs(dapt_h5file *f, const dapt_prepare_opts *o, const src_info *info,
                                  const char *format);

#endif
