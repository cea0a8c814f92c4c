/* What --resume lets change: the configuration a checkpoint was written
 * with (its dapt_config attribute) against the one resuming it, key by key,
 * classified by the one table below (see dapt/checkpoint.h and
 * docs/training.md, "Resuming"). */
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/checkpoint.h"
#include "dapt/log.h"

#define TRAIN DAPT_RESUME_TRAIN
#define TUNE DAPT_RESUME_FINETUNE
#define REFUSED DAPT_RESUME_REFUSED
#define SAFE DAPT_RESUME_SAFE
#define LENGTH DAPT_RESUME_LENGTH

/* Which command reads a key, and what changing it between a checkpoint and
 * its resumption does.  A trailing '*' matches any rest ("das.*": the
 * section); the first match counts, so exceptions come before their
 * section.  Anything that changes the numbers the run computes is refused;
 * the layout is safe because a checkpoint resumes on any layout
 * (docs/parallel.md). */
typedef struct key_rule {
    const char *key;
    unsigned commands; /* the commands that read the key */
    dapt_resume_class cls;
    const char *why;
} key_rule;

static const key_rule rules[] = {
    {"run.seed", TRAIN | TUNE, REFUSED, "the data order, masks, dropout and head initialisation"},
    {"run.output_dir", TRAIN | TUNE, SAFE, "where the run's files go"},
    {"run.watchdog_s", TRAIN | TUNE, SAFE, "when a hung job is aborted"},
    {"data.corpus", TRAIN, REFUSED, "the training corpus"},
    {"data.general_corpus", TRAIN, REFUSED, "the general corpus of the importance proxy"},
    {"data.eval_fraction", TRAIN, REFUSED, "the train / held-out split, hence the data order"},
    {"data.seq_len", TRAIN, REFUSED, "the training sequences"},
    {"data.packing", TRAIN, REFUSED, "the training sequences"},
    {"data.verify", TRAIN | TUNE, SAFE, "whether inputs are checked when opened"},
    {"tokenizer.path", TRAIN, REFUSED, "the tokenizer of the corpus"},
    {"tokenizer.max_length", 0, SAFE, "read by dapt prepare only"},
    {"model.path", TRAIN | TUNE, REFUSED, "the model the run started from"},
    {"model.recompute", TRAIN | TUNE, SAFE, "memory only: recomputed activations are the same"},
    {"model.dropout", TRAIN | TUNE, REFUSED, "the model's dropout"},
    {"model.attention_dropout", TRAIN | TUNE, REFUSED, "the model's dropout"},
    {"model.init_std", TRAIN | TUNE, REFUSED, "the initialisation of new tensors"},
    {"model.*", TRAIN, REFUSED, "the model's shape"},
    {"train.method", TRAIN, REFUSED, "the objective"},
    {"train.steps", TRAIN, LENGTH, "the run's length"},
    {"train.grad_accum", TRAIN, SAFE, "micro-batches of the same global batch (the layout)"},
    {"train.eval_every", TRAIN, SAFE, "when the held-out loss is logged"},
    {"train.eval_batches", TRAIN, SAFE, "how much held-out data the logged loss uses"},
    {"train.log_every", TRAIN, SAFE, "when progress lines are printed"},
    {"train.max_bad_steps", TRAIN, SAFE, "how many skipped steps in a row stop the run"},
    {"train.adam_beta1", TRAIN | TUNE, REFUSED, "the optimizer"},
    {"train.adam_beta2", TRAIN | TUNE, REFUSED, "the optimizer"},
    {"train.batch_size", TRAIN, REFUSED, "the global batch, hence the data order"},
    {"train.lr", TRAIN, REFUSED, "the learning rate"},
    {"train.warmup_ratio", TRAIN, REFUSED, "the learning-rate schedule's shape"},
    {"train.warmup_steps", TRAIN, REFUSED, "the learning-rate schedule's shape"},
    {"train.schedule", TRAIN, REFUSED, "the learning-rate schedule's shape"},
    {"train.mlm_probability", TRAIN, REFUSED, "the masking"},
    {"train.inject_nan_*", TRAIN, REFUSED, "the steps made NaN (testing)"},
    {"train.*", TRAIN, REFUSED, "the optimizer"},
    {"parallel.*", TRAIN | TUNE, SAFE, "the parallel layout"},
    {"checkpoint.*", TRAIN | TUNE, SAFE, "when checkpoints are written and kept"},
    {"continual.*", TRAIN, REFUSED, "the sequence of domains"},
    {"das.representation_samples", TRAIN, SAFE, "how many representations are written"},
    {"das.*", TRAIN, REFUSED, "a DGA/DAS hyper-parameter"},
    {"kd.*", TRAIN, REFUSED, "a distillation hyper-parameter"},
    {"ewc.*", TRAIN, REFUSED, "an EWC hyper-parameter"},
    {"objectives.*", TRAIN, REFUSED, "a MOMETAS objective or sampler hyper-parameter"},
    {"finetune.epochs", TUNE, LENGTH, "the run's length"},
    {"finetune.micro_batch", TUNE, SAFE, "micro-batches of the same global batch (the layout)"},
    {"finetune.eval_batch_size", TUNE, SAFE, "how the dev split is batched"},
    {"finetune.log_every", TUNE, SAFE, "when progress lines are printed"},
    {"finetune.inject_stop_step", TUNE, SAFE, "a stop request, as a signal"},
    {"finetune.task", TUNE, REFUSED, "the task"},
    {"finetune.train_split", TUNE, REFUSED, "the training examples"},
    {"finetune.batch_size", TUNE, REFUSED, "the global batch, hence the example order"},
    {"finetune.lr", TUNE, REFUSED, "the learning rate"},
    {"finetune.warmup_ratio", TUNE, REFUSED, "the learning-rate schedule's shape"},
    {"finetune.warmup_steps", TUNE, REFUSED, "the learning-rate schedule's shape"},
    {"finetune.schedule", TUNE, REFUSED, "the learning-rate schedule's shape"},
    {"finetune.max_length", TUNE, REFUSED, "the examples' truncation"},
    {"finetune.dev_split", TUNE, REFUSED, "the model selection"},
    {"finetune.metric", TUNE, REFUSED, "the model selection"},
    {"finetune.patience", TUNE, REFUSED, "the early stopping"},
    {"finetune.*", TUNE, REFUSED, "the objective or optimizer"},
    {"smart.*", TUNE, REFUSED, "a SMART hyper-parameter"},
};

