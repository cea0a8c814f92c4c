# Shared by the evidence scripts that start from the one general model
# (tools/smart_evidence.sh, mometas_evidence.sh, das_factorial.sh); sourced
# after they set here, gen (a tools/general_model.sh OUT), out and TAG.
# Sets RANKS, DAPT, PY, LAUNCH, DATA, FT_*, G (the general model), TOK;
# installs and builds what is missing; defines say, run, finetune_eval and
# heldout_losses.
. "$here/tools/bootstrap.sh"
RANKS=${RANKS:-2}
DAPT=${DAPT:-$here/build/dapt}
PY=/usr/bin/python3
LAUNCH=${LAUNCH:-mpirun -n $RANKS --oversubscribe --bind-to none}
DATA=${DATA:-$here/data}
# lr tuned once on the general model (docs/results.md)
FT_EPOCHS=${FT_EPOCHS:-4} FT_LR=${FT_LR:-1e-3} FT_BATCH=${FT_BATCH:-32}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

say() { printf '[%s %s] %s\n' "$TAG" "$(date -u +%H:%M:%S)" "$*"; }
run() { say "dapt $*"; $LAUNCH "$DAPT" "$@"; }

dapt_install_packages
[ -x "$DAPT" ] || dapt_build "$here/build" CFLAGS="-g -O2"
G=$gen/train/model.h5
[ -f "$G" ] || { echo "$TAG: $G: no general model (run tools/general_model.sh $gen first)" >&2; exit 2; }
TOK=$gen/vocab/bert-base-uncased/vocab.txt
[ -f "$DATA/MANIFEST" ] || "$here/data/fetch.sh"

# finetune_eval MODEL TASK.h5 SEED DIR [--set ...]: fine-tunes (resuming an
# interrupted run; exits 75 when preempted) and evaluates the test split into
# DIR/test.json; skipped when that exists.
finetune_eval() {
    fe_model=$1 fe_task=$2 fe_seed=$3 fe_dir=$4; shift 4
    [ -f "$fe_dir/test.json" ] && return 0
    mkdir -p "$fe_dir"
    say "finetune $fe_model on $fe_task, seed $fe_seed -> $fe_dir"
    fe_t0=$(date +%s) fe_rc=0
    $LAUNCH "$DAPT" finetune --model "$fe_model" --task "$fe_task" --output "$fe_dir" --resume --seed "$fe_seed" \
        --set finetune.epochs="$FT_EPOCHS" --set finetune.lr="$FT_LR" --set finetune.batch_size="$FT_BATCH" \
        --set finetune.warmup_ratio=0.1 "$@" >>"$fe_dir/finetune.log" 2>&1 || fe_rc=$?
    [ "$fe_rc" -eq 75 ] && { say "preempted: run the same command again to continue"; exit 75; }
    [ "$fe_rc" -eq 0 ] || { tail -3 "$fe_dir/finetune.log" >&2; exit "$fe_rc"; }
    $LAUNCH "$DAPT" eval --model "$fe_dir/model.h5" --task "$fe_task" --split test --output "$fe_dir/test" --force \
        >"$fe_dir/test.txt" 2>&1 || { cat "$fe_dir/test.txt" >&2; exit 1; }
    echo "$fe_dir $(( $(date +%s) - fe_t0 ))" >>"$out/times.txt"
}

# heldout_losses MODEL DIR SEED CORPUS.h5 FRACTION: held-out MLM losses over
# every held-out sequence into DIR/general.json (the general model's
# documents: its configuration) and DIR/domain.json (the documents seed SEED
# holds out of CORPUS at FRACTION).
heldout_losses() {
    mkdir -p "$2"
    [ -f "$2/general.json" ] || run eval --model "$1" --corpus "$gen/general.h5" --config "$gen/general.ini" \
        --output "$2/general" --force
    [ -f "$2/domain.json" ] || run eval --model "$1" --corpus "$4" --set run.seed="$3" \
        --set data.eval_fraction="$5" --set data.seq_len=128 --output "$2/domain" --force
}

# The small outputs of finished runs (scores, metrics, sampler states: never
# models) are kept in the tree under data/evidence/TAG/, mirroring OUT, so an
# experiment longer than one machine's life continues on the next from what
# was committed: evidence_restore copies them into OUT (what OUT already has
# wins), and a stage whose outputs exist is skipped as usual.
# evidence_keep PATH... (relative to OUT) copies those that exist into the tree.
EVIDENCE=${EVIDENCE:-$here/data/evidence/$TAG}
evidence_restore() {
    [ -d "$EVIDENCE" ] || return 0
    (cd "$EVIDENCE" && find . -type f) | while read -r er_f; do
        [ -e "$out/$er_f" ] && continue
        mkdir -p "$(dirname "$out/$er_f")" && cp -p "$EVIDENCE/$er_f" "$out/$er_f"
    done
    say "restored the kept outputs of $EVIDENCE"
}
evidence_keep() {
    for ek_f in "$@"; do
        [ -f "$out/$ek_f" ] || continue
        mkdir -p "$(dirname "$EVIDENCE/$ek_f")" && cp -p "$out/$ek_f" "$EVIDENCE/$ek_f"
    done
}
