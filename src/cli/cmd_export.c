/* dapt export MODEL.h5 HF_DIR: a dapt model file to a Hugging Face directory. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
           "unless --force.  Runs on rank 0.\n\n");
    dapt_cli_print_common_help();
}

static dapt_status run(const char *model, const char *dir, int force)
{
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
    dapt_cli cli;
    if (dapt_cli_begin(argc, argv, &cli, usage)) return DAPT_EXIT_OK;
    dapt_status st = DAPT_OK;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const char *pos[2] = {NULL, NULL};
    int npos = 0, force = 0;
    st = dapt_cli_positional(&cli, "export", pos, 2, &npos, &force);
    if (st != DAPT_OK) dapt_cli_fail_all(st);
    if (npos != 2) {
        if (rank == 0) usage();
        dapt_cli_free(&cli);
        return DAPT_EXIT_USAGE;
    }
    if (rank == 0) st = run(pos[0], pos[1], force);
    st = dapt_status_agree(MPI_COMM_WORLD, st);
    dapt_cli_free(&cli);
    if (st != DAPT_OK) dapt_cli_fail_all(st);
    return DAPT_EXIT_OK;
}
