#!/usr/bin/python3
"""The summary jobs/quickstart.sh prints: each figure of the run, in one
number format, with what it means at these toy sizes.

  tools/quickstart_summary.py OUT [--seconds S]
      OUT is the quickstart's output directory (general/, computing/,
      finetune/, general-loss-*.json, debian_section.h5).
  tools/quickstart_summary.py --selftest
      Builds small OUT directories that learn and that do not, and checks
      the verdicts; exit 0 on success.

Verdicts: a held-out loss "learns" when it ends more than 1% below its
step-0 value; post-training "forgets" when the general-corpus loss rises by
more than 1%; the end task "learns" when its test macro-F1 is more than 0.05
above the majority-class baseline (always predicting the training split's
most frequent class; per-class F1 averaged over the classes dapt eval
averages).
"""
import json
import os
import re
import sys
import tempfile

FMT = "{:.3f}"  # every number of the summary


def f(x):
    return FMT.format(x)


def read_jsonl(path):
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.endswith("\n")]


def held_out(path):
    """(first, last, steps) of eval_loss in a metrics.jsonl."""
    rows = read_jsonl(path)
    evals = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    if not evals:
        raise ValueError(f"{path}: no held-out loss")
    return evals[0][1], evals[-1][1], rows[-1]["step"]


def learning(first, last):
    return last < first * 0.99


def loss_line(name, path, corpus):
    first, last, steps = held_out(path)
    verdict = "learning" if learning(first, last) else "not learning (within 1% of step 0)"
    return f"{name} ({steps} steps): held-out MLM loss on the {corpus} corpus {f(last)} (from {f(first)} at step 0): {verdict}"


def terms_line(path):
    """The last step's objective and its terms: `loss` is their sum."""
    last = [r for r in read_jsonl(path) if r.get("loss") is not None][-1]
    terms = [k for k in last if k.endswith(("_loss", "_penalty")) and k != "eval_loss" and last[k] is not None]
    if not terms:
        return None
    parts = " + ".join(f"{k} {f(last[k])}" for k in terms)
    return f"  its training objective `loss` {f(last['loss'])} = {parts} (the total, not an MLM loss)"


def forgetting_line(before, after):
    d = after - before
    if d > 0.01 * before:
        verdict = f"higher by {f(d)}: forgetting"
    elif d < -0.01 * before:
        verdict = (f"lower by {f(-d)}: no forgetting shows, because the toy general model is still far from "
                   f"converged and any further MLM helps it (docs/results.md measures forgetting on a real one)")
    else:
        verdict = "unchanged within 1%: no forgetting"
    return f"forgetting: general-corpus held-out MLM loss {f(before)} before post-training, {f(after)} after: {verdict}"


def majority_baseline(train_counts, test_counts, classes_averaged):
    """(label index, accuracy, macro-F1) of always predicting the training
    split's most frequent class on the test split."""
    m = max(range(len(train_counts)), key=lambda i: (train_counts[i], -i))
    n = sum(test_counts)
    p = test_counts[m] / n  # precision of class m; its recall is 1
    f1 = 2 * p / (p + 1) if p > 0 else 0.0
    return m, p, f1 / classes_averaged


def task_line(test, train_counts, test_counts, labels, epochs, seconds_note):
    m, acc0, f10 = majority_baseline(train_counts, test_counts, test["classes_averaged"])
    if test["macro_f1"] > f10 + 0.05:
        verdict = "above the baseline: the model learns the task"
    else:
        verdict = f"at the baseline: the toy model does not learn this {len(labels)}-class task in {epochs} epochs{seconds_note}"
    return (f"end task (Debian section, {len(labels)} classes, test {test['n_examples']} examples): macro-F1 "
            f"{f(test['macro_f1'])}, accuracy {f(test['accuracy'])}; majority-class baseline (always '{labels[m]}'): "
            f"macro-F1 {f(f10)}, accuracy {f(acc0)}: {verdict}")


def importance_line(path):
    import h5py
    with h5py.File(path, "r") as h:
        sources = sorted(h["importance/head"])
        src = h["importance/head"][sources[0]]
        layers, heads = src["normalized"].shape
        norm = src.attrs.get("normalization", b"tanh_z")
    norm = norm.decode() if isinstance(norm, bytes) else str(norm)
    what = "|tanh(z)| of each head's importance standardised within its layer" if norm == "tanh_z" else f"{norm}-normalised"
    return (f"importance plot: head importance from {', '.join(sources)} and the soft mask, {what} "
            f"({layers} layers x {heads} heads; with 2 heads every value would be 0.609 whatever the raw importances)")


