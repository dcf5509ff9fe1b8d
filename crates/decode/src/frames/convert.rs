//! Conversion of decoded pictures to upright RGB images at the size asked for.

use std::path::PathBuf;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use image::RgbImage;

use crate::error::DecodeError;
use crate::frames::boxscale;
use crate::frames::options::{target_size, DecodeOptions, Resampler};
use crate::probe::info::VideoInfo;

/// The input a swscale context was set up for.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ScalerKey {
    format: Pixel,
    width: u32,
    height: u32,
}

/// Turns decoded frames into RGB images at the size asked for, with the stream's rotation
/// applied: the conversion behind [`crate::Frames`], also used for the stills of clip
/// export.
pub(crate) struct Converter {
    path: PathBuf,
    rotation: u32,
    /// Output size before rotation.
    out_size: (u32, u32),
    flags: scaling::Flags,
    scaler: Option<(ScalerKey, scaling::Context)>,
    /// The scaler's output frame, reused from frame to frame (allocating 2-3 MB per frame
    /// costs as much kernel time as decoding).
    rgb: ff::frame::Video,
}

impl Converter {
    /// A converter to the size and with the filter of `opts` (already checked).
    pub(crate) fn new(info: &VideoInfo, opts: &DecodeOptions) -> Self {
        let (tw, th) = target_size(info, opts.scale);
        let out_size = if info.rotation % 180 == 90 {
            (th, tw)
        } else {
            (tw, th)
        };
        let flags = match opts.resampler {
            Resampler::Bicubic => scaling::Flags::BICUBIC,
            Resampler::Bilinear => scaling::Flags::BILINEAR,
            Resampler::Area => scaling::Flags::AREA,
            Resampler::FastBilinear => scaling::Flags::FAST_BILINEAR,
        };
        Self {
            path: info.path.clone(),
            rotation: info.rotation,
            out_size,
            flags,
            scaler: None,
            rgb: ff::frame::Video::empty(),
        }
    }

    /// Size of the images, as (width, height), rotation applied.
    pub(crate) fn output_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.out_size.1, self.out_size.0)
        } else {
            self.out_size
        }
    }

    /// The picture of `frame`, upright, at the output size.
    pub(crate) fn convert(&mut self, frame: &ff::frame::Video) -> Result<RgbImage, DecodeError> {
        if let Some(img) = self.box_convert(frame) {
            return Ok(self.rotate(img));
        }
        let img = self.swscale(frame)?;
        Ok(self.rotate(img))
    }

    /// Scales and converts `frame` with swscale, setting up a context for its format and
    /// size when they change.
    fn swscale(&mut self, frame: &ff::frame::Video) -> Result<RgbImage, DecodeError> {
        let key = ScalerKey {
            format: frame.format(),
            width: frame.width(),
            height: frame.height(),
        };
        let scaler = match &mut self.scaler {
            Some((k, ctx)) if *k == key => ctx,
            slot => {
                let ctx = scaling::Context::get(
                    key.format,
                    key.width,
                    key.height,
                    Pixel::RGB24,
                    self.out_size.0,
                    self.out_size.1,
                    self.flags,
                )
                .map_err(|e| {
                    DecodeError::ffmpeg(&self.path, "setting up the colour converter", e)
                })?;
                &mut slot.insert((key, ctx)).1
            }
        };
        let rgb = &mut self.rgb;
        scaler
            .run(frame, rgb)
            .map_err(|e| DecodeError::ffmpeg(&self.path, "converting a frame to RGB", e))?;
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let stride = rgb.stride(0);
        let data = rgb.data(0);
        let mut buf = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            // A picture the converter could not allocate has no rows at all.
            let Some(pixels) = data.get(row * stride..row * stride + w * 3) else {
                return Err(DecodeError::InvalidArgument {
                    path: self.path.clone(),
                    detail: format!(
                        "the colour converter could not make a {w}x{h} picture; ask for a smaller size"
                    ),
                });
            };
            buf.extend_from_slice(pixels);
        }
        RgbImage::from_raw(w as u32, h as u32, buf).ok_or_else(|| DecodeError::InvalidArgument {
            path: self.path.clone(),
            detail: format!("the colour converter made a picture of {w}x{h} pixels without them"),
        })
    }

    /// The area-average shrink of an 8-bit 4:2:0 frame by whole, even factors, done
    /// without swscale (see [`crate::frames::boxscale`]); `None` where it does not apply.
    fn box_convert(&self, frame: &ff::frame::Video) -> Option<RgbImage> {
        if self.flags != scaling::Flags::AREA {
            return None;
        }
        let full_range = match frame.format() {
            Pixel::YUV420P => false,
            Pixel::YUVJ420P => true,
            _ => return None,
        };
        let (ow, oh) = (self.out_size.0 as usize, self.out_size.1 as usize);
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let src = boxscale::Yuv420 {
            width: w,
            height: h,
            planes: [0, 1, 2].map(|p| (frame.data(p), frame.stride(p))),
            full_range,
        };
        let rgb = boxscale::box_to_rgb(&src, ow, oh)?;
        RgbImage::from_raw(ow as u32, oh as u32, rgb)
    }

    /// Applies the stream's rotation to the pixels.
    fn rotate(&self, img: RgbImage) -> RgbImage {
        match self.rotation {
            90 => image::imageops::rotate90(&img),
            180 => image::imageops::rotate180(&img),
            270 => image::imageops::rotate270(&img),
            _ => img,
        }
    }
}
