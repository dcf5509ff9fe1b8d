//! Shot detection on a video file: decode every frame small, embed it with the weight-free
//! pixel embedder, find hard cuts and gradual transitions with a
//! [`ShotDetector`].
//!
//! ```no_run
//! use reelsmith::pipelines::shots::{self, ShotsConfig};
//! use reelsmith::progress::NoProgress;
//!
//! let report = shots::run("movie.mp4".as_ref(), &ShotsConfig::default(), &NoProgress)?;
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

pub use reelsmith_segment::shots::{Shot, ShotDetector, ShotOptions, Transition, TransitionKind};
use serde::{Deserialize, Serialize};

use crate::analysis::{end_time, AnalysisOptions};
use crate::progress::Progress;
use crate::Error;

/// Settings of the shots pipeline.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShotsConfig {
    /// How frames are decoded for analysis (default: 64 × 36, area, deblocking skipped).
    pub analysis: AnalysisOptions,
    /// Detector settings; `None` (default) uses [`ShotOptions::for_fps`] at the video's
    /// frame rate.
    pub detection: Option<ShotOptions>,
}

/// Shots and transitions of one video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotReport {
    /// The video file.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub video: PathBuf,
    /// Average frame rate from the container.
    pub fps: f64,
    /// Number of decoded frames.
    pub frames: usize,
    /// Presentation time of every frame in seconds (true timestamps, so correct on
    /// variable-frame-rate video).
    #[serde(skip)]
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

/// Detects the shots of `video` with the built-in detector (see the [module docs](self)).
///
/// Errors name the file: it cannot be opened or decoded, or a setting is out of range.
pub fn run(
    video: &Path,
    config: &ShotsConfig,
    progress: &dyn Progress,
) -> Result<ShotReport, Error> {
    run_with(video, config, None, progress)
}

/// [`run`] with another detector (`None`: the built-in one, [`ShotsConfig::detection`]).
pub fn run_with(
    video: &Path,
    config: &ShotsConfig,
    detector: Option<&dyn ShotDetector>,
    progress: &dyn Progress,
) -> Result<ShotReport, Error> {
    let a = config.analysis.run(video, false, progress)?;
    let fps = a.info.fps;
    let built_in;
    let detector = match detector {
        Some(d) => d,
        None => {
            built_in = config
                .detection
                .clone()
                .unwrap_or_else(|| ShotOptions::for_fps(fps));
            &built_in as &dyn ShotDetector
        }
    };
    let det = detector.detect(&a.emb);
    Ok(ShotReport {
        video: video.to_path_buf(),
        fps,
        frames: a.times.len(),
        end_time: end_time(&a.times, fps),
        times: a.times,
        transitions: det.transitions,
        shots: det.shots,
    })
}

/// One transition as `shots --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionJson {
    /// First frame of the new shot.
    pub frame: usize,
    /// Its time in seconds.
    pub time: f64,
    /// Cut or gradual.
    pub kind: TransitionKind,
    /// Inclusive frame span of a gradual transition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
    /// Detector score.
    pub score: f32,
}

/// One shot as `shots --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotJson {
    /// First frame (0-based).
    pub start_frame: usize,
    /// Last frame (inclusive).
    pub end_frame: usize,
    /// Start time in seconds.
    pub start: f64,
    /// End time in seconds (the next shot's start).
    pub end: f64,
}

/// The JSON document of a [`ShotReport`]: video, fps, frame count, transitions (`cuts`)
/// and shots with their times.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotsJson {
    /// The video file.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub video: PathBuf,
    /// Average frame rate.
    pub fps: f64,
    /// Number of decoded frames.
    pub frames: usize,
    /// Transitions in frame order.
    pub cuts: Vec<TransitionJson>,
    /// Shots in order.
    pub shots: Vec<ShotJson>,
}

impl ShotReport {
    /// The report as its JSON document (frames with times).
    pub fn to_json(&self) -> ShotsJson {
        ShotsJson {
            video: self.video.clone(),
            fps: self.fps,
            frames: self.frames,
            cuts: self
                .transitions
                .iter()
                .map(|t| TransitionJson {
                    frame: t.frame,
                    time: self.frame_time(t.frame),
                    kind: t.kind,
                    span: t.span.map(|(a, b)| [a, b]),
                    score: t.score,
                })
                .collect(),
            shots: self
                .shots
                .iter()
                .map(|s| {
                    let span = self.shot_span(s);
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

    /// Writes the shot list as CSV in PySceneDetect's `list-scenes` layout (without its
    /// leading timecode-list line): 1-based start frame, end frame = 1-based inclusive last
    /// frame, times in seconds with 3 decimals.
    pub fn write_csv(&self, out: impl std::io::Write) -> std::io::Result<()> {
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
        for (i, s) in self.shots.iter().enumerate() {
            let span = self.shot_span(s);
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
        w.flush()
    }
}

/// `HH:MM:SS.mmm`, rounded to the millisecond.
pub fn timecode(secs: f64) -> String {
    let ms = (secs.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
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
