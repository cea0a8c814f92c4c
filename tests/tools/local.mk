# tests/tools: the Python tools shipped for users (plots, the quickstart's
# summary) and the architecture check; the test harness's timing driver; the
# man page and the bash completion.
TESTS += tests/tools/plot.test tests/tools/include_graph.test tests/tools/quickstart_summary.test \
	tests/tools/timed_driver.test tests/tools/completion.test tests/tools/manpage.test tests/tools/shm_clean.test \
	tests/tools/mpirun_signal.test
EXTRA_DIST += tests/tools/plot.test tools/plot.py tests/tools/quickstart_summary.test tools/quickstart_summary.py \
	tests/tools/include_graph.test tools/dev/include_graph.py \
	tests/tools/timed_driver.test tests/tools/completion.test tests/tools/manpage.test tests/tools/shm_clean.test \
	tests/tools/mpirun_signal.test
