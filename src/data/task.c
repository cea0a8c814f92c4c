/* dapt_prepare_task: labelled examples (TSV or JSONL) -> HDF5, one group per
 * split.  Layout: docs/formats.md, "Prepared task". */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dapt/corpus.h"
#include "dapt/h5io.h"
#include "data_internal.h"

/* Distinct labels a rank may see: more almost always means the wrong column. */
#define MAX_LABELS 4096

typedef struct split {
    char name[256];
    dapt_ids ids;
    unsigned char *types;
    size_t types_cap;
    int64_t *ends; /* end offset of each local example in ids */
    int32_t *labels;
    float *values; /* regression targets (--regression) */
    size_t n, cap;
} split;

typedef struct labelset {
    char **names;
    size_t n;
} labelset;

static int label_index(labelset *ls, const char *s, size_t len)
{
    for (size_t i = 0; i < ls->n; i++)
        if (strlen(ls->names[i]) == len && !memcmp(ls->names[i], s, len)) return (int)i;
    if (ls->n >= MAX_LABELS) return -1;
    char *c = malloc(len + 1);
    char **nn = realloc(ls->names, (ls->n + 1) * sizeof *nn);
    if (!c || !nn) {
        free(c);
        if (nn) ls->names = nn;
        return -2;
    }
    memcpy(c, s, len);
    c[len] = '\0';
    ls->names = nn;
    ls->names[ls->n] = c;
    return (int)ls->n++;
}

static void labelset_free(labelset *ls)
{
    for (size_t i = 0; i < ls->n; i++) free(ls->names[i]);
    free(ls->names);
    memset(ls, 0, sizeof *ls);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* "dir/train.tsv.gz" -> "train". */
static dapt_status split_name(const char *path, char *out, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, cap, "%s", b);
    size_t n = strlen(out);
    if (n > 3 && !strcmp(out + n - 3, ".gz")) out[n -= 3] = '\0';
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = '\0';
    if (!out[0] || !strcmp(out, ".") || !strcmp(out, ".."))
        return DAPT_ERROR(DAPT_ERR_ARG, "%s: cannot name a split after this file", path);
    return DAPT_OK;
}

static int is_jsonl(const char *path, dapt_task_format fmt)
{
    if (fmt != DAPT_TASK_AUTO) return fmt == DAPT_TASK_JSONL;
    char name[256];
    const char *b = strrchr(path, '/');
    snprintf(name, sizeof name, "%s", b ? b + 1 : path);
    size_t n = strlen(name);
    if (n > 3 && !strcmp(name + n - 3, ".gz")) name[n -= 3] = '\0';
    return (n > 6 && !strcmp(name + n - 6, ".jsonl")) || (n > 5 && !strcmp(name + n - 5, ".json"));
}

/* One example's fields, pointing into the line or into a parsed JSON
 * object (kept alive by *json until the caller frees it). */
typedef struct fields {
    const char *a, *b, *label;
    size_t alen, blen, llen;
    char numbuf[32];
} fields;

static dapt_status parse_tsv(const char *line, size_t len, fields *fl, const char **why)
{
    const char *t1 = memchr(line, '\t', len);
    if (!t1) {
        *why = "expected text<TAB>label (no tab found)";
        return DAPT_ERR_FORMAT;
    }
    const char *rest = t1 + 1;
    size_t rlen = len - (size_t)(rest - line);
    const char *t2 = memchr(rest, '\t', rlen);
    fl->a = line;
    fl->alen = (size_t)(t1 - line);
    if (!t2) {
        fl->b = NULL;
        fl->label = rest;
        fl->llen = rlen;
    } else {
        if (memchr(t2 + 1, '\t', len - (size_t)(t2 + 1 - line))) {
            *why = "more than 3 tab-separated fields (text, optional second text, label)";
            return DAPT_ERR_FORMAT;
        }
        fl->b = rest;
        fl->blen = (size_t)(t2 - rest);
        fl->label = t2 + 1;
        fl->llen = len - (size_t)(t2 + 1 - line);
    }
    return DAPT_OK;
}

