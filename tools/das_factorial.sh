#!/bin/sh
# The factorial DAS experiment of docs/results.md (issue 15): on the
# computing domain, from the one general model (tools/general_model.sh),
#   soft-mask space (gradient, update) x contrastive term (lambda 0, 1)
#   x general-importance source (proxy: the papers' KL proxy on the domain's
#   data; oracle: MLM on the general corpus), SEEDS seeds each,
# scored on the held-out general MLM loss (stability), the held-out computing
# MLM loss (plasticity) and debian_section macro-F1; plus the Spearman
# correlation between the KL-proxy and the general-MLM importance of the same
# units (the papers' central assumption, testable here because dapt has the
# general corpus the papers lacked), and whether important units changed
# less (`dapt analyze delta --importance`, rho of importance and change).
#
#   tools/das_factorial.sh [GENERAL_RUN] [OUT]
#       GENERAL_RUN  the OUT of tools/general_model.sh (default runs/general-model)
#       OUT          default runs/das-factorial
#
# Resumable: every output that exists is skipped; post-training and
# fine-tuning resume from their checkpoints.  Run it alone on the machine.
# Sizes: P_STEPS=250 P_BATCH=32 (1.02 M tokens) P_LR=1e-4 P_SAMPLES=1000
#   SEEDS="1 2 3" SPACES="gradient update" LAMBDAS="0 1" SOURCES="proxy oracle"
#   FT_EPOCHS=4 FT_BATCH=32 FT_LR=1e-3 (tools/repro.sh's tuning on the general model, docs/results.md)
#   RANKS=2 DAPT=build/dapt
# Output: OUT/results.md, OUT/stability_plasticity.png.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
gen=${1:-runs/general-model}
out=${2:-runs/das-factorial}
gen=$(cd "$gen" && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
SEEDS=${SEEDS:-1 2 3} SPACES=${SPACES:-gradient update} LAMBDAS=${LAMBDAS:-0 1} SOURCES=${SOURCES:-proxy oracle}
P_STEPS=${P_STEPS:-250} P_BATCH=${P_BATCH:-32} P_LR=${P_LR:-1e-4} P_SAMPLES=${P_SAMPLES:-1000}
EVAL_FRACTION=0.02
TAG=das-factorial
. "$here/tools/experiment.sh"
C=$out/computing.h5
[ -f "$C" ] || run prepare --tokenizer "$TOK" --doc-sep blank -o "$C" $(dapt_corpus_files "$DATA" computing)

for s in $SEEDS; do
    heldout_losses "$G" "$out/eval/general-model/s$s" "$s" "$C" "$EVAL_FRACTION"
    finetune_eval "$G" "$gen/tasks/debian_section.h5" "$s" "$out/ft/general-model/s$s"
    for space in $SPACES; do
        for lam in $LAMBDAS; do
            for src in $SOURCES; do
                cell=$space-l$lam-$src
                d=$out/post/$cell/s$s
                if [ ! -f "$d/model.h5" ]; then
                    extra=
                    [ "$src" = oracle ] && extra="--set data.general_corpus=$gen/general.h5"
                    rc=0
                    # shellcheck disable=SC2086
                    run train --config "$gen/general.ini" --resume --set run.output_dir="$d" --set run.seed="$s" \
                        --set model.path="$G" --set train.method=das --set data.corpus="$C" \
                        --set data.eval_fraction="$EVAL_FRACTION" --set train.steps="$P_STEPS" \
                        --set train.batch_size="$P_BATCH" --set train.lr="$P_LR" \
                        --set train.warmup_steps=$(( P_STEPS / 10 )) --set train.eval_every="$P_STEPS" \
                        --set checkpoint.every=50 --set checkpoint.keep=1 --set das.importance_samples="$P_SAMPLES" \
                        --set das.softmask_space="$space" --set das.contrast_lambda="$lam" $extra || rc=$?
                    [ "$rc" -eq 75 ] && { say "preempted: run the same command again to continue"; exit 75; }
                    [ "$rc" -eq 0 ] || exit "$rc"
                    ln -sf "checkpoints/$(cat "$d/checkpoints/latest")" "$d/model.h5"
                fi
                heldout_losses "$d/model.h5" "$out/eval/$cell/s$s" "$s" "$C" "$EVAL_FRACTION"
                [ -f "$out/delta/$cell/s$s.h5" ] || { mkdir -p "$out/delta/$cell";
                    run analyze delta "$G" "$d/model.h5" --importance "$d/importance.h5" --output "$out/delta/$cell/s$s.h5" --force >/dev/null; }
                finetune_eval "$d/model.h5" "$gen/tasks/debian_section.h5" "$s" "$out/ft/$cell/s$s"
            done
        done
    done
done

"$PY" - "$out" "$SEEDS" "$SPACES" "$LAMBDAS" "$SOURCES" <<'PY'
import json, os, statistics as st, sys
import h5py, numpy as np
out, seeds, spaces, lambdas, sources = sys.argv[1], *(a.split() for a in sys.argv[2:])
def js(p): return json.load(open(p)) if os.path.exists(p) else None
def ms(xs, f="{:.4f}"):
    if not xs: return "—"
    return (f + " ± " + f).format(st.mean(xs), st.stdev(xs)) if len(xs) > 1 else f.format(xs[0])
def vals(cell, what):
    r = []
    for s in seeds:
        if what == "f1":
            e = js(f"{out}/ft/{cell}/s{s}/test.json"); r.append(e and 100 * e["macro_f1"])
        else:
            e = js(f"{out}/eval/{cell}/s{s}/{what}.json"); r.append(e and e["mlm_loss"])
    return r
def rho(cell, unit):
    r = []
    for s in seeds:
        p = f"{out}/delta/{cell}/s{s}.h5"
        if os.path.exists(p):
            with h5py.File(p, "r") as f:
                if f"units/{unit}" in f: r.append(float(f[f"units/{unit}"].attrs["spearman_relative"]))
    return [x for x in r if x == x]
def spearman(a, b):
    ra, rb = [np.argsort(np.argsort(x, kind="stable")).astype(float) for x in (a, b)]
    return float(np.corrcoef(ra, rb)[0, 1])
cells = [f"{sp}-l{l}-{so}" for sp in spaces for l in lambdas for so in sources]
base = {w: vals("general-model", w) for w in ("general", "domain", "f1")}
lines = ["# DAS factorial experiment (computing domain)", "",
         f"Output: `{out}`; mean ± sd over seeds {' '.join(seeds)}.  Δ = the cell minus the general model on the "
         "same seed (its held-out computing documents are the seed's).  ρ = Spearman of unit importance (the "
         "soft-mask the run used) and relative change (`dapt analyze delta`): negative = important units changed less.", "",
         "| cell | general MLM loss (stability) | Δ general | computing MLM loss (plasticity) | Δ computing | "
         "debian_section macro-F1 | ρ heads | ρ FFN intermediate |", "|---|---|---|---|---|---|---|---|"]
pts = []
for c in ["general-model"] + cells:
    g, d, f = vals(c, "general"), vals(c, "domain"), vals(c, "f1")
    dg = [a - b for a, b in zip(g, base["general"]) if a is not None and b is not None]
    dd = [a - b for a, b in zip(d, base["domain"]) if a is not None and b is not None]
    g, d, f = [x for x in g if x is not None], [x for x in d if x is not None], [x for x in f if x is not None]
    lines.append(f"| {c} | {ms(g)} | {ms(dg) if c != 'general-model' else '—'} | {ms(d)} | "
                 f"{ms(dd) if c != 'general-model' else '—'} | {ms(f, '{:.1f}')} | "
                 f"{ms(rho(c, 'head'), '{:.3f}')} | {ms(rho(c, 'intermediate'), '{:.3f}')} |")
    if g and d: pts.append((c, st.mean(d), st.mean(g)))
# KL proxy against general MLM: the same units' general importance in the proxy and oracle runs of one seed
lines += ["", "## KL-proxy importance against general-MLM importance (same units, same general model)", "",
          "| seed | ρ heads | ρ FFN intermediate | ρ FFN output |", "|---|---|---|---|"]
pair = next(((f"{sp}-l{l}-proxy", f"{sp}-l{l}-oracle") for sp in spaces for l in lambdas
             if "proxy" in sources and "oracle" in sources), None)
if pair:
    for s in seeds:
        a, b = f"{out}/post/{pair[0]}/s{s}/importance.h5", f"{out}/post/{pair[1]}/s{s}/importance.h5"
        if not (os.path.exists(a) and os.path.exists(b)): continue
        row = []
        with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
            for u in ("head", "intermediate", "output"):
                k = f"importance/{u}/general/raw"
                row.append(f"{spearman(fa[k][()].ravel(), fb[k][()].ravel()):.3f}" if k in fa and k in fb else "—")
        lines.append(f"| {s} | " + " | ".join(row) + " |")
open(f"{out}/results.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for c, x, y in pts:
        ax.plot(x, y, "o" if c != "general-model" else "k*", ms=8 if c == "general-model" else 6)
        ax.annotate(c, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("held-out computing MLM loss (plasticity; lower is better)")
    ax.set_ylabel("held-out general MLM loss (stability; lower is better)")
    fig.tight_layout(); fig.savefig(f"{out}/stability_plasticity.png", dpi=120)
except ImportError:
    pass
PY
