//! `reelsmith embed IMAGE_OR_VIDEO... [--text T]... (--model ID | --model-dir DIR) [--fps F]
//! [--device D] (-o OUT.safetensors | --json)`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::embed::HubOptions;
use reelsmith::pipelines::embed::{self, EmbedConfig, EmbedInput};
use serde::Serialize;

use crate::out::{note, print};
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith embed`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("weights").required(true).args(["model", "model_dir"])))]
#[command(group(clap::ArgGroup::new("out").required(true).args(["output", "json"])))]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Images (png, jpg, webp, bmp, gif, tiff, ppm) and videos (anything else); videos are
    /// sampled at --fps.
    inputs: Vec<PathBuf>,
    /// A text to embed with CLIP's text tower (repeatable).
    #[arg(long = "text", value_name = "T")]
    texts: Vec<String>,
    /// The model (--model ID or --model-dir DIR) and its device.
    #[command(flatten)]
    model: super::ModelArgs,
    /// Hub revision (default: the one pinned in the model's manifest).
    #[arg(long, requires = "model")]
    revision: Option<String>,
    /// Use only the local Hugging Face cache (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Frames per second sampled from videos.
    #[arg(long, default_value_t = 1.0, value_name = "F")]
    fps: f64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Reuse and store video embeddings in this folder (keyed by file, model, sampling).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Write the embeddings as safetensors: `images` (n×d), `texts` (m×d), `times` (n)
    /// (seconds; 0 for still images), `source` (n: index of the input each row comes from).
    #[arg(long, short, value_name = "OUT.safetensors")]
    output: Option<PathBuf>,
    /// Print {"model", "dim", "images": [[...]], "texts": [[...]]} to stdout (raw projected
    /// CLIP or pooled DINOv2 embeddings, not normalised).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct JsonOut<'a> {
    model: &'a str,
    dim: usize,
    images: Vec<&'a [f32]>,
    texts: Vec<&'a [f32]>,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let config = EmbedConfig {
        model: args.model.choice().unwrap_or_default(),
        fps: args.fps,
        batch: args.batch,
        cache: args.cache.clone(),
    };
    let mut hub = HubOptions::default();
    if args.offline {
        hub = hub.offline(true);
    }
    if let Some(r) = &args.revision {
        hub = hub.revision(r.clone());
    }
    let models = args.model.models(hub, ctx.quiet)?;
    let input = EmbedInput {
        files: &args.inputs,
        texts: &args.texts,
        output: args.output.as_deref(),
        models: &models,
    };
    let report = embed::run(&input, &config, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        for &(i, frames, cached) in &report.videos {
            note!(
                "{}: {frames} frames{}",
                args.inputs[i].display(),
                if cached { " (from cache)" } else { "" }
            );
        }
    }
    if args.json {
        let out = JsonOut {
            model: &report.model,
            dim: report.dim,
            images: report.images.rows().collect(),
            texts: report.texts.rows().collect(),
        };
        print(|w| {
            serde_json::to_writer(&mut *w, &out)?;
            writeln!(w)
        })?;
    }
    if let (Some(path), false) = (&args.output, ctx.quiet) {
        note!(
            "wrote {} image and {} text embeddings of width {} to {}",
            report.images.len(),
            report.texts.len(),
            report.dim,
            path.display()
        );
    }
    Ok(())
}
