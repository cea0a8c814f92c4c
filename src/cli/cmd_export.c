/* dapt export MODEL.h5 HF_DIR: a dapt model file to a Hugging Face directory. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "dapt/cli.h"
#include "dapt/hf.h"
#include "dapt/log.h"
#include "dapt/modelfile.h"
#include "dapt/task.h"
#include "dapt/tokenizer.h"

static void usage(void)
{
    printf("usage: dapt export MODEL.h5 HF_DIR [--force] [--keep-pooler]\n\n"
           "Writes HF_DIR with config.json (Hugging Face field names; architectures names\n"
           "the class exported: BertForMaskedLM, BertForSequenceClassification, ...;\n"
           "id2label/label2id from the task's label names; num_labels 1 and problem_type\n"
           "regression for a regression head), model.safetensors (float32, Hugging Face\n"
           "tensor names, the tied MLM decoder omitted as save_pretrained does) and a\n"
           "tokenizer AutoTokenizer loads unchanged: the tokenizer files stored in\n"
           "MODEL.h5 (tokenizer.json when there is one; vocab.txt, or vocab.json and\n"
           "merges.txt) with tokenizer_config.json and special_tokens_map.json written\n"
           "from the tokenizer dapt uses (do_lower_case, special tokens) and\n"
           "model_max_length = the model's longest input (its positions; RoBERTa's\n"
           "minus pad_token_id + 1).  So from_pretrained(HF_DIR) loads it.\n\n"
           "The pooler is exported only where the class has one (BertModel,\n"
           "RobertaModel, BertForSequenceClassification); --keep-pooler writes it for\n"
           "masked-LM and RoBERTa classifier exports too.  The directory is assembled\n"
           "under a temporary name and renamed when complete; an existing HF_DIR is\n"
           "refused unless --force, which replaces only a previous export (config.json\n"
           "and model.safetensors) or an empty directory.  Runs on rank 0.\n\n");
    dapt_cli_print_common_help();
}

typedef struct export_args {
    int force, keep_pooler;
} export_args;

/* Runs on rank 0. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    const char *model = cli->args[0], *dir = cli->args[1];
    const export_args *a = ctx;
    const dapt_hf_export_opts opts = {.force = a->force, .keep_pooler = a->keep_pooler};
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    DAPT_CHECK(dapt_modelfile_load(MPI_COMM_SELF, model, &mc, &table, &params, &meta));
    dapt_status st = DAPT_OK;
    if (meta.ntokenizer > 0) st = dapt_model_tokenizer_hf(&meta, model, dapt_model_max_input(&mc));
    else dapt_warn("%s carries no tokenizer files: %s will have none (AutoTokenizer cannot load it)", model, dir);
    if (st == DAPT_OK) st = dapt_hf_export(dir, &opts, &mc, &table, params, &meta);
    if (st == DAPT_OK) {
        char cls[64] = "";
        dapt_hf_class_name(&mc, cls, sizeof cls);
        dapt_info("exported %s as %s (%s pooler) with %zu tokenizer files -> %s", model, cls,
                  dapt_hf_exports_pooler(&mc, a->keep_pooler) ? "with" : "without", meta.ntokenizer, dir);
    }
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

int dapt_cmd_export(int argc, char **argv)
{
    export_args a = {0, 0};
    const dapt_cli_option opts[] = {{.name = "force", .kind = DAPT_OPT_FLAG, .dest = &a.force},
                                    {.name = "keep-pooler", .kind = DAPT_OPT_FLAG, .dest = &a.keep_pooler},
                                    {.name = NULL}};
    const dapt_cli_command cmd = {.name = "export", .usage = usage, .options = opts, .min_args = 2, .max_args = 2,
                                  .rank0 = 1, .run = run, .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
