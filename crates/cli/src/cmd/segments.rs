//! `reelsmith segments VIDEO -o DIR [...]`: successor segmentation into 2–15 s segments.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::decode::ClipMode;
use reelsmith::embed::HubOptions;
use reelsmith::pipelines::segments::{self, SegmentsConfig, SegmentsInput};

use crate::out::note;
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith segments`. Flags override `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
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
    /// Drop the audio from the clips.
    #[arg(long)]
    no_audio: bool,
    /// Write into a folder that holds files this command did not write (by default such a
    /// folder is refused; an earlier run's folder is always reused, its stale files removed).
    #[arg(long)]
    overwrite: bool,
    /// Only write keyframes and segments.json.
    #[arg(long)]
    no_clips: bool,
    #[command(flatten)]
    model: super::ModelArgs,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let mut cfg: SegmentsConfig = super::base_config(args.config.as_deref())?;
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { cfg.$field = v; } )* };
    }
    set!(
        fps <- args.fps,
        window_seconds <- args.window,
        k <- args.k,
        min_seconds <- args.min_seconds,
        max_seconds <- args.max_seconds,
        model <- args.model.choice(),
    );
    if args.stream_copy {
        cfg.clip_mode = ClipMode::StreamCopy;
    }
    if args.no_clips {
        cfg.export_clips = false;
    }
    if args.no_audio {
        cfg.audio = false;
    }
    let models = args.model.models(HubOptions::default(), ctx.quiet)?;
    let input = SegmentsInput::new(&args.video, &args.output, &models).overwrite(args.overwrite);
    let report = segments::run(&input, &cfg, &StageBars::new(ctx.quiet))?;
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    if !ctx.quiet {
        for s in &report.segments {
            note!(
                "  segment {:3}  {:8.2}s - {:8.2}s  {} keyframes",
                s.number,
                s.start,
                s.end,
                s.keyframes.len()
            );
        }
        note!(
            "{} segments of {} written to {}",
            report.segments.len(),
            args.video.display(),
            args.output.display()
        );
    }
    Ok(())
}
