#!/bin/sh
# The SMART evidence of docs/results.md (issue 12): plain fine-tuning,
# adversarial-only, full SMART and mt-dnn's SMART on every task of data/,
# from the one general model (tools/general_model.sh), on clean labels and
# with NOISE % of the training labels flipped, SEEDS seeds each.
#
#   tools/smart_evidence.sh [GENERAL_RUN] [OUT]
#       GENERAL_RUN  the OUT of tools/general_model.sh (default runs/general-model):
#                    its train/model.h5, tasks/<task>.h5 and tasks/<task>/*.tsv
#       OUT          default runs/smart-evidence
#
# Resumable: a fine-tune whose test evaluation exists is skipped, an
# interrupted one continues from its checkpoint (--resume), so rerunning the
# same command continues after any interruption.  Run it alone on the machine.
#
# Variants (VARIANTS, default "plain adv smart mtdnn"):
#   plain   finetune.objective = cls
#   adv     SMART's adversarial regulariser only (smart.mu = 0)
#   smart   SMART, paper defaults (lambda_s 1, mu 1, T 1; Algorithm 1)
#   mtdnn   smart.style = mtdnn (mt-dnn's SmartPerturbation semantics)
# Label noise (NOISE, default "0 20", percent): a seeded corruption of the
# train split only -- exactly round(NOISE x n / 100) training examples,
# chosen by Python's random.Random(FLIP_SEED), get a label drawn uniformly
# from the train split's other labels; dev and test stay clean.  The flipped
# line numbers are kept in OUT/tasks/<task>-noise<N>/flipped.txt.
# Fine-tuning (the general model's check, tools/general_model.sh):
#   FT_EPOCHS=4 FT_LR=1e-3 (tuned once on the general model: docs/results.md) FT_BATCH=32 SEEDS="1 2 3" FLIP_SEED=2020
#   RANKS=2 TASKS="brown_genre debian_section go_ontology" EXTRA="--set smart.lambda_s=3 ..."
# Report: OUT/results.md, mean +- sd (n - 1) over seeds of test macro-F1 and
# accuracy per task, noise and variant, and the paired difference against
# plain (same seed: same head initialisation, order and dropout).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
gen=${1:-runs/general-model}
out=${2:-runs/smart-evidence}
gen=$(cd "$gen" && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
TASKS=${TASKS:-brown_genre debian_section go_ontology}
VARIANTS=${VARIANTS:-plain adv smart mtdnn}
SEEDS=${SEEDS:-1 2 3} NOISE=${NOISE:-0 20} FLIP_SEED=${FLIP_SEED:-2020}
EXTRA=${EXTRA:-}
TAG=smart-evidence
. "$here/tools/experiment.sh"
FT_LEN=$("$PY" -c 'import sys, h5py; print(h5py.File(sys.argv[1], "r").attrs["max_length"])' "$gen/tasks/$(set -- $TASKS; echo "$1").h5")

# task_file TASK NOISE: the prepared task, its train labels flipped at NOISE %
task_file() {
    if [ "$2" = 0 ]; then echo "$gen/tasks/$1.h5"; return; fi
    d=$out/tasks/$1-noise$2
    if [ ! -f "$d.h5" ]; then
        mkdir -p "$d"
        "$PY" - "$gen/tasks/$1/train.tsv" "$d/train.tsv" "$2" "$FLIP_SEED" "$d/flipped.txt" <<'PY'
import random, sys
src, dst, pct, seed, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
rows = [l.rstrip("\n").split("\t") for l in open(src, encoding="utf-8")]
labels = sorted({r[-1] for r in rows})
rng = random.Random(seed)
flip = sorted(rng.sample(range(len(rows)), round(pct * len(rows) / 100)))
with open(log, "w") as f:
    for i in flip:
        new = rng.choice([l for l in labels if l != rows[i][-1]])
        f.write(f"{i + 1}\t{rows[i][-1]}\t{new}\n")
        rows[i][-1] = new
with open(dst, "w", encoding="utf-8") as f:
    f.writelines("\t".join(r) + "\n" for r in rows)
PY
        say "dapt prepare --task $1 with $2 % of its train labels flipped" >&2
        $LAUNCH "$DAPT" prepare --task --tokenizer "$TOK" --set tokenizer.max_length="$FT_LEN" -o "$d.h5" --force \
            "$d/train.tsv" "$gen/tasks/$1/dev.tsv" "$gen/tasks/$1/test.tsv" >"$d/prepare.log" 2>&1 ||
            { cat "$d/prepare.log" >&2; exit 1; }
    fi
    echo "$d.h5"
}
variant_args() {
    case $1 in
        plain) echo "--set finetune.objective=cls" ;;
        adv) echo "--set finetune.objective=smart --set smart.mu=0" ;;
        smart) echo "--set finetune.objective=smart" ;;
        mtdnn) echo "--set finetune.objective=smart --set smart.style=mtdnn" ;;
        *) echo "smart_evidence.sh: unknown variant $1 (plain, adv, smart, mtdnn)" >&2; exit 2 ;;
    esac
}

for t in $TASKS; do
    for n in $NOISE; do
        T=$(task_file "$t" "$n")
        for s in $SEEDS; do
            for v in $VARIANTS; do
                # shellcheck disable=SC2046,SC2086
                finetune_eval "$G" "$T" "$s" "$out/ft/$t/noise$n/$v/s$s" $(variant_args "$v") $EXTRA
            done
        done
    done
done

"$PY" - "$out" "$TASKS" "$NOISE" "$VARIANTS" "$SEEDS" <<'PY'
import json, os, statistics as st, sys
out, tasks, noise, variants, seeds = sys.argv[1], *(a.split() for a in sys.argv[2:])
def get(t, n, v, s):
    p = f"{out}/ft/{t}/noise{n}/{v}/s{s}/test.json"
    return json.load(open(p)) if os.path.exists(p) else None
def ms(xs):
    if not xs: return "—"
    return f"{st.mean(xs):.4f} ± {st.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"
lines = ["# SMART evidence", "", f"Output: `{out}`; test split; mean ± sd over seeds {' '.join(seeds)};",
         "Δ = the variant minus plain on the same seed (paired).", ""]
for t in tasks:
    for n in noise:
        lines += [f"## {t}, {n} % of train labels flipped", "",
                  "| variant | n | macro-F1 | Δ macro-F1 | accuracy | Δ accuracy |", "|---|---|---|---|---|---|"]
        for v in variants:
            f1, acc, df1, dacc = [], [], [], []
            for s in seeds:
                e, b = get(t, n, v, s), get(t, n, "plain", s)
                if e is None: continue
                f1.append(e["macro_f1"]); acc.append(e["accuracy"])
                if b is not None and v != "plain":
                    df1.append(e["macro_f1"] - b["macro_f1"]); dacc.append(e["accuracy"] - b["accuracy"])
            lines.append(f"| {v} | {len(f1)} | {ms(f1)} | {ms(df1)} | {ms(acc)} | {ms(dacc)} |")
        lines.append("")
open(f"{out}/results.md", "w").write("\n".join(lines))
print("\n".join(lines))
PY
