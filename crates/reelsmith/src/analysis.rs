//! Analysis decoding shared by the pipelines: every frame, decoded small and fast, turned
//! into pixel-embedder rows on the fly.

use std::path::Path;

use reelsmith_core::Embeddings;
use reelsmith_decode::{DecodeOptions, Resampler, Sampling, Scale, VideoInfo};
use reelsmith_embed::{Embedder, PixelEmbedder};
use reelsmith_segment::motion::LumaFrames;

use serde::{Deserialize, Serialize};

use crate::embed_loop::embed_error;
use crate::progress::{Progress, Stage, StageGuard};
use crate::Error;

/// How the pipelines decode a video for analysis: every frame, at a small size.
///
/// The defaults (64 × 36, area averaging, deblocking skipped, one thread per core) keep
/// everything shot detection needs (the pixel embedder averages onto a 16 × 9 grid) at a
/// fraction of the cost of full-size decoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisOptions {
    /// Width of the analysis frames for landscape video (default 64); portrait video
    /// (as displayed: rotation and sample aspect ratio applied) swaps width and height.
    pub width: u32,
    /// Height of the analysis frames for landscape video (default 36).
    pub height: u32,
    /// Resampling filter (default [`Resampler::Area`], the right one for large reductions;
    /// set in code only, not from a configuration file).
    #[serde(skip)]
    pub resampler: Resampler,
    /// Decoding threads; 0 picks one per CPU core (default). Without frame differences
    /// the video is decoded in keyframe-aligned chunks, this many at once
    /// (see [`Video::map_frames`](reelsmith_decode::Video::map_frames)).
    pub threads: usize,
    /// Skip the codec's deblocking filter (default true): about a third faster; the
    /// blocking it leaves averages out at analysis size. See
    /// [`DecodeOptions::skip_loop_filter`](reelsmith_decode::DecodeOptions#structfield.skip_loop_filter).
    pub skip_loop_filter: bool,
}

impl Default for AnalysisOptions {
    fn default() -> Self {
        Self {
            width: 64,
            height: 36,
            resampler: Resampler::Area,
            threads: 0,
            skip_loop_filter: true,
        }
    }
}

/// What one analysis pass yields.
pub(crate) struct Analysis {
    pub info: VideoInfo,
    pub emb: Embeddings,
    /// Presentation time of every frame, in seconds.
    pub times: Vec<f64>,
    /// Every frame's luma, reduced to at most [`LUMA_SIDE`] pixels on its longer side
    /// (the analysis size itself by default), for the shot detector's motion test.
    pub luma: LumaFrames,
}

/// Longest side of the luma frames kept for motion estimation (64 × 36 at the default
/// analysis size: 2,304 bytes a frame).
pub(crate) const LUMA_SIDE: u32 = 64;

/// The integer reduction factor that brings `w × h` to at most [`LUMA_SIDE`] on its
/// longer side.
fn luma_factor(w: u32, h: u32) -> u32 {
    w.max(h).div_ceil(LUMA_SIDE).max(1)
}

/// BT.601 luma of `img`, area-averaged by `f × f` blocks (the partial last row and
/// column of blocks dropped), appended to `out`.
fn push_luma(img: &image::RgbImage, f: u32, out: &mut Vec<u8>) {
    let (w, h) = (img.width(), img.height());
    let (lw, lh) = ((w / f).max(1), (h / f).max(1));
    let raw = img.as_raw();
    let luma = |p: &[u8]| 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
    if f == 1 {
        // The analysis size itself (the default): one pixel a sample, and a division by a
        // constant rather than by the block's pixel count.
        out.extend(
            raw.chunks_exact(3)
                .map(|p| ((luma(p) + 500) / 1000).min(255) as u8),
        );
        return;
    }
    for by in 0..lh {
        for bx in 0..lw {
            let mut acc = 0u32;
            let mut count = 0u32;
            for y in (by * f)..((by + 1) * f).min(h) {
                for x in (bx * f)..((bx + 1) * f).min(w) {
                    let p = ((y * w + x) * 3) as usize;
                    acc += luma(&raw[p..p + 3]);
                    count += 1;
                }
            }
            out.push(((acc + 500 * count) / (1000 * count.max(1))).min(255) as u8);
        }
    }
}

impl AnalysisOptions {
    /// Checks the settings; the error names the one at fault.
    pub fn validate(&self) -> Result<(), Error> {
        for (setting, v) in [("width", self.width), ("height", self.height)] {
            if !(1..=4096).contains(&v) {
                return Err(Error::config(
                    setting,
                    format!("analysis frames {v} px across: use 1..=4096"),
                ));
            }
        }
        Ok(())
    }

