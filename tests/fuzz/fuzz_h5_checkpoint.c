/* A training checkpoint (dapt_checkpoint_load: state attributes, the
 * parameters and both AdamW moments with their shapes and CRC-32s) on any
 * bytes, into the tiny BERT of tests/fixtures/model/bert_tiny.h5: the
 * model is fixed, as in dapt train --resume, so the file's declared sizes
 * are checked rather than allocated.  Per-input timeout: see
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
    fuzz_init(argc, argv);
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    if (dapt_modelfile_load(MPI_COMM_SELF, fuzz_srcdir("tests/fixtures/model/bert_tiny.h5"), &mc, &table, &params,
                            &meta) != DAPT_OK ||
        dapt_model_create(&mc, &model) != DAPT_OK)
        abort();
    free(params);
    dapt_param_table_free(&table);
    dapt_model_meta_free(&meta);
    exp_avg = calloc(model.table.total, sizeof *exp_avg);
    exp_avg_sq = calloc(model.table.total, sizeof *exp_avg_sq);
    if (!exp_avg || !exp_avg_sq) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dapt_ckpt_state state;
    fuzz_done(dapt_checkpoint_load(MPI_COMM_SELF, fuzz_write("step-00000001.h5", data, size), &model, exp_avg,
                                   exp_avg_sq, &state, NULL, NULL));
    return 0;
}
