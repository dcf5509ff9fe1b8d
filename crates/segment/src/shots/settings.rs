//! [`ShotSettings`]: the detector's settings with durations in seconds, as configuration
//! files give them; [`ShotSettings::at_fps`] turns them into [`ShotOptions`].

use serde::{Deserialize, Serialize};

use super::ShotOptions;
use crate::distance::Metric;

/// Settings of the built-in shot detector with durations in seconds, independent of the
/// frame rate (what a configuration file holds; fields left out take their defaults).
/// [`ShotSettings::at_fps`] converts them into the frame counts of [`ShotOptions`].
///
/// ```
/// use reelsmith_segment::shots::{ShotOptions, ShotSettings};
/// let s = ShotSettings { confirm_ratio: 0.4, ..ShotSettings::default() };
/// let o = s.at_fps(50.0);
/// assert_eq!(o.min_shot_len, 13); // 0.25 s at 50 fps, rounded
/// assert_eq!(o.confirm_ratio, 0.4);
/// assert_eq!(ShotSettings::default().at_fps(24.0), ShotOptions::for_fps(24.0));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShotSettings {
    /// Row comparison (default [`Metric::L1`]).
    pub metric: Metric,
    /// Minimum shot length in seconds (default 0.25).
    pub min_shot_seconds: f64,
    /// Neighbours (frames) on each side for the adaptive baseline (default 3).
    pub cut_window: usize,
    /// Strength over baseline needed for a cut (default 3.5: the middle of the plateau of
    /// cut F1 over 2.5–4 on the tuning half of the robustness corpus and 3–4 on the shared
    /// clips, see docs/shots.md; PySceneDetect's adaptive rule uses 3).
    pub cut_ratio: f32,
    /// Absolute minimum cut strength (default 0.02), at ordinary exposure: a dark video's
    /// pixel rows are first scaled up to it (see docs/shots.md, eighth round).
    pub cut_min: f32,
    /// Added to the baseline (default 0.004).
    pub ratio_floor: f32,
    /// Flash window in seconds (default 0.2; at least 3 frames).
    pub flash_seconds: f64,
    /// Whether gradual transitions are detected (default true).
    pub gradual: bool,
    /// Shortest gradual window in seconds (default 0.2; at least 4 frames).
    pub gradual_min_seconds: f64,
    /// Longest gradual window in seconds (default 2.5).
    pub gradual_max_seconds: f64,
    /// Minimum change across a gradual window (default 0.05); a fade (a window starting
    /// or ending on a black or white frame) needs 0.4 of it.
    pub gradual_min: f32,
    /// Largest single-frame share of the change in a gradual window (default 0.5).
    pub gradual_spread: f32,
    /// Required ratio of the window change to the context change (default 2).
    pub gradual_contrast: f32,
    /// Largest mean relative blend residual (default 0.3).
    pub gradual_linearity: f32,
    /// Minimum gradual score (default 0.045); a fade needs 0.4 of it.
    pub gradual_min_score: f32,
    /// How far the confirmation looks past a disturbance, in seconds (default 0.5; at
    /// least 12 frames).
    pub confirm_seconds: f64,
    /// Share of a candidate's strength that must remain past the disturbance (default
    /// 0.5; 0 turns the confirmation off).
    pub confirm_ratio: f32,
    /// Largest difference of brightness-normalised luma patterns for a change to count
    /// as lighting (default 0.25; 0 turns the lighting tests off).
    pub relight_max: f32,
    /// Cosine similarity of model embeddings at or above which the frames before and
    /// after a disturbance show the same scene (default 0.9; used only with a model).
    pub semantic_same: f32,
    /// Largest normalised residual of the global motion between a cut candidate's two
    /// frames for the change to count as camera motion (default 0.7: the middle of the
    /// plateau 0.6–0.8 of cut F1 on the tuning corpora, see docs/shots.md; 0 turns the
    /// test off). See [`ShotOptions::motion_max`].
    pub motion_max: f32,
    /// Least share of the picture a gradual transition must change (default 0.65: the
    /// middle of the plateau of F1 on the tuning corpora, see docs/shots.md; 0 turns the
    /// test off). See [`ShotOptions::gradual_extent`].
    pub gradual_extent: f32,
}

