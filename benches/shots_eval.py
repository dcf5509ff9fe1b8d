#!/usr/bin/env python3
"""Generalisation check for shot detection on synthetic transitions built from real shots.

The real clips in $REELSMITH_SHARED/videos hold 13 hard cuts and a single fade, too few to
choose gradual-transition defaults from. This script cuts the clips into their real shots
(ground_truth.json), and splices random shots from different sources with hard cuts,
dissolves (8-40 frames, both shots moving), fades out/in through black and 1-3-frame
white flashes inside shots (must not cut), with the ground truth known by construction.
Frames are 64x36 rgb24 from ffmpeg (every frame). Each sequence is encoded losslessly (FFV1)
and goes through `reelsmith shots --json` (the release binary, as in
benches/shots_compare.py) and PySceneDetect detect-adaptive; both are scored like
benches/shots_compare.py.

Usage: benches/shots_eval.py [--seeds N] [--reelsmith PATH]
       (needs numpy; PySceneDetect optional; build with `cargo build --release -p reelsmith-cli`)
"""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shots_compare import ROOT, default_binary, match, prf, run_reelsmith  # noqa: E402

W, H = 64, 36


def load(videos, name):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-noautorotate", "-i", str(videos / name),
                          "-fps_mode", "passthrough", "-vf", f"scale={W}:{H}", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3).astype(np.float32)


def real_shots(videos, gt):
    out = []
    for name, v in gt.items():
        a = load(videos, name)
        bounds = [0] + v["cuts"] + [len(a)]
        skip = max([g["end"] + 1 for g in v.get("gradual", [])] + [0])
        # goldeneye-vfr-drop3 and issue-134-rotate show the same film: one source.
        src = "goldeneye" if v.get("codec") == "h264" and v["width"] == 1280 and v["height"] == 544 else name
        for s, e in zip(bounds[:-1], bounds[1:]):
            s = max(s, skip)
            if e - s >= 40:
                out.append((src, a[s:e]))
    return out


def make(shots, seed, nshots=14):
    rng = np.random.default_rng(seed)
    frames, cuts, grads, prev, last = [], [], [], None, 0
    for _ in range(nshots):
        src, sh = shots[rng.integers(len(shots))]
        while prev is not None and src == prev:
            src, sh = shots[rng.integers(len(shots))]
        L = int(rng.integers(30, min(len(sh), 120) + 1))
        st = int(rng.integers(0, len(sh) - L + 1))
        seg = sh[st:st + L].copy()
        if rng.random() < 0.3:
            p, fl, amt = int(rng.integers(5, L - 5)), int(rng.integers(1, 4)), rng.uniform(0.5, 0.9)
            seg[p:p + fl] = seg[p:p + fl] * (1 - amt) + 255 * amt
        if not frames:
            frames, prev = list(seg), src
            continue
        kind = rng.choice(["cut", "cut", "dissolve", "fade"])
        room = len(frames) - last - 10
        if kind != "cut" and room < 8:
            kind = "cut"
        if kind == "cut":
            cuts.append(len(frames)); last = len(frames); frames += list(seg)
        elif kind == "dissolve":
            T = min(int(rng.integers(8, 41)), L - 10, room)
            w = ((np.arange(T) + 1) / (T + 1))[:, None, None, None]
            base = len(frames) - T
            frames[-T:] = list(np.array(frames[-T:]) * (1 - w) + seg[:T] * w)
            frames += list(seg[T:]); grads.append((base, base + T - 1)); last = base + T
        else:
            T1, T2 = min(int(rng.integers(6, 25)), room), min(int(rng.integers(6, 25)), L - 10)
            nb = int(rng.integers(2, 8))
            w = (1 - (np.arange(T1) + 1) / (T1 + 1))[:, None, None, None]
            base = len(frames) - T1
            frames[-T1:] = list(np.array(frames[-T1:]) * w); grads.append((base, base + T1 - 1))
            frames += [np.zeros_like(seg[0])] * nb
            w2 = ((np.arange(T2) + 1) / (T2 + 1))[:, None, None, None]
            s2 = len(frames); seg = seg.copy(); seg[:T2] = seg[:T2] * w2; frames += list(seg)
            grads.append((s2, s2 + T2 - 1)); last = s2 + T2
        prev = src
    return np.clip(np.array(frames), 0, 255).round().astype(np.uint8), cuts, grads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--reelsmith")
    a = ap.parse_args()
    binary = a.reelsmith or default_binary()
    videos = Path(os.environ.get("REELSMITH_SHARED", str(ROOT.parent / "shared"))) / "videos"
    gt = json.load(open(videos / "ground_truth.json"))["videos"]
    shots = real_shots(videos, gt)
    try:
        from scenedetect import detect, AdaptiveDetector
    except ImportError:
        detect = None
    tot = {"reelsmith": [[0] * 3, [0] * 3], "pyscenedetect": [[0] * 3, [0] * 3]}
    for seed in range(a.seeds):
        fr, cuts, grads = make(shots, seed)
        preds = {}
        with tempfile.TemporaryDirectory() as td:
            v = Path(td) / "s.mkv"
            subprocess.run(["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                            "-s", f"{W}x{H}", "-r", str(a.fps), "-i", "-", "-c:v", "ffv1",
                            str(v)], input=fr.tobytes(), check=True)
            preds["reelsmith"] = run_reelsmith(v, binary)[0]
            if detect:
                preds["pyscenedetect"] = [(s[0].frame_num, None) for s in detect(str(v), AdaptiveDetector())[1:]]
        for tool, p in preds.items():
            c, al = match(p, cuts, grads)
            for k in range(3):
                tot[tool][0][k] += c[k]; tot[tool][1][k] += al[k]
    for tool, (c, al) in tot.items():
        if sum(al) == 0:
            continue
        print(f"SYNTHETIC {tool:14s} hard cuts P/R/F {prf(c)[0]:.3f}/{prf(c)[1]:.3f}/{prf(c)[2]:.3f} "
              f"(tp/fp/fn {c})  all transitions P/R/F {prf(al)[0]:.3f}/{prf(al)[1]:.3f}/{prf(al)[2]:.3f} (tp/fp/fn {al})")


if __name__ == "__main__":
    sys.exit(main())
