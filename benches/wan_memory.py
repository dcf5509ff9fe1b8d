#!/usr/bin/env python3
"""Memory estimate of Wan sampling with reelsmith-diffusion, printed as the markdown table of
docs/diffusion.md. Nothing is measured: the numbers are computed from the parameter counts
(diffusers/transformers models built on the meta device) and from the sizes of the largest
activations the implementation keeps alive at once.

    python3 benches/wan_memory.py

Phases of one generation (batch 1, guidance branches run one after the other):
  1. text: the UMT5-XXL encoder (released afterwards) + the resident VAE;
  2. denoise: one expert (the other is not resident) + its activations + the VAE;
  3. decode: the VAE + its decoder activations (the expert is released before decoding).
The peak is the largest phase.
"""

GB = 1e9

# Parameter counts (diffusers 0.42.1 / transformers 5.24 on the meta device).
PARAMS = {
    "1.3B": 1_418_996_800,
    "5B": 4_999_787_712,
    "14B": 14_288_901_184,  # one of the two A14B experts
}
UMT5_XXL = 5_680_910_336
VAE = {"2.1": 126_892_531, "2.2": 704_688_668}

# width, FFN width, heads, VAE, VAE spatial factor
ARCH = {
    "1.3B": (1536, 8960, 12, "2.1", 8),
    "5B": (3072, 14336, 24, "2.2", 16),
    "14B": (5120, 13824, 40, "2.1", 8),
}
# (width, height) per resolution; the TI2V-5B 720p size is 1280x704 (multiple of 32).
SIZES = {"480p": (832, 480), "720p": (1280, 720)}
FRAMES = 81
ATTENTION_CHUNK = 2**26  # score elements materialised at once (layers.rs)


def tokens(model, res):
    w, h = SIZES[res]
    _, _, _, _, s = ARCH[model]
    if model == "5B" and res == "720p":
        h = 704
    t = (FRAMES - 1) // 4 + 1
    return t * (h // s // 2) * (w // s // 2), (w, h)


def transformer_activations(model, seq, bytes_):
    d, f, heads, _, _ = ARCH[model]
    # Inside a block: the f32 residual stream and its normalised copy, q/k/v and their
    # per-head copies, the attention output (≈ 10 · d per token), the FFN's hidden layer and
    # its GELU (2 · f per token); plus the attention scores of one query chunk (f32, with the
    # exponentials: 3 copies).
    per_token = (2 * f + 8 * d) * bytes_ + 2 * d * 4
    return seq * per_token + 3 * ATTENTION_CHUNK * 4


def decode_activations(vae, w, h):
    # The decoder's last level on one latent frame (4 output frames): about six live tensors
    # of channels × 4 frames × pixels, three of them the stacked time taps of a causal conv.
    if vae == "2.1":
        ch, px = 96, w * h
    else:
        ch, px = 256, (w // 2) * (h // 2)
    return 6 * ch * 4 * px * 4


def main():
    rows = []
    for model in ["1.3B", "5B", "14B"]:
        for res in ["480p", "720p"]:
            seq, (w, h) = tokens(model, res)
            vae = ARCH[model][3]
            vae_w = VAE[vae] * 4
            dec = decode_activations(vae, w, h)
            out = []
            for name, b in [("bf16", 2), ("f32", 4)]:
                weights = PARAMS[model] * b
                act = transformer_activations(model, seq, b)
                text = UMT5_XXL * b
                peak = max(text + vae_w, weights + act + vae_w, vae_w + dec)
                cached = max(weights + act + vae_w, vae_w + dec)
                out.append((weights, act, text, peak, cached))
            rows.append((model, res, f"{w}x{h}", seq, out, vae_w + dec))
    print(
        "| model | size, 81 frames | tokens | transformer weights bf16 / f32 | activations bf16 / f32 "
        "| UMT5-XXL bf16 / f32 | VAE + decode (f32) | peak bf16 / f32 | peak with cached prompts bf16 / f32 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for model, res, size, seq, out, vae in rows:
        (wb, ab, tb, pb, cb), (wf, af, tf, pf, cf) = out
        print(
            f"| {model} | {res} {size} | {seq:,} | {wb / GB:.1f} / {wf / GB:.1f} | {ab / GB:.1f} / {af / GB:.1f} "
            f"| {tb / GB:.1f} / {tf / GB:.1f} | {vae / GB:.1f} | **{pb / GB:.0f} / {pf / GB:.0f} GB** "
            f"| {cb / GB:.0f} / {cf / GB:.0f} GB |"
        )


if __name__ == "__main__":
    main()
