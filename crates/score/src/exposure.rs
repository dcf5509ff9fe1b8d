//! Exposure penalty from the luma histogram.

use image::GrayImage;
use serde::{Deserialize, Serialize};

/// A 256-bin histogram of 8-bit luma.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LumaHistogram {
    bins: [u64; 256],
    count: u64,
}

impl Default for LumaHistogram {
    fn default() -> Self {
        Self {
            bins: [0; 256],
            count: 0,
        }
    }
}

impl LumaHistogram {
    /// Histogram of a gray image.
    pub fn from_gray(gray: &GrayImage) -> Self {
        Self::from_luma(gray.as_raw())
    }

    /// Histogram of raw luma bytes.
    pub fn from_luma(luma: &[u8]) -> Self {
        // Four interleaved sub-histograms avoid store-to-load stalls on runs of equal values.
        let mut sub = [[0u32; 256]; 4];
        let mut h = Self::default();
        // u32 counters are flushed every 2^31 pixels at most.
        for block in luma.chunks(1 << 30) {
            let mut quads = block.chunks_exact(4);
            for q in &mut quads {
                sub[0][q[0] as usize] += 1;
                sub[1][q[1] as usize] += 1;
                sub[2][q[2] as usize] += 1;
                sub[3][q[3] as usize] += 1;
            }
            for &v in quads.remainder() {
                sub[0][v as usize] += 1;
            }
            for s in sub.iter_mut() {
                for (b, c) in h.bins.iter_mut().zip(s.iter_mut()) {
                    *b += u64::from(*c);
                    *c = 0;
                }
            }
        }
        h.count = luma.len() as u64;
        h
    }

    /// The 256 bin counts.
    pub fn bins(&self) -> &[u64; 256] {
        &self.bins
    }

    /// Number of pixels counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Fraction of pixels with luma `<= level` (0 for an empty histogram).
    pub fn fraction_at_or_below(&self, level: u8) -> f64 {
        self.fraction(0..=level as usize)
    }

    /// Fraction of pixels with luma `>= level` (0 for an empty histogram).
    pub fn fraction_at_or_above(&self, level: u8) -> f64 {
        self.fraction(level as usize..=255)
    }

    /// Mean luma (0 for an empty histogram).
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let s: u64 = self
            .bins
            .iter()
            .enumerate()
            .map(|(i, &c)| i as u64 * c)
            .sum();
        s as f64 / self.count as f64
    }

    fn fraction(&self, range: std::ops::RangeInclusive<usize>) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.bins[range].iter().sum::<u64>() as f64 / self.count as f64
    }
}

/// Thresholds of the exposure penalty (see [`ExposureParams::penalty`]).
///
/// **Default: the highlights method's own definition** — the penalty is the share of
/// pixels whose luma is clipped, at 0–5 (crushed black) or 250–255 (blown highlight):
/// hard edges at 5 and 250, nothing tolerated, the penalty growing linearly to 1 when every
/// pixel is clipped.
///
/// [`ExposureParams::tolerant`] is the softer variant (the default before): a pixel counts
/// as crushed black with weight 1 at luma `<= 8`, fading linearly to 0 at 32; as blown
/// highlight with weight 1 at luma `>= 250`, fading to 0 at 230; up to 25 % crushed pixels
/// are tolerated (letterbox bars of 2.39:1 film in a 16:9 frame cover 25.6 %) and the black
/// penalty saturates at 85 %; up to 5 % blown pixels are tolerated and the highlight
/// penalty saturates at 40 %.
///
/// ```
/// use reelsmith_score::{ExposureParams, LumaHistogram};
/// // 30 % of the pixels at 0..=5 and 10 % at 250..=255: penalty 0.4 by default.
/// let mut luma = vec![3u8; 30];
/// luma.extend([252u8; 10]);
/// luma.extend([6u8; 30]); // just above the black level: not clipped
/// luma.extend([128u8; 30]);
/// let e = ExposureParams::default().measure_luma(&luma);
/// assert!((e.penalty - 0.4).abs() < 1e-12);
/// // The tolerant variant forgives letterbox bars: 20 % black rows cost nothing there,
/// // 0.2 by default.
/// let mut bars = vec![0u8; 20];
/// bars.extend([128u8; 80]);
/// assert_eq!(ExposureParams::tolerant().measure_luma(&bars).penalty, 0.0);
/// assert!((ExposureParams::default().measure_luma(&bars).penalty - 0.2).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExposureParams {
    /// Luma at or below which a pixel counts fully as crushed black.
    pub dark_full_level: u8,
    /// Luma at or above which a pixel no longer counts as crushed (must exceed
    /// `dark_full_level`, else the edge is hard).
    pub dark_zero_level: u8,
    /// Luma at or above which a pixel counts fully as blown highlight.
    pub bright_full_level: u8,
    /// Luma at or below which a pixel no longer counts as blown (must be below
    /// `bright_full_level`, else the edge is hard).
    pub bright_zero_level: u8,
    /// Crushed fraction tolerated without penalty.
    pub dark_tolerance: f64,
    /// Crushed fraction at which the black penalty reaches 1.
    pub dark_full: f64,
    /// Blown fraction tolerated without penalty.
    pub bright_tolerance: f64,
    /// Blown fraction at which the highlight penalty reaches 1.
    pub bright_full: f64,
}

