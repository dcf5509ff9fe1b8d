//! `reelsmith probe VIDEO [--json]`.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

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

#[derive(Serialize)]
struct ProbeJson<'a> {
    path: &'a std::path::Path,
    width: u32,
    height: u32,
    fps: f64,
    frames: Option<u64>,
    duration: f64,
    rotation: u32,
    codec: &'a str,
    has_audio: bool,
}

/// Runs the subcommand.
pub fn run(args: Args, _ctx: &Ctx) -> Result<()> {
    let video = reelsmith::decode::open(&args.video)?;
    let frames = if args.fast {
        video.info().declared_frames
    } else {
        Some(video.count_frames()?)
    };
    let i = video.info();
    if args.json {
        let j = ProbeJson {
            path: &i.path,
            width: i.width,
            height: i.height,
            fps: i.fps,
            frames,
            duration: i.duration,
            rotation: i.rotation,
            codec: &i.codec,
            has_audio: i.has_audio,
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
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
        match frames {
            Some(n) => println!("frames:    {n}"),
            None => println!("frames:    unknown (drop --fast to count)"),
        }
        println!("duration:  {:.3} s", i.duration);
        println!("audio:     {}", if i.has_audio { "yes" } else { "no" });
    }
    Ok(())
}
