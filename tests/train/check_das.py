#!/usr/bin/python3
"""Checks of dapt train's DGA/DAS outputs (tests/train/train_das.test).

usage: check_das.py files OUT DOMAIN...        importance.h5 / representations.h5 layout
       check_das.py same OUT1 OUT2 DOMAIN...   importances and metrics agree (layouts)
       check_das.py same_single OUT1 OUT2 SOURCE   the same for a run without continual.domains
       check_das.py softmask INIT MASKED ZERO IMP   soft-mask exactness (see the test)
       check_das.py differ CSV1 CSV2            two metrics files differ in loss
       check_das.py equal CSV1 CSV2             two metrics files agree in loss
"""
import csv
import sys

import h5py
import numpy as np

LAYERS, HEADS, HIDDEN, INTER = 2, 2, 32, 64
UNITS = {"head": HEADS, "intermediate": INTER, "output": HIDDEN}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def files(out, domains):
    with h5py.File(f"{out}/importance.h5", "r") as f:
        if "dapt_config" not in f.attrs:
            fail("importance.h5 has no dapt_config")
        sources = ["general"] + domains
        for unit, n in UNITS.items():
            for s in sources:
                g = f[f"importance/{unit}/{s}"]
                for part in ("raw", "normalized"):
                    d = g[part]
                    if d.shape != (LAYERS, n) or d.dtype != np.float32:
                        fail(f"importance/{unit}/{s}/{part}: {d.shape} {d.dtype}")
                norm = g["normalized"][()]
                if not (np.all(norm >= 0) and np.all(norm <= 1)):
                    fail(f"{unit}/{s}: normalised outside [0, 1]")
                if not np.all(np.isfinite(g["raw"][()])) or not np.any(g["raw"][()] != 0):
                    fail(f"{unit}/{s}: raw not finite or all zero")
                if g.attrs["tokens"] <= 0 or g.attrs["batches"] <= 0:
                    fail(f"{unit}/{s}: tokens/batches attributes")
                want = "kl" if s == "general" else "mlm"
                if g.attrs["proxy"] != want:
                    fail(f"{unit}/{s}: proxy {g.attrs['proxy']}, expected {want}")
        # domain t is soft-masked by max(general, domains < t)
        for t, d in enumerate(domains):
            sm = f[f"softmask/{d}"]
            srcs = sm.attrs["sources"].split(",")
            if srcs != ["general"] + domains[:t]:
                fail(f"softmask/{d}: sources {srcs}")
            for unit in UNITS:
                want = np.max([f[f"importance/{unit}/{s}/normalized"][()] for s in srcs], axis=0)
                if not np.array_equal(sm[unit][()], want):
                    fail(f"softmask/{d}/{unit} is not the max of its sources")
    with h5py.File(f"{out}/representations.h5", "r") as f:
        for d in domains:
            g = f[d]
            z1, z3, ids = g["z1"][()], g["z3"][()], g["doc_ids"][()]
            if z1.shape != z3.shape or z1.shape[1] != HIDDEN or ids.shape != (z1.shape[0],):
                fail(f"representations/{d}: shapes {z1.shape} {z3.shape} {ids.shape}")
            if g.attrs["step"] <= 0 or np.any(ids < 0) or np.any(np.diff(ids) < 0):
                fail(f"representations/{d}: step {g.attrs['step']} or document ids {ids[:5]}")
            if np.allclose(z1, z3):
                fail(f"representations/{d}: z3 equals z1 (importance not applied)")
    print(f"files ok: {out}")


def rows(path):
    with open(path) as fp:
        return [r for r in csv.DictReader(fp) if r["loss"] != ""]


def close(a, b, tol, what):
    a, b = float(a), float(b)
    if abs(a - b) > tol * max(1.0, abs(a), abs(b)):
        fail(f"{what}: {a!r} vs {b!r}")


def same(o1, o2, domains, tol=1e-5, single=False):
    """single: one domain trained in OUT itself (no continual.domains)."""
    for d in domains:
        sub = "" if single else f"/{d}"
        r1, r2 = rows(f"{o1}{sub}/metrics.csv"), rows(f"{o2}{sub}/metrics.csv")
        if len(r1) != len(r2) or not r1:
            fail(f"{d}: {len(r1)} vs {len(r2)} metric rows")
        for x, y in zip(r1, r2):
            for k in ("loss", "grad_norm"):
                close(x[k], y[k], tol, f"{d} step {x['step']} {k}")
            if x["eval_loss"]:
                close(x["eval_loss"], y["eval_loss"], tol, f"{d} step {x['step']} eval_loss")
    with h5py.File(f"{o1}/importance.h5", "r") as f, h5py.File(f"{o2}/importance.h5", "r") as g:
        for unit in UNITS:
            for s in ["general"] + domains:
                a, b = f[f"importance/{unit}/{s}/raw"][()], g[f"importance/{unit}/{s}/raw"][()]
                err = np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-30)
                if err > tol:
                    fail(f"importance {unit}/{s}: relative difference {err}")
    print(f"same ok: {o1} {o2}")


