#!/usr/bin/env python3
"""Night scenes inside bright videos: three spliced sets of the shot corpus joined end to
end, the middle one darkened (as scripts/make_dark_corpus.py does), for the per-shot
exposure gain of shot detection (docs/shots.md, eighth round).

Every output joins three 25 fps spliced sets (scaled to 640x360): bright, dark (gain
0.2-0.3), bright. Ground truth: each set's cuts and gradual spans moved by its offset,
plus a cut at each junction.

Usage: scripts/make_night_scene_corpus.py OUT [--corpus out/shot_corpus]
Needs: ffmpeg on PATH and the halves A-E and H of scripts/make_shot_corpus.py.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (name, [(half, spliced set, gain)]): the middle set is the night scene.
MIXES = [
    ("night-1", [("A", "A-spliced-2.mp4", 1), ("C", "C-spliced-1.mp4", 0.25),
                 ("B", "B-spliced-1.mp4", 1)]),
    ("night-2", [("C", "C-spliced-2.mp4", 1), ("D", "D-spliced-2.mp4", 0.2),
                 ("E", "E-spliced-3.mp4", 1)]),
    ("night-3", [("H", "H-spliced-4.mp4", 1), ("A", "A-spliced-3.mp4", 0.3),
                 ("C", "C-spliced-3.mp4", 1)]),
    ("night-4", [("C", "C-spliced-4.mp4", 1), ("E", "E-spliced-3.mp4", 0.25),
                 ("B", "B-spliced-1.mp4", 1)]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--corpus", default=str(ROOT / "out" / "shot_corpus"))
    a = ap.parse_args()
    corpus, out = Path(a.corpus), Path(a.out)
    truth = {}
    for half in {h for _, parts in MIXES for h, _, _ in parts}:
        p = corpus / half / "ground_truth.json"
        if not p.is_file():
            print(f"{p} missing: build it with scripts/make_shot_corpus.py --halves {half}",
                  file=sys.stderr)
            return 2
        truth[half] = json.load(open(p))["videos"]
    out.mkdir(parents=True, exist_ok=True)
    videos = {}
    for name, parts in MIXES:
        args, chains, cuts, grads, off = [], [], [], [], 0
        for k, (half, clip, gain) in enumerate(parts):
            v = truth[half][clip]
            args += ["-i", str(corpus / half / clip)]
            lut = (f",lutyuv=y=16+(val-16)*{gain}:u=128+(val-128)*{gain}"
                   f":v=128+(val-128)*{gain}") if gain < 1 else ""
            chains.append(f"[{k}:v]scale=640:360,setsar=1,format=yuv420p{lut}[v{k}]")
            if off:
                cuts.append(off)
            cuts += [c + off for c in v["cuts"]]
            grads += [{"start": g["start"] + off, "end": g["end"] + off} for g in v["gradual"]]
            off += v["frames"]
        graph = (";".join(chains) + ";" + "".join(f"[v{k}]" for k in range(len(parts)))
                 + f"concat=n={len(parts)}:v=1:a=0[o]")
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, "-filter_complex", graph,
                        "-map", "[o]", "-an", "-c:v", "libx264", "-crf", "18", "-preset",
                        "fast", str(out / f"{name}.mp4")], check=True)
        videos[f"{name}.mp4"] = {"cuts": cuts, "gradual": grads, "frames": off,
                                 "parts": [list(p) for p in parts]}
        print(f"  {name}.mp4: {off} frames, {len(cuts)} cuts, {len(grads)} gradual", flush=True)
    json.dump({"made_by": "scripts/make_night_scene_corpus.py", "videos": videos},
              open(out / "ground_truth.json", "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
