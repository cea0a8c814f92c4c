/* Run configuration: an INI file (parsed with inih) plus --set overrides.
 *
 * The schema lives in config_schema.def.  Unknown sections or keys,
 * malformed numbers and out-of-range values are rejected with one line
 * "file:line: section.key: reason" recorded via dapt_error_set.  Nothing
 * here is collective: every rank parses the same file (the driver checks
 * that the resolved text agrees across ranks). */
#ifndef DAPT_CONFIG_H
#define DAPT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dapt/status.h"

#define DAPT_CONFIG_STR_MAX 512

/* struct dapt_config { struct { ... } run; struct { ... } data; ... }; */
#define DAPT_SECTION(sec, help) struct {
#define DAPT_END(sec) } sec;
#define DAPT_INT(sec, key, def, lo, hi, help) int64_t key;
#define DAPT_REAL(sec, key, def, lo, hi, help) double key;
#define DAPT_BOOL(sec, key, def, help) int key;
#define DAPT_STR(sec, key, def, help) char key[DAPT_CONFIG_STR_MAX];
#define DAPT_ENUM(sec, key, def, choices, help) char key[DAPT_CONFIG_STR_MAX];
typedef struct dapt_config {
#include "dapt/config_schema.def"
} dapt_config;
#undef DAPT_SECTION
#undef DAPT_END
#undef DAPT_INT
#undef DAPT_REAL
#undef DAPT_BOOL
#undef DAPT_STR
#undef DAPT_ENUM

/* Fills cfg with every default. */
void dapt_config_defaults(dapt_config *cfg);

/* Parses an INI file on top of cfg's current values. */
dapt_status dapt_config_load_file(dapt_config *cfg, const char *path);

/* Parses INI text (name is used in messages as the file name). */
dapt_status dapt_config_load_string(dapt_config *cfg, const char *text, const char *name);

/* Applies one override "section.key=value" (as given to --set). */
dapt_status dapt_config_set(dapt_config *cfg, const char *assignment);

/* Sets one key by section and name; where is the location for messages. */
dapt_status dapt_config_set_value(dapt_config *cfg, const char *section, const char *key,
                                  const char *value, const char *where);

/* Writes the resolved configuration as INI text (every key, with its help
 * as a comment when with_help).  *out is malloc'd; the caller frees it. */
dapt_status dapt_config_to_ini(const dapt_config *cfg, int with_help, char **out);

/* Splits a comma-separated list value into at most max trimmed items stored
 * in items[i] (pointers into buf, a copy of value).  Returns the count in
 * *count. */
dapt_status dapt_config_split_list(const char *value, char *buf, size_t buflen,
                                   char **items, size_t max, size_t *count);

#endif
