/* The tokenizer a model file carries: its files (dapt_model_meta.tokenizer)
 * unpacked into a private temporary directory, used, and removed. */
#include <stdio.h>
#include <stdlib.h>

#include "dapt/fsio.h"
#include "dapt/modelfile.h"
#include "dapt/tokenizer.h"

dapt_status dapt_model_tokenizer_write(const dapt_model_meta *meta, const char *dir)
{
    dapt_status st = DAPT_OK;
    for (size_t i = 0; i < meta->ntokenizer && st == DAPT_OK; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, meta->tokenizer[i].name);
        st = dapt_fs_write_atomic(path, meta->tokenizer[i].data, meta->tokenizer[i].size, 1);
    }
    return st;
}

dapt_status dapt_model_tokenizer_dir(const dapt_model_meta *meta, const char *model_path,
                                     dapt_status (*use)(const char *dir, void *ctx), void *ctx)
{
    if (meta->ntokenizer == 0) return DAPT_ERROR(DAPT_ERR_ARG, "%s carries no tokenizer files", model_path);
    char dir[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dapt-tokenizer-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return DAPT_ERROR(DAPT_ERR_IO, "%s: cannot make a temporary directory", dir);
    dapt_status st = dapt_model_tokenizer_write(meta, dir);
    if (st == DAPT_OK) st = use(dir, ctx);
    dapt_status removed = dapt_fs_remove_tree(dir);
    return st != DAPT_OK ? st : removed;
}

static dapt_status load(const char *dir, void *tok)
{
    return dapt_tokenizer_load(dir, (dapt_tokenizer **)tok);
}

dapt_status dapt_model_tokenizer(const dapt_model_meta *meta, const char *model_path, dapt_tokenizer **tok)
{
    *tok = NULL;
    dapt_status st = dapt_model_tokenizer_dir(meta, model_path, load, tok);
    if (st != DAPT_OK) {
        dapt_tokenizer_free(*tok);
        *tok = NULL;
    }
    return st;
}
