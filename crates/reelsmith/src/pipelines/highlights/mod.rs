//! The best-shot highlights pipeline.
//!
//! sample frames (default 3 fps, at most 720 px high) → score every frame (sharpness,
//! exposure, and with a CLIP model aesthetics and prompt saliency) → smooth over 2.5 s →
//! peaks at least 5 s apart → best first → a clip around each peak (1 s before, 2 s after,
//! 3–7 s long, inside the video) → greedy diversity filter on the peak frames' embeddings
//! (cosine distance > 0.12) → top K (5) → export.
//!
//! The video is decoded once for scoring; memory holds per-frame numbers and embeddings,
//! never the frames themselves. The K peak frames are fetched again by exact seeks for the
//! contact sheet.
//!
//! ```no_run
//! use reelsmith::highlights::{Highlights, HighlightsConfig};
//! let config = HighlightsConfig { top_k: 3, ..HighlightsConfig::default() };
//! let report = Highlights::new("match.mp4", config).run("out/".as_ref())?;
//! for clip in &report.clips {
//!     println!("{} at {:.1}s, score {:.2}", clip.filename, clip.start_time, clip.score);
//! }
//! # Ok::<(), reelsmith::highlights::HighlightsError>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_decode::{
    self as decode, ClipJob, ClipMode, ClipOptions, DecodeError, DecodeOptions, Sampling, Scale,
    X264Preset,
};
use reelsmith_embed::{Embedder, PixelEmbedder, TextEmbedder};
use reelsmith_score::{
    AestheticHead, FrameMeasures, FrameScore, ModelInputs, ScoreConfig, ScoreSet,
};
use reelsmith_segment::{diversity::diverse, peaks};
use serde::{Deserialize, Serialize};

use crate::progress::{Progress, Stage};

/// What the highlights pipeline fails with: the facade's [`Error`](crate::Error), which
/// every pipeline shares (the name stays for code written against it).
pub type HighlightsError = crate::Error;

fn default_fps() -> f64 {
    3.0
}

/// Every setting of the pipeline. Serialisable, so it can come from a TOML/JSON file and is
/// written back into `highlights.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HighlightsConfig {
    /// Frames sampled per second for scoring.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Scoring frames are scaled down to at most this height (never enlarged).
    pub height: u32,
    /// Width of the centred moving average over the score, in seconds.
    pub smooth_seconds: f64,
    /// Minimum time between two peaks, in seconds.
    pub min_separation_seconds: f64,
    /// Number of highlight clips wanted.
    pub top_k: usize,
    /// Peaks whose smoothed score is below this (0..1) are ignored.
    pub min_score: f64,
    /// Seconds of video kept before a peak.
    pub pre_roll: f64,
    /// Seconds of video kept after a peak.
    pub post_roll: f64,
    /// Shortest clip, in seconds.
    pub min_duration: f64,
    /// Longest clip, in seconds.
    pub max_duration: f64,
    /// A candidate is kept only when its cosine distance to every kept one exceeds this.
    pub diversity_threshold: f32,
    /// Text prompts for saliency (need a CLIP model).
    pub prompts: Vec<String>,
    /// Frame-accurate re-encode (default) or stream copy.
    pub clip_mode: ClipMode,
    /// x264 CRF of re-encoded clips.
    pub crf: u8,
    /// x264 preset of re-encoded clips (default superfast). At the same CRF a faster preset
    /// spends more bits, not less quality: on the seven shared test videos superfast at
    /// CRF 18 measured 0.35–2.0 dB higher PSNR than veryfast (SSIM no lower), in files
    /// 1.4–2.0× larger, encoded in 21–42 % less time (`benches/preset_quality.py`). For a
    /// few seconds of highlights the time counts more than the bytes; choose `veryfast` or
    /// slower for smaller files.
    pub preset: X264Preset,
    /// Keep the audio in the clips.
    pub audio: bool,
    /// Weights, normalisation and mappings of the score.
    pub score: ScoreConfig,
    /// Write the clips (false: only the JSON, CSVs and images).
    pub export_clips: bool,
}