dapt_resume_class dapt_resume_key_class(const char *key, unsigned command, const char **why)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const char *k = rules[i].key;
        const size_t n = strlen(k);
        const int match = k[n - 1] == '*' ? !strncmp(key, k, n - 1) : !strcmp(key, k);
        if (!match) continue;
        if (why) *why = rules[i].why;
        return rules[i].commands & command ? rules[i].cls : DAPT_RESUME_UNREAD;
    }
    if (why) *why = NULL;
    return DAPT_RESUME_REFUSED;
}

/* ---- the keys of the schema ------------------------------------------------- */

typedef enum { KEY_INT, KEY_REAL, KEY_BOOL, KEY_TEXT } key_kind;

typedef struct key_field {
    const char *name;
    key_kind kind;
    size_t offset;
} key_field;

#define DAPT_SECTION(sec, help)
#define DAPT_END(sec)
#define DAPT_INT(sec, key, def, lo, hi, help) {#sec "." #key, KEY_INT, offsetof(dapt_config, sec.key)},
#define DAPT_REAL(sec, key, def, lo, hi, help) {#sec "." #key, KEY_REAL, offsetof(dapt_config, sec.key)},
#define DAPT_BOOL(sec, key, def, help) {#sec "." #key, KEY_BOOL, offsetof(dapt_config, sec.key)},
#define DAPT_STR(sec, key, def, help) {#sec "." #key, KEY_TEXT, offsetof(dapt_config, sec.key)},
#define DAPT_ENUM(sec, key, def, choices, help) {#sec "." #key, KEY_TEXT, offsetof(dapt_config, sec.key)},
static const key_field fields[] = {
#include "dapt/config_schema.def"
};
#undef DAPT_SECTION
#undef DAPT_END
#undef DAPT_INT
#undef DAPT_REAL
#undef DAPT_BOOL
#undef DAPT_STR
#undef DAPT_ENUM

/* The two values of a changed key as text; reals with just enough digits
 * to tell them apart. */
