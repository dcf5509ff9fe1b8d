//! `reelsmith score IMAGE_OR_VIDEO... [--prompt T]... [--model ID | --model-dir DIR]
//! [--aesthetic-head FILE] [--json]`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use reelsmith::embed::HubOptions;
use reelsmith::pipelines::score::{self as pipeline, ScoringConfig, ScoringInput};
use reelsmith::score::SharpnessNorm;
use serde::Serialize;

use crate::out::{note, print};
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith score`. Flags override `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Images (.jpg, .jpeg, .png, ...) and videos to score. Each video's sampled frames are
    /// one set for sharpness normalisation; all images together are another.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Text prompt for saliency (repeatable; a frame's saliency is its best match). Needs a
    /// CLIP model.
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// LAION aesthetic predictor head (.pth or .safetensors) matching the CLIP model.
    #[arg(long)]
    aesthetic_head: Option<PathBuf>,
    /// Score about F frames per second of each video [default: 1].
    #[arg(long, conflicts_with = "every")]
    fps: Option<f64>,
    /// Score every Nth decoded frame of each video instead.
    #[arg(long)]
    every: Option<u32>,
    /// Normalise sharpness between these percentiles of each set instead of min and max
    /// (e.g. `--robust 5,95`).
    #[arg(long, value_name = "LOW,HIGH", value_parser = percentiles)]
    robust: Option<(f64, f64)>,
    /// Print `{"rows": [...]}` as JSON on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Settings file (.toml or .json) with the fields of the score configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The CLIP model for aesthetics and saliency [default: none].
    #[command(flatten)]
    model: super::ModelArgs,
}

#[derive(Serialize)]
struct Json<'a> {
    rows: &'a [pipeline::ScoredFrame],
    model_free: bool,
    notes: &'a [String],
}

/// Parses `LOW,HIGH` (two numbers, the ranges are checked with the rest of the
/// configuration).
fn percentiles(s: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [low, high] = parts[..] else {
        return Err(format!(
            "'{s}' is not two percentiles LOW,HIGH such as 5,95"
        ));
    };
    let number = |p: &str| {
        p.parse::<f64>()
            .map_err(|_| format!("'{p}' in '{s}' is not a number; give LOW,HIGH such as 5,95"))
    };
    Ok((number(low)?, number(high)?))
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let mut config: ScoringConfig = super::base_config(args.config.as_deref())?;
    if let Some(f) = args.fps {
        config.fps = f;
        config.every = None;
    }
    if args.every.is_some() {
        config.every = args.every;
    }
    if let Some((low, high)) = args.robust {
        config.score.sharpness_norm = SharpnessNorm::Percentile {
            low,
            high,
            log: true,
        };
    }
    if let Some(m) = args.model.choice() {
        config.model = m;
    }
    if !args.prompts.is_empty() {
        config.prompts = args.prompts.clone();
    }
    if args.aesthetic_head.is_some() {
        config.aesthetic_head = args.aesthetic_head.clone();
    }
    let models = args.model.models(HubOptions::default(), ctx.quiet)?;
    let input = ScoringInput::new(&args.inputs, &models);
    let report = pipeline::run(&input, &config, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        for n in &report.notes {
            note!("note: {n}");
        }
    }
    if args.json {
        let json = Json {
            rows: &report.rows,
            model_free: report.model_free,
            notes: &report.notes,
        };
        print(|w| {
            serde_json::to_writer_pretty(&mut *w, &json)?;
            writeln!(w)
        })?;
        return Ok(());
    }
    print(|w| write_table(w, &report.rows))?;
    Ok(())
}

/// The rows as a text table.
fn write_table(w: &mut dyn Write, rows: &[pipeline::ScoredFrame]) -> std::io::Result<()> {
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    writeln!(
        w,
        "{:<40} {:>6} {:>8} {:>12} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "source", "frame", "time", "sharp_var", "sharp", "expo", "aes_raw", "aes", "sal", "score"
    )?;
    for r in rows {
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
        writeln!(
            w,
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
        )?;
    }
    Ok(())
}
