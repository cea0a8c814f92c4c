/* A training checkpoint (dapt_checkpoint_load: state attributes, the
 * parameters and both AdamW moments with their shapes and CRC-32s) on any
 * bytes, into the model of the seed checkpoint (tests/fuzz/corpus/
 * h5_checkpoint, the tiny BERT MLM): the model is fixed, as in dapt train
 * --resume, so the file's declared sizes are checked, not allocated.  Per-input timeout: see
 * fuzz_h5_model.c. */
#include <mpi.h>
#include <stdlib.h>

#include "dapt/checkpoint.h"
#include "dapt/model.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static dapt_model model;
static float *exp_avg, *exp_avg_sq;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    if (!fuzz_init(argc, argv)) return 0;
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    const char *seed = fuzz_srcdir("tests/fuzz/corpus/h5_checkpoint/step-00000001.h5");
    dapt_status st = dapt_modelfile_load(MPI_COMM_SELF, seed, &mc, &table, &params, &meta);
    if (st != DAPT_OK) fuzz_fail(seed, st);
    st = dapt_model_create(&mc, &model);
    if (st != DAPT_OK) fuzz_fail("dapt_model_create", st);
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    exp_avg = calloc(model.table.total, sizeof *exp_avg);
    exp_avg_sq = calloc(model.table.total, sizeof *exp_avg_sq);
    if (!exp_avg || !exp_avg_sq) fuzz_fail("AdamW moments", DAPT_OK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dapt_ckpt_state state;
    fuzz_done(dapt_checkpoint_load(MPI_COMM_SELF, fuzz_write("step-00000001.h5", data, size), &model, exp_avg,
                                   exp_avg_sq, &state, NULL, NULL));
    return 0;
}
