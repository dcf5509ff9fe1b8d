//! Image preprocessing as transformers' image processors do it with their PIL backend:
//! resize of the short side (PIL's separable resampling with 8-bit fixed-point
//! coefficients, reproduced exactly), centre crop, rescale and normalise.

use std::path::Path;

use candle_core::{Device, Tensor};
use image::RgbImage;
use serde::Deserialize;

use crate::manifest::PreprocessManifest;
use crate::EmbedError;

/// PIL resampling filters, numbered as in `preprocessor_config.json`'s `resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// `0`: nearest neighbour.
    Nearest,
    /// `1`: Lanczos (a = 3).
    Lanczos,
    /// `2`: bilinear (triangle filter).
    Bilinear,
    /// `3`: bicubic (a = −0.5), the CLIP and DINOv2 setting.
    Bicubic,
    /// `4`: box.
    Box,
    /// `5`: Hamming.
    Hamming,
}

impl Resample {
    /// From PIL's number.
    pub fn from_pil(n: u32) -> Option<Self> {
        Some(match n {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            _ => return None,
        })
    }

    /// From a name (`bicubic`, `bilinear`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "nearest" => Resample::Nearest,
            "lanczos" => Resample::Lanczos,
            "bilinear" => Resample::Bilinear,
            "bicubic" => Resample::Bicubic,
            "box" => Resample::Box,
            "hamming" => Resample::Hamming,
            _ => return None,
        })
    }

    fn support(self) -> f64 {
        match self {
            Resample::Nearest | Resample::Box => 0.5,
            Resample::Bilinear | Resample::Hamming => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos => 3.0,
        }
    }

    fn filter(self, x: f64) -> f64 {
        match self {
            Resample::Nearest | Resample::Box => {
                if (-0.5..0.5).contains(&x) {
                    1.0
                } else {
                    0.0
                }
            }
            Resample::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Resample::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let px = x * std::f64::consts::PI;
                    (px.sin() / px) * (0.54 + 0.46 * px.cos())
                }
            }
            Resample::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos => {
                fn sinc(x: f64) -> f64 {
                    if x == 0.0 {
                        1.0
                    } else {
                        let px = x * std::f64::consts::PI;
                        px.sin() / px
                    }
                }
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// Target of the resize step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// Scale so that the short side has this length (the long side: `⌊len·long/short⌋`).
    ShortestEdge(u32),
    /// Exactly this width and height.
    Exact {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// The preprocessing of one checkpoint, read from its `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    /// Resize step, if any.
    pub resize: Option<ResizeTo>,
    /// Resampling filter of the resize.
    pub resample: Resample,
    /// Centre crop `(width, height)`, if any.
    pub crop: Option<(u32, u32)>,
    /// Multiplier taking bytes to `[0, 1]` (normally 1/255), if rescaling.
    pub rescale: Option<f64>,
    /// Per-channel mean and standard deviation, if normalising.
    pub normalize: Option<([f64; 3], [f64; 3])>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeField {
    Int(u32),
    Dict {
        shortest_edge: Option<u32>,
        height: Option<u32>,
        width: Option<u32>,
    },
}

#[derive(Deserialize)]
struct RawConfig {
    do_resize: Option<bool>,
    size: Option<SizeField>,
    resample: Option<u32>,
    do_center_crop: Option<bool>,
    crop_size: Option<SizeField>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<Vec<f64>>,
    image_std: Option<Vec<f64>>,
}

impl Preprocessor {
    /// Reads a `preprocessor_config.json`. Missing fields take transformers' defaults for
    /// CLIP and DINOv2 (resize on, crop on, rescale 1/255, normalise on); the mean and
    /// standard deviation must be given when normalising.
    pub fn from_file(path: &Path) -> Result<Self, EmbedError> {
        let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text).map_err(|message| EmbedError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the text of a `preprocessor_config.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let resize = if raw.do_resize.unwrap_or(true) {
            match raw.size {
                Some(SizeField::Int(n)) => Some(ResizeTo::ShortestEdge(n)),
                Some(SizeField::Dict {
                    shortest_edge: Some(n),
                    ..
                }) => Some(ResizeTo::ShortestEdge(n)),
                Some(SizeField::Dict {
                    height: Some(h),
                    width: Some(w),
                    ..
                }) => Some(ResizeTo::Exact {
                    width: w,
                    height: h,
                }),
                Some(_) => {
                    return Err("`size` needs `shortest_edge` or `height` and `width`".into())
                }
                None => return Err("do_resize is set but `size` is missing".into()),
            }
        } else {
            None
        };
        let resample = match raw.resample {
            Some(n) => Resample::from_pil(n).ok_or(format!("unknown PIL resample filter {n}"))?,
            None => Resample::Bicubic,
        };
        if resample == Resample::Nearest {
            return Err("nearest-neighbour resampling is not supported".into());
        }
        let crop = if raw.do_center_crop.unwrap_or(true) {
            match raw.crop_size {
                Some(SizeField::Int(n)) => Some((n, n)),
                Some(SizeField::Dict {
                    height: Some(h),
                    width: Some(w),
                    ..
                }) => Some((w, h)),
                Some(SizeField::Dict {
                    shortest_edge: Some(n),
                    ..
                }) => Some((n, n)),
                Some(_) => return Err("`crop_size` needs `height` and `width`".into()),
                None => None,
            }
        } else {
            None
        };
        let rescale = if raw.do_rescale.unwrap_or(true) {
            Some(raw.rescale_factor.unwrap_or(1.0 / 255.0))
        } else {
            None
        };
        let normalize = if raw.do_normalize.unwrap_or(true) {
            let m = raw.image_mean.ok_or("image_mean is missing")?;
            let s = raw.image_std.ok_or("image_std is missing")?;
            Some((three(&m, "image_mean")?, three(&s, "image_std")?))
        } else {
            None
        };
        Ok(Self {
            resize,
            resample,
            crop,
            rescale,
            normalize,
        })
    }

    /// The preprocessing a manifest describes (used where a repository lacks
    /// `preprocessor_config.json`).
    pub fn from_manifest(m: &PreprocessManifest) -> Result<Self, String> {
        Ok(Self {
            resize: Some(ResizeTo::ShortestEdge(m.resize_shortest_edge)),
            resample: Resample::from_name(&m.resample)
                .ok_or(format!("unknown resample filter {:?}", m.resample))?,
            crop: Some((m.crop, m.crop)),
            rescale: Some(1.0 / 255.0),
            normalize: Some((m.mean, m.std)),
        })
    }

    /// Resize and centre crop, in bytes: the image the model sees before normalisation.
    pub fn resize_and_crop(&self, img: &RgbImage) -> RgbImage {
        let mut img = match self.resize {
            Some(ResizeTo::ShortestEdge(n)) => {
                let (w, h) = (img.width(), img.height());
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                let new_long = ((n as u64 * long as u64) / short.max(1) as u64) as u32;
                let (nw, nh) = if w <= h { (n, new_long) } else { (new_long, n) };
                resize_pil(img, nw.max(1), nh.max(1), self.resample)
            }
            Some(ResizeTo::Exact { width, height }) => {
                resize_pil(img, width, height, self.resample)
            }
            None => img.clone(),
        };
        if let Some((cw, ch)) = self.crop {
            img = center_crop(&img, cw, ch);
        }
        img
    }

    /// The model input for a batch: `[n, 3, h, w]` f32. All images must come out of the
    /// crop with one size.
    pub fn pixels(&self, images: &[RgbImage], device: &Device) -> Result<Tensor, EmbedError> {
        if images.is_empty() {
            return Err(EmbedError::InvalidInput("no images".into()));
        }
        let mut data = Vec::new();
        let mut size = None;
        for (i, img) in images.iter().enumerate() {
            if img.width() == 0 || img.height() == 0 {
                return Err(EmbedError::InvalidInput(format!("image {i} is empty")));
            }
            let out = self.resize_and_crop(img);
            let s = (out.width(), out.height());
            if *size.get_or_insert(s) != s {
                return Err(EmbedError::InvalidInput(format!(
                    "image {i} preprocesses to {}x{} but image 0 to {}x{}; without a centre crop all images must have one size",
                    s.0,
                    s.1,
                    size.unwrap().0,
                    size.unwrap().1
                )));
            }
            self.normalise_into(&out, &mut data);
        }
        let (w, h) = size.unwrap_or((0, 0));
        Ok(Tensor::from_vec(
            data,
            (images.len(), 3, h as usize, w as usize),
            device,
        )?)
    }

    fn normalise_into(&self, img: &RgbImage, out: &mut Vec<f32>) {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let raw = img.as_raw();
        let start = out.len();
        out.resize(start + 3 * w * h, 0.0);
        let dst = &mut out[start..];
        let scale = self.rescale.unwrap_or(1.0);
        for c in 0..3 {
            let (mean, std) = match self.normalize {
                Some((m, s)) => (m[c], s[c]),
                None => (0.0, 1.0),
            };
            // as numpy: rescale in f64, then f32, then (x - mean) / std in f32
            let mean32 = mean as f32;
            let std32 = std as f32;
            let plane = &mut dst[c * w * h..(c + 1) * w * h];
            for (i, v) in plane.iter_mut().enumerate() {
                let x = (raw[i * 3 + c] as f64 * scale) as f32;
                *v = if self.normalize.is_some() {
                    (x - mean32) / std32
                } else {
                    x
                };
            }
        }
    }
}

fn three(v: &[f64], name: &str) -> Result<[f64; 3], String> {
    match v {
        [a] => Ok([*a, *a, *a]),
        [a, b, c] => Ok([*a, *b, *c]),
        _ => Err(format!("{name} must have 1 or 3 values, has {}", v.len())),
    }
}

/// Centre crop as transformers does it (zero padding where the image is smaller).
fn center_crop(img: &RgbImage, cw: u32, ch: u32) -> RgbImage {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (cw_, ch_) = (cw as i64, ch as i64);
    if w == cw_ && h == ch_ {
        return img.clone();
    }
    // offsets of the crop window in the (possibly padded) image, in source coordinates
    let pad_top = if ch_ > h { (ch_ - h + 1) / 2 } else { 0 };
    let pad_left = if cw_ > w { (cw_ - w + 1) / 2 } else { 0 };
    let ph = h.max(ch_);
    let pw = w.max(cw_);
    let top = (h - ch_).div_euclid(2) + pad_top;
    let left = (w - cw_).div_euclid(2) + pad_left;
    let top = top.clamp(0, ph);
    let left = left.clamp(0, pw);
    let mut out = RgbImage::new(cw, ch);
    for y in 0..ch_ {
        let py = top + y; // row in the padded image
        let sy = py - pad_top;
        if sy < 0 || sy >= h {
            continue;
        }
        for x in 0..cw_ {
            let sx = left + x - pad_left;
            if sx < 0 || sx >= w {
                continue;
            }
            out.put_pixel(x as u32, y as u32, *img.get_pixel(sx as u32, sy as u32));
        }
    }
    out
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's coefficient table for one axis: per output pixel the first input index and the
/// fixed-point weights.
fn coefficients(
    in_size: u32,
    out_size: u32,
    filter: Resample,
) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size as usize);
    let mut kk = vec![0i32; out_size as usize * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size as usize {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let mut xmin = (center - support + 0.5) as i64; // C cast: truncation toward zero
        if xmin < 0 {
            xmin = 0;
        }
        let mut xmax = (center + support + 0.5) as i64;
        if xmax > in_size as i64 {
            xmax = in_size as i64;
        }
        let n = (xmax - xmin).max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.filter((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin as usize, n));
    }
    (bounds, kk, ksize)
}

#[inline]
fn clip8(v: i64) -> u8 {
    let v = v >> PRECISION_BITS;
    v.clamp(0, 255) as u8
}

/// PIL `Image.resize((w, h), resample)` for 8-bit RGB (`reducing_gap=None`): horizontal
/// pass, then vertical, each rounding to bytes.
fn resize_pil(img: &RgbImage, out_w: u32, out_h: u32, filter: Resample) -> RgbImage {
    let (in_w, in_h) = (img.width(), img.height());
    let mut cur: RgbImage = img.clone();
    if out_w != in_w {
        let (bounds, kk, ksize) = coefficients(in_w, out_w, filter);
        let src = cur.as_raw();
        let mut dst = vec![0u8; out_w as usize * in_h as usize * 3];
        let iw = in_w as usize;
        for y in 0..in_h as usize {
            let row = &src[y * iw * 3..(y + 1) * iw * 3];
            for (xx, &(xmin, n)) in bounds.iter().enumerate() {
                let k = &kk[xx * ksize..xx * ksize + n];
                let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                for (x, &kv) in k.iter().enumerate() {
                    let p = (xmin + x) * 3;
                    acc[0] += row[p] as i64 * kv as i64;
                    acc[1] += row[p + 1] as i64 * kv as i64;
                    acc[2] += row[p + 2] as i64 * kv as i64;
                }
                let o = (y * out_w as usize + xx) * 3;
                dst[o] = clip8(acc[0]);
                dst[o + 1] = clip8(acc[1]);
                dst[o + 2] = clip8(acc[2]);
            }
        }
        cur = RgbImage::from_raw(out_w, in_h, dst).expect("buffer size");
    }
    if out_h != in_h {
        let (bounds, kk, ksize) = coefficients(in_h, out_h, filter);
        let src = cur.as_raw();
        let w = cur.width() as usize;
        let mut dst = vec![0u8; w * out_h as usize * 3];
        for (yy, &(ymin, n)) in bounds.iter().enumerate() {
            let k = &kk[yy * ksize..yy * ksize + n];
            for x in 0..w {
                let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                for (y, &kv) in k.iter().enumerate() {
                    let p = ((ymin + y) * w + x) * 3;
                    acc[0] += src[p] as i64 * kv as i64;
                    acc[1] += src[p + 1] as i64 * kv as i64;
                    acc[2] += src[p + 2] as i64 * kv as i64;
                }
                let o = (yy * w + x) * 3;
                dst[o] = clip8(acc[0]);
                dst[o + 1] = clip8(acc[1]);
                dst[o + 2] = clip8(acc[2]);
            }
        }
        cur = RgbImage::from_raw(w as u32, out_h, dst).expect("buffer size");
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resize_is_a_copy() {
        let img = RgbImage::from_fn(7, 5, |x, y| image::Rgb([x as u8 * 30, y as u8 * 40, 9]));
        assert_eq!(resize_pil(&img, 7, 5, Resample::Bicubic), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(33, 21, image::Rgb([200, 17, 90]));
        for f in [Resample::Bicubic, Resample::Bilinear, Resample::Lanczos] {
            let out = resize_pil(&img, 12, 40, f);
            assert!(out.pixels().all(|p| p.0 == [200, 17, 90]), "{f:?}");
        }
    }

    #[test]
    fn crop_pads_small_images_with_zeros() {
        let img = RgbImage::from_pixel(2, 2, image::Rgb([255, 255, 255]));
        let out = center_crop(&img, 4, 4);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(1, 1).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(2, 2).0, [255, 255, 255]);
        assert_eq!(out.get_pixel(3, 3).0, [0, 0, 0]);
    }

    #[test]
    fn legacy_int_sizes_parse() {
        let p = Preprocessor::from_json(
            r#"{"crop_size":224,"do_center_crop":true,"do_normalize":true,"do_resize":true,
            "image_mean":[0.5,0.5,0.5],"image_std":[0.5,0.5,0.5],"resample":3,"size":224}"#,
        )
        .unwrap();
        assert_eq!(p.resize, Some(ResizeTo::ShortestEdge(224)));
        assert_eq!(p.crop, Some((224, 224)));
    }
}
