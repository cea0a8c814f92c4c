/* PMPI interposer for bench/parallel/run.sh: counts the time each rank
 * spends inside MPI calls, without touching dapt's sources.
 *
 *   mpicc -O2 -shared -fPIC -o mpi_timer.so mpi_timer.c
 *   mpirun -x LD_PRELOAD=$PWD/mpi_timer.so -n 2 dapt train ...
 *
 * At MPI_Finalize every rank prints one line to stderr:
 *   mpi_timer rank=R wall=S grad_n=N grad_mb=M grad_s=S sync_n=N sync_s=S
 *             big_allreduce_s=S bcast_s=S barrier_s=S
 *             fwrite_mb=M fwrite_s=S fread_mb=M fread_s=S fsync_s=S maxrss_mb=M
 * grad: non-blocking all-reduces (dapt's gradient buckets; with
 * parallel.shard_optimizer the reduce-scatters and the all-gathers) and the
 * waits for them; sync: blocking all-reduces of at most 64 bytes (loss, status
 * and count agreements: their time is mostly waiting for the slowest
 * rank); fwrite/fread: MPI-IO data calls (parallel HDF5's checkpoint and
 * corpus I/O), fsync: MPI_File_sync. */
#include <mpi.h>
#include <stdio.h>
#include <sys/resource.h>

static double t_init, grad_s, sync_s, big_s, bcast_s, barrier_s, fw_s, fr_s, fsync_s;
static double grad_bytes, fw_bytes, fr_bytes;
static long grad_n, sync_n;
static int pending_grad; /* outstanding non-blocking all-reduces */

static double type_bytes(MPI_Datatype t, int count)
{
    int sz = 0;
    PMPI_Type_size(t, &sz);
    return (double)sz * (double)count;
}

int MPI_Init(int *argc, char ***argv)
{
    int rc = PMPI_Init(argc, argv);
    t_init = PMPI_Wtime();
    return rc;
}

int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
{
    int rc = PMPI_Init_thread(argc, argv, required, provided);
    t_init = PMPI_Wtime();
    return rc;
}

int MPI_Allreduce(const void *s, void *r, int count, MPI_Datatype t, MPI_Op op, MPI_Comm comm)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Allreduce(s, r, count, t, op, comm);
    double dt = PMPI_Wtime() - t0;
    if (type_bytes(t, count) <= 64) {
        sync_s += dt;
        sync_n++;
    } else {
        big_s += dt;
    }
    return rc;
}

int MPI_Iallreduce(const void *s, void *r, int count, MPI_Datatype t, MPI_Op op, MPI_Comm comm, MPI_Request *req)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Iallreduce(s, r, count, t, op, comm, req);
    grad_s += PMPI_Wtime() - t0;
    grad_n++;
    grad_bytes += type_bytes(t, count);
    pending_grad++;
    return rc;
}

/* parallel.shard_optimizer: the gradient reduce-scatter and the parameter
 * all-gather count as gradient communication too. */
int MPI_Ireduce_scatter(const void *s, void *r, const int counts[], MPI_Datatype t, MPI_Op op, MPI_Comm comm,
                        MPI_Request *req)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Ireduce_scatter(s, r, counts, t, op, comm, req);
    grad_s += PMPI_Wtime() - t0;
    grad_n++;
    int size = 1;
    PMPI_Comm_size(comm, &size);
    for (int i = 0; i < size; i++) grad_bytes += type_bytes(t, counts[i]);
    pending_grad++;
    return rc;
}

int MPI_Iallgatherv(const void *s, int sc, MPI_Datatype st, void *r, const int counts[], const int displs[],
                    MPI_Datatype rt, MPI_Comm comm, MPI_Request *req)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Iallgatherv(s, sc, st, r, counts, displs, rt, comm, req);
    grad_s += PMPI_Wtime() - t0;
    grad_n++;
    pending_grad++;
    return rc;
}

int MPI_Waitall(int n, MPI_Request reqs[], MPI_Status st[])
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Waitall(n, reqs, st);
    if (pending_grad > 0) {
        grad_s += PMPI_Wtime() - t0;
        pending_grad = pending_grad > n ? pending_grad - n : 0;
    }
    return rc;
}

/* dapt's overlapped buckets are progressed with MPI_Testall during
 * backward: time spent there is exposed communication too. */
int MPI_Testall(int n, MPI_Request reqs[], int *flag, MPI_Status st[])
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Testall(n, reqs, flag, st);
    if (pending_grad > 0) grad_s += PMPI_Wtime() - t0;
    return rc;
}

int MPI_Wait(MPI_Request *req, MPI_Status *st)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Wait(req, st);
    if (pending_grad > 0) {
        grad_s += PMPI_Wtime() - t0;
        pending_grad--;
    }
    return rc;
}

int MPI_Bcast(void *b, int count, MPI_Datatype t, int root, MPI_Comm comm)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Bcast(b, count, t, root, comm);
    bcast_s += PMPI_Wtime() - t0;
    return rc;
}

int MPI_Barrier(MPI_Comm comm)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_Barrier(comm);
    barrier_s += PMPI_Wtime() - t0;
    return rc;
}

#define FILE_IO(name, buftype, secs, bytes)                                                          \
    int name(MPI_File fh, MPI_Offset off, buftype buf, int count, MPI_Datatype t, MPI_Status *st)   \
    {                                                                                                \
        double t0 = PMPI_Wtime();                                                                    \
        int rc = P##name(fh, off, buf, count, t, st);                                                \
        secs += PMPI_Wtime() - t0;                                                                   \
        bytes += type_bytes(t, count);                                                               \
        return rc;                                                                                   \
    }
FILE_IO(MPI_File_write_at_all, const void *, fw_s, fw_bytes)
FILE_IO(MPI_File_write_at, const void *, fw_s, fw_bytes)
FILE_IO(MPI_File_read_at_all, void *, fr_s, fr_bytes)
FILE_IO(MPI_File_read_at, void *, fr_s, fr_bytes)

int MPI_File_sync(MPI_File fh)
{
    double t0 = PMPI_Wtime();
    int rc = PMPI_File_sync(fh);
    fsync_s += PMPI_Wtime() - t0;
    return rc;
}

int MPI_Finalize(void)
{
    int rank = 0;
    PMPI_Comm_rank(MPI_COMM_WORLD, &rank);
    struct rusage ru;
    const double rss = getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0.0;
    fprintf(stderr,
            "mpi_timer rank=%d wall=%.3f grad_n=%ld grad_mb=%.1f grad_s=%.3f sync_n=%ld sync_s=%.3f "
            "big_allreduce_s=%.3f bcast_s=%.3f barrier_s=%.3f fwrite_mb=%.1f fwrite_s=%.3f fread_mb=%.1f "
            "fread_s=%.3f fsync_s=%.3f maxrss_mb=%.1f\n",
            rank, PMPI_Wtime() - t_init, grad_n, grad_bytes / 1e6, grad_s, sync_n, sync_s, big_s, bcast_s,
            barrier_s, fw_bytes / 1e6, fw_s, fr_bytes / 1e6, fr_s, fsync_s, rss);
    return PMPI_Finalize();
}
