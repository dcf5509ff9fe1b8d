#!/usr/bin/env python3
"""Images per second of reelsmith-embed's CLIP and DINOv2 image towers beside PyTorch /
transformers, on the CPU, in one run, on the same full-size random-weight checkpoints.

    python crates/embed/tests/fixtures/gen.py --full --out /work/fullsize --shared ../shared
    python benches/embed_vs_pytorch.py /work/fullsize [--seconds 10] [--threads N]
        [--bin LABEL=PATH ...]

--bin runs prebuilt `throughput` examples (e.g. `before=...` from a build of main and
`after=target/release/examples/throughput`) instead of `cargo run`, all in the same
alternating rounds, and adds a column per label: a before/after comparison in one session.

Both sides get the same thread count (default: all cores) and random pixel batches of the
model's input size (preprocessing is not timed). Batches 1 and 16. The two sides take turns
for --rounds rounds (default 3) and each keeps its best rate, so a burst of load from
elsewhere on a shared machine does not decide the ratio.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def rate(fn, batch, seconds):
    fn()
    t = time.perf_counter()
    n = 0
    while n == 0 or time.perf_counter() - t < seconds:
        fn()
        n += batch
    return n / (time.perf_counter() - t)


def torch_rates(folder: Path, seconds: float):
    from transformers import CLIPModel, Dinov2Model

    clip = CLIPModel.from_pretrained(folder / "clip-vit-b32").eval()
    dino = Dinov2Model.from_pretrained(folder / "dinov2-s").eval()
    out = []
    with torch.inference_mode():
        for batch in (1, 16):
            px = torch.randn(batch, 3, 224, 224)
            r = rate(lambda: clip.get_image_features(pixel_values=px), batch, seconds)
            out.append({"impl": "pytorch", "model": "clip", "batch": batch, "img_per_s": round(r, 2)})
            r = rate(lambda: dino(pixel_values=px), batch, seconds)
            out.append({"impl": "pytorch", "model": "dinov2", "batch": batch, "img_per_s": round(r, 2)})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bin", action="append", default=[], metavar="LABEL=PATH",
                    help="a prebuilt throughput example to time (repeatable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # The reelsmith CLI sets candle's spin limit to 1000 unless the user chose one; the
    # example runs with the same setting.
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    env.setdefault("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000")
    model_args = [str(args.folder / "clip-vit-b32"), str(args.folder / "dinov2-s"), str(args.seconds)]
    if args.bin:
        cmds = [(label, [path, *model_args]) for label, path in (b.split("=", 1) for b in args.bin)]
    else:
        cmds = [("reelsmith", ["cargo", "run", "--release", "-q", "-p", "reelsmith-embed", "--example",
                               "throughput", "--", *model_args])]
    labels = [label for label, _ in cmds]
    best = {}
    for _ in range(args.rounds):
        rows = torch_rates(args.folder, args.seconds)
        for label, cmd in cmds:
            res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            if res.returncode != 0:
                sys.exit(res.stderr)
            for l in res.stdout.splitlines():
                if l.startswith("{"):
                    r = json.loads(l)
                    r["impl"] = label
                    rows.append(r)
        for r in rows:
            key = (r["impl"], r["model"], r["batch"])
            best[key] = max(best.get(key, 0.0), r["img_per_s"])
    rows = [{"impl": i, "model": m, "batch": b, "img_per_s": v} for (i, m, b), v in best.items()]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    print(f"CPU: {cpu}; threads: {args.threads}, torch {torch.__version__}; "
          f"best of {args.rounds} alternating rounds of {args.seconds:g} s")
    head = f"{'model':8} {'batch':>5} {'pytorch img/s':>14}"
    for label in labels:
        head += f" {label + ' img/s':>16} {'ratio':>6}"
    print(head)
    for model in ("clip", "dinov2"):
        for batch in (1, 16):
            rate_of = lambda impl: next(r["img_per_s"] for r in rows
                                        if r["impl"] == impl and r["model"] == model and r["batch"] == batch)
            p = rate_of("pytorch")
            line = f"{model:8} {batch:5} {p:14.2f}"
            for label in labels:
                q = rate_of(label)
                line += f" {q:16.2f} {q / p:6.2f}"
            print(line)


if __name__ == "__main__":
    main()
