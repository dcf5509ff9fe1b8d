//! Hot paths of reelsmith-entity: the ISNet forward pass (the real network at 1024² when
//! `REELSMITH_SHARED` points at the shared models, else the tiny test network at 256²),
//! instance extraction from a probability map, and COCO RLE encoding.
//! `benches/isnet_vs_onnxruntime.py` compares the forward pass with onnxruntime.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use reelsmith_entity::instances::{instances_from_probability, InstanceOptions, ProbabilityMap};
use reelsmith_entity::isnet::{load_isnet, IsnetConfig};

fn bench(c: &mut Criterion) {
    let shared = std::env::var("REELSMITH_SHARED")
        .ok()
        .map(|s| Path::new(&s).join("models/isnet/isnet-general-use.safetensors"))
        .filter(|p| p.is_file());
    let (model, side, name) = match shared {
        Some(p) => (
            load_isnet(&p, &IsnetConfig::default(), &Device::Cpu).expect("ISNet weights"),
            1024,
            "isnet_forward_1024",
        ),
        None => {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/isnet-tiny/isnet_tiny_upstream.pth");
            let cfg = IsnetConfig {
                unit: 1,
                ..IsnetConfig::default()
            };
            (
                load_isnet(&p, &cfg, &Device::Cpu).expect("tiny ISNet"),
                256,
                "isnet_tiny_forward_256",
            )
        }
    };
    let x = Tensor::zeros((1, 3, side, side), candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut g = c.benchmark_group("isnet");
    g.sample_size(10);
    g.bench_function(name, |b| b.iter(|| model.forward(&x).unwrap()));
    g.finish();

    // A 1280x720 map with a few blobs.
    let (w, h) = (1280u32, 720u32);
    let data: Vec<f32> = (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as f32, (i / w) as f32);
            let d1 = ((x - 400.0).powi(2) + (y - 360.0).powi(2)).sqrt();
            let d2 = ((x - 900.0).powi(2) + (y - 300.0).powi(2)).sqrt();
            if d1 < 200.0 || d2 < 120.0 {
                0.9
            } else {
                0.05
            }
        })
        .collect();
    let map = ProbabilityMap::new(w, h, data).unwrap();
    c.bench_function("instances_1280x720", |b| {
        b.iter(|| instances_from_probability(&map, &InstanceOptions::default()))
    });
    let inst = instances_from_probability(&map, &InstanceOptions::default());
    c.bench_function("rle_encode_1280x720", |b| {
        b.iter(|| inst[0].mask.to_rle().to_coco_string())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
