//! From a probability map to instance masks: threshold, morphological clean-up (opening
//! removes specks and thin bridges, closing fills pinholes), connected components, and
//! small regions dropped. The morphology and labelling are `imageproc`'s.

use image::{GrayImage, Luma};
use imageproc::distance_transform::Norm;
use imageproc::region_labelling::{connected_components, Connectivity};

use crate::mask::Mask;
use crate::EntityError;

/// 8-connected components of the non-zero pixels (labels 1, 2, …; 0 = background).
///
/// imageproc 0.25's labelling indexes past its union-find when an image's only pixel is
/// foreground (it sizes the forest by the pixel count and labels from 1); a one-pixel image
/// is labelled here instead.
pub(crate) fn components(bin: &GrayImage) -> image::ImageBuffer<Luma<u32>, Vec<u32>> {
    if bin.width() as u64 * bin.height() as u64 == 1 {
        let l = u32::from(bin.get_pixel(0, 0)[0] != 0);
        return image::ImageBuffer::from_pixel(1, 1, Luma([l]));
    }
    connected_components(bin, Connectivity::Eight, Luma([0u8]))
}

/// A per-pixel probability map, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilityMap {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` probabilities in `[0, 1]`.
    pub data: Vec<f32>,
}

impl ProbabilityMap {
    /// A map from data; errors when the length does not match.
    pub fn new(width: u32, height: u32, data: Vec<f32>) -> Result<Self, EntityError> {
        if data.len() != width as usize * height as usize {
            return Err(EntityError::Invalid(format!(
                "probability map of {width}x{height} needs {} values, got {}",
                width as usize * height as usize,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// The probability at a pixel.
    pub fn get(&self, x: u32, y: u32) -> f32 {
        self.data[(y * self.width + x) as usize]
    }

    /// Largest value (0 for an empty map).
    pub fn max(&self) -> f32 {
        self.data.iter().copied().fold(0.0, f32::max)
    }

    /// The map as an 8-bit image, `floor(p * 255 + 0.5)` (the reference PNGs' rounding).
    pub fn to_gray(&self) -> GrayImage {
        GrayImage::from_fn(self.width, self.height, |x, y| {
            Luma([(self.get(x, y).clamp(0.0, 1.0) * 255.0 + 0.5).floor() as u8])
        })
    }

    /// Bilinear resize (half-pixel centres, no antialias) to another size.
    pub fn resized(&self, width: u32, height: u32) -> ProbabilityMap {
        let f = crate::isnet::cpu::Feat::new(
            1,
            self.height as usize,
            self.width as usize,
            self.data.clone(),
        );
        let r = crate::isnet::cpu::resize_bilinear(&f, height as usize, width as usize);
        ProbabilityMap {
            width,
            height,
            data: r.data,
        }
    }
}

/// How instances are cut from a probability map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceOptions {
    /// Pixels with probability above this are foreground (0.5).
    pub threshold: f32,
    /// Radius of the opening and closing (L∞ norm, pixels) at a 1024-pixel short side;
    /// scaled with the image and at least 1 (2). 0 disables the clean-up.
    pub morph_radius: u32,
    /// Regions smaller than this fraction of the image are dropped (0.002 = 0.2 %).
    pub min_area_fraction: f32,
    /// At most this many instances, largest first (32).
    pub max_instances: usize,
}

impl Default for InstanceOptions {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            morph_radius: 2,
            min_area_fraction: 0.002,
            max_instances: 32,
        }
    }
}

/// One instance: its mask (same size as the probability map) and a score, the mean
/// probability inside the mask.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The instance's pixels.
    pub mask: Mask,
    /// Confidence in `[0, 1]`.
    pub score: f32,
}

/// Cuts the instances out of a probability map, largest first. A map with nothing above the
/// threshold (a frame without a salient subject) gives an empty list.
pub fn instances_from_probability(prob: &ProbabilityMap, opts: &InstanceOptions) -> Vec<Instance> {
    let (w, h) = (prob.width, prob.height);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let mut bin = GrayImage::from_fn(w, h, |x, y| {
        Luma([if prob.get(x, y) > opts.threshold {
            255
        } else {
            0
        }])
    });
    if opts.morph_radius > 0 {
        let scale = w.min(h) as f32 / 1024.0;
        let r = ((opts.morph_radius as f32 * scale).round() as u32).clamp(1, 255) as u8;
        bin = imageproc::morphology::open(&bin, Norm::LInf, r);
        bin = imageproc::morphology::close(&bin, Norm::LInf, r);
    }
    let labels = components(&bin);
    let mut stats: Vec<(u64, f64)> = Vec::new();
    for (x, y, l) in labels.enumerate_pixels() {
        let l = l[0] as usize;
        if l == 0 {
            continue;
        }
        if stats.len() < l {
            stats.resize(l, (0, 0.0));
        }
        stats[l - 1].0 += 1;
        stats[l - 1].1 += prob.get(x, y) as f64;
    }
    let min_area = (opts.min_area_fraction.max(0.0) as f64 * w as f64 * h as f64).ceil() as u64;
    let mut keep: Vec<usize> = (0..stats.len())
        .filter(|&i| stats[i].0 > 0 && stats[i].0 >= min_area.max(1))
        .collect();
    keep.sort_by(|&a, &b| stats[b].0.cmp(&stats[a].0).then(a.cmp(&b)));
    keep.truncate(opts.max_instances);
    keep.into_iter()
        .map(|i| {
            let label = (i + 1) as u32;
            let mask = Mask::from_fn(w, h, |x, y| labels.get_pixel(x, y)[0] == label);
            Instance {
                mask,
                score: (stats[i].1 / stats[i].0 as f64) as f32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(w: u32, h: u32, blobs: &[(u32, u32, u32, u32, f32)]) -> ProbabilityMap {
        let mut data = vec![0.05f32; (w * h) as usize];
        for &(x0, y0, x1, y1, p) in blobs {
            for y in y0..y1 {
                for x in x0..x1 {
                    data[(y * w + x) as usize] = p;
                }
            }
        }
        ProbabilityMap::new(w, h, data).unwrap()
    }

    #[test]
    fn separate_blobs_become_instances_largest_first_specks_dropped() {
        let p = map_with(
            200,
            100,
            &[
                (10, 10, 60, 90, 0.9),
                (120, 20, 150, 50, 0.7),
                (180, 5, 182, 7, 0.99),
            ],
        );
        let inst = instances_from_probability(&p, &InstanceOptions::default());
        assert_eq!(inst.len(), 2, "the 2x2 speck is opened away");
        assert_eq!(inst[0].mask.area(), 50 * 80);
        assert!((inst[0].score - 0.9).abs() < 1e-6);
        assert_eq!(inst[1].mask.area(), 30 * 30);
        assert_eq!(inst[1].mask.bbox().unwrap().x, 120);
    }

    #[test]
    fn below_threshold_gives_no_instance() {
        let p = map_with(64, 64, &[(10, 10, 40, 40, 0.39)]);
        assert!(instances_from_probability(&p, &InstanceOptions::default()).is_empty());
        let empty = ProbabilityMap::new(0, 0, vec![]).unwrap();
        assert!(instances_from_probability(&empty, &InstanceOptions::default()).is_empty());
        assert_eq!(empty.resized(3, 2).data, vec![0.0; 6]);
    }

    #[test]
    fn small_region_threshold_and_pinholes() {
        // A 6x6 region in 100x100 is 0.36 %: kept at 0.2 %, dropped at 1 %.
        let mut p = map_with(100, 100, &[(20, 20, 26, 26, 0.8), (40, 40, 90, 90, 0.8)]);
        p.data[(60 * 100 + 60) as usize] = 0.1; // a pinhole the closing fills
        let o = InstanceOptions::default();
        let inst = instances_from_probability(&p, &o);
        assert_eq!(inst.len(), 2);
        assert!(inst[0].mask.get(60, 60));
        let o = InstanceOptions {
            min_area_fraction: 0.01,
            ..o
        };
        assert_eq!(instances_from_probability(&p, &o).len(), 1);
        assert!(ProbabilityMap::new(2, 2, vec![0.0; 3]).is_err());
    }
}
