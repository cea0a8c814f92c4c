#!/usr/bin/python3
"""Independent checks of dapt prepare's HDF5 files with h5py (tests/data/*.test).

  check_prepared.py docs MODE OUT.txt INPUT...
      writes the documents of the inputs, split the simple way in Python
      (MODE line|blank), one per line (a blank-mode document's lines joined
      by a space) for `dapt tokenize --no-special`
  check_prepared.py corpus FILE.h5 IDS.txt MODE INPUT...
      tokens/doc_offsets/attributes of a corpus file agree with the ids that
      `dapt tokenize` gave for each document and with the inputs' sha256
  check_prepared.py same-data A.h5 B.h5
      the datasets of two corpus files are equal (e.g. plain vs .gz input)
  check_prepared.py task FILE.h5 IDS_DIR SPLIT.tsv...
      a task file agrees with the TSV inputs (labels, counts, sorted names)
      and with `dapt tokenize` ids of each split (IDS_DIR/<split>.ids)
  check_prepared.py jsonl IN.tsv OUT.jsonl [pair]
      converts TSV to JSONL (optionally duplicating the text as text_b)
Exits non-zero with a message on the first disagreement.
"""
import gzip
import hashlib
import json
import os
import sys

import h5py
import numpy as np


def fail(msg):
    sys.exit("FAIL: " + msg)


