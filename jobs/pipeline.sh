#!/bin/bash
# Submits prepare -> train -> export as three dependent SLURM jobs; each
# starts only when the previous one succeeded (afterok).  Run from the dapt
# checkout:
#
#   jobs/pipeline.sh TOKENIZER CORPUS_OUT.h5 run.ini HF_DIR INPUT...
#
# run.ini's data.corpus must name CORPUS_OUT.h5 (the script sets it with
# --set, so the file may leave it empty).  Prints the three job ids; the
# jobs' logs are run.output_dir/logs/dapt-{prepare,train,export}-JOBID.out.
set -euo pipefail
tok=${1:?usage: jobs/pipeline.sh TOKENIZER CORPUS.h5 run.ini HF_DIR INPUT...}
corpus=${2:?}; config=${3:?}; hf=${4:?}; shift 4
[ $# -gt 0 ] || { echo "jobs/pipeline.sh: no INPUT files" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
. "$here/job-env.sh"   # DAPT (exported: the jobs run the same one)
run=$("$DAPT" config show --config "$config" | sed -n 's/^output_dir = //p')
# The three logs go to the run's logs/ from the start (SLURM's own messages
# included), rather than to the submit directory.
mkdir -p "$run/logs"
logs=(--output="$run/logs/%x-%j.out")
prep=$(sbatch --parsable "${logs[@]}" "$here/prepare.sbatch" "$tok" "$corpus" "$@")
train=$(sbatch --parsable "${logs[@]}" --dependency=afterok:"$prep" "$here/train.sbatch" "$config" --set data.corpus="$corpus")
export_job=$(sbatch --parsable "${logs[@]}" --dependency=afterok:"$train" "$here/export.sbatch" "$run" "$hf")
echo "prepare $prep"
echo "train $train"
echo "export $export_job"
