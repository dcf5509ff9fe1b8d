//! The successor-segmentation pipeline: segments that begin where the picture changes.
//!
//! 1. **Shots** (a fast pass): every frame decoded at 64 × 36 ([`AnalysisOptions`]), the
//!    weight-free pixel embedder and the built-in shot detector: exact hard-cut frames and
//!    gradual transitions.
//! 2. **Embeddings** at `fps` (default 2): the configured model (default
//!    [`ModelChoice::Auto`]: the method's [`DEFAULT_MODEL`], LAION's CLIP ViT-B/32, when it is
//!    in the local Hugging Face cache), otherwise the pixel rows of step 1 at those times
//!    (no second decode), with a note.
//! 3. **Successor distances** between consecutive sampled frames (Euclidean by default, as
//!    the method has it; cosine as an option), min-max normalised; a **seam** where one
//!    exceeds the threshold: `dynamic:K` (rolling mean + K·std over `window_seconds`) or
//!    `fixed:V`; with the **surveyor** ([`reelsmith_segment::surveyor`]) each 30 s window
//!    also raises the threshold to what k-nearest neighbours among its frames say is that
//!    footage's own frame-to-frame variation.
//! 4. **Boundaries**: the shot transitions and the seams that do not coincide with one
//!    ([`reelsmith_segment::boundaries::select`]): no segment shorter than `min_seconds`, no
//!    segment straddles a shot boundary unless a shot next to it is shorter than that;
//!    segments longer than `max_seconds` split at their strongest internal seam. A seam is
//!    placed on the exact frame that changes most in its sampling interval (the cut frame
//!    when there is one), so clips never open with the tail of the previous shot.
//! 5. **Keyframes**: 2–4 per segment, each the sampled frame nearest the segment's mean
//!    embedding within one part of the segment; near-duplicates (perceptual hash, `image_hasher`)
//!    dropped; each with its distance to the segment centroid.
//! 6. **Outputs**: `segment_NNN.mp4` clips, `segment_NNN_kfK.jpg` keyframes,
//!    `keyframes_grid.jpg`, `successor.png` (score, threshold and boundaries over time),
//!    `embeddings.png` (the sampled embeddings in 2-D by PCA, coloured by segment) and
//!    `segments.json` (written last).
//!
//! ```no_run
//! use reelsmith::models::Models;
//! use reelsmith::pipelines::segments::{self, SegmentsConfig, SegmentsInput};
//! use reelsmith::progress::NoProgress;
//!
//! let models = Models::new();
//! let input = SegmentsInput::new("talk.mp4", "out/", &models);
//! let report = segments::run(&input, &SegmentsConfig::default(), &NoProgress)?;
//! println!("{} segments", report.segments.len());
//! # Ok::<(), reelsmith::Error>(())
//! ```

mod find;
mod pictures;

use std::path::{Path, PathBuf};

use reelsmith_core::{Embeddings, FrameRef};
use reelsmith_decode::{
    self as decode, ClipJob, ClipMode, ClipOptions, DecodeOptions, Sampling, Scale, X264Preset,
};
pub use reelsmith_segment::boundaries::BoundaryKind;
use reelsmith_segment::shots::{ShotDetector, ShotOptions, TransitionKind};
use reelsmith_segment::summary::keyframe_count;
use reelsmith_segment::Metric;
use serde::{Deserialize, Serialize};

use crate::analysis::{end_time, AnalysisOptions};
use crate::embed_loop::{embed_frames, DEFAULT_BATCH};
use crate::error::num;
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// How a successor distance becomes a seam.
///
/// Written `fixed:V` or `dynamic:K` in configuration files and on the command line.
///
/// ```
/// use reelsmith::pipelines::segments::ThresholdRule;
/// assert_eq!("fixed:0.4".parse::<ThresholdRule>().unwrap(), ThresholdRule::Fixed(0.4));
/// assert_eq!("dynamic:2".parse::<ThresholdRule>().unwrap(), ThresholdRule::Dynamic(2.0));
/// assert_eq!(ThresholdRule::Dynamic(1.5).to_string(), "dynamic:1.5");
/// assert!("median:3".parse::<ThresholdRule>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ThresholdRule {
    /// A seam where the normalised successor distance exceeds `V` (in `[0, 1]`).
    Fixed(f32),
    /// A seam where it exceeds the rolling mean + `K` standard deviations over
    /// [`SegmentsConfig::window_seconds`].
    Dynamic(f32),
}