impl Default for ExposureParams {
    fn default() -> Self {
        Self::clipped_share()
    }
}

impl ExposureParams {
    /// The default: the share of pixels at luma 0–5 or 250–255 (see the type's docs).
    pub fn clipped_share() -> Self {
        Self {
            dark_full_level: 5,
            dark_zero_level: 5,
            bright_full_level: 250,
            bright_zero_level: 250,
            dark_tolerance: 0.0,
            dark_full: 1.0,
            bright_tolerance: 0.0,
            bright_full: 1.0,
        }
    }

    /// The tolerant variant: soft edges (black 8→32, white 250→230), 25 % dark and 5 %
    /// bright pixels tolerated, saturating at 85 % and 40 % (see the type's docs).
    pub fn tolerant() -> Self {
        Self {
            dark_full_level: 8,
            dark_zero_level: 32,
            bright_full_level: 250,
            bright_zero_level: 230,
            dark_tolerance: 0.25,
            dark_full: 0.85,
            bright_tolerance: 0.05,
            bright_full: 0.40,
        }
    }
}

/// The exposure penalty of one frame and the fractions it was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Exposure {
    /// Weighted fraction of crushed-black pixels (see [`ExposureParams`]).
    pub dark_fraction: f64,
    /// Weighted fraction of blown-highlight pixels.
    pub bright_fraction: f64,
    /// The penalty in 0..1 (0 = well exposed).
    pub penalty: f64,
}

impl ExposureParams {
    /// Weight of luma `v` as crushed black: 1 at `<= dark_full_level`, 0 at
    /// `>= dark_zero_level`, linear between.
    pub fn dark_weight(&self, v: u8) -> f64 {
        let (full, zero) = (
            f64::from(self.dark_full_level),
            f64::from(self.dark_zero_level),
        );
        let v = f64::from(v);
        if zero <= full {
            return if v <= full { 1.0 } else { 0.0 };
        }
        ((zero - v) / (zero - full)).clamp(0.0, 1.0)
    }

    /// Weight of luma `v` as blown highlight: 1 at `>= bright_full_level`, 0 at
    /// `<= bright_zero_level`, linear between.
    pub fn bright_weight(&self, v: u8) -> f64 {
        let (full, zero) = (
            f64::from(self.bright_full_level),
            f64::from(self.bright_zero_level),
        );
        let v = f64::from(v);
        if zero >= full {
            return if v >= full { 1.0 } else { 0.0 };
        }
        ((v - zero) / (full - zero)).clamp(0.0, 1.0)
    }