def read_text(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def split_docs(text, mode):
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    docs, cur = [], []
    for line in lines:
        content = line[:-1] if line.endswith("\r") else line
        if mode == "line":
            if content:
                docs.append(content)
        elif content:
            cur.append(line)
        elif cur:
            docs.append("\n".join(cur))
            cur = []
    if cur:
        docs.append("\n".join(cur))
    return [d[:-1] if d.endswith("\r") else d for d in docs]


def cmd_docs(mode, out, inputs):
    with open(out, "w", encoding="utf-8") as f:
        for p in inputs:
            for d in split_docs(read_text(p), mode):
                f.write(d.replace("\n", " ").replace("\r", " ") + "\n")


def read_ids(path):
    with open(path) as f:
        return [[int(x) for x in line.split()] for line in f.read().split("\n")[:-1]]


def cmd_corpus(h5, ids_path, mode, inputs):
    f = h5py.File(h5, "r")
    ids = read_ids(ids_path)
    per_file = [len(split_docs(read_text(p), mode)) for p in inputs]
    if sum(per_file) != len(ids):
        fail("%d documents in Python, %d lines of ids" % (sum(per_file), len(ids)))
    kept = [x for x in ids if x]
    tokens, offs = f["tokens"][:], f["doc_offsets"][:]
    if f.attrs["n_docs"] != len(kept) or len(offs) != len(kept) + 1:
        fail("n_docs %d / offsets %d, expected %d documents" % (f.attrs["n_docs"], len(offs), len(kept)))
    if f.attrs["n_skipped"] != len(ids) - len(kept):
        fail("n_skipped %d, expected %d" % (f.attrs["n_skipped"], len(ids) - len(kept)))
    if offs[0] != 0 or offs[-1] != len(tokens) or np.any(np.diff(offs) <= 0):
        fail("doc_offsets not strictly increasing from 0 to n_tokens")
    for i, want in enumerate(kept):
        got = tokens[offs[i]:offs[i + 1]].tolist()
        if got != want:
            fail("document %d: ids differ from dapt tokenize: %s... vs %s..." % (i, got[:8], want[:8]))
    vocab = int(f.attrs["vocab_size"])
    want_dtype = "uint8" if vocab <= 256 else "uint16" if vocab <= 65536 else "uint32"
    if str(tokens.dtype) != want_dtype or f.attrs["token_dtype"] != want_dtype:
        fail("token dtype %s, attribute %s, expected %s" % (tokens.dtype, f.attrs["token_dtype"], want_dtype))
    src = f.attrs["sources"].split("\n")[:-1]
    for line, p in zip(src, inputs):
        sha, size, path = line.split("  ", 2)
        with open(p, "rb") as g:
            raw = g.read()
        if sha != hashlib.sha256(raw).hexdigest() or int(size) != len(raw) or path != p:
            fail("sources attribute line %r does not match %s" % (line, p))
    # Per-file document offsets: documents of file k are [sdo[k], sdo[k+1]).
    sdo = f["source_doc_offsets"][:]
    pos, k_docs = 0, []
    for n in per_file:
        k_docs.append(sum(1 for x in ids[pos:pos + n] if x))
        pos += n
    if sdo.tolist() != np.concatenate([[0], np.cumsum(k_docs)]).tolist():
        fail("source_doc_offsets %s, expected cumulative %s" % (sdo.tolist(), k_docs))
    for key in ("dapt_config", "tokenizer_identity", "tokenizer_checksum"):
        if not f.attrs[key]:
            fail("attribute %s empty" % key)
    if len(f.attrs["tokenizer_checksum"]) != 64:
        fail("tokenizer_checksum is not a sha256")
    print("ok: %d documents, %d tokens agree with dapt tokenize" % (len(kept), len(tokens)))


def cmd_same_data(a, b):
    fa, fb = h5py.File(a, "r"), h5py.File(b, "r")
    for name in ("tokens", "doc_offsets", "source_doc_offsets"):
        if not np.array_equal(fa[name][:], fb[name][:]) or fa[name].dtype != fb[name].dtype:
            fail("%s differs between %s and %s" % (name, a, b))
    print("ok: same datasets")


def cmd_task(h5, ids_dir, splits):
    f = h5py.File(h5, "r")
    rows = {}
    for p in splits:
        name = os.path.basename(p).split(".")[0]
        with open(p, encoding="utf-8") as g:
            rows[name] = [line.rstrip("\n").split("\t") for line in g if line.strip("\n")]
    names = sorted({r[-1] for rs in rows.values() for r in rs}, key=lambda s: s.encode("utf-8"))
    got_names = [x.decode("utf-8") for x in f["label_names"][:]]
    if got_names != names:
        fail("label_names %s, expected sorted %s" % (got_names, names))
    if f.attrs["splits"].split("\n") != list(rows):
        fail("splits attribute %r" % f.attrs["splits"])
    for name, rs in rows.items():
        g = f[name]
        labels = g["labels"][:].tolist()
        if labels != [names.index(r[-1]) for r in rs]:
            fail("%s: labels differ" % name)
        counts = [sum(1 for r in rs if r[-1] == n) for n in names]
        if g["label_counts"][:].tolist() != counts:
            fail("%s: label_counts %s, expected %s" % (name, g["label_counts"][:].tolist(), counts))
        ids = read_ids(os.path.join(ids_dir, name + ".ids"))
        offs, toks = g["offsets"][:], g["input_ids"][:]
        if len(ids) != len(rs) or len(offs) != len(rs) + 1:
            fail("%s: %d examples, %d offsets, %d id lines" % (name, len(rs), len(offs), len(ids)))
        for i, want in enumerate(ids):
            if toks[offs[i]:offs[i + 1]].tolist() != want:
                fail("%s example %d: input_ids differ from dapt tokenize" % (name, i))
        if "type_ids" in g and len(g["type_ids"]) != len(toks):
            fail("%s: type_ids length" % name)
    print("ok: %d splits, %d labels agree with the TSV and dapt tokenize" % (len(rows), len(names)))


def cmd_jsonl(tsv, out, pair=False):
    with open(tsv, encoding="utf-8") as f, open(out, "w", encoding="utf-8") as g:
        for line in f:
            text, label = line.rstrip("\n").split("\t")
            obj = {"text": text, "label": label}
            if pair:
                obj["text_b"] = text[::-1]
            g.write(json.dumps(obj, ensure_ascii=False) + "\n")


def main(argv):
    cmd = argv[1]
    if cmd == "docs":
        cmd_docs(argv[2], argv[3], argv[4:])
    elif cmd == "corpus":
        cmd_corpus(argv[2], argv[3], argv[4], argv[5:])
    elif cmd == "same-data":
        cmd_same_data(argv[2], argv[3])
    elif cmd == "task":
        cmd_task(argv[2], argv[3], argv[4:])
    elif cmd == "jsonl":
        cmd_jsonl(argv[2], argv[3], len(argv) > 4 and argv[4] == "pair")
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
