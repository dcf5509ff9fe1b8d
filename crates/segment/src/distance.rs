//! Distances between embedding rows and successor-distance series.

use reelsmith_core::{cosine_similarity, Embeddings};
use serde::{Deserialize, Serialize};

/// How two embedding rows are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Metric {
    /// Sum of absolute differences. The weight-free pixel embedder lays its rows out so that
    /// this is its weighted mean absolute pixel difference in `[0, 1]`; the shot-detection
    /// defaults are calibrated on this scale.
    #[default]
    L1,
    /// Euclidean distance, as in the successor-segmentation method on CLIP/DINOv2 rows.
    Euclidean,
    /// Cosine distance `1 − cos`, in `[0, 2]` (0 when a row is all zeros, see
    /// [`reelsmith_core::cosine_similarity`]).
    Cosine,
}

impl Metric {
    /// Distance between two equally long vectors; a non-finite result is returned as 0.
    ///
    /// ```
    /// use reelsmith_segment::Metric;
    /// assert_eq!(Metric::L1.distance(&[0.0, 1.0], &[1.0, 3.0]), 3.0);
    /// assert_eq!(Metric::Euclidean.distance(&[0.0, 0.0], &[3.0, 4.0]), 5.0);
    /// assert_eq!(Metric::Cosine.distance(&[1.0, 0.0], &[0.0, 1.0]), 1.0);
    /// assert_eq!(Metric::L1.distance(&[f32::NAN], &[0.0]), 0.0);
    /// ```
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        let d = match self {
            Metric::L1 => lane_sum(a, b, |x, y| (x - y).abs()),
            Metric::Euclidean => lane_sum(a, b, |x, y| (x - y) * (x - y)).sqrt(),
            Metric::Cosine => 1.0 - cosine_similarity(a, b),
        };
        if d.is_finite() {
            d.max(0.0)
        } else {
            0.0
        }
    }
}

/// Running sums kept side by side by [`lane_sum`] and its fused forms.
const LANES: usize = 8;

/// The lanes' sums added up, then the `tail` past the last whole group of [`LANES`]: the
/// one order every lane sum uses, so that fused and separate sums agree bit for bit.
#[inline]
fn lanes_total(acc: [f32; LANES], tail: f32) -> f32 {
    let (l, r) = acc.split_at(LANES / 2);
    let half: [f32; LANES / 2] = std::array::from_fn(|k| l[k] + r[k]);
    (half[0] + half[2]) + (half[1] + half[3]) + tail
}

/// `Σ f(a[i], b[i])` over the shorter length, in 8 running sums (one per lane, which the
/// compiler keeps in a vector register) added up at the end: the shot detector computes
/// hundreds of thousands of distances between rows of a few hundred values, and the
/// motion search sums over thousands of pixel pairs per candidate transform.
#[inline]
pub(crate) fn lane_sum(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k]);
        }
    }
    let tail: f32 = ar.iter().zip(br).map(|(&x, &y)| f(x, y)).sum();
    lanes_total(acc, tail)
}

/// `Σ f(a[k], b[k], c[k])` over three equal-length slices (the shortest's length),
/// added up as [`lane_sum`] does: eight running sums the compiler vectorises.
pub(crate) fn lane_sum3(a: &[f32], b: &[f32], c: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&a[..n], &b[..n], &c[..n]);
    let mut acc = [0f32; LANES];
    let (ac, bc, cc) = (
        a.chunks_exact(LANES),
        b.chunks_exact(LANES),
        c.chunks_exact(LANES),
    );
    let (ar, br, cr) = (ac.remainder(), bc.remainder(), cc.remainder());
    for ((x, y), z) in ac.zip(bc).zip(cc) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k], z[k]);
        }
    }
    let tail: f32 = ar
        .iter()
        .zip(br)
        .zip(cr)
        .map(|((&x, &y), &z)| f(x, y, z))
        .sum();
    lanes_total(acc, tail)
}