impl Default for ShotSettings {
    fn default() -> Self {
        Self {
            metric: Metric::L1,
            min_shot_seconds: 0.25,
            cut_window: 3,
            cut_ratio: 3.5,
            cut_min: 0.02,
            ratio_floor: 0.004,
            flash_seconds: 0.2,
            gradual: true,
            gradual_min_seconds: 0.2,
            gradual_max_seconds: 2.5,
            gradual_min: 0.05,
            gradual_spread: 0.5,
            gradual_contrast: 2.0,
            gradual_linearity: 0.3,
            gradual_min_score: 0.045,
            confirm_seconds: 0.5,
            confirm_ratio: 0.5,
            relight_max: 0.25,
            semantic_same: 0.9,
            motion_max: 0.7,
            gradual_extent: 0.65,
        }
    }
}

impl ShotSettings {
    /// The detector options at `fps` frames per second (25 when not positive and finite).
    pub fn at_fps(&self, fps: f64) -> ShotOptions {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            25.0
        };
        let frames = |s: f64| {
            let f = (s * fps).round();
            if f.is_finite() {
                f.clamp(1.0, 1e6) as usize
            } else {
                1
            }
        };
        ShotOptions {
            metric: self.metric,
            min_shot_len: frames(self.min_shot_seconds),
            cut_window: self.cut_window,
            cut_ratio: self.cut_ratio,
            cut_min: self.cut_min,
            ratio_floor: self.ratio_floor,
            flash_window: frames(self.flash_seconds).max(3),
            gradual: self.gradual,
            gradual_min_stride: frames(self.gradual_min_seconds).max(4),
            gradual_max_stride: frames(self.gradual_max_seconds).max(4),
            gradual_min: self.gradual_min,
            gradual_spread: self.gradual_spread,
            gradual_contrast: self.gradual_contrast,
            gradual_linearity: self.gradual_linearity,
            gradual_min_score: self.gradual_min_score,
            confirm_window: frames(self.confirm_seconds).max(12),
            confirm_ratio: self.confirm_ratio,
            relight_max: self.relight_max,
            semantic_same: self.semantic_same,
            motion_max: self.motion_max,
            gradual_extent: self.gradual_extent,
        }
    }

    /// Checks the values: the error names the setting at fault and its valid range.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let secs = [
            ("min_shot_seconds", self.min_shot_seconds),
            ("flash_seconds", self.flash_seconds),
            ("gradual_min_seconds", self.gradual_min_seconds),
            ("gradual_max_seconds", self.gradual_max_seconds),
            ("confirm_seconds", self.confirm_seconds),
        ];
        for (name, v) in secs {
            if !(v.is_finite() && (0.0..=60.0).contains(&v)) {
                return Err((name, format!("{v} seconds: use 0 to 60")));
            }
        }
        if self.gradual_max_seconds < self.gradual_min_seconds {
            return Err((
                "gradual_max_seconds",
                format!(
                    "{} is below gradual_min_seconds ({}): make it at least as long",
                    self.gradual_max_seconds, self.gradual_min_seconds
                ),
            ));
        }
        if !(1..=1000).contains(&self.cut_window) {
            return Err((
                "cut_window",
                format!("{} frames: use 1 to 1000", self.cut_window),
            ));
        }
        let nonneg = [
            ("cut_ratio", self.cut_ratio),
            ("cut_min", self.cut_min),
            ("ratio_floor", self.ratio_floor),
            ("gradual_min", self.gradual_min),
            ("gradual_spread", self.gradual_spread),
            ("gradual_contrast", self.gradual_contrast),
            ("gradual_linearity", self.gradual_linearity),
            ("gradual_min_score", self.gradual_min_score),
            ("confirm_ratio", self.confirm_ratio),
            ("relight_max", self.relight_max),
            ("motion_max", self.motion_max),
        ];
        for (name, v) in nonneg {
            if !(v.is_finite() && v >= 0.0) {
                return Err((name, format!("{v}: use a finite value of 0 or more")));
            }
        }
        if !(self.gradual_extent.is_finite() && (0.0..=1.0).contains(&self.gradual_extent)) {
            return Err((
                "gradual_extent",
                format!(
                    "{}: a share of the picture, use 0 to 1",
                    self.gradual_extent
                ),
            ));
        }
        if !(self.semantic_same.is_finite() && (-1.0..=1.0).contains(&self.semantic_same)) {
            return Err((
                "semantic_same",
                format!("{}: a cosine similarity, use -1 to 1", self.semantic_same),
            ));
        }
        Ok(())
    }
}
