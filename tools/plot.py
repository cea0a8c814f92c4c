#!/usr/bin/python3
"""Plots for dapt runs, as PNG files (Debian python3-matplotlib, python3-h5py,
python3-numpy; installed through tools/bootstrap.sh when missing).

  tools/plot.py curves METRICS [METRICS ...] -o curves.png [--labels A,B,...] [--follow SECONDS]
      Curves from dapt train's metrics.csv or metrics.jsonl (or dapt
      finetune's finetune_metrics.*) against the step, one colour per run and
      one panel per column, titled with what it is: `loss` (the whole
      objective), held-out MLM loss, each term of the objective, dev
      metrics, gradient norm, learning rate.  --follow SECONDS redraws a
      running job's curves every SECONDS until its final model appears
      (OUT/<domain>/model.h5, or the newest checkpoint at train.steps or
      marked finished) or Ctrl-C.
  tools/plot.py importance IMPORTANCE.h5 -o heads.png [--kind head] [--values normalized|raw]
      Heat-maps (layer x unit) of every importance source in the file
      (/importance/<kind>/<source>/{raw,normalized}, docs/formats.md) and of
      every soft mask (/softmask/<name>/<kind>), one panel each.
  tools/plot.py spectrum SPECTRUM.h5 [SPECTRUM.h5 ...] -o spectra.png [--labels A,B,...]
      From `dapt analyze spectrum` outputs: singular values (log scale) and
      cumulative explained variance against the component, one line per file,
      effective rank and anisotropy in the legend.
  tools/plot.py cka CKA.h5 [CKA.h5 ...] -o cka.png [--labels A,B,...]
      From `dapt analyze cka` outputs: one file with every layer pair
      (--pairs all) is drawn as a layer x layer heat-map; files with the
      per-layer diagonal become one row each (model x layer heat-map), e.g.
      the general model against each post-trained model.
  tools/plot.py delta DELTA.h5 -o scatter.png
      From `dapt analyze delta` with --importance: unit importance against
      relative change, one panel per unit kind, Spearman's rho in the title;
      without importance, the relative change of every unit per layer.
  tools/plot.py sampler SAMPLER.h5 [SAMPLER.h5 ...] -o sampler.png [--labels A,B,...]
      From MOMETAS runs (OUT/sampler.h5, docs/formats.md): the sampling
      distribution p of each objective after every meta-step, the reward of
      each meta-step and each objective's held-out loss, against the
      optimizer step; one row of panels per file.
  tools/plot.py --selftest
      Writes a small metrics.csv, importance.h5 and analysis files to a
      temporary directory, draws every plot, checks the PNGs (signature,
      size) and that bad input is refused; exit 0 on success.
"""
import argparse
import csv
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# What this script imports, as Debian packages (tools/bootstrap.sh installs them).
PACKAGES = ("python3-matplotlib", "python3-h5py", "python3-numpy")


def import_or_install():
    """matplotlib (and h5py, numpy) from Debian; installed with
    tools/bootstrap.sh's dapt_install_packages when missing, like the other
    tools; one line and exit 1 when that is not possible."""
    try:
        import h5py  # noqa: F401
        import matplotlib
        import numpy  # noqa: F401
        return matplotlib
    except ImportError as e:
        missing = e.name
    print(f"plot.py: cannot import {missing}: installing {' '.join(PACKAGES)}", file=sys.stderr)
    rc = subprocess.call(["sh", "-c", '. "$0" && dapt_install_packages "$@"',
                          os.path.join(HERE, "bootstrap.sh"), *PACKAGES], stdout=sys.stderr)
    try:
        import h5py  # noqa: F401,F811
        import matplotlib  # noqa: F811
        import numpy  # noqa: F401,F811
        return matplotlib
    except ImportError as e:
        sys.exit(f"plot.py: cannot import {e.name} (installing {' '.join(PACKAGES)} "
                 f"{'failed' if rc else 'did not help'}): run as root or install them")


matplotlib = import_or_install()
matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402


class PlotError(Exception):
    pass


def complete_lines(path):
    """The file's lines that end with a newline: the row a running job is
    writing at this instant is not read half-written."""
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise PlotError(f"{path}: {e.strerror}")
    return text.splitlines(keepends=True) if text.endswith("\n") else text.splitlines(keepends=True)[:-1]