impl Default for HighlightsConfig {
    fn default() -> Self {
        Self {
            fps: 3.0,
            height: 720,
            smooth_seconds: 2.5,
            min_separation_seconds: 5.0,
            top_k: 5,
            min_score: 0.0,
            pre_roll: 1.0,
            post_roll: 2.0,
            min_duration: 3.0,
            max_duration: 7.0,
            diversity_threshold: 0.12,
            prompts: Vec::new(),
            clip_mode: ClipMode::Reencode,
            crf: 18,
            preset: X264Preset::Superfast,
            audio: true,
            score: ScoreConfig::default(),
            export_clips: true,
        }
    }
}

impl HighlightsConfig {
    /// Checks every range; the error says which setting is wrong.
    pub fn validate(&self) -> Result<(), HighlightsError> {
        let bad = |m: String| Err(HighlightsError::Config(m));
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 120.0) {
            return bad(format!("fps is {}; use a value in (0, 120]", self.fps));
        }
        if self.height < 16 {
            return bad(format!("height is {}; use at least 16", self.height));
        }
        for (name, v) in [
            ("smooth_seconds", self.smooth_seconds),
            ("min_separation_seconds", self.min_separation_seconds),
            ("pre_roll", self.pre_roll),
            ("post_roll", self.post_roll),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(format!("{name} is {v}; it must be finite and not negative"));
            }
        }
        if !(self.min_duration.is_finite() && self.min_duration > 0.0) {
            return bad(format!(
                "min_duration is {}; it must be positive",
                self.min_duration
            ));
        }
        if !(self.max_duration.is_finite() && self.max_duration >= self.min_duration) {
            return bad(format!(
                "max_duration ({}) must be at least min_duration ({})",
                self.max_duration, self.min_duration
            ));
        }
        if self.top_k == 0 {
            return bad("top_k is 0; ask for at least one clip".into());
        }
        if !(self.diversity_threshold.is_finite()
            && (0.0..=2.0).contains(&self.diversity_threshold))
        {
            return bad(format!(
                "diversity_threshold is {}; a cosine distance lies in [0, 2]",
                self.diversity_threshold
            ));
        }
        if !self.min_score.is_finite() {
            return bad("min_score must be finite".into());
        }
        if self.crf > 51 {
            return bad(format!("crf is {}; x264 takes 0..=51", self.crf));
        }
        Ok(())
    }
}

/// The score components of a clip's peak frame, each 0..1 (`None` where not computed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Components {
    /// Aesthetic score mapped to 0..1.
    pub aesthetics: Option<f64>,
    /// Sharpness normalised over the video.
    pub sharpness: f64,
    /// Exposure penalty.
    pub exposure: f64,
    /// Prompt saliency.
    pub saliency: Option<f64>,
}

/// One exported highlight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HighlightClip {
    /// File name inside the output folder (`clip_001.mp4`...).
    pub filename: String,
    /// The source video.
    pub source_video: PathBuf,
    /// Start in the source, seconds (the first frame's time for re-encoded clips, the
    /// keyframe's for stream copies).
    pub start_time: f64,
    /// Length in seconds.
    pub duration: f64,
    /// Decoded-frame index of the peak frame in the source.
    pub peak_frame: u64,
    /// Time of the peak frame in the source.
    pub peak_time: f64,
    /// Smoothed score at the peak (0..1).
    pub score: f64,
    /// Components of the peak frame's score.
    pub components: Components,
}

/// One sampled frame's line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineRow {
    /// Decoded-frame index.
    pub frame: u64,
    /// Time in seconds.
    pub time: f64,
    /// All components and the composite score.
    #[serde(flatten)]
    pub score: FrameScore,
    /// The smoothed composite score.
    pub smoothed: f64,
}

