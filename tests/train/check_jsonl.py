#!/usr/bin/python3
"""check_jsonl.py METRICS.csv [KEY]: METRICS.jsonl beside it holds the CSV's
rows, one JSON object each, every column as a key in header order, numbers
typed (integers as int), null exactly where the CSV field is empty or not
finite; and each KEY (default: the first column) appears once, increasing.
Prints the row count; exit 1 with the first difference."""
import csv
import json
import math
import sys


def main(path, key=None):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    key = key or header[0]
    jpath = path[: -len(".csv")] + ".jsonl"
    with open(jpath) as f:
        objs = [json.loads(line) for line in f]
    assert len(objs) == len(rows), f"{jpath}: {len(objs)} objects, {path}: {len(rows)} rows"
    for i, (row, obj) in enumerate(zip(rows, objs), start=2):
        assert list(obj) == header, f"{jpath} row {i}: keys {list(obj)} != header {header}"
        for name, cell in zip(header, row):
            want = float(cell) if cell else None
            if want is not None and not math.isfinite(want):
                want = None
            got = obj[name]
            assert got == want, f"{jpath} row {i} {name}: {got!r}, CSV {cell!r}"
            assert got is None or isinstance(got, (int, float)) and not isinstance(got, bool), \
                f"{jpath} row {i} {name}: {got!r} is not a number"
            if cell and cell.lstrip("-").isdigit():
                assert isinstance(got, int), f"{jpath} row {i} {name}: {got!r} should be an integer"
    keys = [o[key] for o in objs]
    assert keys == sorted(set(keys)), f"{jpath}: {key} not once each and increasing: {keys}"
    print(f"{jpath}: {len(objs)} rows equal to the CSV's")


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
