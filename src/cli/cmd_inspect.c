/* dapt inspect FILE|RUNDIR: what a dapt output is and how it was made, or
 * how far a run directory got.  Everything is gathered into one JSON object
 * first; --json prints it, otherwise it is rendered as text, so both
 * outputs always say the same. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dapt/checkpoint.h"
#include "dapt/cli.h"
#include "dapt/fsio.h"
#include "dapt/h5io.h"

static void usage(void)
{
    printf("usage: dapt inspect FILE.h5|RUNDIR [--json]\n\n"
           "For an HDF5 file dapt wrote: what it is (format, version), its provenance\n"
           "(dapt version, git commit, command, MPI ranks, time, host) and its datasets\n"
           "with shapes, types, descriptions and units.  For a run directory (the OUT of\n"
           "dapt train or DIR of dapt finetune): progress (last step or epoch of the\n"
           "total), the last metrics row, the checkpoints and whether the run can be\n"
           "resumed, the model file once written, and each continual domain's directory.\n"
           "  --json   one JSON object on standard output, for scripts\n"
           "Runs on rank 0.\n\n");
    dapt_cli_print_common_help();
}

/* jansson reports allocation failure as NULL; one check per built object. */
static dapt_status built(json_t *o, const char *what)
{
    return o ? DAPT_OK : DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory describing %s", what);
}

/* ---- files --------------------------------------------------------------- */

/* The root attribute attr as a JSON string or integer, null when absent. */
static dapt_status attr_json(const dapt_h5file *f, const char *attr, int integer, json_t **out)
{
    *out = json_null();
    if (!dapt_h5_attr_exists(f, "/", attr)) return DAPT_OK;
    if (integer) {
        int64_t v = 0;
        DAPT_CHECK(dapt_h5_attr_get_int64(f, "/", attr, &v));
        *out = json_integer(v);
    } else {
        char *s = NULL;
        DAPT_CHECK(dapt_h5_attr_get_string(f, "/", attr, &s));
        *out = json_string(s);
        free(s);
    }
    return built(*out, attr);
}

typedef struct walk_out {
    const dapt_h5file *f;
    const dapt_h5_format *fmt;
    json_t *list;
} walk_out;

/* A dataset attribute that is a string, or NULL (not there, or not text). */
static char *dataset_text(const dapt_h5file *f, const char *name, const char *attr)
{
    char *s = NULL;
    if (!dapt_h5_attr_exists(f, name, attr)) return NULL;
    if (dapt_h5_attr_get_string(f, name, attr, &s) != DAPT_OK) dapt_error_clear();
    return s;
}

static dapt_status add_dataset(const char *name, int ndim, const int64_t *dims, const char *type, void *user)
{
    walk_out *w = user;
    json_t *shape = json_array(), *d = json_object();
    DAPT_CHECK(built(shape && d ? d : NULL, name));
    for (int i = 0; i < ndim; i++) json_array_append_new(shape, json_integer(dims[i]));
    /* Files written before descriptions were stored: the registry's. */
    char *desc = dataset_text(w->f, name, "description"), *units = dataset_text(w->f, name, "units");
    const dapt_h5_desc *row = dapt_h5_format_describe(w->fmt, name);
    json_object_set_new(d, "name", json_string(name));
    json_object_set_new(d, "dtype", json_string(type));
    json_object_set_new(d, "shape", shape);
    json_object_set_new(d, "description", desc ? json_string(desc) : row ? json_string(row->description) : json_null());
    json_object_set_new(d, "units", units ? json_string(units) : row && row->units ? json_string(row->units) : json_null());
    free(desc);
    free(units);
    return json_array_append_new(w->list, d) == 0 ? DAPT_OK : DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing %s", name);
}

static const char *const provenance_attrs[] = {"dapt_version", "git_commit", "command", "mpi_ranks", "created", "host"};

