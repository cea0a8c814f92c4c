# src/io: parallel HDF5 helpers, safetensors, model files, Hugging Face import/export.
libdapt_a_SOURCES += src/io/h5io.c src/io/h5formats.c src/io/h5checksum.c src/io/fsio.c src/io/run_lock.c src/io/safetensors.c src/io/modelfile.c src/io/hf.c
dapt_SOURCES += src/cli/cmd_import.c src/cli/cmd_export.c src/cli/cmd_forward.c src/cli/cmd_infer.c
