//! The highlights pipeline's settings and results.

use std::path::PathBuf;

use reelsmith_decode::{ClipMode, X264Preset};
use reelsmith_score::{FrameScore, ScoreConfig};
use serde::{Deserialize, Serialize};

use crate::error::num;
use crate::models::ModelChoice;
use crate::Error;

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
    /// The embedding model for aesthetics, prompts and diversity (default
    /// [`ModelChoice::Auto`]: [`DEFAULT_MODEL`] when it is in the local Hugging Face cache,
    /// else the weight-free pixel embedder and a score of sharpness and exposure).
    pub model: ModelChoice,
    /// LAION aesthetic predictor head (`.pth` or `.safetensors`) for the model's image
    /// embeddings; needs a CLIP model. When not set, [`HighlightsConfig::aesthetic_auto`]
    /// looks for the head that matches the model.
    #[serde(serialize_with = "reelsmith_core::paths::lossy_option")]
    pub aesthetic_head: Option<PathBuf>,
    /// With a CLIP model and no `aesthetic_head`, find and load the matching LAION head
    /// (default true): next to the model, in `$REELSMITH_AESTHETIC_DIR`, in
    /// `$REELSMITH_SHARED/models/aesthetic`, or in `~/.cache/reelsmith/aesthetic` (see
    /// [`head`](super::head)). When none is found the score goes without aesthetics and a
    /// note says where to put the file.
    pub aesthetic_auto: bool,
}

/// The model [`ModelChoice::Auto`] stands for in this pipeline.
pub const DEFAULT_MODEL: &str = "openai/clip-vit-base-patch32";

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
            model: ModelChoice::Auto,
            aesthetic_head: None,
            aesthetic_auto: true,
        }
    }
}

impl HighlightsConfig {
    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |setting, m: String| Err(Error::config(setting, m));
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 120.0) {
            return bad("fps", format!("{} is not in (0, 120]", num(self.fps)));
        }
        if self.height < 16 {
            return bad("height", format!("{} is below 16", self.height));
        }
        for (name, v) in [
            ("smooth_seconds", self.smooth_seconds),
            ("min_separation_seconds", self.min_separation_seconds),
            ("pre_roll", self.pre_roll),
            ("post_roll", self.post_roll),
        ] {
            if !(v.is_finite() && (0.0..=86_400.0).contains(&v)) {
                return bad(name, format!("{} s is not in [0, 86400]", num(v)));
            }
        }
        if !(self.min_duration.is_finite()
            && self.min_duration > 0.0
            && self.min_duration <= 86_400.0)
        {
            return bad(
                "min_duration",
                format!("{} s is not in (0, 86400]", num(self.min_duration)),
            );
        }
        if !(self.max_duration.is_finite() && self.max_duration >= self.min_duration) {
            return bad(
                "max_duration",
                format!(
                    "{} s is below the shortest clip (min_duration, {} s)",
                    num(self.max_duration),
                    num(self.min_duration)
                ),
            );
        }
        if self.top_k == 0 {
            return bad("top_k", "0 clips asked for; ask for at least one".into());
        }
        if !(self.diversity_threshold.is_finite()
            && (0.0..=2.0).contains(&self.diversity_threshold))
        {
            return bad(
                "diversity_threshold",
                format!(
                    "{} is not a cosine distance (in [0, 2])",
                    num(self.diversity_threshold)
                ),
            );
        }
        if !self.min_score.is_finite() {
            return bad("min_score", format!("{} is not finite", self.min_score));
        }
        if self.crf > 51 {
            return bad("crf", format!("{}: x264 takes 0..=51", self.crf));
        }
        crate::pipelines::score::validate_score(&self.score)
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
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
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
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub source_video: PathBuf,
    /// Duration of the source in seconds.
    pub duration: f64,
    /// The highlight clips, best first.
    pub clips: Vec<HighlightClip>,
    /// Every setting used.
    pub parameters: HighlightsConfig,
    /// The embedder used for diversity (and aesthetics/saliency when it is CLIP).
    pub embedder: String,
    /// True when no model part of the score (aesthetics, saliency) was computed.
    pub model_free: bool,
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
        let e = c.validate().unwrap_err();
        assert_eq!(e.setting(), Some("max_duration"), "{e}");
        let c = HighlightsConfig {
            fps: 0.0,
            ..HighlightsConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().setting(), Some("fps"));
        let c = HighlightsConfig {
            top_k: 0,
            ..HighlightsConfig::default()
        };
        assert!(c.validate().is_err());
        let t: HighlightsConfig = serde_json::from_str(r#"{"top_k": 2, "fps": 2.0}"#).unwrap();
        assert_eq!((t.top_k, t.fps, t.crf), (2, 2.0, 18));
        assert_eq!(t.model, ModelChoice::Auto);
        let c = HighlightsConfig {
            pre_roll: 1e308,
            ..HighlightsConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert_eq!(e.setting(), Some("pre_roll"));
        assert!(e.to_string().contains("1e308 s"), "{e}");
        assert!(serde_json::from_str::<HighlightsConfig>(r#"{"topk": 2}"#).is_err());
        // The score section is checked too, before any work is done.
        let mut c = HighlightsConfig::default();
        c.score.weights.sharpness = f64::NAN;
        let e = c.validate().unwrap_err();
        assert_eq!(e.setting(), Some("score"), "{e}");
        assert!(e.to_string().contains("sharpness weight"), "{e}");
    }
}
