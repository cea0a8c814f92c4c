# tests/tools: the Python tools shipped for users (plots).
TESTS += tests/tools/plot.test
EXTRA_DIST += tests/tools/plot.test tools/plot.py
