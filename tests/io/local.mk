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
TESTS += tests/io/test_h5io tests/io/h5io_ranks.test tests/io/test_safetensors tests/io/test_hf tests/io/forward.test tests/io/cli.test \
	tests/io/model_integrity.test
EXTRA_DIST += tests/io/h5io_ranks.test tests/io/forward.test tests/io/cli.test tests/io/model_integrity.test
# Provenance reuses tests/train's fixture run (make_corpus, train_env.sh).
TESTS += tests/io/provenance.test tests/io/heap_deadline.test
EXTRA_DIST += tests/io/provenance.test tests/io/heap_deadline.test

# Fixtures read by test_hf, test_safetensors, forward.test and cli.test, and the
# script that made them: listed so that they ship (make distcheck).
IO_HF_FIXTURES = \
	tests/fixtures/hf/bert_base/config.json tests/fixtures/hf/bert_base/forward_expected.h5 \
	tests/fixtures/hf/bert_base/forward_input.h5 tests/fixtures/hf/bert_base/model.safetensors \
	tests/fixtures/hf/bert_base/special_tokens_map.json \
	tests/fixtures/hf/bert_base/tokenizer_config.json tests/fixtures/hf/bert_base/vocab.txt \
	tests/fixtures/hf/bert_cls/config.json tests/fixtures/hf/bert_cls/forward_expected.h5 \
	tests/fixtures/hf/bert_cls/forward_input.h5 tests/fixtures/hf/bert_cls/infer_expected.txt \
	tests/fixtures/hf/bert_cls/model.safetensors tests/fixtures/hf/bert_cls/special_tokens_map.json \
	tests/fixtures/hf/bert_cls/tokenizer_config.json tests/fixtures/hf/bert_cls/vocab.txt \
	tests/fixtures/hf/bert_mlm/config.json tests/fixtures/hf/bert_mlm/forward_expected.h5 \
	tests/fixtures/hf/bert_mlm/forward_input.h5 tests/fixtures/hf/bert_mlm/infer_expected.txt \
	tests/fixtures/hf/bert_mlm/model.safetensors tests/fixtures/hf/bert_mlm/special_tokens_map.json \
	tests/fixtures/hf/bert_mlm/tokenizer_config.json tests/fixtures/hf/bert_mlm/vocab.txt \
	tests/fixtures/hf/bert_mlm_bf16/config.json tests/fixtures/hf/bert_mlm_bf16/model.safetensors \
	tests/fixtures/hf/bert_mlm_bf16/special_tokens_map.json \
	tests/fixtures/hf/bert_mlm_bf16/tokenizer_config.json tests/fixtures/hf/bert_mlm_bf16/vocab.txt \
	tests/fixtures/hf/bert_mlm_buffers/config.json \
	tests/fixtures/hf/bert_mlm_buffers/model.safetensors \
	tests/fixtures/hf/bert_mlm_buffers/special_tokens_map.json \
	tests/fixtures/hf/bert_mlm_buffers/tokenizer_config.json \
	tests/fixtures/hf/bert_mlm_buffers/vocab.txt \
	tests/fixtures/hf/bert_mlm_decoder/config.json \
	tests/fixtures/hf/bert_mlm_decoder/model.safetensors \
	tests/fixtures/hf/bert_mlm_decoder/special_tokens_map.json \
	tests/fixtures/hf/bert_mlm_decoder/tokenizer_config.json \
	tests/fixtures/hf/bert_mlm_decoder/vocab.txt \
	tests/fixtures/hf/bert_mlm_f16/config.json tests/fixtures/hf/bert_mlm_f16/forward_expected.h5 \
	tests/fixtures/hf/bert_mlm_f16/forward_input.h5 tests/fixtures/hf/bert_mlm_f16/model.safetensors \
	tests/fixtures/hf/bert_mlm_f16/special_tokens_map.json \
	tests/fixtures/hf/bert_mlm_f16/tokenizer_config.json tests/fixtures/hf/bert_mlm_f16/vocab.txt \
	tests/fixtures/hf/roberta_base/config.json tests/fixtures/hf/roberta_base/forward_expected.h5 \
	tests/fixtures/hf/roberta_base/forward_input.h5 tests/fixtures/hf/roberta_base/merges.txt \
	tests/fixtures/hf/roberta_base/model.safetensors \
	tests/fixtures/hf/roberta_base/special_tokens_map.json \
	tests/fixtures/hf/roberta_base/tokenizer_config.json tests/fixtures/hf/roberta_base/vocab.json \
	tests/fixtures/hf/roberta_cls/config.json tests/fixtures/hf/roberta_cls/forward_expected.h5 \
	tests/fixtures/hf/roberta_cls/forward_input.h5 tests/fixtures/hf/roberta_cls/merges.txt \
	tests/fixtures/hf/roberta_cls/model.safetensors \
	tests/fixtures/hf/roberta_cls/special_tokens_map.json \
	tests/fixtures/hf/roberta_cls/tokenizer_config.json tests/fixtures/hf/roberta_cls/vocab.json \
	tests/fixtures/hf/roberta_mlm/config.json tests/fixtures/hf/roberta_mlm/forward_expected.h5 \
	tests/fixtures/hf/roberta_mlm/forward_input.h5 tests/fixtures/hf/roberta_mlm/merges.txt \
	tests/fixtures/hf/roberta_mlm/model.safetensors \
	tests/fixtures/hf/roberta_mlm/special_tokens_map.json \
	tests/fixtures/hf/roberta_mlm/tokenizer_config.json tests/fixtures/hf/roberta_mlm/vocab.json \
	tests/fixtures/hf/roberta_mlm_decoder/config.json \
	tests/fixtures/hf/roberta_mlm_decoder/merges.txt \
	tests/fixtures/hf/roberta_mlm_decoder/model.safetensors \
	tests/fixtures/hf/roberta_mlm_decoder/special_tokens_map.json \
	tests/fixtures/hf/roberta_mlm_decoder/tokenizer_config.json \
	tests/fixtures/hf/roberta_mlm_decoder/vocab.json
