//! The successor-segmentation pipeline.
//!
//! Embed sampled frames (default 2 fps; CLIP when given, else the weight-free pixel
//! embedder) → cosine successor distances, min-max normalised → seams where a distance
//! exceeds its rolling mean + k·std (window 10 s, k 2) → segments of 2–15 s (seams closer
//! than 2 s thinned to the stronger, longer segments split at their strongest internal
//! seam) → per segment its mean embedding and 2–4 representative keyframes → export the
//! segment clips, keyframe images and `segments.json`.
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

use std::path::{Path, PathBuf};

use reelsmith_core::FrameRef;
use reelsmith_decode::{
    self as decode, ClipJob, ClipMode, ClipOptions, DecodeOptions, Sampling, Scale, X264Preset,
};
use reelsmith_embed::{Embedder, PixelEmbedder};
use reelsmith_segment::seams::{seams, segments_from_starts, SeamOptions, Threshold};
use reelsmith_segment::summary::SegmentSummary;
use reelsmith_segment::{min_max_normalize, successor_distances, summary::summarize, Metric};
use serde::{Deserialize, Serialize};

use crate::embed_loop::{embed_error, embed_frames, DEFAULT_BATCH};
use crate::error::num;
use crate::models::{ModelChoice, Models};
use crate::output::OutputDir;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// Settings of the segments pipeline (serde, so they can come from a file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentsConfig {
    /// Frames sampled per second.
    pub fps: f64,
    /// Sampled frames are scaled to at most this height before embedding.
    pub height: u32,
    /// Rolling window of the dynamic threshold, in seconds.
    pub window_seconds: f64,
    /// Standard deviations above the rolling mean for a seam.
    pub k: f32,
    /// Shortest segment, in seconds.
    pub min_seconds: f64,
    /// Longest segment, in seconds.
    pub max_seconds: f64,
    /// Write one clip per segment.
    pub export_clips: bool,
    /// Keep the audio in the clips (a damaged audio stream is left out with a note).
    pub audio: bool,
    /// Re-encode (frame-accurate) or stream copy.
    pub clip_mode: ClipMode,
    /// x264 CRF.
    pub crf: u8,
    /// x264 preset (default veryfast). Segments re-encode the whole video, so file size
    /// counts more here than for a few highlight clips (whose default is superfast: at the
    /// same CRF about 1.5× larger files, cut in about 30 % less time).
    pub preset: X264Preset,
    /// The embedding model (default [`ModelChoice::None`]: the weight-free pixel embedder).
    pub model: ModelChoice,
}

/// The model [`ModelChoice::Auto`] stands for in this pipeline.
pub const DEFAULT_MODEL: &str = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K";

impl Default for SegmentsConfig {
    fn default() -> Self {
        Self {
            fps: 2.0,
            height: 360,
            window_seconds: 10.0,
            k: 2.0,
            min_seconds: 2.0,
            max_seconds: 15.0,
            export_clips: true,
            audio: true,
            clip_mode: ClipMode::Reencode,
            crf: 18,
            preset: X264Preset::Veryfast,
            model: ModelChoice::None,
        }
    }
}

/// One segment of the video.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// 1-based number.
    pub number: usize,
    /// Start time in seconds (time of its first sampled frame; 0 for the first segment).
    pub start: f64,
    /// End time in seconds (start of the next segment, or the video's end).
    pub end: f64,
    /// Decoded-frame index of its first sampled frame.
    pub start_frame: u64,
    /// Its clip's file name, when clips were written.
    pub clip: Option<String>,
    /// Representative keyframes: (decoded-frame index, time, image file name).
    pub keyframes: Vec<SegmentKeyframe>,
    /// Mean embedding of its sampled frames.
    pub mean_embedding: Vec<f32>,
}

/// A representative keyframe of a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentKeyframe {
    /// Decoded-frame index.
    pub frame: u64,
    /// Time in seconds.
    pub time: f64,
    /// Image file name in the output folder.
    pub path: String,
}

/// What [`run`] wrote (also `segments.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentsReport {
    /// The source video.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub video: PathBuf,
    /// Its duration in seconds.
    pub duration: f64,
    /// The embedder used.
    pub embedder: String,
    /// The settings used.
    pub parameters: SegmentsConfig,
    /// The segments in order.
    pub segments: Vec<Segment>,
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
        if !(self.window_seconds.is_finite() && self.window_seconds > 0.0) {
            return Err(Error::config(
                "window_seconds",
                format!(
                    "{} s: the window must be positive",
                    num(self.window_seconds)
                ),
            ));
        }
        if !(self.k.is_finite() && self.k >= 0.0) {
            return Err(Error::config(
                "k",
                format!("{} is not a finite number ≥ 0", num(self.k)),
            ));
        }
        if self.crf > 51 {
            return Err(Error::config(
                "crf",
                format!("{}: x264 takes 0..=51", self.crf),
            ));
        }
        Ok(())
    }
}

