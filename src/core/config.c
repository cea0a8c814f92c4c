/* Run configuration: schema-driven INI parsing with inih. */
#include "dapt/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/suggest.h"

typedef enum { KEY_INT, KEY_REAL, KEY_BOOL, KEY_STR, KEY_ENUM } key_type;

typedef struct schema_entry {
    const char *section, *key, *help, *default_text, *choices;
    key_type type;
    size_t offset;
    int64_t int_min, int_max;
    double real_min, real_max;
} schema_entry;

typedef struct section_entry {
    const char *name, *help;
} section_entry;

#define DAPT_SECTION(sec, help)
#define DAPT_END(sec)
#define DAPT_INT(sec, key, def, lo, hi, help) \
    {#sec, #key, help, #def, NULL, KEY_INT, offsetof(dapt_config, sec.key), lo, hi, 0, 0},
#define DAPT_REAL(sec, key, def, lo, hi, help) \
    {#sec, #key, help, #def, NULL, KEY_REAL, offsetof(dapt_config, sec.key), 0, 0, lo, hi},
#define DAPT_BOOL(sec, key, def, help) \
    {#sec, #key, help, (def) ? "true" : "false", NULL, KEY_BOOL, offsetof(dapt_config, sec.key), 0, 1, 0, 0},
#define DAPT_STR(sec, key, def, help) \
    {#sec, #key, help, def, NULL, KEY_STR, offsetof(dapt_config, sec.key), 0, 0, 0, 0},
#define DAPT_ENUM(sec, key, def, choices, help) \
    {#sec, #key, help, def, choices, KEY_ENUM, offsetof(dapt_config, sec.key), 0, 0, 0, 0},
static const schema_entry schema[] = {
#include "dapt/config_schema.def"
};
#undef DAPT_SECTION
#undef DAPT_INT
#undef DAPT_REAL
#undef DAPT_BOOL
#undef DAPT_STR
#undef DAPT_ENUM

#define DAPT_SECTION(sec, help) {#sec, help},
#define DAPT_INT(...)
#define DAPT_REAL(...)
#define DAPT_BOOL(...)
#define DAPT_STR(...)
#define DAPT_ENUM(...)
static const section_entry sections[] = {
#include "dapt/config_schema.def"
};
#undef DAPT_SECTION
#undef DAPT_END
#undef DAPT_INT
#undef DAPT_REAL
#undef DAPT_BOOL
#undef DAPT_STR
#undef DAPT_ENUM

#define SCHEMA_COUNT (sizeof schema / sizeof schema[0])
#define SECTION_COUNT (sizeof sections / sizeof sections[0])

static const schema_entry *find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < SCHEMA_COUNT; i++)
        if (!strcmp(schema[i].section, section) && !strcmp(schema[i].key, key)) return &schema[i];
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < SECTION_COUNT; i++)
        if (!strcmp(sections[i].name, section)) return 1;
    return 0;
}

/* Parses a whole string as a number; trailing garbage is an error. */
static int parse_int64(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || errno == ERANGE) return -1;
    while (isspace((unsigned char)*end)) end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

static int parse_real(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno == ERANGE || !isfinite(v)) return -1;
    while (isspace((unsigned char)*end)) end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *text, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(text, yes[i])) return *out = 1, 0;
        if (!strcmp(text, no[i])) return *out = 0, 0;
    }
    return -1;
}

static int choice_allowed(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t clen = bar ? (size_t)(bar - c) : strlen(c);
        if (clen == len && !strncmp(c, value, len)) return 1;
        if (!bar) break;
        c = bar + 1;
    }
    return 0;
}

/* The longest line the INI reader takes (dapt_config_load_string). */
#define INI_LINE_LIMIT (INI_MAX_LINE - 3)

/* Why `dapt config show` would print a string value that the INI reader
 * cannot read back as the same string (NULL when it can): the line "key =
 * value" must fit the reader's line limit, and inih drops a comment (a
 * leading ';' or '#', or ';' after white space), strips surrounding white
 * space and ends the value at a line break. */
