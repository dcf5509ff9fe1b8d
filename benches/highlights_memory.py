#!/usr/bin/env python3
"""Peak memory (max RSS) and wall time of `reelsmith highlights` on 720p videos of growing
length: memory must stay flat in duration (the throughput issue asks for < 1 GB on a 1-hour
video without a model; with a CLIP model, under the weights + 300 MB).

    python3 benches/highlights_memory.py [--minutes 1 10 60] [--source VIDEO] [--keep DIR]
        [--model-dir DIR] [--bin PATH ...]

Without --model-dir the run has no model (`--no-model`); with it, highlights embeds the
sampled frames with the checkpoint in DIR (e.g. a full-size random-weight CLIP B/32 from
`crates/embed/tests/fixtures/gen.py --full`) and the size of its weights file is printed
beside the peak. Several --bin binaries (e.g. a build of main and of a branch) are run on
the same videos, in turns, for a before/after table.

The videos are built by looping a real 720p clip with stream copy (no re-encoding, so
building a 1-hour file takes seconds): by default
$REELSMITH_SHARED/videos/bigbuckbunny.mp4 (H.264 1280x720 with AAC audio). Needs a release
build (cargo build --release -p reelsmith-cli), ffmpeg, ffprobe and GNU time.
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "reelsmith")


def duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", path], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--source")
    ap.add_argument("--keep", help="folder to keep the generated videos in (reused if present)")
    ap.add_argument("--model-dir", help="checkpoint folder of a CLIP model to embed frames with")
    ap.add_argument("--bin", nargs="+", default=[BIN], help="reelsmith binaries to compare")
    a = ap.parse_args()
    for b in a.bin:
        if not os.path.exists(b):
            sys.exit(f"build first: cargo build --release -p reelsmith-cli (no {b})")
    model_args = ["--model-dir", a.model_dir] if a.model_dir else ["--no-model"]
    if a.model_dir:
        weights = sum(os.path.getsize(os.path.join(a.model_dir, f)) for f in os.listdir(a.model_dir)
                      if f.startswith(("model", "pytorch_model")) and f.endswith((".safetensors", ".bin")))
        print(f"model {a.model_dir}: weights {weights / 2**20:.0f} MiB")
    src = a.source
    if not src:
        shared = os.environ.get("REELSMITH_SHARED", os.path.join(ROOT, "..", "shared"))
        src = os.path.join(shared, "videos", "bigbuckbunny.mp4")
    if not os.path.exists(src):
        sys.exit(f"no source video {src}: pass --source or set REELSMITH_SHARED")
    work = a.keep or tempfile.mkdtemp()
    os.makedirs(work, exist_ok=True)
    clip = duration(src)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "unknown")
    print(f"source {os.path.basename(src)} ({clip:.2f} s); CPU {cpu}; {os.cpu_count()} cores")
    for minutes in a.minutes:
        video = os.path.join(work, f"loop{minutes:g}min.mp4")
        if not os.path.exists(video):
            loops = max(1, round(minutes * 60 / clip))
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1),
                            "-i", src, "-c", "copy", video], check=True)
        for b in a.bin:
            out = tempfile.mkdtemp()
            t = time.perf_counter()
            p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", b, "-q", "highlights", video,
                                "-o", out, *model_args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
            dt = time.perf_counter() - t
            shutil.rmtree(out)
            if p.returncode != 0:
                sys.exit(p.stderr)
            rss = int(re.search(r"MAXRSS (\d+)", p.stderr).group(1)) / 1024
            print(f"{minutes:5g} min ({duration(video):7.1f} s) {b}: {dt:7.1f} s wall, "
                  f"peak RSS {rss:6.0f} MiB")
    if not a.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
