/* Hugging Face model directories: import (config.json + model.safetensors +
 * tokenizer files -> dapt configuration, parameter buffer and meta) and
 * export (the reverse, in a directory `from_pretrained` loads).
 *
 * Architectures: BertForMaskedLM, RobertaForMaskedLM,
 * BertForSequenceClassification, RobertaForSequenceClassification, BertModel,
 * RobertaModel (model_type "bert" / "roberta"; hidden_act "gelu";
 * position_embedding_type "absolute").  The name mapping (docs/formats.md):
 *   dapt embeddings.word         <-> [bert.|roberta.]embeddings.word_embeddings.weight
 *   dapt layer.L.attn.q.weight   <-> ...encoder.layer.L.attention.self.query.weight
 *   dapt mlm.dense.weight        <-> cls.predictions.transform.dense.weight / lm_head.dense.weight
 *   dapt cls.weight              <-> classifier.weight (BERT)
 *   dapt cls.out.weight          <-> classifier.out_proj.weight (RoBERTa)
 * and so on for every tensor of params.h.  Bare models carry no prefix on
 * export; on import the prefix is detected.
 *
 * Import refuses with one line: an unknown architecture or model_type, an
 * activation other than gelu, missing or unexpected tensors, wrong shapes,
 * unsupported dtypes, a decoder that is not tied to the word embeddings,
 * and any malformed safetensors file (see safetensors.h).  F16, BF16 and
 * F64 weights become float32.  Tolerated and dropped: the I64
 * embeddings.position_ids / token_type_ids buffers, the tied decoder
 * weight and bias when equal to what they are tied to, and the
 * next-sentence head cls.seq_relationship.* of BERT pre-training
 * checkpoints (with a warning).
 *
 * Nothing here is collective: the commands run it on one rank. */
#ifndef DAPT_HF_H
#define DAPT_HF_H

#include <stddef.h>

#include "dapt/modelfile.h"
#include "dapt/params.h"
#include "dapt/status.h"

/* Reads dir/config.json, dir/model.safetensors and the tokenizer files.
 * On success *params (malloc'd, table->total floats) holds the weights and
 * table is built; meta owns copies of the tokenizer files. */
dapt_status dapt_hf_import(const char *dir, dapt_model_config *mc, dapt_param_table *table, float **params,
                           dapt_model_meta *meta);

typedef struct dapt_hf_export_opts {
    int force;       /* replace an existing dir (a previous export or an empty directory) */
    int keep_pooler; /* write the pooler even where the exported class has none */
} dapt_hf_export_opts;

/* Writes dir (through a temporary directory renamed into place; refuses an
 * existing dir unless opts->force, and with force anything but a directory
 * that is empty or holds config.json and model.safetensors): config.json,
 * model.safetensors (float32, Hugging Face names, tied decoder omitted as
 * Hugging Face saves it) and the tokenizer files of meta, byte for byte
 * (dapt_model_tokenizer_hf in tokenizer.h completes them first).  The
 * pooler is written only when the class has one (dapt_hf_exports_pooler),
 * so that from_pretrained finds no unexpected tensor. */
dapt_status dapt_hf_export(const char *dir, const dapt_hf_export_opts *opts, const dapt_model_config *mc,
                           const dapt_param_table *table, const float *params, const dapt_model_meta *meta);

/* Whether an export of mc carries the pooler: only when mc has one and
 * the Hugging Face class reads it -- BertModel, RobertaModel and
 * BertForSequenceClassification; *ForMaskedLM and
 * RobertaForSequenceClassification build the encoder with
 * add_pooling_layer=False -- or keep_pooler asks for it (e.g. to fine-tune
 * the export later with a pre-trained pooler). */
int dapt_hf_exports_pooler(const dapt_model_config *mc, int keep_pooler);

/* The Hugging Face class of a configuration ("BertForMaskedLM", ...);
 * DAPT_ERR_UNSUPPORTED for a model with both an MLM and a classifier head. */
dapt_status dapt_hf_class_name(const dapt_model_config *mc, char *out, size_t len);

/* Hugging Face's name for dapt tensor name, with prefix "bert." /
 * "roberta." / "" for the encoder and embeddings. */
dapt_status dapt_hf_tensor_name(dapt_arch arch, const char *prefix, const char *name, char *out, size_t len);

/* Writes a JSON value the way Python's json.dumps(indent=2, sort_keys=True)
 * does (shortest round-tripping floats, ASCII escapes); *out malloc'd. */
dapt_status dapt_hf_json_pretty(const void *json_value, char **out);

#endif