static const char *ini_unreadable(const schema_entry *e, const char *value, char *why, size_t len)
{
    const size_t n = strlen(value), line = strlen(e->key) + 3 + n;
    if (line > INI_LINE_LIMIT) {
        snprintf(why, len, "a value of %zu characters is too long (\"%s = VALUE\" must fit in %d characters, "
                 "so at most %zu)", n, e->key, INI_LINE_LIMIT, (size_t)INI_LINE_LIMIT - strlen(e->key) - 3);
        return why;
    }
    if (value[0] == ';' || value[0] == '#') return "a value may not start with ';' or '#' (a comment)";
    if (n && (isspace((unsigned char)value[0]) || isspace((unsigned char)value[n - 1])))
        return "a value may not start or end with white space";
    for (size_t i = 0; i < n; i++) {
        if (value[i] == '\n' || value[i] == '\r') return "a value may not hold a line break";
        if (value[i] == ';' && i > 0 && isspace((unsigned char)value[i - 1]))
            return "a value may not hold ';' after white space (an inline comment)";
    }
    return NULL;
}

static dapt_status assign(dapt_config *cfg, const schema_entry *e, const char *value, const char *where)
{
    char *field = (char *)cfg + e->offset;
    switch (e->type) {
    case KEY_INT: {
        int64_t v;
        if (parse_int64(value, &v))
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: '%s' is not an integer", where, e->section,
                              e->key, value);
        if (v < e->int_min || v > e->int_max)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: %lld is out of range [%lld, %lld]", where,
                              e->section, e->key, (long long)v, (long long)e->int_min,
                              (long long)e->int_max);
        memcpy(field, &v, sizeof v);
        return DAPT_OK;
    }
    case KEY_REAL: {
        double v;
        if (parse_real(value, &v))
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: '%s' is not a finite number", where,
                              e->section, e->key, value);
        if (v < e->real_min || v > e->real_max)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: %g is out of range [%g, %g]", where,
                              e->section, e->key, v, e->real_min, e->real_max);
        memcpy(field, &v, sizeof v);
        return DAPT_OK;
    }
    case KEY_BOOL: {
        int v;
        if (parse_bool(value, &v))
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: '%s' is not a boolean (true/false)", where,
                              e->section, e->key, value);
        memcpy(field, &v, sizeof v);
        return DAPT_OK;
    }
    case KEY_ENUM:
        if (!choice_allowed(e->choices, value))
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: '%s' is not one of %s", where, e->section,
                              e->key, value, e->choices);
        /* fall through */
    case KEY_STR: {
        if (strlen(value) >= DAPT_CONFIG_STR_MAX)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: value longer than %d bytes", where,
                              e->section, e->key, DAPT_CONFIG_STR_MAX - 1);
        char why[160];
        const char *bad = ini_unreadable(e, value, why, sizeof why);
        if (bad)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: %s: it would not read back from the configuration",
                              where, e->section, e->key, bad);
        memcpy(field, value, strlen(value) + 1);
        return DAPT_OK;
    }
    }
    return DAPT_ERROR(DAPT_ERR_INTERNAL, "bad key type");
}

void dapt_config_defaults(dapt_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        /* Defaults go through the same validation; a bad one is a bug. */
        if (assign(cfg, &schema[i], schema[i].default_text, "default") != DAPT_OK) {
            fprintf(stderr, "dapt: internal error: %s\n", dapt_error_message());
            abort();
        }
    }
}

/* "; did you mean [train]?" for a mistyped section name, or "" (into buf). */
static void suggest_section(const char *section, char *buf, size_t len)
{
    dapt_suggestion s;
    dapt_suggest_start(&s, section);
    for (size_t i = 0; i < SECTION_COUNT; i++) dapt_suggest_offer(&s, sections[i].name);
    const char *hit = dapt_suggest_result(&s);
    buf[0] = '\0';
    if (hit) snprintf(buf, len, "; did you mean [%s]?", hit);
}

/* "; did you mean train.steps?" for a mistyped section.key, or "" (into
 * buf): the closest full name, so a typo in either part is found; failing
 * that, the same key in another section (train.vocab_size: model.vocab_size). */
