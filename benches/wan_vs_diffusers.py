#!/usr/bin/env python3
"""Full-size Wan2.1-T2V-1.3B transformer: one forward in reelsmith (Rust, candle) and in
diffusers (PyTorch) on the same input, in one session, CPU; reports max |diff| and the time
ratio.

No Wan weights can be downloaded here, so the model has random weights (seeded): the
architecture and sizes are the real ones (30 blocks, width 1536, 12 heads, FFN 8960, text 4096).
The checkpoint (~5.7 GB f32, sharded with a safetensors index as the hub's) is built once in
WORKDIR (default /work/fullsize-wan, outside the repository).

    python3 benches/wan_vs_diffusers.py [--workdir DIR] [--frames 3 --height 30 --width 52]
        [--threads N] [--repeat 1] [--features openblas] [--rounds R] [--baseline-bin PATH]
        [--rust-bin PATH]

With --rounds R the runs alternate R times (reelsmith, diffusers, reelsmith, ...) and each
side keeps its best; --baseline-bin adds a prebuilt `wan_forward` binary (an older build) to
every round, for a same-session before/after ratio.

The two runs are sequential (one model in memory at a time). Wall time and process CPU time
are both reported: on a machine shared with other work the CPU time is the steadier measure. The Rust side runs
`cargo run --example wan_forward -p reelsmith-diffusion` (the dev profile builds
dependencies, where all the arithmetic happens, with opt-level 3).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG_13B = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=12,
    attention_head_dim=128,
    in_channels=16,
    out_channels=16,
    text_dim=4096,
    freq_dim=256,
    ffn_dim=8960,
    num_layers=30,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)


def build(workdir):
    from diffusers import WanTransformer3DModel

    path = os.path.join(workdir, "transformer")
    if os.path.exists(os.path.join(path, "config.json")):
        return path
    os.makedirs(workdir, exist_ok=True)
    torch.manual_seed(0)
    print("building a random-weight Wan2.1-T2V-1.3B transformer ...", flush=True)
    model = WanTransformer3DModel(**CONFIG_13B)
    # diffusers initialises some tensors to zero or one; give every tensor random values of a
    # sensible scale so that all of them matter.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.ndim == 1:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
            elif "scale_shift_table" in name:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
            else:
                fan_in = p.numel() // p.shape[0]
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
    model.save_pretrained(path, safe_serialization=True, max_shard_size="2GB")
    del model
    return path


def inputs(workdir, frames, height, width):
    path = os.path.join(workdir, f"inputs_{frames}x{height}x{width}.safetensors")
    if not os.path.exists(path):
        g = torch.Generator().manual_seed(2)
        x = torch.randn(1, 16, frames, height, width, generator=g)
        ctx = torch.zeros(1, 512, 4096)
        ctx[:, :24] = torch.randn(1, 24, 4096, generator=g)
        save_file({"hidden_states": x, "timestep": torch.tensor([500.0]), "context": ctx}, path)
    return path


def run_diffusers(model_path, inputs_path, out_path, repeat):
    from diffusers import WanTransformer3DModel

    model = WanTransformer3DModel.from_pretrained(model_path, torch_dtype=torch.float32).eval()
    t = load_file(inputs_path)
    times, cpus = [], []
    with torch.no_grad():
        for _ in range(repeat):
            start, cpu = time.perf_counter(), cpu_seconds()
            out = model(
                hidden_states=t["hidden_states"],
                timestep=t["timestep"],
                encoder_hidden_states=t["context"],
                return_dict=False,
            )[0]
            times.append(time.perf_counter() - start)
            cpus.append(cpu_seconds() - cpu)
    save_file({"out": out.contiguous()}, out_path)
    del model
    return min(times), min(cpus)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_rust(model_path, inputs_path, out_path, repeat, threads, features, binary=None):
    env = dict(os.environ)
    env["RAYON_NUM_THREADS"] = str(threads)
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    cmd = ["cargo", "run", "-q", "-p", "reelsmith-diffusion", "--example", "wan_forward"]
    if features:
        cmd += ["--features", features]
    if binary:
        cmd = [binary]
    cmd += (["--"] if not binary else []) + [
        model_path,
        inputs_path,
        out_path,
        str(repeat),
    ]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stdout + res.stderr)
        raise SystemExit("the Rust forward failed")
    report = json.loads(res.stdout.strip().splitlines()[-1])
    return report["forward_s"], report["forward_cpu_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default="/work/fullsize-wan")
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--height", type=int, default=30)
    ap.add_argument("--width", type=int, default=52)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--features", default="", help="cargo features of reelsmith-diffusion, e.g. openblas")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the runs this many times, keep each side's best")
    ap.add_argument("--rust-bin", default="", help="a prebuilt wan_forward binary instead of `cargo run`")
    ap.add_argument("--baseline-bin", default="", help="a prebuilt wan_forward binary (an older build) run in every round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model_path = build(args.workdir)
    inp = inputs(args.workdir, args.frames, args.height, args.width)
    out_py = os.path.join(args.workdir, "out_diffusers.safetensors")
    out_rs = os.path.join(args.workdir, "out_reelsmith.safetensors")
    tokens = args.frames * (args.height // 2) * (args.width // 2)
    print(f"input 1x16x{args.frames}x{args.height}x{args.width} ({tokens} tokens), {args.threads} threads", flush=True)

    label = f" ({args.features})" if args.features else ""
    inf = float("inf")
    t_rs = c_rs = t_py = c_py = t_bl = c_bl = inf
    for r in range(args.rounds):
        if args.baseline_bin:
            out_bl = os.path.join(args.workdir, "out_baseline.safetensors")
            t, c = run_rust(model_path, inp, out_bl, args.repeat, args.threads, "", args.baseline_bin)
            print(f"[{r + 1}] baseline forward: {t:.2f} s wall, {c:.2f} s CPU", flush=True)
            t_bl, c_bl = min(t_bl, t), min(c_bl, c)
        t, c = run_rust(model_path, inp, out_rs, args.repeat, args.threads, args.features, args.rust_bin or None)
        print(f"[{r + 1}] reelsmith forward{label}: {t:.2f} s wall, {c:.2f} s CPU", flush=True)
        t_rs, c_rs = min(t_rs, t), min(c_rs, c)
        t, c = run_diffusers(model_path, inp, out_py, args.repeat)
        print(f"[{r + 1}] diffusers forward: {t:.2f} s wall, {c:.2f} s CPU", flush=True)
        t_py, c_py = min(t_py, t), min(c_py, c)
    print(f"best of {args.rounds}: reelsmith{label} {t_rs:.2f} s wall / {c_rs:.2f} s CPU, diffusers {t_py:.2f} / {c_py:.2f}")
    if args.baseline_bin:
        print(f"baseline {t_bl:.2f} s wall / {c_bl:.2f} s CPU; time ratio baseline / reelsmith = {t_bl / t_rs:.2f} wall, {c_bl / c_rs:.2f} CPU; diffusers / baseline = {t_py / t_bl:.2f} wall, {c_py / c_bl:.2f} CPU")

    a = load_file(out_rs)["out"]
    b = load_file(out_py)["out"]
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    print(f"max |diff| = {diff:.3e} (max |out| = {scale:.3e}, relative {diff / scale:.2e})")
    print(f"time ratio diffusers / reelsmith = {t_py / t_rs:.2f} wall, {c_py / c_rs:.2f} CPU (above 1: reelsmith is faster)")


if __name__ == "__main__":
    main()
