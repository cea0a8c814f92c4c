/* A model file (dapt_modelfile_load: configuration attributes, tokenizer
 * blobs, labels, /params datasets and their shapes) on any bytes.
 * libhdf5 itself can loop on corrupt files (issue 17): run.sh gives the
 * HDF5 targets a per-input timeout and such hangs are recorded as findings
 * in docs/fuzzing.md, not chased. */
#include <mpi.h>
#include <stdlib.h>

#include "dapt/modelfile.h"
#include "fuzz_common.h"

FUZZ_TARGET_INIT

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dapt_model_config mc;
    dapt_param_table table;
    dapt_model_meta meta;
    float *params = NULL;
    dapt_status st = dapt_modelfile_load(MPI_COMM_SELF, fuzz_write("model.h5", data, size), &mc, &table, &params,
                                         &meta);
    fuzz_done(st);
    if (st == DAPT_OK) {
        free(params);
        dapt_param_table_free(&table);
        dapt_model_meta_free(&meta);
    }
    return 0;
}
