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

use reelsmith_core::Embeddings;
use reelsmith_decode::{DecodeOptions, Scale, Video, VideoInfo};
use reelsmith_embed::Embedder;
pub use reelsmith_segment::shots::{
    FrameEmbeddings, Shot, ShotDetector, ShotOptions, ShotSettings, Transition, TransitionKind,
};
use serde::{Deserialize, Serialize};

use crate::analysis::{end_time, AnalysisOptions};
use crate::embed_loop::{embed_error, DEFAULT_BATCH};
use crate::models::{ModelChoice, Models};
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// The model [`ModelChoice::Auto`] stands for in this pipeline.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

/// Shorter side of the frames decoded again for the semantic check (the models crop
/// 224 × 224).
const SEMANTIC_SIDE: u32 = 256;

/// Settings of the shots pipeline.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShotsConfig {
    /// How frames are decoded for analysis (default: 64 × 36, area, deblocking skipped).
    pub analysis: AnalysisOptions,
    /// Detector settings, durations in seconds (converted at the video's frame rate);
    /// fields left out keep their defaults.
    pub detection: ShotSettings,
    /// A semantic model (CLIP or DINOv2) for the confirmation of cut candidates inside a
    /// disturbance (default [`ModelChoice::None`]: the weight-free pixel confirmation
    /// alone). The few frames before and after each such candidate are decoded again at
    /// the model's size and compared (see [`reelsmith_segment::shots`]).
    pub model: ModelChoice,
}

impl ShotsConfig {
    /// Checks the settings; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        self.analysis.validate()?;
        self.detection
            .validate()
            .map_err(|(setting, message)| Error::config(setting, message))
    }
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
    /// The model of the semantic check, when one was used.
    pub model: Option<String>,
    /// Remarks: the model [`ModelChoice::Auto`] did not find, frames the semantic check
    /// could not decode.
    pub notes: Vec<String>,
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
/// A model in [`ShotsConfig::model`] is loaded for this call; to load it once for many
/// videos use [`run_with_models`].
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
    let models = Models::new();
    run_full(video, config, &models, detector, progress)
}

/// [`run`] with models from `models` (each loaded once for all the videos of a registry).
pub fn run_with_models(
    video: &Path,
    config: &ShotsConfig,
    models: &Models,
    progress: &dyn Progress,
) -> Result<ShotReport, Error> {
    run_full(video, config, models, None, progress)
}

fn run_full(
    video: &Path,
    config: &ShotsConfig,
    models: &Models,
    detector: Option<&dyn ShotDetector>,
    progress: &dyn Progress,
) -> Result<ShotReport, Error> {
    config.validate()?;
    let resolved = models.resolve(&config.model, DEFAULT_MODEL)?;
    let a = config.analysis.run(video, false, progress)?;
    let fps = a.info.fps;
    let built_in;
    let detector = match detector {
        Some(d) => d,
        None => {
            built_in = config.detection.at_fps(fps);
            &built_in as &dyn ShotDetector
        }
    };
    let mut notes: Vec<String> = resolved.note.into_iter().collect();
    let (det, model) = match &resolved.model {
        Some(m) => {
            let model: &dyn Embedder = m.as_ref();
            let source = reelsmith_decode::open(video)?;
            let mut sem = ModelFrames {
                video: &source,
                info: &a.info,
                times: &a.times,
                model,
                progress,
                error: None,
                notes: Vec::new(),
            };
            let det = detector.detect_frames(&a.emb, Some(&a.luma), Some(&mut sem));
            if let Some(e) = sem.error {
                return Err(e);
            }
            notes.extend(sem.notes);
            (det, Some(model.model_id().to_string()))
        }
        None => (detector.detect_frames(&a.emb, Some(&a.luma), None), None),
    };
    Ok(ShotReport {
        video: video.to_path_buf(),
        fps,
        frames: a.times.len(),
        end_time: end_time(&a.times, fps),
        times: a.times,
        transitions: det.transitions,
        shots: det.shots,
        model,
        notes,
    })
}

/// Frames decoded again at the model's size and embedded, for the semantic check.
struct ModelFrames<'a> {
    video: &'a Video,
    info: &'a VideoInfo,
    times: &'a [f64],
    model: &'a dyn Embedder,
    progress: &'a dyn Progress,
    /// A decoding or model error: the pipeline fails with it.
    error: Option<Error>,
    notes: Vec<String>,
}