static const char *json_text(json_t *obj, const char *k1, const char *k2, size_t *len)
{
    json_t *v = json_object_get(obj, k1);
    if (!v && k2) v = json_object_get(obj, k2);
    if (!v || !json_is_string(v)) return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static dapt_status parse_jsonl(const char *line, size_t len, int regression, fields *fl, json_t **json,
                               const char **why, char *errbuf, size_t errcap)
{
    json_error_t err;
    *json = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
    if (!*json) {
        snprintf(errbuf, errcap, "invalid JSON: %s", err.text);
        *why = errbuf;
        return DAPT_ERR_FORMAT;
    }
    if (!json_is_object(*json)) {
        *why = "expected a JSON object per line";
        return DAPT_ERR_FORMAT;
    }
    fl->a = json_text(*json, "text", "text_a", &fl->alen);
    if (!fl->a) {
        *why = "missing string \"text\" (or \"text_a\")";
        return DAPT_ERR_FORMAT;
    }
    fl->b = json_text(*json, "text_b", "text_pair", &fl->blen);
    json_t *lab = json_object_get(*json, "label");
    if (lab && json_is_string(lab)) {
        fl->label = json_string_value(lab);
        fl->llen = json_string_length(lab);
    } else if (lab && json_is_integer(lab)) {
        snprintf(fl->numbuf, sizeof fl->numbuf, "%lld", (long long)json_integer_value(lab));
        fl->label = fl->numbuf;
        fl->llen = strlen(fl->numbuf);
    } else if (lab && regression && json_is_real(lab)) {
        snprintf(fl->numbuf, sizeof fl->numbuf, "%.17g", json_real_value(lab));
        fl->label = fl->numbuf;
        fl->llen = strlen(fl->numbuf);
    } else if (regression) {
        *why = "missing \"label\" (a number, or a string holding one)";
        return DAPT_ERR_FORMAT;
    } else {
        *why = "missing \"label\" (string or integer)";
        return DAPT_ERR_FORMAT;
    }
    return DAPT_OK;
}

static dapt_status split_push(split *sp, const dapt_encoding *enc, int has_b, int32_t label, float value)
{
    if (sp->n == sp->cap) {
        size_t nc = sp->cap ? sp->cap * 2 : 256;
        int64_t *ne = realloc(sp->ends, nc * sizeof *ne);
        if (ne) sp->ends = ne;
        int32_t *nl = realloc(sp->labels, nc * sizeof *nl);
        if (nl) sp->labels = nl;
        float *nv = realloc(sp->values, nc * sizeof *nv);
        if (nv) sp->values = nv;
        if (!ne || !nl || !nv) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for %zu examples", nc);
        sp->cap = nc;
    }
    size_t k = enc->ids.len;
    DAPT_CHECK(dapt_ids_reserve(&sp->ids, k));
    memcpy(sp->ids.data + sp->ids.len, enc->ids.data, k * sizeof(int32_t));
    if (sp->ids.len + k > sp->types_cap) {
        size_t nc = sp->types_cap ? sp->types_cap : 4096;
        while (nc < sp->ids.len + k) nc *= 2;
        unsigned char *nt = realloc(sp->types, nc);
        if (!nt) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for %zu type ids", nc);
        sp->types = nt;
        sp->types_cap = nc;
    }
    for (size_t j = 0; j < k; j++)
        sp->types[sp->ids.len + j] = (unsigned char)(has_b && enc->type_ids.len == k ? enc->type_ids.data[j] : 0);
    sp->ids.len += k;
    sp->ends[sp->n] = (int64_t)sp->ids.len;
    sp->labels[sp->n] = label;
    sp->values[sp->n] = value;
    sp->n++;
    return DAPT_OK;
}

/* A regression label: the whole field is one finite number (strtod's
 * syntax, surrounding spaces allowed). */
static int parse_value(const char *s, size_t len, float *out)
{
    char buf[64];
    if (len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end = NULL;
    const double v = strtod(buf, &end);
    if (end == buf) return 0;
    while (*end == ' ' || *end == '\r') end++;
    if (*end || !isfinite(v) || !isfinite((float)v)) return 0;
    *out = (float)v;
    return 1;
}

/* Tokenizes this rank's examples of input i into sp. */
static dapt_status read_split(const dapt_prepare_opts *o, size_t i, const src_info *info, int64_t s, int64_t e,
                              dapt_tok_state *ts, labelset *ls, split *sp, int *any_pair, int64_t *truncated)
{
    dapt_status st = DAPT_OK;
    src_part part = {0};
    dapt_encoding enc = {0};
    json_t *json = NULL;
    const char *path = o->inputs[i];
    int jsonl = is_jsonl(path, o->format);
    dapt_encode_opts full = {.add_special = 1, .truncation = DAPT_TRUNC_NONE, .max_length = 0};
    dapt_encode_opts cut = {.add_special = 1, .truncation = DAPT_TRUNC_LONGEST_FIRST,
                            .max_length = (size_t)o->cfg->tokenizer.max_length};
    DAPT_TRY(src_load(path, info, DAPT_DOC_LINE, s, e, &part));
    size_t bad = 0;
    const char *why = NULL;
    if (!src_check_text(part.text, part.len, &bad, &why)) {
        int64_t at = part.base + (int64_t)bad;
        DAPT_THROW(DAPT_ERR_FORMAT, "%s:%lld: %s at byte %lld", path, (long long)src_line_of(path, at), why,
                   (long long)at);
    }
    size_t pos = 0, len = 0;
    const char *line = NULL;
    char errbuf[256];
    while (src_next_doc(&part, DAPT_DOC_LINE, &pos, &line, &len)) {
        fields fl = {0};
        dapt_status pst = jsonl ? parse_jsonl(line, len, o->regression, &fl, &json, &why, errbuf, sizeof errbuf)
                                : parse_tsv(line, len, &fl, &why);
        if (pst == DAPT_OK && fl.llen == 0) {
            pst = DAPT_ERR_FORMAT;
            why = "empty label";
        }
        float value = 0.0f;
        if (pst == DAPT_OK && o->regression && !parse_value(fl.label, fl.llen, &value)) {
            pst = DAPT_ERR_FORMAT;
            snprintf(errbuf, sizeof errbuf, "label '%.*s' is not a finite number (--regression needs numeric labels)",
                     fl.llen > 64 ? 64 : (int)fl.llen, fl.label);
            why = errbuf;
        }
        int li = pst == DAPT_OK && !o->regression ? label_index(ls, fl.label, fl.llen) : 0;
        if (pst == DAPT_OK && li == -1) {
            pst = DAPT_ERR_FORMAT;
            why = "more than 4096 distinct labels (is the label the last column?)";
        }
        if (pst != DAPT_OK || li < 0) {
            int64_t at = part.base + (line - part.text);
            DAPT_THROW(li == -2 ? DAPT_ERR_NOMEM : DAPT_ERR_FORMAT, "%s:%lld: %s", path,
                       (long long)src_line_of(path, at), li == -2 ? "out of memory for labels" : why);
        }
        if (fl.b) *any_pair = 1;
        st = dapt_tokenizer_encode_full(o->tok, ts, fl.a, fl.alen, fl.b, fl.blen, &full, &enc);
        if (st == DAPT_OK && enc.ids.len > cut.max_length) {
            (*truncated)++;
            st = dapt_tokenizer_encode_full(o->tok, ts, fl.a, fl.alen, fl.b, fl.blen, &cut, &enc);
        }
        if (st != DAPT_OK) {
            int64_t at = part.base + (line - part.text);
            char m[600];
            snprintf(m, sizeof m, "%s", dapt_error_message());
            DAPT_THROW(st, "%s:%lld: cannot encode: %s", path, (long long)src_line_of(path, at), m);
        }
        DAPT_TRY(split_push(sp, &enc, fl.b != NULL, (int32_t)li, value));
        json_decref(json);
        json = NULL;
    }
cleanup:
    json_decref(json);
    dapt_encoding_free(&enc);
    src_part_free(&part);
    return st;
}

/* Every rank's label names -> the sorted union, on every rank.  Each rank
 * saw at most MAX_LABELS, the union may hold more: refused on every rank
 * alike (they all compute the same union). */
static dapt_status union_labels(MPI_Comm comm, const dapt_prepare_opts *o, const labelset *mine, labelset *all)
{
    int size = 1;
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    size_t bytes = 0;
    for (size_t i = 0; i < mine->n; i++) bytes += strlen(mine->names[i]) + 1;
    if (bytes > (size_t)1 << 30) return DAPT_ERROR(DAPT_ERR_FORMAT, "label names too long");
    char *buf = malloc(bytes ? bytes : 1), *recv = NULL;
    int *counts = calloc((size_t)size, sizeof *counts), *displs = calloc((size_t)size, sizeof *displs);
    dapt_status st = DAPT_OK;
    if (!buf || !counts || !displs) DAPT_THROW(DAPT_ERR_NOMEM, "out of memory gathering labels");
    size_t p = 0;
    for (size_t i = 0; i < mine->n; i++) {
        size_t l = strlen(mine->names[i]) + 1;
        memcpy(buf + p, mine->names[i], l);
        p += l;
    }
    int nb = (int)bytes;
    DAPT_TRY(DAPT_MPI(MPI_Allgather(&nb, 1, MPI_INT, counts, 1, MPI_INT, comm)));
    long long total = 0;
    for (int r = 0; r < size; r++) {
        displs[r] = (int)total;
        total += counts[r];
    }
    if (total > INT32_MAX) DAPT_THROW(DAPT_ERR_FORMAT, "label names too long (%lld bytes)", total);
    recv = malloc(total ? (size_t)total : 1);
    if (!recv) DAPT_THROW(DAPT_ERR_NOMEM, "out of memory gathering labels");
    DAPT_TRY(DAPT_MPI(MPI_Allgatherv(buf, nb, MPI_CHAR, recv, counts, displs, MPI_CHAR, comm)));
    for (long long q = 0; q < total;) {
        size_t l = strlen(recv + q);
        const int li = label_index(all, recv + q, l);
        if (li == -2) DAPT_THROW(DAPT_ERR_NOMEM, "out of memory for labels");
        if (li == -1 && o->n_inputs == 1)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: more than %d distinct labels (is the label the last column?)",
                       o->inputs[0], MAX_LABELS);
        if (li == -1)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s and the other %zu task files: more than %d distinct labels in all "
                       "(is the label the last column?)", o->inputs[0], o->n_inputs - 1, MAX_LABELS);
        q += (long long)l + 1;
    }
    /* No labels at all (inputs without examples) leave names NULL, which
     * qsort must not be given even with a count of 0. */
    if (all->n > 1) qsort(all->names, all->n, sizeof *all->names, cmp_str);
cleanup:
    free(buf);
    free(recv);
    free(counts);
    free(displs);
    return st;
}

