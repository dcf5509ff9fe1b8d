//! `reelsmith score IMAGE_OR_VIDEO... [--prompt T]... [--model ID | --model-dir DIR]
//! [--aesthetic-head FILE] [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::decode::Sampling;
use reelsmith::pipeline::score::{self as pipeline, ModelSource, ScoreOptions};
use reelsmith::score::{ScoreConfig, SharpnessNorm};
use serde::Serialize;

use crate::Ctx;

/// Arguments of `reelsmith score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Images (.jpg, .jpeg, .png) and videos to score. Each video's sampled frames are one
    /// set for sharpness normalisation; all images together are another.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Text prompt for saliency (repeatable; a frame's saliency is its best match). Needs a
    /// CLIP model.
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// CLIP model id (Hugging Face), for aesthetics and saliency.
    #[arg(long, conflicts_with = "model_dir")]
    model: Option<String>,
    /// CLIP model folder (Hugging Face layout), for aesthetics and saliency.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// LAION aesthetic predictor head (.pth or .safetensors) matching the CLIP model.
    #[arg(long)]
    aesthetic_head: Option<PathBuf>,
    /// Score about F frames per second of each video (default 1).
    #[arg(long, conflicts_with = "every")]
    fps: Option<f64>,
    /// Score every Nth decoded frame of each video instead.
    #[arg(long)]
    every: Option<u32>,
    /// Normalise sharpness between these percentiles of each set instead of min and max
    /// (e.g. `--robust 5,95`).
    #[arg(long, value_delimiter = ',', num_args = 2, value_names = ["LOW", "HIGH"])]
    robust: Option<Vec<f64>>,
    /// Print `{"rows": [...]}` as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Device for the model: cpu, cuda, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Serialize)]
struct Json<'a> {
    rows: &'a [pipeline::ScoredFrame],
    model_free: bool,
    notes: &'a [String],
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let sampling = match (args.fps, args.every) {
        (Some(f), _) => Sampling::Fps(f),
        (None, Some(n)) => Sampling::EveryNth(n),
        (None, None) => Sampling::Fps(1.0),
    };
    let mut config = ScoreConfig::default();
    if let Some(r) = &args.robust {
        config.sharpness_norm = SharpnessNorm::Percentile {
            low: r[0],
            high: r[1],
            log: true,
        };
    }
    let model = match (args.model, args.model_dir) {
        (Some(id), _) => Some(ModelSource::Id(id)),
        (None, Some(dir)) => Some(ModelSource::Dir(dir)),
        (None, None) => None,
    };
    let opts = ScoreOptions {
        sampling,
        config,
        model,
        aesthetic_head: args.aesthetic_head,
        prompts: args.prompts,
        device: args.device.parse()?,
    };
    let pb = crate::progress::bar(0, "frames", ctx.quiet);
    let report = pipeline::score(&args.inputs, &opts, || pb.inc(1))?;
    pb.finish_and_clear();
    if !ctx.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
    }
    if args.json {
        let json = Json {
            rows: &report.rows,
            model_free: report.model_free,
            notes: &report.notes,
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "{:<40} {:>6} {:>8} {:>12} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "source", "frame", "time", "sharp_var", "sharp", "expo", "aes_raw", "aes", "sal", "score"
    );
    for r in &report.rows {
        let s = &r.score;
        let mut src = r.source.clone();
        if src.chars().count() > 40 {
            src = format!(
                "…{}",
                src.chars()
                    .rev()
                    .take(39)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
            );
        }
        println!(
            "{src:<40} {:>6} {:>8.3} {:>12.2} {:>6.3} {:>6.3} {:>6} {:>6} {:>6} {:>6.3}",
            r.frame,
            r.time,
            s.sharpness_var,
            s.sharpness,
            s.exposure,
            opt(s.aesthetics_raw),
            opt(s.aesthetics),
            opt(s.saliency),
            s.score
        );
    }
    Ok(())
}
