//! Throughput of the CLIP and DINOv2 image towers on the CPU at batch 1 and 16.
//!
//! Uses the full-size random-weight checkpoints made by
//! `tests/fixtures/gen.py --full --out DIR` when `REELSMITH_FULLSIZE=DIR` is set, else the
//! small test checkpoints. `benches/embed_vs_pytorch.py` compares with PyTorch.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reelsmith_embed::candle_core::{DType, Device, Tensor};
use reelsmith_embed::{ClipModel, DeviceChoice, Dinov2Model};

fn dirs() -> (PathBuf, PathBuf) {
    match std::env::var("REELSMITH_FULLSIZE") {
        Ok(d) => (
            Path::new(&d).join("clip-vit-b32"),
            Path::new(&d).join("dinov2-s"),
        ),
        Err(_) => {
            let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
            (f.join("clip-quickgelu"), f.join("dinov2"))
        }
    }
}

fn pixels(batch: usize, side: usize) -> Tensor {
    Tensor::randn(0f32, 1.0, (batch, 3, side, side), &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let (clip_dir, dino_dir) = dirs();
    let clip = ClipModel::from_dir(&clip_dir, DeviceChoice::Cpu).expect("CLIP checkpoint");
    let dino = Dinov2Model::from_dir(&dino_dir, DeviceChoice::Cpu).expect("DINOv2 checkpoint");
    let clip_side = clip.config().vision_config.image_size;
    let dino_side = match dino.preprocessor().crop {
        Some((w, _)) => w as usize,
        None => 224,
    };
    let mut g = c.benchmark_group("image_tower");
    g.sample_size(10);
    for batch in [1usize, 16] {
        g.throughput(Throughput::Elements(batch as u64));
        let px = pixels(batch, clip_side);
        g.bench_with_input(BenchmarkId::new("clip", batch), &px, |b, px| {
            b.iter(|| clip.forward_pixels(px).unwrap())
        });
        let px = pixels(batch, dino_side);
        g.bench_with_input(BenchmarkId::new("dinov2", batch), &px, |b, px| {
            b.iter(|| dino.forward_pixels(px).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
