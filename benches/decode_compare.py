#!/usr/bin/env python3
"""Times reelsmith's decoding against the ffmpeg command line on the same file in one run.

    python3 benches/decode_compare.py [VIDEO] [--runs N]

Without VIDEO it builds a 60 s 720p clip by looping $REELSMITH_SHARED/videos/bigbuckbunny.mp4
(real 1280x720 H.264 footage) with stream copy. Needs a release build
(cargo build --release -p reelsmith-cli) and ffmpeg on PATH. reelsmith decodes in
keyframe-aligned chunks on all cores (Video::map_frames; Video::count_frames for `probe`),
ffmpeg with its frame-threaded decoder. Prints the median wall time of
each command, frames/s, and the ratio (ffmpeg time / reelsmith time: > 1 means reelsmith is
faster).
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "reelsmith")


def timed(cmd, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("video", nargs="?")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release -p reelsmith-cli (no {BIN})")
    if not shutil.which("ffmpeg"):
        sys.exit("ffmpeg is not on PATH")
    tmp = tempfile.mkdtemp()
    video = a.video
    if not video:
        shared = os.environ.get("REELSMITH_SHARED", os.path.join(ROOT, "..", "shared"))
        src = os.path.join(shared, "videos", "bigbuckbunny.mp4")
        if not os.path.exists(src):
            sys.exit("give a VIDEO or set REELSMITH_SHARED")
        video = os.path.join(tmp, "loop60.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", "11", "-i", src,
                        "-an", "-c", "copy", video], check=True)
    frames = int(subprocess.run([BIN, "probe", "--json", video], check=True,
                                capture_output=True, text=True).stdout.split('"frames":')[1].split(",")[0])
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print(f"video: {video} ({frames} frames); CPU: {cpu}; {os.cpu_count()} cores; median of {a.runs} runs")
    pairs = [
        # `probe` counts frames exactly by decoding all of them without conversion.
        ("full decode, no conversion (probe)",
         ["ffmpeg", "-v", "error", "-i", video, "-f", "null", "-"],
         [BIN, "-q", "probe", video]),
        ("full decode to RGB (like for like)",
         ["ffmpeg", "-v", "error", "-i", video, "-pix_fmt", "rgb24", "-f", "null", "-"],
         [BIN, "-q", "frames", video]),
        ("3 fps scaled to 720p",
         ["ffmpeg", "-v", "error", "-i", video, "-vf", "fps=3,scale=-2:720", "-f", "null", "-"],
         [BIN, "-q", "frames", video, "--fps", "3", "--height", "720"]),
    ]
    for name, ff, rs in pairs:
        tf = timed(ff, a.runs)
        tr = timed(rs, a.runs)
        print(f"{name:42s} ffmpeg {tf:6.2f}s ({frames/tf:6.0f} fps)  reelsmith {tr:6.2f}s "
              f"({frames/tr:6.0f} fps)  ratio {tf/tr:4.2f}x")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
