//! CPU-seconds per image of the CLIP and DINOv2 image towers: a load-insensitive A/B
//! measure for a shared machine (run with `RAYON_NUM_THREADS=1`, so no thread spins while
//! waiting for a descheduled peer). Process CPU time comes from `/proc/self/stat` (Linux).
//!
//! `cargo run --release -p reelsmith-embed --example cpu_time -- CLIP_DIR DINO_DIR [ITERS]`

use std::time::Instant;

use reelsmith_embed::candle_core::{Device, Tensor};
use reelsmith_embed::{ClipModel, DeviceChoice, Dinov2Model};

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which is in parentheses and may hold spaces)
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name
    (ticks(11) + ticks(12)) / 100.0
}

fn measure(run: impl Fn(), batch: usize, iters: usize) -> (f64, f64) {
    run();
    let (c0, t0) = (cpu_seconds(), Instant::now());
    for _ in 0..iters {
        run();
    }
    let n = (iters * batch) as f64;
    ((cpu_seconds() - c0) / n, t0.elapsed().as_secs_f64() / n)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // as the `reelsmith` binary does
    reelsmith_embed::models::tune_allocator_for_inference();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: cpu_time CLIP_DIR DINO_DIR [ITERS]");
        std::process::exit(2);
    }
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(8);
    let clip = ClipModel::from_dir(&args[0], DeviceChoice::Cpu)?;
    let dino = Dinov2Model::from_dir(&args[1], DeviceChoice::Cpu)?;
    for batch in [1usize, 16] {
        let iters = if batch == 1 { iters * 8 } else { iters };
        let px = Tensor::randn(0f32, 1.0, (batch, 3, 224, 224), &Device::Cpu)?;
        let (c, w) = measure(|| drop(clip.forward_pixels(&px).unwrap()), batch, iters);
        println!("{{\"model\": \"clip\", \"batch\": {batch}, \"cpu_s_per_img\": {c:.5}, \"wall_s_per_img\": {w:.5}}}");
        let (c, w) = measure(|| drop(dino.forward_pixels(&px).unwrap()), batch, iters);
        println!("{{\"model\": \"dinov2\", \"batch\": {batch}, \"cpu_s_per_img\": {c:.5}, \"wall_s_per_img\": {w:.5}}}");
    }
    Ok(())
}
