//! Shot detection on a video file: decode every frame small, embed it with the weight-free
//! pixel embedder, find hard cuts and gradual transitions with `reelsmith-segment`.
//!
//! ```no_run
//! use reelsmith::shots::{detect_shots, ShotOptions};
//!
//! let report = detect_shots("movie.mp4", &ShotOptions::default())?;
//! for t in &report.transitions {
//!     println!("{:?} at frame {} ({:.3}s)", t.kind, t.frame, report.frame_time(t.frame));
//! }
//! for s in &report.shots {
//!     let span = report.shot_span(s);
//!     println!("shot {}..={}: {:.3}s to {:.3}s", s.start, s.end, span.start, span.end);
//! }
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

pub use reelsmith_segment::shots::{Shot, Transition, TransitionKind};

use crate::analysis::{end_time, AnalysisOptions, Progress};
use crate::Error;

/// The frame embedder used for shot detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ShotEmbedder {
    /// The weight-free pixel embedder (16 × 9 Y'CbCr thumbnail), for which the detector's
    /// defaults are calibrated.
    #[default]
    Pixel,
}

/// Options of [`detect_shots`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ShotOptions {
    /// Frame embedder (default [`ShotEmbedder::Pixel`]).
    pub embedder: ShotEmbedder,
    /// How frames are decoded for analysis (default: 64 × 36, area, deblocking skipped).
    pub analysis: AnalysisOptions,
    /// Detector settings; `None` (default) uses
    /// [`reelsmith_segment::shots::ShotOptions::for_fps`] at the video's frame rate.
    pub detection: Option<reelsmith_segment::shots::ShotOptions>,
}

/// Shots and transitions of one video.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotReport {
    /// The video file.
    pub video: PathBuf,
    /// Average frame rate from the container.
    pub fps: f64,
    /// Number of decoded frames.
    pub frames: usize,
    /// Presentation time of every frame in seconds (true timestamps, so correct on
    /// variable-frame-rate video).
    pub times: Vec<f64>,
    /// End of the last frame in seconds (its time plus one average frame duration).
    pub end_time: f64,
    /// Transitions in frame order: hard cuts and gradual transitions.
    pub transitions: Vec<Transition>,
    /// Shots covering every frame, as inclusive frame ranges.
    pub shots: Vec<Shot>,
}

impl ShotReport {
    /// Time of `frame` in seconds; one past the last frame gives [`ShotReport::end_time`],
    /// and later frames are extrapolated at the average rate.
    pub fn frame_time(&self, frame: usize) -> f64 {
        match self.times.get(frame) {
            Some(&t) => t,
            None if self.fps > 0.0 => self.end_time + (frame - self.times.len()) as f64 / self.fps,
            None => self.end_time,
        }
    }

    /// A shot's time span: from its first frame's time to the next frame's time (the end of
    /// the video for the last shot).
    pub fn shot_span(&self, shot: &Shot) -> reelsmith_core::TimeSpan {
        let start = self.frame_time(shot.start);
        let end = self.frame_time(shot.end + 1).max(start);
        reelsmith_core::TimeSpan { start, end }
    }
}

/// Detects the shots of the video at `path` (see the [module docs](self)).
///
/// Errors name the file: it cannot be opened or decoded, or an option is out of range.
pub fn detect_shots(path: impl AsRef<Path>, opts: &ShotOptions) -> Result<ShotReport, Error> {
    detect_shots_with_progress(path, opts, |_| {})
}

/// [`detect_shots`] calling `progress` every few frames while decoding.
pub fn detect_shots_with_progress(
    path: impl AsRef<Path>,
    opts: &ShotOptions,
    mut progress: impl FnMut(Progress),
) -> Result<ShotReport, Error> {
    let path = path.as_ref();
    let ShotEmbedder::Pixel = opts.embedder;
    let a = opts.analysis.run(path, false, &mut progress)?;
    let fps = a.info.fps;
    let det_opts = opts
        .detection
        .clone()
        .unwrap_or_else(|| reelsmith_segment::shots::ShotOptions::for_fps(fps));
    let det = reelsmith_segment::shots::detect_shots(&a.emb, &det_opts);
    Ok(ShotReport {
        video: path.to_path_buf(),
        fps,
        frames: a.times.len(),
        end_time: end_time(&a.times, fps),
        times: a.times,
        transitions: det.transitions,
        shots: det.shots,
    })
}