    /// Decodes every frame of `path` small and embeds it with the pixel embedder; in one
    /// sequential pass when `sequential`, else in keyframe-aligned chunks on all cores
    /// (same frames).
    pub(crate) fn run(
        &self,
        path: &Path,
        sequential: bool,
        progress: &dyn Progress,
    ) -> Result<Analysis, Error> {
        self.validate()?;
        let video = reelsmith_decode::open(path)?;
        let info = video.info().clone();
        let (long, short) = (self.width.max(self.height), self.width.min(self.height));
        // Portrait or landscape as displayed: a 4:3 picture stored as 528×576 with
        // non-square pixels (SAR 16:11) is landscape.
        let (width, height) = if info.display_aspect() < 1.0 {
            (short, long)
        } else {
            (long, short)
        };
        let opts = DecodeOptions::new()
            .sampling(Sampling::All)
            .scale(Scale::Exact { width, height })
            .resampler(self.resampler)
            .threads(self.threads)
            .skip_loop_filter(self.skip_loop_filter);
        let embedder = PixelEmbedder::default();
        let dim = embedder.dim();
        let stage = StageGuard::start(progress, Stage::Analyse, info.declared_frames);
        let embed_err = embed_error(path);
        let mut data;
        let mut times;
        let f = luma_factor(width, height);
        let mut luma =
            LumaFrames::new((width / f).max(1) as usize, (height / f).max(1) as usize)
                .map_err(|e| embed_err(reelsmith_embed::EmbedError::InvalidInput(e.to_string())))?;
        let mut small = Vec::new();
        let mut keep_luma = |img: &image::RgbImage, luma: &mut LumaFrames| {
            small.clear();
            push_luma(img, f, &mut small);
            luma.push(&small)
                .map_err(|e| embed_err(reelsmith_embed::EmbedError::InvalidInput(e.to_string())))
        };
        if sequential {
            let cap = info.declared_frames.unwrap_or(0).min(1 << 20) as usize;
            data = Vec::with_capacity(cap * dim);
            times = Vec::with_capacity(cap);
            for frame in video.frames(&opts)? {
                let frame = frame?;
                let at = data.len();
                data.resize(at + dim, 0.0);
                embedder
                    .embed_into(&frame.image, &mut data[at..])
                    .map_err(&embed_err)?;
                keep_luma(&frame.image, &mut luma)?;
                times.push(frame.time);
                stage.advance(1);
            }
        } else {
            // Keyframe-aligned chunks decoded on all cores (same frames as one pass).
            let rows = video.map_frames(
                &opts,
                self.threads,
                |frame| {
                    let mut row = vec![0.0; dim];
                    embedder
                        .embed_into(&frame.image, &mut row)
                        .map_err(&embed_err)?;
                    let mut small = Vec::new();
                    push_luma(&frame.image, f, &mut small);
                    Ok::<_, Error>((row, small))
                },
                |_| stage.advance(1),
            )?;
            data = Vec::with_capacity(rows.len() * dim);
            times = Vec::with_capacity(rows.len());
            for r in rows {
                let (row, small) = r.value;
                data.extend_from_slice(&row);
                luma.push(&small).map_err(|e| {
                    embed_err(reelsmith_embed::EmbedError::InvalidInput(e.to_string()))
                })?;
                times.push(r.time);
            }
        }
        let emb = Embeddings::new(data, dim).map_err(|e| embed_err(e.into()))?;
        Ok(Analysis {
            info,
            emb,
            times,
            luma,
        })
    }
}

/// End of the last frame: its time plus one average frame duration.
pub(crate) fn end_time(times: &[f64], fps: f64) -> f64 {
    let step = if fps.is_finite() && fps > 0.0 {
        1.0 / fps
    } else {
        0.0
    };
    times.last().map_or(0.0, |t| t + step)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 luma of the `f × f` blocks of `img`, written out pixel by pixel.
    fn reference(img: &image::RgbImage, f: u32) -> Vec<u8> {
        let (lw, lh) = ((img.width() / f).max(1), (img.height() / f).max(1));
        let mut out = Vec::new();
        for by in 0..lh {
            for bx in 0..lw {
                let (mut acc, mut count) = (0u32, 0u32);
                for y in by * f..((by + 1) * f).min(img.height()) {
                    for x in bx * f..((bx + 1) * f).min(img.width()) {
                        let [r, g, b] = img.get_pixel(x, y).0;
                        acc += 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
                        count += 1;
                    }
                }
                out.push(((acc + 500 * count) / (1000 * count)).min(255) as u8);
            }
        }
        out
    }

    #[test]
    fn luma_at_the_analysis_size_and_reduced_is_the_block_mean() {
        let mut seed = 7u32;
        let img = image::RgbImage::from_fn(23, 14, |_, _| {
            let mut c = [0u8; 3];
            for v in &mut c {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *v = (seed >> 16) as u8;
            }
            image::Rgb(c)
        });
        let white = image::RgbImage::from_pixel(4, 3, image::Rgb([255, 255, 255]));
        for (img, f) in [(&img, 1), (&img, 2), (&img, 5), (&white, 1), (&white, 2)] {
            let mut out = vec![9];
            push_luma(img, f, &mut out);
            assert_eq!(out[0], 9, "appends");
            assert_eq!(out[1..], reference(img, f)[..], "factor {f}");
        }
    }
}
