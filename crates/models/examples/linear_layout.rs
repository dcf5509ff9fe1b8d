//! Times the fused CPU linear layer with the weight's storage as checkpoints keep it
//! (`[out, in]`, read transposed through strides) and transposed (`[in, out]` in memory),
//! at the shapes of CLIP ViT-B/32 and DINOv2-S layers: why `Linear::new` re-lays weights
//! out for CPU inference.
//!
//! `cargo run --release -p reelsmith-models --example linear_layout [SECONDS]`

use std::time::Instant;

use reelsmith_models::candle_core::{DType, Device};
use reelsmith_models::{ops, SeededRng};

/// Microseconds per call, over about `seconds` after one warm-up call.
fn time(seconds: f64, f: impl Fn()) -> f64 {
    f();
    let t = Instant::now();
    let mut n = 0u32;
    while n == 0 || t.elapsed().as_secs_f64() < seconds {
        f();
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(0);
    // (tokens, in, out): CLIP B/32 at batch 1 and 16, DINOv2-S at batch 1, a projection
    for (m, k, n) in [
        (1usize, 768usize, 512usize),
        (50, 768, 768),
        (50, 768, 3072),
        (50, 3072, 768),
        (800, 768, 768),
        (257, 384, 384),
        (257, 384, 1536),
        (257, 1536, 384),
    ] {
        let x = rng.randn((m, k), DType::F32, &dev)?;
        let stored = rng.randn((n, k), DType::F32, &dev)?;
        let b = rng.randn(n, DType::F32, &dev)?;
        let transposed = stored.t()?.contiguous()?.t()?;
        let a = time(seconds, || drop(ops::linear(&x, &stored, Some(&b))));
        let c = time(seconds, || drop(ops::linear(&x, &transposed, Some(&b))));
        println!(
            "{m:4} x {k:4} -> {n:4}: [out, in] storage {a:9.1} us, [in, out] storage {c:9.1} us, ratio {:.2}",
            a / c
        );
    }
    Ok(())
}
