//! Keyframe extraction: pick frames by one of two methods on analysis-size frames, then
//! decode the video once more at the output size and write the picked frames as images.
//!
//! - [`KeyframeMethod::Quantile`]: the ComfyUI `ExtractKeyframes` rule — a frame is a
//!   keyframe when its sum of absolute pixel differences to the previous frame exceeds the
//!   `q`-quantile of all such sums (see [`reelsmith_segment::keyframes`]). Differences are
//!   taken on the analysis frames (64 × 36 by default), not full-size ones.
//! - [`KeyframeMethod::Seams`]: successor-distance segmentation of pixel-embedder rows
//!   (Euclidean distances, min-max normalised, rolling mean + 2·std threshold over about a
//!   second, segments at least 0.25 s long; see [`reelsmith_segment::seams`]); each segment
//!   contributes the frame closest to its mean row, its most typical picture.
//!
//! ```no_run
//! use reelsmith::keyframes::{extract_keyframes, KeyframeMethod, KeyframeOptions};
//!
//! let opts = KeyframeOptions { method: KeyframeMethod::Seams, ..Default::default() };
//! for k in extract_keyframes("movie.mp4", "keyframes/", &opts)? {
//!     println!("frame {} at {:.3}s -> {}", k.frame, k.time, k.path.display());
//! }
//! # Ok::<(), reelsmith::Error>(())
//! ```

use std::path::{Path, PathBuf};

use reelsmith_decode::{DecodeOptions, ImageFormat, Sampling, Scale};
use reelsmith_segment::seams::{seams, SeamOptions, Threshold};
use reelsmith_segment::{min_max_normalize, successor_distances, Metric};

use crate::analysis::{AnalysisOptions, Progress};
use crate::Error;

/// How keyframes are picked.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum KeyframeMethod {
    /// Frames whose change from the previous frame exceeds the `q`-quantile of all changes
    /// (ComfyUI's `ExtractKeyframes`).
    #[default]
    Quantile,
    /// One representative frame per segment of a seam segmentation.
    Seams,
}

/// Options of [`extract_keyframes`].
#[derive(Debug, Clone, PartialEq)]
pub struct KeyframeOptions {
    /// The method (default [`KeyframeMethod::Quantile`]).
    pub method: KeyframeMethod,
    /// Quantile for [`KeyframeMethod::Quantile`] (default
    /// [`reelsmith_segment::keyframes::DEFAULT_QUANTILE`], 0.85).
    pub quantile: f64,
    /// Seam settings for [`KeyframeMethod::Seams`]; `None` (default) means a rolling
    /// mean + 2·std threshold over about one second and segments of at least 0.25 s.
    pub seams: Option<SeamOptions>,
    /// How frames are decoded for analysis.
    pub analysis: AnalysisOptions,
    /// Size of the written images (default: the video's display size).
    pub scale: Scale,
    /// Image format (default JPEG quality 90).
    pub format: ImageFormat,
}

impl Default for KeyframeOptions {
    fn default() -> Self {
        Self {
            method: KeyframeMethod::Quantile,
            quantile: reelsmith_segment::keyframes::DEFAULT_QUANTILE,
            seams: None,
            analysis: AnalysisOptions::default(),
            scale: Scale::Original,
            format: ImageFormat::Jpeg(90),
        }
    }
}

/// A written keyframe.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyframe {
    /// 0-based decoded frame index.
    pub frame: usize,
    /// Presentation time in seconds.
    pub time: f64,
    /// Where the image was written.
    pub path: PathBuf,
}

/// Picks the keyframes of the video at `path` and writes them into `out_dir` (created when
/// missing) as `keyframe_NNNNNN.jpg` (or `.png`), `NNNNNN` the 0-based frame index.
/// Returns them in frame order.
pub fn extract_keyframes(
    path: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    opts: &KeyframeOptions,
) -> Result<Vec<Keyframe>, Error> {
    extract_keyframes_with_progress(path, out_dir, opts, |_| {})
}

/// [`extract_keyframes`] calling `progress` every few frames of both passes.
pub fn extract_keyframes_with_progress(
    path: impl AsRef<Path>,
    out_dir: impl AsRef<Path>,
    opts: &KeyframeOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Vec<Keyframe>, Error> {
    let path = path.as_ref();
    let out_dir = out_dir.as_ref();
    if !(0.0..=1.0).contains(&opts.quantile) {
        return Err(Error::InvalidArgument {
            path: path.to_path_buf(),
            detail: format!("keyframe quantile {}: use a value in [0, 1]", opts.quantile),
        });
    }
    let quantile = opts.method == KeyframeMethod::Quantile;
    let a = opts.analysis.run(path, quantile, &mut progress)?;
    let picked = match opts.method {
        KeyframeMethod::Quantile => {
            reelsmith_segment::keyframes::quantile_keyframes(&a.variation, opts.quantile).0
        }
        KeyframeMethod::Seams => {
            let fps = if a.info.fps > 0.0 { a.info.fps } else { 25.0 };
            let seam_opts = opts.seams.unwrap_or(SeamOptions {
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
    };
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let ext = match opts.format {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg(_) => "jpg",
    };
    let mut out = Vec::with_capacity(picked.len());
    let Some(&last) = picked.last() else {
        return Ok(out);
    };
    let video = reelsmith_decode::open(path)?;
    let dec = DecodeOptions::new()
        .sampling(Sampling::All)
        .scale(opts.scale)
        .threads(opts.analysis.threads);
    let total = Some(last as u64 + 1);
    let mut next = picked.iter().copied().peekable();
    for (i, frame) in video.frames(&dec)?.enumerate() {
        let frame = frame?;
        if next.peek() == Some(&i) {
            next.next();
            let file = out_dir.join(format!("keyframe_{i:06}.{ext}"));
            reelsmith_decode::save_image(&frame.image, &file, Some(opts.format))?;
            out.push(Keyframe {
                frame: i,
                time: frame.time,
                path: file,
            });
        }
        if i % 16 == 0 || i == last {
            progress(Progress {
                stage: "write",
                done: i as u64 + 1,
                total,
            });
        }
        if i >= last {
            break;
        }
    }
    Ok(out)
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
