# tests/tools: the Python tools shipped for users (plots) and the
# architecture check.
TESTS += tests/tools/plot.test tests/tools/include_graph.test
EXTRA_DIST += tests/tools/plot.test tools/plot.py tests/tools/include_graph.test tools/dev/include_graph.py