EXTRA_DIST += $(IO_HF_FIXTURES) tools/fixtures/make_hf_fixtures.py
# The regression fixtures (tools/fixtures/make_hf_fixtures.py).
EXTRA_DIST += \
	tests/fixtures/hf/bert_reg/config.json \
	tests/fixtures/hf/bert_reg/forward_expected.h5 \
	tests/fixtures/hf/bert_reg/forward_input.h5 \
	tests/fixtures/hf/bert_reg/model.safetensors \
	tests/fixtures/hf/bert_reg/special_tokens_map.json \
	tests/fixtures/hf/bert_reg/tokenizer_config.json \
	tests/fixtures/hf/bert_reg/vocab.txt \
	tests/fixtures/hf/roberta_reg/config.json \
	tests/fixtures/hf/roberta_reg/forward_expected.h5 \
	tests/fixtures/hf/roberta_reg/forward_input.h5 \
	tests/fixtures/hf/roberta_reg/merges.txt \
	tests/fixtures/hf/roberta_reg/model.safetensors \
	tests/fixtures/hf/roberta_reg/special_tokens_map.json \
	tests/fixtures/hf/roberta_reg/tokenizer_config.json \
	tests/fixtures/hf/roberta_reg/vocab.json
# Exports Hugging Face loads unchanged: the tokenizer directory, the pooler
# only where the class has one, regression heads (issue 18); their inputs are
# made at test time from the fixtures above by make_export_inputs.py, or
# (export_trained) trained by dapt as in tests/task/task_env.sh.
TESTS += tests/io/export_tokenizer.test tests/io/export_heads.test tests/io/export_trained.test
EXTRA_DIST += tests/io/export_tokenizer.test tests/io/export_heads.test tests/io/export_trained.test \
	tools/fixtures/make_export_inputs.py
