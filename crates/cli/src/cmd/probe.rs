//! `reelsmith probe VIDEO [--json] [--fast]`.

use std::path::PathBuf;

use anyhow::Result;
use reelsmith::pipelines::probe::{self, ProbeConfig};

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
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(());
    }
    println!("file:      {}", i.path.display());
    println!("size:      {}x{} (as displayed)", i.width, i.height);
    if i.rotation != 0 {
        println!(
            "rotation:  {}° clockwise (coded {}x{})",
            i.rotation, i.coded_width, i.coded_height
        );
    }
    println!("codec:     {}", i.codec);
    println!("fps:       {:.3}", i.fps);
    match i.frames {
        Some(n) => println!("frames:    {n}"),
        None => println!("frames:    unknown (drop --fast to count)"),
    }
    println!("duration:  {:.3} s", i.duration);
    println!("audio:     {}", if i.has_audio { "yes" } else { "no" });
    Ok(())
}
