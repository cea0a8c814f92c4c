#!/bin/sh
# The DAS comparison on the real data of data/ (docs/results.md), without
# SLURM; jobs/experiments/das-repro.sbatch runs the same under srun.
#
#   tools/repro.sh [OUT]      (default runs/repro; every stage is skipped when
#                              its output exists, post-training and
#                              fine-tuning resume from their checkpoints,
#                              so a rerun continues after any interruption)
#
#   general   the one general model of tools/general_model.sh in GENERAL_RUN
#             (run, or continued, when its model is missing): its model,
#             general corpus and prepared tasks (2,000 / 500 / 1,000 examples)
#   tune      the fine-tuning lr, tuned once on `none` (the general model):
#             each of FT_LR_GRID on every task's dev split, seed 1; the lr of
#             the best mean dev macro-F1 goes to OUT/ft_lr.txt (FT_LR skips it)
#   post      post-training on computing, then biomedical, with each method of
#             METHODS and each post-training seed of P_SEEDS
#   finetune  every model on its tasks with each fine-tuning seed of FT_SEEDS;
#             test split; held-out general MLM loss of every final model
#   table     OUT/results.md and OUT/plots/
#
# Methods (METHODS, default "none mlm one kd ewc dga das das-oracle"):
#   none              the general model itself
#   mlm kd ewc das    continual: computing, then biomedical from the result
#   one dga           each domain post-trained separately from the general
#                     model: reported per domain (A[i][i]), no forgetting rate
#   das dga           the general importance from the papers' KL proxy on the
#                     domain's own data (no general corpus)
#   das-oracle dga-oracle
#                     the same with the general importance from MLM on the
#                     general corpus (data.general_corpus): an oracle the
#                     papers do not have
# Sizes (environment; defaults meet issue 15: >= 1 M tokens per domain and
# all of biomedical (0.73 M tokens as prepared), importance and Fisher over
# >= 1,000 sequences):
#   GENERAL_RUN=runs/general-model  RANKS=2  DAPT=build/dapt
#   LAUNCH="mpirun -n RANKS --oversubscribe --bind-to none"
#   P_STEPS=250 P_BATCH=32 P_LR=1e-4 P_SAMPLES=1000 P_SEEDS="1 2 3"
#     (250 x 32 x 128 = 1.02 M tokens per domain: 1.4 passes over biomedical)
#   FT_SEEDS="1 2 3" FT_EPOCHS=4 FT_BATCH=32 FT_LR_GRID="3e-5 1e-4 3e-4 1e-3" FT_LR=
#   FT_OBJECTIVE=cls (smart: SMART fine-tuning; its [smart] keys through FT_SET)
#   FT_SET="--set smart.lambda_s=3 ..."   extra settings of every fine-tune
#   FT_RANKS=1 FT_JOBS=2    fine-tunes run FT_JOBS at a time on FT_RANKS ranks each
#   STAGES="general tune post finetune table"
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/repro}
mkdir -p "$out" && out=$(cd "$out" && pwd)
GENERAL_RUN=${GENERAL_RUN:-$here/runs/general-model}
RANKS=${RANKS:-2}
LAUNCH=${LAUNCH:-mpirun -n $RANKS --oversubscribe --bind-to none}
DAPT=${DAPT:-$here/build/dapt}
PY=${PY:-/usr/bin/python3}
METHODS=${METHODS:-none mlm one kd ewc dga das das-oracle}
P_STEPS=${P_STEPS:-250} P_BATCH=${P_BATCH:-32} P_LR=${P_LR:-1e-4} P_SAMPLES=${P_SAMPLES:-1000}
P_SEEDS=${P_SEEDS:-1 2 3} FT_SEEDS=${FT_SEEDS:-1 2 3}
FT_EPOCHS=${FT_EPOCHS:-4} FT_BATCH=${FT_BATCH:-32} FT_LR_GRID=${FT_LR_GRID:-3e-5 1e-4 3e-4 1e-3} FT_LR=${FT_LR:-}
FT_OBJECTIVE=${FT_OBJECTIVE:-cls} FT_SET=${FT_SET:-}
FT_RANKS=${FT_RANKS:-1} FT_JOBS=${FT_JOBS:-2}
FT_LAUNCH=${FT_LAUNCH:-mpirun -n $FT_RANKS --oversubscribe --bind-to none}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
. "$here/tools/bootstrap.sh"
STAGES=${STAGES:-general tune post finetune table}
want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
DOMAINS="computing biomedical"
TASKS="debian_section go_ontology brown_genre"