impl std::fmt::Display for ThresholdRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThresholdRule::Fixed(v) => write!(f, "fixed:{v}"),
            ThresholdRule::Dynamic(k) => write!(f, "dynamic:{k}"),
        }
    }
}

impl std::str::FromStr for ThresholdRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: write fixed:V (V in [0, 1]) or dynamic:K (K ≥ 0)");
        let (kind, value) = s.trim().split_once(':').ok_or_else(bad)?;
        let v: f32 = value.trim().parse().map_err(|_| bad())?;
        match kind.trim() {
            "fixed" if (0.0..=1.0).contains(&v) => Ok(ThresholdRule::Fixed(v)),
            "dynamic" if v.is_finite() && v >= 0.0 => Ok(ThresholdRule::Dynamic(v)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for ThresholdRule {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<ThresholdRule> for String {
    fn from(t: ThresholdRule) -> String {
        t.to_string()
    }
}

/// How consecutive sampled embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuccessorMetric {
    /// Euclidean distance, as successor segmentation defines it (default).
    #[default]
    Euclidean,
    /// Cosine distance `1 − cos`.
    Cosine,
}

impl SuccessorMetric {
    pub(crate) fn metric(self) -> Metric {
        match self {
            SuccessorMetric::Euclidean => Metric::Euclidean,
            SuccessorMetric::Cosine => Metric::Cosine,
        }
    }
}

/// Settings of the segments pipeline (serde, so they can come from a file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentsConfig {
    /// Frames sampled per second for the embeddings (default 2).
    pub fps: f64,
    /// With a model, sampled frames are scaled to at most this height (default 360).
    pub height: u32,
    /// Successor distance (default Euclidean).
    pub metric: SuccessorMetric,
    /// The seam rule (default `dynamic:2`).
    pub threshold: ThresholdRule,
    /// Rolling window of the dynamic threshold, in seconds (default 10).
    pub window_seconds: f64,
    /// Let the embedding surveyor raise the threshold per window (default true).
    pub surveyor: bool,
    /// The surveyor's window in seconds (default 30; it steps by half a window).
    pub surveyor_window_seconds: f64,
    /// Shortest segment, in seconds (default 2).
    pub min_seconds: f64,
    /// Longest segment, in seconds (default 15).
    pub max_seconds: f64,
    /// Combine the seams with the shot detector's cuts and gradual transitions (default true).
    pub shots: bool,
    /// How every frame is decoded for shot detection (default 64 × 36).
    pub analysis: AnalysisOptions,
    /// Keyframes of one segment whose perceptual hashes (64 bits) differ in at most this
    /// many bits are near-duplicates: only the first is kept (default 10; 0 keeps only
    /// identical-looking ones out).
    pub phash_distance: u32,
    /// Write `keyframes_grid.jpg`, `successor.png` and `embeddings.png` (default true).
    pub pictures: bool,
    /// Write one clip per segment (default true).
    pub export_clips: bool,
    /// Keep the audio in the clips (default true; a damaged audio stream is left out with
    /// a note).
    pub audio: bool,
    /// Re-encode (frame-accurate, default) or stream copy.
    pub clip_mode: ClipMode,
    /// x264 CRF (default 18).
    pub crf: u8,
    /// x264 preset (default veryfast). Segments re-encode the whole video, so file size
    /// counts more here than for a few highlight clips (whose default is superfast: at the
    /// same CRF about 1.5× larger files, cut in about 30 % less time).
    pub preset: X264Preset,
    /// The embedding model (default [`ModelChoice::Auto`]: [`DEFAULT_MODEL`] when it is in
    /// the local Hugging Face cache, else the weight-free pixel embedder with a note).
    pub model: ModelChoice,
}

/// The model [`ModelChoice::Auto`] stands for in this pipeline: the CLIP ViT-B/32 trained on
/// LAION-2B (`laion2b_s34b_b79k`) that successor segmentation uses.
pub const DEFAULT_MODEL: &str = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K";

impl Default for SegmentsConfig {
    fn default() -> Self {
        Self {
            fps: 2.0,
            height: 360,
            metric: SuccessorMetric::Euclidean,
            threshold: ThresholdRule::Dynamic(2.0),
            window_seconds: 10.0,
            surveyor: true,
            surveyor_window_seconds: 30.0,
            min_seconds: 2.0,
            max_seconds: 15.0,
            shots: true,
            analysis: AnalysisOptions::default(),
            phash_distance: 10,
            pictures: true,
            export_clips: true,
            audio: true,
            clip_mode: ClipMode::Reencode,
            crf: 18,
            preset: X264Preset::Veryfast,
            model: ModelChoice::Auto,
        }
    }
}

/// One segment of the video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// 1-based number.
    pub number: usize,
    /// Start time in seconds (the time of its first frame; 0 for the first segment).
    pub start: f64,
    /// End time in seconds (start of the next segment, or the video's end).
    pub end: f64,
    /// Decoded-frame index of its first frame.
    pub start_frame: u64,
    /// Decoded-frame index of its last frame.
    pub end_frame: u64,
    /// Why it starts where it does (`None` for the first segment).
    pub starts_at: Option<BoundaryKind>,
    /// Its clip's file name, when clips were written.
    pub clip: Option<String>,
    /// Representative keyframes, in time order.
    pub keyframes: Vec<SegmentKeyframe>,
    /// Mean embedding of its sampled frames (the centroid).
    pub mean_embedding: Vec<f32>,
}