/// Runs the pipeline, writing clips (`segment_001.mp4`...), keyframe images
/// (`segment_001_kf1.jpg`...) and `segments.json` into the output folder.
pub fn run(
    input: &SegmentsInput<'_>,
    config: &SegmentsConfig,
    progress: &dyn Progress,
) -> Result<SegmentsReport, Error> {
    config.validate()?;
    // The output folder is checked before the analysis, so a refused folder fails at once.
    let out =
        OutputDir::begin(input.output, "segments", input.overwrite)?.inputs(&[input.video])?;
    let video = decode::open(input.video)?;
    let info = video.info().clone();
    let resolved = input.models.resolve(&config.model, DEFAULT_MODEL)?;
    let pixel = PixelEmbedder::new(16, 9).map_err(embed_error(input.video))?;
    let embedder: &dyn Embedder = match &resolved.model {
        Some(m) => m.as_ref(),
        None => &pixel,
    };
    let opts = DecodeOptions::new()
        .sampling(Sampling::Fps(config.fps))
        .scale(Scale::MaxHeight(config.height));
    let expected = (info.duration * config.fps).ceil() as u64;
    let sampled = {
        let stage = StageGuard::start(progress, Stage::Embed, Some(expected));
        embed_frames(&video, &opts, embedder, DEFAULT_BATCH, &stage, |_| Ok(()))?
    };
    let Some(last) = sampled.frames.last() else {
        return Err(Error::NoFrames {
            path: info.path.clone(),
            sampling: format!("{:?}", opts.sampling),
        });
    };
    let duration = info.duration.max(last.time);
    let summaries = find_segments(&sampled.embeddings, config);
    let spans = spans(&summaries, &sampled.frames, duration);
    let mut notes: Vec<String> = resolved.note.into_iter().collect();
    let (segments, warnings) = export(
        &video,
        &summaries,
        &spans,
        &sampled.frames,
        config,
        &out,
        progress,
    )?;
    notes.extend(warnings);
    let report = SegmentsReport {
        video: input.video.to_path_buf(),
        duration,
        embedder: embedder.model_id().to_string(),
        parameters: config.clone(),
        segments,
        notes,
    };
    out.commit("segments.json", &report)?;
    Ok(report)
}

/// Seams on the successor distances of `embeddings`, as segments with their summaries.
fn find_segments(
    embeddings: &reelsmith_core::Embeddings,
    config: &SegmentsConfig,
) -> Vec<SegmentSummary> {
    let mut dists = successor_distances(embeddings, Metric::Cosine);
    min_max_normalize(&mut dists);
    let to_frames = |s: f64| ((s * config.fps).round() as usize).max(1);
    let starts = seams(
        &dists,
        &SeamOptions {
            threshold: Threshold::Dynamic {
                window: to_frames(config.window_seconds),
                k: config.k,
            },
            min_len: to_frames(config.min_seconds),
            max_len: Some(to_frames(config.max_seconds)),
        },
    );
    let ranges = segments_from_starts(&starts, embeddings.len());
    summarize(embeddings, &ranges, config.fps)
}

/// Each segment's `[start, end)` in seconds: from its first sampled frame (0 for the
/// first) to the next segment's start (the video's end for the last).
fn spans(summaries: &[SegmentSummary], frames: &[FrameRef], duration: f64) -> Vec<(f64, f64)> {
    summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start = if i == 0 { 0.0 } else { frames[s.start].time };
            let end = frames.get(s.end).map_or(duration, |f| f.time);
            (start, end)
        })
        .collect()
}

/// Cuts the segment clips (when asked) and writes each segment's keyframe images.
fn export(
    video: &decode::Video,
    summaries: &[SegmentSummary],
    spans: &[(f64, f64)],
    frames: &[FrameRef],
    config: &SegmentsConfig,
    out: &OutputDir,
    progress: &dyn Progress,
) -> Result<(Vec<Segment>, Vec<String>), Error> {
    let mut notes = Vec::new();
    // one step per clip and one per segment's keyframes
    let steps = summaries.len() * if config.export_clips { 2 } else { 1 };
    let stage = StageGuard::start(progress, Stage::Export, Some(steps as u64));
    let clip_name = |i: usize| format!("segment_{:03}.mp4", i + 1);
    let mut clips: Vec<Option<String>> = vec![None; summaries.len()];
    let mut stills: Vec<Vec<Option<decode::Frame>>> = vec![Vec::new(); summaries.len()];
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
        for (i, &(start, end)) in spans.iter().enumerate().filter(|(_, (s, e))| e > s) {
            // The keyframes lie inside the segment: the cut hands them back decoded.
            let times = summaries[i].keyframes.iter().map(|&row| frames[row].time);
            jobs.push(ClipJob::new(start, end, out.path(&clip_name(i))?).with_stills(times));
            which.push(i);
        }
        let written = decode::export_clips(video, &jobs, &clip_opts, |_, _| stage.advance(1))?;
        for (i, r) in which.into_iter().zip(written) {
            clips[i] = Some(clip_name(i));
            notes.extend(r.warnings.iter().map(|w| format!("{}: {w}", clip_name(i))));
            stills[i] = r.stills;
        }
    }
    let kf_opts = DecodeOptions::new();
    let mut segments = Vec::with_capacity(summaries.len());
    for (i, ((s, clip), mut decoded)) in summaries.iter().zip(clips).zip(stills).enumerate() {
        let number = i + 1;
        let mut keyframes = Vec::new();
        decoded.resize(s.keyframes.len(), None);
        for (j, (&row, still)) in s.keyframes.iter().zip(decoded).enumerate() {
            let f = frames[row];
            let name = format!("segment_{number:03}_kf{}.jpg", j + 1);
            let image = match still {
                Some(still) => Some(still.image),
                None => video
                    .frames_from(f.time, &kf_opts)?
                    .next()
                    .transpose()?
                    .map(|d| d.image),
            };
            if let Some(image) = image {
                crate::output::save_image(&image, &out.path(&name)?)?;
            }
            keyframes.push(SegmentKeyframe {
                frame: f.index,
                time: f.time,
                path: name,
            });
        }
        segments.push(Segment {
            number,
            start: spans[i].0,
            end: spans[i].1,
            start_frame: frames[s.start].index,
            clip,
            keyframes,
            mean_embedding: s.mean.clone(),
        });
        stage.advance(1);
    }
    Ok((segments, notes))
}
