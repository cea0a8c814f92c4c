/* What each kind of file dapt writes is: its format name and version, and
 * one table describing its datasets (the "description" / "units"
 * attributes; docs/formats.md lists the same). */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/h5io.h"

static const dapt_h5_desc model_datasets[] = {
    {"params/aux.*", "auxiliary tensor of a training objective (e.g. a teacher), global shape", NULL},
    {"params/*", "model parameter at its global shape, PyTorch layout [out, in]", NULL},
    {"optim/exp_avg/*", "AdamW first moment (mean of gradients) of the parameter of the same name", NULL},
    {"optim/exp_avg_sq/*", "AdamW second moment (mean of squared gradients) of the parameter of the same name",
     NULL},
    {"tokenizer/*", "tokenizer file, copied byte for byte", "bytes"},
    {NULL, NULL, NULL}};

static const dapt_h5_desc corpus_datasets[] = {
    {"tokens", "token ids of every document, concatenated in input order, no special tokens", "token id"},
    {"doc_offsets", "document i is tokens[doc_offsets[i]:doc_offsets[i+1]]", "tokens"},
    {"source_doc_offsets", "the documents of input k are [source_doc_offsets[k], source_doc_offsets[k+1])",
     "documents"},
    {NULL, NULL, NULL}};

static const dapt_h5_desc task_datasets[] = {
    {"label_names", "label id k is label_names[k] (sorted union over the splits)", NULL},
    {"*/input_ids", "token ids of every example with special tokens, concatenated", "token id"},
    {"*/offsets", "example i is input_ids[offsets[i]:offsets[i+1]]", "tokens"},
    {"*/type_ids", "token type id of every token (0 = first text, 1 = second)", NULL},
    {"*/labels", "label id of each example (classification) or target value (regression)", NULL},
    {"*/label_counts", "examples per label in this split", "examples"},
    {NULL, NULL, NULL}};

static const dapt_h5_desc importance_datasets[] = {
    {"importance/*/*/raw", "accumulated gradient of the loss w.r.t. each unit's gate, divided by the tokens seen",
     "loss per token"},
    {"importance/*/*/normalized", "per layer |tanh(z-score)| of raw: the unit's importance in [0, 1]", "1"},
    {"softmask/*/*", "importance the domain was trained with: element-wise max of the listed sources", "1"},
    {NULL, NULL, NULL}};

static const dapt_h5_desc representations_datasets[] = {
    {"*/z1", "full view: mean over non-padding positions of the last hidden state, per held-out sequence", NULL},
    {"*/z3", "general view: z1 with every unit scaled by the domain's soft-mask importance", NULL},
    {"*/doc_ids", "corpus document index of each sequence's first token", "document"},
    {NULL, NULL, NULL}};

static const dapt_h5_desc fisher_datasets[] = {
    {"fisher", "EWC Fisher diagonal summed over the domains so far, flat parameter order", NULL},
    {"anchor", "parameters at the end of the domain, flat parameter order", NULL},
    {NULL, NULL, NULL}};

static const dapt_h5_desc heldout_datasets[] = {
    {"documents", "corpus document indices of the held-out documents, ascending", "document"},
    {"sequence_doc", "corpus document index of the first token of each held-out sequence, in held-out order",
     "document"},
    {NULL, NULL, NULL}};

static const dapt_h5_desc eval_datasets[] = {
    {"confusion", "row = true class, column = predicted class", "examples"},
    {"support", "examples per true class", "examples"},
    {"predicted_count", "examples per predicted class", "examples"},
    {"precision", "precision per class", "1"},
    {"recall", "recall per class", "1"},
    {"f1", "F1 per class", "1"},
    {"labels", "true class (or target) of every example, in split order", NULL},
    {"predictions", "predicted class (or value) of every example, in split order", NULL},
    {"logits", "the head's outputs (eval mode)", NULL},
    {NULL, NULL, NULL}};

static const dapt_h5_desc forward_datasets[] = {
    {"hidden_states", "hidden states: index 0 the embedding output, l + 1 the output of layer l", NULL},
    {"last_hidden_state", "output of the last layer", NULL},
    {"pooler_output", "tanh(W h[:, 0] + b)", NULL},
    {"mlm_logits", "MLM logits at every position", NULL},
    {"logits", "classifier logits", NULL},
    {"loss", "mean cross-entropy (MSE for a regression head) over the scored positions or samples", "nats"},
    {"*_mask_grad", "gradient of the loss w.r.t. the mask", NULL},
    {NULL, NULL, NULL}};

