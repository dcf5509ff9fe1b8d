//! Grayscale conversion and the variance of the Laplacian (sharpness).

use image::{GrayImage, RgbImage};
use serde::{Deserialize, Serialize};

use crate::ScoreError;

/// Fixed-point luma weights used by OpenCV 5's `cvtColor(…, COLOR_RGB2GRAY)` for 8-bit
/// images: `Y = (9798·R + 19235·G + 3735·B + 2¹⁴) >> 15`, i.e. 0.299/0.587/0.114 with
/// 15 fractional bits and round-half-up.
///
/// This was checked against OpenCV 5.0.0 on all 2²⁴ RGB colours (no mismatch). OpenCV 4.x
/// used 14 fractional bits (4899/9617/1868) and differs by one level on about 0.26 % of
/// colours; the ITU-R BT.601 weights are the same.
const R_Y: u32 = 9798;
const G_Y: u32 = 19235;
const B_Y: u32 = 3735;
const Y_SHIFT: u32 = 15;

/// Luma of one RGB pixel, bit-exact with OpenCV 5's `COLOR_RGB2GRAY` (see [`rgb_to_gray`]).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((R_Y * u32::from(r) + G_Y * u32::from(g) + B_Y * u32::from(b) + (1 << (Y_SHIFT - 1)))
        >> Y_SHIFT) as u8
}

/// Converts an RGB image to 8-bit gray exactly as OpenCV 5's
/// `cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)` does (BT.601 weights, 15-bit fixed point,
/// round half up).
///
/// ```
/// let rgb = image::RgbImage::from_pixel(2, 1, image::Rgb([0, 0, 250]));
/// let gray = reelsmith_score::rgb_to_gray(&rgb);
/// // 0.114·250 = 28.5, but the 15-bit weight 3735/32768 gives 28.496 → 28, as OpenCV.
/// assert_eq!(gray.as_raw(), &[28, 28]);
/// ```
pub fn rgb_to_gray(rgb: &RgbImage) -> GrayImage {
    let mut out = vec![0u8; rgb.width() as usize * rgb.height() as usize];
    rgb_to_gray_into(rgb.as_raw(), &mut out);
    GrayImage::from_raw(rgb.width(), rgb.height(), out)
        .expect("buffer length matches the image size")
}

/// Converts packed RGB bytes into `out` (one luma byte per pixel); the shorter of the two
/// decides how many pixels are converted.
pub fn rgb_to_gray_into(rgb: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        unsafe { gray_avx2(rgb, out) };
        return;
    }
    gray_generic(rgb, out);
}

/// [`gray_generic`] compiled with AVX2 enabled, where the compiler vectorises it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gray_avx2(rgb: &[u8], out: &mut [u8]) {
    gray_generic(rgb, out);
}

#[inline(always)]
fn gray_generic(rgb: &[u8], out: &mut [u8]) {
    for (px, y) in rgb.chunks_exact(3).zip(out.iter_mut()) {
        *y = luma(px[0], px[1], px[2]);
    }
}

/// Exact integer moments of the 3×3 Laplacian of an 8-bit image.
///
/// The Laplacian of an 8-bit image takes integer values in `[-1020, 1020]`, so its sum and
/// sum of squares are accumulated exactly in integers; [`LaplacianStats::variance`] then
/// rounds once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LaplacianStats {
    /// Number of pixels.
    pub count: u64,
    /// Sum of the Laplacian over all pixels.
    pub sum: i64,
    /// Sum of the squared Laplacian over all pixels.
    pub sum_sq: u64,
}

impl LaplacianStats {
    /// Population variance `E[L²] − E[L]²` (what NumPy's `.var()` returns), computed from
    /// the exact integer moments; 0 for an empty image.
    pub fn variance(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let n = i128::from(self.count);
        let num = n * i128::from(self.sum_sq) - i128::from(self.sum) * i128::from(self.sum);
        let n = self.count as f64;
        num as f64 / (n * n)
    }