    /// [`ExposureParams::penalty`] computed straight from luma bytes, without building a
    /// histogram: the ramp weights are `min(zero ⊖ v, span) / span` (saturating
    /// subtraction), summed exactly in integers in one vectorised pass. Same result as
    /// `penalty(&LumaHistogram::from_luma(luma))` up to the last bit of rounding.
    pub fn measure_luma(&self, luma: &[u8]) -> Exposure {
        let n = luma.len() as f64;
        if luma.is_empty() {
            return self.finish(0.0, 0.0);
        }
        // Dark: weight (zero − v)/(zero − full) clamped; a hard edge counts v <= full.
        let d = if self.dark_zero_level > self.dark_full_level {
            let span = self.dark_zero_level - self.dark_full_level;
            ramp_sum(luma, self.dark_zero_level, span, false) as f64 / (f64::from(span) * n)
        } else if self.dark_full_level == 255 {
            1.0
        } else {
            ramp_sum(luma, self.dark_full_level + 1, 1, false) as f64 / n
        };
        let b = if self.bright_zero_level < self.bright_full_level {
            let span = self.bright_full_level - self.bright_zero_level;
            ramp_sum(luma, self.bright_zero_level, span, true) as f64 / (f64::from(span) * n)
        } else if self.bright_full_level == 0 {
            1.0
        } else {
            ramp_sum(luma, self.bright_full_level - 1, 1, true) as f64 / n
        };
        self.finish(d, b)
    }

    fn finish(&self, d: f64, b: f64) -> Exposure {
        let p = ramp(d, self.dark_tolerance, self.dark_full)
            + ramp(b, self.bright_tolerance, self.bright_full);
        Exposure {
            dark_fraction: d,
            bright_fraction: b,
            penalty: p.min(1.0),
        }
    }

    /// The exposure penalty of a histogram `h` of `N` pixels, in 0..1:
    ///
    /// ```text
    /// d = Σ_v h[v]·dark_weight(v) / N          (weighted crushed fraction)
    /// b = Σ_v h[v]·bright_weight(v) / N        (weighted blown fraction)
    /// ramp(f, tol, full) = clamp((f − tol) / (full − tol), 0, 1)
    /// penalty = min(1, ramp(d, dark_tolerance, dark_full) + ramp(b, bright_tolerance, bright_full))
    /// ```
    ///
    /// A `full <= tol` makes that side a step at `tol`. An empty histogram has penalty 0.
    ///
    /// ```
    /// use reelsmith_score::{ExposureParams, LumaHistogram};
    /// let p = ExposureParams::default();
    /// let black = LumaHistogram::from_luma(&[0; 100]);
    /// assert_eq!(p.penalty(&black).penalty, 1.0);
    /// let mid = LumaHistogram::from_luma(&[128; 100]);
    /// assert_eq!(p.penalty(&mid).penalty, 0.0);
    /// ```
    pub fn penalty(&self, hist: &LumaHistogram) -> Exposure {
        let (mut d, mut b) = (0.0, 0.0);
        if hist.count() > 0 {
            for (v, &c) in hist.bins().iter().enumerate() {
                if c > 0 {
                    d += c as f64 * self.dark_weight(v as u8);
                    b += c as f64 * self.bright_weight(v as u8);
                }
            }
            d /= hist.count() as f64;
            b /= hist.count() as f64;
        }
        self.finish(d, b)
    }
}

/// `Σ min(zero ⊖ v, span)` (or `Σ min(v ⊖ zero, span)` when `above`) over `luma`.
fn ramp_sum(luma: &[u8], zero: u8, span: u8, above: bool) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { ramp_sum_avx2(luma, zero, span, above) };
    }
    ramp_sum_generic(luma, zero, span, above)
}

/// [`ramp_sum_generic`] compiled with AVX2 enabled, where the compiler vectorises it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn ramp_sum_avx2(luma: &[u8], zero: u8, span: u8, above: bool) -> u64 {
    ramp_sum_generic(luma, zero, span, above)
}

#[inline(always)]
fn ramp_sum_generic(luma: &[u8], zero: u8, span: u8, above: bool) -> u64 {
    let mut total = 0u64;
    // 2^24 · 255 < 2^32: u32 lanes cannot overflow within a chunk.
    for chunk in luma.chunks(1 << 24) {
        let s: u32 = if above {
            chunk
                .iter()
                .map(|&v| u32::from(v.saturating_sub(zero).min(span)))
                .sum()
        } else {
            chunk
                .iter()
                .map(|&v| u32::from(zero.saturating_sub(v).min(span)))
                .sum()
        };
        total += u64::from(s);
    }
    total
}