static const dapt_h5_desc analysis_datasets[] = {
    {"spectrum/singular_values", "singular values of the centred matrix, descending", NULL},
    {"spectrum/explained_variance", "s^2 / (N - 1)", NULL},
    {"spectrum/explained_variance_ratio", "share of the total variance", "1"},
    {"spectrum/mean", "column means of the raw matrix", NULL},
    {"spectrum/directions", "unit principal directions, largest first", NULL},
    {"cka/linear", "linear CKA; index 0 = embedding output, l + 1 = output of layer l", "1"},
    {"cka/debiased", "debiased linear CKA", "1"},
    {"a/layer_*", "pooled hidden states of model A used by CKA, held-out order", NULL},
    {"b/layer_*", "pooled hidden states of model B used by CKA, held-out order", NULL},
    {"delta/*/singular_values", "singular values of W_after - W_before", NULL},
    {"summary/fro", "Frobenius norm of each tensor's change", NULL},
    {"summary/relative_fro", "change norm / norm before", "1"},
    {"summary/stable_rank", "||dW||_F^2 / s_1^2", NULL},
    {"units/*/change", "norm of the change over each unit's elements", NULL},
    {"units/*/norm_before", "norm before over each unit's elements", NULL},
    {"units/*/relative_change", "change / norm before, per unit", "1"},
    {"units/*/importance", "the importance used, as stored", "1"},
    {"units/*/spearman_per_layer", "Spearman rho(importance, relative change) within each layer", "1"},
    {NULL, NULL, NULL}};

static const dapt_h5_format formats[] = {
    {"dapt-model", 1, "model: parameters at global shape and tokenizer (a checkpoint adds AdamW moments)",
     model_datasets},
    {"dapt-corpus", 1, "prepared corpus: token ids and document offsets", corpus_datasets},
    {"dapt-task", 1, "prepared task: tokenized examples and labels per split", task_datasets},
    {"dapt-importance", 1, "DGA/DAS unit importance per source and the soft-masks domains used",
     importance_datasets},
    {"dapt-representations", 1, "contrastive representations of held-out sequences per domain",
     representations_datasets},
    {"dapt-fisher", 1, "EWC state: Fisher diagonal and anchor parameters", fisher_datasets},
    {"dapt-heldout", 1, "the held-out split of a training corpus: rule, parameters and sequences",
     heldout_datasets},
    {"dapt-eval", 1, "evaluation of a classifier or regression head on a task split", eval_datasets},
    {"dapt-eval-mlm", 1, "held-out MLM loss of a model on a corpus", eval_datasets},
    {"dapt-forward", 1, "every intermediate of a forward pass on a batch", forward_datasets},
    {"dapt-analysis", 1, "spectra, CKA or weight changes (dapt analyze)", analysis_datasets},
    {NULL, 0, NULL, NULL}};

const dapt_h5_format *dapt_h5_format_find(const char *name)
{
    for (const dapt_h5_format *f = formats; name && f->name; f++)
        if (!strcmp(f->name, name)) return f;
    return NULL;
}

dapt_status dapt_h5_set_format(dapt_h5file *f, const char *name)
{
    const dapt_h5_format *fmt = dapt_h5_format_find(name);
    if (!fmt) return DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: unknown file format %s", f->path, name);
    DAPT_CHECK(dapt_h5_attr_set_string(f, "/", "format", fmt->name));
    return dapt_h5_attr_set_int64(f, "/", "format_version", fmt->version);
}

const dapt_h5_desc *dapt_h5_format_describe(const dapt_h5_format *fmt, const char *name)
{
    for (const dapt_h5_desc *d = fmt ? fmt->datasets : NULL; d && d->pattern; d++)
        if (fnmatch(d->pattern, name, FNM_PATHNAME) == 0) return d;
    return NULL;
}

/* Dataset names are collected first: attributes must not be added while
 * HDF5 walks the file. */
typedef struct name_list {
    char **v;
    size_t n, cap;
} name_list;

static dapt_status collect(const char *name, int ndim, const int64_t *dims, const char *type, void *user)
{
    (void)ndim;
    (void)dims;
    (void)type;
    name_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing datasets");
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name))) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing datasets");
    l->n++;
    return DAPT_OK;
}

dapt_status dapt_h5_describe(dapt_h5file *f)
{
    if (!dapt_h5_attr_exists(f, "/", "format")) return DAPT_OK;
    char *name = NULL;
    DAPT_CHECK(dapt_h5_attr_get_string(f, "/", "format", &name));
    const dapt_h5_format *fmt = dapt_h5_format_find(name);
    free(name);
    if (!fmt) return DAPT_OK;
    name_list l = {0};
    dapt_status st = dapt_h5_walk(f, collect, &l);
    for (size_t i = 0; st == DAPT_OK && i < l.n; i++) {
        const dapt_h5_desc *d = dapt_h5_format_describe(fmt, l.v[i]);
        if (!d) continue;
        st = dapt_h5_attr_set_string(f, l.v[i], "description", d->description);
        if (st == DAPT_OK && d->units) st = dapt_h5_attr_set_string(f, l.v[i], "units", d->units);
    }
    for (size_t i = 0; i < l.n; i++) free(l.v[i]);
    free(l.v);
    return st;
}
