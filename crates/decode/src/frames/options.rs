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

/// The largest side, in pixels, of the frames decoding converts to (16384). A larger
/// request is a [`DecodeError::InvalidArgument`], checked before anything is allocated.
pub const MAX_FRAME_SIDE: u32 = 16_384;

/// The most pixels of a frame decoding converts to: 64 megapixels (8192×8192; an 8K UHD
/// frame has 33), 192 MB of RGB. A larger request is a [`DecodeError::InvalidArgument`],
/// checked before anything is allocated.
pub const MAX_FRAME_PIXELS: u64 = 1 << 26;

/// How to scale the kept frames. Sizes refer to the picture as displayed (rotation applied),
/// and may not exceed [`MAX_FRAME_SIDE`] a side or [`MAX_FRAME_PIXELS`] in all (the original
/// size included: a larger video is decoded scaled down).
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

/// Checks that the frames of `info`'s video scaled by `scale` stay within
/// [`MAX_FRAME_SIDE`] and [`MAX_FRAME_PIXELS`].
pub(crate) fn check_frame_size(info: &VideoInfo, scale: Scale) -> Result<(), DecodeError> {
    let (w, h) = target_size(info, scale);
    let pixels = u64::from(w) * u64::from(h);
    if w <= MAX_FRAME_SIDE && h <= MAX_FRAME_SIDE && pixels <= MAX_FRAME_PIXELS {
        return Ok(());
    }
    let asked = match scale {
        Scale::Original => format!("the video's own size, {w}x{h}"),
        _ => format!(
            "{w}x{h} ({scale:?} of a {}x{} video)",
            info.width, info.height
        ),
    };
    Err(DecodeError::InvalidArgument {
        path: info.path.clone(),
        detail: format!(
            "frames of {asked} are larger than decoding converts to (at most {MAX_FRAME_SIDE} pixels a side and {} megapixels); ask for a smaller height or size",
            MAX_FRAME_PIXELS >> 20
        ),
    })
}

/// The displayed size of the frames a pass with `scale` yields.
pub(crate) fn target_size(info: &VideoInfo, scale: Scale) -> (u32, u32) {
    let (w, h) = (info.width, info.height);
    let by_height = |th: u32| {
        // FFmpeg's scale=-2:H: width = 2 * round(H * w / (2 * h)) (saturating: a huge
        // request is refused by `check_frame_size`, never wrapped).
        let half = (f64::from(th) * f64::from(w) / (2.0 * f64::from(h))).round() as u32;
        (half.saturating_mul(2).max(2), th)
    };
    match scale {
        Scale::Original => (w, h),
        Scale::Height(th) => by_height(th),
        Scale::MaxHeight(th) if th < h => by_height(th),
        Scale::MaxHeight(_) => (w, h),
        Scale::Exact { width, height } => (width, height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(width: u32, height: u32) -> VideoInfo {
        VideoInfo {
            path: "v.mp4".into(),
            width,
            height,
            coded_width: width,
            coded_height: height,
            codec: "h264".into(),
            fps: 25.0,
            declared_frames: None,
            duration: 1.0,
            rotation: 0,
            has_audio: false,
            start_time: 0.0,
            stream_index: 0,
            sample_aspect: [1, 1],
        }
    }

    #[test]
    fn sizes_follow_ffmpeg_scale() {
        let v = info(64, 48);
        assert_eq!(target_size(&v, Scale::Height(30)), (40, 30));
        assert_eq!(target_size(&v, Scale::MaxHeight(480)), (64, 48));
        assert_eq!(target_size(&v, Scale::MaxHeight(24)), (32, 24));
        assert_eq!(target_size(&info(1, 1000), Scale::Height(10)), (2, 10));
        // A huge height saturates instead of wrapping.
        assert_eq!(
            target_size(&info(1000, 1), Scale::Height(u32::MAX)).0,
            u32::MAX
        );
    }

    #[test]
    fn frame_size_limits() {
        let v = info(64, 48);
        assert!(check_frame_size(&v, Scale::Height(12_288)).is_err()); // 16384 x 12288 > 64 Mpx
        assert!(check_frame_size(&v, Scale::Height(6144)).is_ok()); // 8192 x 6144
        assert!(check_frame_size(&v, Scale::Height(16_000)).is_err()); // 21334 wide
        assert!(check_frame_size(&v, Scale::Height(u32::MAX)).is_err());
        let exact = |width, height| Scale::Exact { width, height };
        assert!(check_frame_size(&v, exact(MAX_FRAME_SIDE, 2)).is_ok());
        assert!(check_frame_size(&v, exact(MAX_FRAME_SIDE + 1, 2)).is_err());
        assert!(check_frame_size(&v, exact(2, MAX_FRAME_SIDE + 1)).is_err());
        assert!(check_frame_size(&v, exact(8192, 8192)).is_ok());
        assert!(check_frame_size(&v, exact(8192, 8193)).is_err());
        let e = check_frame_size(&info(20_000, 12_000), Scale::Original).unwrap_err();
        assert!(e.to_string().contains("20000x12000"), "{e}");
        assert!(check_frame_size(&info(20_000, 12_000), Scale::MaxHeight(2160)).is_ok());
    }
}
