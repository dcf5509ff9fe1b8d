//! `reelsmith frames VIDEO [--fps F | --every N] [--height H] [-o DIR]`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::pipelines::frames::{self, FramesConfig, FramesInput};

use crate::out::note;
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith frames`.
#[derive(Debug, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// Keep about F frames per second, chosen by timestamp (like `ffmpeg -vf fps=F`).
    #[arg(long, conflicts_with = "every")]
    fps: Option<f64>,
    /// Keep every Nth decoded frame (0, N, 2N, ...).
    #[arg(long)]
    every: Option<u32>,
    /// Scale to this height keeping the aspect ratio, even width (like `scale=-2:H`).
    #[arg(long)]
    height: Option<u32>,
    /// Write frame_000001.jpg... and frames.json here; without it frames are decoded and
    /// discarded (for timing).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Write into a folder that holds files this command did not write (by default such a
    /// folder is refused; an earlier run's folder is always reused, its stale files removed).
    #[arg(long)]
    overwrite: bool,
    /// JPEG quality 1..=100.
    #[arg(long, default_value_t = 90)]
    quality: u8,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let config = FramesConfig {
        fps: args.fps,
        every: args.every,
        height: args.height,
        quality: args.quality,
    };
    let start = std::time::Instant::now();
    let input = FramesInput::new(&args.video, args.output.as_ref()).overwrite(args.overwrite);
    let report = frames::run(&input, &config, &StageBars::new(ctx.quiet))?;
    if !ctx.quiet {
        let (w, h, n) = (report.width, report.height, report.frames.len());
        let secs = start.elapsed().as_secs_f64();
        match &args.output {
            Some(dir) => note!(
                "wrote {n} frames ({w}x{h}) to {} in {secs:.2}s",
                dir.display()
            ),
            None => note!("decoded {n} frames ({w}x{h}) in {secs:.2}s"),
        }
    }
    Ok(())
}
