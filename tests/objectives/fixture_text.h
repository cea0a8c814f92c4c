/* Reading the text fixtures of tests/fixtures/objectives (made by
 * tools/fixtures/make_mometas_fixtures.py): lines "key v0 v1 ...". */
#ifndef DAPT_TESTS_OBJECTIVES_FIXTURE_TEXT_H
#define DAPT_TESTS_OBJECTIVES_FIXTURE_TEXT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dapt/mlm.h"

/* The next word must be key, followed by n numbers; 0 on success. */
static inline int fixture_doubles(FILE *fp, const char *key, double *v, int64_t n)
{
    char k[32];
    if (fscanf(fp, "%31s", k) != 1 || strcmp(k, key)) return -1;
    for (int64_t i = 0; i < n; i++)
        if (fscanf(fp, "%lf", &v[i]) != 1) return -1;
    return 0;
}

static inline int fixture_ints(FILE *fp, const char *key, int32_t *v, int64_t n)
{
    char k[32];
    if (fscanf(fp, "%31s", k) != 1 || strcmp(k, key)) return -1;
    for (int64_t i = 0; i < n; i++)
        if (fscanf(fp, "%d", &v[i]) != 1) return -1;
    return 0;
}

/* id is one of the spec's special ids. */
static inline int fixture_is_special(const dapt_mlm_spec *m, int32_t id)
{
    for (size_t i = 0; i < m->n_special; i++)
        if (m->special[i] == id) return 1;
    return 0;
}

#endif
