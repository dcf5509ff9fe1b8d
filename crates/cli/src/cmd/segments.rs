//! `reelsmith segments VIDEO -o DIR [...]`: successor segmentation into 2–15 s segments.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::decode::ClipMode;
use reelsmith::segments::{segment_video, SegmentsConfig};

use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith segments`. Flags override `--config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// Output folder for segment clips, keyframe images and segments.json.
    #[arg(long, short)]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the segments configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames sampled per second [default: 2].
    #[arg(long)]
    fps: Option<f64>,
    /// Rolling window of the dynamic threshold in seconds [default: 10].
    #[arg(long)]
    window: Option<f64>,
    /// Standard deviations above the rolling mean for a seam [default: 2].
    #[arg(long)]
    k: Option<f32>,
    /// Shortest segment in seconds [default: 2].
    #[arg(long)]
    min_seconds: Option<f64>,
    /// Longest segment in seconds [default: 15].
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Cut by stream copy instead of re-encoding.
    #[arg(long)]
    stream_copy: bool,
    /// Only write keyframes and segments.json.
    #[arg(long)]
    no_clips: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let mut cfg: SegmentsConfig = match &args.config {
        Some(p) => super::highlights::load_config(p)?,
        None => SegmentsConfig::default(),
    };
    if let Some(v) = args.fps {
        cfg.fps = v;
    }
    if let Some(v) = args.window {
        cfg.window_seconds = v;
    }
    if let Some(v) = args.k {
        cfg.k = v;
    }
    if let Some(v) = args.min_seconds {
        cfg.min_seconds = v;
    }
    if let Some(v) = args.max_seconds {
        cfg.max_seconds = v;
    }
    if args.stream_copy {
        cfg.clip_mode = ClipMode::StreamCopy;
    }
    if args.no_clips {
        cfg.export_clips = false;
    }
    let bars = StageBars::new(ctx.quiet);
    let report = segment_video(&args.video, &args.output, &cfg, None, Some(&bars))?;
    if !ctx.quiet {
        for s in &report.segments {
            eprintln!(
                "  segment {:3}  {:8.2}s - {:8.2}s  {} keyframes",
                s.number,
                s.start,
                s.end,
                s.keyframes.len()
            );
        }
        eprintln!(
            "{} segments of {} written to {}",
            report.segments.len(),
            args.video.display(),
            args.output.display()
        );
    }
    Ok(())
}