/// What the pipeline produced.
#[derive(Debug, Clone, Serialize)]
pub struct HighlightsReport {
    /// The source video.
    pub source_video: PathBuf,
    /// Duration of the source in seconds.
    pub duration: f64,
    /// The highlight clips, best first.
    pub clips: Vec<HighlightClip>,
    /// Every setting used.
    pub parameters: HighlightsConfig,
    /// The embedder used for diversity (and aesthetics/saliency when it is CLIP).
    pub embedder: String,
    /// Warnings and remarks (model-free scoring, too-similar candidates...).
    pub notes: Vec<String>,
    /// Per sampled frame: components, score and smoothed score.
    #[serde(skip)]
    pub timeline: Vec<TimelineRow>,
    /// Indices into `timeline` of the peak candidates, best first.
    #[serde(skip)]
    pub candidates: Vec<usize>,
    /// Pairwise cosine distances between candidates (same order).
    #[serde(skip)]
    pub similarity: Vec<Vec<f32>>,
}

/// The optional CLIP side of the pipeline.
#[derive(Default)]
pub struct Model<'a> {
    /// Image embedder (CLIP): used for aesthetics, saliency and diversity.
    pub image: Option<&'a dyn Embedder>,
    /// Text embedder in the same space (for prompts).
    pub text: Option<&'a dyn TextEmbedder>,
    /// LAION aesthetic head on the image embeddings.
    pub head: Option<&'a AestheticHead>,
}

/// Builder and runner of the highlights pipeline.
pub struct Highlights<'a> {
    video: PathBuf,
    config: HighlightsConfig,
    model: Model<'a>,
    progress: Option<&'a dyn Progress>,
}

impl<'a> Highlights<'a> {
    /// The pipeline for `video` with `config`; no model (sharpness and exposure only)
    /// until [`Highlights::model`] adds one.
    pub fn new(video: impl Into<PathBuf>, config: HighlightsConfig) -> Self {
        Self {
            video: video.into(),
            config,
            model: Model::default(),
            progress: None,
        }
    }

    /// Uses a CLIP embedder (and optionally its text side and an aesthetic head).
    pub fn model(mut self, model: Model<'a>) -> Self {
        self.model = model;
        self
    }

    /// Reports progress to `p`.
    pub fn progress(mut self, p: &'a dyn Progress) -> Self {
        self.progress = Some(p);
        self
    }

