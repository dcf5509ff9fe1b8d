//! `reelsmith probe VIDEO [--json] [--fast]`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::pipelines::probe::{self, ProbeConfig};

use crate::out::print;
use crate::progress::StageBars;
use crate::Ctx;

/// Arguments of `reelsmith probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The video file.
    video: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Skip the exact frame count (demuxes the whole file) and report the declared one.
    #[arg(long)]
    fast: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let config = ProbeConfig { fast: args.fast };
    let i = probe::run(&args.video, &config, &StageBars::new(ctx.quiet))?;
    if args.json {
        print(|w| {
            serde_json::to_writer_pretty(&mut *w, &i)?;
            writeln!(w)
        })?;
        return Ok(());
    }
    print(|w| {
        writeln!(w, "file:      {}", i.path.display())?;
        writeln!(w, "size:      {}x{} (as displayed)", i.width, i.height)?;
        if i.rotation != 0 {
            writeln!(
                w,
                "rotation:  {}° clockwise (coded {}x{})",
                i.rotation, i.coded_width, i.coded_height
            )?;
        }
        writeln!(w, "codec:     {}", i.codec)?;
        writeln!(w, "fps:       {:.3}", i.fps)?;
        match i.frames {
            Some(n) => writeln!(w, "frames:    {n}")?,
            None => writeln!(w, "frames:    unknown (drop --fast to count)")?,
        }
        writeln!(w, "duration:  {:.3} s", i.duration)?;
        writeln!(w, "audio:     {}", if i.has_audio { "yes" } else { "no" })
    })?;
    Ok(())
}