static int field_differs(const key_field *k, const dapt_config *a, const dapt_config *b, char *va, char *vb, size_t len)
{
    const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
    switch (k->kind) {
    case KEY_INT: {
        int64_t x, y;
        memcpy(&x, pa, sizeof x);
        memcpy(&y, pb, sizeof y);
        snprintf(va, len, "%lld", (long long)x);
        snprintf(vb, len, "%lld", (long long)y);
        return x != y;
    }
    case KEY_REAL: {
        double x, y;
        memcpy(&x, pa, sizeof x);
        memcpy(&y, pb, sizeof y);
        for (int p = 6; p <= 17; p++) {
            snprintf(va, len, "%.*g", p, x);
            snprintf(vb, len, "%.*g", p, y);
            if (strcmp(va, vb)) break;
        }
        return x != y;
    }
    case KEY_BOOL: {
        int x, y;
        memcpy(&x, pa, sizeof x);
        memcpy(&y, pb, sizeof y);
        snprintf(va, len, "%s", x ? "true" : "false");
        snprintf(vb, len, "%s", y ? "true" : "false");
        return x != y;
    }
    case KEY_TEXT:
        snprintf(va, len, "'%s'", pa);
        snprintf(vb, len, "'%s'", pb);
        return strcmp(pa, pb) != 0;
    }
    return 0;
}

/* ---- the notice for the run's length ------------------------------------- */

/* How the schedule changes with the run's length: where the decay ends,
 * the warm-up, and the next step's learning rate. */
static void length_notice(const char *key, const char *was, const char *now, const dapt_config *old,
                          const dapt_config *cfg, const dapt_resume_spec *spec)
{
    dapt_lr_schedule a, b;
    if (!spec->schedule || spec->schedule(old, spec->schedule_ctx, &a) != DAPT_OK ||
        spec->schedule(cfg, spec->schedule_ctx, &b) != DAPT_OK) {
        dapt_info("--resume: %s was %s, is %s now: the run's length and its learning-rate schedule change", key, was,
                  now);
        return;
    }
    if (spec->step >= b.total_steps) {
        dapt_info("--resume: %s was %s, is %s now: the checkpoint is at step %lld, so nothing is left to train", key, was,
                  now, (long long)spec->step);
        return;
    }
    char shape[160], warmup[96] = "";
    if (b.kind == DAPT_SCHEDULE_LINEAR)
        snprintf(shape, sizeof shape, "the linear decay reaches 0 at step %lld instead of %lld", (long long)b.total_steps,
                 (long long)a.total_steps);
    else
        snprintf(shape, sizeof shape, "the rate stays constant after warm-up, now to step %lld instead of %lld",
                 (long long)b.total_steps, (long long)a.total_steps);
    /* A warm-up given as a ratio of the run scales with it. */
    if (a.warmup_steps != b.warmup_steps)
        snprintf(warmup, sizeof warmup, ", warm-up %lld steps instead of %lld", (long long)b.warmup_steps,
                 (long long)a.warmup_steps);
    dapt_info("--resume: %s was %s, is %s now: the learning-rate schedule is recomputed: %s%s; step %lld runs at lr %.4g instead of %.4g",
              key, was, now, shape, warmup, (long long)spec->step + 1, dapt_lr_at(&b, spec->step),
              dapt_lr_at(&a, spec->step));
}

/* ---- the stored configuration -------------------------------------------- */

#define MAX_RAW 32

/* The checkpoint's configuration: every key this dapt accepts in cfg; the
 * others as text (a key of another dapt version, a plug-in objective's
 * train.method the schema's enum does not list), compared as text. */
typedef struct stored {
    dapt_config cfg;
    const char *path;
    size_t n_raw;
    struct {
        char name[128];
        char value[DAPT_CONFIG_STR_MAX];
    } raw[MAX_RAW];
} stored;

static int stored_key(void *user, const char *section, const char *key, const char *value)
{
    stored *s = user;
    if (dapt_config_set_value(&s->cfg, section, key, value, s->path) == DAPT_OK) return 1;
    dapt_error_clear();
    if (s->n_raw < MAX_RAW) {
        snprintf(s->raw[s->n_raw].name, sizeof s->raw[0].name, "%s.%s", section, key);
        snprintf(s->raw[s->n_raw].value, sizeof s->raw[0].value, "%s", value);
        s->n_raw++;
    }
    return 1; /* the other keys still count */
}

static const char *raw_value(const stored *s, const char *name)
{
    for (size_t i = 0; i < s->n_raw; i++)
        if (!strcmp(s->raw[i].name, name)) return s->raw[i].value;
    return NULL;
}

static int schema_key(const char *name)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!strcmp(fields[i].name, name)) return 1;
    return 0;
}

/* ---- the comparison ---------------------------------------------------------- */

/* What the comparison found: the first refused key's line, the others' names. */
typedef struct refusals {
    int count;
    char first[1536];
    char others[512];
} refusals;

