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
