//! `reelsmith keyframes VIDEO --method quantile|seams -o DIR`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::decode::ImageFormat;
use reelsmith::keyframes::{KeyframeMethod, KeyframeOptions};
use serde::Serialize;

use crate::Ctx;

/// Keyframe methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Frames whose change exceeds the quantile of all changes (ComfyUI ExtractKeyframes).
    Quantile,
    /// One representative frame per segment of a seam segmentation.
    Seams,
}

/// Arguments of `reelsmith keyframes`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// How keyframes are picked.
    #[arg(long, value_enum, default_value_t = MethodArg::Quantile)]
    method: MethodArg,
    /// Write keyframe_NNNNNN.jpg (NNNNNN = 0-based frame index) and keyframes.json here.
    #[arg(long, short)]
    output: PathBuf,
    /// Quantile for `--method quantile`, in [0, 1].
    #[arg(long, default_value_t = 0.85)]
    quantile: f64,
    /// Write PNG instead of JPEG.
    #[arg(long)]
    png: bool,
    /// JPEG quality 1..=100.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
}

#[derive(Serialize)]
struct KeyframeJson {
    frame: usize,
    time: f64,
    path: String,
}

#[derive(Serialize)]
struct KeyframesJson<'a> {
    video: &'a std::path::Path,
    method: &'static str,
    keyframes: Vec<KeyframeJson>,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let (method, name) = match args.method {
        MethodArg::Quantile => (KeyframeMethod::Quantile, "quantile"),
        MethodArg::Seams => (KeyframeMethod::Seams, "seams"),
    };
    let opts = KeyframeOptions {
        method,
        quantile: args.quantile,
        format: if args.png {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg(args.quality)
        },
        ..Default::default()
    };
    let pb = crate::progress::bar(0, "analyse", ctx.quiet);
    let mut stage = "analyse";
    let start = std::time::Instant::now();
    let keyframes = reelsmith::keyframes::extract_keyframes_with_progress(
        &args.video,
        &args.output,
        &opts,
        |p| {
            if p.stage != stage {
                stage = p.stage;
                pb.set_message(stage);
                pb.reset();
            }
            if let Some(total) = p.total {
                if pb.length() != Some(total) {
                    pb.set_length(total);
                }
            }
            pb.set_position(p.done);
        },
    )?;
    pb.finish_and_clear();
    let json = KeyframesJson {
        video: &args.video,
        method: name,
        keyframes: keyframes
            .iter()
            .map(|k| KeyframeJson {
                frame: k.frame,
                time: k.time,
                path: k
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            })
            .collect(),
    };
    crate::cmd::frames::write_json(&args.output.join("keyframes.json"), &json)?;
    if !ctx.quiet {
        eprintln!(
            "wrote {} keyframes ({name}) to {} in {:.2}s",
            keyframes.len(),
            args.output.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
