//! `reelsmith highlights VIDEO -o DIR [...]`: the best-shot highlights pipeline.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::decode::{ClipMode, X264Preset};
use reelsmith::embed::HubOptions;
use reelsmith::models::ModelChoice;
use reelsmith::pipelines::highlights::{self, HighlightsConfig, HighlightsInput};

use crate::out::note;
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith highlights`. Every flag overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// Output folder for the clips, highlights.json, timeline.csv, similarity.csv,
    /// scores.png and contact_sheet.jpg.
    #[arg(long, short)]
    output: PathBuf,
    /// Settings file (.toml or .json) with the fields of the highlights configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Number of clips [default: 5].
    #[arg(long)]
    top_k: Option<usize>,
    /// Text prompt for saliency (repeatable; needs a CLIP model).
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// Frames sampled per second for scoring [default: 3].
    #[arg(long)]
    fps: Option<f64>,
    /// Scoring frames are scaled to at most this height [default: 720].
    #[arg(long)]
    height: Option<u32>,
    /// Smoothing window in seconds [default: 2.5].
    #[arg(long)]
    smooth: Option<f64>,
    /// Minimum time between peaks in seconds [default: 5].
    #[arg(long)]
    min_separation: Option<f64>,
    /// Ignore peaks whose smoothed score (0..1) is below this [default: 0].
    #[arg(long)]
    min_score: Option<f64>,
    /// Seconds kept before each peak [default: 1].
    #[arg(long)]
    pre_roll: Option<f64>,
    /// Seconds kept after each peak [default: 2].
    #[arg(long)]
    post_roll: Option<f64>,
    /// Shortest clip in seconds [default: 3].
    #[arg(long)]
    min_duration: Option<f64>,
    /// Longest clip in seconds [default: 7].
    #[arg(long)]
    max_duration: Option<f64>,
    /// Keep a candidate only if its cosine distance to every kept one exceeds this
    /// [default: 0.12].
    #[arg(long)]
    diversity_threshold: Option<f32>,
    /// Cut by stream copy (fast, starts on keyframes) instead of re-encoding.
    #[arg(long)]
    stream_copy: bool,
    /// x264 CRF for re-encoded clips [default: 18].
    #[arg(long)]
    crf: Option<u8>,
    /// x264 preset for re-encoded clips [default: superfast; veryfast or slower for smaller
    /// files].
    #[arg(long)]
    preset: Option<X264Preset>,
    /// Drop the audio from the clips.
    #[arg(long)]
    no_audio: bool,
    /// Write into a folder that holds files this command did not write (by default such a
    /// folder is refused; an earlier run's folder is always reused, its stale files removed).
    #[arg(long)]
    overwrite: bool,
    /// Only analyse and write the reports; no clips.
    #[arg(long)]
    no_clips: bool,
    /// Score without any model (sharpness and exposure only).
    #[arg(long, conflicts_with_all = ["model", "model_dir"])]
    no_model: bool,
    /// LAION aesthetic predictor head (.pth or .safetensors) for the CLIP model [default:
    /// the LAION head matching the model (sa_0_4_vit_b_32_linear.pth for ViT-B/32...), found
    /// next to the model, in $REELSMITH_AESTHETIC_DIR, in $REELSMITH_SHARED/models/aesthetic
    /// or in ~/.cache/reelsmith/aesthetic].
    #[arg(long)]
    aesthetic_head: Option<PathBuf>,
    /// Do not look for an aesthetic head (score without aesthetics unless --aesthetic-head).
    #[arg(long)]
    no_aesthetic_auto: bool,
    /// The CLIP model for aesthetics, prompts and diversity [default:
    /// openai/clip-vit-base-patch32 when it is in the Hugging Face cache].
    #[command(flatten)]
    model: super::ModelArgs,
}

/// Builds the configuration: defaults, then the file, then the flags.
pub fn config(args: &Args) -> Result<HighlightsConfig> {
    let mut c: HighlightsConfig = super::base_config(args.config.as_deref())?;
    macro_rules! set {
        ($($field:ident <- $arg:expr),* $(,)?) => { $( if let Some(v) = $arg { c.$field = v; } )* };
    }
    set!(
        top_k <- args.top_k,
        fps <- args.fps,
        height <- args.height,
        smooth_seconds <- args.smooth,
        min_separation_seconds <- args.min_separation,
        min_score <- args.min_score,
        pre_roll <- args.pre_roll,
        post_roll <- args.post_roll,
        min_duration <- args.min_duration,
        max_duration <- args.max_duration,
        diversity_threshold <- args.diversity_threshold,
        crf <- args.crf,
        preset <- args.preset,
        model <- args.model.choice(),
    );
    if !args.prompts.is_empty() {
        c.prompts = args.prompts.clone();
    }
    if args.aesthetic_head.is_some() {
        c.aesthetic_head = args.aesthetic_head.clone();
    }
    if args.no_model {
        c.model = ModelChoice::None;
    }
    if args.no_aesthetic_auto {
        c.aesthetic_auto = false;
    }
    if args.stream_copy {
        c.clip_mode = ClipMode::StreamCopy;
    }
    if args.no_audio {
        c.audio = false;
    }
    if args.no_clips {
        c.export_clips = false;
    }
    c.validate()?;
    Ok(c)
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let cfg = config(&args)?;
    let started = std::time::Instant::now();
    let models = args.model.models(HubOptions::default(), ctx.quiet)?;
    let input = HighlightsInput::new(&args.video, &args.output, &models).overwrite(args.overwrite);
    let report = highlights::run(&input, &cfg, &StageBars::new(ctx.quiet))?;
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    if report.model_free && cfg.model == ModelChoice::Auto && !ctx.quiet {
        note!("hint: choose a CLIP model with --model ID or --model-dir DIR");
    }
    if !ctx.quiet {
        for c in &report.clips {
            note!(
                "  {}  {:7.2}s +{:.2}s  peak {:.2}s (frame {})  score {:.3}",
                c.filename,
                c.start_time,
                c.duration,
                c.peak_time,
                c.peak_frame,
                c.score
            );
        }
        note!(
            "{} highlights of {} ({:.1} s) written to {} in {:.1} s",
            report.clips.len(),
            args.video.display(),
            report.duration,
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