/// A representative keyframe of a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentKeyframe {
    /// Decoded-frame index.
    pub frame: u64,
    /// Time in seconds.
    pub time: f64,
    /// Image file name in the output folder (empty when the frame could not be decoded).
    pub path: String,
    /// Euclidean distance of its embedding to the segment's mean embedding.
    pub distance_to_centroid: f32,
}

/// A shot transition found by the shot pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FoundTransition {
    /// First frame of the new shot.
    pub frame: usize,
    /// Its time.
    pub time: f64,
    /// Cut or gradual.
    pub kind: TransitionKind,
}

/// What [`run`] wrote (also `segments.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentsReport {
    /// The source video.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub video: PathBuf,
    /// Its duration in seconds.
    pub duration: f64,
    /// The embedder used for the successor distances.
    pub embedder: String,
    /// The settings used.
    pub parameters: SegmentsConfig,
    /// The segments in order.
    pub segments: Vec<Segment>,
    /// Every shot transition the shot pass found (some may not start a segment, when a shot
    /// is shorter than the minimum).
    pub transitions: Vec<FoundTransition>,
    /// The pictures written.
    pub pictures: Vec<String>,
    /// Remarks (the model that was not available...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The video, the output folder and the models of a segments run.
#[derive(Debug, Clone, Copy)]
pub struct SegmentsInput<'a> {
    /// The video file.
    pub video: &'a Path,
    /// The output folder (created when missing).
    pub output: &'a Path,
    /// Where models come from.
    pub models: &'a Models,
    /// Replace a folder that holds files this pipeline did not write (default false: such a
    /// folder is refused). A folder of an earlier run of the same pipeline is always
    /// reused, its stale files removed.
    pub overwrite: bool,
}

impl<'a> SegmentsInput<'a> {
    /// The input for `video`, writing into `output`, with models from `models`.
    pub fn new(
        video: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
        models: &'a Models,
    ) -> Self {
        Self {
            video: video.as_ref(),
            output: output.as_ref(),
            models,
            overwrite: false,
        }
    }

