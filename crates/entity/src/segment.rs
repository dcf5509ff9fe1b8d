//! The [`Segmenter`] trait and the ISNet salient-object segmenter.

use std::path::Path;

use candle_core::{Device, Module, Tensor};
use image::RgbImage;

use crate::instances::{instances_from_probability, Instance, InstanceOptions, ProbabilityMap};
use crate::isnet::{load_isnet, Isnet, IsnetConfig};
use crate::EntityError;

/// Largest image (in pixels) a segmenter accepts: 64 MP. Larger frames would need
/// multi-gigabyte masks; downscale them first.
pub const MAX_PIXELS: u64 = 64 << 20;

/// Finds object instances in an image.
pub trait Segmenter {
    /// Instance masks (at the image's size) with scores, best first. An image without any
    /// object gives an empty list, not an error.
    fn segment(&self, image: &RgbImage) -> Result<Vec<Instance>, EntityError>;

    /// A short name for reports (`isnet`, `sam`).
    fn name(&self) -> &str;
}

/// Checks that an image can be segmented: non-empty and at most [`MAX_PIXELS`].
pub fn check_image(image: &RgbImage) -> Result<(), EntityError> {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        return Err(EntityError::Invalid(format!(
            "image is {w}x{h}: nothing to segment"
        )));
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(EntityError::Invalid(format!(
            "image is {w}x{h} ({:.0} MP), more than the {} MP a segmenter takes; downscale it first",
            w as f64 * h as f64 / 1e6,
            MAX_PIXELS >> 20
        )));
    }
    Ok(())
}

/// Stretches an RGB image to `size`×`size` exactly as the ISNet references were made:
/// bilinear, half-pixel centres, no antialiasing, computed in `f64` and rounded
/// (`floor(v + 0.5)`), aspect ratio ignored.
pub fn isnet_resize(image: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = image.dimensions();
    let taps = |n_in: u32, n_out: u32| -> Vec<(usize, usize, f64)> {
        (0..n_out)
            .map(|o| {
                let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
                let i0 = s.floor() as usize;
                let i1 = (i0 + 1).min(n_in as usize - 1);
                (i0.min(n_in as usize - 1), i1, s - i0 as f64)
            })
            .collect()
    };
    let tx = taps(w, size);
    let ty = taps(h, size);
    let src = image.as_raw();
    let stride = w as usize * 3;
    let mut out = vec![0u8; size as usize * size as usize * 3];
    for (oy, &(y0, y1, wy)) in ty.iter().enumerate() {
        for (ox, &(x0, x1, wx)) in tx.iter().enumerate() {
            for c in 0..3 {
                let p = |y: usize, x: usize| src[y * stride + x * 3 + c] as f64;
                let top = p(y0, x0) * (1.0 - wx) + p(y0, x1) * wx;
                let bot = p(y1, x0) * (1.0 - wx) + p(y1, x1) * wx;
                let v = top * (1.0 - wy) + bot * wy;
                out[(oy * size as usize + ox) * 3 + c] = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
            }
        }
    }
    RgbImage::from_raw(size, size, out).expect("buffer of size*size*3")
}

/// The model input of an already-resized image: `(v − 128) / 256`, NCHW `[1, 3, H, W]`.
pub fn isnet_input(image: &RgbImage, device: &Device) -> Result<Tensor, EntityError> {
    let (w, h) = image.dimensions();
    let n = (w * h) as usize;
    let mut data = vec![0f32; 3 * n];
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            data[c * n + i] = (px[c] as f32 - 128.0) / 256.0;
        }
    }
    Ok(Tensor::from_vec(
        data,
        (1, 3, h as usize, w as usize),
        device,
    )?)
}

/// Salient-object segmentation with ISNet (`isnet-general-use`).
///
/// The frame is stretched to `input_size`² (1024), the probability map is resized back to
/// the frame's size, then cut into instances ([`instances_from_probability`]).
#[derive(Debug, Clone)]
pub struct IsnetSegmenter {
    model: Isnet,
    device: Device,
    /// Side of the square model input (1024, the size the network was trained at).
    pub input_size: u32,
    /// How instances are cut from the probability map.
    pub options: InstanceOptions,
}

impl IsnetSegmenter {
    /// Loads the weights (see [`load_isnet`]) for `device`.
    pub fn load(weights: &Path, device: &Device) -> Result<Self, EntityError> {
        let model = load_isnet(weights, &IsnetConfig::default(), device)?;
        Ok(Self::new(model, device.clone()))
    }

    /// Wraps a built model.
    pub fn new(model: Isnet, device: Device) -> Self {
        Self {
            model,
            device,
            input_size: 1024,
            options: InstanceOptions::default(),
        }
    }

    /// The network's probability map at the model's input size (`input_size`²).
    pub fn probability_at_input(&self, image: &RgbImage) -> Result<ProbabilityMap, EntityError> {
        check_image(image)?;
        let resized = isnet_resize(image, self.input_size);
        self.probability_of_input(&resized)
    }

    /// The probability map of an image already at the model's input size.
    pub fn probability_of_input(&self, resized: &RgbImage) -> Result<ProbabilityMap, EntityError> {
        check_image(resized)?;
        let x = isnet_input(resized, &self.device)?;
        let p = self.model.forward(&x)?;
        let data = p.flatten_all()?.to_vec1::<f32>()?;
        ProbabilityMap::new(resized.width(), resized.height(), data)
    }

    /// The probability map at the image's own size.
    pub fn probability(&self, image: &RgbImage) -> Result<ProbabilityMap, EntityError> {
        let p = self.probability_at_input(image)?;
        Ok(p.resized(image.width(), image.height()))
    }
}

impl Segmenter for IsnetSegmenter {
    fn segment(&self, image: &RgbImage) -> Result<Vec<Instance>, EntityError> {
        let p = self.probability(image)?;
        Ok(instances_from_probability(&p, &self.options))
    }

    fn name(&self) -> &str {
        "isnet"
    }
}
