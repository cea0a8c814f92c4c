#!/usr/bin/python3
"""numpy reference for `dapt analyze` (tests/analysis/*.test).

Every quantity is recomputed here the direct way, on one process, with
numpy/LAPACK: singular values by np.linalg.svd, anisotropy from the explicit
N x N cosine matrix, CKA from the N x N Gram matrices (and Kornblith et al.'s
feature-space code), weight changes tensor by tensor, Spearman's rho from
average ranks.  Subcommands:

  make DIR                      test matrices and bad inputs (matrices.h5, bad.h5)
  spectrum OUT.h5 FILE DATASET  check a `dapt analyze spectrum` output
  cka OUT.h5 A B DA DB          check a `dapt analyze cka --dataset` output
  cka-hidden OUT.h5 HIDDEN.h5   check a `dapt analyze cka --corpus --save-hidden` output
  delta OUT.h5 BEFORE AFTER [IMPORTANCE]
                                check a `dapt analyze delta` output
  selftest                      the CKA identities (CKA(X, X) = 1, invariance to
                                orthogonal transforms and isotropic scaling) and the
                                feature-space = Gram-space equalities
Exit 0 when every check passes; each check prints one line.
"""
import sys

import h5py
import numpy as np

FAILED = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        FAILED.append(what)


def close(a, b, tol, what, scale=None):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        check(False, f"{what}: shapes {a.shape} vs {b.shape}")
        return
    s = scale if scale is not None else max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    err = float(np.max(np.abs(a - b))) / s if a.size else 0.0
    check(err <= tol, f"{what}: max error {err:.2e} (tolerance {tol:.0e})")


# ---- the quantities ---------------------------------------------------------

def spectrum(x, center=True):
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    xc = x - x.mean(axis=0) if center else x.copy()
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s * s / (n - 1)
    p = s / s.sum()
    p = p[p > 0]
    norms = np.linalg.norm(x, axis=1)
    u = x[norms > 0] / norms[norms > 0, None]
    m = u.shape[0]
    cos = u @ u.T
    aniso = (cos.sum() - np.trace(cos)) / (m * (m - 1))
    for r in vt:  # largest |component| positive
        if r[np.argmax(np.abs(r))] < 0:
            r *= -1
    return {"singular_values": s, "explained_variance": var, "explained_variance_ratio": var / var.sum(),
            "effective_rank": float(np.exp(-(p * np.log(p)).sum())),
            "participation_ratio": float(var.sum() ** 2 / (var * var).sum()),
            "stable_rank": float((s * s).sum() / s[0] ** 2), "anisotropy": float(aniso),
            "mean": x.mean(axis=0), "directions": vt, "zero_rows": int((norms == 0).sum())}


