#!/bin/sh
# The MOMETAS evidence of docs/results.md (issue 13): continual pre-training
# on the real computing corpus from the one general model
# (tools/general_model.sh) with MLM only and with the sampler over
# mlm,atd,dtd,cse drawn uniformly, round-robin and by MOMETAS's meta-learned
# policy, equal token budgets, SEEDS seeds; then held-out MLM loss on the
# computing corpus (plasticity) and on the general corpus (forgetting), and
# fine-tuning on debian_section (the domain's task) and brown_genre (general).
#
#   tools/mometas_evidence.sh [GENERAL_RUN] [OUT]
#       GENERAL_RUN  the OUT of tools/general_model.sh (default runs/general-model)
#       OUT          default runs/mometas-evidence
#
# Resumable: post-training resumes from its newest checkpoint, a stage whose
# output exists is skipped, so rerunning the same command continues after
# any interruption (SIGTERM: checkpoint and exit 75).  Run it alone.
#
# Variants (VARIANTS, default "none mlm uniform round_robin mometas"):
#   none         the general model itself (no post-training)
#   mlm          train.method = mlm
#   uniform, round_robin, mometas
#                train.method = mometas, objectives.sampler = that,
#                objectives.objectives = OBJECTIVES (default mlm,atd,dtd,cse)
# Every post-training: P_STEPS updates of P_BATCH x 128-token sequences
# (defaults 500 x 32: 2.0 M tokens), AdamW lr P_LR (1e-4), 10 % warm-up,
# linear decay; the meta-step every META_INTERVAL updates (default 50: the
# paper's k = 100 would give 5 meta-steps in a run this short) on
# objectives.heldout_rows held-out sequences.  Seed s drives everything of
# run s (masks, corruptions, draws, dropout, the held-out documents), so the
# variants of one seed are compared on the same held-out documents (paired).
# Held-out losses: `dapt eval --corpus` on every held-out sequence, with the
# post-training's data.eval_fraction and seed for the computing corpus, and
# the general model's (0.02, 1234) for the general corpus.
# Fine-tuning: FT_EPOCHS=4 FT_LR=1e-3 (tuned once on the general model, docs/results.md) FT_BATCH=32,
# fine-tuning seed = post-training seed.
# Kept in the tree: each (variant, seed)'s scores, metrics.csv and
# sampler.h5 go to data/evidence/mometas-evidence/ as soon as they exist
# (tools/experiment.sh), and are restored into OUT at the start, so the seeds
# can be run on different machines; commit them.
# Report: OUT/results.md (mean +- sd over seeds, paired differences
# against mlm) and, for mometas, what the sampler preferred (sampler.h5).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
gen=${1:-runs/general-model}
out=${2:-runs/mometas-evidence}
gen=$(cd "$gen" && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
VARIANTS=${VARIANTS:-none mlm uniform round_robin mometas}
OBJECTIVES=${OBJECTIVES:-mlm,atd,dtd,cse}
SEEDS=${SEEDS:-1 2 3}
P_STEPS=${P_STEPS:-500} P_BATCH=${P_BATCH:-32} P_LR=${P_LR:-1e-4} META_INTERVAL=${META_INTERVAL:-50}
EVAL_FRACTION=${EVAL_FRACTION:-0.02}
TASKS=${TASKS:-debian_section brown_genre}
TAG=mometas-evidence
. "$here/tools/experiment.sh"

# The computing corpus, with its salient tokens against the general corpus
# (so emlm can be listed in OBJECTIVES).
C=$out/computing.h5
[ -f "$C" ] || run prepare --tokenizer "$TOK" --doc-sep blank --salient-against "$gen/general.h5" -o "$C" \
    $(dapt_corpus_files "$DATA" computing)

evidence_restore
# A (variant, seed) whose scores exist needs no model: kept in the tree
# (evidence_keep below), it is not post-trained again.
scored() {
    for sc_f in "eval/$1/s$2/domain.json" "eval/$1/s$2/general.json"; do [ -f "$out/$sc_f" ] || return 1; done
    for sc_t in $TASKS; do [ -f "$out/ft/$1/s$2/$sc_t/test.json" ] || return 1; done
    case $1 in mlm | none) ;; *) [ -f "$out/post/$1/s$2/sampler.h5" ] || return 1 ;; esac
}
model_of() { if [ "$1" = none ]; then echo "$G"; else echo "$out/post/$1/s$2/model.h5"; fi; }
# One (variant, seed) at a time, post-training to scores, so that each one
# finished is kept even when the machine goes before the seed is complete.
for s in $SEEDS; do
    for v in $VARIANTS; do
        d=$out/post/$v/s$s
        if [ "$v" != none ] && [ ! -f "$d/model.h5" ] && ! scored "$v" "$s"; then
            case $v in
                mlm) method="--set train.method=mlm" ;;
                uniform | round_robin | mometas)
                    method="--set train.method=mometas --set objectives.sampler=$v --set objectives.objectives=$OBJECTIVES" ;;
                *) echo "mometas_evidence.sh: unknown variant $v" >&2; exit 2 ;;
            esac
            rc=0
            # shellcheck disable=SC2086
            run train --config "$gen/general.ini" --resume --set run.output_dir="$d" --set run.seed="$s" \
                --set model.path="$G" --set data.corpus="$C" --set data.eval_fraction="$EVAL_FRACTION" \
                --set train.steps="$P_STEPS" --set train.batch_size="$P_BATCH" --set train.lr="$P_LR" \
                --set train.warmup_steps=$(( P_STEPS / 10 )) --set train.eval_every=$(( P_STEPS / 5 )) \
                --set objectives.meta_interval="$META_INTERVAL" --set checkpoint.every=50 --set checkpoint.keep=1 \
                $method || rc=$?
            [ "$rc" -eq 75 ] && { say "preempted: run the same command again to continue"; exit 75; }
            [ "$rc" -eq 0 ] || exit "$rc"
            ln -sf "checkpoints/$(cat "$d/checkpoints/latest")" "$d/model.h5"
        fi
        M=$(model_of "$v" "$s")
        heldout_losses "$M" "$out/eval/$v/s$s" "$s" "$C" "$EVAL_FRACTION"
        for t in $TASKS; do finetune_eval "$M" "$gen/tasks/$t.h5" "$s" "$out/ft/$v/s$s/$t"; done
        evidence_keep "eval/$v/s$s/domain.json" "eval/$v/s$s/general.json" \
            "post/$v/s$s/metrics.csv" "post/$v/s$s/sampler.h5" \
            $(for t in $TASKS; do echo "ft/$v/s$s/$t/test.json ft/$v/s$s/$t/finetune_metrics.csv"; done) times.txt
    done
