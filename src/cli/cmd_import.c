/* dapt import HF_DIR OUT.h5: a Hugging Face model directory to a dapt model file. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/cli.h"
#include "dapt/fsio.h"
#include "dapt/hf.h"
#include "dapt/log.h"
#include "dapt/modelfile.h"

static void usage(void)
{
    printf("usage: dapt import HF_DIR OUT.h5 [--force]\n\n"
           "Reads HF_DIR/config.json, HF_DIR/model.safetensors and the tokenizer files\n"
           "(tokenizer.json, vocab.txt, vocab.json, merges.txt, tokenizer_config.json,\n"
           "special_tokens_map.json, added_tokens.json) of a BertForMaskedLM,\n"
           "RobertaForMaskedLM, BertForSequenceClassification,\n"
           "RobertaForSequenceClassification, BertModel or RobertaModel and writes a dapt\n"
           "model file (docs/formats.md).  A classifier with one label (problem_type\n"
           "regression or none) becomes a regression head (mean squared error), as in\n"
           "Hugging Face.  Weights become float32.  OUT.h5 is written under a temporary\n"
           "name and renamed when complete; an existing OUT.h5 is refused unless --force.\n"
           "Runs on rank 0.\n\n");
    dapt_cli_print_common_help();
}

/* Runs on rank 0: one process reads and writes, the others wait for the
 * verdict. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    const char *dir = cli->args[0], *out = cli->args[1];
    const int force = *(const int *)ctx;
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    if (!force && dapt_fs_exists(out))
        return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists (use --force to replace it)", out);
    DAPT_CHECK(dapt_hf_import(dir, &mc, &table, &params, &meta));
    dapt_status st = dapt_modelfile_save(MPI_COMM_SELF, out, force, &cli->cfg, &mc, &table, params, &meta);
    if (st == DAPT_OK) {
        size_t n = 0;
        for (size_t i = 0; i < table.count; i++) n += table.tensors[i].numel;
        dapt_info("imported %s (%s): %lld layers, hidden %lld, %lld heads, vocabulary %lld, %zu parameters, "
                  "%zu tokenizer files -> %s", meta.hf_architecture, dir, (long long)mc.layers,
                  (long long)mc.hidden, (long long)mc.heads, (long long)mc.vocab_size, n, meta.ntokenizer, out);
    }
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

int dapt_cmd_import(int argc, char **argv)
{
    int force = 0;
    const dapt_cli_option opts[] = {{.name = "force", .kind = DAPT_OPT_FLAG, .dest = &force}, {.name = NULL}};
    const dapt_cli_command cmd = {.name = "import", .usage = usage, .options = opts, .min_args = 2, .max_args = 2,
                                  .rank0 = 1, .run = run, .ctx = &force};
    return dapt_cli_main(argc, argv, &cmd);
}