say() { printf '[repro %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
run() { say "dapt $*"; $LAUNCH "$DAPT" "$@"; }
# timed NAME CMD...: runs CMD, appends "NAME seconds" to OUT/times.txt
timed() { name=$1; shift; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 ))" >>"$out/times.txt"; }
# from_base METHOD: 0 when each domain starts from the general model
from_base() { case $1 in one | dga | dga-oracle) return 0 ;; *) return 1 ;; esac; }

# ---- general: the one general model ----------------------------------------
G=$GENERAL_RUN/train/model.h5
if want general && [ ! -f "$G" ]; then
    say "tools/general_model.sh $GENERAL_RUN (resumable; exits 75 when preempted)"
    DAPT=$DAPT "$here/tools/general_model.sh" "$GENERAL_RUN"
fi
[ -f "$G" ] || { echo "repro.sh: $G: no general model (stage general: tools/general_model.sh $GENERAL_RUN)" >&2; exit 2; }
GEN_INI=$GENERAL_RUN/general.ini
TOK=$GENERAL_RUN/vocab/bert-base-uncased/vocab.txt
DATA=${DATA:-$here/data}
[ -f "$DATA/MANIFEST" ] || "$here/data/fetch.sh"
for d in $DOMAINS; do
    [ -f "$out/$d.h5" ] || run prepare --tokenizer "$TOK" --doc-sep blank -o "$out/$d.h5" $(dapt_corpus_files "$DATA" "$d")
done

# finetune_one MODEL TASK SEED DIR LR: fine-tune and evaluate on the test split
finetune_one() {
    [ -f "$4/test.json" ] && return 0
    mkdir -p "$4"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    if $FT_LAUNCH "$DAPT" finetune --model "$1" --task "$GENERAL_RUN/tasks/$2.h5" --seed "$3" --output "$4" --resume \
           --set finetune.epochs="$FT_EPOCHS" --set finetune.batch_size="$FT_BATCH" --set finetune.lr="$5" \
           --set finetune.warmup_ratio=0.1 --set finetune.metric=macro_f1 --set finetune.objective="$FT_OBJECTIVE" \
           $FT_SET >>"$4/finetune.log" 2>&1 &&
       $FT_LAUNCH "$DAPT" eval --force --model "$4/model.h5" --task "$GENERAL_RUN/tasks/$2.h5" --split test \
           --output "$4/test" >"$4/test.txt" 2>&1; then
        echo "ft $4 $(( $(date +%s) - t0 ))" >>"$out/times.txt"
    else
        say "FAILED: fine-tuning $1 on $2, seed $3 (see $4/finetune.log, $4/test.txt)"
    fi
}
# jobs run FT_JOBS at a time
pending=0
spawn() { "$@" & pending=$(( pending + 1 )); [ "$pending" -lt "$FT_JOBS" ] || { wait; pending=0; }; }

# ---- tune: the fine-tuning lr, once, on the general model -----------------------
if [ -z "$FT_LR" ] && [ -f "$out/ft_lr.txt" ]; then FT_LR=$(cat "$out/ft_lr.txt"); fi
if [ -z "$FT_LR" ] && want tune; then
    for lr in $FT_LR_GRID; do
        for t in $TASKS; do spawn finetune_one "$G" "$t" 1 "$out/tune/lr$lr/$t" "$lr"; done
    done
    wait; pending=0
    FT_LR=$("$PY" - "$out/tune" "$FT_LR_GRID" "$TASKS" <<'PY'
import csv, os, statistics, sys
root, grid, tasks = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
best = None
for lr in grid:
    f1 = []
    for t in tasks:
        p = f"{root}/lr{lr}/{t}/finetune_metrics.csv"
        rows = list(csv.DictReader(open(p))) if os.path.exists(p) else []
        vals = [float(r["dev_macro_f1"]) for r in rows if r.get("dev_macro_f1")]
        if vals: f1.append(max(vals))
    if len(f1) == len(tasks):
        m = statistics.mean(f1)
        print(f"lr {lr}: mean best dev macro-F1 {m:.4f}", file=sys.stderr)
        if best is None or m > best[1]: best = (lr, m)
if best is None: sys.exit("repro.sh: no lr of the grid finished its tuning runs")
print(best[0])
PY
)
    echo "$FT_LR" >"$out/ft_lr.txt"
    say "fine-tuning lr $FT_LR (best mean dev macro-F1 of $FT_LR_GRID on none)"