    /// Mean of the Laplacian.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

/// Variance of the Laplacian of a gray image: `cv2.Laplacian(gray, cv2.CV_64F).var()`.
///
/// The Laplacian is OpenCV's 3×3 aperture (`ksize=1`, kernel `[[0,1,0],[1,-4,1],[0,1,0]]`)
/// with its default `BORDER_REFLECT_101` border; the variance is the population variance
/// over all pixels, border pixels included. One pass, no intermediate image. Fails on an
/// empty image.
///
/// ```
/// // A single bright dot: the Laplacian is -4·255 there and 255 at its 4 neighbours.
/// let mut g = image::GrayImage::new(5, 5);
/// g.put_pixel(2, 2, image::Luma([255]));
/// let v = reelsmith_score::laplacian_variance(&g).unwrap();
/// let (sum, sq) = (0.0, (16.0 + 4.0) * 255.0 * 255.0);
/// assert!((v - (sq / 25.0 - (sum / 25.0f64).powi(2))).abs() < 1e-9);
/// ```
pub fn laplacian_variance(gray: &GrayImage) -> Result<f64, ScoreError> {
    Ok(laplacian_stats(gray.as_raw(), gray.width() as usize, gray.height() as usize)?.variance())
}

/// Converts `rgb` to gray like [`rgb_to_gray`] and returns [`laplacian_variance`] of it.
pub fn laplacian_variance_rgb(rgb: &RgbImage) -> Result<f64, ScoreError> {
    laplacian_variance(&rgb_to_gray(rgb))
}

/// Exact Laplacian moments of a packed `width × height` 8-bit buffer (row stride = width).
pub fn laplacian_stats(
    gray: &[u8],
    width: usize,
    height: usize,
) -> Result<LaplacianStats, ScoreError> {
    if width == 0 || height == 0 {
        return Err(ScoreError::EmptyImage);
    }
    let expected = width.checked_mul(height).ok_or(ScoreError::EmptyImage)?;
    if gray.len() != expected {
        return Err(ScoreError::BufferSize {
            width,
            height,
            channels: 1,
            len: gray.len(),
        });
    }
    let row = |y: usize| &gray[y * width..(y + 1) * width];
    let mut stats = LaplacianStats {
        count: expected as u64,
        ..Default::default()
    };
    for y in 0..height {
        // BORDER_REFLECT_101: row -1 is row 1 and row h is row h-2; a single row reflects
        // onto itself.
        let up = if y > 0 { y - 1 } else { 1.min(height - 1) };
        let down = if y + 1 < height {
            y + 1
        } else {
            height.saturating_sub(2)
        };
        let (s, q) = laplacian_row(row(up), row(y), row(down));
        stats.sum += s;
        stats.sum_sq += q;
    }
    Ok(stats)
}

/// Sum and sum of squares of the Laplacian along one row, given the rows above and below.
fn laplacian_row(up: &[u8], cur: &[u8], down: &[u8]) -> (i64, u64) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { laplacian_row_avx2(up, cur, down) };
    }
    laplacian_row_generic(up, cur, down)
}

/// [`laplacian_row_generic`] compiled with AVX2 enabled, where the compiler vectorises it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn laplacian_row_avx2(up: &[u8], cur: &[u8], down: &[u8]) -> (i64, u64) {
    laplacian_row_generic(up, cur, down)
}

#[inline(always)]
fn laplacian_row_generic(up: &[u8], cur: &[u8], down: &[u8]) -> (i64, u64) {
    let w = cur.len();
    let at = |x: usize, left: usize, right: usize| -> i32 {
        i32::from(up[x]) + i32::from(down[x]) + i32::from(cur[left]) + i32::from(cur[right])
            - 4 * i32::from(cur[x])
    };
    if w == 1 {
        let l = at(0, 0, 0);
        return (i64::from(l), (l * l) as u64);
    }
    // Border columns (BORDER_REFLECT_101: column -1 is column 1, column w is column w-2).
    let l0 = at(0, 1, 1);
    let l1 = at(w - 1, w - 2, w - 2);
    let mut sum = i64::from(l0) + i64::from(l1);
    let mut sum_sq = (l0 * l0) as u64 + (l1 * l1) as u64;
    if w > 2 {
        let n = w - 2;
        let (u, d) = (&up[1..w - 1], &down[1..w - 1]);
        let (c0, c1, c2) = (&cur[..n], &cur[1..n + 1], &cur[2..]);
        // Chunks of 4096 keep the squared sum inside u32 (4096 · 1020² < 2³²), so the inner
        // loop stays in 32-bit lanes and vectorises.
        const CHUNK: usize = 4096;
        let mut start = 0;
        while start < n {
            let end = (start + CHUNK).min(n);
            let mut s: i32 = 0;
            let mut q: u32 = 0;
            for ((((&a, &b), &l), &c), &r) in u[start..end]
                .iter()
                .zip(&d[start..end])
                .zip(&c0[start..end])
                .zip(&c1[start..end])
                .zip(&c2[start..end])
            {
                // |v| <= 1020 fits i16: 16-bit lanes are twice as wide as 32-bit ones.
                let v =
                    i16::from(a) + i16::from(b) + i16::from(l) + i16::from(r) - 4 * i16::from(c);
                let v = i32::from(v);
                s += v;
                q += (v * v) as u32;
            }
            sum += i64::from(s);
            sum_sq += u64::from(q);
            start = end;
        }
    }
    (sum, sum_sq)
}

