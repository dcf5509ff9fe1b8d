//! Writes a transformer forward with a LoRA adapter, for `benches/lora_vs_diffusers.py`:
//!
//! ```text
//! cargo run -p reelsmith-diffusion --example lora_forward -- TRANSFORMER_DIR ADAPTER OUT.safetensors [SCALE]
//! ```
//!
//! The inputs (seeded noise: latents `[1, in, 2, 4, 4]`, timestep 700, text `[1, 6, text_dim]`)
//! and the outputs without and with the adapter (unmerged, and merged) go to OUT.

use std::collections::HashMap;
use std::path::PathBuf;

use reelsmith_diffusion::candle_core::{DType, Device, Tensor};
use reelsmith_diffusion::{NoiseGenerator, WanLora, WanTransformer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: lora_forward TRANSFORMER_DIR ADAPTER OUT.safetensors [SCALE]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[0]);
    let scale: f64 = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let mut m = WanTransformer::load(&dir, None, DType::F32, &Device::Cpu)?;
    let cfg = m.config().clone();
    let mut g = NoiseGenerator::new(2024);
    let x = g.randn((1, cfg.in_channels, 2, 4, 4), DType::F32, &Device::Cpu)?;
    let ctx = g.randn((1, 6, cfg.text_dim), DType::F32, &Device::Cpu)?;
    let t = Tensor::new(&[700f32], &Device::Cpu)?;
    let base = m.forward(&x, &t, &ctx)?;
    let lora = WanLora::load(args[1].as_ref(), &m)?;
    m.add_lora(&lora, scale)?;
    let unmerged = m.forward(&x, &t, &ctx)?;
    m.merge_lora()?;
    let merged = m.forward(&x, &t, &ctx)?;
    let mut out = HashMap::new();
    out.insert("hidden_states".to_string(), x);
    out.insert("encoder_hidden_states".to_string(), ctx);
    out.insert("timestep".to_string(), t);
    out.insert("base".to_string(), base);
    out.insert("lora".to_string(), unmerged);
    out.insert("lora_merged".to_string(), merged);
    reelsmith_diffusion::candle_core::safetensors::save(&out, &args[2])?;
    eprintln!("wrote {}", args[2]);
    Ok(())
}