def softmask(init, masked, zero, imp):
    with h5py.File(init, "r") as fi, h5py.File(masked, "r") as fm, h5py.File(zero, "r") as fz, h5py.File(imp, "r") as fimp:
        p0, pm, pz = fi["params"], fm["params"], fz["params"]
        d = HIDDEN // HEADS
        n_frozen = n_free = 0
        for l in range(LAYERS):
            head = fimp["importance/head/general/normalized"][l]
            inter = fimp["importance/intermediate/general/normalized"][l]
            out = fimp["importance/output/general/normalized"][l]
            # rows of Q/K/V (weights, biases) and columns of attn.out per head
            blocks = []
            for t in ("q", "k", "v"):
                for part in ("weight", "bias"):
                    name = f"layer.{l}.attn.{t}.{part}"
                    blocks += [(name, lambda a, h=h: a[h * d:(h + 1) * d], head[h]) for h in range(HEADS)]
            name = f"layer.{l}.attn.out.weight"
            blocks += [(name, lambda a, h=h: a[:, h * d:(h + 1) * d], head[h]) for h in range(HEADS)]
            for part in ("weight", "bias"):
                blocks += [(f"layer.{l}.ffn.in.{part}", lambda a, i=i: a[i], inter[i]) for i in range(INTER)]
                blocks += [(f"layer.{l}.ffn.out.{part}", lambda a, j=j: a[j], out[j]) for j in range(HIDDEN)]
            for name, sel, imp_u in blocks:
                a0, am, az = sel(p0[name][()]), sel(pm[name][()]), sel(pz[name][()])
                if imp_u == 1.0:
                    if not np.array_equal(am, a0):
                        fail(f"{name}: a unit of importance 1 moved (max {np.max(np.abs(am - a0))})")
                    n_frozen += 1
                elif imp_u == 0.0:
                    if not np.array_equal(am, az):
                        fail(f"{name}: a unit of importance 0 got another update than unmasked")
                    if np.array_equal(am, a0):
                        fail(f"{name}: a unit of importance 0 did not move")
                    n_free += 1
        for name in ("embeddings.word", "embeddings.ln.weight", "layer.0.attn.ln.weight", "mlm.dense.weight"):
            if not np.array_equal(pm[name][()], pz[name][()]):
                fail(f"{name} (never masked) differs between the masked and unmasked runs")
            if np.array_equal(pm[name][()], p0[name][()]) and name != "embeddings.ln.weight":
                fail(f"{name} did not move")
        if n_frozen == 0 or n_free == 0:
            fail(f"softmask: {n_frozen} frozen, {n_free} free units checked")
    print(f"softmask ok: {n_frozen} units of importance 1 unchanged, {n_free} of importance 0 as unmasked")


def space(init, half, zero, mode):
    """Importance 0.5 everywhere, one AdamW step: in update space every
    masked parameter moves half as far as without the mask; in gradient space
    Adam's normalisation undoes the scale (the step is nearly the unmasked
    one).  Unmasked tensors move the same in both."""
    with h5py.File(init, "r") as fi, h5py.File(half, "r") as fh, h5py.File(zero, "r") as fz:
        p0, ph, pz = fi["params"], fh["params"], fz["params"]
        ratios = []
        for l in range(LAYERS):
            for name in (f"layer.{l}.attn.q.weight", f"layer.{l}.attn.out.weight", f"layer.{l}.ffn.in.weight",
                         f"layer.{l}.ffn.out.bias"):
                a0 = p0[name][()].astype(np.float64)
                dh, dz = ph[name][()] - a0, pz[name][()] - a0
                keep = np.abs(dz) > 1e-6
                ratios.append(dh[keep] / dz[keep])
        r = np.concatenate(ratios)
        if mode == "update":
            worst = float(np.max(np.abs(r - 0.5)))
            if worst > 1e-3:
                fail(f"update space: masked steps are not half the unmasked ones (worst ratio error {worst:.3g})")
        else:
            med = float(np.median(r))
            if not 0.9 < med < 1.1:
                fail(f"gradient space: median step ratio {med:.3g}, expected about 1 (Adam normalises the scale)")
        for name in ("embeddings.word", "mlm.dense.weight"):
            if not np.array_equal(ph[name][()], pz[name][()]):
                fail(f"{name} (never masked) differs between the masked and unmasked runs")
        print(f"space {mode} ok: step ratio median {float(np.median(r)):.4f}, range [{float(r.min()):.4f}, {float(r.max()):.4f}] over {r.size} parameters")


def metrics_loss(path):
    return [float(r["loss"]) for r in rows(path)]


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "files":
        files(args[0], args[1:])
    elif cmd == "same":
        same(args[0], args[1], args[2:])
    elif cmd == "same_single":
        same(args[0], args[1], args[2:], single=True)
    elif cmd == "softmask":
        softmask(*args)
    elif cmd == "space":
        space(*args)
    elif cmd == "differ":
        a, b = metrics_loss(args[0]), metrics_loss(args[1])
        if len(a) != len(b) or not a:
            fail(f"{args[0]} / {args[1]}: row counts {len(a)} {len(b)}")
        if max(abs(x - y) for x, y in zip(a, b)) < 1e-6:
            fail(f"{args[0]} and {args[1]} have the same losses")
        print(f"differ ok: {args[0]} {args[1]}")
    elif cmd == "equal":
        a, b = metrics_loss(args[0]), metrics_loss(args[1])
        if a != b or not a:
            fail(f"{args[0]} and {args[1]} differ: {a} {b}")
        print(f"equal ok: {args[0]} {args[1]}")
    else:
        fail("unknown command " + cmd)
