#!/usr/bin/env python3
"""Loads a LoRA adapter trained by reelsmith into diffusers' WanTransformer3DModel through PEFT
and compares a forward with reelsmith's (unmerged and merged).

    python3 benches/lora_vs_diffusers.py [--transformer DIR] [--adapter ADAPTER_DIR] [--steps N]

Without --adapter it first trains one with reelsmith's trainer (a few steps on the tiny
Wan2.2-I2V expert fixture, rank 4, random-ish data):

    cargo test -p reelsmith-diffusion --test diffusion lora_export -- --ignored

which writes adapter.safetensors (PEFT naming) and adapter_config.json to
$CARGO_TARGET_DIR/lora_export/. `cargo run --example lora_forward` then writes reelsmith's
outputs (without the adapter, unmerged, merged), and this script loads the same transformer
folder in diffusers, adds the adapter with PEFT (`LoraConfig` from adapter_config.json, the
weights from adapter.safetensors without diffusers' `transformer.` prefix), runs the same
inputs and prints the largest differences. Exit status 1 on a mismatch above 1e-4.
"""

import argparse
import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--transformer",
        default=os.path.join(ROOT, "crates/diffusion/tests/fixtures/wan22_i2v/transformer"),
    )
    ap.add_argument("--adapter", default=None, help="folder with adapter.safetensors + adapter_config.json")
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    env = dict(os.environ)
    target = env.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    adapter_dir = args.adapter or os.path.join(target, "lora_export")
    if args.adapter is None:
        env["REELSMITH_LORA_EXPORT"] = adapter_dir
        subprocess.run(
            ["cargo", "test", "-q", "-p", "reelsmith-diffusion", "--test", "diffusion",
             "lora_export", "--", "--ignored"],
            check=True, cwd=ROOT, env=env,
        )
    out = os.path.join(adapter_dir, "reelsmith_forward.safetensors")
    subprocess.run(
        ["cargo", "run", "-q", "-p", "reelsmith-diffusion", "--example", "lora_forward", "--",
         args.transformer, os.path.join(adapter_dir, "adapter.safetensors"), out, str(args.scale)],
        check=True, cwd=ROOT, env=env,
    )
    ours = load_file(out)

    from diffusers import WanTransformer3DModel
    from peft import LoraConfig, set_peft_model_state_dict

    model = WanTransformer3DModel.from_pretrained(args.transformer, torch_dtype=torch.float32).eval()
    x, ctx, t = ours["hidden_states"], ours["encoder_hidden_states"], ours["timestep"]
    with torch.no_grad():
        base = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    model.add_adapter(
        LoraConfig(r=cfg["r"], lora_alpha=cfg["lora_alpha"], target_modules=cfg["target_modules"],
                   init_lora_weights=False)
    )
    sd = load_file(os.path.join(adapter_dir, "adapter.safetensors"))
    # An entity cross-attention trained with the LoRA is stored under its own prefix
    # (`entity_attn.`): not part of the LoRA, it is left out here (diffusers' own
    # `load_lora_weights` keeps only `transformer.` keys).
    sd = {k.removeprefix("transformer."): v for k, v in sd.items() if not k.startswith("entity_attn.")}
    res = set_peft_model_state_dict(model, sd, adapter_name="default")
    unexpected = getattr(res, "unexpected_keys", [])
    if unexpected:
        sys.exit(f"PEFT did not take {len(unexpected)} tensors, e.g. {unexpected[:3]}")
    if args.scale != 1.0:
        model.set_adapters(["default"], weights=[args.scale])
    with torch.no_grad():
        theirs = model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)[0]

    def md(a, b):
        return (a - b).abs().max().item()

    print(f"adapter: {len(sd) // 2} LoRA layers, rank {cfg['r']}, alpha {cfg['lora_alpha']}")
    print(f"base forward      max|reelsmith - diffusers| = {md(ours['base'], base):.3e}")
    print(f"LoRA forward      max|reelsmith - diffusers+PEFT| = {md(ours['lora'], theirs):.3e}")
    print(f"merged LoRA       max|reelsmith merged - diffusers+PEFT| = {md(ours['lora_merged'], theirs):.3e}")
    print(f"effect of the LoRA  max|with - without| = {md(theirs, base):.3e}")
    ok = md(ours["lora"], theirs) < 1e-4 and md(theirs, base) > 1e-3
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