def cka_gram(x, y, debiased=False):
    """CKA from the N x N Gram matrices: biased HSIC with the centring matrix,
    or the unbiased HSIC estimator of Song et al. (2012)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.shape[0]
    k, l = x @ x.T, y @ y.T
    if not debiased:
        h = np.eye(n) - 1.0 / n
        def hsic(a, b):
            return np.trace(a @ h @ b @ h)
    else:
        def hsic(a, b):
            a, b = a.copy(), b.copy()
            np.fill_diagonal(a, 0)
            np.fill_diagonal(b, 0)
            one = np.ones(n)
            return (np.trace(a @ b) + (one @ a @ one) * (one @ b @ one) / ((n - 1) * (n - 2))
                    - 2.0 / (n - 2) * (one @ a @ b @ one)) / (n * (n - 3))
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def cka_feature(x, y, debiased=False):
    """Kornblith et al. (2019), feature_space_linear_cka, verbatim."""
    x = np.asarray(x, np.float64) - np.mean(x, 0, keepdims=True)
    y = np.asarray(y, np.float64) - np.mean(y, 0, keepdims=True)
    dot = np.linalg.norm(x.T.dot(y)) ** 2
    nx, ny = np.linalg.norm(x.T.dot(x)), np.linalg.norm(y.T.dot(y))
    if debiased:
        n = x.shape[0]
        rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
        sx, sy = rx.sum(), ry.sum()
        def helper(xty, a, b, na, nb):
            return xty - n / (n - 2.0) * a.dot(b) + na * nb / ((n - 1) * (n - 2))
        dot = helper(dot, rx, ry, sx, sy)
        nx = np.sqrt(helper(nx ** 2, rx, rx, sx, sx))
        ny = np.sqrt(helper(ny ** 2, ry, ry, sy, sy))
    return dot / (nx * ny)


def average_ranks(x):
    x = np.asarray(x, np.float64)
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return r


def spearman(x, y):
    rx, ry = average_ranks(x), average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def unit_changes(before, after, cfg):
    """Per unit (head, intermediate, output) of every layer: ||dW|| and
    ||W_before|| over the unit's elements (the DAS soft-mask scope)."""
    L, H, nh, inter = cfg["layers"], cfg["hidden"], cfg["heads"], cfg["intermediate"]
    dh = H // nh
    out = {k: (np.zeros((L, u)), np.zeros((L, u))) for k, u in (("head", nh), ("intermediate", inter), ("output", H))}
    def add(kind, l, unit, d, b):
        out[kind][0][l, unit] += (d * d).sum()
        out[kind][1][l, unit] += (b * b).sum()
    for l in range(L):
        p = f"params/layer.{l}."
        g = lambda n: (after[p + n][()].astype(np.float64) - before[p + n][()].astype(np.float64),
                       before[p + n][()].astype(np.float64))
        for h in range(nh):
            rows = slice(h * dh, (h + 1) * dh)
            for m in "qkv":
                d, b = g(f"attn.{m}.weight")
                add("head", l, h, d[rows], b[rows])
                d, b = g(f"attn.{m}.bias")
                add("head", l, h, d[rows], b[rows])
            d, b = g("attn.out.weight")
            add("head", l, h, d[:, rows], b[:, rows])
        for kind, t, n in (("intermediate", "ffn.in", inter), ("output", "ffn.out", H)):
            dw, bw = g(f"{t}.weight")
            db, bb = g(f"{t}.bias")
            for i in range(n):
                add(kind, l, i, np.append(dw[i], db[i]), np.append(bw[i], bb[i]))
    return {k: (np.sqrt(c), np.sqrt(b)) for k, (c, b) in out.items()}


# ---- fixtures ---------------------------------------------------------------

def make(d):
    rng = np.random.default_rng(14)
    n, dim = 37, 10  # 37 rows: not a multiple of the tests' block sizes (4, 8)
    # A decaying spectrum with distinct singular values, so the principal
    # directions are well defined; an offset so centring matters.
    q1, _ = np.linalg.qr(rng.standard_normal((n, dim)))
    q2, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    x = (q1 * (2.0 ** -np.arange(dim) * 10)) @ q2 + rng.standard_normal(dim)
    x[5] = 0  # a zero row: left out of the anisotropy
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    z = np.tanh(x @ rng.standard_normal((dim, 7))) + 0.1 * rng.standard_normal((n, 7))
    with h5py.File(f"{d}/matrices.h5", "w") as f:
        f["x"] = x
        f["x32"] = x.astype(np.float32)
        f["x_rotated"] = x @ q
        f["x_scaled"] = 3.5 * x
        f["z"] = z
        f["group/wide"] = rng.standard_normal((6, 23))  # N < d
        # dapt forward's hidden_states [layers + 1, B, S, H] and a [B, S, H]
        # array: token rows, 35 of them, runs of 7 across row blocks
        f["hidden_states"] = rng.standard_normal((3, 5, 7, 6)).astype(np.float32) + np.arange(6, dtype=np.float32)
        f["tokens"] = rng.standard_normal((5, 7, 6))
    with h5py.File(f"{d}/bad.h5", "w") as f:
        y = x.copy()
        y[30, 7] = np.nan
        f["nan"] = y
        f["cube"] = np.zeros((2, 3, 4))
        f["vector"] = np.zeros(5)
        f["ints"] = np.zeros((4, 4), dtype=np.int32)
        f["short"] = x[:20]
    print(f"wrote {d}/matrices.h5 and {d}/bad.h5")


# ---- checks -----------------------------------------------------------------

def read_matrix(f, spec):
    """DATASET or DATASET[i] as dapt analyze reads it: [rows, last size]."""
    if spec.endswith("]") and "[" in spec:
        name, index = spec[:-1].rsplit("[", 1)
        a = f[name][int(index)]
    else:
        a = f[spec][()]
    return a.reshape(-1, a.shape[-1])