/// Two [`lane_sum`]s over the same pairs in one pass: `(Σ f(a, b), Σ g(a, b))`, each
/// added up in the same order as [`lane_sum`] would (so bit for bit the same).
pub(crate) fn lane_sums(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32,
    g: impl Fn(f32, f32) -> f32,
) -> (f32, f32) {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let (mut af, mut ag) = ([0f32; LANES], [0f32; LANES]);
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..LANES {
            af[k] += f(x[k], y[k]);
            ag[k] += g(x[k], y[k]);
        }
    }
    let tf: f32 = ar.iter().zip(br).map(|(&x, &y)| f(x, y)).sum();
    let tg: f32 = ar.iter().zip(br).map(|(&x, &y)| g(x, y)).sum();
    (lanes_total(af, tf), lanes_total(ag, tg))
}

/// Distances between consecutive rows: element `i` is `dist(row i, row i+1)`, so the result
/// has `n − 1` values (none for 0 or 1 rows). Non-finite distances become 0.
///
/// ```
/// use reelsmith_core::Embeddings;
/// use reelsmith_segment::{successor_distances, Metric};
/// let e = Embeddings::from_rows(&[[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]]).unwrap();
/// assert_eq!(successor_distances(&e, Metric::Euclidean), vec![5.0, 0.0]);
/// ```
pub fn successor_distances(emb: &Embeddings, metric: Metric) -> Vec<f32> {
    let n = emb.len();
    (1..n)
        .map(|i| metric.distance(emb.row(i - 1), emb.row(i)))
        .collect()
}

/// Min-max normalisation to `[0, 1]` in place, as the successor-segmentation method does
/// before thresholding: `(x − min) / (max − min)`, over the finite values only.
/// Non-finite values become 0; a constant (or empty, or all non-finite) series becomes all 0.
///
/// ```
/// use reelsmith_segment::min_max_normalize;
/// let mut v = vec![2.0, 4.0, 3.0, f32::NAN];
/// min_max_normalize(&mut v);
/// assert_eq!(v, vec![0.0, 1.0, 0.5, 0.0]);
/// ```
pub fn min_max_normalize(values: &mut [f32]) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in values.iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let range = hi - lo;
    for v in values.iter_mut() {
        *v = if v.is_finite() && range > 0.0 && range.is_finite() {
            (*v - lo) / range
        } else {
            0.0
        };
    }
}

/// Replaces non-finite values by 0 (the convention of this crate for "no information").
pub(crate) fn sanitize(values: &[f32]) -> Vec<f32> {
    values
        .iter()
        .map(|v| if v.is_finite() { *v } else { 0.0 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_lane_sums_add_up_as_lane_sum_does_bit_for_bit() {
        // Values of very different sizes, so that another order of additions would round
        // differently; lengths with and without a remainder past the eight lanes.
        for n in [0, 5, 8, 13, 64, 437] {
            // Each lane its own order of magnitude (1e-6 to 1e8).
            let a: Vec<f32> = (0..n)
                .map(|i| (1.0 + (i * 37 % 101) as f32 / 101.0) * 10f32.powi((i % 8) * 2 - 6))
                .collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 / (1.0 + i as f32)).collect();
            let c: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let f = |x: f32, y: f32| (x - y).abs();
            let g = |x: f32, y: f32| x * y + 0.1;
            let (sf, sg) = lane_sums(&a, &b, f, g);
            assert_eq!(sf.to_bits(), lane_sum(&a, &b, f).to_bits(), "n = {n}");
            assert_eq!(sg.to_bits(), lane_sum(&a, &b, g).to_bits(), "n = {n}");
            let ab: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
            assert_eq!(
                lane_sum3(&a, &b, &c, |x, y, z| (x - y) * z).to_bits(),
                lane_sum(&ab, &c, |d, z| d * z).to_bits(),
                "n = {n}"
            );
        }
    }
}
