//! What a decoding pass is asked for: [`DecodeOptions`] with its [`Sampling`], [`Scale`]
//! and [`Resampler`], their checks, and the output size they give.

use std::path::Path;

use crate::error::DecodeError;
use crate::probe::info::VideoInfo;

/// Which decoded frames to keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Every decoded frame.
    All,
    /// Frames whose 0-based index is a multiple of N (0, N, 2N, ...). N = 0 is an error.
    EveryNth(u32),
    /// About N frames per second, chosen by timestamp as FFmpeg's `fps` filter does: the
    /// timeline is cut into slots of `1/N` s centred on `k/N`, and each slot keeps the last
    /// frame that falls in it. Slots that no frame falls in (gaps in variable-rate video)
    /// are skipped rather than filled with duplicates. N must be positive and finite.
    Fps(f64),
}

/// How to scale the kept frames. Sizes refer to the picture as displayed (rotation applied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Keep the display size.
    Original,
    /// Scale to this height, keeping the aspect ratio with an even width (FFmpeg's
    /// `scale=-2:H`), enlarging small videos too.
    Height(u32),
    /// Like [`Scale::Height`], but never enlarge: videos already this small keep their size.
    MaxHeight(u32),
    /// Scale to exactly this size, ignoring the aspect ratio.
    Exact {
        /// Output width in pixels.
        width: u32,
        /// Output height in pixels.
        height: u32,
    },
}

/// Resampling filter used when scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resampler {
    /// Bicubic, FFmpeg's `scale` default; best for viewing.
    #[default]
    Bicubic,
    /// Bilinear.
    Bilinear,
    /// Area averaging: the right choice for large reductions (thumbnails for analysis).
    /// 8-bit 4:2:0 frames that shrink by whole, even factors (1280×720 to 64×36, say) are
    /// box-averaged without swscale, faster and with exact rounding (within one level of
    /// swscale's accurate mode); everything else goes through swscale's area filter.
    Area,
    /// FFmpeg's fast bilinear: fastest, lowest quality.
    FastBilinear,
}

/// Options for [`crate::Video::frames`]. Build with [`DecodeOptions::new`] and the setters.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeOptions {
    /// Which frames to keep (default: all).
    pub sampling: Sampling,
    /// How to scale kept frames (default: original size).
    pub scale: Scale,
    /// Resampling filter for scaling (default bicubic).
    pub resampler: Resampler,
    /// Decoder threads; 0 picks one per CPU core (default).
    pub threads: usize,
    /// Skip the codec's in-loop deblocking filter (default false). Decoding gets markedly
    /// faster (about 30 % on H.264 and VP8) and pictures pick up blocking artefacts, which
    /// error propagation can carry on until the next keyframe. Meant for analysis at a
    /// small size (shot detection, thumbnails for statistics), where averaging hides them;
    /// leave it off for frames that people look at or models that read fine detail.
    pub skip_loop_filter: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            sampling: Sampling::All,
            scale: Scale::Original,
            resampler: Resampler::Bicubic,
            threads: 0,
            skip_loop_filter: false,
        }
    }
}

impl DecodeOptions {
    /// Every frame, original size, bicubic, automatic threads.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the sampling.
    pub fn sampling(mut self, sampling: Sampling) -> Self {
        self.sampling = sampling;
        self
    }
    /// Sets the scaling.
    pub fn scale(mut self, scale: Scale) -> Self {
        self.scale = scale;
        self
    }
    /// Sets the resampling filter.
    pub fn resampler(mut self, resampler: Resampler) -> Self {
        self.resampler = resampler;
        self
    }
    /// Sets the number of decoder threads (0 = one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Skips the in-loop deblocking filter for faster, slightly blockier analysis decoding
    /// (see [`DecodeOptions::skip_loop_filter`](DecodeOptions#structfield.skip_loop_filter)).
    pub fn skip_loop_filter(mut self, skip: bool) -> Self {
        self.skip_loop_filter = skip;
        self
    }

    /// Checks the sampling and the scale of a pass over `path`: an error names what is out
    /// of range and what to ask for instead.
    pub(crate) fn check(&self, path: &Path) -> Result<(), DecodeError> {
        let invalid = |detail: String| DecodeError::InvalidArgument {
            path: path.to_path_buf(),
            detail,
        };
        match self.sampling {
            Sampling::EveryNth(0) => {
                return Err(invalid(
                    "sampling every 0th frame: N must be at least 1".into(),
                ))
            }
            Sampling::Fps(f) if !(f.is_finite() && f > 0.0) => {
                return Err(invalid(format!(
                    "sampling at {f} fps: the rate must be positive and finite"
                )))
            }
            _ => {}
        }
        match self.scale {
            Scale::Height(0) | Scale::MaxHeight(0) => Err(invalid(
                "scale to height 0: the height must be at least 1".into(),
            )),
            Scale::Exact { width, height } if width == 0 || height == 0 => Err(invalid(format!(
                "scale to {width}x{height}: both sides must be at least 1"
            ))),
            _ => Ok(()),
        }
    }
}

impl VideoInfo {
    /// Size (width, height) of the frames that decoding with `scale` yields, as displayed
    /// (rotation applied).
    ///
    /// ```
    /// # use reelsmith_decode::{Scale, VideoInfo};
    /// # fn show(info: &VideoInfo) {
    /// let (w, h) = info.output_size(Scale::Height(360));
    /// assert_eq!(h, 360);
    /// # }
    /// ```
    pub fn output_size(&self, scale: Scale) -> (u32, u32) {
        target_size(self, scale)
    }
}

/// The displayed size of the frames a pass with `scale` yields.
pub(crate) fn target_size(info: &VideoInfo, scale: Scale) -> (u32, u32) {
    let (w, h) = (info.width, info.height);
    let by_height = |th: u32| {
        // FFmpeg's scale=-2:H: width = 2 * round(H * w / (2 * h)).
        let half = (f64::from(th) * f64::from(w) / (2.0 * f64::from(h))).round() as u32;
        ((half * 2).max(2), th)
    };
    match scale {
        Scale::Original => (w, h),
        Scale::Height(th) => by_height(th),
        Scale::MaxHeight(th) if th < h => by_height(th),
        Scale::MaxHeight(_) => (w, h),
        Scale::Exact { width, height } => (width, height),
    }
}