def check_spectrum(out, path, name):
    with h5py.File(path, "r") as f:
        x = read_matrix(f, name)
    with h5py.File(out, "r") as o:
        g = o["spectrum"]
        center = bool(g.attrs["centered"])
        ref = spectrum(x, center)
        smax = ref["singular_values"][0]
        tol = 1e-9 if g.attrs["method"] == "svd" else 1e-7
        check(o.attrs["format"] == "dapt-analysis" and o.attrs["analysis"] == "spectrum", "self-describing root")
        close(g["singular_values"][()], ref["singular_values"], tol, "singular values", smax)
        close(g["explained_variance"][()], ref["explained_variance"], tol, "explained variance", smax * smax)
        close(g["explained_variance_ratio"][()], ref["explained_variance_ratio"], tol, "variance ratio")
        close(g["mean"][()], ref["mean"], 1e-12, "column means")
        for k in ("effective_rank", "participation_ratio", "stable_rank", "anisotropy"):
            close(g.attrs[k], ref[k], 1e-8, k)
        check(g.attrs["zero_rows"] == ref["zero_rows"], f"zero rows {g.attrs['zero_rows']}")
        if "directions" in g:
            dirs = g["directions"][()]
            close(dirs, ref["directions"][:len(dirs)], 1e-6, f"{len(dirs)} principal directions")


def check_cka(out, a, b, da, db):
    with h5py.File(a, "r") as f:
        x = read_matrix(f, da)
    with h5py.File(b, "r") as f:
        y = read_matrix(f, db)
    with h5py.File(out, "r") as o:
        lin, deb = o["cka/linear"][()].ravel()[0], o["cka/debiased"][()].ravel()[0]
    close(lin, cka_gram(x, y), 1e-10, f"CKA({da}, {db}) = {lin:.6f}")
    close(deb, cka_gram(x, y, debiased=True), 1e-10, f"debiased CKA({da}, {db}) = {deb:.6f}")


def check_cka_hidden(out, hidden):
    with h5py.File(hidden, "r") as h, h5py.File(out, "r") as o:
        lin, deb = o["cka/linear"][()], o["cka/debiased"][()]
        pairs = o["cka"].attrs["pairs"]
        la = sorted(h["a"], key=lambda s: int(s.split("_")[1]))
        lb = sorted(h["b"], key=lambda s: int(s.split("_")[1]))
        for i, na in enumerate(la):
            for j, nb in enumerate(lb):
                if pairs == "diagonal" and i != j:
                    continue
                x, y = h["a"][na][()], h["b"][nb][()]
                got = (lin[i], deb[i]) if pairs == "diagonal" else (lin[i, j], deb[i, j])
                close(got[0], cka_feature(x, y), 1e-9, f"CKA a/{na} b/{nb} = {got[0]:.6f}")
                close(got[1], cka_feature(x, y, True), 1e-9, f"debiased CKA a/{na} b/{nb} = {got[1]:.6f}")


def model_config(f):
    a = f.attrs
    return {"layers": int(a["num_hidden_layers"]), "hidden": int(a["hidden_size"]),
            "heads": int(a["num_attention_heads"]), "intermediate": int(a["intermediate_size"])}


def importance_arrays(path, source):
    with h5py.File(path, "r") as f:
        out = {}
        for kind in ("head", "intermediate", "output"):
            if source.startswith("softmask/"):
                ds = f"{source}/{kind}"
            else:
                ds = f"importance/{kind}/{source[len('importance/'):]}/normalized"
            if ds in f:
                out[kind] = f[ds][()].astype(np.float64)
        return out


