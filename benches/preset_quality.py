#!/usr/bin/env python3
"""Compares x264 presets at one CRF on 3 s of each video: encode time (one thread), file
size, and PSNR / SSIM against the decoded source. It backs the choice of the highlights'
default preset (superfast): at the same CRF a faster preset spends more bits, not less
quality.

    python3 benches/preset_quality.py VIDEO [VIDEO...] [--presets superfast,veryfast]
                                      [--crf 18] [--start 2] [--seconds 3]

Needs ffmpeg with libx264 and the psnr/ssim filters.
"""
import argparse, os, re, subprocess, tempfile, time


def ff(*args):
    return subprocess.run(["ffmpeg", "-v", "info", "-y", *args], check=True,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("videos", nargs="+")
    ap.add_argument("--presets", default="superfast,veryfast")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--start", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    presets = [p for p in a.presets.split(",") if p]
    with tempfile.TemporaryDirectory() as tmp:
        ref = os.path.join(tmp, "ref.y4m")
        for v in a.videos:
            dur = float(subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", v],
                check=True, capture_output=True, text=True).stdout.strip() or 0)
            start = a.start if dur >= a.start + a.seconds else 0.0
            # The source range, decoded once, is what every preset encodes and is compared to.
            ff("-ss", str(start), "-i", v, "-t", str(a.seconds), "-an", "-pix_fmt", "yuv420p", ref)
            rows = []
            for p in presets:
                out = os.path.join(tmp, f"{p}.mp4")
                t = time.perf_counter()
                ff("-i", ref, "-c:v", "libx264", "-preset", p, "-crf", str(a.crf),
                   "-threads", "1", out)
                secs = time.perf_counter() - t
                log = ff("-i", out, "-i", ref, "-lavfi", "[0:v][1:v]psnr;[0:v][1:v]ssim",
                         "-f", "null", "-")
                psnr = float(re.search(r"PSNR .*average:([0-9.]+|inf)", log).group(1))
                ssim = float(re.search(r"SSIM .*All:([0-9.]+)", log).group(1))
                rows.append((p, secs, os.path.getsize(out), psnr, ssim))
            print(f"{os.path.basename(v)} (up to {a.seconds:g} s from {start:g} s, CRF {a.crf})")
            base = rows[-1]
            for p, secs, size, psnr, ssim in rows:
                print(f"  {p:10s} encode {secs:5.2f}s ({secs / base[1]:4.2f}x)  "
                      f"size {size / 1e6:5.2f} MB ({size / base[2]:4.2f}x)  "
                      f"PSNR {psnr:6.2f} dB ({psnr - base[3]:+5.2f})  SSIM {ssim:.4f}")


if __name__ == "__main__":
    main()