def cell_value(path, lineno, name, v):
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise PlotError(f"{path}:{lineno}: column {name}: not a number: {v!r}")


def read_metrics(path):
    """Columns of a metrics file, dapt's CSV or its JSON lines
    (metrics.csv / metrics.jsonl, finetune_metrics.*), as
    {name: [float or None]} in column order; step is required."""
    lines = complete_lines(path)
    if path.endswith(".jsonl"):
        records = []
        for lineno, line in enumerate(lines, start=1):
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise PlotError(f"{path}:{lineno}: not JSON: {e}")
            if not isinstance(obj, dict):
                raise PlotError(f"{path}:{lineno}: not a JSON object")
            records.append((lineno, obj))
        if not records:
            raise PlotError(f"{path}: no rows")
        header = list(records[0][1])
    else:
        rows = list(csv.reader(lines))
        if not rows:
            raise PlotError(f"{path}: no rows")
        header = rows[0]
        records = []
        for lineno, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise PlotError(f"{path}:{lineno}: {len(row)} fields, header has {len(header)}")
            records.append((lineno, dict(zip(header, row))))
    if "step" not in header:
        raise PlotError(f"{path}: not a dapt metrics file (no step column)")
    cols = {name: [] for name in header}
    for lineno, rec in records:
        for name in header:
            cols[name].append(cell_value(path, lineno, name, rec.get(name)))
    if not cols["step"]:
        raise PlotError(f"{path}: no rows")
    return cols


def series(cols, name):
    xs, ys = [], []
    for x, y in zip(cols["step"], cols.get(name, [])):
        if x is not None and y is not None and math.isfinite(y):
            xs.append(x)
            ys.append(y)
    return xs, ys


# The panels of `curves`, in order, each with what its values are (docs/training.md,
# docs/finetune.md).  `loss` is the whole objective: MLM alone only for mlm/one.
TERMS = (
    ("loss", "loss: the whole training objective (MLM + the method's terms)"),
    ("eval_loss", "eval_loss: held-out MLM loss"),
    ("mlm_loss", "mlm_loss: the MLM term of the objective"),
    ("kd_loss", "kd_loss: KL to the teacher (kd term)"),
    ("ewc_penalty", "ewc_penalty: Fisher-weighted distance to the anchor (ewc term)"),
    ("contrast_loss", "contrast_loss: contrastive term (dga/das)"),
    ("train_loss", "train_loss: the whole fine-tuning objective, epoch mean"),
    ("cls_loss", "cls_loss: task loss term (smart)"),
    ("adv_loss", "adv_loss: adversarial smoothness term (smart)"),
    ("bregman", "bregman: Bregman proximal term (smart)"),
    ("dev_loss", "dev_loss: task loss on the dev split"),
    ("dev_accuracy", "dev_accuracy"),
    ("dev_macro_f1", "dev_macro_f1"),
    ("dev_micro_f1", "dev_micro_f1"),
    ("dev_weighted_f1", "dev_weighted_f1"),
    ("dev_mse", "dev_mse"),
    ("dev_rmse", "dev_rmse"),
    ("dev_mae", "dev_mae"),
    ("dev_pearson", "dev_pearson"),
    ("dev_spearman", "dev_spearman"),
    ("grad_norm", "grad_norm: gradient norm before clipping"),
    ("lr", "learning rate"),
)
# Columns that are bookkeeping or another view of a drawn one.
NOT_DRAWN = {"step", "epoch", "tokens_per_s", "eval_ppl", "best", "seconds"}
EVALUATED = {"eval_loss"}  # sparse rows: drawn with markers


def panel_terms(runs):
    """The columns to draw, known ones first in TERMS order, then any other
    (an objective's new term) under its own name."""
    present = [name for _, cols in runs for name in cols]
    known = [(n, label) for n, label in TERMS if n in present]
    names = {n for n, _ in known}
    other = []
    for n in present:
        if n not in names and n not in NOT_DRAWN and n not in [o for o, _ in other]:
            other.append((n, f"{n} (objective term)"))
    return known + other


