//! Keyframe extraction: pick frames by one of two methods on analysis-size frames, then
//! decode the video once more at the output size and write the picked frames as images
//! and `keyframes.json`.
//!
//! - [`KeyframeMethod::Quantile`]: the ComfyUI `ExtractKeyframes` rule — a frame is a
//!   keyframe when its sum of absolute pixel differences to the previous frame exceeds the
//!   `q`-quantile of all such sums (see [`reelsmith_segment::keyframes`]). As in the node,
//!   differences are taken on full-resolution frames by default; `analysis_height` scales
//!   the frames down first for speed (at 64 × 36 a different 10–40 % of the frames is
//!   picked, so the default stays the node's rule). `scripts/keyframes_reference.py`
//!   computes the same rule in NumPy from FFmpeg's frames as an independent reference.
//! - [`KeyframeMethod::Seams`]: successor-distance segmentation of pixel-embedder rows
//!   (Euclidean distances, min-max normalised, rolling mean + 2·std threshold over about a
//!   second, segments at least 0.25 s long; see [`reelsmith_segment::seams`]); each segment
//!   contributes the frame closest to its mean row, its most typical picture.
//!
//! ```no_run
//! use reelsmith::pipelines::keyframes::{self, KeyframeMethod, KeyframesConfig, KeyframesInput};
//! use reelsmith::progress::NoProgress;
//!
//! let config = KeyframesConfig { method: KeyframeMethod::Seams, ..Default::default() };
//! let report = keyframes::run(&KeyframesInput::new("movie.mp4", "keyframes/"), &config, &NoProgress)?;
//! for k in &report.keyframes {
//!     println!("frame {} at {:.3}s -> {}", k.frame, k.time, k.path);
//! }
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_decode::{DecodeOptions, ImageFormat, Sampling, Scale};
use reelsmith_segment::seams::{seams, SeamOptions, Threshold};
use reelsmith_segment::{min_max_normalize, successor_distances, Metric};
use serde::{Deserialize, Serialize};

use crate::analysis::AnalysisOptions;
use crate::error::num;
use crate::output::OutputDir;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// How keyframes are picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyframeMethod {
    /// Frames whose change from the previous frame exceeds the `q`-quantile of all changes
    /// (ComfyUI's `ExtractKeyframes`).
    #[default]
    Quantile,
    /// One representative frame per segment of a seam segmentation.
    Seams,
}

impl KeyframeMethod {
    /// The method's name as written in `keyframes.json`.
    pub fn name(self) -> &'static str {
        match self {
            KeyframeMethod::Quantile => "quantile",
            KeyframeMethod::Seams => "seams",
        }
    }
}

/// Settings of the keyframes pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyframesConfig {
    /// The method (default [`KeyframeMethod::Quantile`]).
    pub method: KeyframeMethod,
    /// Quantile for [`KeyframeMethod::Quantile`] (default
    /// [`reelsmith_segment::keyframes::DEFAULT_QUANTILE`], 0.85).
    pub quantile: f64,
    /// Seam settings for [`KeyframeMethod::Seams`]; `None` (default) means a rolling
    /// mean + 2·std threshold over about one second and segments of at least 0.25 s.
    pub seams: Option<SeamOptions>,
    /// How frames are decoded for analysis ([`KeyframeMethod::Seams`]).
    pub analysis: AnalysisOptions,
    /// For [`KeyframeMethod::Quantile`]: frame differences on frames scaled to this height
    /// (keeping the aspect) instead of full resolution (default `None`: full resolution, as
    /// ComfyUI's node). Faster, but picks different frames at small sizes.
    pub analysis_height: Option<u32>,
    /// Height of the written images, keeping the aspect (default: the video's size).
    pub height: Option<u32>,
    /// Write PNG instead of JPEG.
    pub png: bool,
    /// JPEG quality, 1..=100 (default 90).
    pub quality: u8,
}

impl Default for KeyframesConfig {
    fn default() -> Self {
        Self {
            method: KeyframeMethod::Quantile,
            quantile: reelsmith_segment::keyframes::DEFAULT_QUANTILE,
            seams: None,
            analysis: AnalysisOptions::default(),
            analysis_height: None,
            height: None,
            png: false,
            quality: 90,
        }
    }
}

