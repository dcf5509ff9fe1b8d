//! Temporal smoothing, local-maxima peaks with a minimum separation, top-K.

use crate::distance::sanitize;

/// Centred sliding mean over `window` values (an even window is extended by one on the
/// right), shrinking at the edges so that every output averages only existing values.
/// Non-finite values count as 0. `window` 0 or 1 returns a (sanitised) copy.
///
/// ```
/// use reelsmith_segment::peaks::smooth;
/// assert_eq!(smooth(&[0.0, 3.0, 0.0, 3.0], 3), vec![1.5, 1.0, 2.0, 1.5]);
/// ```
pub fn smooth(values: &[f32], window: usize) -> Vec<f32> {
    let v = sanitize(values);
    if window <= 1 {
        return v;
    }
    let half = window / 2;
    let mut pre = vec![0f64; v.len() + 1];
    for (i, x) in v.iter().enumerate() {
        pre[i + 1] = pre[i] + f64::from(*x);
    }
    (0..v.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(v.len());
            ((pre[hi] - pre[lo]) / (hi - lo) as f64) as f32
        })
        .collect()
}

/// Local maxima of `values` (strictly greater than the left neighbour, at least the right
/// one; plateaus report their first index; edges count when above their single neighbour)
/// such that kept peaks are at least `min_separation` apart: when two are closer, the higher
/// one is kept (the earlier one on ties). Non-finite values are never peaks.
/// Ascending indices. O(n log n).
///
/// ```
/// use reelsmith_segment::peaks::find_peaks;
/// let v = [0.0, 5.0, 0.0, 6.0, 0.0, 0.0, 0.0, 4.0, 0.0];
/// assert_eq!(find_peaks(&v, 1), vec![1, 3, 7]);
/// assert_eq!(find_peaks(&v, 3), vec![3, 7]);
/// ```
pub fn find_peaks(values: &[f32], min_separation: usize) -> Vec<usize> {
    let n = values.len();
    let ok = |i: usize| values[i].is_finite();
    let mut cand: Vec<usize> = (0..n)
        .filter(|&i| {
            ok(i)
                && (i == 0 || !ok(i - 1) || values[i] > values[i - 1])
                && (i + 1 == n || !ok(i + 1) || values[i] >= values[i + 1])
        })
        .collect();
    if n == 1 {
        cand = if ok(0) { vec![0] } else { Vec::new() };
    }
    cand.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let sep = min_separation.max(1);
    let mut kept = std::collections::BTreeSet::new();
    for i in cand {
        let p = kept.range(..i).next_back().is_none_or(|&p| i - p >= sep);
        let q = kept.range(i..).next().is_none_or(|&q| q - i >= sep);
        if p && q {
            kept.insert(i);
        }
    }
    kept.into_iter().collect()
}

/// The `k` indices with the highest score (non-finite scores last), highest first, ties by
/// index. O(n log n).
///
/// ```
/// use reelsmith_segment::peaks::top_k;
/// assert_eq!(top_k(&[1.0, 9.0, 3.0, 9.0], 3), vec![1, 3, 2]);
/// ```
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let key = |i: usize| {
        if scores[i].is_finite() {
            scores[i]
        } else {
            f32::NEG_INFINITY
        }
    };
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}
