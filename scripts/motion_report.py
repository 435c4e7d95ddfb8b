#!/usr/bin/env python3
"""Per-object motion diagnosis of a `surgeon eval --json` report: for each prompted motion of one-object prompts,
how often the detected motion is the prompted one, the reverse direction, another axis, or something else, and
(reports that carry each path's "start") whether the object starts on the side its prompted direction needs."""
import collections, json, re, sys

OPP = {"left": "right", "right": "left", "up": "down", "down": "up"}
AXIS = {"left": "h", "right": "h", "up": "v", "down": "v"}


def prompted_motions(prompt):
    out = []
    for m in re.finditer(r"(moving (left|right|up|down)|bouncing|staying still)", prompt):
        out.append(m.group(2) or ("bouncing" if m.group(1) == "bouncing" else "still"))
    return out


def main(path):
    d = json.load(open(path))
    tally = collections.defaultdict(collections.Counter)
    for s in d["samples"]:
        want = prompted_motions(s["prompt"])
        objs = s.get("details", {}).get("objects", [])
        if len(want) != 1 or len(objs) < 1:
            continue
        w, got = want[0], objs[0]["motion"]
        if w in OPP and "start" in objs[0]:  # reports from this version on: where the path starts
            x, y = objs[0]["start"]
            fits = {"left": x > 0.5, "right": x < 0.5, "up": y > 0.5, "down": y < 0.5}[w]
            tally[f"  {w:6s} starts"]["on the side it must" if fits else "on the wrong side"] += 1
        if w in OPP:
            kind = "right" if got == w else "reversed" if got == OPP[w] else "other axis" if got in AXIS and AXIS[got] != AXIS[w] else got
            tally["linear"][kind] += 1
            tally[f"  {w:6s}->"][got] += 1  # what a prompted direction came out as
        else:
            tally[w]["right" if got == w else got] += 1
    print(f"{path}: score {d['score']:.4f}, motion {d['metrics']['motion']:.4f}")
    for k, c in tally.items():
        print(f"  one-object {k:9s} n={sum(c.values()):3d}  " + ", ".join(f"{a} {b}" for a, b in c.most_common()))


for p in sys.argv[1:]:
    main(p)