    /// Sets [`SegmentsInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

impl SegmentsConfig {
    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 120.0) {
            return Err(Error::config(
                "fps",
                format!("{} is not in (0, 120]", num(self.fps)),
            ));
        }
        if self.height < 16 {
            return Err(Error::config(
                "height",
                format!("{} is below 16", self.height),
            ));
        }
        if !(self.min_seconds.is_finite() && self.min_seconds > 0.0) {
            return Err(Error::config(
                "min_seconds",
                format!(
                    "{} s: a segment must last more than 0 s",
                    num(self.min_seconds)
                ),
            ));
        }
        if !(self.max_seconds.is_finite() && self.max_seconds >= self.min_seconds) {
            return Err(Error::config(
                "max_seconds",
                format!(
                    "{} s is below the shortest segment (min_seconds, {} s)",
                    num(self.max_seconds),
                    num(self.min_seconds)
                ),
            ));
        }
        for (name, v) in [
            ("window_seconds", self.window_seconds),
            ("surveyor_window_seconds", self.surveyor_window_seconds),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(Error::config(
                    name,
                    format!("{} s: the window must be positive (at most a day)", num(v)),
                ));
            }
        }
        let ok = match self.threshold {
            ThresholdRule::Fixed(v) => (0.0..=1.0).contains(&v),
            ThresholdRule::Dynamic(k) => k.is_finite() && k >= 0.0,
        };
        if !ok {
            return Err(Error::config(
                "threshold",
                format!(
                    "{}: fixed:V needs V in [0, 1], dynamic:K needs K ≥ 0",
                    self.threshold
                ),
            ));
        }
        if self.phash_distance > 64 {
            return Err(Error::config(
                "phash_distance",
                format!(
                    "{}: a 64-bit hash differs in at most 64 bits",
                    self.phash_distance
                ),
            ));
        }
        if self.crf > 51 {
            return Err(Error::config(
                "crf",
                format!("{}: x264 takes 0..=51", self.crf),
            ));
        }
        self.analysis.validate()
    }
}

/// What the analysis side of a run found, before anything is written.
pub(crate) struct Plan {
    frames: Vec<FrameRef>,
    embeddings: Embeddings,
    embedder: String,
    duration: f64,
    found: find::Found,
    transitions: Vec<FoundTransition>,
    /// Per segment: `[start, end)` in seconds, its first and last frame, its kind, its
    /// sampled rows.
    spans: Vec<SegmentSpan>,
    notes: Vec<String>,
}

#[derive(Debug, Clone)]
struct SegmentSpan {
    start: f64,
    end: f64,
    start_frame: usize,
    end_frame: usize,
    kind: Option<BoundaryKind>,
    rows: std::ops::Range<usize>,
}

/// Runs the pipeline, writing clips (`segment_001.mp4`...), keyframe images
/// (`segment_001_kf1.jpg`...), the pictures and `segments.json` into the output folder.
pub fn run(
    input: &SegmentsInput<'_>,
    config: &SegmentsConfig,
    progress: &dyn Progress,
) -> Result<SegmentsReport, Error> {
    config.validate()?;
    // The output folder is checked before the analysis, so a refused folder fails at once.
    let out =
        OutputDir::begin(input.output, "segments", input.overwrite)?.inputs(&[input.video])?;
    let plan = plan(input, config, progress)?;
    let video = decode::open(input.video)?;
    let (segments, warnings) = export(&video, &plan, config, &out, progress)?;
    let mut notes = plan.notes.clone();
    notes.extend(warnings);
    let mut pictures_written = Vec::new();
    if config.pictures {
        pictures_written = pictures::write_all(&plan, &segments, &out)?;
    }
    let report = SegmentsReport {
        video: input.video.to_path_buf(),
        duration: plan.duration,
        embedder: plan.embedder.clone(),
        parameters: config.clone(),
        segments: segments.into_iter().map(|(s, _)| s).collect(),
        transitions: plan.transitions,
        pictures: pictures_written,
        notes,
    };
    out.commit("segments.json", &report)?;
    Ok(report)
}

