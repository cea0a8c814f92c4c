/* Reading prepared task files (docs/formats.md, "Prepared task"):
 * classification (int32 class ids) and regression (float32 targets). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/h5io.h"
#include "dapt/task.h"

void dapt_task_file_free(dapt_task_file *t)
{
    if (t->label_names)
        for (int64_t i = 0; i < t->n_labels; i++) free(t->label_names[i]);
    free(t->label_names);
    free(t->tokenizer_checksum);
    free(t->splits);
    memset(t, 0, sizeof *t);
}

/* /label_names: fixed-length UTF-8 strings, as dapt prepare writes them. */
static dapt_status read_label_names(const dapt_h5file *f, dapt_task_file *t)
{
    if (!dapt_h5_exists(f, "label_names"))
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: no dataset label_names: not a prepared task?", t->path);
    int64_t n = 0;
    DAPT_CHECK(dapt_h5_read_strings(f, "label_names", &t->label_names, &n));
    if (n != t->n_labels) {
        for (int64_t i = 0; i < n; i++) free(t->label_names[i]);
        free(t->label_names);
        t->label_names = NULL;
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: label_names has %lld names, n_labels says %lld", t->path,
                          (long long)n, (long long)t->n_labels);
    }
    return DAPT_OK;
}

dapt_status dapt_task_file_open(const char *path, dapt_task_file *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->path, sizeof t->path, "%s", path);
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_SELF, path, &f));
    dapt_status st = DAPT_OK;
    char *format = NULL, *type = NULL;
    if (!dapt_h5_attr_exists(&f, "/", "format"))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s is not a prepared task (no format attribute; make it with dapt prepare --task)", path);
    DAPT_TRY(dapt_h5_attr_get_string(&f, "/", "format", &format));
    if (strcmp(format, "dapt-task"))
        DAPT_THROW(DAPT_ERR_FORMAT, "%s is a '%s' file, not a prepared task (make one with dapt prepare --task)", path, format);
    int64_t pairs = 0;
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "n_labels", &t->n_labels));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "vocab_size", &t->vocab_size));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "max_length", &t->max_length));
    DAPT_TRY(dapt_h5_attr_get_int64(&f, "/", "pairs", &pairs));
    DAPT_TRY(dapt_h5_attr_get_string(&f, "/", "splits", &t->splits));
    t->pairs = pairs != 0;
    if (dapt_h5_attr_exists(&f, "/", "tokenizer_checksum"))
        DAPT_TRY(dapt_h5_attr_get_string(&f, "/", "tokenizer_checksum", &t->tokenizer_checksum));
    if (t->n_labels < 1 || t->n_labels > 1000000)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: n_labels = %lld", path, (long long)t->n_labels);
    /* Files without task_type are classification tasks (the first format). */
    if (dapt_h5_attr_exists(&f, "/", "task_type")) {
        DAPT_TRY(dapt_h5_attr_get_string(&f, "/", "task_type", &type));
        if (!strcmp(type, "regression")) t->regression = 1;
        else if (strcmp(type, "classification"))
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: task_type '%s' is neither classification nor regression", path, type);
        if (t->regression && t->n_labels != 1)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: a regression task has n_labels = 1, not %lld", path, (long long)t->n_labels);
    }
    DAPT_TRY(read_label_names(&f, t));
cleanup:
    free(format);
    free(type);
    dapt_h5_close(&f);
    if (st != DAPT_OK) dapt_task_file_free(t);
    return st;
}

void dapt_task_split_free(dapt_task_split *s)
{
    free(s->ids);
    free(s->offsets);
    free(s->type_ids);
    free(s->labels);
    free(s->values);
    memset(s, 0, sizeof *s);
}

/* Is name one of the lines of t->splits? */
static int has_split(const dapt_task_file *t, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = t->splits; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !memcmp(p, name, n)) return 1;
        p = e ? e + 1 : p + len;
    }
    return 0;
}

