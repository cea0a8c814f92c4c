# Sourced by tests/fuzz/run.sh and tests/fuzz/smoke.test: the fuzz targets,
# their seeds, dictionaries and per-input timeouts.  Needs $top (source tree).
fuzz_targets="safetensors hf_config tokenizer_json vocab_txt vocab_json merges_txt ini task corpus_text \
h5_model h5_corpus h5_task h5_checkpoint"

# fuzz_seeds TARGET: the seed files (committed under tests/fuzz/corpus/TARGET,
# and the fixtures of the suite that are inputs of this parser), relative to $top.
fuzz_seeds() {
    (cd "$top" && {
        [ -d "tests/fuzz/corpus/$1" ] && ls -d "tests/fuzz/corpus/$1"/*
        case $1 in
        safetensors) ls -d tests/fixtures/hf/*/model.safetensors ;;
        hf_config) ls -d tests/fixtures/hf/*/config.json ;;
        vocab_txt) echo tests/fixtures/hf/bert_cls/vocab.txt ;;
        vocab_json) echo tests/fixtures/hf/roberta_cls/vocab.json ;;
        merges_txt) echo tests/fixtures/hf/roberta_cls/merges.txt ;;
        h5_task) echo tests/fixtures/task/task.h5 ;;
        esac
    })
}

# fuzz_stage TARGET DIR: copies the seeds into the corpus directory DIR
# (libFuzzer adds what it finds there; the source tree stays untouched).
fuzz_stage() {
    mkdir -p "$2"
    for s in $(fuzz_seeds "$1"); do
        cp "$top/$s" "$2/$(echo "$s" | tr / _)"
    done
}

# fuzz_options TARGET BUILD_DIR: libFuzzer options beyond the run length.
# libhdf5 can loop on corrupt files (issue 17 point 4), so the HDF5 targets
# get a per-input timeout short enough to record such a hang and go on.
fuzz_options() {
    case $1 in
    safetensors | hf_config | tokenizer_json | vocab_json | task) echo "-dict=$top/tests/fuzz/json.dict -timeout=25" ;;
    ini) echo "-dict=$2/ini.dict -timeout=25" ;;
    h5_*) echo "-timeout=10" ;;
    *) echo "-timeout=25" ;;
    esac
}