    /// Scores the video and picks the highlights without writing anything.
    pub fn analyse(&self) -> Result<HighlightsReport, HighlightsError> {
        let cfg = &self.config;
        cfg.validate()?;
        let video = decode::open(&self.video)?;
        let info = video.info().clone();
        if info.duration > 0.0 && info.duration < cfg.min_duration {
            return Err(HighlightsError::TooShort {
                path: info.path.clone(),
                duration: info.duration,
                min: cfg.min_duration,
            });
        }
        let embed_err = |source| HighlightsError::Embed {
            path: info.path.clone(),
            source,
        };
        let pixel = PixelEmbedder::new(16, 9).map_err(embed_err)?;
        let image_embedder: &dyn Embedder = self.model.image.unwrap_or(&pixel);
        let opts = DecodeOptions::new()
            .sampling(Sampling::Fps(cfg.fps))
            .scale(Scale::MaxHeight(cfg.height));
        let expected = (info.duration * cfg.fps).ceil() as u64;
        let score_err = |source| HighlightsError::Score {
            path: info.path.clone(),
            source,
        };
        let (measures, refs, mut embeddings) = if self.model.image.is_some() {
            // The model keeps the cores busy: decode sequentially, embed in batches.
            let mut measures: Vec<FrameMeasures> = Vec::new();
            let sampled = crate::sampling::embed_sampled(
                &video,
                &opts,
                image_embedder,
                self.progress.map(|p| (p, Stage::Scoring, expected)),
                embed_err,
                |frame| {
                    measures.push(
                        FrameMeasures::from_rgb(&frame.image, &cfg.score.exposure)
                            .map_err(score_err)?,
                    );
                    Ok(())
                },
            )?;
            (measures, sampled.refs, sampled.embeddings)
        } else {
            // Model-free: measures and pixel embeddings are cheap, so frames are decoded
            // in keyframe-aligned chunks on all cores and measured where they decode.
            if let Some(p) = self.progress {
                p.start(Stage::Scoring, expected);
            }
            let dim = pixel.dim();
            let rows = video.map_frames(
                &opts,
                0,
                |frame| {
                    let m = FrameMeasures::from_rgb(&frame.image, &cfg.score.exposure)
                        .map_err(score_err)?;
                    let mut row = vec![0.0; dim];
                    pixel
                        .embed_into(&frame.image, &mut row)
                        .map_err(embed_err)?;
                    Ok::<_, HighlightsError>((m, row))
                },
                |_| {
                    if let Some(p) = self.progress {
                        p.advance(Stage::Scoring, 1);
                    }
                },
            )?;
            if let Some(p) = self.progress {
                p.finish(Stage::Scoring);
            }
            let mut measures = Vec::with_capacity(rows.len());
            let mut refs = Vec::with_capacity(rows.len());
            let mut data = Vec::with_capacity(rows.len() * dim);
            for r in rows {
                refs.push((r.index, r.time));
                measures.push(r.value.0);
                data.extend_from_slice(&r.value.1);
            }
            let emb =
                reelsmith_core::Embeddings::new(data, dim).map_err(|e| embed_err(e.into()))?;
            (measures, refs, emb)
        };
        if measures.is_empty() {
            return Err(DecodeError::ZeroLength {
                path: info.path.clone(),
            }
            .into());
        }

        // Score.
        let prompts = match (self.model.text, cfg.prompts.is_empty()) {
            (Some(t), false) => {
                let refs: Vec<&str> = cfg.prompts.iter().map(String::as_str).collect();
                Some(t.embed_texts(&refs).map_err(embed_err)?)
            }
            _ => None,
        };
        let mut notes = Vec::new();
        if !cfg.prompts.is_empty() && prompts.is_none() {
            notes.push("prompts given but no CLIP text model: saliency not computed (pass --model or --model-dir)".into());
        }
        let model_inputs = self.model.image.map(|m| ModelInputs {
            image_embeddings: &embeddings,
            model_id: Some(m.model_id()),
            head: self.model.head,
            prompts: prompts.as_ref(),
        });
        let set: ScoreSet =
            reelsmith_score::score_frames(&measures, model_inputs.as_ref(), &cfg.score).map_err(
                |source| HighlightsError::Score {
                    path: info.path.clone(),
                    source,
                },
            )?;
        notes.extend(set.notes.iter().cloned());

        // Smooth, peaks, candidates best first.
        let scores: Vec<f32> = set.rows.iter().map(|r| r.score as f32).collect();
        let to_frames = |secs: f64| ((secs * cfg.fps).round() as usize).max(1);
        let smoothed = peaks::smooth(&scores, to_frames(cfg.smooth_seconds));
        let peak_idx = peaks::find_peaks(&smoothed, to_frames(cfg.min_separation_seconds));
        let mut candidates: Vec<usize> = peak_idx
            .into_iter()
            .filter(|&i| f64::from(smoothed[i]) >= cfg.min_score)
            .collect();
        candidates.sort_by(|&a, &b| smoothed[b].total_cmp(&smoothed[a]).then(a.cmp(&b)));
        if candidates.is_empty() {
            let best = smoothed.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            return Err(HighlightsError::NoPeak {
                path: info.path.clone(),
                hint: format!(
                    "the best smoothed score is {best:.3} and min_score is {:.3}; lower --min-score or shorten --min-separation",
                    cfg.min_score
                ),
            });
        }
        // Diversity on the peak frames' embeddings. Pixel embeddings are non-negative, so
        // their cosine distances crowd near 0; centring them on the video's mean row makes
        // distances comparable to CLIP's, where the default threshold comes from.
        if self.model.image.is_none() {
            embeddings = crate::sampling::centre(&embeddings);
        }
        let cand_scores: Vec<f32> = candidates.iter().map(|&i| smoothed[i]).collect();
        let kept_pos = diverse(
            &embeddings,
            &candidates,
            &cand_scores,
            cfg.diversity_threshold,
            cfg.top_k,
        );
        let mut kept: Vec<usize> = kept_pos; // row indices of the kept candidates
        kept.sort_by(|&a, &b| smoothed[b].total_cmp(&smoothed[a]).then(a.cmp(&b)));
        if kept.len() < cfg.top_k.min(candidates.len()) {
            notes.push(format!(
                "{} of {} candidate peaks were too similar to a better one (cosine distance <= {}); lower --diversity-threshold to keep more",
                candidates.len() - kept.len(),
                candidates.len(),
                cfg.diversity_threshold
            ));
        }
        if kept.len() < cfg.top_k {
            notes.push(format!(
                "found {} highlights of the {} asked for; shorten --min-separation or lower --min-score for more",
                kept.len(),
                cfg.top_k
            ));
        }
        let similarity: Vec<Vec<f32>> = candidates
            .iter()
            .map(|&a| {
                candidates
                    .iter()
                    .map(|&b| embeddings.cosine_distance(a, b))
                    .collect()
            })
            .collect();

        let duration = if info.duration > 0.0 {
            info.duration
        } else {
            refs.last().map(|r| r.1 + 1.0 / cfg.fps).unwrap_or(0.0)
        };
        let clips = kept
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let (peak_frame, peak_time) = refs[i];
                let (start, end) = clip_window(peak_time, duration, cfg);
                let r = &set.rows[i];
                HighlightClip {
                    filename: format!("clip_{:03}.mp4", n + 1),
                    source_video: info.path.clone(),
                    start_time: start,
                    duration: end - start,
                    peak_frame,
                    peak_time,
                    score: f64::from(smoothed[i]),
                    components: Components {
                        aesthetics: r.aesthetics,
                        sharpness: r.sharpness,
                        exposure: r.exposure,
                        saliency: r.saliency,
                    },
                }
            })
            .collect();
        let timeline = set
            .rows
            .iter()
            .zip(&refs)
            .zip(&smoothed)
            .map(|((r, &(frame, time)), &s)| TimelineRow {
                frame,
                time,
                score: *r,
                smoothed: f64::from(s),
            })
            .collect();
        Ok(HighlightsReport {
            source_video: info.path.clone(),
            duration,
            clips,
            parameters: cfg.clone(),
            embedder: image_embedder.model_id().to_string(),
            notes,
            timeline,
            candidates,
            similarity,
        })
    }

    /// Runs the whole pipeline and writes everything into `out_dir` (created if needed):
    /// the clips, `highlights.json`, `timeline.csv`, `similarity.csv`, `scores.png` and
    /// `contact_sheet.jpg`.
    pub fn run(&self, out_dir: &Path) -> Result<HighlightsReport, HighlightsError> {
        let t = std::time::Instant::now();
        let mut report = self.analyse()?;
        tracing::info!("analysis took {:.2} s", t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        std::fs::create_dir_all(out_dir).map_err(|source| HighlightsError::Write {
            path: out_dir.to_path_buf(),
            source,
        })?;
        let video = decode::open(&self.video)?;
        let cfg = &self.config;
        let mut peak_frames = vec![None; report.clips.len()];
        if cfg.export_clips {
            if let Some(p) = self.progress {
                p.start(Stage::Export, report.clips.len() as u64);
            }
            let opts = ClipOptions {
                mode: cfg.clip_mode,
                crf: cfg.crf,
                preset: cfg.preset,
                audio: cfg.audio,
                threads: 0,
            };
            let jobs: Vec<ClipJob> = report
                .clips
                .iter()
                .map(|c| {
                    // The peak frame comes back from the cut for the contact sheet.
                    ClipJob::new(
                        c.start_time,
                        c.start_time + c.duration,
                        out_dir.join(&c.filename),
                    )
                    .with_stills([c.peak_time])
                })
                .collect();
            let written = decode::export_clips(&video, &jobs, &opts, |_, _| {
                if let Some(p) = self.progress {
                    p.advance(Stage::Export, 1);
                }
            })?;
            for (n, (clip, r)) in report.clips.iter_mut().zip(written).enumerate() {
                if let Some(Some(f)) = r.stills.into_iter().next() {
                    peak_frames[n] = Some(f.image);
                }
                if r.snapped_to_keyframe {
                    clip.duration += clip.start_time - r.start;
                    clip.start_time = r.start;
                }
            }
            if let Some(p) = self.progress {
                p.finish(Stage::Export);
            }
            tracing::info!("clip export took {:.2} s", t.elapsed().as_secs_f64());
        }
        let t = std::time::Instant::now();
        crate::report::write_highlights(&video, &report, peak_frames, out_dir)?;
        tracing::info!("reports took {:.2} s", t.elapsed().as_secs_f64());
        Ok(report)
    }
}

