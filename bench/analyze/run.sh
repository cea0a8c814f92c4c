#!/bin/bash
# dapt analyze speed and memory on 1 and 2 ranks against numpy on one
# process, on the same data in the same run (docs/performance.md):
#
#   bench/analyze/run.sh [BUILD_DIR] [--rows N] [--dim D] [--layers L] [--repeats R] [--smoke]
#
#   spectrum  an [N, D] float32 matrix (default 65,536 x 768: the shape of
#             mean-pooled bert-base representations of 65k sequences),
#             covariance method; numpy: centring, X^T X, eigvalsh.
#   delta     two model files of bert-base's shapes (L layers, default 12;
#             vocabulary 30,522, hidden 768, FFN 3,072) with a random
#             change; numpy: per 2-D tensor svd(dW, compute_uv=False) and
#             the Frobenius norms.
# Times: the work dapt reports in its summary (read, distribute, compute;
# not MPI start-up, checksums or writing), the whole process's wall time,
# and numpy's compute time (after loading, so it favours numpy); best of R
# (default 3).  Memory: dapt's peak resident set of its largest rank (its
# own getrusage line), numpy's peak resident set.  Every process gets one
# BLAS thread (OPENBLAS_NUM_THREADS=1), so 2 ranks use 2 cores and numpy 1.
# --smoke: a tiny size (2,048 x 64, 2 layers of a small model, 1 repeat)
# that checks the script works in seconds; its numbers mean nothing.
# Results go to stdout and bench/results/analyze-<UTC time>.txt.
set -euo pipefail
export LC_ALL=C OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/build
rows=65536 dim=768 layers=12 reps=3 vocab=30522 hidden=768 inter=3072 heads=12 smoke=0
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2; shift ;;
        --dim) dim=$2; shift ;;
        --layers) layers=$2; shift ;;
        --repeats) reps=$2; shift ;;
        --smoke) smoke=1 rows=2048 dim=64 layers=2 reps=1 vocab=500 hidden=64 inter=256 heads=4 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) build=$1 ;;
    esac
    shift
done
dapt=$build/dapt
[ -x "$dapt" ] || { echo "run.sh: no dapt binary in $build (build it first: tests/run.sh)" >&2; exit 1; }

# What the script needs besides dapt: numpy and h5py for the reference and
# the data, GNU time for nothing else.  Installed with apt-get when missing.
need=""
for p in python3-numpy python3-h5py; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "run.sh: missing Debian packages:$need (sudo apt-get install$need)" >&2; exit 1; }
    apt-get update -qq && apt-get install -y -qq $need >/dev/null
fi
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$top/bench/results"
out=$top/bench/results/analyze-$(date -u +%Y%m%dT%H%M%S).txt

# ---- data --------------------------------------------------------------------
$py - "$tmp" "$rows" "$dim" "$layers" "$vocab" "$hidden" "$inter" "$heads" <<'PY'
import sys, h5py, numpy as np
d, n, dim, L, V, H, I, nh = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
# Representations with a decaying spectrum and a common direction (anisotropy).
x = (rng.standard_normal((n, dim), dtype=np.float32) * (1.0 / np.sqrt(1 + np.arange(dim, dtype=np.float32))))
x += 0.5 * rng.standard_normal(dim).astype(np.float32)
with h5py.File(f"{d}/spectrum.h5", "w") as f:
    f["x"] = x
def shapes():
    yield "embeddings.word", (V, H); yield "embeddings.position", (512, H); yield "embeddings.token_type", (2, H)
    yield "embeddings.ln.weight", (H,); yield "embeddings.ln.bias", (H,)
    for l in range(L):
        p = f"layer.{l}."
        for m in "qkv":
            yield p + f"attn.{m}.weight", (H, H); yield p + f"attn.{m}.bias", (H,)
        yield p + "attn.out.weight", (H, H); yield p + "attn.out.bias", (H,)
        yield p + "attn.ln.weight", (H,); yield p + "attn.ln.bias", (H,)
        yield p + "ffn.in.weight", (I, H); yield p + "ffn.in.bias", (I,)
        yield p + "ffn.out.weight", (H, I); yield p + "ffn.out.bias", (H,)
        yield p + "ffn.ln.weight", (H,); yield p + "ffn.ln.bias", (H,)
    yield "pooler.weight", (H, H); yield "pooler.bias", (H,)
    yield "mlm.dense.weight", (H, H); yield "mlm.dense.bias", (H,); yield "mlm.ln.weight", (H,); yield "mlm.ln.bias", (H,)
    yield "mlm.bias", (V,)
