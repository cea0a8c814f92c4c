# tests/slurm: a real one-node SLURM (munged, slurmctld, slurmd on localhost)
# brought up by cluster.sh; the smoke test submits MPI and preemptible jobs,
# cluster.test checks that clusters stay apart and stop after their users.
TESTS += tests/slurm/cluster.test tests/slurm/smoke.test tests/slurm/jobs.test
EXTRA_DIST += tests/slurm/cluster.test tests/slurm/smoke.test tests/slurm/jobs.test tests/slurm/cluster.sh