static void suggest_key(const char *section, const char *key, char *buf, size_t len)
{
    char typed[DAPT_SUGGEST_MAX], full[DAPT_SUGGEST_MAX];
    snprintf(typed, sizeof typed, "%s.%s", section, key);
    dapt_suggestion s;
    dapt_suggest_start(&s, typed);
    const schema_entry *same_key = NULL;
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        snprintf(full, sizeof full, "%s.%s", schema[i].section, schema[i].key);
        dapt_suggest_offer(&s, full);
        if (!same_key && !strcmp(schema[i].key, key)) same_key = &schema[i];
    }
    const char *hit = dapt_suggest_result(&s);
    buf[0] = '\0';
    if (hit) snprintf(buf, len, "; did you mean %s?", hit);
    else if (same_key) snprintf(buf, len, "; did you mean %s.%s?", same_key->section, same_key->key);
}

/* Keys that moved to a section of their own: refused with the new name. */
static const char *moved_to(const char *section, const char *key)
{
    static const char *const moved[][3] = {
        {"das", "domains", "continual.domains"}, {"das", "corpora", "continual.corpora"},
        {"das", "kd_lambda", "kd.lambda"},       {"das", "ewc_lambda", "ewc.lambda"},
        {"das", "ewc_samples", "ewc.samples"},
    };
    for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++)
        if (!strcmp(moved[i][0], section) && !strcmp(moved[i][1], key)) return moved[i][2];
    return NULL;
}

dapt_status dapt_config_set_value(dapt_config *cfg, const char *section, const char *key,
                                  const char *value, const char *where)
{
    if (!*section)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s: key outside any [section]", where, key);
    char hint[DAPT_SUGGEST_MAX + 32];
    if (!section_known(section)) {
        suggest_key(section, key, hint, sizeof hint);
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: unknown section [%s]%s", where, section, hint);
    }
    const schema_entry *e = find_key(section, key);
    if (!e) {
        const char *moved = moved_to(section, key);
        if (moved) return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s is now %s", where, section, key, moved);
        suggest_key(section, key, hint, sizeof hint);
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: %s.%s: unknown key%s", where, section, key, hint);
    }
    return assign(cfg, e, value, where);
}

typedef struct parse_context {
    dapt_config *cfg;
    const char *name;
    dapt_status status;
    unsigned char seen[SCHEMA_COUNT];
} parse_context;

static int on_ini_key(void *user, const char *section, const char *key, const char *value)
{
    parse_context *ctx = user;
    if (ctx->status != DAPT_OK) return 0; /* keep the first error only */
    const schema_entry *e = find_key(section, key);
    if (e && ctx->seen[e - schema]) {
        ctx->status = DAPT_ERROR(DAPT_ERR_CONFIG, "@LINE@: %s.%s: duplicate key", section, key);
        return 0;
    }
    ctx->status = dapt_config_set_value(ctx->cfg, section, key, value, "@LINE@");
    if (e && ctx->status == DAPT_OK) ctx->seen[e - schema] = 1;
    return ctx->status == DAPT_OK;
}

/* inih reports the failing line only after the handler ran; the handler writes
 * "@LINE@" and this puts "name:line" in its place, dropping the source
 * location prefix that would only point into config.c. */
static dapt_status finish_parse(parse_context *ctx, int rc)
{
    if (rc == 0) return DAPT_OK;
    if (rc == -2) return DAPT_ERROR(DAPT_ERR_NOMEM, "%s: out of memory while parsing", ctx->name);
    if (ctx->status == DAPT_OK)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s:%d: malformed line (expected [section] or key = value)",
                          ctx->name, rc);
    const char *msg = dapt_error_message();
    const char *marker = strstr(msg, "@LINE@");
    char text[1024];
    snprintf(text, sizeof text, "%s", marker ? marker + 6 : msg);
    return DAPT_ERROR(ctx->status, "%s:%d%s", ctx->name, rc, text);
}

