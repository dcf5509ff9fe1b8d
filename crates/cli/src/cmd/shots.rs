//! `reelsmith shots VIDEO [--json | --csv] [--embedder pixel]`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use reelsmith::shots::{ShotEmbedder, ShotOptions, ShotReport, TransitionKind};
use serde::Serialize;

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
}

#[derive(Serialize)]
struct CutJson {
    frame: usize,
    time: f64,
    kind: TransitionKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<[usize; 2]>,
    score: f32,
}

#[derive(Serialize)]
struct ShotJson {
    start_frame: usize,
    end_frame: usize,
    start: f64,
    end: f64,
}

#[derive(Serialize)]
struct ShotsJson<'a> {
    video: &'a std::path::Path,
    fps: f64,
    frames: usize,
    cuts: Vec<CutJson>,
    shots: Vec<ShotJson>,
}

/// Runs the subcommand.
pub fn run(args: Args, ctx: &Ctx) -> Result<()> {
    let opts = ShotOptions {
        embedder: match args.embedder {
            EmbedderArg::Pixel => ShotEmbedder::Pixel,
        },
        ..Default::default()
    };
    let pb = crate::progress::bar(0, "shots", ctx.quiet);
    let start = std::time::Instant::now();
    let report = reelsmith::shots::detect_shots_with_progress(&args.video, &opts, |p| {
        if let Some(total) = p.total {
            if pb.length() != Some(total) {
                pb.set_length(total);
            }
        }
        pb.set_position(p.done);
    })?;
    pb.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &to_json(&report))?;
        writeln!(out)?;
    } else if args.csv {
        write_csv(&mut out, &report)?;
    } else {
        write_text(&mut out, &report)?;
    }
    out.flush()?;
    if !ctx.quiet {
        eprintln!(
            "{} frames in {elapsed:.3}s ({:.0} frames/s): {} transitions, {} shots",
            report.frames,
            report.frames as f64 / elapsed.max(1e-9),
            report.transitions.len(),
            report.shots.len()
        );
    }
    Ok(())
}

fn to_json(r: &ShotReport) -> ShotsJson<'_> {
    ShotsJson {
        video: &r.video,
        fps: r.fps,
        frames: r.frames,
        cuts: r
            .transitions
            .iter()
            .map(|t| CutJson {
                frame: t.frame,
                time: r.frame_time(t.frame),
                kind: t.kind,
                span: t.span.map(|(a, b)| [a, b]),
                score: t.score,
            })
            .collect(),
        shots: r
            .shots
            .iter()
            .map(|s| {
                let span = r.shot_span(s);
                ShotJson {
                    start_frame: s.start,
                    end_frame: s.end,
                    start: span.start,
                    end: span.end,
                }
            })
            .collect(),
    }
}

/// `HH:MM:SS.mmm`, rounded to the millisecond.
fn timecode(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// PySceneDetect `list-scenes` layout: 1-based start frame, end frame = 1-based inclusive
/// last frame (0-based exclusive end), times in seconds with 3 decimals.
fn write_csv(out: &mut impl Write, r: &ShotReport) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "Scene Number",
        "Start Frame",
        "Start Timecode",
        "Start Time (seconds)",
        "End Frame",
        "End Timecode",
        "End Time (seconds)",
        "Length (frames)",
        "Length (timecode)",
        "Length (seconds)",
    ])?;
    for (i, s) in r.shots.iter().enumerate() {
        let span = r.shot_span(s);
        let len = span.end - span.start;
        w.write_record([
            (i + 1).to_string(),
            (s.start + 1).to_string(),
            timecode(span.start),
            format!("{:.3}", span.start),
            (s.end + 1).to_string(),
            timecode(span.end),
            format!("{:.3}", span.end),
            (s.end + 1 - s.start).to_string(),
            timecode(len),
            format!("{len:.3}"),
        ])?;
    }
    w.flush()?;
    Ok(())
}

fn write_text(out: &mut impl Write, r: &ShotReport) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::timecode;

    #[test]
    fn timecodes_round_to_the_millisecond() {
        assert_eq!(timecode(0.0), "00:00:00.000");
        assert_eq!(timecode(9.68), "00:00:09.680");
        assert_eq!(timecode(3725.0004), "01:02:05.000");
        assert_eq!(timecode(59.9996), "00:01:00.000");
    }
}
