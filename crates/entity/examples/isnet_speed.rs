//! One ISNet forward pass at 1024² on the CPU, timed; run under `/usr/bin/time -v` for CPU
//! seconds and peak memory:
//! `cargo run --release -p reelsmith-entity --example isnet_speed -- WEIGHTS IMAGE_1024 [RUNS]`.

use std::time::Instant;

use candle_core::Device;
use reelsmith_entity::segment::IsnetSegmenter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: isnet_speed WEIGHTS IMAGE_1024 [RUNS]");
        std::process::exit(2);
    }
    let runs: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let seg = IsnetSegmenter::load(args[1].as_ref(), &Device::Cpu)?;
    let img = image::open(&args[2])?.to_rgb8();
    for _ in 0..runs {
        let t = Instant::now();
        let p = seg.probability_of_input(&img)?;
        println!(
            "forward {:.3} s wall, mean p {:.6}",
            t.elapsed().as_secs_f64(),
            p.data.iter().map(|&v| v as f64).sum::<f64>() / p.data.len() as f64
        );
    }
    Ok(())
}
