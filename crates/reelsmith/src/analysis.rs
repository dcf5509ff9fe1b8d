//! Analysis decoding shared by the pipelines: every frame, decoded small and fast, turned
//! into pixel-embedder rows (and, when asked, raw frame differences) on the fly.

use std::path::{Path, PathBuf};

use reelsmith_core::Embeddings;
use reelsmith_decode::{DecodeOptions, Resampler, Sampling, Scale, VideoInfo};
use reelsmith_embed::{Embedder, PixelEmbedder};

use crate::Error;

/// How the pipelines decode a video for analysis: every frame, at a small size.
///
/// The defaults (64 × 36, area averaging, deblocking skipped, one thread per core) keep
/// everything shot detection needs (the pixel embedder averages onto a 16 × 9 grid) at a
/// fraction of the cost of full-size decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisOptions {
    /// Width of the analysis frames for landscape video (default 64); portrait video
    /// (as displayed) swaps width and height.
    pub width: u32,
    /// Height of the analysis frames for landscape video (default 36).
    pub height: u32,
    /// Resampling filter (default [`Resampler::Area`], the right one for large reductions).
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

/// Progress of a pipeline: the stage and how many frames it has handled, out of how many
/// it expects (from the container's frame count; `None` when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is running: `"analyse"` (decoding every frame small) or `"write"` (decoding
    /// at full size and writing images).
    pub stage: &'static str,
    /// Frames handled so far in this stage.
    pub done: u64,
    /// Frames expected in this stage, when known.
    pub total: Option<u64>,
}

/// What one analysis pass yields.
pub(crate) struct Analysis {
    pub info: VideoInfo,
    pub emb: Embeddings,
    /// Presentation time of every frame, in seconds.
    pub times: Vec<f64>,
    /// `variation[i]` = sum of absolute byte differences between analysis frames `i − 1`
    /// and `i` (0 for frame 0); empty unless asked for.
    pub variation: Vec<f32>,
}

impl AnalysisOptions {
    pub(crate) fn check(&self, path: &Path) -> Result<(), Error> {
        if self.width == 0 || self.height == 0 {
            return Err(Error::InvalidArgument {
                path: path.to_path_buf(),
                detail: format!(
                    "analysis size {}x{}: both sides must be at least 1",
                    self.width, self.height
                ),
            });
        }
        Ok(())
    }

    /// Decodes every frame of `path` small and embeds it with the pixel embedder.
    pub(crate) fn run(
        &self,
        path: &Path,
        want_variation: bool,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Analysis, Error> {
        self.check(path)?;
        let video = reelsmith_decode::open(path)?;
        let info = video.info().clone();
        let (long, short) = (self.width.max(self.height), self.width.min(self.height));
        let (width, height) = if info.height > info.width {
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
        let total = info.declared_frames;
        let embed_err = |source| Error::Embed {
            path: PathBuf::from(path),
            source,
        };
        let mut data;
        let mut times;
        let mut variation = Vec::new();
        if want_variation {
            // Frame differences need the previous frame: one sequential pass.
            let cap = total.unwrap_or(0).min(1 << 20) as usize;
            data = Vec::with_capacity(cap * dim);
            times = Vec::with_capacity(cap);
            let mut prev: Option<image::RgbImage> = None;
            for frame in video.frames(&opts)? {
                let frame = frame?;
                let at = data.len();
                data.resize(at + dim, 0.0);
                embedder
                    .embed_into(&frame.image, &mut data[at..])
                    .map_err(embed_err)?;
                times.push(frame.time);
                let v = prev.as_ref().map_or(0, |p| {
                    reelsmith_segment::keyframes::abs_diff_sum(p.as_raw(), frame.image.as_raw())
                });
                variation.push(v as f32);
                prev = Some(frame.image);
                if times.len() % 16 == 0 {
                    progress(Progress {
                        stage: "analyse",
                        done: times.len() as u64,
                        total,
                    });
                }
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
                        .map_err(embed_err)?;
                    Ok::<_, Error>(row)
                },
                |done| {
                    if done % 16 == 0 {
                        progress(Progress {
                            stage: "analyse",
                            done,
                            total,
                        });
                    }
                },
            )?;
            data = Vec::with_capacity(rows.len() * dim);
            times = Vec::with_capacity(rows.len());
            for r in rows {
                data.extend_from_slice(&r.value);
                times.push(r.time);
            }
        }
        progress(Progress {
            stage: "analyse",
            done: times.len() as u64,
            total,
        });
        let emb = Embeddings::new(data, dim).map_err(|e| embed_err(e.into()))?;
        Ok(Analysis {
            info,
            emb,
            times,
            variation,
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