def plot_curves(paths, out, labels=None):
    if labels and len(labels) != len(paths):
        raise PlotError(f"{len(labels)} labels for {len(paths)} metrics files")
    runs = [(labels[i] if labels else os.path.basename(os.path.dirname(os.path.abspath(p))) or p,
             read_metrics(p)) for i, p in enumerate(paths)]
    terms = [(n, label) for n, label in panel_terms(runs) if any(series(cols, n)[0] for _, cols in runs)]
    if not any(n in ("loss", "eval_loss", "train_loss", "dev_loss") for n, _ in terms):
        raise PlotError("no loss values in " + ", ".join(paths))
    ncols = 1 if len(terms) <= 3 else 2
    nrows = (len(terms) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 2.6 * nrows + 0.6), sharex=True, squeeze=False)
    for ax, (name, label) in zip(axes.flat, terms):
        for i, (run, cols) in enumerate(runs):
            x, y = series(cols, name)
            if not x:
                continue
            style = dict(lw=2, ls="--", marker="o", ms=3) if name in EVALUATED or len(x) <= 20 else dict(lw=1)
            ax.plot(x, y, color=f"C{i % 10}", label=run, **style)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step")
    fig.suptitle(", ".join(paths) if len(paths) == 1 else f"{len(paths)} runs", fontsize=9)
    fig.tight_layout()
    save(fig, out)
    return terms


def run_finished(path):
    """True when the run writing this metrics file has its final model:
    OUT/<domain>/model.h5 of a continual domain, or a newest checkpoint
    marked finished (dapt finetune) or at the configured train.steps (dapt
    train).  The checkpoint `latest` names is complete (renamed before
    `latest` is written), so reading it under a running job is safe."""
    import configparser
    import h5py
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.basename(path).startswith("finetune_") and os.path.exists(os.path.join(d, "model.h5")):
        return True
    try:
        with open(os.path.join(d, "checkpoints", "latest")) as f:
            name = f.read().strip()
        with h5py.File(os.path.join(d, "checkpoints", name), "r") as f:
            if "finetune" in f:
                return bool(f["finetune"].attrs["finished"])
            config = configparser.ConfigParser(interpolation=None, strict=False)
            config.read_string(f.attrs["dapt_config"])
            return int(f.attrs["step"]) >= config.getint("train", "steps")
    except (OSError, KeyError, ValueError, configparser.Error):
        return False  # no checkpoint yet, or one being replaced: not finished


def follow_curves(paths, out, labels, every, log=sys.stdout):
    """Redraws every `every` seconds until every run has its final model
    (then one last drawing) or Ctrl-C; a file that is not there yet or has
    no rows is waited for."""
    waiting = None
    try:
        while True:
            finished = all(run_finished(p) for p in paths)
            try:
                plot_curves(paths, out, labels)
                waiting = None
                rows = max(len(read_metrics(p)["step"]) for p in paths)
                print(f"{time.strftime('%H:%M:%S')} {out}: {rows} rows", file=log, flush=True)
            except PlotError as e:
                if finished:
                    raise
                if str(e) != waiting:
                    print(f"waiting: {e}", file=log, flush=True)
                    waiting = str(e)
            if finished:
                print(f"finished: {out}", file=log, flush=True)
                return
            time.sleep(every)
    except KeyboardInterrupt:
        print(f"\nstopped: {out} holds the last drawing", file=log, flush=True)


def read_importance(path, kind, values):
    """[(title, 2-D array layers x units)] for every source and soft mask of kind."""
    import h5py
    panels = []
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise PlotError(f"{path}: cannot open as HDF5 ({e})")
    with f:
        group = f.get(f"/importance/{kind}")
        if group is not None:
            for name in sorted(group):
                obj = group[name]
                if isinstance(obj, h5py.Dataset):
                    panels.append((f"importance {name}", obj[()]))
                elif values in obj:
                    panels.append((f"importance {name} ({values})", obj[values][()]))
                else:
                    raise PlotError(f"{path}: /importance/{kind}/{name} has no {values} dataset")
        masks = f.get("/softmask")
        if masks is not None:
            for name in sorted(masks):
                if kind in masks[name]:
                    panels.append((f"soft mask {name}", masks[name][kind][()]))
    if not panels:
        raise PlotError(f"{path}: no /importance/{kind}/* or /softmask/*/{kind} datasets")
    for title, a in panels:
        if a.ndim != 2:
            raise PlotError(f"{path}: {title}: expected a 2-D [layers, units] array, got shape {a.shape}")
    return panels


