//! `reelsmith keyframes VIDEO --method quantile|seams -o DIR`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::pipelines::keyframes::{self, KeyframeMethod, KeyframesConfig, KeyframesInput};

use crate::out::note;
use crate::progress::StageBars;
use crate::Ctx;

/// Keyframe methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    /// Frames whose change exceeds the quantile of all changes (ComfyUI ExtractKeyframes).
    Quantile,
    /// One representative frame per segment of a seam segmentation.
    Seams,
}

/// Arguments of `reelsmith keyframes`. Flags override `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// How keyframes are picked [default: quantile].
    #[arg(long, value_enum)]
    method: Option<MethodArg>,
    /// Write keyframe_NNNNNN.jpg (NNNNNN = 0-based frame index) and keyframes.json here.
    #[arg(long, short)]
    output: PathBuf,
    /// Quantile for `--method quantile`, in [0, 1] [default: 0.85].
    #[arg(long)]
    quantile: Option<f64>,
    /// For `--method quantile`: take frame differences on frames scaled to this height
    /// (faster, but small sizes pick other frames) [default: full resolution, as ComfyUI's
    /// ExtractKeyframes node].
    #[arg(long, value_name = "PIXELS")]
    analysis_height: Option<u32>,
    /// Write into a folder that holds files this command did not write (by default such a
    /// folder is refused; an earlier run's folder is always reused, its stale files removed).
    #[arg(long)]
    overwrite: bool,
    /// Write PNG instead of JPEG.
    #[arg(long)]
    png: bool,
    /// JPEG quality 1..=100 [default: 90].
    #[arg(long)]
    quality: Option<u8>,
    /// Settings file (.toml or .json) with the fields of the keyframes configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let mut config: KeyframesConfig = super::base_config(args.config.as_deref())?;
    if let Some(m) = args.method {
        config.method = match m {
            MethodArg::Quantile => KeyframeMethod::Quantile,
            MethodArg::Seams => KeyframeMethod::Seams,
        };
    }
    if let Some(q) = args.quantile {
        config.quantile = q;
    }
    if let Some(h) = args.analysis_height {
        config.analysis_height = Some(h);
    }
    if let Some(q) = args.quality {
        config.quality = q;
    }
    config.png |= args.png;
    let start = std::time::Instant::now();
    let input = KeyframesInput::new(&args.video, &args.output).overwrite(args.overwrite);
    let report = keyframes::run(&input, &config, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        note!(
            "wrote {} keyframes ({}) to {} in {:.2}s",
            report.keyframes.len(),
            report.method,
            args.output.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