static dapt_status file_fields(const dapt_h5file *f, json_t *o)
{
    json_t *v = NULL;
    DAPT_CHECK(attr_json(f, "format", 0, &v));
    json_object_set_new(o, "format", v);
    DAPT_CHECK(attr_json(f, "format_version", 1, &v));
    json_object_set_new(o, "format_version", v);
    const dapt_h5_format *fmt = dapt_h5_format_find(json_string_value(json_object_get(o, "format")));
    const int ckpt = dapt_h5_attr_exists(f, "/", "checkpoint_format");
    json_object_set_new(o, "what", json_string(ckpt ? "checkpoint" : fmt ? fmt->name + strlen("dapt-") : "unknown"));
    json_object_set_new(o, "summary", fmt ? json_string(fmt->summary) : json_null());
    if (ckpt) {
        DAPT_CHECK(attr_json(f, "step", 1, &v));
        json_object_set_new(o, "step", v);
    }
    json_t *prov = json_object(), *list = json_array();
    json_object_set_new(o, "provenance", prov);
    json_object_set_new(o, "datasets", list);
    DAPT_CHECK(built(prov && list ? o : NULL, f->path));
    for (size_t i = 0; i < sizeof provenance_attrs / sizeof *provenance_attrs; i++) {
        DAPT_CHECK(attr_json(f, provenance_attrs[i], !strcmp(provenance_attrs[i], "mpi_ranks"), &v));
        json_object_set_new(prov, provenance_attrs[i], v);
    }
    walk_out w = {f, fmt, list};
    return dapt_h5_walk(f, add_dataset, &w);
}

static dapt_status inspect_file(const char *path, json_t *o)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(MPI_COMM_SELF, path, &f));
    json_object_set_new(o, "path", json_string(path));
    json_object_set_new(o, "kind", json_string("file"));
    dapt_status st = file_fields(&f, o);
    dapt_h5_close(&f);
    return st;
}

/* ---- run directories --------------------------------------------------- */

/* One CSV cell: null when empty, an integer or a number when it reads as
 * one, else the text. */
static json_t *csv_value(const char *v)
{
    if (!v || !*v) return json_null();
    char *end = NULL;
    long long i = strtoll(v, &end, 10);
    if (!*end) return json_integer(i);
    double x = strtod(v, &end);
    return *end ? json_string(v) : json_real(x);
}

/* The header and the last row of a CSV file as {column: value} (numbers
 * where the text is one, null for empty cells); NULL-valued when the file
 * has no data row. */
static dapt_status last_csv_row(const char *path, json_t **row)
{
    unsigned char *data = NULL;
    size_t len = 0;
    *row = json_null();
    DAPT_CHECK(dapt_fs_read_file(path, (size_t)1 << 30, &data, &len));
    char *text = (char *)data, *save = NULL, *header = NULL, *last = NULL;
    text[len] = '\0'; /* dapt_fs_read_file leaves room for a terminator */
    for (char *line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (!header) header = line;
        else last = line;
    }
    dapt_status st = DAPT_OK;
    if (header && last) {
        json_t *r = json_object();
        char *hs = NULL, *h = strtok_r(header, ",", &hs), *v = last;
        while (r && h) {
            char *comma = v ? strchr(v, ',') : NULL;
            if (comma) *comma = '\0';
            json_object_set_new(r, h, csv_value(v));
            v = comma ? comma + 1 : NULL;
            h = strtok_r(NULL, ",", &hs);
        }
        st = built(r, path);
        *row = r;
    }
    free(data);
    return st;
}

/* The newest checkpoint that opens as one: the step a --resume starts from
 * (-1: none).  The newest files are tried first, as dapt_checkpoint_resume
 * falls back to older good files. */
static dapt_status resume_step(const char *ckdir, json_t *o, int64_t *resume)
{
    int64_t *steps = NULL;
    size_t n = 0;
    *resume = -1;
    json_t *list = json_array();
    json_object_set_new(o, "checkpoints", list);
    DAPT_CHECK(built(list, ckdir));
    if (!dapt_fs_exists(ckdir)) return DAPT_OK;
    DAPT_CHECK(dapt_checkpoint_list(ckdir, &steps, &n));
    for (size_t i = 0; i < n; i++) json_array_append_new(list, json_integer(steps[i]));
    for (size_t i = n; i-- > 0 && *resume < 0;) {
        char path[8192];
        dapt_checkpoint_path(ckdir, steps[i], path, sizeof path);
        dapt_h5file f;
        if (dapt_h5_open(MPI_COMM_SELF, path, &f) != DAPT_OK) {
            dapt_error_clear(); /* a damaged file: an older one may do */
            continue;
        }
        if (dapt_h5_attr_exists(&f, "/", "checkpoint_format")) *resume = steps[i];
        dapt_h5_close(&f);
    }
    free(steps);
    return DAPT_OK;
}