/// Decodes, embeds and finds the boundaries.
fn plan(
    input: &SegmentsInput<'_>,
    config: &SegmentsConfig,
    progress: &dyn Progress,
) -> Result<Plan, Error> {
    let resolved = input.models.resolve(&config.model, DEFAULT_MODEL)?;
    let mut notes = Vec::new();
    if let Some(n) = &resolved.note {
        notes.push(segments_note(n, config));
    }
    // 1. Every frame, small: shot transitions and the pixel rows.
    let a = config.analysis.run(input.video, false, progress)?;
    let fps = a.info.fps;
    let transitions = if config.shots {
        ShotOptions::for_fps(fps)
            .detect_frames(&a.emb, Some(&a.luma), None)
            .transitions
    } else {
        Vec::new()
    };
    // 2. The sampled embeddings.
    let (frames, embeddings, embedder) = match &resolved.model {
        Some(model) => {
            let video = decode::open(input.video)?;
            let opts = DecodeOptions::new()
                .sampling(Sampling::Fps(config.fps))
                .scale(Scale::MaxHeight(config.height));
            let expected = (a.info.duration * config.fps).ceil() as u64;
            let stage = StageGuard::start(progress, Stage::Embed, Some(expected));
            let s = embed_frames(&video, &opts, model.as_ref(), DEFAULT_BATCH, &stage, |_| {
                Ok(())
            })?;
            (
                s.frames,
                s.embeddings,
                reelsmith_embed::Embedder::model_id(model.as_ref()).to_string(),
            )
        }
        None => {
            let picked = find::sample_at_fps(&a.times, config.fps);
            let frames = picked
                .iter()
                .map(|&i| FrameRef {
                    index: i as u64,
                    time: a.times[i],
                })
                .collect();
            let emb = a.emb.select(&picked);
            let id =
                reelsmith_embed::Embedder::model_id(&reelsmith_embed::PixelEmbedder::default())
                    .to_string();
            (frames, emb, id)
        }
    };
    let Some(last) = frames.last() else {
        return Err(Error::NoFrames {
            path: a.info.path.clone(),
            sampling: format!("{} fps", config.fps),
        });
    };
    let duration = a.info.duration.max(end_time(&a.times, fps)).max(last.time);
    let all = find::AllFrames {
        times: &a.times,
        rows: &a.emb,
        transitions: &transitions,
    };
    let found = find::find(&frames, &embeddings, &all, duration, config);
    let spans = spans(&found.boundaries, &frames, a.times.len(), duration);
    let transitions = transitions
        .iter()
        .map(|t| FoundTransition {
            frame: t.frame,
            time: a.times.get(t.frame).copied().unwrap_or(duration),
            kind: t.kind,
        })
        .collect();
    Ok(Plan {
        frames,
        embeddings,
        embedder,
        duration,
        found,
        transitions,
        spans,
        notes,
    })
}

/// The note for a default model that is not available, said for this pipeline.
fn segments_note(note: &str, _config: &SegmentsConfig) -> String {
    tracing::debug!("{note}");
    format!(
        "no CLIP model ({DEFAULT_MODEL} is not in the local Hugging Face cache or could not be \
         loaded): segments use the weight-free pixel embedder; to use the model, download it \
         once (`huggingface-cli download {DEFAULT_MODEL}`) or choose a model (a hub id or a \
         local folder)"
    )
}

/// The segments between consecutive boundaries, with the sampled rows each holds.
fn spans(
    bounds: &[find::Boundary],
    frames: &[FrameRef],
    n_frames: usize,
    duration: f64,
) -> Vec<SegmentSpan> {
    let mut starts: Vec<(f64, usize, Option<BoundaryKind>)> = vec![(0.0, 0, None)];
    starts.extend(bounds.iter().map(|b| (b.time, b.frame, Some(b.kind))));
    let mut out = Vec::with_capacity(starts.len());
    for (i, &(start, start_frame, kind)) in starts.iter().enumerate() {
        let (end, next_frame) = starts
            .get(i + 1)
            .map_or((duration, n_frames), |n| (n.0, n.1));
        let row_of = |t: f64| frames.partition_point(|f| f.time < t - 1e-9);
        let rows = row_of(start)..row_of(end);
        out.push(SegmentSpan {
            start,
            end,
            start_frame,
            end_frame: next_frame.saturating_sub(1).max(start_frame),
            kind,
            rows,
        });
    }
    out
}

/// The keyframe rows of a segment: [`keyframe_count`] of them, each the row nearest the
/// segment mean within one equal part of the segment, and the mean.
fn keyframe_rows(
    emb: &Embeddings,
    rows: std::ops::Range<usize>,
    fps: f64,
) -> (Vec<usize>, Vec<f32>) {
    let Some(mean) = emb.mean(Some(rows.clone())) else {
        return (Vec::new(), Vec::new());
    };
    let dist = |i: usize| distance(emb.row(i), &mean);
    let len = rows.len();
    let k = keyframe_count(len, fps).max(1);
    let mut picked = Vec::with_capacity(k);
    for part in 0..k {
        let a = rows.start + part * len / k;
        let b = (rows.start + (part + 1) * len / k).max(a + 1);
        if let Some(best) = (a..b).min_by(|&x, &y| dist(x).total_cmp(&dist(y))) {
            picked.push(best);
        }
    }
    picked.dedup();
    (picked, mean)
}