fi
FT_LR=${FT_LR:-1e-4}

# ---- post: post-training ------------------------------------------------------
# model_after METHOD SEED DOMAIN: the model file after that domain
model_after() { if [ "$1" = none ]; then echo "$G"; else echo "$out/post/$1/s$2/$3/model.h5"; fi; }
want post && for p in $P_SEEDS; do
    for m in $METHODS; do
        [ "$m" = none ] && continue
        [ -f "$(model_after "$m" "$p" biomedical)" ] && continue
        base=${m%-oracle} extra=
        [ "$base" = "$m" ] || extra="--set data.general_corpus=$GENERAL_RUN/general.h5"
        rc=0
        # shellcheck disable=SC2086
        timed "post-$m-s$p" run train --config "$GEN_INI" --resume \
            --set run.output_dir="$out/post/$m/s$p" --set run.seed="$p" --set model.path="$G" --set train.method="$base" \
            --set data.corpus="$out/computing.h5" --set continual.domains=computing,biomedical \
            --set continual.corpora="$out/computing.h5,$out/biomedical.h5" \
            --set train.steps="$P_STEPS" --set train.batch_size="$P_BATCH" --set train.lr="$P_LR" \
            --set train.warmup_steps=$(( P_STEPS / 10 )) --set train.eval_every="$P_STEPS" \
            --set checkpoint.every=50 --set checkpoint.keep=1 \
            --set das.importance_samples="$P_SAMPLES" --set ewc.samples="$P_SAMPLES" $extra || rc=$?
        [ "$rc" -eq 75 ] && { say "preempted: run the same command again to continue"; exit 75; }
        [ "$rc" -eq 0 ] || exit "$rc"
    done
done

# ---- finetune: every model on its tasks --------------------------------------------
# The fine-tunes of METHOD, post-training seed P: "STAGE TASK" pairs.
# Continual: A[0][0] (debian_section after computing), then every task after
# biomedical.  From the base: each domain's task after its own domain (A[i][i])
# and the general task after biomedical.  none: every task once.
ft_plan() {
    if [ "$1" = none ]; then echo "general debian_section general go_ontology general brown_genre"
    elif from_base "$1"; then echo "computing debian_section biomedical go_ontology biomedical brown_genre"
    else echo "computing debian_section biomedical debian_section biomedical go_ontology biomedical brown_genre"; fi
}
if want finetune; then
    for p in $P_SEEDS; do
        for m in $METHODS; do
            [ "$m" = none ] && [ "$p" != "$(set -- $P_SEEDS; echo "$1")" ] && continue   # none has no post-training seed
            set -- $(ft_plan "$m")
            while [ $# -gt 0 ]; do
                stage=$1 t=$2; shift 2
                model=$(model_after "$m" "$p" "$stage")
                [ -f "$model" ] || continue
                for s in $FT_SEEDS; do
                    spawn finetune_one "$model" "$t" "$s" "$out/ft/$m/p$p/$stage/$t/s$s" "$FT_LR"
                done
            done
            # the general corpus's held-out MLM loss of the final model (forgetting)
            f=$out/mlm/$m-p$p-general
            if [ ! -f "$f.json" ] && [ -f "$(model_after "$m" "$p" biomedical)" ]; then
                mkdir -p "$out/mlm"
                run eval --force --config "$GEN_INI" --model "$(model_after "$m" "$p" biomedical)" \
                    --corpus "$GENERAL_RUN/general.h5" --output "$f" >"$f.txt"
            fi
        done
    done
    wait
fi

# ---- table: results.md and plots -------------------------------------------------
want table || exit 0
mkdir -p "$out/plots"
"$PY" "$here/tools/plot.py" curves "$GENERAL_RUN/train/metrics.csv" -o "$out/plots/general.png" --labels general
for m in $METHODS; do
    [ "$m" = none ] && continue
    p=$(set -- $P_SEEDS; echo "$1")
    set --; labels=
    for d in $DOMAINS; do
        [ -f "$out/post/$m/s$p/$d/metrics.csv" ] && set -- "$@" "$out/post/$m/s$p/$d/metrics.csv" && labels=$labels${labels:+,}$d
    done
    [ $# -gt 0 ] && "$PY" "$here/tools/plot.py" curves "$@" -o "$out/plots/post-$m.png" --labels "$labels"
    [ -f "$out/post/$m/s$p/importance.h5" ] &&
        "$PY" "$here/tools/plot.py" importance "$out/post/$m/s$p/importance.h5" -o "$out/plots/importance-$m.png"
done
"$PY" - "$out" "$METHODS" "$P_SEEDS" "$FT_SEEDS" "$FT_LR" <<'PY'
import json, os, statistics, sys
out, methods, pseeds, fseeds, lr = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4].split(), sys.argv[5]
from_base = {"one", "dga", "dga-oracle"}
times = {}
if os.path.exists(f"{out}/times.txt"):
    for line in open(f"{out}/times.txt"):
        name, sec = line.rsplit(None, 1)
        times[name] = times.get(name, 0) + int(sec)

def runs(m):
    """(post seed, fine-tuning seed) pairs of method m; none has one post seed."""
    return [(pseeds[0] if m == "none" else p, s) for p in (pseeds[:1] if m == "none" else pseeds) for s in fseeds]

def get(m, p, s, stage, task, key):
    if m == "none": stage, p = "general", pseeds[0]
    path = f"{out}/ft/{m}/p{p}/{stage}/{task}/s{s}/test.json"
    return 100.0 * float(json.load(open(path))[key]) if os.path.exists(path) else None

def ms(v, n):
    if not v: return "n/a"
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.1f} ± {sd:.1f}" + ("" if len(v) == n else f" ({len(v)} of {n})")

