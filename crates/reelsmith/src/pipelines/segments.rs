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
//! use reelsmith::segments::{segment_video, SegmentsConfig};
//! let report = segment_video("talk.mp4".as_ref(), "out/".as_ref(), &SegmentsConfig::default(), None, None)?;
//! println!("{} segments", report.segments.len());
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_decode::{
    self as decode, ClipJob, ClipMode, ClipOptions, DecodeOptions, Sampling, Scale, X264Preset,
};
use reelsmith_embed::{Embedder, PixelEmbedder};
use reelsmith_segment::seams::{seams, segments_from_starts, SeamOptions, Threshold};
use reelsmith_segment::{min_max_normalize, successor_distances, summary::summarize, Metric};
use serde::{Deserialize, Serialize};

use crate::progress::{Progress, Stage};
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
    /// Re-encode (frame-accurate) or stream copy.
    pub clip_mode: ClipMode,
    /// x264 CRF.
    pub crf: u8,
    /// x264 preset (default veryfast). Segments re-encode the whole video, so file size
    /// counts more here than for a few highlight clips (whose default is superfast: at the
    /// same CRF about 1.5× larger files, cut in about 30 % less time).
    pub preset: X264Preset,
}

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
            clip_mode: ClipMode::Reencode,
            crf: 18,
            preset: X264Preset::Veryfast,
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
    pub keyframes: Vec<Keyframe>,
    /// Mean embedding of its sampled frames.
    pub mean_embedding: Vec<f32>,
}

/// A representative keyframe of a segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Keyframe {
    /// Decoded-frame index.
    pub frame: u64,
    /// Time in seconds.
    pub time: f64,
    /// Image file name in the output folder.
    pub path: String,
}

/// What [`segment_video`] wrote (also `segments.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentsReport {
    /// The source video.
    pub video: PathBuf,
    /// Its duration in seconds.
    pub duration: f64,
    /// The embedder used.
    pub embedder: String,
    /// The settings used.
    pub parameters: SegmentsConfig,
    /// The segments in order.
    pub segments: Vec<Segment>,
}

