#!/usr/bin/python3
"""Turn the unpacked sources into dapt's corpora and labelled sets.

Called by data/fetch.sh, one subcommand per source.  Every output is written
under OUT.tmp and renamed when complete, so an interrupted run never leaves a
file that looks finished.  Output is deterministic: inputs are read in sorted
order and nothing depends on the clock or on hash randomisation.

Conventions (documented in data/README.md and docs/data.md):
  corpus files  UTF-8, one paragraph or sentence per line, documents
                separated by exactly one blank line (dapt prepare
                --doc-sep=blank).
  task files    TSV `text<TAB>label`, one example per line, no header; the
                text has tabs and newlines replaced by single spaces.

Splits by item: bucket(id) = first 8 bytes of sha256("dapt-split:" + id) as a
big-endian integer, mod 100.  Buckets 0-39 go to the post-training corpus,
40-79 to the task's train split, 80-89 to dev and 90-99 to test, so no task
example (train, dev or test) is in the corpus.
"""
import base64
import glob
import gzip
import hashlib
import os
import re
import sys
from collections import Counter, defaultdict

CORPUS_MAX = 40
TRAIN_MAX = 80
DEV_MAX = 90


def bucket(item_id):
    h = hashlib.sha256(("dapt-split:" + item_id).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") % 100


def part_of(item_id):
    b = bucket(item_id)
    if b < CORPUS_MAX:
        return "corpus"
    if b < TRAIN_MAX:
        return "train"
    if b < DEV_MAX:
        return "dev"
    return "test"


def squash(text):
    """One line: every run of whitespace (tabs, newlines, NBSP...) -> one space."""
    return " ".join(text.split())


class Outputs:
    """Several files written under .tmp names and renamed together."""

    def __init__(self, paths):
        self.paths = dict(paths)
        self.files = {}
        for key, path in self.paths.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.files[key] = open(path + ".tmp", "w", encoding="utf-8", newline="\n")

    def __getitem__(self, key):
        return self.files[key]

    def commit(self):
        for f in self.files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        for path in self.paths.values():
            os.replace(path + ".tmp", path)


def write_docs(f, docs):
    """docs: iterable of lists of lines; blank line between documents."""
    first = True
    n = 0
    for lines in docs:
        lines = [squash(l) for l in lines]
        lines = [l for l in lines if l]
        if not lines:
            continue
        if not first:
            f.write("\n")
        f.write("\n".join(lines) + "\n")
        first = False
        n += 1
    return n


def task_outputs(taskdir):
    return {s: os.path.join(taskdir, s + ".tsv") for s in ("train", "dev", "test")}


# --------------------------------------------------------------------- Brown
def brown(src, corpus_out, taskdir):
    """Brown: drop /TAG, latin-1 -> UTF-8, `` and '' -> ", one sentence per
    line.  Split by document id (ca01 ...): documents in the corpus bucket
    form the general corpus, the others give (sentence, genre) examples."""
    cats = {}
    with open(os.path.join(src, "cats.txt"), encoding="latin-1") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                cats[parts[0]] = parts[1]
    out = Outputs({"corpus": corpus_out, **task_outputs(taskdir)})
    docs = []
    for doc_id in sorted(cats):
        sents = []
        with open(os.path.join(src, doc_id), encoding="latin-1") as f:
            for line in f:
                words = []
                for tok in line.split():
                    word = tok.rsplit("/", 1)[0] if "/" in tok else tok
                    if word in ("``", "''"):
                        word = '"'
                    words.append(word)
                if words:
                    sents.append(" ".join(words))
        part = part_of(doc_id)
        if part == "corpus":
            docs.append(sents)
        else:
            for s in sents:
                out[part].write(squash(s) + "\t" + cats[doc_id] + "\n")
    write_docs(out["corpus"], docs)
    out.commit()


# ----------------------------------------------------------------------- SOTU
def sotu(src, corpus_out):
    """State of the Union: data/*.txt, one speech per document."""
    docs = []
    for path in sorted(glob.glob(os.path.join(src, "*.txt"))):
        with open(path, encoding="utf-8") as f:
            docs.append(f.read().splitlines())
    out = Outputs({"corpus": corpus_out})
    write_docs(out["corpus"], docs)
    out.commit()


# ------------------------------------------------------------------ Moby-Dick
def moby(src, corpus_out):
    """Moby-Dick: one chapter per document, in book order."""
    def order(path):
        name = os.path.basename(path)[:-4]
        fixed = {"etymology": -2, "extracts": -1, "epilogue": 10000}
        if name in fixed:
            return fixed[name]
        m = re.fullmatch(r"chapter_(\d+)", name)
        return int(m.group(1)) if m else None

    paths = [p for p in glob.glob(os.path.join(src, "*.txt")) if order(p) is not None]
    paths.sort(key=order)
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            docs.append(f.read().splitlines())
    out = Outputs({"corpus": corpus_out})
    write_docs(out["corpus"], docs)
    out.commit()


# ------------------------------------------------------------------------ KJV
def kjv(verses_path, corpus_out):
    """KJV from `bible -f`: `Ge1:1 text`; one verse per line, one chapter
    per document (verse references dropped)."""
    docs = []
    cur_key, cur = None, []
    with open(verses_path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"(\S+?)(\d+):(\d+) (.*)", line.rstrip("\n"))
            if not m:
                continue
            key = (m.group(1), m.group(2))
            if key != cur_key and cur:
                docs.append(cur)
                cur = []
            cur_key = key
            cur.append(m.group(4))
    if cur:
        docs.append(cur)
    out = Outputs({"corpus": corpus_out})
    write_docs(out["corpus"], docs)
    out.commit()


# --------------------------------------------------------------------- FOLDOC
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def dict_b64(s):
    n = 0
    for c in s:
        n = n * 64 + B64.index(c)
    return n


def foldoc(index_path, dict_path, corpus_out):
    """FOLDOC (dictd format): one entry per document, headword then one line
    per paragraph.  Aliases sharing an entry are kept once."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    seen = set()
    docs = []
    with open(index_path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3 or fields[0].startswith("00-database") or fields[0].startswith("00database"):
                continue
            off, ln = dict_b64(fields[1]), dict_b64(fields[2])
            if off in seen:
                continue
            seen.add(off)
            docs.append((off, data[off:off + ln].decode("utf-8", errors="strict")))
    docs.sort()
    out_docs = []
    for _, text in docs:
        lines = text.split("\n")
        head, paras, cur = lines[0], [], []
        for l in lines[1:]:
            if l.strip():
                cur.append(l.strip())
            elif cur:
                paras.append(" ".join(cur))
                cur = []
        if cur:
            paras.append(" ".join(cur))
        out_docs.append([head] + paras)
    out = Outputs({"corpus": corpus_out})
    write_docs(out["corpus"], out_docs)
    out.commit()


# ------------------------------------------------------------------ man pages
def manpages(rendered_dir, corpus_out):
    """Rendered man pages (one .txt per page, from `man -l | col -bx`):
    one page per document, lines stripped, blank lines dropped."""
    docs = []
    for path in sorted(glob.glob(os.path.join(rendered_dir, "**", "*.txt"), recursive=True)):
        with open(path, encoding="utf-8", errors="strict") as f:
            docs.append(f.read().splitlines())
    out = Outputs({"corpus": corpus_out})
    write_docs(out["corpus"], docs)
    out.commit()


# -------------------------------------------------------- Debian descriptions
def read_deb822(path):
    """Yields dicts of a Packages / Translation file; continuation lines are
    kept with their leading space so descriptions can be parsed."""
    opener = open
    with opener(path, encoding="utf-8", errors="strict") as f:
        rec, key = {}, None
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if rec:
                    yield rec
                rec, key = {}, None
            elif line[0] in " \t" and key:
                rec[key] += "\n" + line
            else:
                key, _, val = line.partition(":")
                rec[key] = val.strip()
        if rec:
            yield rec


def debian(packages_paths, translation_paths, corpus_out, taskdir, top_n=10):
    """Join Packages (Package, Section, Description-md5) with Translation-en
    (Description-md5, Description-en).  One item per unique description
    (its md5 is the item id); its section is that of the alphabetically first
    package carrying it, with any `component/` prefix removed.  Corpus bucket
    -> computing corpus (summary line, one line per paragraph); other buckets
    -> (summary + body, section) examples for the top-N sections, counted
    over all items."""
    desc = {}
    for p in translation_paths:
        for rec in read_deb822(p):
            md5 = rec.get("Description-md5")
            text = rec.get("Description-en")
            if md5 and text is not None:
                desc.setdefault(md5, text)
    section = {}
    for p in packages_paths:
        for rec in read_deb822(p):
            md5 = rec.get("Description-md5")
            name = rec.get("Package")
            sec = rec.get("Section", "")
            if not md5 or not name or md5 not in desc:
                continue
            sec = sec.rsplit("/", 1)[-1]
            prev = section.get(md5)
            if prev is None or name < prev[0]:
                section[md5] = (name, sec)
    counts = Counter(sec for _, sec in section.values())
    top = {s for s, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_n]}
    out = Outputs({"corpus": corpus_out, **task_outputs(taskdir)})
    docs = []
    for md5 in sorted(section):
        lines = desc[md5].split("\n")
        summary = lines[0].strip()
        paras, cur = [], []
        for l in lines[1:]:
            l = l[1:] if l.startswith(" ") else l
            if l.strip() == ".":
                if cur:
                    paras.append(" ".join(cur))
                cur = []
            else:
                cur.append(l.strip())
        if cur:
            paras.append(" ".join(cur))
        part = part_of(md5)
        if part == "corpus":
            docs.append([summary] + paras)
        elif section[md5][1] in top:
            text = squash(" ".join([summary] + paras))
            if text:
                out[part].write(text + "\t" + section[md5][1] + "\n")
    write_docs(out["corpus"], docs)
    out.commit()


# ------------------------------------------------------------------------- GO
def go(tsv_path, corpus_out, taskdir):
    """GO terms (ontology, go_id, term, definition): split by go_id; corpus
    documents are `term` then `definition`; task examples are
    (definition, ontology)."""
    rows = []
    with open(tsv_path, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4 or not fields[3].strip():
                continue
            rows.append(fields)
    rows.sort(key=lambda r: r[1])
    out = Outputs({"corpus": corpus_out, **task_outputs(taskdir)})
    docs = []
    for ont, go_id, term, definition in rows:
        part = part_of(go_id)
        if part == "corpus":
            docs.append([term, definition])
        else:
            out[part].write(squash(definition) + "\t" + ont + "\n")
    write_docs(out["corpus"], docs)
    out.commit()


# --------------------------------------------------------------------- sample
def read_docs(path):
    docs, cur = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                cur.append(line)
            elif cur:
                docs.append(cur)
                cur = []
    if cur:
        docs.append(cur)
    return docs


def take_docs(path, budget):
    """Every k-th document, k = file size // budget (so the picks spread over
    the whole file), each kept only if it still fits in `budget` bytes."""
    docs = read_docs(path)
    step = max(1, os.path.getsize(path) // budget)
    out, used = [], 0
    for i in range(0, len(docs), step):
        size = sum(len(l.encode("utf-8")) + 1 for l in docs[i]) + 1
        if used + size > budget:
            continue
        out.append(docs[i])
        used += size
    return out


def take_lines(path, n):
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    step = max(1, len(lines) // n)
    return lines[::step][:n]


SAMPLE_CORPORA = {
    "general": [("general/brown.txt", 90000), ("general/sotu.txt", 90000),
                ("general/kjv.txt", 70000), ("general/mobydick.txt", 50000)],
    "computing": [("computing/manpages.txt", 100000), ("computing/foldoc.txt", 100000),
                  ("computing/debian.txt", 100000)],
    "biomedical": [("biomedical/go.txt", 150000)],
}
SAMPLE_TASKS = {"brown_genre": 1, "debian_section": 1, "go_ontology": 1}
SAMPLE_SPLIT_N = {"train": 300, "dev": 100, "test": 100}


def sample(data_dir, sample_dir):
    """Cut data/sample/ from the built data (see data/README.md)."""
    paths = {}
    for name in SAMPLE_CORPORA:
        paths["corpus/" + name] = os.path.join(sample_dir, "corpus", name + ".txt")
    for task in SAMPLE_TASKS:
        for split in SAMPLE_SPLIT_N:
            paths[task + "/" + split] = os.path.join(sample_dir, "tasks", task, split + ".tsv")
    out = Outputs(paths)
    for name, sources in SAMPLE_CORPORA.items():
        docs = []
        for rel, budget in sources:
            docs += take_docs(os.path.join(data_dir, "corpus", rel), budget)
        write_docs(out["corpus/" + name], docs)
    for task in SAMPLE_TASKS:
        for split, n in SAMPLE_SPLIT_N.items():
            for line in take_lines(os.path.join(data_dir, "tasks", task, split + ".tsv"), n):
                out[task + "/" + split].write(line)
    out.commit()


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "brown":
        brown(*args)
    elif cmd == "sotu":
        sotu(*args)
    elif cmd == "moby":
        moby(*args)
    elif cmd == "kjv":
        kjv(*args)
    elif cmd == "foldoc":
        foldoc(*args)
    elif cmd == "manpages":
        manpages(*args)
    elif cmd == "debian":
        corpus_out, taskdir = args[0], args[1]
        pk = [a for a in args[2:] if "_Packages" in a]
        tr = [a for a in args[2:] if "Translation-en" in a]
        debian(pk, tr, corpus_out, taskdir)
    elif cmd == "go":
        go(*args)
    elif cmd == "sample":
        sample(*args)
    elif cmd == "bucket":
        for a in args:
            print(a, bucket(a), part_of(a))
    else:
        sys.exit("build.py: unknown subcommand " + cmd)


if __name__ == "__main__":
    main(sys.argv)
