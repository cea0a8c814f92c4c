/* dapt version: versions of dapt and every library it runs on. */
#include <cblas.h>
#include <hdf5.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>

#include "config.h"
#include "dapt/cli.h"
#include "dapt/platform.h"

static void usage(void)
{
    printf("usage: dapt version [options]\n\nPrints the versions of dapt, MPI, HDF5, OpenBLAS "
           "and ScaLAPACK, the BLAS kernels and the thread counts in use.\n\n");
    dapt_cli_print_common_help();
}

/* Runs on rank 0. */
static dapt_status run(dapt_cli *cli, void *ctx)
{
    (void)ctx;
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0, major = 0, minor = 0;
    DAPT_CHECK(DAPT_MPI(MPI_Get_library_version(mpi, &len)));
    DAPT_CHECK(DAPT_MPI(MPI_Get_version(&major, &minor)));
    for (int i = 0; i < len; i++)
        if (mpi[i] == '\n' || mpi[i] == ',') mpi[i] = (mpi[i] == '\n') ? ' ' : mpi[i];
    while (len > 0 && (mpi[len - 1] == ' ' || mpi[len - 1] == '\0')) mpi[--len] = '\0';
    unsigned h5maj = 0, h5min = 0, h5rel = 0;
    H5get_libversion(&h5maj, &h5min, &h5rel);
    printf("dapt %s\n", PACKAGE_VERSION);
    printf("MPI %d.%d: %s (%d ranks)\n", major, minor, mpi, cli->size);
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
    return DAPT_OK;
}

int dapt_cmd_version(int argc, char **argv)
{
    const dapt_cli_command cmd = {.name = "version", .usage = usage, .max_args = 0, .rank0 = 1, .run = run};
    return dapt_cli_main(argc, argv, &cmd);
}
