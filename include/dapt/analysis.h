/* dapt analyze: distributed analysis of dapt's HDF5 outputs on ScaLAPACK
 * (docs/analysis.md has the equations and the output files).
 *
 * Every matrix lives block-cyclically on a 2-D BLACS process grid built on
 * the caller's communicator: global [m, n], blocks of mb x nb, block (I, J)
 * on process (I mod nprow, J mod npcol), each process holding its blocks in
 * one column-major local array, as ScaLAPACK expects.  Rank r of the
 * communicator is process (r / npcol, r mod npcol).  Matrices are read from
 * HDF5 by each rank selecting exactly its own blocks (one collective
 * hyperslab read, no gather and no full copy anywhere), products are PDGEMM /
 * PDSYRK, spectra PDSYEVD / PDGESVD, all in float64.  The numbers do not
 * depend on the grid shape beyond float64 rounding (tests/analysis).
 *
 * Collective functions say over which communicator; "over the grid" means
 * every rank of the communicator the grid was created on, in the same order
 * with the same arguments.  The rest are not collective. */
#ifndef DAPT_ANALYSIS_H
#define DAPT_ANALYSIS_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "dapt/batches.h"
#include "dapt/h5io.h"
#include "dapt/model.h"
#include "dapt/params.h"
#include "dapt/status.h"

/* ---- process grid and distributed matrices (src/analysis/grid.c, dmat.c) --- */

typedef struct dapt_pgrid {
    MPI_Comm comm;            /* the caller's communicator (not duplicated) */
    int rank, size;
    int sys, ctxt;            /* BLACS system handle and grid context */
    int nprow, npcol, myrow, mycol;
    MPI_Comm row_comm;        /* the ranks of this process row (ordered by column) */
    MPI_Comm col_comm;        /* the ranks of this process column (ordered by row) */
} dapt_pgrid;

/* The most square nprow x npcol = size with nprow >= npcol.  Not collective. */
void dapt_pgrid_shape(int size, int *nprow, int *npcol);

/* Parses "RxC" (e.g. "2x2"); DAPT_ERR_ARG naming the text otherwise.  Not
 * collective. */
dapt_status dapt_pgrid_parse(const char *text, int *nprow, int *npcol);

/* A row-major nprow x npcol grid over comm; nprow * npcol must equal the
 * communicator's size (refused otherwise, on every rank).  Collective over
 * comm. */
dapt_status dapt_pgrid_create(MPI_Comm comm, int nprow, int npcol, dapt_pgrid *g);
/* Releases the context and communicators.  Collective over the grid; safe on
 * a zeroed grid. */
void dapt_pgrid_free(dapt_pgrid *g);

typedef struct dapt_dmat {
    const dapt_pgrid *grid;
    int64_t m, n;   /* global shape */
    int mb, nb;     /* block shape */
    int locr, locc; /* this process's rows and columns */
    int lld;        /* leading dimension of a: max(1, locr) */
    int desc[9];    /* ScaLAPACK descriptor */
    double *a;      /* [lld, locc] column-major (malloc'd; never NULL) */
} dapt_dmat;

/* Allocates a zeroed [m, n] matrix with mb x nb blocks on grid g (which must
 * outlive it).  m, n must fit ScaLAPACK's 32-bit integers.  Not collective
 * (every rank computes the same descriptor). */
dapt_status dapt_dmat_create(const dapt_pgrid *g, int64_t m, int64_t n, int mb, int nb, dapt_dmat *A);
void dapt_dmat_free(dapt_dmat *A);

/* Global row / column (0-based) of local row i / column j.  Not collective. */
int64_t dapt_dmat_grow(const dapt_dmat *A, int i);
int64_t dapt_dmat_gcol(const dapt_dmat *A, int j);

