//! The fused CPU kernels against the composed (differentiable) paths at CLIP ViT-B sizes:
//! a linear layer, layer norm, softmax and attention over 16 images × 50 tokens.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reelsmith_models::candle_core::{DType, Device, Tensor, Var};
use reelsmith_models::ops::{self, AttentionMask};
use reelsmith_models::SeededRng;

fn randn(seed: u64, shape: &[usize]) -> Tensor {
    SeededRng::new(seed)
        .randn(shape, DType::F32, &Device::Cpu)
        .unwrap()
}

/// The same tensor as a variable, which sends the ops down their composed path.
fn tracked(t: &Tensor) -> Tensor {
    Var::from_tensor(t).unwrap().as_tensor().clone()
}

fn bench(c: &mut Criterion) {
    let (b, t, d, h) = (16, 50, 768, 12);
    let x = randn(0, &[b, t, d]);
    let w = randn(1, &[d, d]);
    let bias = randn(2, &[d]);
    let gamma = randn(3, &[d]);
    let scores = randn(4, &[b, h, t, t]);
    let q = randn(5, &[b, t, h, d / h]);
    let scale = 1.0 / ((d / h) as f64).sqrt();
    let mut g = c.benchmark_group("layers");
    g.throughput(Throughput::Elements((b * t) as u64));
    g.sample_size(20);
    for (path, xx) in [("fused", x.clone()), ("composed", tracked(&x))] {
        g.bench_function(format!("linear_768/{path}"), |bn| {
            bn.iter(|| ops::linear(&xx, &w, Some(&bias)).unwrap())
        });
        g.bench_function(format!("layer_norm_768/{path}"), |bn| {
            bn.iter(|| ops::layer_norm(&xx, Some(&gamma), Some(&bias), 1e-5).unwrap())
        });
    }
    for (path, s) in [("fused", scores.clone()), ("composed", tracked(&scores))] {
        g.bench_function(format!("softmax_50/{path}"), |bn| {
            bn.iter(|| ops::softmax_last_dim(&s).unwrap())
        });
    }
    for (path, qq) in [("fused", q.clone()), ("composed", tracked(&q))] {
        g.bench_function(format!("attention_12x64/{path}"), |bn| {
            bn.iter(|| ops::attention(&qq, &q, &q, AttentionMask::None, scale).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
