/* dapt importance: unit importance of a model over a prepared corpus (the
 * DGA/DAS proxy losses), written as an importance file (docs/formats.md). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dapt/batches.h"
#include "dapt/cli.h"
#include "dapt/das.h"
#include "dapt/fsio.h"
#include "dapt/h5io.h"
#include "dapt/log.h"
#include "dapt/corpus_pass.h"
#include "dapt/train.h"
#include "dapt/tokenizer.h"
#include "dapt/modelfile.h"

static void usage(void)
{
    printf("usage: dapt importance --model M.h5 --corpus C.h5 --output I.h5 [--proxy kl|mlm]\n"
           "                       [--samples N] [--batch B] [--name NAME] [--tokenizer PATH] [--force]\n\n"
           "Accumulates the gradient of a proxy loss with respect to every unit mask\n"
           "(attention heads, FFN intermediate and output neurons) over N train\n"
           "sequences of the corpus (default das.importance_samples), in global batches\n"
           "of B sequences (default 32) split over the ranks, and writes raw and\n"
           "normalised importance to I.h5 under /importance/<unit>/<NAME> (NAME\n"
           "defaults to the proxy, \"kl\" or \"mlm\").\n"
           "  --proxy kl   token-axis KL between two dropout passes (no general data)\n"
           "  --proxy mlm  MLM loss on the corpus\n"
           "Sequences follow data.seq_len, data.packing, data.eval_fraction and run.seed;\n"
           "accumulation follows das.accumulation.  The tokenizer is the model file's\n"
           "unless --tokenizer (or tokenizer.path) names one.  An existing I.h5 is\n"
           "refused unless --force.\n\n");
    dapt_cli_print_common_help();
}

typedef struct imp_args {
    const char *model, *corpus, *output, *name, *tokenizer;
    dapt_proxy_kind proxy;
    int proxy_choice; /* --proxy: 0 kl, 1 mlm */
    int64_t samples, batch; /* samples 0: das.importance_samples */
    int force;
} imp_args;

/* The MLM spec and sequence ids of the tokenizer in directory dir. */
typedef struct spec_out {
    double p;
    dapt_mlm_spec *mlm;
    dapt_seq_spec *ss;
} spec_out;

static dapt_status spec_of_dir(const char *dir, void *ctx)
{
    spec_out *o = ctx;
    return dapt_mlm_spec_load(dir, o->p, o->mlm, &o->ss->begin_id, &o->ss->end_id, &o->ss->pad_id);
}

/* The tokenizer's MLM spec and sequence ids: from --tokenizer (or
 * tokenizer.path), else the model file's. */
static dapt_status tokenizer_spec(const imp_args *a, const dapt_model_meta *meta, double p, dapt_mlm_spec *mlm,
                                  dapt_seq_spec *ss)
{
    spec_out o = {p, mlm, ss};
    if (a->tokenizer) return spec_of_dir(a->tokenizer, &o);
    if (meta->ntokenizer == 0) return DAPT_ERROR(DAPT_ERR_ARG, "%s has no tokenizer files; pass --tokenizer", a->model);
    return dapt_model_tokenizer_dir(meta, a->model, spec_of_dir, &o);
}