static void refuse(refusals *r, const char *line, const char *key)
{
    if (r->count++ == 0) {
        snprintf(r->first, sizeof r->first, "%s", line);
        return;
    }
    const size_t n = strlen(r->others);
    if (n + strlen(key) + 8 < sizeof r->others) snprintf(r->others + n, sizeof r->others - n, "%s%s", n ? ", " : "", key);
    else if (n + 5 < sizeof r->others && strcmp(r->others + n - 3, "...")) strcat(r->others, ", ...");
}

/* One changed key: a notice, a warning (override) or a refusal. */
static void changed(const char *name, const char *was, const char *now, const char *file, const stored *old,
                    const dapt_config *cfg, const dapt_resume_spec *spec, refusals *rf)
{
    const char *why = NULL;
    const dapt_resume_class cls = dapt_resume_key_class(name, spec->command, &why);
    if (!why) why = schema_key(name) ? "a key --resume does not classify yet" : "not a key of this dapt";
    if (cls == DAPT_RESUME_SAFE) {
        dapt_info("--resume: %s was %s, is %s now (%s): safe to change", name, was, now, why);
    } else if (cls == DAPT_RESUME_LENGTH) {
        length_notice(name, was, now, &old->cfg, cfg, spec);
    } else if (cls == DAPT_RESUME_REFUSED && spec->override) {
        dapt_warn("--override-resume-check: %s was %s in %s, is %s now (%s): resuming anyway", name, was, file, now,
                  why);
    } else if (cls == DAPT_RESUME_REFUSED) {
        char line[sizeof rf->first];
        snprintf(line, sizeof line, "--resume: %s was %s in %s, is %s now (%s): resuming would continue another run; restore it or pass --override-resume-check",
                 name, was, file, now, why);
        refuse(rf, line, name);
    }
}

static void compare(const char *path, const stored *old, const dapt_config *cfg, const dapt_resume_spec *spec,
                    refusals *rf)
{
    const char *slash = strrchr(path, '/'), *file = slash ? slash + 1 : path;
    char was[DAPT_CONFIG_STR_MAX + 8], now[DAPT_CONFIG_STR_MAX + 8];
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const key_field *k = &fields[i];
        const char *raw = raw_value(old, k->name);
        int differs = field_differs(k, &old->cfg, cfg, was, now, sizeof was);
        if (raw) { /* only text can tell: a value this schema does not accept differs */
            differs = k->kind != KEY_TEXT || strcmp(raw, (const char *)cfg + k->offset);
            snprintf(was, sizeof was, "'%s'", raw);
        }
        if (differs) changed(k->name, was, now, file, old, cfg, spec, rf);
    }
    for (size_t i = 0; i < old->n_raw; i++)
        if (!schema_key(old->raw[i].name)) {
            snprintf(was, sizeof was, "'%s'", old->raw[i].value);
            changed(old->raw[i].name, was, "absent", file, old, cfg, spec, rf);
        }
}

/* The checkpoint's configuration, read by every rank of comm. */
static dapt_status stored_config(MPI_Comm comm, const char *path, char **text)
{
    dapt_h5file f;
    DAPT_CHECK(dapt_h5_open(comm, path, &f));
    dapt_status st = dapt_h5_attr_get_string(&f, "/", "dapt_config", text);
    dapt_h5_close(&f);
    return st;
}

dapt_status dapt_resume_check(MPI_Comm comm, const char *path, const dapt_config *cfg, const dapt_resume_spec *spec)
{
    char *text = NULL;
    stored *old = NULL;
    refusals *rf = NULL;
    dapt_status st = dapt_status_agree(comm, stored_config(comm, path, &text));
    if (st != DAPT_OK) goto cleanup;
    DAPT_TRY(dapt_calloc((void **)&old, 1, sizeof *old, "stored configuration"));
    DAPT_TRY(dapt_calloc((void **)&rf, 1, sizeof *rf, "resume check"));
    dapt_config_defaults(&old->cfg);
    old->path = path;
    if (ini_parse_string(text, stored_key, old) != 0)
        DAPT_THROW(DAPT_ERR_FORMAT, "%s: the stored configuration (attribute dapt_config) is not INI text", path);
    compare(path, old, cfg, spec, rf);
    if (rf->count == 1) DAPT_THROW(DAPT_ERR_CONFIG, "%s", rf->first);
    if (rf->count > 1) DAPT_THROW(DAPT_ERR_CONFIG, "%s (also changed: %s)", rf->first, rf->others);
cleanup:
    free(text);
    free(old);
    free(rf);
    return st;
}
