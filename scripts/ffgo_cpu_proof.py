#!/usr/bin/env python3
"""Helpers of scripts/ffgo_cpu_proof.sh, the FFGo proof at CPU scale.

    ffgo_cpu_proof.py data  --out OUT --bin REELSMITH   synthetic moving-entity dataset
    ffgo_cpu_proof.py base  --out OUT                   tiny Wan2.2-I2V folder OUT/base0
    ffgo_cpu_proof.py merge --out OUT                   OUT/base0 + OUT/pretrain adapter -> OUT/base

`data` draws entities (coloured shapes: the OLD set for pre-training; the NEW set, other
shapes with striped or checked fills, for the LoRA and the held-out examples) as RGBA
cut-outs, backgrounds (colour gradients with texture), and 17-frame clips at 96x64 where
the entities move across the background; each example's composed first frame is made by
`reelsmith compose` (the entity crate's FFGo layout) from the background and the
cut-outs. Lists in FFGo's format: pretrain.json, lora.json, heldout.json.

`base` writes a tiny Wan2.2 image-to-video pipeline in the diffusers layout: the text
encoder, tokenizer, scheduler and VAE of the test fixture (tests/support/fixtures/
wan-i2v-tiny, random weights) and a random 2-block transformer (dim 64). The transformer
is then pre-trained by reelsmith itself (see the .sh).

`merge` folds the pre-training adapter (full rank, every dense layer, PEFT naming) into
the transformer weights: W + (alpha / rank) * B @ A.

Everything is seeded. Needs torch, diffusers, safetensors, pillow, numpy and ffmpeg.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw

W, H, FRAMES, FPS = 96, 64, 17, 16
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "support", "fixtures", "wan-i2v-tiny")
PHRASE = "ad23r2 the camera view suddenly changes."

OLD_SHAPES = ["circle", "square"]
OLD_COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
NEW_SHAPES = ["triangle", "cross", "diamond"]
NEW_COLOURS = {"magenta": (220, 40, 200), "cyan": (40, 210, 220), "orange": (240, 140, 30)}
NEW_FILLS = ["striped", "checked"]


def entity(shape, colour, fill, size):
    """An RGBA cut-out of `shape` in `colour` with a plain, striped or checked fill."""
    s = size * 4  # drawn large, then reduced: smooth edges
    mask = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(mask)
    m = s // 10
    if shape == "circle":
        d.ellipse([m, m, s - m, s - m], fill=255)
    elif shape == "square":
        d.rectangle([m, m, s - m, s - m], fill=255)
    elif shape == "triangle":
        d.polygon([(s // 2, m), (s - m, s - m), (m, s - m)], fill=255)
    elif shape == "diamond":
        d.polygon([(s // 2, m), (s - m, s // 2), (s // 2, s - m), (m, s // 2)], fill=255)
    elif shape == "cross":
        t = s // 3
        d.rectangle([t, m, s - t, s - m], fill=255)
        d.rectangle([m, t, s - m, s - t], fill=255)
    rgb = np.zeros((s, s, 3), np.uint8)
    rgb[:] = colour
    if fill != "plain":
        yy, xx = np.mgrid[0:s, 0:s]
        k = s // 6
        dark = ((yy // k) % 2 == 0) if fill == "striped" else (((yy // k) + (xx // k)) % 2 == 0)
        rgb[dark] = (np.array(colour) * 0.35).astype(np.uint8)
    img = Image.fromarray(rgb).convert("RGBA")
    img.putalpha(mask)
    return img.resize((size, size), Image.LANCZOS)


def background(rng):
    """A colour gradient with a soft texture."""
    a, b = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    t = np.linspace(0, 1, W)[None, :, None]
    u = np.linspace(0, 1, H)[:, None, None]
    img = a * (1 - t) * (1 - 0.3 * u) + b * t * (0.7 + 0.3 * u)
    img = img + rng.normal(0, 6, (H, W, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_clip(path, frames):
    """Lossless H.264 (4:4:4) through the ffmpeg command."""
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-qp", "0",
        "-preset", "ultrafast", "-pix_fmt", "yuv444p", path,
    ]
    data = b"".join(np.asarray(f, np.uint8).tobytes() for f in frames)
    subprocess.run(cmd, input=data, check=True)


def example(rng, out, name, shapes, colours, fills, bin_):
    """One example: cut-outs, background, clip, composed frame; its list entry."""
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    n = int(rng.integers(1, 3))
    bg = background(rng)
    bg.save(os.path.join(d, "background.png"))
    ents, words = [], []
    for i in range(n):
        shape = shapes[int(rng.integers(len(shapes)))]
        cname = list(colours)[int(rng.integers(len(colours)))]
        fill = fills[int(rng.integers(len(fills)))]
        size = int(rng.integers(18, 26))
        img = entity(shape, colours[cname], fill, size)
        p = os.path.join(d, f"entity_{i}.png")
        img.save(p)
        # Start and end positions: the entity crosses part of the frame.
        x0, y0 = rng.uniform(0, W - size), rng.uniform(0, H - size)
        x1, y1 = rng.uniform(0, W - size), rng.uniform(0, H - size)
        ents.append((img, p, (x0, y0), (x1, y1)))
        words.append(f"a {cname} {'' if fill == 'plain' else fill + ' '}{shape}")
    frames = []
    for f in range(FRAMES):
        t = f / (FRAMES - 1)
        fr = bg.copy()
        for img, _, (x0, y0), (x1, y1) in ents:
            fr.paste(img, (int(round(x0 + (x1 - x0) * t)), int(round(y0 + (y1 - y0) * t))), img)
        frames.append(fr)
    write_clip(os.path.join(d, "clip.mp4"), frames)
    composed = os.path.join(d, "composed.png")
    cmd = [bin_, "--quiet", "compose", "--background", os.path.join(d, "background.png")]
    for _, p, _, _ in ents:
        cmd += ["--entity", p]
    cmd += ["--size", f"{W}x{H}", "-o", composed]
    subprocess.run(cmd, check=True)
    caption = f"{PHRASE} {' and '.join(words).capitalize()} move across the scene."
    return {"file_path": f"{name}/clip.mp4", "text": caption, "image_path": f"{name}/composed.png", "type": "video"}


def data(args):
    out = os.path.join(args.out, "data")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20251201)
    sets = {
        "pretrain": (args.pretrain, OLD_SHAPES, OLD_COLOURS, ["plain"]),
        "lora": (args.lora, NEW_SHAPES, NEW_COLOURS, NEW_FILLS),
        "heldout": (args.heldout, NEW_SHAPES, NEW_COLOURS, NEW_FILLS),
    }
    for set_name, (count, shapes, colours, fills) in sets.items():
        entries = [
            example(rng, out, f"{set_name}_{i:03d}", shapes, colours, fills, args.bin)
            for i in range(count)
        ]
        with open(os.path.join(out, f"{set_name}.json"), "w") as f:
            json.dump(entries, f, indent=1)
        print(f"{set_name}: {count} examples", flush=True)


def base(args):
    import torch
    from diffusers import WanTransformer3DModel

    torch.manual_seed(7)
    out = os.path.join(args.out, "base0")
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    for sub in ["text_encoder", "tokenizer", "scheduler"]:
        shutil.copytree(os.path.join(FIXTURE, sub), os.path.join(out, sub))
    shutil.copy(os.path.join(FIXTURE, "model_index.json"), out)

    # The VAE is the fixture's random-weight one (4 base channels): training even a small
    # Wan VAE takes minutes per step on 2 CPU cores. Generated latents therefore decode to
    # pixels that need not resemble the entities: see docs/finetune.md.
    shutil.copytree(os.path.join(FIXTURE, "vae"), os.path.join(out, "vae"))

    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=4, attention_head_dim=16, in_channels=36,
        out_channels=16, text_dim=32, freq_dim=32, ffn_dim=128, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None,
        rope_max_seq_len=1024,
    )
    transformer.save_pretrained(os.path.join(out, "transformer"), safe_serialization=True)
    print(f"tiny Wan2.2-I2V base in {out}", flush=True)


def merge(args):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    src, dst = os.path.join(args.out, "base0"), os.path.join(args.out, "base")
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    wfile = os.path.join(dst, "transformer", "diffusion_pytorch_model.safetensors")
    weights = load_file(wfile)
    afile = os.path.join(args.out, "pretrain", "adapter.safetensors")
    adapter = load_file(afile)
    with safe_open(afile, "pt") as f:
        meta = f.metadata() or {}
    cfg = json.loads(meta.get("lora_config", "{}"))
    rank, alpha = cfg.get("rank"), cfg.get("alpha")
    merged = 0
    for k, a in adapter.items():
        if not k.endswith(".lora_A.weight"):
            continue
        module = k[len("transformer."):-len(".lora_A.weight")]
        b = adapter[k.replace("lora_A", "lora_B")]
        r = a.shape[0]
        scale = (alpha or r) / (rank or r)
        w = weights[module + ".weight"]
        weights[module + ".weight"] = (w.float() + scale * (b.float() @ a.float())).to(w.dtype)
        merged += 1
    save_file(weights, wfile, metadata={"format": "pt"})
    print(f"merged {merged} adapters (scale {scale}) into {dst}", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=["data", "base", "merge"])
    p.add_argument("--out", required=True)
    p.add_argument("--bin", help="the reelsmith binary (data)")
    p.add_argument("--pretrain", type=int, default=64)
    p.add_argument("--lora", type=int, default=32)
    p.add_argument("--heldout", type=int, default=6)
    args = p.parse_args()
    {"data": data, "base": base, "merge": merge}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())
