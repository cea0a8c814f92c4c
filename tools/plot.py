#!/usr/bin/python3
"""Plots for dapt runs, as PNG files (Debian python3-matplotlib, python3-h5py).

  tools/plot.py curves METRICS.csv [METRICS.csv ...] -o curves.png [--labels A,B,...]
      Training curves from dapt train's metrics.csv: training loss and
      held-out loss against the step (one colour per run), learning rate below.
  tools/plot.py importance IMPORTANCE.h5 -o heads.png [--kind head] [--values normalized|raw]
      Heat-maps (layer x unit) of every importance source in the file
      (/importance/<kind>/<source>/{raw,normalized}, docs/formats.md) and of
      every soft mask (/softmask/<name>/<kind>), one panel each.
  tools/plot.py --selftest
      Writes a small metrics.csv and importance.h5 to a temporary directory,
      draws both plots, checks the PNGs (signature, size) and that bad input
      is refused; exit 0 on success.
"""
import argparse
import csv
import math
import os
import struct
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")  # batch jobs have no display
import matplotlib.pyplot as plt  # noqa: E402


class PlotError(Exception):
    pass


def read_metrics(path):
    """Columns of a metrics.csv as {name: [float or None]}; step is required."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise PlotError(f"{path}: {e.strerror}")
    if not rows or "step" not in rows[0]:
        raise PlotError(f"{path}: not a dapt metrics.csv (no header with a step column)")
    header = rows[0]
    cols = {name: [] for name in header}
    for lineno, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise PlotError(f"{path}:{lineno}: {len(row)} fields, header has {len(header)}")
        for name, cell in zip(header, row):
            try:
                cols[name].append(float(cell) if cell != "" else None)
            except ValueError:
                raise PlotError(f"{path}:{lineno}: column {name}: not a number: {cell!r}")
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


def plot_curves(paths, out, labels=None):
    if labels and len(labels) != len(paths):
        raise PlotError(f"{len(labels)} labels for {len(paths)} metrics files")
    runs = [(labels[i] if labels else os.path.basename(os.path.dirname(os.path.abspath(p))) or p,
             read_metrics(p)) for i, p in enumerate(paths)]
    fig, (ax_loss, ax_lr) = plt.subplots(2, 1, figsize=(8, 7), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    drawn = 0
    for i, (label, cols) in enumerate(runs):
        colour = f"C{i % 10}"
        x, y = series(cols, "loss")
        if x:
            ax_loss.plot(x, y, color=colour, lw=1, alpha=0.8, label=f"{label} train")
            drawn += 1
        x, y = series(cols, "eval_loss")
        if x:
            ax_loss.plot(x, y, color=colour, lw=2, ls="--", marker="o", ms=3, label=f"{label} held-out")
            drawn += 1
        x, y = series(cols, "lr")
        if x:
            ax_lr.plot(x, y, color=colour, lw=1, label=label)
    if not drawn:
        raise PlotError("no loss or eval_loss values in " + ", ".join(paths))
    ax_loss.set_ylabel("MLM loss (nats)")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, out)


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
        plot_curves([metrics, metrics], curves, labels=["a", "b"])
        w, h = png_size(curves)
        check(os.path.getsize(curves) > 10000 and w >= 800 and h >= 700, f"curves.png written ({w}x{h})")

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
        check(not [p for p in os.listdir(d) if ".tmp." in p], "no temporary files left")
    if failures:
        print(f"plot.py selftest: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("plot.py selftest: all checks passed")
    return 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    p = argparse.ArgumentParser(prog="tools/plot.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves", help="training curves from metrics.csv files")
    c.add_argument("metrics", nargs="+")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--labels", help="comma-separated run names (default: the metrics' directory names)")
    i = sub.add_parser("importance", help="heat-maps of unit importances per layer")
    i.add_argument("h5")
    i.add_argument("-o", "--output", required=True)
    i.add_argument("--kind", default="head", choices=["head", "intermediate", "output"])
    i.add_argument("--values", default="normalized", choices=["normalized", "raw"])
    a = p.parse_args(argv[1:])
    try:
        if a.cmd == "curves":
            plot_curves(a.metrics, a.output, a.labels.split(",") if a.labels else None)
        else:
            plot_importance(a.h5, a.output, a.kind, a.values)
    except PlotError as e:
        print(f"plot.py: {e}", file=sys.stderr)
        return 1
    print(a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