# Where each task is read: the domain's own task right after its domain for
# methods from the base (A[i][i]); after the last domain otherwise.
def stage_of(m, task):
    if m in from_base and task == "debian_section": return "computing"
    return "biomedical"

def cell(m, task, key):
    v = [x for p, s in runs(m) if (x := get(m, p, s, stage_of(m, task), task, key)) is not None]
    return ms(v, len(runs(m)))

def paired(m, task, key):
    """mean ± sd over (post seed, fine-tuning seed) of method minus mlm."""
    if m == "mlm": return "—"
    d = []
    for p, s in runs(m):
        a = get(m, p, s, stage_of(m, task), task, key)
        b = get("mlm", p, s, stage_of("mlm", task), task, key)
        if a is not None and b is not None: d.append(a - b)
    return ms(d, len(runs(m))) if d else "n/a"

def fr(m, key):
    if m in from_base or m == "none": return "n/a"
    d = []
    for p, s in runs(m):
        a00, a10 = get(m, p, s, "computing", "debian_section", key), get(m, p, s, "biomedical", "debian_section", key)
        if a00 is not None and a10 is not None: d.append(a00 - a10)
    return ms(d, len(runs(m))) if d else "n/a"

def mlm_loss(m):
    v = []
    for p in (pseeds[:1] if m == "none" else pseeds):
        path = f"{out}/mlm/{m}-p{p}-general.json"
        if os.path.exists(path): v.append(float(json.load(open(path))["mlm_loss"]))
    if not v: return "n/a"
    return f"{statistics.mean(v):.3f}" + (f" ± {statistics.stdev(v):.3f}" if len(v) > 1 else "")

tasks = ("debian_section", "go_ontology", "brown_genre")
lines = [f"Fine-tuning lr {lr}; mean ± sd over post-training seeds {' '.join(pseeds)} × fine-tuning seeds {' '.join(fseeds)} "
         "(percent, test split).  one, dga, dga-oracle: each domain's task right after its own domain (A[i][i]); "
         "the others: after the last domain.", "",
         "| method | debian_section macro-F1 / acc | go_ontology macro-F1 / acc | brown_genre macro-F1 / acc | "
         "FR macro-F1 | FR acc | general MLM loss | post-training s |", "|---|---|---|---|---|---|---|---|"]
for m in methods:
    cells = [m] + [f"{cell(m, t, 'macro_f1')} / {cell(m, t, 'accuracy')}" for t in tasks]
    cells += [fr(m, "macro_f1"), fr(m, "accuracy"), mlm_loss(m)]
    secs = [v for k, v in times.items() if k.startswith(f"post-{m}-s")]
    cells.append(str(round(statistics.mean(secs))) if secs else ("0" if m == "none" else "n/a"))
    lines.append("| " + " | ".join(cells) + " |")
lines += ["", "Paired difference against mlm (same post-training and fine-tuning seeds), macro-F1 points:", "",
          "| method | " + " | ".join(tasks) + " |", "|---|---|---|---|"]
for m in methods:
    if m != "mlm": lines.append(f"| {m} | " + " | ".join(paired(m, t, "macro_f1") for t in tasks) + " |")
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
say "done: $out/results.md, $out/plots/"