/* Reads dataset `name` of f (float32 or float64 on disk) into a new
 * distributed matrix with block x block blocks.  A 2-D dataset is the
 * matrix; a 3-D or 4-D one, optionally indexed on its first dimension as
 * "name[i]" (dapt forward's hidden_states[l]), is read as [product of the
 * remaining leading sizes, last size] (token rows).  Each rank selects
 * exactly its blocks (strided hyperslabs plus the partial last row and
 * column blocks) and reads them with collective calls, in chunks of local
 * row blocks through a staging buffer of at most 32 MB.  Refused with one
 * line naming the file and dataset: a missing dataset, a 1-D array (or 2-D
 * with an index), an index out of range, an integer type, an empty matrix,
 * and any NaN or infinity (reported by the rank that saw it with its
 * position, agreed over the grid).  Collective over the grid and f's
 * communicator (the same ranks). */
dapt_status dapt_dmat_read_h5(const dapt_h5file *f, const char *name, const dapt_pgrid *g, int block,
                              dapt_dmat *A);

/* Writes A as the float64 dataset `name` [m, n] of a created file, each
 * rank writing exactly its blocks in one collective call (the selection
 * dapt_dmat_read_h5 reads).  Collective over the grid and the file. */
dapt_status dapt_dmat_write_h5(dapt_h5file *f, const char *name, const dapt_dmat *A);

/* Column means [n] (every rank gets all of them); with subtract, the means
 * are also taken off every column of A.  Collective over the grid. */
dapt_status dapt_dmat_center(dapt_dmat *A, int subtract, double *means);

/* Sums of squares of every global row [m] or column [n] of A, the same
 * array on every rank.  Collective over the grid. */
dapt_status dapt_dmat_row_sumsq(const dapt_dmat *A, double *rows);
dapt_status dapt_dmat_col_sumsq(const dapt_dmat *A, double *cols);

/* Sum of squares of every element (Frobenius norm squared).  Collective
 * over the grid. */
dapt_status dapt_dmat_sumsq(const dapt_dmat *A, double *out);

/* Copies A (distributed on any grid whose ranks are those of `into`) to a
 * new matrix on `into` with mb x nb blocks (PDGEMR2D).  Collective over the
 * communicator of `into`. */
dapt_status dapt_dmat_redistribute(const dapt_dmat *A, const dapt_pgrid *into, int mb, int nb, dapt_dmat *B);

/* ---- spectrum (src/analysis/spectrum.c) ------------------------------------ */

typedef enum { DAPT_SPECTRUM_COV = 0, DAPT_SPECTRUM_SVD = 1 } dapt_spectrum_method;

typedef struct dapt_spectrum_opts {
    dapt_spectrum_method method; /* covariance eigenvalues (PDSYEVD) or PDGESVD of X */
    int center;                  /* subtract the column means first (default 1) */
    int64_t top_k;               /* principal directions to return (0: none) */
} dapt_spectrum_opts;

typedef struct dapt_spectrum {
    int64_t rows, dim, count;  /* N, d, min(N, d) */
    double *singular;          /* [count] singular values of X (centred), descending */
    double *variance;          /* [count] s^2 / (N - 1): explained variance */
    double *variance_ratio;    /* [count] variance / total */
    double *mean;              /* [dim] column means (of the raw data) */
    double total_variance;     /* sum of variance = ||Xc||_F^2 / (N - 1) */
    double erank_entropy;      /* exp(entropy of s / sum s) (Roy & Vetterli) */
    double participation;      /* (sum var)^2 / sum var^2 */
    double stable_rank;        /* ||Xc||_F^2 / s_1^2 */
    double anisotropy;         /* mean cosine over pairs i != j of nonzero raw rows */
    int64_t zero_rows;         /* rows of norm 0, left out of the anisotropy */
    int64_t top_k;
    double *directions;        /* [top_k, dim] unit principal directions, largest first;
                                  each one's largest |component| is positive */
} dapt_spectrum;

/* The spectrum of X [N, d] (N >= 2).  X is centred in place when o->center.
 * Collective over X's grid. */
dapt_status dapt_spectrum_compute(dapt_dmat *X, const dapt_spectrum_opts *o, dapt_spectrum *s);
void dapt_spectrum_free(dapt_spectrum *s);

/* Quantities of a descending spectrum; not collective.  Entropy effective
 * rank of singular values s[0..n); participation ratio of variances. */
double dapt_effective_rank(const double *s, int64_t n);
double dapt_participation_ratio(const double *var, int64_t n);

