/* What the process runs on: library versions, BLAS kernels, thread counts.
 * Not collective. */
#ifndef DAPT_PLATFORM_H
#define DAPT_PLATFORM_H

#include <stddef.h>

/* OpenBLAS's kernel name ("SkylakeX", "Haswell", ...). */
const char *dapt_blas_corename(void);

/* The best OpenBLAS kernel family this CPU supports, judged from its
 * instruction-set flags ("SkylakeX" with AVX-512, "Haswell" with AVX2, ...). */
const char *dapt_blas_best_corename(void);

/* Nonzero (and a reason in buf) when OpenBLAS runs kernels below what the
 * CPU supports, typically because OPENBLAS_CORETYPE forces older ones. */
int dapt_blas_kernels_degraded(char *buf, size_t len);

/* Logs (info, rank 0) the BLAS kernels and thread counts, and warns (every
 * rank that sees it) when the kernels are degraded.  Every command that
 * computes calls this once at start. */
void dapt_platform_log(void);

/* This node's physical memory in bytes (0 when unknown): the bound a
 * size read from a file is checked against before it is allocated. */
double dapt_physical_memory(void);

#endif
