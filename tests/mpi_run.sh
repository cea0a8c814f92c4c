#!/bin/sh
# Runs a test program under mpirun with N ranks: tests/mpi_run.sh N PROGRAM [ARGS...]
# Used by the .test wrappers; `make check` exports MPIRUN and the Open MPI
# settings (root allowed, oversubscription for more ranks than cores).
n=$1; shift
: "${MPIRUN:=mpirun}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "$MPIRUN" -n "$n" --oversubscribe --bind-to none "$@"
