#!/usr/bin/env python3
"""A/B timing of two `reelsmith` builds on shot detection, alternating file by file.

Runs `reelsmith shots FILE --json` with binary A, then B (then A, B on the next file, and
so on, `--rounds` times over every corpus), so both see the same machine load. Prints, per
binary: CPU seconds (user + sys of the whole process, start-up included, from the
children's rusage), process wall seconds, the time the command reports (opening the file
to the result), frames per CPU-second, and B's ratios to A. It also compares the
transitions each binary reports on every file and lists the files where they differ (a
faster decode must not change the detector's input materially; score them with
benches/shots_eval.py).

Usage: benches/shots_ab.py BINARY_A BINARY_B [CORPUS_OR_VIDEO ...] [--rounds N]
A corpus is a folder with a ground_truth.json (its videos are used) or a folder of
videos; a file is used as it is. Default: $REELSMITH_SHARED/videos.
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from shots_eval import timed_shots  # noqa: E402

VIDEO_EXT = {".mp4", ".mkv", ".webm", ".mov", ".avi"}


def videos(items):
    out = []
    for item in items:
        p = Path(item)
        gt = p / "ground_truth.json"
        if p.is_file():
            out.append(p)
        elif gt.exists():
            out += [p / name for name in json.load(open(gt))["videos"]]
        elif p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_EXT)
        else:
            sys.exit(f"{p}: not a video, a corpus folder or a folder of videos")
    return out


def run(binary, video):
    d, reported, cpu, wall = timed_shots(binary, video)
    cuts = [(c["frame"], c.get("kind"), tuple(c["span"]) if c.get("span") else None)
            for c in d["cuts"]]
    return {"cpu": cpu, "wall": wall, "reported": reported, "frames": d["frames"], "cuts": cuts}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("inputs", nargs="*")
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    inputs = args.inputs or [Path(os.environ.get("REELSMITH_SHARED", "../shared")) / "videos"]
    files = videos(inputs)
    tot = {k: {"cpu": 0.0, "wall": 0.0, "reported": 0.0, "frames": 0} for k in "AB"}
    differ = {}
    for rnd in range(args.rounds):
        for i, f in enumerate(files):
            # Alternate which binary goes first, so neither always runs on a warm cache.
            order = [("A", args.a), ("B", args.b)]
            if (i + rnd) % 2:
                order.reverse()
            res = {}
            for key, binary in order:
                res[key] = run(binary, f)
                for k in ("cpu", "wall", "reported", "frames"):
                    tot[key][k] += res[key][k]
            if res["A"]["cuts"] != res["B"]["cuts"] or res["A"]["frames"] != res["B"]["frames"]:
                differ[f] = ([c[0] for c in res["A"]["cuts"]], [c[0] for c in res["B"]["cuts"]])
    print(f"{len(files)} files x {args.rounds} rounds, {tot['A']['frames']} frames per binary")
    for key, binary in (("A", args.a), ("B", args.b)):
        t = tot[key]
        print(f"{key} {binary}: CPU {t['cpu']:.2f}s ({t['frames'] / t['cpu']:.0f} frames/CPU-s), "
              f"wall {t['wall']:.2f}s, reported {t['reported']:.2f}s")
    a, b = tot["A"], tot["B"]
    print(f"B/A: CPU {b['cpu'] / a['cpu']:.3f}, wall {b['wall'] / a['wall']:.3f}, "
          f"reported {b['reported'] / a['reported']:.3f}")
    if differ:
        print(f"transitions differ on {len(differ)} files:")
        for f, (ca, cb) in differ.items():
            print(f"  {f}: A {ca}  B {cb}")
    else:
        print("transitions identical on every file")


if __name__ == "__main__":
    main()
