#!/usr/bin/env python3
"""Shot detection accuracy and speed: reelsmith vs PySceneDetect, same files, same run.

Usage: benches/shots_compare.py [VIDEOS_DIR] [--reelsmith PATH] [--no-pyscenedetect]

VIDEOS_DIR defaults to $REELSMITH_SHARED/videos (or ../shared/videos) and must hold
ground_truth.json. reelsmith runs as `reelsmith shots VIDEO --json` when the binary exists
(target/release/reelsmith, or --reelsmith); otherwise it falls back to the evaluation harness
`crates/segment/examples/shots_raw.rs` fed by `ffmpeg` (64x36 rgb24, every frame).
PySceneDetect runs `detect-adaptive` defaults through its Python API (pip install scenedetect
opencv-python-headless).

Scoring at +-2 frames, one-to-one greedy matching in frame order:
- all transitions: ground truth = cuts + gradual spans; a prediction matches a cut when its
  frame is within 2 of it, a gradual span [s, e] when its frame or its span touches
  [s - 2, e + 2];
- hard cuts: ground truth = cuts; predictions that matched a gradual span are left out
  (they are right, just not hard cuts); the rest are scored against the cuts. A detector's
  own cut/gradual label is not used, so tools without labels are scored the same way.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOL = 2


def run_reelsmith(video, fps, binary):
    t0 = time.perf_counter()
    if binary:
        out = subprocess.run([binary, "shots", str(video), "--json"], check=True,
                             capture_output=True, text=True).stdout
        d = json.loads(out)
        preds = [(c["frame"], tuple(c["span"]) if c.get("span") else None) for c in d["cuts"]]
    else:
        harness = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")) + "/release/examples/shots_raw"
        ff = subprocess.Popen(["ffmpeg", "-v", "error", "-noautorotate", "-i", str(video),
                               "-fps_mode", "passthrough", "-vf", "scale=64:36",
                               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], stdout=subprocess.PIPE)
        method = os.environ.get("SHOTS_RAW_METHOD", "shots")
        out = subprocess.run([harness, "64", "36", str(fps), method], stdin=ff.stdout, check=True,
                             capture_output=True, text=True).stdout
        ff.wait()
        d = json.loads(out)
        preds = [(t["frame"], tuple(t["span"]) if t.get("span") else None) for t in d["transitions"]]
    return preds, time.perf_counter() - t0


def run_pyscenedetect(video):
    from scenedetect import detect, AdaptiveDetector
    t0 = time.perf_counter()
    scenes = detect(str(video), AdaptiveDetector())
    dt = time.perf_counter() - t0
    return [(s[0].frame_num, None) for s in scenes[1:]], dt


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
    a = ap.parse_args()
    gt = json.load(open(Path(a.videos) / "ground_truth.json"))["videos"]
    binary = a.reelsmith or (str(ROOT / "target/release/reelsmith")
                             if (ROOT / "target/release/reelsmith").exists() else None)
    tools = ["reelsmith"] + ([] if a.no_pyscenedetect else ["pyscenedetect"])
    tot = {t: [[0, 0, 0], [0, 0, 0], 0, 0.0] for t in tools}
    print(f"reelsmith: {binary or 'shots_raw harness (ffmpeg 64x36)'}")
    for name, v in gt.items():
        video = Path(a.videos) / name
        grads = [(g["start"], g["end"]) for g in v.get("gradual", [])]
        for tool in tools:
            preds, dt = (run_reelsmith(video, v["fps"], binary) if tool == "reelsmith"
                         else run_pyscenedetect(video))
            c, al = match(preds, v["cuts"], grads)
            T = tot[tool]
            for k in range(3):
                T[0][k] += c[k]; T[1][k] += al[k]
            T[2] += v["frames"]; T[3] += dt
            print(f"{name:28s} {tool:14s} cuts P/R/F {prf(c)[0]:.3f}/{prf(c)[1]:.3f}/{prf(c)[2]:.3f}"
                  f"  all P/R/F {prf(al)[0]:.3f}/{prf(al)[1]:.3f}/{prf(al)[2]:.3f}"
                  f"  {v['frames'] / dt:7.0f} fps  pred={[p[0] for p in preds]}")
    print()
    for tool, (c, al, frames, dt) in tot.items():
        print(f"OVERALL {tool:14s} hard cuts P/R/F {prf(c)[0]:.3f}/{prf(c)[1]:.3f}/{prf(c)[2]:.3f} "
              f"(tp/fp/fn {c})  all transitions P/R/F {prf(al)[0]:.3f}/{prf(al)[1]:.3f}/{prf(al)[2]:.3f} "
              f"(tp/fp/fn {al})  {frames / dt:.0f} frames/s ({frames} frames, {dt:.2f} s)")


if __name__ == "__main__":
    sys.exit(main())