/// Runs the pipeline on `video`, writing clips (`segment_001.mp4`...), keyframe images
/// (`segment_001_kf1.jpg`...) and `segments.json` into `out_dir`. `embedder` defaults to
/// the pixel embedder.
pub fn segment_video(
    video: &Path,
    out_dir: &Path,
    cfg: &SegmentsConfig,
    embedder: Option<&dyn Embedder>,
    progress: Option<&dyn Progress>,
) -> Result<SegmentsReport, Error> {
    let invalid = |detail: String| Error::InvalidArgument {
        path: video.to_path_buf(),
        detail,
    };
    if !(cfg.fps.is_finite() && cfg.fps > 0.0) {
        return Err(invalid(format!("fps is {}; it must be positive", cfg.fps)));
    }
    if !(cfg.min_seconds >= 0.0
        && cfg.max_seconds >= cfg.min_seconds
        && cfg.max_seconds.is_finite())
    {
        return Err(invalid(format!(
            "segment lengths {}..{} s are invalid: need 0 <= min_seconds <= max_seconds",
            cfg.min_seconds, cfg.max_seconds
        )));
    }
    if !(cfg.window_seconds > 0.0 && cfg.k.is_finite()) {
        return Err(invalid(
            "window_seconds must be positive and k finite".into(),
        ));
    }
    let v = decode::open(video)?;
    let info = v.info().clone();
    let embed_err = |source| Error::Embed {
        path: video.to_path_buf(),
        source,
    };
    let pixel = PixelEmbedder::new(16, 9).map_err(embed_err)?;
    let emb: &dyn Embedder = embedder.unwrap_or(&pixel);
    let opts = DecodeOptions::new()
        .sampling(Sampling::Fps(cfg.fps))
        .scale(Scale::MaxHeight(cfg.height));
    let expected = (info.duration * cfg.fps).ceil() as u64;
    let sampled = crate::sampling::embed_sampled(
        &v,
        &opts,
        emb,
        progress.map(|p| (p, Stage::Scoring, expected)),
        embed_err,
        |_| Ok(()),
    )?;
    if sampled.refs.is_empty() {
        return Err(reelsmith_decode::DecodeError::ZeroLength {
            path: info.path.clone(),
        }
        .into());
    }
    let mut dists = successor_distances(&sampled.embeddings, Metric::Cosine);
    min_max_normalize(&mut dists);
    let to_frames = |s: f64| ((s * cfg.fps).round() as usize).max(1);
    let starts = seams(
        &dists,
        &SeamOptions {
            threshold: Threshold::Dynamic {
                window: to_frames(cfg.window_seconds),
                k: cfg.k,
            },
            min_len: to_frames(cfg.min_seconds),
            max_len: Some(to_frames(cfg.max_seconds)),
        },
    );
    let n = sampled.refs.len();
    let ranges = segments_from_starts(&starts, n);
    let summaries = summarize(&sampled.embeddings, &ranges, cfg.fps);
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let duration = info.duration.max(sampled.refs[n - 1].1);
    let clip_opts = ClipOptions {
        mode: cfg.clip_mode,
        crf: cfg.crf,
        preset: cfg.preset,
        audio: true,
        threads: 0,
    };
    let kf_opts = DecodeOptions::new();
    // one step per clip and one per segment's keyframes
    if let Some(p) = progress {
        let steps = summaries.len() * if cfg.export_clips { 2 } else { 1 };
        p.start(Stage::Export, steps as u64);
    }
    let spans: Vec<(f64, f64)> = summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start = if i == 0 { 0.0 } else { sampled.refs[s.start].1 };
            let end = if s.end < n {
                sampled.refs[s.end].1
            } else {
                duration
            };
            (start, end)
        })
        .collect();
    let clip_name = |i: usize| format!("segment_{:03}.mp4", i + 1);
    let mut clips: Vec<Option<String>> = vec![None; summaries.len()];
    let mut stills: Vec<Vec<Option<decode::Frame>>> = vec![Vec::new(); summaries.len()];
    if cfg.export_clips {
        let (which, jobs): (Vec<usize>, Vec<ClipJob>) = spans
            .iter()
            .enumerate()
            .filter(|(_, (start, end))| end > start)
            .map(|(i, &(start, end))| {
                let out = out_dir.join(clip_name(i));
                // The keyframes lie inside the segment: the cut hands them back decoded.
                let times = summaries[i]
                    .keyframes
                    .iter()
                    .map(|&row| sampled.refs[row].1);
                (i, ClipJob::new(start, end, out).with_stills(times))
            })
            .unzip();
        let written = decode::export_clips(&v, &jobs, &clip_opts, |_, _| {
            if let Some(p) = progress {
                p.advance(Stage::Export, 1);
            }
        })?;
        for (i, r) in which.into_iter().zip(written) {
            clips[i] = Some(clip_name(i));
            stills[i] = r.stills;
        }
    }
    let mut segments = Vec::with_capacity(summaries.len());
    for (i, ((s, clip), mut decoded)) in summaries.iter().zip(clips).zip(stills).enumerate() {
        let number = i + 1;
        let (start, end) = spans[i];
        let mut keyframes = Vec::new();
        decoded.resize(s.keyframes.len(), None);
        for (j, (&row, still)) in s.keyframes.iter().zip(decoded).enumerate() {
            let (frame, time) = sampled.refs[row];
            let name = format!("segment_{number:03}_kf{}.jpg", j + 1);
            let f = match still {
                Some(f) => Some(f),
                None => v.frames_from(time, &kf_opts)?.next().transpose()?,
            };
            if let Some(f) = f {
                decode::save_image(&f.image, &out_dir.join(&name), None)?;
            }
            keyframes.push(Keyframe {
                frame,
                time,
                path: name,
            });
        }
        segments.push(Segment {
            number,
            start,
            end,
            start_frame: sampled.refs[s.start].0,
            clip,
            keyframes,
            mean_embedding: s.mean.clone(),
        });
        if let Some(p) = progress {
            p.advance(Stage::Export, 1);
        }
    }
    if let Some(p) = progress {
        p.finish(Stage::Export);
    }
    let report = SegmentsReport {
        video: video.to_path_buf(),
        duration,
        embedder: emb.model_id().to_string(),
        parameters: cfg.clone(),
        segments,
    };
    let json = out_dir.join("segments.json");
    crate::report::write_json(&json, &report)?;
    Ok(report)
}