dapt_status dapt_config_load_string(dapt_config *cfg, const char *text, const char *name)
{
    /* Check the line structure before inih sees it: inih silently splits
     * lines longer than its buffer, and it reports a malformed line only after
     * calling the handler for later lines, so the first error would carry the
     * wrong line number. */
    int line = 1;
    for (const char *start = text; *start; line++) {
        const char *end = strchr(start, '\n');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len > INI_LINE_LIMIT)
            return DAPT_ERROR(DAPT_ERR_CONFIG, "%s:%d: line longer than %d characters", name, line,
                              INI_LINE_LIMIT);
        const char *c = start;
        while (c < start + len && isspace((unsigned char)*c)) c++;
        int blank = c == start + len || *c == ';' || *c == '#';
        int section = !blank && *c == '[' && memchr(c, ']', (size_t)(start + len - c));
        int pair = !blank && *c != '[' && (memchr(c, '=', (size_t)(start + len - c)) ||
                                           memchr(c, ':', (size_t)(start + len - c)));
        if (!blank && !section && !pair)
            return DAPT_ERROR(DAPT_ERR_CONFIG,
                              "%s:%d: malformed line (expected [section] or key = value)", name, line);
        if (section) {
            /* inih only reports keys, so an empty unknown section would pass. */
            const char *close = memchr(c, ']', (size_t)(start + len - c));
            char sec[128];
            size_t slen = (size_t)(close - c - 1);
            if (slen >= sizeof sec) slen = sizeof sec - 1;
            memcpy(sec, c + 1, slen);
            sec[slen] = '\0';
            if (!section_known(sec)) {
                char hint[DAPT_SUGGEST_MAX + 32];
                suggest_section(sec, hint, sizeof hint);
                return DAPT_ERROR(DAPT_ERR_CONFIG, "%s:%d: unknown section [%s]%s", name, line, sec, hint);
            }
        }
        if (!end) break;
        start = end + 1;
    }
    parse_context ctx = {.cfg = cfg, .name = name, .status = DAPT_OK};
    int rc = ini_parse_string(text, on_ini_key, &ctx);
    return finish_parse(&ctx, rc);
}

dapt_status dapt_config_load_file(dapt_config *cfg, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    dapt_status st = DAPT_OK;
    char *text = NULL;
    if (fseek(f, 0, SEEK_END) != 0) DAPT_THROW(DAPT_ERR_IO, "%s: cannot seek: %s", path, strerror(errno));
    long size = ftell(f);
    if (size < 0) DAPT_THROW(DAPT_ERR_IO, "%s: cannot tell size: %s", path, strerror(errno));
    if (size > (1L << 24)) DAPT_THROW(DAPT_ERR_CONFIG, "%s: %ld bytes is too large for a configuration file", path, size);
    rewind(f);
    DAPT_TRY(dapt_alloc((void **)&text, (size_t)size + 1, "configuration text"));
    if (fread(text, 1, (size_t)size, f) != (size_t)size)
        DAPT_THROW(DAPT_ERR_IO, "%s: read failed: %s", path, strerror(errno));
    text[size] = '\0';
    if (memchr(text, '\0', (size_t)size))
        DAPT_THROW(DAPT_ERR_CONFIG, "%s: contains NUL bytes (not a text file)", path);
    st = dapt_config_load_string(cfg, text, path);
cleanup:
    free(text);
    fclose(f);
    return st;
}

dapt_status dapt_config_set(dapt_config *cfg, const char *assignment)
{
    char where[300];
    snprintf(where, sizeof where, "--set %s", assignment);
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: expected section.key=value", where);
    char section[128], key[128];
    size_t slen = (size_t)(dot - assignment), klen = (size_t)(eq - dot - 1);
    if (slen >= sizeof section || klen >= sizeof key)
        return DAPT_ERROR(DAPT_ERR_CONFIG, "%s: name too long", where);
    memcpy(section, assignment, slen);
    section[slen] = '\0';
    memcpy(key, dot + 1, klen);
    key[klen] = '\0';
    return dapt_config_set_value(cfg, section, key, eq + 1, where);
}

