//! One Wan transformer forward on saved inputs, timed (used by `benches/wan_vs_diffusers.py`).
//!
//! `cargo run -p reelsmith-diffusion --example wan_forward -- TRANSFORMER_DIR INPUTS OUT [REPEAT]`
//!
//! INPUTS is a safetensors file with `hidden_states`, `timestep` and `context`; OUT gets `out`.
//! Prints one JSON line with the load time and the fastest forward's wall and CPU time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use reelsmith_diffusion::candle_core::{DType, Device};
use reelsmith_diffusion::WanTransformer;

/// CPU seconds (user + system) this process has used, from `/proc/self/stat` (Linux; 0
/// elsewhere): with other load on the machine it tells the work done better than wall time.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks, 100 Hz).
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: wan_forward TRANSFORMER_DIR INPUTS OUT [REPEAT]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[0]);
    let repeat: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(1);
    let t0 = Instant::now();
    let model = WanTransformer::load(&dir, None, DType::F32, &Device::Cpu)?;
    let load_s = t0.elapsed().as_secs_f64();
    let inputs = reelsmith_diffusion::candle_core::safetensors::load(&args[1], &Device::Cpu)?;
    let mut best = f64::INFINITY;
    let mut best_cpu = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let c = cpu_seconds();
        let o = model.forward(
            &inputs["hidden_states"],
            &inputs["timestep"],
            &inputs["context"],
        )?;
        best = best.min(t.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_seconds() - c);
        out = Some(o);
    }
    let out = out.expect("at least one forward");
    reelsmith_diffusion::candle_core::safetensors::save(
        &HashMap::from([("out".to_string(), out)]),
        &args[2],
    )?;
    println!(
        "{{\"load_s\": {load_s:.3}, \"forward_s\": {best:.3}, \"forward_cpu_s\": {best_cpu:.3}}}"
    );
    Ok(())
}
