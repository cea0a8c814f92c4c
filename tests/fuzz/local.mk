# tests/fuzz: libFuzzer harnesses of every parser dapt has (docs/fuzzing.md),
# built with clang by tests/fuzz/build.sh outside automake; the suite replays
# each target's seeds and 200 fixed mutations of them (smoke.test).
TESTS += tests/fuzz/smoke.test
EXTRA_DIST += tests/fuzz/smoke.test tests/fuzz/build.sh tests/fuzz/run.sh tests/fuzz/targets.sh \
	tests/fuzz/make_h5_seeds.sh tests/fuzz/triage.sh tests/fuzz/json.dict tests/fuzz/fuzz_common.h tests/fuzz/fuzz_common.c \
	tests/fuzz/fuzz_safetensors.c tests/fuzz/fuzz_hf_config.c tests/fuzz/fuzz_tokenizer_json.c \
	tests/fuzz/fuzz_vocab_txt.c tests/fuzz/fuzz_vocab_json.c tests/fuzz/fuzz_merges_txt.c tests/fuzz/fuzz_ini.c \
	tests/fuzz/fuzz_task.c tests/fuzz/fuzz_corpus_text.c tests/fuzz/fuzz_h5_model.c tests/fuzz/fuzz_h5_corpus.c \
	tests/fuzz/fuzz_h5_task.c tests/fuzz/fuzz_h5_checkpoint.c tests/fuzz/corpus \
	docs/fuzzing.md
# smoke.test builds into build-fuzz/ of the build tree; distclean must
# leave the build tree empty.
clean-local: clean-fuzz
clean-fuzz:
	rm -rf build-fuzz
.PHONY: clean-fuzz
