#!/usr/bin/env python3
"""Editing transitions other than cuts, dissolves and fades: pairs of real shots joined by
FFmpeg's `xfade` filter (wipes, slides, irises, fades through white...).

Shots are stretches of at least 2.2 s between the ground-truth transitions of the shared
clips (3 frames kept clear of each; the rotated and the VFR clip left out), scaled to
640x360 at 25 fps. Each output clip is one shot (up to 3 s), the transition, and another
shot from another clip; the transition lasts 0.4, 0.6, 1.0 or 1.4 s. Ground truth: one
gradual span from the transition's first to its last frame; `fadeblack` as a fade-out
and a fade-in (two spans, split at the middle), as the shot corpora label fades.

Output: OUT/<transition>-<n>.mp4 and OUT/ground_truth.json, readable by
benches/shots_compare.py and benches/shots_eval.py.

Usage: scripts/make_transition_corpus.py OUT [--kinds wipeleft,slideup,...] [--reps 4]
                                             [--seed 11] [--dark GAIN]
--dark scales the picture towards black (as scripts/make_dark_corpus.py does).
Needs: ffmpeg/ffprobe on PATH, $REELSMITH_SHARED (default ../shared).
"""
import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FPS = 25
KINDS = ("fade,fadeblack,fadewhite,dissolve,wipeleft,wiperight,wipeup,wipedown,slideleft,"
         "slideright,slideup,slidedown,circleopen,circleclose,radial,smoothup,diagtl,"
         "hlslice,pixelize,squeezeh,zoomin,horzopen")


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets,r_frame_rate", "-of", "json",
                          str(path)], capture_output=True, text=True, check=True).stdout
    s = json.loads(out)["streams"][0]
    num, den = s["r_frame_rate"].split("/")
    return int(s["nb_read_packets"]), int(num) / int(den)


def shots_of(videos: Path):
    """(file, start s, end s) of every stretch of at least 2.2 s without a transition."""
    gt = json.load(open(videos / "ground_truth.json"))["videos"]
    shots = []
    for name, v in gt.items():
        if name.startswith(("issue-134", "goldeneye")):
            continue
        n, fps = probe(videos / name)
        grads = v.get("gradual", [])
        bounds = sorted({0, n, *v["cuts"], *(g["start"] for g in grads),
                         *(g["end"] + 1 for g in grads)})
        for a, b in zip(bounds, bounds[1:]):
            a, b = a + 3, b - 3
            if (b - a) / fps >= 2.2:
                shots.append((name, a / fps, b / fps))
    return shots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--kinds", default=KINDS)
    ap.add_argument("--reps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--dark", type=float, default=None)
    a = ap.parse_args()
    videos = Path(os.environ.get("REELSMITH_SHARED", ROOT.parent / "shared")) / "videos"
    if not (videos / "ground_truth.json").is_file():
        print(f"{videos}: no ground_truth.json; set REELSMITH_SHARED", file=sys.stderr)
        return 2
    shots = shots_of(videos)
    rng = random.Random(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    dark = ""
    if a.dark is not None:
        g = a.dark
        dark = f",lutyuv=y=16+(val-16)*{g}:u=128+(val-128)*{g}:v=128+(val-128)*{g}"
    truth = {"made_by": " ".join(["scripts/make_transition_corpus.py"] + sys.argv[1:]),
             "videos": {}}
    for kind in a.kinds.split(","):
        for rep in range(a.reps):
            s1, s2 = rng.sample(shots, 2)
            while s1[0] == s2[0]:
                s1, s2 = rng.sample(shots, 2)
            dur = rng.choice([0.4, 0.6, 1.0, 1.4])
            l1, l2 = min(s1[2] - s1[1], 3.0), min(s2[2] - s2[1], 3.0)
            off = l1 - dur
            name = f"{kind}-{rep + 1}.mp4"

            def chain(j, s, length):
                return (f"[{j}:v]trim=start={s[1]:.3f}:duration={length:.3f},"
                        f"setpts=PTS-STARTPTS,scale=640:360,setsar=1,fps={FPS},"
                        f"format=yuv420p{dark}[v{j}]")

            graph = ";".join([chain(0, s1, l1), chain(1, s2, l2),
                              f"[v0][v1]xfade=transition={kind}:duration={dur}"
                              f":offset={off:.3f}[o]"])
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(videos / s1[0]),
                            "-i", str(videos / s2[0]), "-filter_complex", graph,
                            "-map", "[o]", "-an", "-c:v", "libx264", "-crf", "20",
                            "-preset", "fast", str(out / name)], check=True)
            n, _ = probe(out / name)
            first, last = round(off * FPS), round((off + dur) * FPS) - 1
            if kind == "fadeblack":
                mid = (first + last) // 2
                spans = [{"type": "fade_out", "start": first, "end": mid},
                         {"type": "fade_in", "start": mid + 1, "end": last}]
            else:
                spans = [{"type": kind, "start": first, "end": last}]
            truth["videos"][name] = {"kind": kind, "cuts": [], "gradual": spans, "frames": n,
                                     "sources": [list(s1), list(s2)]}
            print(f"  {name}: {n} frames, {kind} {first}-{last}", flush=True)
    json.dump(truth, open(out / "ground_truth.json", "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
