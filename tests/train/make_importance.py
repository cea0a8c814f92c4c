#!/usr/bin/python3
"""Writes an importance file with chosen normalised values for the tiny
model of tests/train (2 layers, 2 heads, hidden 32, intermediate 64):
usage: make_importance.py OUT.h5 mixed|zero|half
mixed: per layer head 0 = 1, head 1 = 0; intermediate and output neurons
alternate 1, 0; zero: everything 0; half: everything 0.5."""
import sys

import h5py
import numpy as np

out, kind = sys.argv[1], sys.argv[2]
with h5py.File(out, "w") as f:
    for unit, n in (("head", 2), ("intermediate", 64), ("output", 32)):
        norm = np.zeros((2, n), np.float32)
        if kind == "mixed":
            norm[:, 0::2] = 1.0
        elif kind == "half":
            norm[:] = 0.5
        g = f.create_group(f"importance/{unit}/general")
        g["raw"] = norm.copy()
        g["normalized"] = norm
        g.attrs["tokens"] = 1.0
        g.attrs["batches"] = np.int64(1)
        g.attrs["proxy"] = "kl"
        g.attrs["accumulation"] = "absolute"