/* Every rank takes part. */
static dapt_status run_importance(dapt_cli *cli, void *ctx)
{
    imp_args *a = ctx;
    const dapt_config *cfg = &cli->cfg;
    MPI_Comm comm = MPI_COMM_WORLD;
    const int size = cli->size;
    if (!a->model || !a->corpus || !a->output)
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt importance: --model, --corpus and --output are required");
    a->proxy = a->proxy_choice == 1 ? DAPT_PROXY_MLM : DAPT_PROXY_KL;
    if (a->samples == 0) a->samples = cfg->das.importance_samples;
    if (!a->tokenizer && cfg->tokenizer.path[0]) a->tokenizer = cfg->tokenizer.path;
    if (!a->name) a->name = a->proxy == DAPT_PROXY_KL ? "kl" : "mlm";
    if (!a->name[0] || strchr(a->name, '/'))
        return DAPT_ERROR(DAPT_ERR_ARG, "dapt importance: --name '%s' cannot name an HDF5 group", a->name);
    int exists = dapt_fs_exists(a->output);
    DAPT_CHECK(DAPT_MPI(MPI_Bcast(&exists, 1, MPI_INT, 0, comm)));
    if (exists && !a->force) return DAPT_ERROR(DAPT_ERR_EXISTS, "%s exists: pass --force to replace it", a->output);

    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    dapt_model m;
    int have_model = 0;
    dapt_sequences *seqs = NULL;
    dapt_importance imp;
    int have_imp = 0;
    dapt_importance_source src;
    memset(&src, 0, sizeof src);
    memset(&meta, 0, sizeof meta);
    memset(&table, 0, sizeof table);
    dapt_status st = DAPT_OK;
    DAPT_TRY(dapt_status_agree(comm, dapt_modelfile_load(comm, a->model, &mc, &table, &params, &meta)));
    if (a->proxy == DAPT_PROXY_MLM && !mc.has_mlm_head)
        DAPT_THROW(DAPT_ERR_ARG, "%s has no MLM head, so --proxy mlm cannot run (use --proxy kl)", a->model);
    DAPT_TRY(dapt_model_create(&mc, &m));
    have_model = 1;
    if (m.table.total != table.total) DAPT_THROW(DAPT_ERR_INTERNAL, "parameter tables differ");
    memcpy(m.params, params, sizeof(float) * table.total);

    dapt_mlm_spec mlm;
    dapt_seq_spec ss = {cfg->data.seq_len, strcmp(cfg->data.packing, "document") ? DAPT_PACK_CONCAT : DAPT_PACK_DOCUMENT,
                        cfg->data.eval_fraction, (uint64_t)cfg->run.seed, -1, -1, -1};
    DAPT_TRY(dapt_status_agree(comm, tokenizer_spec(a, &meta, cfg->train.mlm_probability, &mlm, &ss)));
    if (ss.seq_len > mc.max_position)
        DAPT_THROW(DAPT_ERR_CONFIG, "data.seq_len = %lld exceeds the model's %lld positions", (long long)ss.seq_len,
                   (long long)mc.max_position);
    if (cfg->data.verify) DAPT_TRY(dapt_h5_verify_file(comm, a->corpus));
    DAPT_TRY(dapt_status_agree(comm, dapt_sequences_open(a->corpus, &ss, &seqs)));
    DAPT_TRY(dapt_importance_create(&mc, strcmp(cfg->das.accumulation, "signed") ? DAPT_IMPORTANCE_ABSOLUTE
                                                                                   : DAPT_IMPORTANCE_SIGNED, &imp));
    have_imp = 1;
    dapt_corpus_importance_opts o = {a->proxy, a->samples, a->batch, (uint64_t)cfg->run.seed, cfg->das.proxy_temperature,
                                     ss.seq_len, (int)cfg->model.recompute, dapt_proxy_passes_of(cfg),
                                     dapt_proxy_direction_of(cfg)};
    double t0 = dapt_now();
    DAPT_TRY(dapt_status_agree(comm, dapt_importance_from_corpus(&m, seqs, &mlm, &o, &imp, comm)));
    double dt = dapt_now() - t0;
    DAPT_TRY(dapt_importance_source_make(&imp, a->name, a->proxy,
                                         strcmp(cfg->das.normalization, "rank") ? DAPT_NORM_TANH_Z : DAPT_NORM_RANK, &src));
    DAPT_TRY(dapt_importance_write(comm, a->output, cfg, &src, 1, NULL, 0));
    dapt_info("importance: %s proxy, %lld sequences in %lld batches of %lld on %d rank%s, %.0f tokens in %.2f s (%.0f tokens/s, %.1f sequences/s); wrote %s",
              a->proxy == DAPT_PROXY_KL ? "KL" : "MLM", (long long)a->samples, (long long)imp.batches, (long long)a->batch,
              size, size == 1 ? "" : "s", imp.tokens, dt, dt > 0 ? imp.tokens / dt : 0.0,
              dt > 0 ? (double)a->samples / dt : 0.0, a->output);
cleanup:
    dapt_importance_source_free(&src);
    if (have_imp) dapt_importance_free(&imp);
    dapt_sequences_close(seqs);
    if (have_model) dapt_model_free(&m);
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    return st;
}

int dapt_cmd_importance(int argc, char **argv)
{
    imp_args a = {.batch = 32};
    const dapt_cli_option opts[] = {
        {.name = "model", .kind = DAPT_OPT_STRING, .dest = &a.model},
        {.name = "corpus", .kind = DAPT_OPT_STRING, .dest = &a.corpus},
        {.name = "output", .kind = DAPT_OPT_STRING, .dest = &a.output},
        {.name = "proxy", .kind = DAPT_OPT_CHOICE, .dest = &a.proxy_choice, .arg = "kl|mlm"},
        {.name = "samples", .kind = DAPT_OPT_INT, .dest = &a.samples, .min = 1, .max = INT64_MAX},
        {.name = "batch", .kind = DAPT_OPT_INT, .dest = &a.batch, .min = 1, .max = INT64_MAX},
        {.name = "name", .kind = DAPT_OPT_STRING, .dest = &a.name},
        {.name = "tokenizer", .kind = DAPT_OPT_STRING, .dest = &a.tokenizer},
        {.name = "force", .kind = DAPT_OPT_FLAG, .dest = &a.force},
        {.name = NULL}};
    const dapt_cli_command cmd = {.name = "importance", .usage = usage, .options = opts, .max_args = 0,
                                  .run = run_importance, .ctx = &a};
    return dapt_cli_main(argc, argv, &cmd);
}
