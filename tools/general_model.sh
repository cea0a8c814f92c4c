#!/bin/sh
# The one general model every evidence section starts from (docs/results.md):
# a small BERT trained from scratch with MLM on the general corpora of data/
# (Brown, State of the Union, KJV, Moby-Dick) with the bert-base-uncased
# vocabulary, then checked on every task of data/ against its majority class.
#
#   tools/general_model.sh [OUT]        default: runs/general-model
#
# Resumable: every stage is skipped when its output exists, training resumes
# from its newest checkpoint (SIGTERM/SIGUSR1 checkpoint and exit 75), so
# rerunning the same command continues after any interruption.  Run it alone
# on the machine: its timings are part of what it records.
#
# Stages (STAGES, default "data prepare train finetune report"):
#   data      data/fetch.sh when data/corpus is missing (installs what it needs)
#   prepare   OUT/general.h5 (general corpus) and OUT/tasks/<task>.h5
#             (an evenly spaced sample of each split: FT_TRAIN / FT_DEV / FT_TEST)
#   train     OUT/train/: dapt train, method mlm, from random initialisation
#   restore   instead of train: OUT/train/model.h5 imported from the committed
#             export of the model this script trained (data/general-model/,
#             its README says how it was made), so the evidence scripts can
#             start without the 2.6 hours of training:
#             STAGES="data prepare restore" tools/general_model.sh OUT
#   finetune  OUT/finetune/<task>/: dapt finetune + dapt eval on the test split
#   report    OUT/report.md: held-out loss curve, cost, task scores vs majority;
#             OUT/curve.png
#
# Sizes (environment; defaults chosen for a 2-core machine, docs/results.md):
#   RANKS=2 LAYERS=4 HIDDEN=256 HEADS=4 FFN=1024 SEQ=128 BATCH=64 STEPS=8000
#   LR=1e-3 WARMUP=400 EVAL_EVERY=250 CKPT_EVERY=250 SEED=1234
#   FT_TRAIN=2000 FT_DEV=500 FT_TEST=1000 FT_LEN=64 FT_EPOCHS=4 FT_LR=1e-4 FT_BATCH=32
#   DATA=data (DATA=data/sample with tiny sizes: a smoke run of the script)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-runs/general-model}
mkdir -p "$out" && out=$(cd "$out" && pwd)
. "$here/tools/bootstrap.sh"
RANKS=${RANKS:-2}
LAYERS=${LAYERS:-4} HIDDEN=${HIDDEN:-256} HEADS=${HEADS:-4} FFN=${FFN:-1024} SEQ=${SEQ:-128}
BATCH=${BATCH:-64} STEPS=${STEPS:-8000} LR=${LR:-1e-3} WARMUP=${WARMUP:-400}
EVAL_EVERY=${EVAL_EVERY:-250} CKPT_EVERY=${CKPT_EVERY:-250} SEED=${SEED:-1234}
FT_TRAIN=${FT_TRAIN:-2000} FT_DEV=${FT_DEV:-500} FT_TEST=${FT_TEST:-1000} FT_LEN=${FT_LEN:-64}
FT_EPOCHS=${FT_EPOCHS:-4} FT_LR=${FT_LR:-1e-4} FT_BATCH=${FT_BATCH:-32}
STAGES=${STAGES:-data prepare train finetune report}
DATA=${DATA:-$here/data}
DAPT=${DAPT:-$here/build/dapt}
PY=/usr/bin/python3
LAUNCH=${LAUNCH:-mpirun -n $RANKS --oversubscribe --bind-to none}
TASKS="brown_genre debian_section go_ontology"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