static dapt_status task_attrs(dapt_h5file *f, const dapt_prepare_opts *o, const src_info *info,
                              const split *sp, size_t n, int64_t n_labels, int pairs, int64_t n_bytes)
{
    /* The split names, one per line, whatever their number and length. */
    size_t cap = 1;
    for (size_t i = 0; i < n; i++) cap += strlen(sp[i].name) + 1;
    char *names = malloc(cap);
    if (!names) return DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for %zu split names", n);
    size_t p = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t l = strlen(sp[i].name);
        if (i) names[p++] = '\n';
        memcpy(names + p, sp[i].name, l);
        p += l;
    }
    names[p] = '\0';
    dapt_status st = DAPT_OK;
    DAPT_TRY(data_provenance_attrs(f, o, info, "dapt-task"));
    DAPT_TRY(dapt_h5_attr_set_string(f, "/", "splits", names));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "n_labels", n_labels));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "max_length", o->cfg->tokenizer.max_length));
    DAPT_TRY(dapt_h5_attr_set_int64(f, "/", "pairs", pairs));
    /* Classification files keep the first layout (no task_type). */
    if (o->regression) DAPT_TRY(dapt_h5_attr_set_string(f, "/", "task_type", "regression"));
    st = dapt_h5_attr_set_int64(f, "/", "n_bytes", n_bytes);