/// How raw Laplacian variances are mapped to a 0..1 sharpness across a set of frames.
///
/// With `log: true` (the default) the ranges are taken on `ln(1 + variance)`. The variance
/// spans orders of magnitude within one video (under 1 on a black fade frame, thousands on
/// a detailed one), and a contrast gain `g` multiplies it by `g²`: on the log scale that is
/// a fixed shift instead of one proportional to the variance, so a brightened (or
/// over-exposed) frame cannot swamp the rest of the set, and one extreme frame does not
/// squash every other frame towards 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SharpnessNorm {
    /// `(x − min) / (max − min)` over the set, `x` being the variance or `ln(1 + variance)`.
    MinMax {
        /// Work on `ln(1 + variance)`.
        log: bool,
    },
    /// Robust min-max: the `low` and `high` percentiles (0..100, linear interpolation as
    /// NumPy's default) replace min and max, and the result is clamped to 0..1, so a few
    /// outlier frames do not squash the rest.
    Percentile {
        /// Lower percentile, e.g. 5.
        low: f64,
        /// Upper percentile, e.g. 95.
        high: f64,
        /// Work on `ln(1 + variance)`.
        log: bool,
    },
    /// Set-independent mapping `v / (v + half)`: 0.5 at a variance of `half`.
    Absolute {
        /// The variance that maps to 0.5.
        half: f64,
    },
}

impl Default for SharpnessNorm {
    fn default() -> Self {
        SharpnessNorm::MinMax { log: true }
    }
}

/// Variance mapped to 0.5 by the fallback used when a set cannot be min-max normalised
/// (fewer than two frames, or all variances equal): 100 is the customary
/// "blurry below this" Laplacian-variance threshold for 8-bit frames.
pub const ABSOLUTE_HALF_VARIANCE: f64 = 100.0;

/// Maps the raw Laplacian variances of one set of frames (a video's sampled frames, or a
/// batch of images) to 0..1 with `norm`.
///
/// When the set's range is empty (one frame, or all equal) min-max and percentile
/// normalisation fall back to [`SharpnessNorm::Absolute`] with
/// [`ABSOLUTE_HALF_VARIANCE`], so a lone frame still gets a meaningful value.
/// Non-finite or negative inputs count as 0.
///
/// ```
/// use reelsmith_score::{normalize_sharpness, SharpnessNorm};
/// let s = normalize_sharpness(&[10.0, 20.0, 30.0], SharpnessNorm::MinMax { log: false });
/// assert_eq!(s, vec![0.0, 0.5, 1.0]);
/// let l = normalize_sharpness(&[0.0, 9.0, 99.0], SharpnessNorm::MinMax { log: true });
/// assert!((l[1] - 0.5).abs() < 1e-12); // ln 10 is halfway between ln 1 and ln 100
/// let one = normalize_sharpness(&[100.0], SharpnessNorm::default());
/// assert_eq!(one, vec![0.5]);
/// ```
pub fn normalize_sharpness(vars: &[f64], norm: SharpnessNorm) -> Vec<f64> {
    let clean: Vec<f64> = vars
        .iter()
        .map(|&v| if v.is_finite() && v > 0.0 { v } else { 0.0 })
        .collect();
    let absolute = |half: f64, v: f64| {
        let half = if half > 0.0 && half.is_finite() {
            half
        } else {
            ABSOLUTE_HALF_VARIANCE
        };
        v / (v + half)
    };
    let (log, range) = match norm {
        SharpnessNorm::Absolute { half } => {
            return clean.iter().map(|&v| absolute(half, v)).collect()
        }
        SharpnessNorm::MinMax { log } => (log, None),
        SharpnessNorm::Percentile { low, high, log } => (log, Some((low, high))),
    };
    let xs: Vec<f64> = if log {
        clean.iter().map(|v| v.ln_1p()).collect()
    } else {
        clean.clone()
    };
    let (lo, hi) = match range {
        None => (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        ),
        Some((low, high)) => {
            let mut sorted = xs.clone();
            sorted.sort_by(f64::total_cmp);
            (percentile(&sorted, low), percentile(&sorted, high))
        }
    };
    if hi.is_nan() || lo.is_nan() || hi <= lo {
        return clean
            .iter()
            .map(|&v| absolute(ABSOLUTE_HALF_VARIANCE, v))
            .collect();
    }
    xs.iter()
        .map(|&x| ((x - lo) / (hi - lo)).clamp(0.0, 1.0))
        .collect()
}