/* The run's total (train.steps, or finetune.epochs for fine-tuning) from
 * the configuration recorded in the first of its files that has one: the
 * resume checkpoint, the held-out file, the model.  Null when none does. */
static dapt_status config_total(const char *dir, const char *ckdir, int64_t resume, int finetune, json_t **out)
{
    char cands[3][8192];
    size_t nc = 0;
    if (resume >= 0) dapt_checkpoint_path(ckdir, resume, cands[nc++], sizeof cands[0]);
    snprintf(cands[nc++], sizeof cands[0], "%s/heldout.h5", dir);
    snprintf(cands[nc++], sizeof cands[0], "%s/model.h5", dir);
    *out = json_null();
    for (size_t i = 0; i < nc; i++) {
        if (!dapt_fs_exists(cands[i])) continue;
        dapt_h5file f;
        char *ini = NULL;
        dapt_config *cfg = NULL;
        dapt_status st = dapt_h5_open(MPI_COMM_SELF, cands[i], &f);
        if (st == DAPT_OK) {
            st = dapt_h5_attr_get_string(&f, "/", "dapt_config", &ini);
            dapt_h5_close(&f);
        }
        if (st == DAPT_OK) st = dapt_calloc((void **)&cfg, 1, sizeof *cfg, "a run configuration");
        if (st == DAPT_OK) {
            dapt_config_defaults(cfg);
            st = dapt_config_load_string(cfg, ini, cands[i]);
        }
        if (st == DAPT_OK) *out = json_integer(finetune ? cfg->finetune.epochs : cfg->train.steps);
        free(cfg);
        free(ini);
        if (st == DAPT_OK) return built(*out, cands[i]);
        dapt_error_clear(); /* an unreadable file: try the next */
    }
    return DAPT_OK;
}

static dapt_status inspect_run(const char *dir, json_t *o, int depth);

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Subdirectories that are runs themselves (a metrics file or checkpoints):
 * the domains of a continual run, in name order.  One level only. */
