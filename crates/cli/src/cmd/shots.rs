//! `reelsmith shots VIDEO [--json | --csv] [--embedder pixel] [--model ID | --model-dir DIR]`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use reelsmith::embed::HubOptions;
use reelsmith::pipelines::shots::{self, timecode, ShotReport, ShotsConfig, TransitionKind};

use crate::out::{note, print};
use crate::progress::StageBars;
use crate::Ctx;

/// Frame embedders `reelsmith shots` can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbedderArg {
    /// Weight-free 16x9 Y'CbCr thumbnail (fast; the detector is calibrated for it).
    Pixel,
}

/// Arguments of `reelsmith shots`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// Print one JSON object: fps, frame count, transitions ("cuts") and shots.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print the shot list as CSV in PySceneDetect's `list-scenes` columns (1-based start
    /// frames, inclusive end frames), without its leading timecode-list line.
    #[arg(long)]
    csv: bool,
    /// Frame embedder.
    #[arg(long, value_enum, default_value_t = EmbedderArg::Pixel)]
    embedder: EmbedderArg,
    /// Settings file (.toml or .json) with the fields of the shots configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// A CLIP or DINOv2 model for the semantic check of cut candidates inside a
    /// disturbance (default: none, the pixel check alone).
    #[command(flatten)]
    model: super::ModelArgs,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let EmbedderArg::Pixel = args.embedder;
    let mut config: ShotsConfig = super::base_config(args.config.as_deref())?;
    if let Some(choice) = args.model.choice() {
        config.model = choice;
    }
    config.validate()?;
    let models = args.model.models(HubOptions::default(), ctx.quiet)?;
    let start = std::time::Instant::now();
    let report = shots::run_with_models(&args.video, &config, &models, &StageBars::new(ctx.quiet))?;
    let elapsed = start.elapsed().as_secs_f64();
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    print(|out| {
        if args.json {
            serde_json::to_writer_pretty(&mut *out, &report.to_json())?;
            writeln!(out)
        } else if args.csv {
            report.write_csv(out)
        } else {
            write_text(out, &report)
        }
    })?;
    if !ctx.quiet {
        note!(
            "{} frames in {elapsed:.3}s ({:.0} frames/s): {} transitions, {} shots",
            report.frames,
            report.frames as f64 / elapsed.max(1e-9),
            report.transitions.len(),
            report.shots.len()
        );
    }
    Ok(())
}

fn write_text(out: &mut dyn Write, r: &ShotReport) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} frames at {:.3} fps, {} shots",
        r.video.display(),
        r.frames,
        r.fps,
        r.shots.len()
    )?;
    for t in &r.transitions {
        match (t.kind, t.span) {
            (TransitionKind::Gradual, Some((a, b))) => writeln!(
                out,
                "  gradual  frame {:>6}  {}  (frames {a}..={b}, score {:.3})",
                t.frame,
                timecode(r.frame_time(t.frame)),
                t.score
            )?,
            _ => writeln!(
                out,
                "  cut      frame {:>6}  {}  (score {:.3})",
                t.frame,
                timecode(r.frame_time(t.frame)),
                t.score
            )?,
        }
    }
    for (i, s) in r.shots.iter().enumerate() {
        let span = r.shot_span(s);
        writeln!(
            out,
            "  shot {:>3}: frames {:>6}..={:<6} {} - {} ({:.3} s)",
            i + 1,
            s.start,
            s.end,
            timecode(span.start),
            timecode(span.end),
            span.end - span.start
        )?;
    }
    Ok(())
}
