# tests/io: HDF5 helpers, safetensors, model files, Hugging Face import/export.
check_PROGRAMS += tests/io/test_h5io tests/io/test_safetensors tests/io/test_hf tests/io/h5compare
tests_io_h5compare_SOURCES = tests/io/h5compare.c
tests_io_h5compare_CFLAGS = $(TEST_CFLAGS)
tests_io_h5compare_LDADD = $(TEST_LIBS)
tests_io_test_h5io_SOURCES = tests/io/test_h5io.c
tests_io_test_h5io_CFLAGS = $(TEST_CFLAGS)
tests_io_test_h5io_LDADD = $(TEST_LIBS)
tests_io_test_safetensors_SOURCES = tests/io/test_safetensors.c
tests_io_test_safetensors_CFLAGS = $(TEST_CFLAGS)
tests_io_test_safetensors_LDADD = $(TEST_LIBS)
tests_io_test_hf_SOURCES = tests/io/test_hf.c
tests_io_test_hf_CFLAGS = $(TEST_CFLAGS)
tests_io_test_hf_LDADD = $(TEST_LIBS)
TESTS += tests/io/test_h5io tests/io/h5io_ranks.test tests/io/test_safetensors tests/io/test_hf tests/io/forward.test tests/io/cli.test
EXTRA_DIST += tests/io/h5io_ranks.test tests/io/forward.test tests/io/cli.test