cleanup:
    free(names);
    return st;
}

dapt_status dapt_prepare_task(MPI_Comm comm, const dapt_prepare_opts *o, dapt_prepare_stats *stats)
{
    int rank = 0, size = 1;
    memset(stats, 0, sizeof *stats);
    DAPT_CHECK(DAPT_MPI(MPI_Comm_rank(comm, &rank)));
    DAPT_CHECK(DAPT_MPI(MPI_Comm_size(comm, &size)));
    const size_t n = o->n_inputs;
    dapt_status st = DAPT_OK;
    src_info *info = NULL;
    int64_t *foff = NULL, *buf = NULL, *counts = NULL;
    split *sp = NULL;
    labelset mine = {0}, all = {0};
    dapt_tok_state *ts = NULL;
    dapt_h5file f = {.id = H5I_INVALID_HID};
    int file_open = 0;

    if (n == 0) return DAPT_ERROR(DAPT_ERR_ARG, "prepare --task: no input files");
    sp = calloc(n, sizeof *sp);
    info = calloc(n, sizeof *info);
    foff = calloc(n + 1, sizeof *foff);
    if (!sp || !info || !foff) DAPT_THROW(DAPT_ERR_NOMEM, "prepare: out of memory for %zu inputs", n);
    for (size_t i = 0; i < n; i++) {
        DAPT_TRY(split_name(o->inputs[i], sp[i].name, sizeof sp[i].name));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(sp[i].name, sp[j].name))
                DAPT_THROW(DAPT_ERR_ARG, "%s and %s would both be split '%s'", o->inputs[j], o->inputs[i],
                           sp[i].name);
    }
    if (rank == 0 && !o->force) {
        struct stat sb;
        if (stat(o->output, &sb) == 0)
            st = DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", o->output);
    }
    DAPT_TRY(dapt_status_agree(comm, st));
    DAPT_TRY(src_scan(comm, o->inputs, n, info));
    for (size_t i = 0; i < n; i++) foff[i + 1] = foff[i] + info[i].size;
    int64_t gs, ge;
    data_rank_range(foff[n], rank, size, &gs, &ge);

    int any_pair = 0;
    int64_t truncated = 0;
    st = dapt_tok_state_new(o->tok, &ts);
    for (size_t i = 0; i < n && st == DAPT_OK; i++) {
        int64_t s = (gs > foff[i] ? gs : foff[i]) - foff[i];
        int64_t e = (ge < foff[i + 1] ? ge : foff[i + 1]) - foff[i];
        if (s < e) st = read_split(o, i, &info[i], s, e, ts, &mine, &sp[i], &any_pair, &truncated);
    }
    DAPT_TRY(dapt_status_agree(comm, st));
    /* A regression task has one output, named as Hugging Face names it. */
    if (o->regression && label_index(&mine, "LABEL_0", 7) == -2) DAPT_THROW(DAPT_ERR_NOMEM, "out of memory for labels");
    DAPT_TRY(union_labels(comm, o, &mine, &all));
    int pairs = 0;
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(&any_pair, &pairs, 1, MPI_INT, MPI_MAX, comm)));
    DAPT_TRY(DAPT_MPI(MPI_Allreduce(&truncated, &stats->n_truncated, 1, MPI_INT64_T, MPI_SUM, comm)));
    /* Local label index -> global id (position in the sorted union). */
    int32_t *map = calloc(mine.n ? mine.n : 1, sizeof *map);
    if (!map) DAPT_THROW(DAPT_ERR_NOMEM, "out of memory mapping labels");
    for (size_t k = 0; k < mine.n; k++) {
        char **hit = bsearch(&mine.names[k], all.names, all.n, sizeof *all.names, cmp_str);
        if (!hit) {
            free(map);
            DAPT_THROW(DAPT_ERR_INTERNAL, "label '%.64s' missing from the union of labels", mine.names[k]);
        }
        map[k] = (int32_t)(hit - all.names);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < sp[i].n; j++) sp[i].labels[j] = map[sp[i].labels[j]];
    free(map);
    stats->n_labels = (int)all.n;
    stats->n_bytes = foff[n];

    DAPT_TRY(dapt_h5_create(comm, o->output, o->force, o->cfg, &f));
    file_open = 1;
    st = task_attrs(&f, o, info, sp, n, (int64_t)all.n, pairs, foff[n]);
    DAPT_TRY(dapt_status_agree(comm, st));
    st = dapt_h5_write_strings(&f, "label_names", all.names, all.n);
    DAPT_TRY(dapt_status_agree(comm, st));

    int idb = dapt_corpus_id_bytes(dapt_tokenizer_vocab_size(o->tok));
    counts = calloc(all.n ? all.n : 1, sizeof *counts);
    int64_t *gcounts = calloc(all.n ? all.n : 1, sizeof *gcounts);
    if (!counts || !gcounts) {
        free(gcounts);
        DAPT_THROW(DAPT_ERR_NOMEM, "out of memory for label counts");
    }
    for (size_t i = 0; i < n && st == DAPT_OK; i++) {
        split *x = &sp[i];
        int64_t mine2[2] = {(int64_t)x->ids.len, (int64_t)x->n}, before[2] = {0, 0}, tot[2] = {0, 0};
        st = DAPT_MPI(MPI_Exscan(mine2, before, 2, MPI_INT64_T, MPI_SUM, comm));
        if (rank == 0) before[0] = before[1] = 0;
        if (st == DAPT_OK) st = DAPT_MPI(MPI_Allreduce(mine2, tot, 2, MPI_INT64_T, MPI_SUM, comm));
        if (st != DAPT_OK) break;
        if (tot[1] == 0) {
            st = DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no examples (empty input)", o->inputs[i]);
            break;
        }
        stats->n_docs += tot[1];
        stats->n_tokens += tot[0];
        st = dapt_h5_group(&f, x->name);
        if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
        char name[300];
        snprintf(name, sizeof name, "%s/input_ids", x->name);
        st = data_write_ids(&f, name, idb, tot[0], before[0], (int64_t)x->ids.len, x->ids.data);
        if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
        if (pairs) {
            snprintf(name, sizeof name, "%s/type_ids", x->name);
            int64_t d = tot[0], s0 = before[0], c = (int64_t)x->ids.len;
            st = dapt_h5_write(&f, name, DAPT_H5_U8, 1, &d, &s0, &c, x->types);
            if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
        }
        size_t nloc = x->n + (rank == size - 1 ? 1 : 0);
        free(buf);
        buf = malloc((nloc ? nloc : 1) * sizeof *buf);
        if (!buf) st = DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory for offsets");
        if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
        for (size_t j = 0; j < x->n; j++) buf[j] = before[0] + (j ? x->ends[j - 1] : 0);
        if (rank == size - 1) buf[x->n] = tot[0];
        snprintf(name, sizeof name, "%s/offsets", x->name);
        int64_t od = tot[1] + 1, os = before[1], oc = (int64_t)nloc;
        st = dapt_h5_write(&f, name, DAPT_H5_I64, 1, &od, &os, &oc, buf);
        if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
        snprintf(name, sizeof name, "%s/labels", x->name);
        int64_t ld = tot[1], ls0 = before[1], lc = (int64_t)x->n;
        if (o->regression) {
            st = dapt_h5_write(&f, name, DAPT_H5_F32, 1, &ld, &ls0, &lc, x->values);
            if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
            continue; /* no class counts */
        }
        st = dapt_h5_write(&f, name, DAPT_H5_I32, 1, &ld, &ls0, &lc, x->labels);
        if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
        memset(counts, 0, (all.n ? all.n : 1) * sizeof *counts);
        for (size_t j = 0; j < x->n; j++) counts[x->labels[j]]++;
        st = DAPT_MPI(MPI_Allreduce(counts, gcounts, (int)all.n, MPI_INT64_T, MPI_SUM, comm));
        if (st != DAPT_OK) break;
        snprintf(name, sizeof name, "%s/label_counts", x->name);
        int64_t cd = (int64_t)all.n;
        st = dapt_h5_write_all(&f, name, DAPT_H5_I64, 1, &cd, gcounts);
        if ((st = dapt_status_agree(comm, st)) != DAPT_OK) break;
    }
    free(gcounts);
    if (st != DAPT_OK) goto cleanup;
    file_open = 0;
    DAPT_TRY(dapt_h5_commit(&f));

cleanup:
    if (file_open) dapt_h5_abort(&f);
    for (size_t i = 0; sp && i < n; i++) {
        dapt_ids_free(&sp[i].ids);
        free(sp[i].types);
        free(sp[i].ends);
        free(sp[i].labels);
        free(sp[i].values);
    }
    free(sp);
    free(buf);
    free(counts);
    labelset_free(&mine);
    labelset_free(&all);
    dapt_tok_state_free(ts);
    free(info);
    free(foff);
    return st;
}
