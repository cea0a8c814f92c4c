# tests/text: tokenizers against reference fixtures, templates, errors, CLI.
check_PROGRAMS += tests/text/test_tok_fixtures
tests_text_test_tok_fixtures_SOURCES = tests/text/test_tok_fixtures.c tests/text/tok_fixture.h
tests_text_test_tok_fixtures_CFLAGS = $(TEST_CFLAGS)
tests_text_test_tok_fixtures_LDADD = $(TEST_LIBS)
TESTS += tests/text/test_tok_fixtures
EXTRA_DIST += tools/reference/gen_fixtures.mjs tools/reference/collect_lines.sh tools/reference/package.json
check_PROGRAMS += tests/text/test_tokenizer
tests_text_test_tokenizer_SOURCES = tests/text/test_tokenizer.c tests/text/tok_fixture.h
tests_text_test_tokenizer_CFLAGS = $(TEST_CFLAGS)
tests_text_test_tokenizer_LDADD = $(TEST_LIBS)
TESTS += tests/text/test_tokenizer
TESTS += tests/text/tokenize_cli.test
EXTRA_DIST += tests/text/tokenize_cli.test tools/reference/extract_testplans.mjs

# Reference fixtures read by test_tok_fixtures, test_tokenizer and tokenize_cli.test:
# listed so that they ship (make distcheck).
TEXT_TOK_FIXTURES = \
	tests/fixtures/tokenizer/bert-base-uncased.corpus.ids.gz \
	tests/fixtures/tokenizer/bert-base-uncased.decode.jsonl.gz \
	tests/fixtures/tokenizer/bert-base-uncased.hard.ids.gz \
	tests/fixtures/tokenizer/bert-base-uncased.pairs.ids.gz tests/fixtures/tokenizer/corpus.jsonl.gz \
	tests/fixtures/tokenizer/gpt2.corpus.ids.gz tests/fixtures/tokenizer/gpt2.decode.jsonl.gz \
	tests/fixtures/tokenizer/gpt2.hard.ids.gz tests/fixtures/tokenizer/gpt2.pairs.ids.gz \
	tests/fixtures/tokenizer/gpt2_testplans.jsonl tests/fixtures/tokenizer/hard_cases.jsonl \
	tests/fixtures/tokenizer/roberta-base.corpus.ids.gz \
	tests/fixtures/tokenizer/roberta-base.decode.jsonl.gz \
	tests/fixtures/tokenizer/roberta-base.hard.ids.gz \
	tests/fixtures/tokenizer/roberta-base.pairs.ids.gz
EXTRA_DIST += $(TEXT_TOK_FIXTURES)