def plot_importance(path, out, kind="head", values="normalized"):
    panels = read_importance(path, kind, values)
    n = len(panels)
    ncols = min(n, 3)
    nrows = (n + ncols - 1) // ncols
    layers, units = panels[0][1].shape
    w = max(3.0, 0.45 * units + 1.5)
    h = max(2.5, 0.4 * layers + 1.2)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False)
    for ax, (title, a) in zip(axes.flat, panels):
        im = ax.imshow(a, aspect="auto", cmap="viridis", origin="upper")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(kind)
        ax.set_ylabel("layer")
        ax.set_yticks(range(a.shape[0]))
        if a.shape[1] <= 32:
            ax.set_xticks(range(a.shape[1]))
        if a.size <= 64:
            for (r, c), v in __import__("numpy").ndenumerate(a):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    save(fig, out)


def read_sampler(path):
    """(objectives, step [M], p [M, K], reward [M], heldout [M + 1, K]) of a sampler.h5."""
    import h5py
    import numpy as np
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise PlotError(f"{path}: cannot open as HDF5 ({e})")
    with f:
        if f.attrs.get("format", b"") not in (b"dapt-sampler", "dapt-sampler"):
            raise PlotError(f"{path}: not a dapt sampler file (root attribute format is not dapt-sampler)")
        try:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in f["/objectives"][()]]
            step, p, reward, held = (np.asarray(f[k][()]) for k in ("/step", "/p", "/reward", "/heldout_loss"))
        except KeyError as e:
            raise PlotError(f"{path}: missing dataset {e}")
    m, k = len(step), len(names)
    if p.shape != (m, k) or reward.shape != (m,) or held.shape != (m + 1, k):
        raise PlotError(f"{path}: inconsistent shapes: step {step.shape}, p {p.shape}, reward {reward.shape}, "
                        f"heldout_loss {held.shape} for {k} objectives")
    return names, step, p, reward, held


def plot_sampler(paths, out, labels=None):
    runs = [(name, read_sampler(path)) for name, path in zip(run_labels(paths, labels), paths)]
    fig, axes = plt.subplots(len(runs), 3, figsize=(15, 3.6 * len(runs)), squeeze=False)
    for row, (label, (names, step, p, reward, held)) in zip(axes, runs):
        for j, name in enumerate(names):
            row[0].plot(step, p[:, j], marker=".", label=name)
            row[2].plot([0] + list(step), held[:, j], marker=".", label=name)
        row[0].set_title(f"{label}: sampling probability p after each meta-step", fontsize=9)
        row[0].set_ylim(0, 1)
        row[1].bar(step, reward, width=max(1.0, 0.6 * (step[1] - step[0])) if len(step) > 1 else 1.0)
        row[1].axhline(0, color="k", lw=0.5)
        row[1].set_title(f"{label}: reward of each meta-step", fontsize=9)
        row[2].set_title(f"{label}: held-out loss per objective", fontsize=9)
        for ax in row:
            ax.set_xlabel("optimizer step")
        row[0].legend(fontsize=8)
        row[2].legend(fontsize=8)
    fig.tight_layout()
    save(fig, out)


def open_analysis(path, kind):
    """An h5py file written by `dapt analyze KIND`, or PlotError."""
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise PlotError(f"{path}: cannot open as HDF5 ({e})")
    if f.attrs.get("format") != "dapt-analysis" or f.attrs.get("analysis") != kind:
        f.close()
        raise PlotError(f"{path}: not a `dapt analyze {kind}` output (root attributes format/analysis)")
    return f


def run_labels(paths, labels):
    if labels and len(labels) != len(paths):
        raise PlotError(f"{len(labels)} labels for {len(paths)} files")
    return labels or [os.path.splitext(os.path.basename(p))[0] for p in paths]


