#!/usr/bin/env python3
"""Times `reelsmith highlights` (no model) against decode-only `ffmpeg -f null -` on the same
files in one run, and reports reelsmith's peak memory (max RSS).

    python3 benches/highlights_compare.py VIDEO [VIDEO...] [--runs N]

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
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release -p reelsmith-cli (no {BIN})")
    for v in a.videos:
        out = tempfile.mkdtemp()
        ff, rs, rss = [], [], 0
        for _ in range(a.runs):
            ff.append(run(["ffmpeg", "-v", "error", "-i", v, "-f", "null", "-"])[0])
            t, m = run([BIN, "-q", "highlights", v, "-o", out])
            rs.append(t)
            rss = max(rss, m)
        tf, tr = statistics.median(ff), statistics.median(rs)
        print(f"{os.path.basename(v)}: decode-only {tf:.2f}s, highlights {tr:.2f}s, "
              f"ratio {tr/tf:.2f}x (target <= 1.5x), peak RSS {rss/1024:.0f} MiB")
        shutil.rmtree(out)


if __name__ == "__main__":
    main()
