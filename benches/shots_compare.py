#!/usr/bin/env python3
"""Shot detection accuracy and speed: reelsmith vs PySceneDetect, same files, same run.

Usage: benches/shots_compare.py [VIDEOS_DIR] [--reelsmith PATH] [--no-pyscenedetect]
                                [--repeat N]
       benches/shots_compare.py --speed-only VIDEO [VIDEO...] [--repeat N]

--speed-only times both tools on any videos (no ground truth, no accuracy), e.g. a minute of
real footage made by looping a shared clip with `ffmpeg -stream_loop 11 -i
bigbuckbunny.mp4 -c copy loop60.mp4`.

Build first: `cargo build --release -p reelsmith-cli`. Run with a Python that has
PySceneDetect (pip install scenedetect opencv-python-headless), e.g. /work/venv/bin/python.

VIDEOS_DIR defaults to $REELSMITH_SHARED/videos (or ../shared/videos) and must hold
ground_truth.json. reelsmith runs as `reelsmith shots VIDEO --json` (the release binary in
$CARGO_TARGET_DIR or target/, or --reelsmith), timed as a whole process, start-up included.
PySceneDetect runs `detect-adaptive` defaults through its Python API, timed around
`detect()` (interpreter start-up and imports excluded). reelsmith's main time is the one the
command reports (opening the file to the result), the same span; its whole-process time
(start-up and loading FFmpeg's ~200 shared libraries included) is printed too. Both tools run on each file in turn,
alternating, so both see the same machine load; with --repeat N every file is run N times
per tool and the fastest time of each is kept (the accuracy is the same every time).

Scoring at +-2 frames, one-to-one greedy matching in frame order:
- all transitions: ground truth = cuts + gradual spans; a prediction matches a cut when its
  frame is within 2 of it, a gradual span [s, e] when its frame or its span touches
  [s - 2, e + 2];
- hard cuts: ground truth = cuts; predictions that matched a gradual span are left out
  (they are right, just not hard cuts); the rest are scored against the cuts. A detector's
  own cut/gradual label is not used, so tools without labels are scored the same way.
"""
import argparse, json, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOL = 2