done

"$PY" - "$out" "$VARIANTS" "$SEEDS" "$TASKS" <<'PY'
import json, os, statistics as st, sys
out, variants, seeds, tasks = sys.argv[1], *(a.split() for a in sys.argv[2:])
def js(p):
    return json.load(open(p)) if os.path.exists(p) else None
def ms(xs):
    if not xs: return "—"
    return f"{st.mean(xs):.4f} ± {st.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"
def metric(v, s, what):
    if what in ("domain", "general"):
        e = js(f"{out}/eval/{v}/s{s}/{what}.json"); return e and e["mlm_loss"]
    e = js(f"{out}/ft/{v}/s{s}/{what}/test.json"); return e and e["macro_f1"]
cols = [("domain", "held-out computing MLM loss"), ("general", "held-out general MLM loss")] + \
       [(t, f"{t} macro-F1") for t in tasks]
lines = ["# MOMETAS evidence", "", f"Output: `{out}`; mean ± sd over seeds {' '.join(seeds)}; "
         "Δ = the variant minus mlm on the same seed (paired).", ""]
for key, title in cols:
    lines += [f"## {title}", "", "| variant | n | value | Δ vs mlm |", "|---|---|---|---|"]
    for v in variants:
        xs, ds = [], []
        for s in seeds:
            x, b = metric(v, s, key), metric("mlm", s, key)
            if x is None: continue
            xs.append(x)
            if b is not None and v != "mlm": ds.append(x - b)
        lines.append(f"| {v} | {len(xs)} | {ms(xs)} | {ms(ds)} |")
    lines.append("")
try:
    import h5py, numpy as np
    rows = []
    for s in seeds:
        p = f"{out}/post/mometas/s{s}/sampler.h5"
        if not os.path.exists(p): continue
        with h5py.File(p, "r") as f:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["objectives"][()]]
            rows.append((s, names, np.asarray(f["p"]), np.asarray(f["heldout_loss"])))
    if rows:
        names = rows[0][1]
        lines += ["## What the MOMETAS sampler preferred", "",
                  "p = softmax(z) after the last meta-step; each objective's held-out loss before post-training → "
                  "at the last meta-step (sampler.h5).", "",
                  "| seed | meta-steps | " + " | ".join(f"p({n})" for n in names) + " | " +
                  " | ".join(f"{n} held-out" for n in names) + " |",
                  "|---|---|" + "---|" * (2 * len(names))]
        for s, _, prob, hl in rows:
            pl = " | ".join(f"{x:.3f}" for x in prob[-1]) if len(prob) else " | ".join("—" for _ in names)
            ll = " | ".join(f"{a:.3f} → {b:.3f}" for a, b in zip(hl[0], hl[-1]))
            lines.append(f"| {s} | {len(prob)} | {pl} | {ll} |")
        lines.append("")
except ImportError:
    pass
open(f"{out}/results.md", "w").write("\n".join(lines))
print("\n".join(lines))
PY
