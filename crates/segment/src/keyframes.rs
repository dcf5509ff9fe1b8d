//! Quantile keyframes, as in the ComfyUI `ExtractKeyframes` node.
//!
//! `variation(i)` is the sum of absolute pixel differences between frames `i − 1` and `i`
//! (see [`abs_diff_sum`]); the threshold is the `q`-quantile of all variations with linear
//! interpolation (`q` default [`DEFAULT_QUANTILE`] = 0.85, the node's default), and frame `i`
//! is a keyframe when `variation(i) > threshold`.

/// The node's default quantile.
pub const DEFAULT_QUANTILE: f64 = 0.85;

/// Sum of absolute differences of two equally long byte buffers (for example two RGB frames
/// of the same size). Extra bytes of the longer buffer are ignored.
///
/// ```
/// use reelsmith_segment::keyframes::abs_diff_sum;
/// assert_eq!(abs_diff_sum(&[0, 10, 255], &[5, 0, 250]), 20);
/// ```
pub fn abs_diff_sum(a: &[u8], b: &[u8]) -> u64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum()
}

/// The `q`-quantile of `values` with linear interpolation between order statistics
/// (NumPy's default "linear" method). Non-finite values are ignored; `q` is clamped to
/// `[0, 1]` (NaN `q` counts as 0.5). `None` when no finite value is left.
///
/// ```
/// use reelsmith_segment::keyframes::quantile;
/// assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
/// assert_eq!(quantile(&[3.0, 1.0, 2.0], 1.0), Some(3.0));
/// assert_eq!(quantile(&[], 0.85), None);
/// ```
pub fn quantile(values: &[f32], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| f64::from(*x))
        .collect();
    if v.is_empty() {
        return None;
    }
    let q = if q.is_nan() { 0.5 } else { q.clamp(0.0, 1.0) };
    let pos = q * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let (_, lo_v, rest) = v.select_nth_unstable_by(lo, f64::total_cmp);
    let lo_v = *lo_v;
    let hi_v = if hi == lo {
        lo_v
    } else {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    };
    Some(lo_v + (hi_v - lo_v) * (pos - lo as f64))
}

/// Quantile keyframes from a per-frame variation series where `variation[i]` compares
/// frame `i − 1` with frame `i` (so `variation[0]`, which has no predecessor, is ignored).
/// Returns the frames `i ≥ 1` with `variation[i] > threshold`, ascending, together with
/// the threshold (`None` when fewer than 2 frames or no finite variation).
///
/// ```
/// use reelsmith_segment::keyframes::quantile_keyframes;
/// let v = [0.0, 1.0, 1.0, 9.0, 1.0, 1.0, 8.0, 1.0];
/// let (k, t) = quantile_keyframes(&v, 0.7);
/// assert_eq!(k, vec![3, 6]);
/// assert!(t.unwrap() < 8.0);
/// ```
pub fn quantile_keyframes(variation: &[f32], q: f64) -> (Vec<usize>, Option<f64>) {
    if variation.len() < 2 {
        return (Vec::new(), None);
    }
    let Some(t) = quantile(&variation[1..], q) else {
        return (Vec::new(), None);
    };
    let k = (1..variation.len())
        .filter(|&i| variation[i].is_finite() && f64::from(variation[i]) > t)
        .collect();
    (k, Some(t))
}
