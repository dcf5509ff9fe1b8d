//! `reelsmith retention VIDEO --entities DIR [--fps F] -o DIR`: how well a video keeps the
//! entities of a memory folder.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::pipelines::retention::{self, RetentionConfig, RetentionInput};

use super::entities::{models, EmbedModelArgs, SegmenterArgs};
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith retention`. Every flag overrides the same field of `--config`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The video (real or generated).
    video: PathBuf,
    /// The entity memory folder written by `reelsmith entities` (with embeddings).
    #[arg(long, value_name = "DIR")]
    entities: PathBuf,
    /// Output folder: retention.csv, retention.png and retention.json (written last).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    /// Frames sampled per second [default: 2].
    #[arg(long, value_name = "F")]
    fps: Option<f64>,
    /// Cosine similarity at which an entity counts as present [default: 0.5].
    #[arg(long, value_name = "S")]
    presence_threshold: Option<f32>,
    /// Segmenter flags [default: the segmenter and checkpoint the memory was made with].
    #[command(flatten)]
    seg: SegmenterArgs,
    /// The embedding model [default: the memory's; another model is refused].
    #[command(flatten)]
    embed: EmbedModelArgs,
    /// Device for the models: cpu, cuda[:N], metal[:N] or auto.
    #[arg(long, default_value = "cpu", value_name = "D")]
    device: String,
    /// Settings file (.toml or .json) with the fields of the retention configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write into a folder that holds files this command did not write.
    #[arg(long)]
    overwrite: bool,
}

/// Builds the configuration: defaults, then the file, then the flags.
pub fn config(args: &Args) -> Result<RetentionConfig> {
    let mut c: RetentionConfig = super::base_config(args.config.as_deref())?;
    if let Some(f) = args.fps {
        c.fps = f;
    }
    if let Some(t) = args.presence_threshold {
        c.presence_threshold = t;
    }
    if let Some(s) = args.seg.segmenter {
        c.segmenter = Some(s);
    }
    if let Some(w) = args.seg.weights() {
        c.segmenter_weights = Some(w);
    }
    if args.seg.sam_variant.is_some() {
        c.sam_variant = args.seg.sam_variant;
    }
    args.seg.apply(&mut c.segment);
    if let Some(b) = args.seg.batch {
        c.batch = b;
    }
    if let Some(m) = args.embed.choice() {
        c.embed_model = m;
    }
    c.validate()?;
    Ok(c)
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let cfg = config(&args)?;
    let started = std::time::Instant::now();
    let models = models(&args.device, ctx.quiet)?;
    let input = RetentionInput::new(&args.video, &args.entities, &args.output, &models)
        .overwrite(args.overwrite);
    let report = retention::run(&input, &cfg, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        let s = &report.summary;
        for e in &s.entities {
            eprintln!(
                "  entity {:02}  mean best similarity {:.3}  min {:.3}  present {:5.1} %  {}",
                e.entity,
                e.mean_best_similarity,
                e.min_best_similarity,
                e.fraction_present * 100.0,
                match e.first_frame_lost {
                    Some(f) => format!("first lost at frame {} ({:.2} s)", f.index, f.time),
                    None => "never lost".into(),
                }
            );
        }
        eprintln!(
            "{} frames of {}: mean best similarity {:.3}, present {:.1} % of the time; \
             written to {} in {:.1} s",
            s.frames,
            args.video.display(),
            s.mean_best_similarity,
            s.fraction_present * 100.0,
            args.output.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
