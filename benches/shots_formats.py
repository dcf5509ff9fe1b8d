#!/usr/bin/env python3
"""Shot detection on the shared clips re-encoded in other codecs, pixel formats, sizes,
frame rates and picture layouts: does the detector find the same transitions?

Every clip of a corpus (default $REELSMITH_SHARED/videos) is converted with ffmpeg into
each variant below (HEVC 10-bit, VP9, MPEG-2 in a transport stream, Motion JPEG 4:2:2,
H.264 4:4:4, a quarter of the size, interlaced 576i with non-square pixels, fitted into
4:3 (letterbox or pillarbox), a 9:16 centre crop pillarboxed into 16:9, heavy film grain,
29.97 and 60 frames per second by frame repetition), and `reelsmith shots` (and
PySceneDetect detect-adaptive, unless --no-pyscenedetect) runs on each file.
Transitions are matched by time, since the frame rate changes: a reported transition
within two frames (of the source or the variant, the longer) of a ground-truth cut, or
inside a gradual span widened by as much, is found; anything else is false.
Prints, per variant, what each tool missed and reported falsely, then the totals.

Usage: benches/shots_formats.py [CORPUS] [--reelsmith PATH] [--no-pyscenedetect]
                                [--variants NAME,...] [--keep DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shots_compare import ROOT, default_binary  # noqa: E402
from shots_eval import timed_shots  # noqa: E402

# name: (file suffix, ffmpeg output arguments); audio is dropped everywhere.
# `vertical_in_16x9` is a 9:16 centre crop pillarboxed into 1280 x 720 (phone video on TV).
VARIANTS = {
    "hevc10": (".mkv", ["-c:v", "libx265", "-pix_fmt", "yuv420p10le",
                        "-x265-params", "log-level=error"]),
    "vp9": (".webm", ["-c:v", "libvpx-vp9", "-b:v", "500k", "-deadline", "realtime",
                      "-cpu-used", "8"]),
    "mpeg2": (".ts", ["-c:v", "mpeg2video", "-q:v", "4"]),
    "mjpeg422": (".avi", ["-c:v", "mjpeg", "-pix_fmt", "yuvj422p", "-q:v", "5"]),
    "h264_444": (".mp4", ["-c:v", "libx264", "-pix_fmt", "yuv444p"]),
    "small": (".mp4", ["-vf", "scale=320:-2", "-c:v", "libx264"]),
    "interlaced576": (".mp4", ["-vf", "scale=720:576,setsar=64/45,fps=50,"
                               "tinterlace=interleave_top,fieldorder=tff",
                               "-c:v", "libx264", "-flags", "+ildct+ilme"]),
    "letterbox": (".mp4", ["-vf", "scale=640:480:force_original_aspect_ratio=decrease:force_divisible_by=2,"
                           "pad=640:480:(ow-iw)/2:(oh-ih)/2",
                           "-c:v", "libx264"]),
    "vertical_in_16x9": (".mp4", ["-vf", "crop='min(iw,trunc(ih*9/32)*2)':ih,scale=-2:720,"
                                  "pad=1280:720:(ow-iw)/2:0", "-c:v", "libx264"]),
    "grain": (".mp4", ["-vf", "noise=alls=25:allf=t", "-c:v", "libx264"]),
    "30p": (".mp4", ["-vf", "fps=30000/1001", "-c:v", "libx264"]),
    "60p": (".mp4", ["-vf", "fps=60", "-c:v", "libx264"]),
}


def truth_times(entry):
    """Ground-truth cut times and gradual spans (seconds) of one clip."""
    fps = entry["fps"]
    cuts = entry.get("cut_times_s") or [f / fps for f in entry.get("cuts", [])]
    spans = []
    for g in entry.get("gradual", []):
        lo, hi = (g["start"], g["end"]) if isinstance(g, dict) else g
        spans.append((lo / fps, hi / fps))
    return cuts, spans, fps


def score(pred, cuts, spans, tol):
    """(missed, false) for predicted times `pred`: one-to-one with cuts, any number inside
    a span counting once for it."""
    free = list(cuts)
    hit_spans = set()
    false = []
    for t in sorted(pred):
        near = [c for c in free if abs(c - t) <= tol]
        if near:
            free.remove(min(near, key=lambda c: abs(c - t)))
            continue
        inside = [i for i, (lo, hi) in enumerate(spans) if lo - tol <= t <= hi + tol]
        if inside:
            hit_spans.add(inside[0])
            continue
        false.append(round(t, 2))
    missed = [round(c, 2) for c in free] + [
        (round(lo, 2), round(hi, 2)) for i, (lo, hi) in enumerate(spans) if i not in hit_spans
    ]
    return missed, false


def probe_fps(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=avg_frame_rate", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True).stdout.strip()
    num, _, den = out.partition("/")
    try:
        return float(num) / float(den or 1)
    except (ValueError, ZeroDivisionError):
        return 25.0


def pyscenedetect_times(path):
    from scenedetect import detect, AdaptiveDetector
    scenes = detect(str(path), AdaptiveDetector())[1:]
    return [start.seconds if hasattr(start, "seconds") else start.get_seconds()
            for start, _ in scenes]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", nargs="?",
                    default=os.path.join(os.environ.get("REELSMITH_SHARED",
                                                        str(ROOT.parent / "shared")), "videos"))
    ap.add_argument("--reelsmith", default=None)
    ap.add_argument("--no-pyscenedetect", action="store_true")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--keep", default=None, help="write the variants here (kept)")
    args = ap.parse_args()
    binary = args.reelsmith or default_binary()
    corpus = Path(args.corpus)
    gt = json.load(open(corpus / "ground_truth.json"))["videos"]
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    tools = ["reelsmith"] + ([] if args.no_pyscenedetect else ["pyscenedetect"])
    totals = {t: {v: [0, 0] for v in ["original"] + names} for t in tools}
    n_truth = {v: 0 for v in ["original"] + names}
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.keep or tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for clip, entry in sorted(gt.items()):
            src = corpus / clip
            if not src.exists():
                continue
            cuts, spans, src_fps = truth_times(entry)
            for variant in ["original"] + names:
                if variant == "original":
                    path = src
                else:
                    suffix, ff_args = VARIANTS[variant]
                    path = out_dir / f"{src.stem}_{variant}{suffix}"
                    if not path.exists() or path.stat().st_size == 0:
                        # Written under a temporary name and renamed, so an interrupted run
                        # never leaves a partial file to be reused.
                        part = path.with_name(f".part-{path.name}")
                        r = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src),
                                            "-an", *ff_args, str(part)],
                                           capture_output=True, text=True)
                        if r.returncode != 0:
                            part.unlink(missing_ok=True)
                            print(f"  {clip} {variant}: ffmpeg failed: {r.stderr.strip()[:200]}")
                            continue
                        part.replace(path)
                fps = probe_fps(path)
                tol = 2.0 / min(src_fps, fps) + 1e-3
                n_truth[variant] += len(cuts) + len(spans)
                line = f"  {clip:30} {variant:14}"
                for tool in tools:
                    if tool == "reelsmith":
                        d, _, _, _ = timed_shots(binary, path, ["-q"])
                        pred = [c["time"] for c in d["cuts"]]
                    else:
                        pred = pyscenedetect_times(path)
                    missed, false = score(pred, cuts, spans, tol)
                    totals[tool][variant][0] += len(missed)
                    totals[tool][variant][1] += len(false)
                    line += f"  {tool}: missed {missed or '-'} false {false or '-'}"
                print(line, flush=True)
    print("\nTotals (missed / false) per variant; ground-truth transitions per variant:",
          n_truth["original"])
    for variant in ["original"] + names:
        cells = "  ".join(f"{t} {totals[t][variant][0]}/{totals[t][variant][1]}" for t in tools)
        print(f"  {variant:14} {cells}")
    for t in tools:
        m = sum(v[0] for v in totals[t].values())
        f = sum(v[1] for v in totals[t].values())
        print(f"ALL {t}: missed {m}, false {f} over {sum(n_truth.values())} transitions "
              f"in {len(names) + 1} versions of each clip")


if __name__ == "__main__":
    main()
