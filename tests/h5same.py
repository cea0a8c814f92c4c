#!/usr/bin/python3
"""h5same.py A.h5 B.h5: exit 0 when the two files hold the same groups,
datasets (dtype, shape, every byte) and attributes, apart from the provenance
attributes that name the run (command, mpi_ranks, created, host on the root):
what `cmp` checked before dapt recorded provenance.  Prints the first
difference otherwise."""
import sys

import h5py
import numpy as np

RUN_ATTRS = {"command", "mpi_ranks", "created", "host"}


def attrs(obj, root):
    skip = RUN_ATTRS if root else set()
    return {k: obj.attrs[k] for k in obj.attrs if k not in skip}


def same_value(x, y):
    return np.array_equal(np.asarray(x), np.asarray(y))


def compare(a, b):
    names = []
    a.visit(names.append)
    other = []
    b.visit(other.append)
    if names != other:
        return "objects differ: %s" % sorted(set(names) ^ set(other))[:5]
    for path, obj in [("/", a)] + [(n, a[n]) for n in names]:
        peer = b[path]
        x, y = attrs(obj, path == "/"), attrs(peer, path == "/")
        if sorted(x) != sorted(y):
            return "%s: attributes %s vs %s" % (path, sorted(x), sorted(y))
        for k in x:
            if not same_value(x[k], y[k]):
                return "%s: attribute %s differs" % (path, k)
        if isinstance(obj, h5py.Dataset):
            if obj.dtype != peer.dtype or obj.shape != peer.shape:
                return "%s: %s%s vs %s%s" % (path, obj.dtype, obj.shape, peer.dtype, peer.shape)
            if obj[()].tobytes() != peer[()].tobytes():
                return "%s: data differ" % path
    return None


with h5py.File(sys.argv[1], "r") as fa, h5py.File(sys.argv[2], "r") as fb:
    diff = compare(fa, fb)
if diff:
    print("%s and %s: %s" % (sys.argv[1], sys.argv[2], diff))
    sys.exit(1)
