//! `reelsmith segments VIDEO -o DIR [...]`: successor segmentation into 2–15 s segments.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::decode::ClipMode;
use reelsmith::embed::HubOptions;
use reelsmith::models::ModelChoice;
use reelsmith::pipelines::segments::{
    self, SegmentsConfig, SegmentsInput, SuccessorMetric, ThresholdRule,
};

use crate::out::note;
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith segments`. Flags override `--config`.
///
/// Without --model/--model-dir the LAION CLIP ViT-B/32
/// (laion/CLIP-ViT-B-32-laion2B-s34B-b79K) is used when it is in the local Hugging Face
/// cache; otherwise the weight-free pixel embedder, with a one-line note.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// Output folder for segment clips, keyframe images, pictures and segments.json.
    #[arg(long, short)]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the segments configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames sampled per second for the embeddings [default: 2].
    #[arg(long)]
    fps: Option<f64>,
    /// Seam rule on the min-max normalised successor distance: fixed:V (V in [0, 1]) or
    /// dynamic:K (rolling mean + K·std over --window) [default: dynamic:2].
    #[arg(long, value_name = "fixed:V|dynamic:K")]
    threshold: Option<ThresholdRule>,
    /// Rolling window of the dynamic threshold in seconds [default: 10].
    #[arg(long, value_name = "SECONDS")]
    window: Option<f64>,
    /// The embedding surveyor (k-nearest neighbours per 30 s window raise the threshold to
    /// the footage's own variation): on or off [default: on].
    #[arg(long, value_name = "on|off", value_parser = on_off)]
    surveyor: Option<bool>,
    /// Successor distance: euclidean or cosine [default: euclidean].
    #[arg(long, value_enum)]
    metric: Option<MetricArg>,
    /// Shortest segment in seconds [default: 2].
    #[arg(long)]
    min_seconds: Option<f64>,
    /// Longest segment in seconds; longer ones split at their strongest seam [default: 15].
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Ignore the shot detector's cuts and transitions (seams only).
    #[arg(long)]
    no_shots: bool,
    /// Keyframes of a segment whose 64-bit perceptual hashes differ in at most this many
    /// bits are near-duplicates [default: 10].
    #[arg(long, value_name = "BITS")]
    phash_distance: Option<u32>,
    /// Use the weight-free pixel embedder even when the default model is cached.
    #[arg(long, conflicts_with_all = ["model", "model_dir"])]
    no_model: bool,
    /// Do not draw keyframes_grid.jpg, successor.png and embeddings.png.
    #[arg(long)]
    no_pictures: bool,
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
    /// Only write keyframes, pictures and segments.json.
    #[arg(long)]
    no_clips: bool,
    #[command(flatten)]
    model: super::ModelArgs,
}

/// Successor distances on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MetricArg {
    Euclidean,
    Cosine,
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("{s:?}: write on or off")),
    }
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let mut cfg: SegmentsConfig = super::base_config(args.config.as_deref())?;
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { cfg.$field = v; } )* };
    }
    set!(
        fps <- args.fps,
        threshold <- args.threshold,
        window_seconds <- args.window,
        surveyor <- args.surveyor,
        min_seconds <- args.min_seconds,
        max_seconds <- args.max_seconds,
        phash_distance <- args.phash_distance,
        model <- args.model.choice(),
    );
    if let Some(m) = args.metric {
        cfg.metric = match m {
            MetricArg::Euclidean => SuccessorMetric::Euclidean,
            MetricArg::Cosine => SuccessorMetric::Cosine,
        };
    }
    if args.no_model {
        cfg.model = ModelChoice::None;
    }
    if args.no_shots {
        cfg.shots = false;
    }
    if args.no_pictures {
        cfg.pictures = false;
    }
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
            let why = s
                .starts_at
                .map_or("start".to_string(), |k| format!("{k:?}").to_lowercase());
            note!(
                "  segment {:3}  {:8.2}s - {:8.2}s  ({why})  {} keyframes",
                s.number,
                s.start,
                s.end,
                s.keyframes.len()
            );
        }
        note!(
            "{} segments of {} ({}) written to {}",
            report.segments.len(),
            args.video.display(),
            report.embedder,
            args.output.display()
        );
    }
    Ok(())
}
