//! Prints images per second of the CLIP and DINOv2 image towers (used by
//! `benches/embed_vs_pytorch.py`).
//!
//! `cargo run --release -p reelsmith-embed --example throughput -- CLIP_DIR DINO_DIR [SECONDS [clip|dinov2 [BATCH]]]`

use std::time::Instant;

use reelsmith_embed::candle_core::{Device, Tensor};
use reelsmith_embed::{ClipModel, DeviceChoice, Dinov2Model};

fn rate(mut run: impl FnMut(), batch: usize, seconds: f64) -> f64 {
    run(); // warm-up
    let t = Instant::now();
    let mut n = 0usize;
    while n == 0 || t.elapsed().as_secs_f64() < seconds {
        run();
        n += batch;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // as the `reelsmith` binary does
    reelsmith_embed::models::tune_allocator_for_inference();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: throughput CLIP_DIR DINO_DIR [SECONDS]");
        std::process::exit(2);
    }
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    // Optional filters, for profiling one model at one batch size.
    let only_model = args.get(3).map(String::as_str);
    let only_batch: Option<usize> = args.get(4).and_then(|s| s.parse().ok());
    let clip = ClipModel::from_dir(&args[0], DeviceChoice::Cpu)?;
    let dino = Dinov2Model::from_dir(&args[1], DeviceChoice::Cpu)?;
    let cs = clip.config().vision_config.image_size;
    let ds = dino
        .preprocessor()
        .crop
        .map(|c| c.0 as usize)
        .unwrap_or(224);
    for batch in [1usize, 16] {
        if only_batch.is_some_and(|b| b != batch) {
            continue;
        }
        if only_model != Some("dinov2") {
            let px = Tensor::randn(0f32, 1.0, (batch, 3, cs, cs), &Device::Cpu)?;
            let r = rate(|| drop(clip.forward_pixels(&px).unwrap()), batch, seconds);
            println!("{{\"impl\": \"reelsmith\", \"model\": \"clip\", \"batch\": {batch}, \"img_per_s\": {r:.2}}}");
        }
        if only_model == Some("clip") {
            continue;
        }
        let px = Tensor::randn(0f32, 1.0, (batch, 3, ds, ds), &Device::Cpu)?;
        let r = rate(|| drop(dino.forward_pixels(&px).unwrap()), batch, seconds);
        println!("{{\"impl\": \"reelsmith\", \"model\": \"dinov2\", \"batch\": {batch}, \"img_per_s\": {r:.2}}}");
    }
    Ok(())
}
