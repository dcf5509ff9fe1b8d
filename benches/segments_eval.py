#!/usr/bin/env python3
"""Segment boundaries of `reelsmith segments` against known transitions, on footage the
defaults were not tuned on.

Builds multi-shot videos with exact ground truth, runs `reelsmith segments --no-model`
(the weight-free pixel embedder) on each and reports boundary precision and recall:

- a boundary (the start of every segment but the first) is correct when it lies within
  0.75 s of a transition (a cut, or anywhere on a dissolve's span);
- a transition is *findable* when both shots next to it last at least the minimum segment
  duration (2 s); recall counts the findable transitions with a boundary within 0.75 s.

Footage (two halves, from disjoint sources, so tuning on one says nothing of the other):
- pieces of the shared clips ($REELSMITH_SHARED/videos), cut from inside their shots
  (ground_truth.json), spliced with hard cuts and dissolves of 0.4-1.6 s;
- "photo shots": pans and zooms over the photographs shipped with scikit-image, some with
  camera flashes, fast whip pans and a dark occluder sweeping past the lens (events that
  are not transitions).
`tune` uses bikes, chaplin, goldeneye, issue-236 and five photos; `report` uses
big_buck_bunny_0_30, bigbuckbunny, issue-134-rotate and seven other photos. Seeds are fixed.
The same source shot never comes twice in a row (two pieces of one shot, or two pans over
one photograph, are one continuous scene, not two shots).

    python3 benches/segments_eval.py [--bin target/release/reelsmith] [--half tune|report|both]
        [--shared] [--variants] [--keep DIR]

`--shared` also scores the shared clips themselves against ground_truth.json; `--variants`
compares the full pipeline with the surveyor off (plain dynamic threshold) and the seams
alone (no shot detector) with and without the surveyor.
Needs: ffmpeg on PATH, numpy, opencv-python (cv2) and scikit-image.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

FPS = 25
W, H = 640, 360
TOL = 0.75
MIN_SHOT = 2.0

HALVES = {
    "tune": {
        "clips": ["bikes.mp4", "chaplin.mp4", "goldeneye-vfr-drop3.mp4", "issue-236-split-copy.mkv"],
        "photos": ["astronaut", "coffee", "rocket", "camera", "moon"],
        "seeds": [11, 12, 13, 14, 15, 16],
    },
    "report": {
        "clips": ["big_buck_bunny_0_30.webm", "bigbuckbunny.mp4", "issue-134-rotate.mp4"],
        "photos": ["chelsea", "hubble_deep_field", "immunohistochemistry", "retina",
                   "motorcycle_left", "coins", "colorwheel"],
        "seeds": [101, 102, 103, 104, 105, 106],
    },
}


def shared_dir():
    return os.path.join(os.environ.get("REELSMITH_SHARED", "../shared"), "videos")


def decode(path):
    """Every frame of `path` as RGB at W x H (letterboxed), with ffmpeg."""
    vf = f"scale={W}:{H}:force_original_aspect_ratio=decrease,pad={W}:{H}:(ow-iw)/2:(oh-ih)/2"
    cmd = ["ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough",
           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)


def clip_shots(name, gt):
    """Usable frame ranges inside the shots of a shared clip (no transition, no fade)."""
    v = gt["videos"][name]
    n = v["frames"]
    bounds = [0] + v["cuts"] + [n]
    bad = [(g["start"], g["end"]) for g in v["gradual"]] + [tuple(b) for b in v.get("black", [])]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        for s, e in bad:
            if s <= a + 2 <= e + 2:
                a = max(a, e + 3)
        a, b = a + 2, b - 2  # stay clear of the cut frames
        if b - a >= 12:
            out.append((a, b))
    return out


def photo(name):
    import skimage.data as d
    if name == "colorwheel":
        img = colorwheel()
    elif name == "motorcycle_left":
        img = d.stereo_motorcycle()[0]
    else:
        img = getattr(d, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (255 * (img - img.min()) / max(1e-9, float(img.max() - img.min()))).astype(np.uint8)
    return img


def colorwheel():
    y, x = np.mgrid[-300:300, -400:400].astype(np.float32)
    hue = (np.arctan2(y, x) / (2 * np.pi) + 0.5) * 179
    sat = np.clip(np.hypot(x, y) / 300 * 255, 0, 255)
    import cv2
    hsv = np.stack([hue, sat, np.full_like(hue, 230)], -1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def photo_shot(img, n, rng, event):
    """n frames panning/zooming over img; `event` adds a non-transition disturbance."""
    import cv2
    ih, iw = img.shape[:2]
    z0, z1 = rng.uniform(0.45, 0.9), rng.uniform(0.45, 0.9)
    cx0, cy0, cx1, cy1 = rng.uniform(0.3, 0.7, 4)
    frames = []
    for k in range(n):
        t = k / max(1, n - 1)
        z = z0 + (z1 - z0) * t
        cw = min(iw, ih * W / H) * z
        ch = cw * H / W
        cx = (cx0 + (cx1 - cx0) * t) * iw
        cy = (cy0 + (cy1 - cy0) * t) * ih
        x0 = int(np.clip(cx - cw / 2, 0, iw - cw))
        y0 = int(np.clip(cy - ch / 2, 0, ih - ch))
        crop = img[y0:y0 + int(ch), x0:x0 + int(cw)]
        frames.append(cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA))
    frames = np.stack(frames).astype(np.int16)
    if event and n > 40:
        at = rng.integers(10, n - 25)
        if event == "flash":
            frames[at:at + 2] = np.clip(frames[at:at + 2] * 2 + 120, 0, 255)
        elif event == "occluder":
            span = rng.integers(4, 10)
            for j in range(span):
                x = int(-W * 0.6 + (W * 1.6) * j / span)
                frames[at + j, :, max(0, x):max(0, x + int(W * 0.7))] //= 8
        elif event == "whip":
            span = 6
            for j in range(span):
                shift = int(W * 0.8 * np.sin(np.pi * j / span))
                frames[at + j] = cv2.blur(np.roll(frames[at + j], shift, axis=1).astype(np.uint8),
                                          (41, 1)).astype(np.int16)
    return np.clip(frames, 0, 255).astype(np.uint8)


def build(half, seed, gt, cache):
    """One spliced video of 8-12 shots; returns frames and the transitions (frame spans)."""
    cfg = HALVES[half]
    rng = np.random.default_rng(seed)
    n_shots = rng.integers(8, 13)
    shots, last = [], None
    while len(shots) < n_shots:
        if rng.random() < 0.5:
            name = cfg["clips"][rng.integers(len(cfg["clips"]))]
            if name not in cache:
                cache[name] = decode(os.path.join(shared_dir(), name))
            ranges = clip_shots(name, gt)
            a, b = ranges[rng.integers(len(ranges))]
            key = (name, a)
        else:
            name = cfg["photos"][rng.integers(len(cfg["photos"]))]
            key = name
        # Never the same source shot twice in a row: two pieces of one shot (or two pans
        # over one photograph) are one continuous scene, not two shots.
        if key == last:
            continue
        last = key
        if isinstance(key, tuple):
            length = int(min(b - a, rng.integers(int(1.0 * FPS), int(8 * FPS))))
            s = rng.integers(a, b - length + 1)
            shots.append(cache[name][s:s + length])
        else:
            if name not in cache:
                cache[name] = photo(name)
            n = int(rng.integers(int(1.5 * FPS), int(9 * FPS)))
            event = rng.choice(["", "", "flash", "occluder", "whip"])
            shots.append(photo_shot(cache[name], n, rng, event))
    out, transitions, lengths = [], [], []
    for i, s in enumerate(shots):
        if i > 0 and rng.random() < 0.3 and len(s) > 30 and len(out) > 30:
            d = int(rng.integers(int(0.4 * FPS), int(1.6 * FPS)))
            d = min(d, len(s) // 2, len(out) // 2)
            start = len(out) - d
            for j in range(d):
                t = (j + 1) / (d + 1)
                out[start + j] = ((1 - t) * out[start + j] + t * s[j]).astype(np.uint8)
            out.extend(s[d:])
            transitions.append((start, start + d - 1))
        else:
            if i > 0:
                transitions.append((len(out), len(out)))
            out.extend(s)
        lengths.append(len(out))
    return np.stack(out), transitions


def encode(frames, path):
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{W}x{H}",
           "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "20",
           "-pix_fmt", "yuv420p", path]
    subprocess.run(cmd, input=frames.tobytes(), check=True)


def score(boundaries, transitions, n_frames):
    """Precision, recall (findable), counts. Times in seconds, spans in frames."""
    spans = [(a / FPS, b / FPS) for a, b in transitions]
    near = lambda t, s: s[0] - TOL <= t <= s[1] + TOL
    correct = sum(any(near(t, s) for s in spans) for t in boundaries)
    edges = [0.0] + [((a + b) / 2) / FPS for a, b in transitions] + [n_frames / FPS]
    findable = [s for i, s in enumerate(spans)
                if edges[i + 1] - edges[i] >= MIN_SHOT and edges[i + 2] - edges[i + 1] >= MIN_SHOT]
    found = sum(any(near(t, s) for t in boundaries) for s in findable)
    return correct, len(boundaries), found, len(findable)


def run_segments(binary, video, flags, out):
    cmd = [binary, "-q", "segments", video, "-o", out, "--no-clips", "--no-pictures", "--no-model",
           "--overwrite"] + flags
    subprocess.run(cmd, check=True)
    r = json.load(open(os.path.join(out, "segments.json")))
    return [s["start"] for s in r["segments"][1:]]


VARIANTS = {
    "default (shots + seams, surveyor on)": [],
    "shots + seams, plain dynamic threshold (surveyor off)": ["--surveyor", "off"],
    "seams only, surveyor on": ["--no-shots"],
    "seams only, plain dynamic threshold": ["--no-shots", "--surveyor", "off"],
}


def report(label, rows):
    c = sum(r[0] for r in rows)
    b = sum(r[1] for r in rows)
    f = sum(r[2] for r in rows)
    n = sum(r[3] for r in rows)
    p = c / b if b else 1.0
    r = f / n if n else 1.0
    print(f"  {label:55s} precision {p:.3f} ({c}/{b})  recall {r:.3f} ({f}/{n})")
    return p, r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/reelsmith")
    ap.add_argument("--half", default="both", choices=["tune", "report", "both"])
    ap.add_argument("--shared", action="store_true")
    ap.add_argument("--variants", action="store_true")
    ap.add_argument("--keep", help="keep the built videos here")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args()
    gt = json.load(open(os.path.join(shared_dir(), "ground_truth.json")))
    work = a.keep or tempfile.mkdtemp(prefix="segeval-")
    os.makedirs(work, exist_ok=True)
    variants = VARIANTS if a.variants else {k: v for k, v in list(VARIANTS.items())[:1]}
    halves = ["tune", "report"] if a.half == "both" else [a.half]
    cache = {}
    for half in halves:
        print(f"{half} half ({len(HALVES[half]['seeds'])} videos):")
        videos = []
        for seed in HALVES[half]["seeds"]:
            path = os.path.join(work, f"{half}_{seed}.mp4")
            meta = path + ".json"
            if not (os.path.exists(path) and os.path.exists(meta)):
                frames, trans = build(half, seed, gt, cache)
                encode(frames, path)
                json.dump({"frames": len(frames), "transitions": trans}, open(meta, "w"))
            m = json.load(open(meta))
            videos.append((path, m["frames"], [tuple(t) for t in m["transitions"]]))
        for label, flags in variants.items():
            rows = []
            for path, n, trans in videos:
                b = run_segments(a.bin, path, flags, os.path.join(work, "out"))
                rows.append(score(b, trans, n))
                if a.verbose:
                    print(f"    {os.path.basename(path)} {rows[-1]} boundaries {[round(x, 2) for x in b]}"
                          f" transitions {[(round(s / FPS, 2), round(e / FPS, 2)) for s, e in trans]}")
            report(label, rows)
    if a.shared:
        print("shared clips (ground_truth.json):")
        for label, flags in variants.items():
            rows = []
            for name, v in gt["videos"].items():
                path = os.path.join(shared_dir(), name)
                b = run_segments(a.bin, path, flags, os.path.join(work, "out"))
                fps = v["fps"]
                # Variable-rate clips list their cut times; elsewhere frame / fps is exact.
                cut_times = v.get("cut_times_s") or [c / fps for c in v["cuts"]]
                spans = sorted([(t, t) for t in cut_times]
                               + [(g["start"] / fps, g["end"] / fps) for g in v["gradual"]])
                near = lambda t, s: s[0] - TOL <= t <= s[1] + TOL
                correct = sum(any(near(t, s) for s in spans) for t in b)
                edges = [0.0] + [(s + e) / 2 for s, e in spans] + [v["duration_s"]]
                findable = [s for i, s in enumerate(spans)
                            if edges[i + 1] - edges[i] >= MIN_SHOT and edges[i + 2] - edges[i + 1] >= MIN_SHOT]
                found = sum(any(near(t, s) for t in b) for s in findable)
                rows.append((correct, len(b), found, len(findable)))
                if a.verbose:
                    print(f"    {name} {rows[-1]} boundaries {[round(x, 2) for x in b]}")
            report(label, rows)


if __name__ == "__main__":
    sys.exit(main())
