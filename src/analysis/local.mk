# src/analysis: dapt analyze, distributed analysis of the HDF5 outputs on
# ScaLAPACK (2-D BLACS grid, block-cyclic matrices read straight from HDF5).
libdapt_a_SOURCES += src/analysis/grid.c src/analysis/dmat.c src/analysis/dmat_io.c src/analysis/spectrum.c \
	src/analysis/cka.c src/analysis/delta.c src/analysis/delta_models.c src/analysis/spearman.c src/analysis/report.c src/analysis/probe.c src/analysis/scalapack.h
dapt_SOURCES += src/cli/cmd_analyze.c