def default_binary():
    """The release `reelsmith` binary under $CARGO_TARGET_DIR or target/."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")))
    binary = target / "release" / "reelsmith"
    if not binary.exists():
        sys.exit(f"{binary} not found: run `cargo build --release -p reelsmith-cli` or pass --reelsmith")
    return str(binary)


def run_reelsmith(video, binary):
    """`reelsmith shots VIDEO --json`: predictions, wall time of the whole process (start-up
    and dynamic loading of FFmpeg's libraries included) and the in-process time the command
    reports on stderr (from opening the file to the detection; what PySceneDetect's time
    covers too)."""
    t0 = time.perf_counter()
    p = subprocess.run([binary, "shots", str(video), "--json"], check=True,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    m = re.search(r"(\d+) frames in ([\d.]+)s", p.stderr)
    inproc = float(m.group(2)) if m else dt
    d = json.loads(p.stdout)
    return [(c["frame"], tuple(c["span"]) if c.get("span") else None) for c in d["cuts"]], inproc, dt


def run_pyscenedetect(video):
    from scenedetect import detect, AdaptiveDetector
    t0 = time.perf_counter()
    scenes = detect(str(video), AdaptiveDetector())
    dt = time.perf_counter() - t0
    return [(s[0].frame_num, None) for s in scenes[1:]], dt, dt


def match(preds, cuts, grads):
    gts = [("c", c, c) for c in cuts] + [("g", s, e) for s, e in grads]
    used, kinds = set(), {}
    for pi, (f, span) in enumerate(sorted(preds, key=lambda p: p[0])):
        for gi, (k, s, e) in enumerate(gts):
            if gi in used:
                continue
            if s - TOL <= f <= e + TOL or (span and span[0] <= e + TOL and span[1] >= s - TOL):
                used.add(gi); kinds[pi] = k; break
    tp_all = len(used)
    all_ = (tp_all, len(preds) - tp_all, len(gts) - tp_all)
    tp_c = sum(1 for k in kinds.values() if k == "c")
    n_c = sum(1 for pi in range(len(preds)) if kinds.get(pi) != "g")
    return (tp_c, n_c - tp_c, len(cuts) - tp_c), all_


def prf(t):
    tp, fp, fn = t
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def main():
    ap = argparse.ArgumentParser()
    shared = os.environ.get("REELSMITH_SHARED", str(ROOT.parent / "shared"))
    ap.add_argument("videos", nargs="?", default=str(Path(shared) / "videos"))
    ap.add_argument("--reelsmith")
    ap.add_argument("--no-pyscenedetect", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--speed-only", nargs="+", metavar="VIDEO")
    a = ap.parse_args()
    if a.speed_only:
        return speed_only(a.speed_only, a.reelsmith or default_binary(), max(1, a.repeat))
    gt = json.load(open(Path(a.videos) / "ground_truth.json"))["videos"]
    binary = a.reelsmith or default_binary()
    tools = ["reelsmith"] + ([] if a.no_pyscenedetect else ["pyscenedetect"])
    tot = {t: [[0, 0, 0], [0, 0, 0], 0, 0.0, 0.0] for t in tools}
    print(f"reelsmith: {binary}")
    for name, v in gt.items():
        video = Path(a.videos) / name
        grads = [(g["start"], g["end"]) for g in v.get("gradual", [])]
        runs = {t: [] for t in tools}
        for _ in range(max(1, a.repeat)):
            for tool in tools:
                runs[tool].append(run_reelsmith(video, binary) if tool == "reelsmith"
                                  else run_pyscenedetect(video))
        for tool in tools:
            preds = runs[tool][0][0]
            dt = min(r[1] for r in runs[tool])
            wall = min(r[2] for r in runs[tool])
            c, al = match(preds, v["cuts"], grads)
            T = tot[tool]
            for k in range(3):
                T[0][k] += c[k]; T[1][k] += al[k]
            T[2] += v["frames"]; T[3] += dt; T[4] += wall
            print(f"{name:28s} {tool:14s} cuts P/R/F {prf(c)[0]:.3f}/{prf(c)[1]:.3f}/{prf(c)[2]:.3f}"
                  f"  all P/R/F {prf(al)[0]:.3f}/{prf(al)[1]:.3f}/{prf(al)[2]:.3f}"
                  f"  {v['frames'] / dt:7.0f} fps  pred={[p[0] for p in preds]}")
    print()
    for tool, (c, al, frames, dt, wall) in tot.items():
        print(f"OVERALL {tool:14s} hard cuts P/R/F {prf(c)[0]:.3f}/{prf(c)[1]:.3f}/{prf(c)[2]:.3f} "
              f"(tp/fp/fn {c})  all transitions P/R/F {prf(al)[0]:.3f}/{prf(al)[1]:.3f}/{prf(al)[2]:.3f} "
              f"(tp/fp/fn {al})  {frames / dt:.0f} frames/s ({frames} frames, {dt:.2f} s)")
    if len(tot) == 2:
        r, p = tot["reelsmith"], tot["pyscenedetect"]
        print(f"SPEED in-process: reelsmith {r[2] / r[3]:.0f} frames/s, PySceneDetect "
              f"{p[2] / p[3]:.0f} frames/s: ratio {(r[2] / r[3]) / (p[2] / p[3]):.2f}x")
        print(f"SPEED reelsmith as a whole process (start-up included, {r[4]:.2f} s): "
              f"{r[2] / r[4]:.0f} frames/s: ratio {(r[2] / r[4]) / (p[2] / p[3]):.2f}x")


def speed_only(videos, binary, repeat):
    """Frames/s of both tools on each file, fastest of `repeat` alternating runs."""
    for video in videos:
        ours, theirs, frames = [], [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            p = subprocess.run([binary, "shots", video], check=True, capture_output=True, text=True)
            m = re.search(r"(\d+) frames in ([\d.]+)s", p.stderr)
            frames = int(m.group(1))
            ours.append(float(m.group(2)) if m else time.perf_counter() - t0)
            theirs.append(run_pyscenedetect(video)[1])
        r, q = min(ours), min(theirs)
        print(f"{os.path.basename(video)}: {frames} frames; reelsmith {frames / r:.0f} frames/s "
              f"({r:.2f} s), PySceneDetect {frames / q:.0f} frames/s ({q:.2f} s): ratio {q / r:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