static dapt_status domains(const char *dir, json_t *o, int depth)
{
    json_t *list = json_array();
    json_object_set_new(o, "domains", list);
    DAPT_CHECK(built(list, dir));
    if (depth > 0) return DAPT_OK;
    DIR *d = opendir(dir);
    if (!d) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    dapt_status st = DAPT_OK;
    for (struct dirent *e; st == DAPT_OK && (e = readdir(d));) {
        char a[8192], b[8192];
        snprintf(a, sizeof a, "%s/%s/metrics.csv", dir, e->d_name);
        snprintf(b, sizeof b, "%s/%s/checkpoints", dir, e->d_name);
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "checkpoints") || (!dapt_fs_exists(a) && !dapt_fs_exists(b)))
            continue;
        char **grown = n == cap ? realloc(names, (cap = cap ? 2 * cap : 8) * sizeof *names) : names;
        if (!grown || !(grown[n] = strdup(e->d_name))) st = DAPT_ERROR(DAPT_ERR_NOMEM, "out of memory listing %s", dir);
        if (grown) names = grown;
        if (st == DAPT_OK) n++;
    }
    closedir(d);
    if (n > 1) qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; st == DAPT_OK && i < n; i++) {
        char sub[8192];
        snprintf(sub, sizeof sub, "%s/%s", dir, names[i]);
        json_t *one = json_object();
        st = built(one, sub);
        if (st != DAPT_OK) break;
        json_array_append_new(list, one);
        json_object_set_new(one, "name", json_string(names[i]));
        st = inspect_run(sub, one, depth + 1);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

static dapt_status inspect_run(const char *dir, json_t *o, int depth)
{
    char metrics[8192], ft[8192], ckdir[8192], model[8192];
    snprintf(metrics, sizeof metrics, "%s/metrics.csv", dir);
    snprintf(ft, sizeof ft, "%s/finetune_metrics.csv", dir);
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", dir);
    snprintf(model, sizeof model, "%s/model.h5", dir);
    const int finetune = dapt_fs_exists(ft);
    json_object_set_new(o, "path", json_string(dir));
    json_object_set_new(o, "kind", json_string("run"));
    json_object_set_new(o, "run", json_string(finetune ? "finetune" : "train"));
    json_t *row = json_null(), *total = NULL;
    if (finetune || dapt_fs_exists(metrics)) DAPT_CHECK(last_csv_row(finetune ? ft : metrics, &row));
    json_object_set_new(o, "last_metrics", row);
    int64_t resume = -1;
    DAPT_CHECK(resume_step(ckdir, o, &resume));
    json_object_set_new(o, "resumable", json_boolean(resume >= 0));
    json_object_set_new(o, "resume_step", resume >= 0 ? json_integer(resume) : json_null());
    DAPT_CHECK(config_total(dir, ckdir, resume, finetune, &total));
    json_object_set_new(o, "total", total);
    json_object_set_new(o, "total_unit", json_string(finetune ? "epochs" : "steps"));
    /* Progress: the last metrics row's step (epoch for fine-tuning). */
    json_t *at = json_object_get(row, finetune ? "epoch" : "step");
    const json_int_t last = json_is_integer(at) ? json_integer_value(at) : -1;
    json_object_set_new(o, "last", last >= 0 ? json_integer(last) : json_null());
    const int have_model = dapt_fs_exists(model);
    json_object_set_new(o, "model", have_model ? json_string(model) : json_null());
    /* A train run's model.h5 is written last (docs/training.md); a
     * fine-tuning run's holds the best epoch so far. */
    const int done = json_is_integer(total) && last >= json_integer_value(total);
    json_object_set_new(o, "finished", json_boolean(done || (!finetune && have_model)));
    return domains(dir, o, depth);
}

/* ---- output ------------------------------------------------------------ */

/* A JSON scalar as text: strings bare, integers exact, reals %g, "-" for
 * null. */
static void put_value(FILE *out, const json_t *v)
{
    if (json_is_string(v)) fputs(json_string_value(v), out);
    else if (json_is_integer(v)) fprintf(out, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) fprintf(out, "%g", json_real_value(v));
    else if (json_is_boolean(v)) fputs(json_is_true(v) ? "yes" : "no", out);
    else fputs("-", out);
}

static void print_file(FILE *out, const json_t *o)
{
    fprintf(out, "%s: %s", json_string_value(json_object_get(o, "path")), json_string_value(json_object_get(o, "what")));
    fputs(" (format ", out);
    put_value(out, json_object_get(o, "format"));
    fputs(", version ", out);
    put_value(out, json_object_get(o, "format_version"));
    fputs(")\n", out);
    if (json_is_string(json_object_get(o, "summary"))) fprintf(out, "  %s\n", json_string_value(json_object_get(o, "summary")));
    if (json_object_get(o, "step")) {
        fputs("  step          ", out);
        put_value(out, json_object_get(o, "step"));
        fputc('\n', out);
    }
    const char *k;
    json_t *v;
    fputs("provenance:\n", out);
    json_object_foreach(json_object_get(o, "provenance"), k, v) {
        fprintf(out, "  %-13s ", k);
        put_value(out, v);
        fputc('\n', out);
    }
    json_t *list = json_object_get(o, "datasets");
    fprintf(out, "datasets (%zu):\n", json_array_size(list));
    size_t i;
    json_array_foreach(list, i, v) {
        char shape[128] = "[";
        size_t j;
        json_t *d;
        json_array_foreach(json_object_get(v, "shape"), j, d) {
            size_t used = strlen(shape);
            snprintf(shape + used, sizeof shape - used, "%s%lld", j ? ", " : "", (long long)json_integer_value(d));
        }
        strncat(shape, "]", sizeof shape - strlen(shape) - 1);
        fprintf(out, "  %s  %s %s", json_string_value(json_object_get(v, "name")),
                json_string_value(json_object_get(v, "dtype")), shape);
        if (json_is_string(json_object_get(v, "description")))
            fprintf(out, "  %s", json_string_value(json_object_get(v, "description")));
        if (json_is_string(json_object_get(v, "units"))) fprintf(out, " (%s)", json_string_value(json_object_get(v, "units")));
        fputc('\n', out);
    }
}

static void print_run(FILE *out, const json_t *o, const char *indent)
{
    fprintf(out, "%s%s: %s run, ", indent, json_string_value(json_object_get(o, "path")),
            json_string_value(json_object_get(o, "run")));
    const int ft = !strcmp(json_string_value(json_object_get(o, "run")), "finetune");
    fputs(ft ? "epoch " : "step ", out);
    put_value(out, json_object_get(o, "last"));
    fputs(" of ", out);
    put_value(out, json_object_get(o, "total"));
    fprintf(out, "%s\n", json_is_true(json_object_get(o, "finished")) ? " (finished)" : "");
    const char *k;
    json_t *v;
    fprintf(out, "%s  last metrics:", indent);
    if (!json_is_object(json_object_get(o, "last_metrics"))) fputs(" -", out);
    json_object_foreach(json_object_get(o, "last_metrics"), k, v) {
        fprintf(out, " %s=", k);
        put_value(out, v);
    }
    fprintf(out, "\n%s  checkpoints:", indent);
    size_t i;
    json_array_foreach(json_object_get(o, "checkpoints"), i, v) fprintf(out, " %lld", (long long)json_integer_value(v));
    if (!json_array_size(json_object_get(o, "checkpoints"))) fputs(" none", out);
    if (json_is_true(json_object_get(o, "resumable"))) {
        fputs(" (resumable from step ", out);
        put_value(out, json_object_get(o, "resume_step"));
        fputs(")\n", out);
    } else {
        fputs(" (not resumable)\n", out);
    }
    fprintf(out, "%s  model: ", indent);
    put_value(out, json_object_get(o, "model"));
    fputc('\n', out);
    char deeper[32];
    snprintf(deeper, sizeof deeper, "%s  ", indent);
    json_array_foreach(json_object_get(o, "domains"), i, v) print_run(out, v, deeper);
}

/* Nothing a run leaves behind: not a run directory. */
static int empty_run(const json_t *o)
{
    return json_is_null(json_object_get(o, "last_metrics")) && !json_array_size(json_object_get(o, "checkpoints")) &&
           json_is_null(json_object_get(o, "model")) && !json_array_size(json_object_get(o, "domains"));
}

/* Runs on rank 0. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    const char *target = cli->args[0];
    const int as_json = *(const int *)ctx;
    struct stat sb;
    if (stat(target, &sb) != 0) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot inspect: %s", target, strerror(errno));
    json_t *o = json_object();
    DAPT_CHECK(built(o, target));
    const int is_dir = S_ISDIR(sb.st_mode);
    dapt_status st = is_dir ? inspect_run(target, o, 0) : inspect_file(target, o);
    if (st == DAPT_OK && is_dir && empty_run(o))
        st = DAPT_ERROR(DAPT_ERR_ARG, "%s is not a dapt run directory (no metrics.csv, finetune_metrics.csv, "
                                      "checkpoints/, model.h5 or domain directories)", target);
    if (st == DAPT_OK && as_json) {
        if (json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) != 0 || fputc('\n', stdout) == EOF)
            st = DAPT_ERROR(DAPT_ERR_IO, "cannot write to standard output");
    } else if (st == DAPT_OK) {
        if (is_dir) print_run(stdout, o, "");
        else print_file(stdout, o);
    }
    if (st == DAPT_OK && fflush(stdout) != 0) st = DAPT_ERROR(DAPT_ERR_IO, "cannot write to standard output");
    json_decref(o);
    return st;
}

int dapt_cmd_inspect(int argc, char **argv)
{
    int as_json = 0;
    const dapt_cli_option opts[] = {{.name = "json", .kind = DAPT_OPT_FLAG, .dest = &as_json}, {.name = NULL}};
    const dapt_cli_command cmd = {.name = "inspect", .usage = usage, .options = opts, .min_args = 1, .max_args = 1,
                                  .rank0 = 1, .run = run, .ctx = &as_json};
    return dapt_cli_main(argc, argv, &cmd);
}
