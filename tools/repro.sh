#!/bin/sh
# The DAS comparison on the real data of data/ (docs/results.md), without
# SLURM; jobs/experiments/das-repro.sbatch runs the same under srun.
#
#   tools/repro.sh [OUT]      (default runs/repro; every stage is skipped when
#                              its output exists, so a rerun resumes)
#
#   a. a small general BERT trained from scratch with MLM on data/corpus/general;
#   b. post-training on computing, then biomedical, with each of METHODS
#      (none = the general model itself);
#   c. fine-tuning of every model (after each domain, for the forgetting
#      matrix) on debian_section (computing), go_ontology (biomedical) and
#      brown_genre (general) with SEEDS seeds; test-split evaluation; the
#      general corpus's held-out MLM loss of every final model;
#   d. OUT/results.md: macro-F1 / accuracy mean ± std over seeds, forgetting
#      rate, general MLM loss, wall time per method; OUT/plots/*.png.
#
# Sizes come from the environment (defaults: the run in docs/results.md):
#   RANKS=2  LAUNCH="mpirun -n RANKS --oversubscribe --bind-to none"  DAPT=build/dapt
#   G_LAYERS=4 G_HIDDEN=128 G_HEADS=4 G_FFN=512 SEQ=128 G_STEPS=800 G_BATCH=32 G_LR=7e-4
#   P_STEPS=30 P_BATCH=16 P_LR=3e-4 P_SAMPLES=128   post-training steps per
#     domain; sequences of the importance and Fisher passes
#   METHODS="none mlm kd ewc dga das"  SEEDS="1 2 3"
#   STAGES="data general post finetune table"   the stages to run
#   FT_TRAIN=320 FT_DEV=100 FT_TEST=300 FT_LEN=48 FT_EPOCHS=2 FT_LR=1e-3 FT_BATCH=16
#     (FT_*: an evenly spaced sample of each split; FT_LEN: tokens per example)
#   FT_OBJECTIVE=cls (smart: SMART fine-tuning; its [smart] keys through FT_SET)
#   FT_SET="--set smart.lambda_s=3 ..."   extra settings of every fine-tune
#   FT_RANKS=1 FT_JOBS=2    fine-tunes run FT_JOBS at a time on FT_RANKS ranks each
#     (on a shared 2-core machine two 1-rank runs waste less time in MPI waits)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/repro}
mkdir -p "$out" && out=$(cd "$out" && pwd)
RANKS=${RANKS:-2}
LAUNCH=${LAUNCH:-mpirun -n $RANKS --oversubscribe --bind-to none}
DAPT=${DAPT:-$here/build/dapt}
PY=${PY:-/usr/bin/python3}
G_LAYERS=${G_LAYERS:-4} G_HIDDEN=${G_HIDDEN:-128} G_HEADS=${G_HEADS:-4} G_FFN=${G_FFN:-512}
SEQ=${SEQ:-128} G_STEPS=${G_STEPS:-800} G_BATCH=${G_BATCH:-32} G_LR=${G_LR:-7e-4}
P_STEPS=${P_STEPS:-30} P_BATCH=${P_BATCH:-16} P_LR=${P_LR:-3e-4} P_SAMPLES=${P_SAMPLES:-128}
METHODS=${METHODS:-none mlm kd ewc dga das}
SEEDS=${SEEDS:-1 2 3}
FT_TRAIN=${FT_TRAIN:-320} FT_DEV=${FT_DEV:-100} FT_TEST=${FT_TEST:-300} FT_LEN=${FT_LEN:-48}
FT_EPOCHS=${FT_EPOCHS:-2} FT_LR=${FT_LR:-1e-3} FT_BATCH=${FT_BATCH:-16}
FT_OBJECTIVE=${FT_OBJECTIVE:-cls} FT_SET=${FT_SET:-}
FT_RANKS=${FT_RANKS:-1} FT_JOBS=${FT_JOBS:-2}
FT_LAUNCH=${FT_LAUNCH:-mpirun -n $FT_RANKS --oversubscribe --bind-to none}
TOK=${TOK:-/work/shared/vocab/bert-base-uncased/vocab.txt}
[ -f "$TOK" ] || { mkdir -p "$out/vocab" && tar -xJf "$here/tests/fixtures/vocab.tar.xz" -C "$out" vocab/bert-base-uncased &&
                   TOK=$out/vocab/bert-base-uncased/vocab.txt; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

STAGES=${STAGES:-data general post finetune table}
want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
DOMAINS="computing biomedical"
# task name -> the domain whose end task it is
task_of() { case $1 in computing) echo debian_section ;; biomedical) echo go_ontology ;; general) echo brown_genre ;; esac; }
TASKS="debian_section go_ontology brown_genre"

say() { printf '[repro %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
run() { say "dapt $*"; $LAUNCH "$DAPT" "$@"; }
# timed NAME CMD...: runs CMD, appends "NAME seconds" to OUT/times.txt
timed() { name=$1; shift; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 ))" >>"$out/times.txt"; }

