#!/usr/bin/env python3
"""Converts shot corpora to higher frame rates by repeating frames (issue #18, sixth round).

Footage made at one rate and delivered at another by repeating frames is common: 25 fps
material on a 50 or 60 fps timeline, 24 fps film as 30 fps video without fields, a phone
clip re-exported at 60. Every repeated frame is a frame change of zero, which halves the
adaptive baseline of a detector that compares a change with its neighbours.

For every clip of each corpus given (a folder with ground_truth.json, as
scripts/make_shot_corpus.py writes them) this writes a copy through FFmpeg's `fps` filter
(which repeats frames to reach the new rate) and the ground truth moved with it: a cut at
source frame c becomes the first output frame at or after c's time, a gradual span runs
to the last output frame showing its last frame. The first corpus given goes to 60 fps;
the others to 30 fps when their clips run under 30 fps, else 60.

Usage: scripts/make_repeat_corpus.py OUT CORPUS [CORPUS ...]
  e.g. scripts/make_repeat_corpus.py out/shot_corpus/R out/shot_corpus/A out/shot_corpus/A2
Needs ffmpeg on PATH. The media is not committed.
"""
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    docs, jobs = {}, []
    for n, corpus in enumerate(map(Path, sys.argv[2:])):
        half = corpus.name
        gt = json.load(open(corpus / "ground_truth.json"))
        for name, v in gt["videos"].items():
            f = v["fps"]
            rate = 60 if n == 0 or f >= 30 else 30
            first = lambda c: math.ceil(c * rate / f)
            nv = dict(v, fps=float(rate), frames=math.floor(v["frames"] * rate / f),
                      repeated={"from": f, "to": rate})
            nv["cuts"] = [first(c) for c in v["cuts"]]
            nv["gradual"] = [{**g, "start": first(g["start"]),
                              "end": math.ceil((g["end"] + 1) * rate / f) - 1}
                             for g in v["gradual"]]
            docs[f"R{half}-{name}"] = nv
            jobs.append((corpus / name, out / f"R{half}-{name}", rate))

    def run(job):
        src, dst, rate = job
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-vf", f"fps={rate}",
                        "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", str(dst)],
                       check=True)

    with ThreadPoolExecutor(2) as ex:
        list(ex.map(run, jobs))
    doc = {"convention": "As ../shared/videos/ground_truth.json; made by "
                         "scripts/make_repeat_corpus.py from " + ", ".join(sys.argv[2:]),
           "videos": docs}
    (out / "ground_truth.json").write_text(json.dumps(doc, indent=1))
    print(f"{len(jobs)} clips written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