/// `[start, end)` of the clip around a peak: pre-roll before, post-roll after, stretched to
/// the minimum and cut to the maximum duration (keeping the peak inside), inside the video.
pub fn clip_window(peak: f64, duration: f64, cfg: &HighlightsConfig) -> (f64, f64) {
    let want = (cfg.pre_roll + cfg.post_roll).clamp(cfg.min_duration, cfg.max_duration);
    let want = want.min(duration);
    // Share any stretch or cut in proportion to the pre/post rolls.
    let total = cfg.pre_roll + cfg.post_roll;
    let pre = if total > 0.0 {
        want * cfg.pre_roll / total
    } else {
        want / 2.0
    };
    let mut start = peak - pre;
    let mut end = start + want;
    if start < 0.0 {
        end -= start;
        start = 0.0;
    }
    if end > duration {
        start -= end - duration;
        end = duration;
    }
    (start.max(0.0), end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stay_inside_and_respect_durations() {
        let cfg = HighlightsConfig::default();
        assert_eq!(clip_window(10.0, 60.0, &cfg), (9.0, 12.0));
        assert_eq!(clip_window(0.2, 60.0, &cfg), (0.0, 3.0));
        assert_eq!(clip_window(59.5, 60.0, &cfg), (57.0, 60.0));
        assert_eq!(clip_window(1.0, 2.0, &cfg), (0.0, 2.0));
        let long = HighlightsConfig {
            pre_roll: 5.0,
            post_roll: 10.0,
            ..HighlightsConfig::default()
        };
        let (s, e) = clip_window(30.0, 60.0, &long);
        assert!((e - s - 7.0).abs() < 1e-9 && s < 30.0 && e > 30.0);
    }

    #[test]
    fn config_validation_names_the_setting() {
        let mut c = HighlightsConfig::default();
        assert!(c.validate().is_ok());
        c.max_duration = 1.0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("max_duration"), "{e}");
        let c = HighlightsConfig {
            fps: 0.0,
            ..HighlightsConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("fps"));
        let c = HighlightsConfig {
            top_k: 0,
            ..HighlightsConfig::default()
        };
        assert!(c.validate().is_err());
        let t: HighlightsConfig = serde_json::from_str(r#"{"top_k": 2, "fps": 2.0}"#).unwrap();
        assert_eq!((t.top_k, t.fps, t.crf), (2, 2.0, 18));
        assert!(serde_json::from_str::<HighlightsConfig>(r#"{"topk": 2}"#).is_err());
    }
}