for name, scale in (("before", 0.0), ("after", 1.0)):
    r = np.random.default_rng(1)
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        a = f.attrs
        a["format"], a["format_version"], a["arch"] = "dapt-model", 1, "bert"
        for k, v in (("vocab_size", V), ("hidden_size", H), ("num_hidden_layers", L), ("num_attention_heads", nh),
                     ("intermediate_size", I), ("max_position_embeddings", 512), ("type_vocab_size", 2),
                     ("pad_token_id", 0), ("has_pooler", 1), ("has_mlm_head", 1), ("num_labels", 0)):
            a[k] = np.int64(v)
        for k, v in (("layer_norm_eps", 1e-12), ("hidden_dropout_prob", 0.1), ("attention_probs_dropout_prob", 0.1),
                     ("initializer_range", 0.02)):
            a[k] = np.float64(v)
        for t, shape in shapes():
            w = 0.02 * r.standard_normal(shape, dtype=np.float32)
            # a low-rank change plus noise, as fine-tuning makes
            dw = 1e-3 * r.standard_normal(shape, dtype=np.float32)
            if len(shape) == 2:
                dw += 1e-2 * np.outer(r.standard_normal(shape[0]), r.standard_normal(shape[1])).astype(np.float32) / np.sqrt(shape[0] * shape[1])
            f[f"params/{t}"] = w + scale * dw
PY

# ---- timing ------------------------------------------------------------------
numpy_run() { # spectrum|delta -> "compute_s peak_MB"
    $py - "$1" "$tmp" <<'PY'
import sys, time, resource, h5py, numpy as np
what, d = sys.argv[1], sys.argv[2]
if what == "spectrum":
    x = h5py.File(f"{d}/spectrum.h5")["x"][()].astype(np.float64)
    t0 = time.perf_counter()
    xc = x - x.mean(axis=0)
    w = np.linalg.eigvalsh(xc.T @ xc / (len(x) - 1))
    nrm = np.linalg.norm(x, axis=1)
    s = (x / nrm[:, None]).sum(axis=0)
    aniso = (s @ s - len(x)) / (len(x) * (len(x) - 1))
    t = time.perf_counter() - t0
else:
    fb, fa = h5py.File(f"{d}/before.h5"), h5py.File(f"{d}/after.h5")
    names = [k for k in fb["params"] if fb["params"][k].ndim == 2]
    pairs = [(fb["params"][k][()].astype(np.float64), fa["params"][k][()].astype(np.float64)) for k in names]
    t0 = time.perf_counter()
    for b, a in pairs:
        dw = a - b
        s = np.linalg.svd(dw, compute_uv=False)
        fro, rel = np.linalg.norm(dw), np.linalg.norm(dw) / np.linalg.norm(b)
    t = time.perf_counter() - t0
print(f"{t:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
PY
}

dapt_run() { # ranks spectrum|delta -> "work_s wall_s peak_MB"
    local n=$1 what=$2 t0 t1
    local args=(spectrum "$tmp/spectrum.h5" x)
    [ "$what" = delta ] && args=(delta "$tmp/before.h5" "$tmp/after.h5")
    t0=$(date +%s.%N)
    mpirun -n "$n" --oversubscribe --bind-to none "$dapt" analyze "${args[@]}" --output "$tmp/out.h5" --force \
        >"$tmp/log" 2>&1 || { cat "$tmp/log" >&2; exit 1; }
    t1=$(date +%s.%N)
    local work mem
    work=$(sed -nE 's/.*\(grid [0-9]+x[0-9]+, ([0-9.]+) s\).*/\1/p' "$tmp/log" | head -1)
    mem=$(sed -nE 's/.*peak memory per rank: ([0-9.]+) MB.*/\1/p' "$tmp/log")
    echo "$work $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b - a}') $mem"
}

best() { # command... -> the run with the smallest first field, of $reps
    local b="" r
    for _ in $(seq "$reps"); do
        r=$("$@")
        if [ -z "$b" ] || awk -v x="${r%% *}" -v y="${b%% *}" 'BEGIN{exit !(x < y)}'; then b=$r; fi
    done
    echo "$b"
}

{
echo "# dapt analyze benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc --all) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$smoke" = 1 ] && echo "# SMOKE SIZE: checks the script only, the numbers mean nothing"
echo "# spectrum: [$rows x $dim] float32 on disk, float64 in memory; delta: $layers layers, vocabulary $vocab, hidden $hidden, FFN $inter; best of $reps"
echo "# one BLAS thread per process; dapt work_s = read + distribute + compute, as its summary reports"
printf "%-9s %-7s %6s %10s %10s %12s\n" analysis tool ranks work_s wall_s peak_MB/rank
for what in spectrum delta; do
    r=$(best numpy_run "$what")
    printf "%-9s %-7s %6s %10s %10s %12s\n" "$what" numpy 1 "${r%% *}" - "${r##* }"
    for n in 1 2; do
        r=$(best dapt_run "$n" "$what")
        read -r w wall mem <<<"$r"
        printf "%-9s %-7s %6s %10s %10s %12s\n" "$what" dapt "$n" "$w" "$wall" "$mem"
    done
done
echo "# after the runs, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out"
echo "wrote $out"