# ---- data -------------------------------------------------------------------
want data && for d in general $DOMAINS; do
    [ -f "$out/$d.h5" ] || run prepare --tokenizer "$TOK" --doc-sep blank -o "$out/$d.h5" "$here"/data/corpus/"$d"/*.txt
done
mkdir -p "$out/tasks"
want data && for t in $TASKS; do
    [ -f "$out/tasks/$t.h5" ] && continue
    mkdir -p "$out/tasks/$t"
    # An evenly spaced sample (the files are grouped by label in places).
    for split in train:$FT_TRAIN dev:$FT_DEV test:$FT_TEST; do
        s=${split%%:*} n=${split#*:}
        total=$(wc -l <"$here/data/tasks/$t/$s.tsv")
        awk -v k=$(( total / n > 0 ? total / n : 1 )) -v n="$n" 'NR % k == 1 && c < n { print; c++ }' \
            "$here/data/tasks/$t/$s.tsv" >"$out/tasks/$t/$s.tsv"
    done
    run prepare --task --tokenizer "$TOK" --set tokenizer.max_length="$FT_LEN" -o "$out/tasks/$t.h5" \
        "$out/tasks/$t/train.tsv" "$out/tasks/$t/dev.tsv" "$out/tasks/$t/test.tsv"
done

# ---- a. the general model ---------------------------------------------------
cat >"$out/general.ini" <<INI
[run]
seed = 1234
output_dir = $out/general
[data]
corpus = $out/general.h5
general_corpus = $out/general.h5
seq_len = $SEQ
eval_fraction = 0.02
[tokenizer]
path = $TOK
[model]
vocab_size = 30522
hidden = $G_HIDDEN
layers = $G_LAYERS
heads = $G_HEADS
intermediate = $G_FFN
max_position = $SEQ
[train]
method = mlm
steps = $G_STEPS
batch_size = $G_BATCH
lr = $G_LR
warmup_steps = $(( G_STEPS / 16 ))
eval_every = 100
eval_batches = 10
log_every = 20
[checkpoint]
every = 200
keep = 2
INI
general_model() { echo "$out/general/checkpoints/$(cat "$out/general/checkpoints/latest")"; }
if want general && { [ ! -f "$out/general/checkpoints/latest" ] || ! grep -q "^$G_STEPS," "$out/general/metrics.csv"; }; then
    timed general run train --config "$out/general.ini" --resume
fi
G=$(general_model 2>/dev/null || :)

# ---- b. post-training -------------------------------------------------------
# model_after METHOD DOMAIN: the model file after that domain
model_after() {
    if [ "$1" = none ]; then echo "$G"; else echo "$out/post/$1/$2/model.h5"; fi
}
want post && for m in $METHODS; do
    [ "$m" = none ] && continue
    [ -f "$(model_after "$m" biomedical)" ] && continue
    timed "post-$m" run train --config "$out/general.ini" --force \
        --set run.output_dir="$out/post/$m" --set model.path="$G" --set train.method="$m" \
        --set data.corpus="$out/computing.h5" --set continual.domains=computing,biomedical \
        --set continual.corpora="$out/computing.h5,$out/biomedical.h5" \
        --set train.steps="$P_STEPS" --set train.batch_size="$P_BATCH" --set train.lr="$P_LR" \
        --set train.warmup_steps=$(( P_STEPS / 10 )) --set train.eval_every="$P_STEPS" \
        --set checkpoint.every=0 --set checkpoint.keep=1 \
        --set das.importance_samples="$P_SAMPLES" --set ewc.samples="$P_SAMPLES" \
        --set das.representation_samples=0
done

# ---- c. fine-tuning and evaluation ------------------------------------------
want finetune && cat >"$out/finetune.ini" <<INI
[run]
seed = 1
[finetune]
epochs = $FT_EPOCHS
batch_size = $FT_BATCH
lr = $FT_LR
warmup_ratio = 0.1
max_length = $FT_LEN
metric = macro_f1
objective = $FT_OBJECTIVE
INI
# finetune METHOD STAGE TASK SEED
finetune() {
    d="$out/ft/$1/$2/$3/s$4"
    [ -f "$d/test.json" ] && return 0
    say "finetune $1 after $2 on $3, seed $4"
    mkdir -p "$d"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    if $FT_LAUNCH "$DAPT" finetune --config "$out/finetune.ini" $FT_SET --force --model "$(model_after "$1" "$2")" \
           --task "$out/tasks/$3.h5" --seed "$4" --output "$d" >"$d/finetune.log" 2>&1 &&
       $FT_LAUNCH "$DAPT" eval --force --model "$d/model.h5" --task "$out/tasks/$3.h5" --split test \
           --output "$d/test" >"$d/test.txt" 2>&1; then
        echo "ft-$1-$2-$3-s$4 $(( $(date +%s) - t0 ))" >>"$out/times.txt"
    else
        say "FAILED: finetune $1 after $2 on $3, seed $4 (see $d/*.log, $d/test.txt)"
    fi
}
if want finetune; then
    jobs=0
    for m in $METHODS; do
        for s in $SEEDS; do
            # A[0][0]: the computing task right after the computing domain
            # (for none the same model as after biomedical: one run serves both);
            # after the last domain every task (A[1][*] and the general task).
            set --
            [ "$m" = none ] || set -- "$m computing debian_section $s"
            for t in $TASKS; do set -- "$@" "$m biomedical $t $s"; done
            for job in "$@"; do
                # shellcheck disable=SC2086
                finetune $job &
                jobs=$(( jobs + 1 ))
                [ "$jobs" -lt "$FT_JOBS" ] || { wait; jobs=0; }
            done
            set --
        done
    done
    wait
    for s in $SEEDS; do
        case " $METHODS " in *" none "*)
            mkdir -p "$out/ft/none/computing/debian_section"
            ln -sfn ../../biomedical/debian_section/s$s "$out/ft/none/computing/debian_section/s$s" ;;
        esac
    done
fi
want finetune && for m in $METHODS; do
    f="$out/mlm/$m-general"
    [ -f "$f.json" ] && continue
    mkdir -p "$out/mlm"
    # the held-out sequences dapt train evaluated (train.eval_batches x batch_size)
    run eval --force --config "$out/general.ini" --model "$(model_after "$m" biomedical)" \
        --corpus "$out/general.h5" --max-sequences $(( 10 * G_BATCH )) --output "$f" >"$f.txt"
done

# ---- d. the table and the plots --------------------------------------------
want table || exit 0
mkdir -p "$out/plots"
"$PY" "$here/tools/plot.py" curves "$out/general/metrics.csv" -o "$out/plots/general.png" --labels general
for m in $METHODS; do
    [ "$m" = none ] && continue
    set --; labels=
    for d in $DOMAINS; do
        [ -f "$out/post/$m/$d/metrics.csv" ] && set -- "$@" "$out/post/$m/$d/metrics.csv" && labels=$labels${labels:+,}$d
    done
    [ $# -gt 0 ] && "$PY" "$here/tools/plot.py" curves "$@" -o "$out/plots/post-$m.png" --labels "$labels"
    [ -f "$out/post/$m/importance.h5" ] &&
        "$PY" "$here/tools/plot.py" importance "$out/post/$m/importance.h5" -o "$out/plots/importance-$m.png"
done
"$PY" - "$out" "$METHODS" "$SEEDS" <<'PY'
import json, os, statistics, sys
out, methods, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
times = {}
if os.path.exists(os.path.join(out, "times.txt")):
    for line in open(os.path.join(out, "times.txt")):
        name, sec = line.split()
        times[name] = times.get(name, 0) + int(sec)

def metric(m, stage, task, key):
    """Percentages over the seeds whose run finished."""
    vals = []
    for s in seeds:
        p = os.path.join(out, "ft", m, stage, task, f"s{s}", "test.json")
        if os.path.exists(p):
            with open(p) as f:
                vals.append(100.0 * float(json.load(f)[key]))
    return vals

def ms(v):
    if not v:
        return "n/a"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.1f} ± {sd:.1f}" + ("" if len(v) == len(seeds) else f" ({len(v)} seeds)")

def mlm_loss(m):
    p = os.path.join(out, "mlm", f"{m}-general.json")
    if not os.path.exists(p):
        return "n/a"
    with open(p) as f:
        return f"{float(json.load(f)['mlm_loss']):.3f}"

rows = ["| method | debian_section macro-F1 / acc | go_ontology macro-F1 / acc | brown_genre macro-F1 / acc | "
        "FR macro-F1 | FR acc | general MLM loss | post-training s |",
        "|---|---|---|---|---|---|---|---|"]
for m in methods:
    cells = [m]
    for t in ("debian_section", "go_ontology", "brown_genre"):
        cells.append(f"{ms(metric(m, 'biomedical', t, 'macro_f1'))} / {ms(metric(m, 'biomedical', t, 'accuracy'))}")
    # T = 2 domains (computing, biomedical): FR = A[0][0] - A[1][0], the
    # computing task after the computing domain minus after the biomedical one
    for key in ("macro_f1", "accuracy"):
        a00, a10 = metric(m, "computing", "debian_section", key), metric(m, "biomedical", "debian_section", key)
        cells.append(f"{statistics.mean(a00) - statistics.mean(a10):+.1f}" if a00 and a10 else "n/a")
    cells.append(mlm_loss(m))
    cells.append(str(times[f"post-{m}"]) if f"post-{m}" in times else ("0" if m == "none" else "n/a"))
    rows.append("| " + " | ".join(cells) + " |")
table = "\n".join(rows)
with open(os.path.join(out, "results.md"), "w") as f:
    f.write(table + "\n")
print(table)
PY
say "done: $out/results.md, $out/plots/"
