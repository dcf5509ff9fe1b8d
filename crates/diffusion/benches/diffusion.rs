//! Hot paths of the Wan implementation on the CPU: a transformer forward (inference) and a VAE
//! decode, at small sizes with zero weights (timings only; parity is the tests' business).
//! The full-size comparison with diffusers is `benches/wan_vs_diffusers.py` at the repository
//! root.

use criterion::{criterion_group, criterion_main, Criterion};
use reelsmith_diffusion::candle_core::{DType, Device, Tensor};
use reelsmith_diffusion::{WanTransformer, WanTransformerConfig, WanVae, WanVaeConfig};

fn transformer(c: &mut Criterion) {
    let cfg: WanTransformerConfig = serde_json::from_value(serde_json::json!({
        "num_attention_heads": 4, "attention_head_dim": 64, "in_channels": 16,
        "text_dim": 512, "freq_dim": 256, "ffn_dim": 1024, "num_layers": 2
    }))
    .unwrap();
    let vb = candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu);
    let model = WanTransformer::new(vb, &cfg).unwrap();
    let x = Tensor::randn(0f32, 1.0, (1, 16, 3, 16, 16), &Device::Cpu).unwrap();
    let t = Tensor::new(&[500f32], &Device::Cpu).unwrap();
    let ctx = Tensor::randn(0f32, 1.0, (1, 128, 512), &Device::Cpu).unwrap();
    c.bench_function("transformer forward 192 tokens, width 256, 2 blocks", |b| {
        b.iter(|| model.forward(&x, &t, &ctx).unwrap())
    });
}

fn vae(c: &mut Criterion) {
    let cfg: WanVaeConfig = serde_json::from_value(serde_json::json!({
        "base_dim": 16, "z_dim": 16, "num_res_blocks": 1
    }))
    .unwrap();
    let vb = candle_nn::VarBuilder::zeros(DType::F32, &Device::Cpu);
    let vae = WanVae::new(vb, &cfg).unwrap();
    let z = Tensor::randn(0f32, 1.0, (1, 16, 2, 8, 8), &Device::Cpu).unwrap();
    c.bench_function("vae decode 2 latent frames to 5x64x64", |b| {
        b.iter(|| vae.decode(&z).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = transformer, vae
}
criterion_main!(benches);
