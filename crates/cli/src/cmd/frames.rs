//! `reelsmith frames VIDEO [--fps F | --every N] [--height H] [-o DIR]`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use reelsmith::decode::{self, DecodeOptions, ImageFormat, Sampling, Scale};
use serde::Serialize;

use crate::Ctx;

/// Arguments of `reelsmith frames`.
#[derive(Debug, clap::Args)]
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
    /// JPEG quality 1..=100.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    quality: u8,
}

#[derive(Serialize)]
struct FrameEntry {
    index: u64,
    time: f64,
    path: String,
}

#[derive(Serialize)]
struct FramesJson {
    video: PathBuf,
    fps: f64,
    sampling: String,
    width: u32,
    height: u32,
    frames: Vec<FrameEntry>,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let video = decode::open(&args.video)?;
    let info = video.info().clone();
    let sampling = match (args.fps, args.every) {
        (Some(f), _) => Sampling::Fps(f),
        (None, Some(n)) => Sampling::EveryNth(n),
        (None, None) => Sampling::All,
    };
    let scale = args.height.map(Scale::Height).unwrap_or(Scale::Original);
    let opts = DecodeOptions::new().sampling(sampling).scale(scale);
    if let Some(dir) = &args.output {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    let expected = match sampling {
        Sampling::All => info.declared_frames.unwrap_or(0),
        Sampling::EveryNth(n) => info
            .declared_frames
            .map(|f| f.div_ceil(u64::from(n.max(1))))
            .unwrap_or(0),
        Sampling::Fps(f) => (info.duration * f).ceil() as u64,
    };
    let pb = crate::progress::bar(expected, "frames", ctx.quiet);
    let start = std::time::Instant::now();
    let (width, height) = info.output_size(scale);
    // Frames are decoded in keyframe-aligned chunks on all cores and written where they
    // decode, under temporary names; once every chunk is done they are renamed in order
    // (ffmpeg's frame_000001.jpg numbering), so a failure leaves no numbered file behind.
    let written = std::sync::Mutex::new(Vec::<PathBuf>::new());
    let next_tmp = std::sync::atomic::AtomicU64::new(0);
    let mapped = video.map_frames(
        &opts,
        0,
        |frame| -> Result<Option<PathBuf>, anyhow::Error> {
            let Some(dir) = &args.output else {
                return Ok(None);
            };
            let n = next_tmp.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!(".frame-{n:08}.jpg.part"));
            decode::save_image(&frame.image, &tmp, Some(ImageFormat::Jpeg(args.quality)))?;
            written
                .lock()
                .expect("no panics while held")
                .push(tmp.clone());
            Ok(Some(tmp))
        },
        |_| pb.inc(1),
    );
    let mapped = match mapped {
        Ok(m) => m,
        Err(e) => {
            for tmp in written.lock().expect("no panics while held").iter() {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(e);
        }
    };
    let mut entries = Vec::with_capacity(mapped.len());
    for (n, m) in mapped.into_iter().enumerate() {
        let path = match (&args.output, m.value) {
            (Some(dir), Some(tmp)) => {
                let name = format!("frame_{:06}.jpg", n + 1);
                std::fs::rename(&tmp, dir.join(&name))
                    .with_context(|| format!("cannot move {} into place", tmp.display()))?;
                name
            }
            _ => String::new(),
        };
        entries.push(FrameEntry {
            index: m.index,
            time: m.time,
            path,
        });
    }
    pb.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(dir) = &args.output {
        let json = FramesJson {
            video: args.video.clone(),
            fps: info.fps,
            sampling: format!("{sampling:?}"),
            width,
            height,
            frames: entries,
        };
        write_json(&dir.join("frames.json"), &json)?;
        if !ctx.quiet {
            eprintln!(
                "wrote {} frames ({width}x{height}) to {} in {elapsed:.2}s",
                json.frames.len(),
                dir.display()
            );
        }
    } else if !ctx.quiet {
        eprintln!(
            "decoded {} frames ({width}x{height}) in {elapsed:.2}s",
            entries.len()
        );
    }
    Ok(())
}

/// Writes pretty JSON through a temporary file renamed into place.
pub fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> Result<()> {
    let tmp = path.with_extension("json.part");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} into place", path.display()))?;
    Ok(())
}
