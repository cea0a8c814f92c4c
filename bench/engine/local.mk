# bench/engine: engine benchmark (built on demand: make bench/engine/bench_engine).
# EXTRA_PROGRAMS is first set here (Makefile.am does not define it); a
# later fragment may append with +=.
EXTRA_PROGRAMS = bench/engine/bench_engine
bench_engine_bench_engine_SOURCES = bench/engine/bench_engine.c
bench_engine_bench_engine_LDADD = libdapt.a $(DAPT_LIBS)
EXTRA_DIST += bench/engine/run.sh bench/engine/bench_torch.py