impl KeyframesConfig {
    /// Checks every range; the error names the setting at fault.
    pub fn validate(&self) -> Result<(), Error> {
        if !(0.0..=1.0).contains(&self.quantile) {
            return Err(Error::config(
                "quantile",
                format!("{} is not in [0, 1]", num(self.quantile)),
            ));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(Error::config(
                "quality",
                format!("{} is not in 1..=100", self.quality),
            ));
        }
        if let Some(h) = self.height {
            if !(2..=16384).contains(&h) {
                return Err(Error::config("height", format!("{h} is not in 2..=16384")));
            }
        }
        if let Some(h) = self.analysis_height {
            if !(2..=16384).contains(&h) {
                return Err(Error::config(
                    "analysis_height",
                    format!("{h} is not in 2..=16384"),
                ));
            }
        }
        self.analysis.validate()
    }

    fn format(&self) -> ImageFormat {
        if self.png {
            ImageFormat::Png
        } else {
            ImageFormat::Jpeg(self.quality)
        }
    }
}

/// The video and the output folder of a keyframes run.
#[derive(Debug, Clone, Copy)]
pub struct KeyframesInput<'a> {
    /// The video file.
    pub video: &'a Path,
    /// The output folder (created when missing).
    pub output: &'a Path,
    /// Replace a folder that holds files this pipeline did not write (default false: such a
    /// folder is refused). A folder of an earlier run of the same pipeline is always
    /// reused, its stale files removed.
    pub overwrite: bool,
}

impl<'a> KeyframesInput<'a> {
    /// The input for `video`, writing into `output`.
    pub fn new(
        video: &'a (impl AsRef<Path> + ?Sized),
        output: &'a (impl AsRef<Path> + ?Sized),
    ) -> Self {
        Self {
            video: video.as_ref(),
            output: output.as_ref(),
            overwrite: false,
        }
    }

    /// Sets [`KeyframesInput::overwrite`].
    pub fn overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }
}

/// A written keyframe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyframeImage {
    /// 0-based decoded frame index.
    pub frame: usize,
    /// Presentation time in seconds.
    pub time: f64,
    /// The image's file name in the output folder.
    pub path: String,
}

/// What a keyframes run wrote (also `keyframes.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyframesReport {
    /// The video.
    #[serde(serialize_with = "reelsmith_core::paths::lossy")]
    pub video: PathBuf,
    /// The method's name.
    pub method: &'static str,
    /// The keyframes in frame order.
    pub keyframes: Vec<KeyframeImage>,
}

/// Picks the keyframes of the video and writes them into the output folder as
/// `keyframe_NNNNNN.jpg` (or `.png`, `NNNNNN` the 0-based frame index) with
/// `keyframes.json`.
pub fn run(
    input: &KeyframesInput<'_>,
    config: &KeyframesConfig,
    progress: &dyn Progress,
) -> Result<KeyframesReport, Error> {
    config.validate()?;
    // The output folder is checked before the analysis, so a refused folder fails at once.
    let out =
        OutputDir::begin(input.output, "keyframes", input.overwrite)?.inputs(&[input.video])?;
    let picked = pick(input.video, config, progress)?;
    let keyframes = write_images(input.video, &out, config, &picked, progress)?;
    let report = KeyframesReport {
        video: input.video.to_path_buf(),
        method: config.method.name(),
        keyframes,
    };
    out.commit("keyframes.json", &report)?;
    Ok(report)
}

/// The picked frame indices, ascending.
fn pick(
    path: &Path,
    config: &KeyframesConfig,
    progress: &dyn Progress,
) -> Result<Vec<usize>, Error> {
    Ok(match config.method {
        KeyframeMethod::Quantile => {
            let variation = variations(path, config, progress)?;
            reelsmith_segment::keyframes::quantile_keyframes(&variation, config.quantile).0
        }
        KeyframeMethod::Seams => {
            let a = config.analysis.run(path, false, progress)?;
            let fps = if a.info.fps > 0.0 { a.info.fps } else { 25.0 };
            let seam_opts = config.seams.unwrap_or(SeamOptions {
                threshold: Threshold::Dynamic {
                    window: (fps.round() as usize).max(3),
                    k: 2.0,
                },
                min_len: ((0.25 * fps).round() as usize).max(1),
                max_len: None,
            });
            let mut d = successor_distances(&a.emb, Metric::Euclidean);
            min_max_normalize(&mut d);
            let starts = seams(&d, &seam_opts);
            representatives(&a.emb, &starts)
        }
    })
}