/* Growable text buffer for to_ini. */
typedef struct text_buf {
    char *data;
    size_t len, cap;
    int failed;
} text_buf;

static void append(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text_buf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = 2 * b->cap + (size_t)n + 1;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
}

/* Shortest decimal text that reads back to the same double. */
static void format_real(double v, char *buf, size_t len)
{
    for (int precision = 6; precision <= 17; precision++) {
        snprintf(buf, len, "%.*g", precision, v);
        if (strtod(buf, NULL) == v) return;
    }
}

dapt_status dapt_config_to_ini(const dapt_config *cfg, int with_help, char **out)
{
    text_buf b = {0};
    b.cap = 4096;
    b.data = malloc(b.cap);
    if (!b.data) return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot allocate configuration text");
    b.data[0] = '\0';
    const char *current = NULL;
    for (size_t i = 0; i < SCHEMA_COUNT; i++) {
        const schema_entry *e = &schema[i];
        if (!current || strcmp(current, e->section)) {
            for (size_t s = 0; s < SECTION_COUNT; s++)
                if (!strcmp(sections[s].name, e->section)) {
                    append(&b, "%s[%s]", current ? "\n" : "", e->section);
                    if (with_help) append(&b, "  ; %s", sections[s].help);
                    append(&b, "\n");
                }
            current = e->section;
        }
        const char *field = (const char *)cfg + e->offset;
        char value[64];
        /* The help goes on its own comment line when "key = value  ; help"
         * would be longer than the reader takes. */
        const size_t help_len = 4 + strlen(e->help) + (e->type == KEY_ENUM ? 3 + strlen(e->choices) : 0);
        const int help_above = with_help && e->type == KEY_STR &&
                               strlen(e->key) + 3 + strlen(field) + help_len > INI_LINE_LIMIT;
        if (help_above) append(&b, "; %s\n", e->help);
        switch (e->type) {
        case KEY_INT: {
            int64_t v;
            memcpy(&v, field, sizeof v);
            append(&b, "%s = %lld", e->key, (long long)v);
            break;
        }
        case KEY_REAL: {
            double v;
            memcpy(&v, field, sizeof v);
            format_real(v, value, sizeof value);
            append(&b, "%s = %s", e->key, value);
            break;
        }
        case KEY_BOOL: {
            int v;
            memcpy(&v, field, sizeof v);
            append(&b, "%s = %s", e->key, v ? "true" : "false");
            break;
        }
        case KEY_STR:
        case KEY_ENUM:
            append(&b, "%s = %s", e->key, field);
            break;
        }
        if (with_help && !help_above) {
            append(&b, "  ; %s", e->help);
            if (e->type == KEY_ENUM) append(&b, " (%s)", e->choices);
        }
        append(&b, "\n");
    }
    if (b.failed) {
        free(b.data);
        return DAPT_ERROR(DAPT_ERR_NOMEM, "cannot format configuration text");
    }
    *out = b.data;
    return DAPT_OK;
}

dapt_status dapt_config_split_list(const char *value, char *buf, size_t buflen, char **items,
                                   size_t max, size_t *count)
{
    size_t len = strlen(value);
    if (len >= buflen) return DAPT_ERROR(DAPT_ERR_CONFIG, "list '%s' is too long", value);
    memcpy(buf, value, len + 1);
    *count = 0;
    if (len == 0) return DAPT_OK;
    /* Split by hand: strtok would silently merge "a,,b" into two items. */
    for (char *tok = buf;;) {
        char *comma = strchr(tok, ',');
        if (comma) *comma = '\0';
        while (isspace((unsigned char)*tok)) tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1])) *--end = '\0';
        if (!*tok) return DAPT_ERROR(DAPT_ERR_CONFIG, "list '%s' has an empty item", value);
        if (*count == max) return DAPT_ERROR(DAPT_ERR_CONFIG, "list '%s' has more than %zu items", value, max);
        items[(*count)++] = tok;
        if (!comma) break;
        tok = comma + 1;
    }
    return DAPT_OK;
}
