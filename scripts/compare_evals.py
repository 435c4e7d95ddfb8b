#!/usr/bin/env python3
"""Paired comparison of `surgeon eval --json` reports on the same prompts and noise (standard library only).

    scripts/compare_evals.py NAME=report[,report...] NAME=report[,report...] ...

Each NAME is one model (or sampling setting); its reports are concatenated in the order given, so every NAME must
list reports of the same eval seeds in the same order (checked: the prompts must agree sample by sample). Prints
per NAME the mean score with two standard errors, the metrics, one- and two-object scores, how many videos show
more components than prompted objects in most frames, and how many one-object linear motions went the prompted
way; then each NAME's paired difference against the first NAME (mean +- two standard errors of the per-prompt
differences, the honest error bar when the prompt sets are shared).
"""
import json
import math
import re
import sys

LINEAR = re.compile(r"moving (left|right|up|down)")


def mean_2se(xs):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, 2 * math.sqrt(var / n)


def load(spec):
    name, sep, files = spec.partition("=")
    if not sep or not name or not files:
        sys.exit(f"error: '{spec}' is not NAME=report[,report...]")
    samples, metrics = [], {}
    for f in files.split(","):
        try:
            d = json.load(open(f))
        except (OSError, ValueError) as e:
            sys.exit(f"error: cannot read report '{f}': {e}")
        if "samples" not in d:
            sys.exit(f"error: '{f}' has no per-sample list (is it a `surgeon eval --json` report?)")
        for k, v in d["metrics"].items():
            metrics.setdefault(k, []).append((v, len(d["samples"])))
        samples += d["samples"]
    metrics = {k: sum(v * n for v, n in vs) / sum(n for _, n in vs) for k, vs in metrics.items()}
    return name, samples, metrics


def summary(samples):
    one, two, extra = [], [], [0, 0]
    linear_ok = linear_n = 0
    for s in samples:
        k = 2 if " and a " in s["prompt"] else 1
        (one if k == 1 else two).append(s["score"])
        comps = s.get("details", {}).get("components_per_frame", [])
        if comps and sum(c > k for c in comps) * 2 > len(comps):
            extra[k - 1] += 1
        want = LINEAR.findall(s["prompt"])
        objs = s.get("details", {}).get("objects", [])
        if k == 1 and len(want) == 1 and objs:
            linear_n += 1
            linear_ok += objs[0].get("motion") == want[0]
    return one, two, extra, linear_ok, linear_n


def main(argv):
    if len(argv) < 1 or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    runs = [load(a) for a in argv]
    base_name, base, _ = runs[0]
    for name, samples, _ in runs[1:]:
        if [s["prompt"] for s in samples] != [s["prompt"] for s in base]:
            sys.exit(f"error: {name}'s prompts differ from {base_name}'s: list reports of the same eval seeds in the same order")
    for name, samples, metrics in runs:
        m, e = mean_2se([s["score"] for s in samples])
        one, two, extra, ok, n = summary(samples)
        print(f"{name}: {len(samples)} prompts, score {m:.4f} +- {e:.4f}  "
              + " ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items())))
        print(f"  one object {sum(one) / max(len(one), 1):.3f} (n={len(one)}, extra components {extra[0]}), "
              f"two objects {sum(two) / max(len(two), 1):.3f} (n={len(two)}, extra components {extra[1]}), "
              f"one-object linear motions the prompted way {ok} of {n}")
    for name, samples, _ in runs[1:]:
        m, e = mean_2se([a["score"] - b["score"] for a, b in zip(samples, base)])
        print(f"{name} - {base_name}: {m:+.4f} +- {e:.4f} (paired, {len(samples)} prompts)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