/// Percentile `p` (0..100, clamped) of sorted data with linear interpolation; NaN if empty.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let p = if p.is_finite() {
        p.clamp(0.0, 100.0)
    } else {
        50.0
    };
    let pos = p / 100.0 * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    let t = pos - i as f64;
    sorted[i] + (sorted[j] - sorted[i]) * t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward reference: materialise the Laplacian with explicit reflect-101
    /// indexing, then a two-pass f64 variance.
    fn reference(g: &[u8], w: usize, h: usize) -> f64 {
        let refl = |i: isize, n: usize| -> usize {
            if n == 1 {
                return 0;
            }
            let n = n as isize;
            let i = if i < 0 { -i } else { i };
            (if i >= n { 2 * n - 2 - i } else { i }) as usize
        };
        let px = |x: isize, y: isize| f64::from(g[refl(y, h) * w + refl(x, w)]);
        let mut vals = Vec::new();
        for y in 0..h as isize {
            for x in 0..w as isize {
                vals.push(
                    px(x, y - 1) + px(x, y + 1) + px(x - 1, y) + px(x + 1, y) - 4.0 * px(x, y),
                );
            }
        }
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        vals.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / vals.len() as f64
    }

    #[test]
    fn matches_naive_reference_on_all_small_shapes() {
        let mut seed = 12345u64;
        for h in 1..7 {
            for w in [1usize, 2, 3, 4, 5, 9, 4100, 4103] {
                let g: Vec<u8> = (0..w * h)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        (seed >> 56) as u8
                    })
                    .collect();
                let got = laplacian_stats(&g, w, h).unwrap().variance();
                let want = reference(&g, w, h);
                assert!(
                    (got - want).abs() <= 1e-9 * want.max(1.0),
                    "{w}x{h}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        // Checkerboard of 0/255 maximises |L| = 1020 everywhere in the interior.
        let (w, h) = (4099, 3);
        let g: Vec<u8> = (0..w * h)
            .map(|i| if (i % w + i / w) % 2 == 0 { 255 } else { 0 })
            .collect();
        let got = laplacian_stats(&g, w, h).unwrap().variance();
        let want = reference(&g, w, h);
        assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
        assert!(got > 1000.0 * 1000.0 * 0.9);
    }

    #[test]
    fn bad_buffers_are_errors() {
        assert!(matches!(
            laplacian_stats(&[], 0, 3),
            Err(ScoreError::EmptyImage)
        ));
        assert!(matches!(
            laplacian_stats(&[0; 5], 2, 3),
            Err(ScoreError::BufferSize { len: 5, .. })
        ));
    }

    #[test]
    fn normalisation() {
        let v = [1.0, 2.0, 3.0, 4.0, 100.0];
        let mm = normalize_sharpness(&v, SharpnessNorm::MinMax { log: false });
        assert_eq!(mm[0], 0.0);
        assert_eq!(mm[4], 1.0);
        assert!(mm[3] < 0.04);
        let lm = normalize_sharpness(&v, SharpnessNorm::default());
        assert!(lm[3] > 0.2 && lm[4] == 1.0 && lm[0] == 0.0, "{lm:?}");
        let p = normalize_sharpness(
            &v,
            SharpnessNorm::Percentile {
                low: 0.0,
                high: 75.0,
                log: false,
            },
        );
        assert_eq!(p, vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0, 1.0]);
        let a = normalize_sharpness(
            &[0.0, 50.0, f64::NAN],
            SharpnessNorm::Absolute { half: 50.0 },
        );
        assert_eq!(a, vec![0.0, 0.5, 0.0]);
        assert_eq!(percentile(&[1.0, 2.0], 50.0), 1.5);
    }
}
