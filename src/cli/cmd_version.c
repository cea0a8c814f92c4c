/* dapt version: versions of dapt and every library it runs on. */
#include <cblas.h>
#include <hdf5.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>

#include "config.h"
#include "dapt/cli.h"
#include "dapt/platform.h"

int dapt_cmd_version(int argc, char **argv)
{
    dapt_cli cli;
    dapt_status st = dapt_cli_parse(argc, argv, &cli);
    if (st != DAPT_OK) dapt_cli_fail_all(st);
    if (!cli.help && (st = dapt_cli_expect_no_args(&cli, "version")) != DAPT_OK) dapt_cli_fail_all(st);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (cli.help) {
        if (rank == 0) {
            printf("usage: dapt version [options]\n\nPrints the versions of dapt, MPI, HDF5, OpenBLAS "
                   "and ScaLAPACK, the BLAS kernels and the thread counts in use.\n\n");
            dapt_cli_print_common_help();
        }
        dapt_cli_free(&cli);
        return DAPT_EXIT_OK;
    }
    if (rank == 0) {
        char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0, major = 0, minor = 0;
        MPI_Get_library_version(mpi, &len);
        MPI_Get_version(&major, &minor);
        for (int i = 0; i < len; i++)
            if (mpi[i] == '\n' || mpi[i] == ',') mpi[i] = (mpi[i] == '\n') ? ' ' : mpi[i];
        while (len > 0 && (mpi[len - 1] == ' ' || mpi[len - 1] == '\0')) mpi[--len] = '\0';
        unsigned h5maj = 0, h5min = 0, h5rel = 0;
        H5get_libversion(&h5maj, &h5min, &h5rel);
        printf("dapt %s\n", PACKAGE_VERSION);
        printf("MPI %d.%d: %s (%d ranks)\n", major, minor, mpi, size);
        printf("HDF5 %u.%u.%u%s\n", h5maj, h5min, h5rel,
#ifdef H5_HAVE_PARALLEL
               " (parallel)"
#else
               " (serial)"
#endif
        );
        printf("OpenBLAS: %s\n", openblas_get_config());
        printf("OpenBLAS kernels: %s (best for this CPU: %s)\n", dapt_blas_corename(), dapt_blas_best_corename());
        printf("ScaLAPACK %s (recorded at build time)\n", DAPT_SCALAPACK_VERSION);
        printf("threads: OpenBLAS %d, OpenMP %d\n", openblas_get_num_threads(), omp_get_max_threads());
        char why[256];
        if (dapt_blas_kernels_degraded(why, sizeof why)) printf("warning: %s\n", why);
    }
    dapt_cli_free(&cli);
    return DAPT_EXIT_OK;
}
