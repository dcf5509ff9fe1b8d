//! `reelsmith highlights VIDEO -o DIR [...]`: the best-shot highlights pipeline.

use std::path::PathBuf;

use anyhow::{Context, Result};
use reelsmith::decode::{ClipMode, X264Preset};
use reelsmith::embed::{load_dir, load_pretrained, AnyModel, DeviceChoice, Embedder, HubOptions};
use reelsmith::highlights::{Highlights, HighlightsConfig, Model};
use reelsmith::score::AestheticHead;

use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith highlights`. Every flag overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
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
    /// x264 preset for re-encoded clips [default: veryfast].
    #[arg(long)]
    preset: Option<X264Preset>,
    /// Drop the audio from the clips.
    #[arg(long)]
    no_audio: bool,
    /// Only analyse and write the reports; no clips.
    #[arg(long)]
    no_clips: bool,
    /// CLIP model (hub id or alias such as clip-b32) for aesthetics, prompts and diversity
    /// [default: openai/clip-vit-base-patch32 when it is in the Hugging Face cache].
    #[arg(long, conflicts_with = "model_dir")]
    model: Option<String>,
    /// CLIP model folder in the Hugging Face layout.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Score without any model (sharpness and exposure only).
    #[arg(long, conflicts_with_all = ["model", "model_dir"])]
    no_model: bool,
    /// LAION aesthetic predictor head (.pth or .safetensors) for the CLIP model.
    #[arg(long)]
    aesthetic_head: Option<PathBuf>,
    /// Device for the model: cpu, cuda, metal or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The default model, used when it is already in the Hugging Face cache.
const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

/// Loads the model the flags ask for; with none given, tries the default from the cache
/// only (no download) and falls back to no model with a warning.
fn load_model(args: &Args, quiet: bool) -> Result<Option<AnyModel>> {
    if args.no_model {
        return Ok(None);
    }
    let device: DeviceChoice = args.device.parse()?;
    if let Some(dir) = &args.model_dir {
        return Ok(Some(load_dir(dir, device)?));
    }
    if let Some(id) = &args.model {
        return Ok(Some(load_pretrained(
            id,
            &HubOptions::default().progress(!quiet),
            device,
        )?));
    }
    match load_pretrained(
        DEFAULT_MODEL,
        &HubOptions::default().offline(true).progress(false),
        device,
    ) {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            let how = format!(
                "for aesthetics, prompts and CLIP diversity pass --model {DEFAULT_MODEL} (downloads \
                 it), run `huggingface-cli download {DEFAULT_MODEL}` once, or pass --model-dir DIR"
            );
            if matches!(e, reelsmith::embed::EmbedError::Download { .. }) {
                // Not cached: the usual first run. The hub's long explanation goes to -v.
                tracing::debug!("{e}");
                tracing::warn!(
                    "no CLIP model ({DEFAULT_MODEL} is not in the Hugging Face cache): the score \
                     uses sharpness and exposure only; {how}"
                );
            } else {
                tracing::warn!(
                    "no CLIP model ({DEFAULT_MODEL} could not be loaded: {e}): the score uses \
                     sharpness and exposure only; {how}"
                );
            }
            Ok(None)
        }
    }
}

/// Reads a pipeline configuration from a `.json` file, or TOML otherwise.
pub fn load_config<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let parsed = if path.extension().and_then(|e| e.to_str()) == Some("json") {
        serde_json::from_str(&text).map_err(anyhow::Error::from)
    } else {
        toml::from_str(&text).map_err(anyhow::Error::from)
    };
    parsed.with_context(|| format!("{}: not a valid configuration", path.display()))
}

/// Builds the configuration: defaults, then the file, then the flags.
pub fn config(args: &Args) -> Result<HighlightsConfig> {
    let mut c = match &args.config {
        Some(p) => load_config(p)?,
        None => HighlightsConfig::default(),
    };
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
    );
    if !args.prompts.is_empty() {
        c.prompts = args.prompts.clone();
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
    let model = load_model(&args, ctx.quiet)?;
    let head = match &args.aesthetic_head {
        Some(p) => {
            if model.is_none() {
                anyhow::bail!(
                    "--aesthetic-head needs a CLIP model (--model ID or --model-dir DIR)"
                );
            }
            Some(AestheticHead::load(p)?)
        }
        None => None,
    };
    let model_parts = Model {
        image: model.as_ref().map(|m| m as &dyn Embedder),
        text: model.as_ref().and_then(|m| m.as_text_embedder()),
        head: head.as_ref(),
    };
    let bars = StageBars::new(ctx.quiet);
    let report = Highlights::new(&args.video, cfg)
        .model(model_parts)
        .progress(&bars)
        .run(&args.output)?;
    for note in &report.notes {
        // The missing model was already explained above.
        if model.is_none() && note.starts_with("no CLIP model") {
            continue;
        }
        tracing::warn!("{note}");
    }
    if !ctx.quiet {
        for c in &report.clips {
            eprintln!(
                "  {}  {:7.2}s +{:.2}s  peak {:.2}s (frame {})  score {:.3}",
                c.filename, c.start_time, c.duration, c.peak_time, c.peak_frame, c.score
            );
        }
        eprintln!(
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
