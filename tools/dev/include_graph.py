#!/usr/bin/python3
"""Checks docs/architecture.md's module table against the include graph.

Each row of the table names a module, its folder(s), its headers and the
modules it uses.  This script reads every file of src/ and include/dapt/,
maps each `#include "dapt/X.h"` to the module owning X.h, and fails (exit 1,
one line per problem) when a header is owned by no row, a module uses one
the row does not list (or lists one it does not use), or a module uses one
listed below it (the graph must follow the table's order).

    tools/dev/include_graph.py [TOP]      (default: this checkout)
"""
import os
import re
import sys

top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
doc = open(os.path.join(top, "docs", "architecture.md"), encoding="utf-8").read()
rows = []
for line in doc.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 5 or cells[0] in ("module", "---") or not cells[1].startswith("`src/"):
        continue
    name = cells[0]
    folders = re.findall(r"`(src/[a-z_]+)`", cells[1])
    headers = re.findall(r"`([a-z_0-9]+)\.h`", cells[2])
    uses = [] if cells[4] in ("—", "-") else ([u.strip() for u in cells[4].split(",")] if cells[4] != "everything" else None)
    rows.append((name, folders, headers, uses))
order = [r[0] for r in rows]
owner = {h: r[0] for r in rows for h in r[2]}
problems = []
for h in sorted(os.listdir(os.path.join(top, "include", "dapt"))):
    if h.endswith(".h") and h[:-2] not in owner:
        problems.append(f"include/dapt/{h}: no module of docs/architecture.md lists it")
inc = re.compile(r'#include "dapt/([a-z_0-9]+)\.h"')


def used_by(files):
    out = {}
    for f in files:
        for h in inc.findall(open(f, encoding="utf-8").read()):
            if h in owner:
                out.setdefault(owner[h], f)
    return out


for name, folders, headers, uses in rows:
    files = [os.path.join(top, "include", "dapt", h + ".h") for h in headers]
    for d in folders:
        p = os.path.join(top, d)
        files += [os.path.join(p, f) for f in sorted(os.listdir(p)) if f.endswith((".c", ".h"))]
    actual = used_by(files)
    actual.pop(name, None)
    for m, f in sorted(actual.items()):
        if order.index(m) > order.index(name):
            problems.append(f"{os.path.relpath(f, top)}: module {name} uses {m}, which comes after it in the table")
        if uses is not None and m not in uses:
            problems.append(f"{os.path.relpath(f, top)}: module {name} uses {m}, not listed in its row")
    for m in uses or []:
        if m not in actual:
            problems.append(f"docs/architecture.md: module {name} lists {m}, which none of its files include")
for p in problems:
    print(p)
print(f"include graph: {len(rows)} modules, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
