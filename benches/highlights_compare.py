#!/usr/bin/env python3
"""Times `reelsmith highlights` (no model) against decode-only `ffmpeg -f null -` on the same
files in one run, and reports reelsmith's peak memory (max RSS).

    python3 benches/highlights_compare.py VIDEO [VIDEO...] [--runs N] [--presets P1,P2]

Three highlights runs per file: the analysis with every report but no clips (`--no-clips`),
clips cut by stream copy (`--stream-copy`), and the default frame-accurate clips (H.264
re-encode, x264 preset veryfast); `--presets superfast,ultrafast` adds runs with other x264
presets. Re-encoding costs time in proportion to the clips' length, not the video's:
on a short video it dominates.

Needs a release build (cargo build --release -p reelsmith-cli), ffmpeg and GNU time
(/usr/bin/time). Target from the highlights issue: highlights <= 1.5x decode-only.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "reelsmith")


def run(cmd):
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rss = int(re.search(r"MAXRSS (\d+)", p.stderr).group(1))
    return time.perf_counter() - t, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--presets", default="",
                    help="comma-separated x264 presets to time as well (e.g. superfast,ultrafast)")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release -p reelsmith-cli (no {BIN})")
    modes = [("analysis + reports", ["--no-clips"]),
             ("stream-copied clips", ["--stream-copy"]),
             ("re-encoded clips", [])]
    modes += [(f"re-encoded, {p}", ["--preset", p]) for p in a.presets.split(",") if p]
    for v in a.videos:
        ff = []
        rs = {name: [] for name, _ in modes}
        rss = {name: 0 for name, _ in modes}
        for _ in range(a.runs):
            ff.append(run(["ffmpeg", "-v", "error", "-i", v, "-f", "null", "-"])[0])
            for name, flags in modes:
                out = tempfile.mkdtemp()
                t, m = run([BIN, "-q", "highlights", v, "-o", out] + flags)
                shutil.rmtree(out)
                rs[name].append(t)
                rss[name] = max(rss[name], m)
        tf = statistics.median(ff)
        print(f"{os.path.basename(v)}: decode-only (ffmpeg -f null) {tf:.2f}s")
        for name, _ in modes:
            tr = statistics.median(rs[name])
            print(f"  highlights, {name:20s} {tr:6.2f}s  ratio {tr/tf:4.2f}x (target <= 1.5x)  "
                  f"peak RSS {rss[name]/1024:.0f} MiB")


if __name__ == "__main__":
    main()
