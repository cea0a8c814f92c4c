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
# bench/tokenize/run.sh drives bench_tokenize (built by src/text/local.mk) and
# the JS reference; bench/results/ holds the runs docs/performance.md cites.
EXTRA_DIST += bench/tokenize/run.sh bench/tokenize/js_bench.mjs
BENCH_RESULTS = \
	bench/results/engine-20261123T133745.txt bench/results/engine-20261123T141306.txt \
	bench/results/engine-20261123T143133.txt bench/results/engine-20261207T174240.txt \
	bench/results/engine-before-20261207T174600.txt bench/results/parallel-20261123T131259.txt \
	bench/results/parallel-20261207T175213.txt bench/results/parallel-20261207T175256.txt \
	bench/results/parallel-20261207T175342.txt bench/results/parallel-20261207T175351.txt \
	bench/results/parallel-20261207T175400.txt bench/results/parallel-20261207T175408.txt \
	bench/results/parallel-20261207T181725.txt bench/results/parallel-20261207T181734.txt \
	bench/results/parallel-20261207T181744.txt bench/results/parallel-20261207T181754.txt \
	bench/results/parallel-20261207T222039.txt bench/results/parallel-20261207T222054.txt \
	bench/results/parallel-20261207T222111.txt bench/results/parallel-20261207T222200.txt \
	bench/results/parallel-20261208T013208.txt bench/results/parallel-20261208T013222.txt \
	bench/results/parallel-20261208T013236.txt bench/results/parallel-20261208T013251.txt \
	bench/results/parallel-20261123T131449.txt bench/results/parallel-20261123T133112.txt \
	bench/results/parallel-20261123T140437.txt bench/results/parallel-20261123T140732.txt \
	bench/results/parallel-20261123T142751.txt bench/results/parallel-20261123T143538.txt \
	bench/results/prepare-20261123T122417.txt bench/results/prepare-20261123T131737.txt \
	bench/results/prepare-20261123T133556.txt bench/results/prepare-20261123T141103.txt \
	bench/results/prepare-20261123T141202.txt bench/results/prepare-20261123T143615.txt \
	bench/results/prepare-20261123T143645.txt bench/results/smart-20261207T114135.txt \
	bench/results/mometas-20261207T114922.txt bench/results/analyze-20261207T114923.txt
EXTRA_DIST += $(BENCH_RESULTS)