want() { case " $STAGES " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
say() { printf '[general-model %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
run() { say "dapt $*"; $LAUNCH "$DAPT" "$@"; }
# timed NAME CMD...: appends "NAME seconds" to OUT/times.txt
timed() { name=$1; shift; t0=$(date +%s); "$@"; echo "$name $(( $(date +%s) - t0 ))" >>"$out/times.txt"; }

dapt_install_packages
[ -x "$DAPT" ] || dapt_build "$here/build" CFLAGS="-g -O2"
TOK=$out/vocab/bert-base-uncased/vocab.txt
[ -f "$TOK" ] || tar -xJf "$here/tests/fixtures/vocab.tar.xz" -C "$out" vocab/bert-base-uncased/vocab.txt

# ---- data and prepared files ---------------------------------------------------
if want data && [ ! -f "$DATA/MANIFEST" ]; then
    say "data/fetch.sh (the real corpora and tasks)"
    "$here/data/fetch.sh"
fi
if want prepare; then
    [ -f "$out/general.h5" ] ||
        run prepare --tokenizer "$TOK" --doc-sep blank -o "$out/general.h5" $(dapt_corpus_files "$DATA" general)
    mkdir -p "$out/tasks"
    for t in $TASKS; do
        [ -f "$out/tasks/$t.h5" ] && continue
        mkdir -p "$out/tasks/$t"
        # An evenly spaced sample: the files are grouped by label in places.
        for split in train:$FT_TRAIN dev:$FT_DEV test:$FT_TEST; do
            s=${split%%:*} n=${split#*:}
            total=$(wc -l <"$DATA/tasks/$t/$s.tsv")
            awk -v k=$(( total / n > 0 ? total / n : 1 )) -v n="$n" 'NR % k == 1 && c < n { print; c++ }' \
                "$DATA/tasks/$t/$s.tsv" >"$out/tasks/$t/$s.tsv"
        done
        run prepare --task --tokenizer "$TOK" --set tokenizer.max_length="$FT_LEN" -o "$out/tasks/$t.h5" \
            "$out/tasks/$t/train.tsv" "$out/tasks/$t/dev.tsv" "$out/tasks/$t/test.tsv"
    done
fi

# ---- the general model ---------------------------------------------------------
cat >"$out/general.ini" <<INI
[run]
seed = $SEED
output_dir = $out/train
[data]
corpus = $out/general.h5
seq_len = $SEQ
eval_fraction = 0.02
[tokenizer]
path = $TOK
[model]
vocab_size = 30522
hidden = $HIDDEN
layers = $LAYERS
heads = $HEADS
intermediate = $FFN
max_position = $SEQ
[train]
method = mlm
steps = $STEPS
batch_size = $BATCH
lr = $LR
warmup_steps = $WARMUP
weight_decay = 0.01
eval_every = $EVAL_EVERY
eval_batches = 8
log_every = 50
[checkpoint]
every = $CKPT_EVERY
keep = 2
INI
trained() { [ -f "$out/train/checkpoints/latest" ] && grep -q "^$STEPS," "$out/train/metrics.csv"; }
if want train && ! trained; then
    rc=0
    timed train run train --config "$out/general.ini" --resume || rc=$?
    [ "$rc" -eq 75 ] && { say "preempted: checkpoint written; run the same command again to continue"; exit 75; }
    [ "$rc" -eq 0 ] || exit "$rc"
fi
if want restore && ! trained && [ ! -e "$out/train/model.h5" ]; then
    mkdir -p "$out/train"
    run import "$here/data/general-model" "$out/train/model.h5"
fi
if trained; then
    ln -sf "checkpoints/$(cat "$out/train/checkpoints/latest")" "$out/train/model.h5"
    G=$out/train/model.h5
elif [ -f "$out/train/model.h5" ]; then
    G=$out/train/model.h5
fi

# ---- fine-tuning on every task ---------------------------------------------------
if want finetune && [ -n "${G:-}" ]; then
    for t in $TASKS; do
        d=$out/finetune/$t
        [ -f "$d/eval.json" ] && continue
        run finetune --model "$G" --task "$out/tasks/$t.h5" --output "$d" --force \
            --set finetune.epochs="$FT_EPOCHS" --set finetune.lr="$FT_LR" --set finetune.batch_size="$FT_BATCH" \
            --set finetune.warmup_ratio=0.1 --set run.seed="$SEED"
        run eval --model "$d/model.h5" --task "$out/tasks/$t.h5" --split test --output "$d/eval" --force
    done
fi

# ---- report ------------------------------------------------------------------------
if want report; then
    $PY - "$out" "$TASKS" <<'PY'
import csv, json, os, sys, collections
out, tasks = sys.argv[1], sys.argv[2].split()
rows = list(csv.DictReader(open(f"{out}/train/metrics.csv")))
evals = [(int(r["step"]), float(r["eval_loss"])) for r in rows if r["eval_loss"]]
times = dict(l.split() for l in open(f"{out}/times.txt")) if os.path.exists(f"{out}/times.txt") else {}
lines = ["# General model", "", f"Output: `{out}`", "", "## Held-out MLM loss", "", "| step | held-out loss | perplexity |", "|---|---|---|"]
for s, l in evals:
    lines.append(f"| {s} | {l:.4f} | {2.718281828**l:.1f} |")
tok = [float(r["tokens_per_s"]) for r in rows if r["tokens_per_s"]]
if tok:
    lines += ["", f"Median training throughput: {sorted(tok)[len(tok)//2]:.0f} tokens/s; "
              f"train stage wall time (this and earlier invocations): {sum(int(v) for k, v in times.items() if k == 'train')} s"]
lines += ["", "## End tasks (test split)", "", "| task | accuracy | macro-F1 | majority-class accuracy | classes |", "|---|---|---|---|---|"]
for t in tasks:
    p = f"{out}/finetune/{t}/eval.json"
    if not os.path.exists(p):
        lines.append(f"| {t} | — | — | — | — |")
        continue
    e = json.load(open(p))
    labels = [l.rstrip("\n").split("\t")[-1] for l in open(f"{out}/tasks/{t}/test.tsv")]
    c = collections.Counter(labels)
    lines.append(f"| {t} | {e['accuracy']:.4f} | {e['macro_f1']:.4f} | {c.most_common(1)[0][1] / len(labels):.4f} | {len(c)} |")
open(f"{out}/report.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    tr = [(int(r["step"]), float(r["loss"])) for r in rows if r["loss"] and r["loss"] != "nan"]
    ax.plot([s for s, _ in tr], [l for _, l in tr], lw=0.5, alpha=0.5, label="train MLM loss")
    ax.plot([s for s, _ in evals], [l for _, l in evals], "o-", label="held-out MLM loss")
    ax.set_xlabel("step"); ax.set_ylabel("loss (nats)"); ax.legend(); fig.tight_layout()
    fig.savefig(f"{out}/curve.png", dpi=120)
except ImportError:
    pass
PY
fi