static dapt_status read_1d(const dapt_h5file *f, const dapt_task_file *t, const char *split, const char *what,
                           dapt_h5_type type, int64_t want, void **out)
{
    char name[128];
    snprintf(name, sizeof name, "%s/%s", split, what);
    if (!dapt_h5_exists(f, name)) return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: dataset /%s is missing", t->path, name);
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    DAPT_CHECK(dapt_h5_read_all(f, name, type, out, &nd, dims));
    if (nd != 1 || (want >= 0 && dims[0] != want)) {
        free(*out);
        *out = NULL;
        return DAPT_ERROR(DAPT_ERR_FORMAT, "%s: /%s has %s%lld elements, expected %lld", t->path, name,
                          nd != 1 ? "not one dimension or " : "", nd >= 1 ? (long long)dims[0] : 0LL, (long long)want);
    }
    return DAPT_OK;
}

dapt_status dapt_task_split_read(const dapt_task_file *t, const char *split, dapt_task_split *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", split);
    if (!has_split(t, split)) {
        char list[512];
        size_t k = 0;
        for (const char *p = t->splits; p && *p && k + 2 < sizeof list; p++) list[k++] = *p == '\n' ? ',' : *p;
        list[k] = '\0';
        return DAPT_ERROR(DAPT_ERR_ARG, "%s has no split '%s' (it has: %s)", t->path, split, list);
    }
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_SELF, t->path, &f));
    dapt_status st = DAPT_OK;
    char name[128];
    snprintf(name, sizeof name, "%s/labels", split);
    int nd = 0;
    int64_t dims[DAPT_H5_MAX_DIMS];
    if (!dapt_h5_exists(&f, name)) DAPT_THROW(DAPT_ERR_FORMAT, "%s: dataset /%s is missing", t->path, name);
    DAPT_TRY(dapt_h5_info(&f, name, &nd, dims, NULL));
    if (nd != 1 || dims[0] < 1) DAPT_THROW(DAPT_ERR_FORMAT, "%s: /%s is not a non-empty vector", t->path, name);
    s->n = dims[0];
    if (t->regression) {
        DAPT_TRY(read_1d(&f, t, split, "labels", DAPT_H5_F32, s->n, (void **)&s->values));
        for (int64_t i = 0; i < s->n; i++)
            if (!isfinite(s->values[i]))
                DAPT_THROW(DAPT_ERR_FORMAT, "%s: /%s example %lld has label %g (regression labels must be finite)", t->path,
                           split, (long long)i, (double)s->values[i]);
    } else {
        DAPT_TRY(read_1d(&f, t, split, "labels", DAPT_H5_I32, s->n, (void **)&s->labels));
    }
    DAPT_TRY(read_1d(&f, t, split, "offsets", DAPT_H5_I64, s->n + 1, (void **)&s->offsets));
    const int64_t n_ids = s->offsets[s->n];
    if (s->offsets[0] != 0) DAPT_THROW(DAPT_ERR_FORMAT, "%s: /%s/offsets[0] = %lld, not 0", t->path, split, (long long)s->offsets[0]);
    for (int64_t i = 0; i < s->n; i++) {
        const int64_t len = s->offsets[i + 1] - s->offsets[i];
        if (len < 1)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: /%s example %lld has %lld ids (offsets must increase)", t->path, split,
                       (long long)i, (long long)len);
        if (len > s->max_len) s->max_len = len;
        if (s->labels && (s->labels[i] < 0 || s->labels[i] >= t->n_labels))
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: /%s example %lld has label %d outside 0..%lld (n_labels)", t->path, split,
                       (long long)i, s->labels[i], (long long)t->n_labels - 1);
    }
    DAPT_TRY(read_1d(&f, t, split, "input_ids", DAPT_H5_I32, n_ids, (void **)&s->ids));
    for (int64_t j = 0; j < n_ids; j++)
        if (s->ids[j] < 0 || s->ids[j] >= t->vocab_size)
            DAPT_THROW(DAPT_ERR_FORMAT, "%s: /%s/input_ids[%lld] = %d is outside the vocabulary (%lld)", t->path, split,
                       (long long)j, s->ids[j], (long long)t->vocab_size);
    snprintf(name, sizeof name, "%s/type_ids", split);
    if (dapt_h5_exists(&f, name)) DAPT_TRY(read_1d(&f, t, split, "type_ids", DAPT_H5_I32, n_ids, (void **)&s->type_ids));
cleanup:
    dapt_h5_close(&f);
    if (st != DAPT_OK) dapt_task_split_free(s);
    return st;
}