def summary(out, seconds=None):
    import h5py
    lines = [loss_line("general model, MLM from scratch", os.path.join(out, "general", "metrics.jsonl"), "general"),
             loss_line("DAS post-training", os.path.join(out, "computing", "metrics.jsonl"), "computing")]
    t = terms_line(os.path.join(out, "computing", "metrics.jsonl"))
    if t:
        lines.append(t)
    with open(os.path.join(out, "general-loss-general.json")) as a, open(os.path.join(out, "general-loss-computing.json")) as b:
        lines.append(forgetting_line(json.load(a)["mlm_loss"], json.load(b)["mlm_loss"]))
    with open(os.path.join(out, "finetune", "test.json")) as fh:
        test = json.load(fh)
    with h5py.File(os.path.join(out, "debian_section.h5"), "r") as h:
        train_counts = [int(c) for c in h["train/label_counts"][()]]
        test_counts = [int(c) for c in h["test/label_counts"][()]]
        labels = [x.decode() if isinstance(x, bytes) else str(x) for x in h["label_names"][()]]
    epochs = len(read_jsonl(os.path.join(out, "finetune", "finetune_metrics.jsonl")))
    lines.append(task_line(test, train_counts, test_counts, labels, epochs, ""))
    imp = os.path.join(out, "computing", "importance.h5")
    if os.path.exists(imp):
        lines.append(importance_line(imp))
    if seconds is not None:
        lines.append(f"time: {seconds:.0f} s for the whole pipeline")
    return "\n".join(lines)


def selftest():
    import h5py
    results = []  # (passed, what), printed at the end
    check = lambda cond, what: results.append((bool(cond), what))  # noqa: E731

    def make(d, general, computing, before, after, macro_f1, heads=4):
        for run, (first, last), extra in (("general", general, {}), ("computing", computing, {"mlm_loss": 7.0, "contrast_loss": 4.5})):
            os.makedirs(os.path.join(d, run))
            with open(os.path.join(d, run, "metrics.jsonl"), "w") as fh:
                fh.write(json.dumps({"step": 0, "loss": None, "eval_loss": first, **{k: None for k in extra}}) + "\n")
                fh.write(json.dumps({"step": 10, "loss": 11.5 if extra else last, "eval_loss": last, **extra}) + "\n")
        for name, v in (("general", before), ("computing", after)):
            with open(os.path.join(d, f"general-loss-{name}.json"), "w") as fh:
                json.dump({"mlm_loss": v}, fh)
        os.makedirs(os.path.join(d, "finetune"))
        with open(os.path.join(d, "finetune", "test.json"), "w") as fh:
            json.dump({"n_examples": 100, "macro_f1": macro_f1, "accuracy": 0.3, "classes_averaged": 4}, fh)
        with open(os.path.join(d, "finetune", "finetune_metrics.jsonl"), "w") as fh:
            fh.write('{"epoch":1}\n{"epoch":2}\n')
        with h5py.File(os.path.join(d, "debian_section.h5"), "w") as h:
            h["train/label_counts"] = [10, 40, 30, 20]
            h["test/label_counts"] = [25, 25, 25, 25]
            h["label_names"] = [b"a", b"b", b"c", b"d"]
        with h5py.File(os.path.join(d, "computing", "importance.h5"), "w") as h:
            h["importance/head/general/normalized"] = [[0.1] * heads] * 2
            h["importance/head/general"].attrs["normalization"] = "tanh_z"

    # Majority class 'b' (40 of 100 in train), 25 of 100 in test: precision 0.25, recall 1.
    m, acc, f1 = majority_baseline([10, 40, 30, 20], [25, 25, 25, 25], 4)
    check((m, acc) == (1, 0.25) and abs(f1 - 0.4 / 4) < 1e-12, f"majority baseline: class {m}, accuracy {acc}, macro-F1 {f1}")
    with tempfile.TemporaryDirectory(prefix="dapt-summary-") as d:
        make(os.path.join(d, "a"), (10.4, 6.1), (7.0, 6.5), 6.1, 6.5, 0.1)
        s = summary(os.path.join(d, "a"), 181)
        print(s)
        check("held-out MLM loss on the general corpus 6.100 (from 10.400 at step 0): learning" in s, "general: learning")
        check("`loss` 11.500 = mlm_loss 7.000 + contrast_loss 4.500 (the total, not an MLM loss)" in s, "loss shown as the sum of its terms")
        check("6.100 before post-training, 6.500 after: higher by 0.400: forgetting" in s, "forgetting when the general loss rises")
        check("macro-F1 0.100, accuracy 0.300; majority-class baseline (always 'b'): macro-F1 0.100, accuracy 0.250: at the baseline" in s,
              "macro-F1 at the majority baseline said plainly")
        check("from general and the soft mask" in s and "2 layers x 4 heads" in s and "time: 181 s" in s,
              "importance sources, shape and time stated")
        make(os.path.join(d, "b"), (10.4, 10.39), (7.0, 6.0), 6.5, 6.0, 0.5)
        s = summary(os.path.join(d, "b"))
        check("(from 10.400 at step 0): not learning" in s, "flat held-out loss: not learning")
        check("lower by 0.500: no forgetting shows" in s, "a general loss that goes down is explained")
        check("above the baseline: the model learns the task" in s, "macro-F1 above the baseline: learns")
        numbers = re.findall(r"\d+\.\d+", s)
        check(numbers and all(len(w.split(".")[1]) == 3 for w in numbers), f"one number format: {sorted(set(numbers))[:6]}")
    for passed, what in results:
        print(("ok   " if passed else "FAIL ") + what)
    failures = [what for passed, what in results if not passed]
    if failures:
        print(f"quickstart_summary.py selftest: {len(failures)} failure(s)", file=sys.stderr)
        return 1
    print("quickstart_summary.py selftest: all checks passed")
    return 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--seconds"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        print(summary(argv[1], float(argv[3]) if len(argv) == 4 else None))
    except (OSError, KeyError, ValueError) as e:
        print(f"quickstart_summary.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
