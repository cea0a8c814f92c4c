/* The starting model of a fine-tune: a model file with a fresh
 * classification head (dapt_task_load_classifier, task.h). */
#include <stdlib.h>
#include <string.h>

#include "dapt/log.h"
#include "task_internal.h"

dapt_status dapt_task_load_classifier(MPI_Comm comm, const char *path, int64_t n_labels, uint64_t seed,
                                      const dapt_tensor_spec *aux, size_t naux, dapt_model *m, dapt_model_meta *meta)
{
    dapt_model_config fmc, mc;
    dapt_param_table ftable;
    float *fparams = NULL;
    memset(m, 0, sizeof *m);
    DAPT_CHECK(dapt_modelfile_load(comm, path, &fmc, &ftable, &fparams, meta));
    mc = fmc;
    mc.num_labels = n_labels;
    mc.has_mlm_head = 0;
    /* BERT classifies the pooled [CLS]; RoBERTa's head reads <s> itself. */
    mc.has_pooler = mc.arch == DAPT_ARCH_BERT;
    dapt_status st = dapt_model_create_aux(&mc, aux, naux, m);
    if (st == DAPT_OK) {
        dapt_model_init_random(m, seed);
        int fresh_pooler = 0;
        for (size_t i = 0; i < m->table.count && st == DAPT_OK; i++) {
            const dapt_tensor *t = &m->table.tensors[i];
            if (!strncmp(t->name, "cls.", 4)) continue; /* always a fresh head */
            if ((t->flags & DAPT_TENSOR_AUX) && !dapt_param_find(&ftable, t->name)) continue;
            const dapt_tensor *src = dapt_param_find(&ftable, t->name);
            if (!src && !strncmp(t->name, "pooler.", 7)) {
                fresh_pooler = 1;
                continue;
            }
            if (!src || src->numel != t->numel)
                st = DAPT_ERROR(DAPT_ERR_INTERNAL, "%s: tensor %s missing or of another size", path, t->name);
            else
                memcpy(m->params + t->offset, fparams + src->offset, t->numel * sizeof(float));
        }
        if (fresh_pooler) dapt_warn("%s has no pooler: BERT's classifier reads one, so it starts from random weights", path);
    }
    dapt_param_table_free(&ftable);
    free(fparams);
    if (st != DAPT_OK) {
        dapt_model_free(m);
        dapt_model_meta_free(meta);
    }
    return st;
}

