/* The BLACS, PBLAS and ScaLAPACK entry points dapt analyze calls, declared
 * by hand (Debian's libscalapack-openmpi ships no C header).  Fortran
 * routines take every argument by reference; integers are the default
 * 32-bit INTEGER.  The grid itself goes through BLACS's C interface
 * (Csys2blacs_handle), which builds a context on any MPI communicator. */
#ifndef DAPT_ANALYSIS_SCALAPACK_H
#define DAPT_ANALYSIS_SCALAPACK_H

#include <mpi.h>

/* A descriptor of a dense block-cyclic matrix (DTYPE_ = 1). */
enum { DAPT_DLEN = 9, DAPT_DESC_CTXT = 1, DAPT_DESC_M = 2, DAPT_DESC_N = 3 };

/* BLACS, C interface. */
int Csys2blacs_handle(MPI_Comm comm);
void Cfree_blacs_system_handle(int handle);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);

/* Tools. */
int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ictxt, const int *lld, int *info);

/* PBLAS. */
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);
void pdsyrk_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha, const double *a,
             const int *ia, const int *ja, const int *desca, const double *beta, double *c, const int *ic,
             const int *jc, const int *descc);

/* Redistribution between two descriptors (any contexts inside ictxt). */
void pdgemr2d_(const int *m, const int *n, const double *a, const int *ia, const int *ja, const int *desca,
               double *b, const int *ib, const int *jb, const int *descb, const int *ictxt);

/* Spectra. */
void pdsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *ia, const int *ja,
              const int *desca, double *w, double *z, const int *iz, const int *jz, const int *descz, double *work,
              const int *lwork, int *iwork, const int *liwork, int *info);
void pdgesvd_(const char *jobu, const char *jobvt, const int *m, const int *n, double *a, const int *ia,
              const int *ja, const int *desca, double *s, double *u, const int *iu, const int *ju, const int *descu,
              double *vt, const int *ivt, const int *jvt, const int *descvt, double *work, const int *lwork,
              int *info);

#endif