def plot_spectrum(paths, out, labels=None):
    names = run_labels(paths, labels)
    fig, (ax_s, ax_c) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, (p, name) in enumerate(zip(paths, names)):
        with open_analysis(p, "spectrum") as f:
            g = f["spectrum"]
            s, r = g["singular_values"][()], g["explained_variance_ratio"][()]
            tag = f"{name} (erank {g.attrs['effective_rank']:.1f}, aniso {g.attrs['anisotropy']:.2f})"
        k = range(1, len(s) + 1)
        ax_s.semilogy(k, [max(v, 1e-300) for v in s], color=f"C{i % 10}", lw=1.5, label=tag)
        cum, acc = [], 0.0
        for v in r:
            acc += v
            cum.append(acc)
        ax_c.plot(k, cum, color=f"C{i % 10}", lw=1.5, label=name)
    ax_s.set_xlabel("component")
    ax_s.set_ylabel("singular value")
    ax_s.grid(alpha=0.3)
    ax_s.legend(fontsize=7)
    ax_c.set_xlabel("components")
    ax_c.set_ylabel("cumulative explained variance")
    ax_c.set_ylim(0, 1.02)
    ax_c.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, out)


def read_cka(paths, labels):
    """('pairs', matrix, title) for one all-pairs file, else ('rows', [rows], names)."""
    names = run_labels(paths, labels)
    rows = []
    for p in paths:
        with open_analysis(p, "cka") as f:
            v = f["cka/linear"][()]
            if v.ndim == 2 and len(paths) == 1:
                return "pairs", v, names[0]
            if v.ndim != 1:
                raise PlotError(f"{p}: every-pair CKA can only be drawn alone (one file)")
            rows.append(v)
    if len({len(r) for r in rows}) != 1:
        raise PlotError("the CKA files have different numbers of layers")
    return "rows", rows, names


def plot_cka(paths, out, labels=None):
    import numpy as np
    mode, data, names = read_cka(paths, labels)
    a = np.array(data) if mode == "rows" else data
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * a.shape[1] + 2.5), max(2.5, 0.45 * a.shape[0] + 1.5)))
    im = ax.imshow(a, aspect="auto", cmap="magma", vmin=min(0.0, float(a.min())), vmax=1.0, origin="upper")
    layer_names = ["emb"] + [str(i) for i in range(a.shape[1] - 1)]
    ax.set_xticks(range(a.shape[1]))
    ax.set_xticklabels(layer_names if a.shape[1] <= 40 else [])
    if mode == "rows":
        ax.set_yticks(range(a.shape[0]))
        ax.set_yticklabels(names, fontsize=8)
        ax.set_xlabel("layer (hidden state)")
        ax.set_title("linear CKA to the reference model, per layer", fontsize=10)
    else:
        ax.set_yticks(range(a.shape[0]))
        ax.set_yticklabels(["emb"] + [str(i) for i in range(a.shape[0] - 1)])
        ax.set_xlabel("layer of B")
        ax.set_ylabel("layer of A")
        ax.set_title(f"linear CKA, every layer pair ({names})", fontsize=10)
    if a.size <= 200:
        for (r, c), v in np.ndenumerate(a):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save(fig, out)


def read_delta(path):
    """[(kind, importance or None, relative change [layers, units], rho)]."""
    panels = []
    with open_analysis(path, "delta") as f:
        if "units" not in f:
            raise PlotError(f"{path}: no /units group")
        for kind in ("head", "intermediate", "output"):
            g = f.get(f"units/{kind}")
            if g is None:
                continue
            imp = g["importance"][()] if "importance" in g else None
            panels.append((kind, imp, g["relative_change"][()], g.attrs.get("spearman_relative")))
    if not panels:
        raise PlotError(f"{path}: no unit changes")
    return panels


def plot_delta(path, out):
    panels = read_delta(path)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (kind, imp, rel, rho) in zip(axes.flat, panels):
        layers = rel.shape[0]
        for l in range(layers):
            colour = plt.cm.viridis(l / max(1, layers - 1))
            if imp is not None:
                ax.scatter(imp[l], rel[l], s=6, color=colour, alpha=0.7, label=f"layer {l}" if layers <= 12 else None)
            else:
                ax.scatter([l] * rel.shape[1], rel[l], s=6, color=colour, alpha=0.7)
        if imp is not None:
            ax.set_xlabel("importance (soft mask)")
            ok = rho is not None and math.isfinite(rho)
            ax.set_title(f"{kind}: Spearman rho = {rho:+.3f}" if ok else f"{kind}: Spearman rho undefined (constant)",
                         fontsize=10)
        else:
            ax.set_xlabel("layer")
            ax.set_title(f"{kind}: relative change per unit", fontsize=10)
        ax.set_ylabel("||dW_unit|| / ||W_unit||")
        ax.grid(alpha=0.3)
        if imp is not None and layers <= 12:
            ax.legend(fontsize=6, markerscale=2)
    fig.tight_layout()
    save(fig, out)


