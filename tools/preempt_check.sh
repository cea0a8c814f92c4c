#!/bin/sh
# A preemption check at real size (issues 12 and 13): a run on RANKS ranks
# from the one general model (tools/general_model.sh) is sent a signal after
# AFTER seconds, resumed with --resume to its end, and compared bit for bit
# with the same run left alone.
#
#   tools/preempt_check.sh MODE [GENERAL_RUN] [OUT]
#       MODE         mometas: dapt train, the MOMETAS sampler over
#                    mlm,atd,dtd,cse,emlm on the computing corpus (STEPS
#                    updates of 32 x 128 tokens, a meta-step every 25);
#                    smart: dapt finetune, full SMART on debian_section
#                    (EPOCHS epochs)
#       GENERAL_RUN  the OUT of tools/general_model.sh (default runs/general-model)
#       OUT          default runs/preempt-MODE
#   SIG (default USR1) is sent to mpirun, which forwards SIGUSR1 and
#   SIGUSR2 to the ranks; mpirun's own exit code on SIGTERM is not the
#   ranks' 75 (docs/slurm.md), so SIG=TERM reports a failure here.
#   AFTER (default 5) seconds after the run's first checkpoint (step 25),
#   so the stop falls between checkpoints; RANKS (default 2).
# Prints the interrupted run's exit code (75 expected), the resumed one's
# (0), and whether metrics, the checkpoint at the end and (mometas)
# sampler.h5 equal the uninterrupted run's; exits 1 when anything differs.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:?usage: tools/preempt_check.sh mometas|smart [GENERAL_RUN] [OUT]}
gen=${2:-runs/general-model}
out=${3:-runs/preempt-$mode}
gen=$(cd "$gen" && pwd)
mkdir -p "$out" && out=$(cd "$out" && pwd)
SIG=${SIG:-USR1} AFTER=${AFTER:-5} STEPS=${STEPS:-150} EPOCHS=${EPOCHS:-1}
TAG=preempt-check
. "$here/tools/experiment.sh"

case $mode in
    mometas)
        C=$out/computing.h5
        [ -f "$C" ] || run prepare --tokenizer "$TOK" --doc-sep blank --salient-against "$gen/general.h5" -o "$C" \
            $(dapt_corpus_files "$DATA" computing)
        # the general model's configuration, continued on the computing corpus
        cmd="train --config $gen/general.ini --set model.path=$G --set data.corpus=$C --set run.seed=11
             --set train.method=mometas --set objectives.objectives=mlm,atd,dtd,cse,emlm
             --set objectives.meta_interval=25 --set objectives.heldout_rows=64
             --set train.steps=$STEPS --set train.batch_size=32 --set train.lr=1e-4
             --set train.warmup_steps=$(( STEPS / 10 )) --set train.eval_every=50 --set train.log_every=10
             --set checkpoint.every=25 --set checkpoint.keep=2 --set run.output_dir="
        ;;
    smart)
        cmd="finetune --model $G --task $gen/tasks/debian_section.h5 --seed 1 --set finetune.objective=smart
             --set finetune.epochs=$EPOCHS --set finetune.lr=$FT_LR --set finetune.batch_size=$FT_BATCH
             --set finetune.warmup_ratio=0.1 --set checkpoint.every=25 --output "
        ;;
    *) echo "preempt_check.sh: MODE is mometas or smart, not $mode" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086
if [ ! -f "$out/ref.done" ]; then
    rm -rf "$out/ref"
    say "the uninterrupted run -> $out/ref"
    $LAUNCH "$DAPT" $cmd"$out/ref" >"$out/ref.log" 2>&1
    touch "$out/ref.done"
fi
rm -rf "$out/cut"
say "the interrupted run -> $out/cut: SIG$SIG to mpirun $AFTER s after its first checkpoint"
t0=$(date +%s)
# mpirun itself in the background, so the signal reaches it (not a subshell)
# shellcheck disable=SC2086
$LAUNCH "$DAPT" $cmd"$out/cut" >"$out/cut1.log" 2>&1 &
pid=$!
while [ ! -f "$out/cut/checkpoints/latest" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; done
sleep "$AFTER"
kill -"$SIG" "$pid" 2>/dev/null || true
rc1=0
wait "$pid" || rc1=$?
grep -h "stop signal received" "$out/cut1.log" || true
say "interrupted run: exit $rc1 after $(( $(date +%s) - t0 )) s"
rc2=0
# shellcheck disable=SC2086
$LAUNCH "$DAPT" $cmd"$out/cut" --resume >"$out/cut2.log" 2>&1 || rc2=$?
say "resumed run: exit $rc2; total $(( $(date +%s) - t0 )) s"

"$PY" - "$out" "$mode" "$rc1" "$rc2" <<'PY'
import glob, os, sys
import h5py, numpy as np
out, mode, rc1, rc2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ok = rc1 == 75 and rc2 == 0
def same_h5(a, b):
    fa, fb = h5py.File(a, "r"), h5py.File(b, "r")
    names, bad = [], []
    fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in names:
        if n not in fb or not np.array_equal(fa[n][()], fb[n][()]): bad.append(n)
    return len(names), bad
def cols(p, skip):
    # every column but wall-clock ones, which differ between any two runs
    rows = [l.rstrip("\n").split(",") for l in open(p)]
    keep = [i for i, h in enumerate(rows[0]) if h not in skip]
    return [[r[i] for i in keep] for r in rows]
metrics = "metrics.csv" if mode == "mometas" else "finetune_metrics.csv"
m_same = cols(f"{out}/ref/{metrics}", {"tokens_per_s", "seconds", "time"}) == \
         cols(f"{out}/cut/{metrics}", {"tokens_per_s", "seconds", "time"})
print(f"{metrics}: {'identical' if m_same else 'DIFFERENT'}")
ok &= m_same
ck = lambda d: sorted(glob.glob(f"{d}/checkpoints/step-*.h5"))[-1]
n, bad = same_h5(ck(f"{out}/ref"), ck(f"{out}/cut"))
print(f"last checkpoint {os.path.basename(ck(f'{out}/ref'))}: {n} datasets, {len(bad)} differ {bad[:5]}")
ok &= not bad
if mode == "mometas":
    n, bad = same_h5(f"{out}/ref/sampler.h5", f"{out}/cut/sampler.h5")
    print(f"sampler.h5: {n} datasets, {len(bad)} differ {bad[:5]}")
    ok &= not bad
print(f"interrupted exit {rc1} (75 expected), resumed exit {rc2} (0 expected): {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