/* Mean pairwise cosine over the pairs i != j of the nonzero rows of X,
 * from S = sum of unit rows: (||S||^2 - N') / (N'(N' - 1)), never forming
 * the N x N matrix.  Collective over X's grid. */
dapt_status dapt_anisotropy(const dapt_dmat *X, double *mean_cos, int64_t *zero_rows);

/* ---- CKA (src/analysis/cka.c) ---------------------------------------------- */

/* What one side of a linear CKA needs, computed once per matrix. */
typedef struct dapt_cka_side {
    int64_t n;        /* rows */
    double gram2;     /* ||Xc^T Xc||_F^2 */
    double sumsq;     /* ||Xc||_F^2 */
    double *row_sq;   /* [locr] squared norms of this rank's centred rows */
    int locr;
} dapt_cka_side;

/* Centres X in place and computes its side (PDSYRK).  N >= 4.  Collective
 * over X's grid. */
dapt_status dapt_cka_prepare(dapt_dmat *X, dapt_cka_side *s);
void dapt_cka_side_free(dapt_cka_side *s);

/* Linear CKA in feature space between prepared X [N, dx] and Y [N, dy] (the
 * same grid and row blocks):
 *   cka      = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)
 *   debiased = the same with the unbiased HSIC estimator (Kornblith et
 *              al. 2019's feature-space form; docs/analysis.md).
 * Collective over the grid. */
dapt_status dapt_cka_pair(const dapt_dmat *X, const dapt_cka_side *sx, const dapt_dmat *Y, const dapt_cka_side *sy,
                          double *cka, double *debiased);

/* ---- weight changes (src/analysis/delta.c) -------------------------------- */

typedef struct dapt_delta_stats {
    int64_t count;     /* min(m, n) */
    double *singular;  /* [count] singular values of dW, descending */
    double fro;        /* ||dW||_F */
    double fro_before; /* ||W_before||_F */
    double rel_fro;    /* fro / fro_before (inf when W_before = 0 and dW != 0, 0 when both 0) */
    double stable_rank;/* ||dW||_F^2 / s_1^2 (0 when dW = 0) */
} dapt_delta_stats;

/* dW = after - before is formed in `after` (overwritten), then its
 * singular values (PDGESVD, values only).  Collective over the grid. */
dapt_status dapt_delta_matrix(dapt_dmat *after, const dapt_dmat *before, dapt_delta_stats *out);
void dapt_delta_stats_free(dapt_delta_stats *s);

/* Change of every DAS unit, matching the soft-masking scope (das.h,
 * DAPT_SOFTMASK_PAPER): head h of layer l = rows h*dh..(h+1)*dh-1 of
 * attn.{q,k,v}.weight and .bias and those columns of attn.out.weight;
 * intermediate neuron i = row i of ffn.in.weight and ffn.in.bias[i]; output
 * neuron j = row j of ffn.out.weight and ffn.out.bias[j].  change = ||dW||
 * over the unit's elements, relative = change / ||W_before|| over them. */
typedef struct dapt_unit_change {
    int64_t layers, units[3];   /* heads, intermediate, hidden */
    double *change[3];          /* [layers * units[k]] */
    double *before[3];          /* [layers * units[k]] ||W_before|| over the unit */
} dapt_unit_change;

dapt_status dapt_unit_change_create(const dapt_model_config *mc, dapt_unit_change *u);
void dapt_unit_change_free(dapt_unit_change *u);

/* Adds the squared changes of one 2-D weight (`name` a params.h name, dW
 * and W_before distributed) or one bias (dw, wb: [n] on every rank) to u,
 * for the tensors that belong to units (others are ignored).  The matrix
 * form is collective over the grid; the vector form is not. */
dapt_status dapt_unit_change_add_matrix(dapt_unit_change *u, const dapt_model_config *mc, const char *name,
                                        const dapt_dmat *dW, const dapt_dmat *Wb);
void dapt_unit_change_add_vector(dapt_unit_change *u, const dapt_model_config *mc, const char *name,
                                 const double *dw, const double *wb, int64_t n);
/* Takes the square roots once every tensor was added.  Not collective. */
void dapt_unit_change_finish(dapt_unit_change *u);

/* ---- two models (src/analysis/delta_models.c) ---------------------------- */