/// `variation[i]`: the sum of absolute RGB byte differences between frames `i − 1` and `i`
/// (0 for frame 0), at full resolution or at [`KeyframesConfig::analysis_height`]. One
/// sequential pass (each difference needs the frame before).
pub fn variations(
    path: &Path,
    config: &KeyframesConfig,
    progress: &dyn Progress,
) -> Result<Vec<f32>, Error> {
    let video = reelsmith_decode::open(path)?;
    let opts = DecodeOptions::new()
        .sampling(Sampling::All)
        .scale(
            config
                .analysis_height
                .map_or(Scale::Original, Scale::Height),
        )
        .threads(config.analysis.threads);
    let stage = StageGuard::start(progress, Stage::Analyse, video.info().declared_frames);
    let mut out = Vec::new();
    let mut prev: Option<image::RgbImage> = None;
    for frame in video.frames(&opts)? {
        let frame = frame?;
        let v = prev.as_ref().map_or(0, |p| {
            reelsmith_segment::keyframes::abs_diff_sum(p.as_raw(), frame.image.as_raw())
        });
        out.push(v as f32);
        prev = Some(frame.image);
        stage.advance(1);
    }
    Ok(out)
}

/// Decodes the video once more at the output size and writes the picked frames.
fn write_images(
    video: &Path,
    out: &OutputDir,
    config: &KeyframesConfig,
    picked: &[usize],
    progress: &dyn Progress,
) -> Result<Vec<KeyframeImage>, Error> {
    let mut written = Vec::with_capacity(picked.len());
    let Some(&last) = picked.last() else {
        return Ok(written);
    };
    let format = config.format();
    let ext = if config.png { "png" } else { "jpg" };
    let video = reelsmith_decode::open(video)?;
    let dec = DecodeOptions::new()
        .sampling(Sampling::All)
        .scale(config.height.map_or(Scale::Original, Scale::Height))
        .threads(config.analysis.threads);
    let stage = StageGuard::start(progress, Stage::Write, Some(last as u64 + 1));
    let mut next = picked.iter().copied().peekable();
    for (i, frame) in video.frames(&dec)?.enumerate() {
        let frame = frame?;
        if next.peek() == Some(&i) {
            next.next();
            let name = format!("keyframe_{i:06}.{ext}");
            reelsmith_decode::save_image(&frame.image, &out.path(&name)?, Some(format))?;
            written.push(KeyframeImage {
                frame: i,
                time: frame.time,
                path: name,
            });
        }
        stage.advance(1);
        if i >= last {
            break;
        }
    }
    Ok(written)
}

/// For each segment (starting at 0 and at each of `starts`), the frame whose row is closest
/// (Euclidean) to the segment's mean row.
fn representatives(emb: &reelsmith_core::Embeddings, starts: &[usize]) -> Vec<usize> {
    let n = emb.len();
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(starts.iter().copied().filter(|&s| s > 0 && s < n))
        .chain(std::iter::once(n))
        .collect();
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        let Some(mean) = emb.mean(Some(a..b)) else {
            continue;
        };
        let d2 = |i: usize| -> f32 {
            emb.row(i)
                .iter()
                .zip(&mean)
                .map(|(x, m)| (x - m) * (x - m))
                .sum()
        };
        if let Some(best) = (a..b).min_by(|&i, &j| d2(i).total_cmp(&d2(j))) {
            out.push(best);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representatives_pick_the_typical_frame_per_segment() {
        let rows: Vec<[f32; 1]> = [0.0, 1.0, 0.9, 1.1, 5.0, 9.0, 8.0, 8.2]
            .iter()
            .map(|&v| [v])
            .collect();
        let e = reelsmith_core::Embeddings::from_rows(&rows).unwrap();
        // Segments [0, 4) (mean 0.75 → frame 2 at 0.9) and [4, 8) (mean 7.55 → frame 6).
        assert_eq!(representatives(&e, &[4]), vec![2, 6]);
        // Out-of-range starts are ignored; no start gives one segment.
        assert_eq!(representatives(&e, &[0, 99]), representatives(&e, &[]));
        assert_eq!(representatives(&e, &[]).len(), 1);
    }
}
