/* config.json of a Hugging Face directory (dapt_hf_import), next to the
 * tiny BERT classifier's model.safetensors so that a configuration that
 * parses goes on to the tensor checks. */
#include <stdlib.h>

#include "dapt/hf.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!fuzz_init(argc, argv)) return 0;
    fuzz_copy("tests/fixtures/hf/bert_cls/model.safetensors", "model.safetensors");
    fuzz_copy("tests/fixtures/hf/bert_cls/vocab.txt", "vocab.txt");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_write("config.json", data, size);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", fuzz_path("."));
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    dapt_status st = dapt_hf_import(dir, &mc, &table, &params, &meta);
    fuzz_done(st);
    if (st == DAPT_OK) {
        free(params);
        dapt_param_table_free(&table);
        dapt_model_meta_free(&meta);
    }
    return 0;
}
