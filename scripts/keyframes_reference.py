#!/usr/bin/env python3
"""Independent reference for `reelsmith keyframes --method quantile`.

ComfyUI's ExtractKeyframes node takes a batch of full-size frames, sums the absolute
differences of each frame to the one before, takes the `q`-quantile of those sums
(torch.quantile, linear interpolation) and keeps every frame whose sum exceeds it. This
script computes that rule in NumPy on frames decoded by the FFmpeg command line (not by
reelsmith's decoder): every decoded frame, as displayed (rotation applied), RGB 8-bit.

    python3 scripts/keyframes_reference.py [VIDEOS_DIR] [-q 0.85] [-o OUT.json]

VIDEOS_DIR defaults to $REELSMITH_SHARED/videos; the output (one entry per video: frame
count, threshold, keyframe indices) is the fixture
crates/reelsmith/tests/fixtures/keyframes_reference.json read by the facade's tests.
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np


def probe_size(path):
    """Display width and height (after rotation) from ffprobe."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height:stream_side_data=rotation:stream_tags=rotate",
         "-of", "json", path],
        check=True, capture_output=True, text=True).stdout
    s = json.loads(out)["streams"][0]
    w, h = s["width"], s["height"]
    rot = 0
    for sd in s.get("side_data_list", []):
        if "rotation" in sd:
            rot = int(sd["rotation"])
    if "tags" in s and "rotate" in s["tags"]:
        rot = int(s["tags"]["rotate"])
    if abs(rot) % 180 == 90:
        w, h = h, w
    return w, h


def variations(path):
    """Sum of absolute RGB differences of every frame to the one before (0 for frame 0)."""
    w, h = probe_size(path)
    cmd = ["ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    size = w * h * 3
    out, prev = [], None
    while True:
        buf = proc.stdout.read(size)
        if len(buf) < size:
            break
        frame = np.frombuffer(buf, dtype=np.uint8).astype(np.int32)
        out.append(0 if prev is None else int(np.abs(frame - prev).sum()))
        prev = frame
    proc.wait()
    return np.array(out, dtype=np.float64)


def quantile_keyframes(var, q):
    """The node's rule: frames i >= 1 with var[i] > quantile(var[1:], q)."""
    if len(var) < 2:
        return None, []
    thr = float(np.quantile(var[1:], q))  # NumPy's default: linear interpolation
    return thr, [int(i) for i in range(1, len(var)) if var[i] > thr]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="?",
                    default=os.path.join(os.environ.get("REELSMITH_SHARED", "../shared"), "videos"))
    ap.add_argument("-q", "--quantile", type=float, default=0.85)
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args()
    gt = json.load(open(os.path.join(a.videos, "ground_truth.json")))
    result = {"quantile": a.quantile, "decoder": "ffmpeg CLI, rgb24, -fps_mode passthrough",
              "videos": {}}
    for name in sorted(gt["videos"]):
        var = variations(os.path.join(a.videos, name))
        thr, keys = quantile_keyframes(var, a.quantile)
        result["videos"][name] = {"frames": len(var), "threshold": thr, "keyframes": keys}
        print(f"{name}: {len(var)} frames, {len(keys)} keyframes", file=sys.stderr)
    text = json.dumps(result, indent=1)
    if a.output == "-":
        print(text)
    else:
        with open(a.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
