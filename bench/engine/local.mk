# bench/engine: engine benchmark (built on demand: make bench/engine/bench_engine).
# EXTRA_PROGRAMS is first set here (Makefile.am does not define it); a
# later fragment may append with +=.
EXTRA_PROGRAMS = bench/engine/bench_engine
bench_engine_bench_engine_SOURCES = bench/engine/bench_engine.c
bench_engine_bench_engine_LDADD = libdapt.a $(DAPT_LIBS)
EXTRA_DIST += bench/engine/run.sh bench/engine/bench_torch.py
# bench/parallel and bench/prepare are scripts (run.sh builds its PMPI timer
# with mpicc); listed here so that they ship.
EXTRA_DIST += bench/parallel/run.sh bench/parallel/mpi_timer.c bench/parallel/scaling_model.py bench/prepare/run.sh