/// Euclidean distance (0 when not finite).
fn distance(a: &[f32], b: &[f32]) -> f32 {
    let d = Metric::Euclidean.distance(a, b);
    if d.is_finite() {
        d
    } else {
        0.0
    }
}

/// A segment and its keyframe images (for the grid).
type Written = (Segment, Vec<image::RgbImage>);

/// Cuts the segment clips (when asked) and writes each segment's keyframe images.
fn export(
    video: &decode::Video,
    plan: &Plan,
    config: &SegmentsConfig,
    out: &OutputDir,
    progress: &dyn Progress,
) -> Result<(Vec<Written>, Vec<String>), Error> {
    let mut notes = Vec::new();
    let n = plan.spans.len();
    let steps = n * if config.export_clips { 2 } else { 1 };
    let stage = StageGuard::start(progress, Stage::Export, Some(steps as u64));
    let clip_name = |i: usize| format!("segment_{:03}.mp4", i + 1);
    let picks: Vec<(Vec<usize>, Vec<f32>)> = plan
        .spans
        .iter()
        .map(|s| keyframe_rows(&plan.embeddings, s.rows.clone(), config.fps))
        .collect();
    let mut clips: Vec<Option<String>> = vec![None; n];
    let mut stills: Vec<Vec<Option<decode::Frame>>> = vec![Vec::new(); n];
    if config.export_clips {
        let clip_opts = ClipOptions {
            mode: config.clip_mode,
            crf: config.crf,
            preset: config.preset,
            audio: config.audio,
            threads: 0,
        };
        let mut which = Vec::new();
        let mut jobs = Vec::new();
        for (i, s) in plan
            .spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.end > s.start)
        {
            // The keyframes lie inside the segment: the cut hands them back decoded.
            let times = picks[i].0.iter().map(|&row| plan.frames[row].time);
            jobs.push(ClipJob::new(s.start, s.end, out.path(&clip_name(i))?).with_stills(times));
            which.push(i);
        }
        let written = decode::export_clips(video, &jobs, &clip_opts, |_, _| stage.advance(1))?;
        for (i, r) in which.into_iter().zip(written) {
            clips[i] = Some(clip_name(i));
            notes.extend(r.warnings.iter().map(|w| format!("{}: {w}", clip_name(i))));
            stills[i] = r.stills;
        }
    }
    let hasher = image_hasher::HasherConfig::new()
        .hash_alg(image_hasher::HashAlg::Mean)
        .preproc_dct()
        .to_hasher();
    let kf_opts = DecodeOptions::new();
    let mut segments = Vec::with_capacity(n);
    for (i, ((span, (rows, mean)), mut decoded)) in
        plan.spans.iter().zip(&picks).zip(stills).enumerate()
    {
        let number = i + 1;
        let mut keyframes = Vec::new();
        let mut images = Vec::new();
        let mut hashes: Vec<image_hasher::ImageHash> = Vec::new();
        decoded.resize(rows.len(), None);
        for (&row, still) in rows.iter().zip(decoded) {
            let f = plan.frames[row];
            let image = match still {
                Some(still) => Some(still.image),
                None => video
                    .frames_from(f.time, &kf_opts)?
                    .next()
                    .transpose()?
                    .map(|d| d.image),
            };
            let mut path = String::new();
            if let Some(image) = image {
                let hash = hasher.hash_image(&image::DynamicImage::ImageRgb8(image.clone()));
                if hashes
                    .iter()
                    .any(|h| h.dist(&hash) <= config.phash_distance)
                {
                    continue; // a near-duplicate of a keyframe already kept
                }
                hashes.push(hash);
                path = format!("segment_{number:03}_kf{}.jpg", keyframes.len() + 1);
                crate::output::save_image(&image, &out.path(&path)?)?;
                images.push(image);
            }
            keyframes.push(SegmentKeyframe {
                frame: f.index,
                time: f.time,
                path,
                distance_to_centroid: distance(plan.embeddings.row(row), mean),
            });
        }
        segments.push((
            Segment {
                number,
                start: span.start,
                end: span.end,
                start_frame: span.start_frame as u64,
                end_frame: span.end_frame as u64,
                starts_at: span.kind,
                clip: clips[i].clone(),
                keyframes,
                mean_embedding: mean.clone(),
            },
            images,
        ));
        stage.advance(1);
    }
    Ok((segments, notes))
}