impl FrameEmbeddings for ModelFrames<'_> {
    fn embed_frames(&mut self, frames: &[usize]) -> Option<Embeddings> {
        match self.embed(frames) {
            Ok(Some(e)) => Some(e),
            Ok(None) => None,
            Err(e) => {
                self.error = Some(e);
                None
            }
        }
    }
}

impl ModelFrames<'_> {
    /// Frames of `frames` by seeks (one per run of nearby frames), at the display aspect
    /// with the shorter side [`SEMANTIC_SIDE`]; `Ok(None)` (with a note) when a frame does
    /// not come back after its seek.
    fn embed(&mut self, frames: &[usize]) -> Result<Option<Embeddings>, Error> {
        let (model, video, times) = (self.model, self.video, self.times);
        let path = self.info.path.clone();
        let stage = StageGuard::start(self.progress, Stage::Embed, Some(frames.len() as u64));
        let opts = DecodeOptions::new().scale(semantic_scale(self.info));
        let tol = if self.info.fps > 0.0 {
            0.25 / self.info.fps
        } else {
            1e-3
        };
        // Runs of requested frames less than 2 s apart share one seek.
        let mut runs: Vec<Vec<usize>> = Vec::new();
        for &f in frames {
            let Some(&t) = times.get(f) else {
                self.notes.push(format!(
                    "semantic check skipped: frame {f} is past the video's end"
                ));
                return Ok(None);
            };
            match runs.last_mut() {
                Some(run) if t - times[*run.last().expect("runs are not empty")] < 2.0 => {
                    run.push(f)
                }
                _ => runs.push(vec![f]),
            }
        }
        let mut out = Embeddings::empty(model.dim()).map_err(|e| embed_error(&path)(e.into()))?;
        let mut batch = Vec::with_capacity(DEFAULT_BATCH);
        let flush = |batch: &mut Vec<image::RgbImage>, out: &mut Embeddings| {
            if batch.is_empty() {
                return Ok(());
            }
            let e = model.embed_images(batch).map_err(embed_error(&path))?;
            out.extend(&e).map_err(|e| embed_error(&path)(e.into()))?;
            stage.advance(batch.len() as u64);
            batch.clear();
            Ok::<(), Error>(())
        };
        for run in &runs {
            let mut want = run.iter().copied().peekable();
            for frame in video.frames_from(times[run[0]], &opts)? {
                let frame = frame?;
                // at most one wanted time per decoded frame
                if let Some(w) = want.peek().copied() {
                    let t = times[w];
                    if (frame.time - t).abs() <= tol {
                        batch.push(frame.image.clone());
                        want.next();
                        if batch.len() == DEFAULT_BATCH {
                            flush(&mut batch, &mut out)?;
                        }
                    } else if frame.time > t + tol {
                        self.notes.push(format!(
                            "semantic check skipped: frame {w} ({t:.3}s) did not come back after a seek"
                        ));
                        return Ok(None);
                    }
                }
                if want.peek().is_none() {
                    break;
                }
            }
            if let Some(w) = want.next() {
                self.notes.push(format!(
                    "semantic check skipped: the video ended before frame {w}"
                ));
                return Ok(None);
            }
        }
        flush(&mut batch, &mut out)?;
        Ok(Some(out))
    }
}

/// Frames for the model at the display aspect (sample aspect ratio applied), the shorter
/// side [`SEMANTIC_SIDE`] (or the video's own when smaller), sides even.
fn semantic_scale(info: &VideoInfo) -> Scale {
    let aspect = info.display_aspect();
    let aspect = if aspect.is_finite() && aspect > 0.0 {
        aspect
    } else {
        1.0
    };
    let short = SEMANTIC_SIDE.min(info.width.min(info.height)).max(2);
    let long = |s: u32| {
        ((f64::from(s) * aspect.max(1.0 / aspect) / 2.0).round() as u32 * 2).clamp(2, 4096)
    };
    if aspect >= 1.0 {
        Scale::Exact {
            width: long(short),
            height: short,
        }
    } else {
        Scale::Exact {
            width: short,
            height: long(short),
        }
    }
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
