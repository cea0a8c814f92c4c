/* The objectives dapt knows: each method's ops table, in its own file.
 * Adding a method: its file(s) under src/objectives/, one line here, its
 * config section in config_schema.def, its docs (docs/development.md). */
#include <stdio.h>
#include <string.h>

#include "dapt/objective.h"
#include "objectives.h"

#define MAX_OBJECTIVES 64

static const dapt_objective_ops *table[MAX_OBJECTIVES] = {
    &dapt_objective_mlm, &dapt_objective_one, &dapt_objective_kd, &dapt_objective_ewc,
    &dapt_objective_dga, &dapt_objective_das, &dapt_objective_cls, &dapt_objective_smart,
    &dapt_objective_atd, &dapt_objective_dtd, &dapt_objective_cse, &dapt_objective_mometas,
    &dapt_objective_emlm,
};
static size_t count = 13;

const dapt_objective_ops *dapt_objective_find(const char *name, unsigned need)
{
    for (size_t i = 0; i < count; i++)
        if (!strcmp(table[i]->name, name) && (table[i]->flags & need) == need) return table[i];
    return NULL;
}

dapt_status dapt_objective_register(const dapt_objective_ops *ops)
{
    if (!ops || !ops->name || !ops->micro_step)
        return DAPT_ERROR(DAPT_ERR_ARG, "an objective needs a name and a micro_step");
    for (size_t i = 0; i < count; i++)
        if (!strcmp(table[i]->name, ops->name))
            return DAPT_ERROR(DAPT_ERR_EXISTS, "objective %s is already registered", ops->name);
    if (count == MAX_OBJECTIVES) return DAPT_ERROR(DAPT_ERR_UNSUPPORTED, "too many objectives (%d)", MAX_OBJECTIVES);
    table[count++] = ops;
    return DAPT_OK;
}

void dapt_objective_names(unsigned need, char *buf, size_t len)
{
    size_t at = 0;
    if (len) buf[0] = 0;
    for (size_t i = 0; i < count && at < len; i++)
        if ((table[i]->flags & need) == need)
            at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? ", " : "", table[i]->name);
}
