#!/usr/bin/env python3
"""Runs every `reelsmith` command on the shared clips and compares two such runs.

A refactor must not change what the commands produce. Record the outputs of a build before
the change and of one after it, then compare:

    scripts/compare_outputs.py run --bin OLD/reelsmith --out /tmp/before
    scripts/compare_outputs.py run --bin target/release/reelsmith --out /tmp/after
    scripts/compare_outputs.py diff /tmp/before /tmp/after

`run` writes one folder per (command, clip) with the command's files plus its stdout.
`diff` compares them file by file: JSON and CSV as parsed values (floats within 1e-9
relative, the output folder's own path replaced by a placeholder), images by their decoded
pixels, videos by FFmpeg's per-frame MD5 (`-f framemd5`) and stream layout, everything else
byte for byte. It prints one line per difference and exits 1 when there is any.

Media: $REELSMITH_SHARED/videos (default ../shared/videos). The embed command uses the tiny
CLIP checkpoint of the embed crate's test fixtures, so no download is needed.
"""

import argparse
import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_CLIP = ROOT / "crates/embed/tests/fixtures/clip-gelu"

# Short clips keep the run to a couple of minutes; every command sees each container.
CLIPS = [
    "bikes.mp4",
    "big_buck_bunny_0_30.webm",
    "chaplin.mp4",
    "goldeneye-vfr-drop3.mp4",
    "issue-134-rotate.mp4",
    "issue-236-split-copy.mkv",
]


def commands(video, out):
    """(name, argv) of every command run on one clip; `out` is that clip's folder."""
    v = str(video)
    return [
        ("probe", ["probe", v, "--json"]),
        ("frames", ["frames", v, "--fps", "1", "--height", "144", "-o", f"{out}/frames"]),
        ("shots-json", ["shots", v, "--json"]),
        ("shots-csv", ["shots", v, "--csv"]),
        ("keyframes-quantile", ["keyframes", v, "--method", "quantile", "-o", f"{out}/kq"]),
        ("keyframes-seams", ["keyframes", v, "--method", "seams", "-o", f"{out}/ks"]),
        ("score", ["score", v, "--fps", "1", "--json"]),
        ("highlights", ["highlights", v, "--no-model", "--top-k", "2", "-o", f"{out}/hl"]),
        ("segments", ["segments", v, "-o", f"{out}/seg"]),
        (
            "embed",
            ["embed", v, "--model-dir", str(TINY_CLIP), "--fps", "0.5", "--text", "a dog", "--json"],
        ),
    ]


def run(args):
    shared = Path(os.environ.get("REELSMITH_SHARED", ROOT.parent / "shared")) / "videos"
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for clip in CLIPS:
        video = shared / clip
        if not video.exists():
            sys.exit(f"missing test clip {video}: set REELSMITH_SHARED")
        folder = out / clip
        folder.mkdir(exist_ok=True)
        for name, argv in commands(video, folder):
            p = subprocess.run(
                [args.bin, "--quiet", *argv], capture_output=True, text=True, cwd=folder
            )
            (folder / f"{name}.stdout").write_text(p.stdout)
            (folder / f"{name}.status").write_text(f"{p.returncode}\n")
            if p.returncode != 0:
                failures += 1
                (folder / f"{name}.stderr").write_text(p.stderr)
                print(f"{clip} {name}: exit {p.returncode}: {p.stderr.strip()[:200]}")
    print(f"outputs in {out} ({failures} command(s) failed)")


# The checkout the fixtures were read from differs between two runs.
REPO_PATH = re.compile(r"/[^\s\"']*?(?=/crates/)")


def normalise(value, root):
    if isinstance(value, dict):
        return {k: normalise(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, root) for v in value]
    if isinstance(value, str):
        return REPO_PATH.sub("<REPO>", value.replace(root, "<OUT>"))
    return value


def close(a, b, where, out):
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            if abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)):
                return
        out.append(f"{where}: {a!r} != {b!r}")
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'after' if k not in a else 'before'}")
            else:
                close(a[k], b[k], f"{where}.{k}", out)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            close(x, y, f"{where}[{i}]", out)
        return
    if a != b:
        out.append(f"{where}: {a!r} != {b!r}")


def parse_cell(s):
    try:
        return float(s) if any(c in s for c in ".eE") else int(s)
    except ValueError:
        return s


def load(path, root):
    suffix = path.suffix.lower()
    text_like = suffix in (".json", ".csv", ".stdout", ".status", ".stderr")
    if text_like:
        text = path.read_text().replace(str(root), "<OUT>")
        if suffix == ".json" or (suffix == ".stdout" and text.lstrip().startswith(("{", "["))):
            return "json", normalise(json.loads(text), str(root))
        if suffix == ".csv" or (suffix == ".stdout" and "," in text.split("\n", 1)[0]):
            rows = [[parse_cell(c) for c in r] for r in csv.reader(io.StringIO(text))]
            return "csv", rows
        return "text", text
    if suffix in (".png", ".jpg", ".jpeg"):
        from PIL import Image

        img = Image.open(path)
        return "image", (img.size, img.mode, hashlib.sha256(img.tobytes()).hexdigest())
    if suffix in (".mp4", ".mkv", ".webm", ".mov"):
        frames = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0", "-f", "framemd5", "-"],
            capture_output=True,
            text=True,
        ).stdout
        lines = [ln for ln in frames.splitlines() if not ln.startswith("#")]
        return "video", hashlib.sha256("\n".join(lines).encode()).hexdigest()
    if suffix == ".safetensors":
        return "bytes", hashlib.sha256(path.read_bytes()).hexdigest()
    return "bytes", hashlib.sha256(path.read_bytes()).hexdigest()


def diff(args):
    a_root, b_root = Path(args.before).resolve(), Path(args.after).resolve()
    a_files = {p.relative_to(a_root) for p in a_root.rglob("*") if p.is_file()}
    b_files = {p.relative_to(b_root) for p in b_root.rglob("*") if p.is_file()}
    problems = []
    for rel in sorted(a_files ^ b_files):
        problems.append(f"{rel}: only {'before' if rel in a_files else 'after'}")
    compared = 0
    for rel in sorted(a_files & b_files):
        clip_root_a = a_root / rel.parts[0]
        clip_root_b = b_root / rel.parts[0]
        ka, va = load(a_root / rel, clip_root_a)
        kb, vb = load(b_root / rel, clip_root_b)
        compared += 1
        if ka != kb:
            problems.append(f"{rel}: {ka} != {kb}")
        elif ka in ("json", "csv"):
            close(va, vb, str(rel), problems)
        elif va != vb:
            problems.append(f"{rel}: {ka} differs")
    for p in problems:
        print(p)
    print(f"{compared} files compared, {len(problems)} difference(s)")
    sys.exit(1 if problems else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run every command on the shared clips")
    r.add_argument("--bin", required=True, help="the reelsmith binary")
    r.add_argument("--out", required=True, help="folder for the outputs")
    d = sub.add_parser("diff", help="compare two runs")
    d.add_argument("before")
    d.add_argument("after")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else diff(args)


if __name__ == "__main__":
    main()
