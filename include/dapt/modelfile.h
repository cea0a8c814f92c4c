/* dapt's model file (HDF5): what `dapt import` writes, training starts from
 * and checkpoints extend.  Layout (docs/formats.md has the full table):
 *
 *   /                 attributes: format = "dapt-model", format_version = 1,
 *                     arch ("bert" | "roberta"), the model configuration
 *                     under Hugging Face's field names (hidden_size, ...),
 *                     has_pooler, has_mlm_head, num_labels, labels (JSON
 *                     array, classifiers only), hf_architecture,
 *                     hf_extra_config (JSON object of config.json fields dapt
 *                     does not interpret, kept for export), dapt_config
 *   /params/<name>    float32 at the tensor's global shape, dapt's names
 *                     (include/dapt/params.h)
 *   /tokenizer/<file> uint8 bytes of tokenizer.json, vocab.txt, ...
 *
 * Checkpoints add their own groups next to these; a reader ignores groups
 * it does not know but refuses unknown datasets inside /params. */
#ifndef DAPT_MODELFILE_H
#define DAPT_MODELFILE_H

#include <stddef.h>

#include "dapt/h5io.h"
#include "dapt/params.h"
#include "dapt/status.h"

#define DAPT_MODELFILE_FORMAT "dapt-model"
#define DAPT_MODELFILE_VERSION 1
#define DAPT_MODELFILE_MAX_BLOBS 8

/* A file carried along byte for byte (tokenizer files). */
typedef struct dapt_blob {
    char name[64];
    unsigned char *data;
    size_t size;
} dapt_blob;

/* What a model file holds besides the architecture and the weights. */
typedef struct dapt_model_meta {
    char hf_architecture[64]; /* "BertForMaskedLM", ...; "" when unknown */
    char *hf_extra_config;    /* JSON object text or NULL */
    char **labels;            /* num_labels class names, or NULL */
    dapt_blob tokenizer[DAPT_MODELFILE_MAX_BLOBS];
    size_t ntokenizer;
} dapt_model_meta;

/* Frees what the meta owns and zeroes it.  Not collective. */
void dapt_model_meta_free(dapt_model_meta *meta);

/* Everything of dapt_modelfile_put but the /params datasets (the group is
 * created empty): for writers that put each tensor in themselves, e.g.
 * checkpoints written as per-rank hyperslabs.  Collective over the file's
 * communicator. */
dapt_status dapt_modelfile_put_header(dapt_h5file *f, const dapt_model_config *mc, const dapt_model_meta *meta);

/* Writes the configuration attributes, /params and /tokenizer into an open
 * (created) file.  Every rank passes the same mc, table and meta; params
 * need only be valid on rank 0, which writes them (the others take part
 * with empty slabs).  Collective over the file's communicator. */
dapt_status dapt_modelfile_put(dapt_h5file *f, const dapt_model_config *mc, const dapt_param_table *table,
                               const float *params, const dapt_model_meta *meta);

/* Reads the configuration attributes (and meta, when non-NULL: labels,
 * extra config, tokenizer files).  Refuses a file that is not a dapt model
 * file or has another format_version.  Collective over the file's
 * communicator (tokenizer files are read collectively). */
dapt_status dapt_modelfile_get_config(const dapt_h5file *f, dapt_model_config *mc, dapt_model_meta *meta);

/* Reads every tensor of table into params (table->total floats, padding
 * zeroed), checking each dataset's shape, and refuses datasets in /params
 * the table does not have.  Collective over the file's communicator. */
dapt_status dapt_modelfile_get_params(const dapt_h5file *f, const dapt_param_table *table, float *params);

/* Convenience: open, read config, build the table, allocate (*params,
 * malloc'd) and read.  Collective over comm. */
dapt_status dapt_modelfile_load(MPI_Comm comm, const char *path, dapt_model_config *mc, dapt_param_table *table,
                                float **params, dapt_model_meta *meta);

/* Convenience: create, put, commit (abort on failure).  Collective over comm. */
dapt_status dapt_modelfile_save(MPI_Comm comm, const char *path, int force, const dapt_config *cfg,
                                const dapt_model_config *mc, const dapt_param_table *table, const float *params,
                                const dapt_model_meta *meta);


#endif