typedef struct dapt_delta_opts {
    const char *before, *after;  /* model files or checkpoints (modelfile.h) */
    const char *importance;      /* importance file (das.h) or NULL */
    const char *source;          /* soft mask or source in it, or NULL: the only soft
                                    mask, else "general", else the only source */
    int block;
} dapt_delta_opts;

typedef struct dapt_delta_result {
    dapt_model_config mc;
    size_t ntensors;
    char (*names)[64];          /* [ntensors] the 2-D weights, table order */
    dapt_delta_stats *stats;    /* [ntensors] */
    dapt_unit_change units;
    char source[256];           /* the importance used ("softmask/<d>" or "importance/<s>"), "" without */
    int have_importance[3];     /* per unit kind */
    double *importance[3];      /* [layers * units[k]] */
    double spearman_relative[3];/* rho(importance, relative change), NaN when absent */
    double spearman_absolute[3];/* rho(importance, change) */
    double *spearman_layer[3];  /* [layers] rho(importance, relative change) within a layer */
} dapt_delta_result;

/* Reads BEFORE and AFTER (refusing different shapes, a missing tensor, NaN
 * or infinity, naming the file and dataset), computes every 2-D weight's
 * change statistics and every unit's change, and with an importance file
 * the correlations.  Collective over the grid. */
dapt_status dapt_delta_models(const dapt_pgrid *g, const dapt_delta_opts *o, dapt_delta_result *r);
/* Writes /delta, /summary, /units of an analysis file (docs/formats.md).
 * Collective over the file's communicator. */
dapt_status dapt_delta_write(dapt_h5file *f, const dapt_delta_result *r);
void dapt_delta_result_free(dapt_delta_result *r);

/* ---- rank correlation (src/analysis/spearman.c) ---------------------------- */

/* Ranks of x[0..n) (1-based, ties get the mean of their ranks) into r. */
void dapt_rank_average(const double *x, size_t n, double *r);
/* Spearman's rho: Pearson correlation of the average ranks; NaN when n < 2
 * or either side is constant.  DAPT_ERR_NOMEM on allocation failure. */
dapt_status dapt_spearman(const double *x, const double *y, size_t n, double *rho);

/* ---- hidden states on probe sequences (src/analysis/probe.c) ------------- */

typedef enum { DAPT_POOL_MEAN = 0, DAPT_POOL_FIRST = 1 } dapt_pool;

/* Runs the whole model m (eval mode, no dropout) over held-out sequences
 * [0, n) of seqs and pools every layer's hidden states per sequence (mean
 * over the non-padding positions, or the first position: [CLS] / <s>):
 * out[l] ([n, hidden], l = 0 the embedding output, l + 1 the output of
 * layer l; out has m->config.layers + 1 entries) on grid g with block x
 * block blocks.  Rank r computes rows [r q, (r + 1) q), q = ceil(n / P), in
 * chunks of `batch` sequences: a block distribution on a P x 1 grid, which
 * PDGEMR2D then redistributes onto g.  Collective over the grid. */
dapt_status dapt_probe_hidden(const dapt_model *m, dapt_sequences *seqs, int64_t n, dapt_pool pool, int64_t batch,
                              const dapt_pgrid *g, int block, dapt_dmat *out);

/* ---- output files (src/analysis/report.c) --------------------------------- */

/* One input of an analysis, recorded as "sha256  bytes  path" (the file's
 * checksum, computed by rank 0 and broadcast). */
typedef struct dapt_analysis_input {
    const char *role; /* "file", "model_a", "before", ... */
    const char *path;
} dapt_analysis_input;

/* Creates the output file and writes its self-describing root attributes:
 * format "dapt-analysis", format_version, analysis, command (the argument
 * vector joined), inputs (one "role  sha256  bytes  path" line each), ranks,
 * grid_rows, grid_cols, block_size, dapt_version, scalapack_version,
 * dapt_config.  Collective over the grid. */
dapt_status dapt_analysis_create(const dapt_pgrid *g, const char *path, int force, const dapt_config *cfg,
                                 const char *analysis, const char *command, const dapt_analysis_input *inputs,
                                 size_t ninputs, int block, dapt_h5file *f);

#endif
