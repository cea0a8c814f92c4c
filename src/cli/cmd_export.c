/* dapt export MODEL.h5 HF_DIR: a dapt model file to a Hugging Face directory. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/cli.h"
#include "dapt/hf.h"
#include "dapt/log.h"
#include "dapt/modelfile.h"

static void usage(void)
{
    printf("usage: dapt export MODEL.h5 HF_DIR [--force]\n\n"
           "Writes HF_DIR with config.json (Hugging Face field names), model.safetensors\n"
           "(float32, Hugging Face tensor names, the tied MLM decoder omitted as\n"
           "save_pretrained does) and the tokenizer files stored in MODEL.h5, so that\n"
           "from_pretrained(HF_DIR) loads it.  The directory is assembled under a\n"
           "temporary name and renamed when complete; an existing HF_DIR is refused\n"
           "unless --force, which replaces only a previous export (config.json and\n"
           "model.safetensors) or an empty directory.  Runs on rank 0.\n\n");
    dapt_cli_print_common_help();
}

/* Runs on rank 0. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    const char *model = cli->args[0], *dir = cli->args[1];
    const int force = *(const int *)ctx;
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    DAPT_CHECK(dapt_modelfile_load(MPI_COMM_SELF, model, &mc, &table, &params, &meta));
    dapt_status st = dapt_hf_export(dir, force, &mc, &table, params, &meta);
    if (st == DAPT_OK) {
        char cls[64] = "";
        dapt_hf_class_name(&mc, cls, sizeof cls);
        dapt_info("exported %s as %s with %zu tokenizer files -> %s", model, cls, meta.ntokenizer, dir);
    }
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

int dapt_cmd_export(int argc, char **argv)
{
    int force = 0;
    const dapt_cli_option opts[] = {{.name = "force", .kind = DAPT_OPT_FLAG, .dest = &force}, {.name = NULL}};
    const dapt_cli_command cmd = {.name = "export", .usage = usage, .options = opts, .min_args = 2, .max_args = 2,
                                  .rank0 = 1, .run = run, .ctx = &force};
    return dapt_cli_main(argc, argv, &cmd);
}
