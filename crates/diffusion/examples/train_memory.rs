//! Peak memory and time of LoRA training steps on a random Wan transformer, with and without
//! per-block recompute (used for the memory table of docs/finetune.md):
//!
//! ```text
//! cargo run --release -p reelsmith-diffusion --example train_memory -- \
//!     --dim 1536 --heads 12 --ffn 8960 --layers 4 --grid 3x30x52 --rank 128 --recompute on
//! ```
//!
//! `--allocator default` leaves glibc's malloc settings as they are (the `reelsmith` binary
//! tunes them for large buffers). `--grid F×H×W` is the latent grid (tokens = F·H/2·W/2 with Wan's 1×2×2 patches). The
//! weights are seeded random numbers (the values do not change what is allocated). Prints
//! one JSON line: resident memory after building the model and the process's peak (Linux
//! `VmRSS` / `VmHWM`), and the seconds per step.

use std::time::Instant;

use reelsmith_diffusion::candle_core::{DType, Device, Shape, Tensor};
use reelsmith_diffusion::{
    train, LoraConfig, NoiseGenerator, TrainConfig, TrainExample, WanLora, WanTransformer,
    WanTransformerConfig,
};

fn status(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |name: &str, default: &str| -> String {
        let args: Vec<String> = std::env::args().collect();
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
            .unwrap_or_else(|| default.to_string())
    };
    let dim: usize = arg("--dim", "1536").parse()?;
    let heads: usize = arg("--heads", "12").parse()?;
    let ffn: usize = arg("--ffn", "8960").parse()?;
    let layers: usize = arg("--layers", "2").parse()?;
    let rank: usize = arg("--rank", "128").parse()?;
    let steps: usize = arg("--steps", "2").parse()?;
    let recompute = arg("--recompute", "on") == "on";
    let grid: Vec<usize> = arg("--grid", "3x30x52")
        .split('x')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
    let [f, h, w] = grid[..] else {
        return Err("--grid takes FxHxW".into());
    };
    if arg("--allocator", "tuned") == "tuned" {
        reelsmith_models::tune_allocator_for_inference();
    }
    let cfg: WanTransformerConfig = serde_json::from_value(serde_json::json!({
        "num_attention_heads": heads, "attention_head_dim": dim / heads, "in_channels": 36,
        "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": ffn,
        "num_layers": layers, "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads"
    }))?;
    let dev = Device::Cpu;
    // Random weights: built name by name through a backend that draws them.
    let vb = candle_nn::VarBuilder::from_backend(
        Box::new(Drawn(std::sync::Mutex::new(NoiseGenerator::new(1)))),
        DType::F32,
        dev.clone(),
    );
    let mut model = WanTransformer::new(vb, &cfg)?;
    let after_build = status("VmRSS:");
    let mut g = NoiseGenerator::new(2);
    let data: Vec<TrainExample> = (0..2)
        .map(|i| -> Result<TrainExample, Box<dyn std::error::Error>> {
            Ok(TrainExample {
                name: format!("ex{i}"),
                latents: g.randn((16, f, h, w), DType::F32, &dev)?,
                condition: Some(g.randn((20, f, h, w), DType::F32, &dev)?),
                context: g.randn((512, 4096), DType::F32, &dev)?,
                entities: None,
            })
        })
        .collect::<Result<_, _>>()?;
    let mut lora = LoraConfig::new(rank, rank as f64);
    lora.targets = WanLora::FFGO_TARGETS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let tc = TrainConfig {
        lora,
        steps,
        save_every: 0,
        recompute,
        ..TrainConfig::default()
    };
    let out = std::env::temp_dir().join(format!("train_memory_{}", std::process::id()));
    let began = Instant::now();
    let mut times = Vec::new();
    let mut last = began;
    train(&mut model, &data, &tc, &out, false, &mut |_| {
        times.push(last.elapsed().as_secs_f64());
        last = Instant::now();
    })?;
    let _ = std::fs::remove_dir_all(&out);
    let tokens = f * (h / 2) * (w / 2);
    println!(
        "{}",
        serde_json::json!({
            "dim": dim, "heads": heads, "ffn": ffn, "layers": layers, "tokens": tokens,
            "rank": rank, "recompute": recompute, "params": cfg.parameter_count(),
            "rss_after_build_mib": after_build, "peak_rss_mib": status("VmHWM:"),
            "step_s": times,
        })
    );
    Ok(())
}

/// Draws every tensor the model asks for from a seeded generator, scaled like a trained
/// layer (1/√fan-in).
struct Drawn(std::sync::Mutex<NoiseGenerator>);

impl candle_nn::var_builder::SimpleBackend for Drawn {
    fn get(
        &self,
        s: Shape,
        _: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> reelsmith_diffusion::candle_core::Result<Tensor> {
        let fan_in = s.dims().last().copied().unwrap_or(1).max(1);
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let t = g
            .randn(s.dims(), DType::F32, dev)
            .map_err(|e| reelsmith_diffusion::candle_core::Error::Msg(e.to_string()))?;
        (t / (fan_in as f64).sqrt())?.to_dtype(dtype)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _: DType,
        _: &Device,
    ) -> reelsmith_diffusion::candle_core::Result<Tensor> {
        Err(reelsmith_diffusion::candle_core::Error::Msg(format!(
            "{name}: shape needed"
        )))
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}