def check_delta(out, before, after, importance=None):
    with h5py.File(before, "r") as fb, h5py.File(after, "r") as fa, h5py.File(out, "r") as o:
        names = o["summary"].attrs["tensors"].split()
        expect = sorted(k for k in fb["params"] if fb["params"][k].ndim == 2)
        check(sorted(names) == expect, f"{len(names)} weight matrices, every 2-D tensor of /params")
        worst, rels = 0.0, []
        for n in names:
            wb = fb["params"][n][()].astype(np.float64)
            d = fa["params"][n][()].astype(np.float64) - wb
            s = np.linalg.svd(d, compute_uv=False)
            g = o["delta"][n]
            scale = max(s[0], 1e-300)
            worst = max(worst, float(np.max(np.abs(g["singular_values"][()] - s))) / scale)
            fro = np.linalg.norm(d)
            for key, want in (("fro", fro), ("relative_fro", fro / np.linalg.norm(wb)),
                              ("stable_rank", fro ** 2 / s[0] ** 2 if s[0] > 0 else 0.0)):
                if abs(g.attrs[key] - want) > 1e-9 * max(1.0, abs(want)):
                    check(False, f"{n} {key} {g.attrs[key]} vs {want}")
            rels.append(fro / np.linalg.norm(wb))
        check(worst <= 1e-9, f"singular values of every dW: max error {worst:.2e} of s_1")
        close(o["summary/relative_fro"][()], rels, 1e-9, "summary relative Frobenius norms")
        ref = unit_changes(fb, fa, model_config(fb))
        for kind, (c, b) in ref.items():
            close(o[f"units/{kind}/change"][()], c, 1e-9, f"{kind} change per unit")
            close(o[f"units/{kind}/norm_before"][()], b, 1e-9, f"{kind} norm per unit")
        if importance:
            source = o["units"].attrs["importance_source"]
            imp = importance_arrays(importance, source)
            check(len(imp) > 0, f"importance source {source} has arrays")
            for kind, a in imp.items():
                c, b = ref[kind]
                rel = np.where(b > 0, c / np.where(b > 0, b, 1), 0)
                g = o[f"units/{kind}"]
                close(g["importance"][()], a, 0, f"{kind} importance copied")
                close(g.attrs["spearman_relative"], spearman(a.ravel(), rel.ravel()), 1e-10,
                      f"{kind} Spearman(importance, relative change) = {g.attrs['spearman_relative']:+.4f}")
                close(g.attrs["spearman_absolute"], spearman(a.ravel(), c.ravel()), 1e-10,
                      f"{kind} Spearman(importance, change) = {g.attrs['spearman_absolute']:+.4f}")
                per = [spearman(a[l], rel[l]) for l in range(a.shape[0])]
                close(np.nan_to_num(g["spearman_per_layer"][()], nan=9), np.nan_to_num(per, nan=9), 1e-10,
                      f"{kind} Spearman per layer")


def selftest():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 6)) @ rng.standard_normal((6, 9))
    y = np.tanh(x @ rng.standard_normal((9, 5))) + 0.1 * rng.standard_normal((40, 5))
    q, _ = np.linalg.qr(rng.standard_normal((9, 9)))
    for deb in (False, True):
        tag = "debiased " if deb else ""
        close(cka_feature(x, x, deb), 1.0, 1e-12, f"{tag}CKA(X, X) = 1")
        close(cka_feature(x @ q, y, deb), cka_feature(x, y, deb), 1e-12, f"{tag}CKA invariant to orthogonal X Q")
        close(cka_feature(4.2 * x, y, deb), cka_feature(x, y, deb), 1e-12, f"{tag}CKA invariant to isotropic scaling")
        close(cka_feature(x, y, deb), cka_gram(x, y, deb), 1e-10, f"{tag}feature-space CKA = Gram-space CKA")
    r = average_ranks([3, 1, 4, 1, 5])
    close(r, [3, 1.5, 4, 1.5, 5], 0, "average ranks with a tie")
    close(spearman([1, 2, 3, 4], [10, 20, 30, 45]), 1.0, 1e-15, "Spearman of a monotone pair = 1")


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "make" and len(argv) == 3:
        make(argv[2])
        return 0
    if cmd == "spectrum" and len(argv) == 5:
        check_spectrum(*argv[2:])
    elif cmd == "cka" and len(argv) == 7:
        check_cka(*argv[2:])
    elif cmd == "cka-hidden" and len(argv) == 4:
        check_cka_hidden(*argv[2:])
    elif cmd == "delta" and len(argv) in (5, 6):
        check_delta(*argv[2:])
    elif cmd == "selftest":
        selftest()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    if FAILED:
        print(f"analysis_reference: {len(FAILED)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
