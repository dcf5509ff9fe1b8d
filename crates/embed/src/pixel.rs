//! The weight-free pixel embedder: a small luma/chroma thumbnail.

use image::RgbImage;
use reelsmith_core::Embeddings;

use crate::{EmbedError, Embedder};

/// Weight-free embedder for shot detection and other pixel-level comparisons.
///
/// Each image is converted to Y'CbCr (BT.601, full range) and area-averaged onto a
/// `cols × rows` grid (default 16 × 9). The row holds the Y grid, then Cb, then Cr, each
/// value in `[0, 1]` scaled by `0.5 / cells` (Y) and `0.25 / cells` (Cb, Cr). So the L1
/// distance between two rows is `0.5·mean|ΔY| + 0.25·mean|ΔCb| + 0.25·mean|ΔCr|`, a mean
/// absolute thumbnail difference in `[0, 1]` that weighs brightness as much as colour,
/// as the shot detector of `reelsmith-segment` expects. Being linear in the pixels, a
/// dissolve between two images embeds as the same blend of their rows.
///
/// Any image size works (a grid cell gets at least one pixel); decode small frames
/// (for example 64 × 36) for speed.
///
/// ```
/// use reelsmith_embed::{Embedder, PixelEmbedder};
/// let e = PixelEmbedder::default();
/// let black = image::RgbImage::new(64, 36);
/// let white = image::RgbImage::from_pixel(64, 36, image::Rgb([255, 255, 255]));
/// let rows = e.embed_images(&[black, white]).unwrap();
/// assert_eq!(rows.dim(), 3 * 16 * 9);
/// let l1: f32 = rows.row(0).iter().zip(rows.row(1)).map(|(a, b)| (a - b).abs()).sum();
/// assert!((l1 - 0.5).abs() < 1e-4); // only luma differs, fully
/// ```
#[derive(Debug, Clone)]
pub struct PixelEmbedder {
    cols: usize,
    rows: usize,
    id: String,
}

impl Default for PixelEmbedder {
    fn default() -> Self {
        Self::new(16, 9).expect("16x9 is a valid grid")
    }
}

impl PixelEmbedder {
    /// A grid of `cols × rows` cells (both at least 1).
    pub fn new(cols: usize, rows: usize) -> Result<Self, EmbedError> {
        if cols == 0 || rows == 0 {
            return Err(EmbedError::InvalidInput(format!(
                "pixel embedder grid {cols}x{rows}: both sides must be at least 1"
            )));
        }
        Ok(Self {
            cols,
            rows,
            id: format!("pixel-{cols}x{rows}-ycbcr"),
        })
    }

    /// Embeds one image into `out` (length [`Embedder::dim`]).
    pub fn embed_into(&self, img: &RgbImage, out: &mut [f32]) -> Result<(), EmbedError> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        if w == 0 || h == 0 {
            return Err(EmbedError::InvalidInput(
                "pixel embedder: empty image (0 width or height)".into(),
            ));
        }
        let cells = self.cols * self.rows;
        if out.len() != 3 * cells {
            return Err(EmbedError::InvalidInput(format!(
                "pixel embedder: output has {} values, expected {}",
                out.len(),
                3 * cells
            )));
        }
        let span = |i: usize, n: usize, len: usize| {
            let a = i * len / n;
            let b = ((i + 1) * len / n).max(a + 1).min(len);
            (a.min(len - 1), b)
        };
        let raw = img.as_raw();
        for cy in 0..self.rows {
            let (y0, y1) = span(cy, self.rows, h);
            for cx in 0..self.cols {
                let (x0, x1) = span(cx, self.cols, w);
                // Integer sums: exact, and without the latency chain of float adds.
                let mut acc = [0u64; 3];
                for y in y0..y1 {
                    let line = &raw[(y * w + x0) * 3..(y * w + x1) * 3];
                    for p in line.chunks_exact(3) {
                        acc[0] += u64::from(p[0]);
                        acc[1] += u64::from(p[1]);
                        acc[2] += u64::from(p[2]);
                    }
                }
                let count = ((y1 - y0) * (x1 - x0)) as f32;
                let [r, g, b] = acc.map(|v| v as f32 / count / 255.0);
                let yv = 0.299 * r + 0.587 * g + 0.114 * b;
                let cb = 0.5 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
                let cr = 0.5 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
                let c = cy * self.cols + cx;
                let n = cells as f32;
                out[c] = yv * 0.5 / n;
                out[cells + c] = cb * 0.25 / n;
                out[2 * cells + c] = cr * 0.25 / n;
            }
        }
        Ok(())
    }
}

impl Embedder for PixelEmbedder {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn dim(&self) -> usize {
        3 * self.cols * self.rows
    }

    fn embed_images(&self, images: &[RgbImage]) -> Result<Embeddings, EmbedError> {
        let dim = self.dim();
        let mut data = vec![0f32; images.len() * dim];
        for (img, out) in images.iter().zip(data.chunks_exact_mut(dim)) {
            self.embed_into(img, out)?;
        }
        Ok(Embeddings::new(data, dim)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_and_odd_sizes_fill_every_cell() {
        let e = PixelEmbedder::default();
        let img = RgbImage::from_pixel(3, 2, image::Rgb([255, 0, 0]));
        let rows = e.embed_images(&[img]).unwrap();
        let cells = 144.0;
        // Pure red: Y = 0.299, Cb = 0.5 − 0.168736, Cr = 1.0 in every cell.
        assert!(rows.row(0)[..144]
            .iter()
            .all(|v| (v * cells / 0.5 - 0.299).abs() < 1e-5));
        assert!(rows.row(0)[288..]
            .iter()
            .all(|v| (v * cells / 0.25 - 1.0).abs() < 1e-5));
    }

    #[test]
    fn blend_of_images_is_blend_of_rows() {
        let e = PixelEmbedder::new(4, 2).unwrap();
        let a = RgbImage::from_fn(40, 20, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 12) as u8, 30])
        });
        let b = RgbImage::from_fn(40, 20, |x, _| image::Rgb([200, 10, (x * 3) as u8]));
        let mid = RgbImage::from_fn(40, 20, |x, y| {
            let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
            image::Rgb([0, 1, 2].map(|c| ((u16::from(p[c]) + u16::from(q[c])) / 2) as u8))
        });
        let r = e.embed_images(&[a, b, mid]).unwrap();
        for k in 0..e.dim() {
            let want = (r.row(0)[k] + r.row(1)[k]) / 2.0;
            assert!((r.row(2)[k] - want).abs() < 2e-5, "dim {k}");
        }
    }

    #[test]
    fn rejects_empty_image_and_zero_grid() {
        assert!(PixelEmbedder::new(0, 3).is_err());
        let e = PixelEmbedder::default();
        assert!(e.embed_images(&[RgbImage::new(0, 5)]).is_err());
        assert_eq!(e.embed_images(&[]).unwrap().len(), 0);
        assert_eq!(e.model_id(), "pixel-16x9-ycbcr");
    }
}