fn ramp(f: f64, tol: f64, full: f64) -> f64 {
    if full <= tol {
        return if f > tol { 1.0 } else { 0.0 };
    }
    ((f - tol) / (full - tol)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts() {
        let data: Vec<u8> = (0..=255u8).chain([7, 7, 7]).collect();
        let h = LumaHistogram::from_luma(&data);
        assert_eq!(h.count(), 259);
        assert_eq!(h.bins()[7], 4);
        assert_eq!(h.bins()[255], 1);
        assert_eq!(h.bins().iter().sum::<u64>(), 259);
        assert!((h.fraction_at_or_below(0) - 1.0 / 259.0).abs() < 1e-12);
        assert!((h.fraction_at_or_above(255) - 1.0 / 259.0).abs() < 1e-12);
        assert_eq!(LumaHistogram::from_luma(&[]).mean(), 0.0);
    }

    #[test]
    fn penalty_ramps() {
        let p = ExposureParams::tolerant();
        // 55 % black: halfway between the 25 % tolerance and 85 % saturation.
        let mut v = vec![0u8; 55];
        v.extend(vec![100u8; 45]);
        let e = p.penalty(&LumaHistogram::from_luma(&v));
        assert!((e.penalty - 0.5).abs() < 1e-12, "{e:?}");
        // Both ends: 40 % black (0.25) + 22.5 % blown (0.5).
        let mut v = vec![0u8; 400];
        v.extend(vec![255u8; 225]);
        v.extend(vec![128u8; 375]);
        let e = p.penalty(&LumaHistogram::from_luma(&v));
        assert!((e.penalty - 0.75).abs() < 1e-12, "{e:?}");
        let step = ExposureParams {
            bright_full: 0.0,
            ..p
        };
        assert_eq!(
            step.penalty(&LumaHistogram::from_luma(&[255; 10])).penalty,
            1.0
        );
        // Soft edges: luma 20 is halfway between 8 and 32, luma 240 halfway between 230/250.
        assert_eq!(p.dark_weight(20), 0.5);
        assert_eq!(p.dark_weight(8), 1.0);
        assert_eq!(p.dark_weight(32), 0.0);
        assert_eq!(p.bright_weight(240), 0.5);
        assert_eq!(p.bright_weight(230), 0.0);
        let hard = ExposureParams {
            dark_zero_level: 8,
            ..p
        };
        assert_eq!((hard.dark_weight(8), hard.dark_weight(9)), (1.0, 0.0));
    }

    #[test]
    fn the_default_is_the_share_of_clipped_pixels() {
        let p = ExposureParams::default();
        for (v, clipped) in [
            (0u8, true),
            (5, true),
            (6, false),
            (249, false),
            (250, true),
            (255, true),
        ] {
            let e = p.measure_luma(&[v; 10]);
            assert_eq!(e.penalty, if clipped { 1.0 } else { 0.0 }, "luma {v}");
            assert_eq!(e, p.penalty(&LumaHistogram::from_luma(&[v; 10])));
        }
        let mixed: Vec<u8> = [0u8; 7]
            .into_iter()
            .chain([255; 13])
            .chain([100; 80])
            .collect();
        assert!((p.measure_luma(&mixed).penalty - 0.2).abs() < 1e-12);
    }

    #[test]
    fn direct_measure_equals_histogram_path() {
        let data: Vec<u8> = (0..100_003u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
            .collect();
        let soft = ExposureParams::tolerant();
        let variants = [
            soft,
            ExposureParams::default(),
            ExposureParams {
                dark_zero_level: 8,
                bright_zero_level: 250,
                ..soft
            },
            ExposureParams {
                dark_full_level: 255,
                bright_full_level: 0,
                ..soft
            },
            ExposureParams {
                dark_full_level: 0,
                dark_zero_level: 255,
                ..soft
            },
        ];
        for p in variants {
            let a = p.measure_luma(&data);
            let b = p.penalty(&LumaHistogram::from_luma(&data));
            assert!(
                (a.dark_fraction - b.dark_fraction).abs() < 1e-12,
                "{p:?}: {a:?} {b:?}"
            );
            assert!(
                (a.bright_fraction - b.bright_fraction).abs() < 1e-12,
                "{p:?}: {a:?} {b:?}"
            );
            assert!((a.penalty - b.penalty).abs() < 1e-12, "{p:?}");
        }
        assert_eq!(soft.measure_luma(&[]).penalty, 0.0);
    }
}