def save(fig, out):
    """Writes under a temporary name and renames when complete."""
    tmp = f"{out}.tmp.{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    except OSError as e:
        raise PlotError(f"{out}: {e.strerror}")
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise PlotError(f"{path}: not a PNG file")
    return struct.unpack(">II", head[16:24])


def selftest():
    import h5py
    import numpy as np
    failures = []

    def check(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    with tempfile.TemporaryDirectory(prefix="dapt-plot-") as d:
        metrics = os.path.join(d, "metrics.csv")
        with open(metrics, "w") as f:
            f.write("step,loss,lr,grad_norm,tokens_per_s,eval_loss,eval_ppl\n")
            f.write("0,,,,,10.35,31250.0\n")
            for s in range(1, 41):
                ev = f"{9.0 - s / 20:.4f}" if s % 10 == 0 else ""
                f.write(f"{s},{10.3 - s * 0.05:.4f},{min(s / 5, 1) * 5e-4:.6g},1.2,3500,{ev},\n")
        curves = os.path.join(d, "curves.png")
        terms = dict(plot_curves([metrics, metrics], curves, labels=["a", "b"]))
        w, h = png_size(curves)
        check(os.path.getsize(curves) > 10000 and w >= 800 and h >= 600, f"curves.png written ({w}x{h})")
        check("whole training objective" in terms["loss"] and "MLM" not in terms["loss"].split(":")[0],
              f"loss labelled as the whole objective: {terms['loss']!r}")
        check(terms.get("eval_loss", "").endswith("held-out MLM loss"), "eval_loss labelled held-out MLM loss")
        selftest_terms_and_jsonl(d, metrics, check)

        imp = os.path.join(d, "importance.h5")
        rng = np.random.default_rng(0)
        with h5py.File(imp, "w") as f:
            for src in ("general", "computing"):
                raw = rng.random((4, 4), dtype=np.float32)
                f[f"/importance/head/{src}/raw"] = raw
                f[f"/importance/head/{src}/normalized"] = raw / raw.max()
                f[f"/importance/intermediate/{src}/raw"] = rng.random((4, 16), dtype=np.float32)
            f["/softmask/computing/head"] = rng.random((4, 4), dtype=np.float32)
        heads = os.path.join(d, "heads.png")
        plot_importance(imp, heads)
        w, h = png_size(heads)
        check(os.path.getsize(heads) > 10000 and w > h, f"heads.png written, 3 panels side by side ({w}x{h})")
        check(len(read_importance(imp, "head", "normalized")) == 3, "3 head panels: 2 sources + 1 soft mask")
        check(len(read_importance(imp, "intermediate", "raw")) == 2, "2 intermediate panels (raw)")

        bad = os.path.join(d, "bad.csv")
        with open(bad, "w") as f:
            f.write("step,loss\n1,abc\n")
        for what, fn in (("non-numeric metrics refused", lambda: read_metrics(bad)),
                         ("missing metrics file refused", lambda: read_metrics(os.path.join(d, "none.csv"))),
                         ("importance without heads refused", lambda: read_importance(metrics, "head", "raw")),
                         ("unknown kind refused", lambda: read_importance(imp, "nope", "raw"))):
            try:
                fn()
                check(False, what)
            except PlotError as e:
                check(True, f"{what}: {e}")
        selftest_analysis(d, check)
        selftest_sampler(d, check)
        check(not [p for p in os.listdir(d) if ".tmp." in p], "no temporary files left")
    if failures:
        print(f"plot.py selftest: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("plot.py selftest: all checks passed")
    return 0


def selftest_sampler(d, check):
    import h5py
    import numpy as np
    path = os.path.join(d, "sampler.h5")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "dapt-sampler"
        f["/objectives"] = np.array([b"mlm", b"atd", b"dtd", b"cse"])
        f["/step"] = np.arange(1, 6, dtype=np.int64) * 100
        z = np.cumsum(np.random.default_rng(1).normal(size=(5, 4)), axis=0)
        f["/p"] = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        f["/reward"] = np.array([0.1, -0.2, 0.05, 0.0, 0.3])
        f["/heldout_loss"] = np.linspace(8, 6, 24).reshape(6, 4)
    out = os.path.join(d, "sampler.png")
    plot_sampler([path], out)
    w, h = png_size(out)
    check(os.path.getsize(out) > 10000 and w > h, f"sampler.png written ({w}x{h})")
    with h5py.File(path, "a") as f:
        del f["/reward"]
        f["/reward"] = np.zeros(3)
    try:
        read_sampler(path)
        check(False, "a sampler file with inconsistent shapes refused")
    except PlotError as e:
        check(True, f"a sampler file with inconsistent shapes refused: {e}")


def selftest_terms_and_jsonl(d, metrics, check):
    """JSON lines read as the CSV; a half-written last row is not read; one
    panel per objective term; --follow stops on a finished run."""
    import h5py
    cols = read_metrics(metrics)
    jsonl = os.path.join(d, "metrics.jsonl")
    with open(jsonl, "w") as f:
        for i in range(len(cols["step"])):
            f.write(json.dumps({k: (int(v[i]) if k == "step" else v[i]) for k, v in cols.items()}) + "\n")
        f.write('{"step": 41, "loss"')  # the row being written
    check(read_metrics(jsonl) == cols, "metrics.jsonl read as metrics.csv, half-written row skipped")
    das = os.path.join(d, "das", "metrics.csv")
    os.makedirs(os.path.dirname(das))
    with open(das, "w") as f:
        f.write("step,loss,lr,grad_norm,tokens_per_s,eval_loss,eval_ppl,mlm_loss,contrast_loss,my_term\n")
        f.write("0,,,,,10.3,29732.6,,,\n")
        for s in range(1, 11):
            f.write(f"{s},{9 - s / 10:.3f},1e-4,1.5,4000.0,{'9.1,8955.3' if s == 10 else ','},"
                    f"{8 - s / 10:.3f},1.0,0.5\n")
        f.write("11,8.1,1e-4")  # half-written
    out = os.path.join(d, "das.png")
    terms = [n for n, _ in plot_curves([das], out)]
    check(terms == ["loss", "eval_loss", "mlm_loss", "contrast_loss", "grad_norm", "lr", "my_term"],
          f"one panel per term, known first: {terms}")
    check(not run_finished(das), "no checkpoint: run not finished")
    os.makedirs(os.path.join(d, "das", "checkpoints"))
    for step, steps in ((10, 20), (10, 10)):
        with h5py.File(os.path.join(d, "das", "checkpoints", "step-00000010.h5"), "w") as f:
            f.attrs["step"] = step
            f.attrs["dapt_config"] = f"[run]\nseed = 1\n[train]\nsteps = {steps}\nlr = 1e-4\n"
        with open(os.path.join(d, "das", "checkpoints", "latest"), "w") as f:
            f.write("step-00000010.h5\n")
        check(run_finished(das) == (step == steps), f"checkpoint at step {step} of {steps}: finished {step == steps}")
    os.unlink(out)
    with open(os.devnull, "w") as log:
        follow_curves([das], out, None, 3600, log)  # returns at once: the run is finished
    check(png_size(out)[0] > 500, "--follow on a finished run drew once and returned")


def selftest_analysis(d, check):
    """Small files shaped like `dapt analyze` outputs, drawn and refused."""
    import h5py
    import numpy as np
    rng = np.random.default_rng(1)

    def analysis_file(name, kind):
        f = h5py.File(os.path.join(d, name), "w")
        f.attrs["format"], f.attrs["analysis"] = "dapt-analysis", kind
        return f

    for i in range(2):
        with analysis_file(f"spec{i}.h5", "spectrum") as f:
            s = np.sort(rng.random(16))[::-1] * (i + 1)
            f["spectrum/singular_values"] = s
            f["spectrum/explained_variance_ratio"] = s * s / (s * s).sum()
            f["spectrum"].attrs["effective_rank"], f["spectrum"].attrs["anisotropy"] = 9.5, 0.31
    for i in range(3):
        with analysis_file(f"cka{i}.h5", "cka") as f:
            f["cka/linear"] = 1 - np.linspace(0, 0.3 * (i + 1), 13)
    with analysis_file("ckaall.h5", "cka") as f:
        f["cka/linear"] = rng.random((13, 13))
    with analysis_file("delta.h5", "delta") as f:
        for kind, units in (("head", 12), ("intermediate", 64), ("output", 16)):
            imp = rng.random((4, units))
            f[f"units/{kind}/importance"] = imp
            f[f"units/{kind}/relative_change"] = 0.02 * (1 - imp) + 0.002 * rng.random((4, units))
            f[f"units/{kind}"].attrs["spearman_relative"] = -0.9
    with analysis_file("delta_noimp.h5", "delta") as f:
        f["units/head/relative_change"] = rng.random((4, 12))
    for what, fn, name, wmin in (
            ("spectra", lambda o: plot_spectrum([os.path.join(d, "spec0.h5"), os.path.join(d, "spec1.h5")], o), "spectra.png", 1000),
            ("CKA model x layer", lambda o: plot_cka([os.path.join(d, f"cka{i}.h5") for i in range(3)], o, ["das", "dga", "mlm"]), "cka.png", 500),
            ("CKA layer x layer", lambda o: plot_cka([os.path.join(d, "ckaall.h5")], o), "ckaall.png", 500),
            ("importance vs change", lambda o: plot_delta(os.path.join(d, "delta.h5"), o), "scatter.png", 1200),
            ("change per layer", lambda o: plot_delta(os.path.join(d, "delta_noimp.h5"), o), "delta.png", 400)):
        out = os.path.join(d, name)
        fn(out)
        w, h = png_size(out)
        check(os.path.getsize(out) > 10000 and w >= wmin, f"{what}: {name} written ({w}x{h})")
    for what, fn in (("a spectrum file refused as CKA", lambda: read_cka([os.path.join(d, "spec0.h5")], None)),
                     ("every-pair CKA with another file refused",
                      lambda: read_cka([os.path.join(d, "ckaall.h5"), os.path.join(d, "cka0.h5")], None)),
                     ("wrong label count refused", lambda: read_cka([os.path.join(d, "cka0.h5")], ["a", "b"])),
                     ("a metrics file refused as delta", lambda: read_delta(os.path.join(d, "metrics.csv")))):
        try:
            fn()
            check(False, what)
        except PlotError as e:
            check(True, f"{what}: {e}")


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    p = argparse.ArgumentParser(prog="tools/plot.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves", help="training curves from metrics.csv or metrics.jsonl files")
    c.add_argument("metrics", nargs="+")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--labels", help="comma-separated run names (default: the metrics' directory names)")
    c.add_argument("--follow", type=float, metavar="SECONDS",
                   help="redraw every SECONDS until the run's final model appears or Ctrl-C")
    i = sub.add_parser("importance", help="heat-maps of unit importances per layer")
    i.add_argument("h5")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--kind", default="head", choices=["head", "intermediate", "output"])
    i.add_argument("--values", default="normalized", choices=["normalized", "raw"])
    for name, what in (("spectrum", "`dapt analyze spectrum` outputs"), ("cka", "`dapt analyze cka` outputs")):
        q = sub.add_parser(name, help=f"plots of {what}")
        q.add_argument("files", nargs="+")
        q.add_argument("-o", "--output", required=True)
        q.add_argument("--labels", help="comma-separated names (default: the file names)")
    q = sub.add_parser("sampler", help="MOMETAS sampler history (OUT/sampler.h5)")
    q.add_argument("files", nargs="+")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--labels", help="comma-separated names (default: the file names)")
    q = sub.add_parser("delta", help="unit importance against weight change (`dapt analyze delta`)")
    q.add_argument("h5")
    q.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv[1:])
    try:
        labels = a.labels.split(",") if getattr(a, "labels", None) else None
        if a.cmd == "curves" and a.follow is not None:
            if not a.follow > 0:
                raise PlotError(f"--follow {a.follow}: give a positive number of seconds")
            follow_curves(a.metrics, a.output, labels, a.follow)
        elif a.cmd == "curves":
            plot_curves(a.metrics, a.output, labels)
        elif a.cmd == "spectrum":
            plot_spectrum(a.files, a.output, labels)
        elif a.cmd == "cka":
            plot_cka(a.files, a.output, labels)
        elif a.cmd == "sampler":
            plot_sampler(a.files, a.output, labels)
        elif a.cmd == "delta":
            plot_delta(a.h5, a.output)
        else:
            plot_importance(a.h5, a.output, a.kind, a.values)
    except PlotError as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 1
    print(a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
