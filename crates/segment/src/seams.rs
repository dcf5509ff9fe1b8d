//! Seams: where a new segment starts, from a successor-distance series.
//!
//! The input is a successor-distance series `d` (see
//! [`successor_distances`](crate::successor_distances)): `d[j]` compares frames `j` and
//! `j + 1`, so a seam at `d[j]` means that frame `j + 1` starts a new segment. Results are
//! lists of such start frames, ascending, never containing 0.

use serde::{Deserialize, Serialize};

use crate::distance::sanitize;

/// When a successor distance is a seam.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Threshold {
    /// `d[j] > value`. With min-max normalised distances the successor-segmentation method
    /// uses a fixed value; 0.5 (half the observed range) is a neutral starting point.
    Fixed(f32),
    /// `d[j] > mean + k·std` of `d` over the centred window of `window` values around `j`
    /// (shrinking at the edges). This is the usual outlier rule on a rolling z-score;
    /// the default (`window` 25 ≈ 1 s at 25 fps, `k` 2) is a two-sigma rule over one second.
    Dynamic {
        /// Window length in values (at least 1).
        window: usize,
        /// Number of standard deviations above the rolling mean.
        k: f32,
    },
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Dynamic { window: 25, k: 2.0 }
    }
}

/// Options of [`seams`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeamOptions {
    /// The seam rule (default: [`Threshold::Dynamic`] with window 25, k 2).
    pub threshold: Threshold,
    /// Minimum segment length in frames (default 1: every seam is kept). When two seams are
    /// closer than this, the stronger one wins; segments at the start and the end are
    /// subject to it too.
    pub min_len: usize,
    /// Maximum segment length in frames (default `None`): a longer segment is split at its
    /// strongest internal seam (the largest successor distance that respects `min_len`),
    /// repeatedly, until no segment is longer.
    pub max_len: Option<usize>,
}

impl Default for SeamOptions {
    fn default() -> Self {
        Self {
            threshold: Threshold::default(),
            min_len: 1,
            max_len: None,
        }
    }
}

/// Rolling (centred, shrinking at the edges) mean and population standard deviation of
/// `values` over windows of `window` values, in O(n) with prefix sums.
///
/// ```
/// use reelsmith_segment::seams::rolling_mean_std;
/// let (m, s) = rolling_mean_std(&[1.0, 1.0, 4.0, 1.0, 1.0], 3);
/// assert_eq!(m[2], 2.0);
/// assert!((s[2] - 2f32.sqrt()).abs() < 1e-6);
/// assert_eq!(m[0], 1.0); // window shrinks to [0, 1]
/// ```
pub fn rolling_mean_std(values: &[f32], window: usize) -> (Vec<f32>, Vec<f32>) {
    let v = sanitize(values);
    let n = v.len();
    let half = window.max(1) / 2;
    let mut s1 = vec![0f64; n + 1];
    let mut s2 = vec![0f64; n + 1];
    for (i, x) in v.iter().enumerate() {
        s1[i + 1] = s1[i] + f64::from(*x);
        s2[i + 1] = s2[i] + f64::from(*x) * f64::from(*x);
    }
    let mut mean = Vec::with_capacity(n);
    let mut std = Vec::with_capacity(n);
    for i in 0..n {
        let lo = i.saturating_sub(half);
        let hi = (i + (window.max(1) - 1 - half) + 1).min(n);
        let c = (hi - lo) as f64;
        let m = (s1[hi] - s1[lo]) / c;
        let var = ((s2[hi] - s2[lo]) / c - m * m).max(0.0);
        mean.push(m as f32);
        std.push(var.sqrt() as f32);
    }
    (mean, std)
}

/// Per-value thresholds of a [`Threshold`] rule over `dists`.
pub fn thresholds(dists: &[f32], rule: Threshold) -> Vec<f32> {
    match rule {
        Threshold::Fixed(t) => vec![t; dists.len()],
        Threshold::Dynamic { window, k } => {
            let (m, s) = rolling_mean_std(dists, window);
            m.iter().zip(&s).map(|(m, s)| m + k * s).collect()
        }
    }
}

/// Segment start frames from successor distances `dists` (length `n − 1` for `n` frames).
///
/// Returns the frames `j + 1` with `dists[j]` above the threshold, thinned to `min_len`
/// (stronger seams first) and then split to `max_len`. Empty input gives no seams.
/// NaN/inf distances count as 0.
///
/// ```
/// use reelsmith_segment::seams::{seams, SeamOptions, Threshold};
/// let d = [0.1, 0.9, 0.7, 0.1, 0.1, 0.1];
/// let opts = SeamOptions { threshold: Threshold::Fixed(0.5), ..Default::default() };
/// assert_eq!(seams(&d, &opts), vec![2, 3]);
/// let opts = SeamOptions { threshold: Threshold::Fixed(0.5), min_len: 2, ..Default::default() };
/// assert_eq!(seams(&d, &opts), vec![2]);
/// let opts = SeamOptions { threshold: Threshold::Fixed(0.95), max_len: Some(4), ..Default::default() };
/// assert_eq!(seams(&d, &opts), vec![2, 3]); // 7 frames split at the strongest seams
/// ```
pub fn seams(dists: &[f32], opts: &SeamOptions) -> Vec<usize> {
    let thr = thresholds(dists, opts.threshold);
    seams_with_thresholds(dists, &thr, opts.min_len, opts.max_len)
}

/// Like [`seams`] with one threshold per distance (for example from the
/// [`surveyor`](crate::surveyor)). `thresholds` shorter than `dists` repeat their last
/// value; an empty `thresholds` means no seam passes.
pub fn seams_with_thresholds(
    dists: &[f32],
    thresholds: &[f32],
    min_len: usize,
    max_len: Option<usize>,
) -> Vec<usize> {
    let d = sanitize(dists);
    let n_frames = d.len() + 1;
    if d.is_empty() || thresholds.is_empty() {
        return split_long(&d, Vec::new(), n_frames, min_len, max_len);
    }
    let thr = |j: usize| thresholds[j.min(thresholds.len() - 1)];
    let mut cand: Vec<usize> = (0..d.len()).filter(|&j| d[j] > thr(j)).collect();
    cand.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then(a.cmp(&b)));
    let starts = thin(&cand, n_frames, min_len);
    split_long(&d, starts, n_frames, min_len, max_len)
}

/// Keeps candidate seams (indices into the distance series, strongest first) that leave
/// every segment at least `min_len` frames long; returns sorted start frames.
fn thin(cand_by_strength: &[usize], n_frames: usize, min_len: usize) -> Vec<usize> {
    let min_len = min_len.max(1);
    let mut kept = std::collections::BTreeSet::new();
    for &j in cand_by_strength {
        let s = j + 1;
        if s < min_len || n_frames - s < min_len {
            continue;
        }
        let prev_ok = kept
            .range(..s)
            .next_back()
            .is_none_or(|&p| s - p >= min_len);
        let next_ok = kept.range(s..).next().is_none_or(|&q| q - s >= min_len);
        if prev_ok && next_ok {
            kept.insert(s);
        }
    }
    kept.into_iter().collect()
}

/// Splits segments longer than `max_len` at their strongest internal seam.
fn split_long(
    d: &[f32],
    mut starts: Vec<usize>,
    n_frames: usize,
    min_len: usize,
    max_len: Option<usize>,
) -> Vec<usize> {
    let Some(max_len) = max_len else {
        return starts;
    };
    let max_len = max_len.max(1);
    let min_len = min_len.max(1).min(max_len.div_ceil(2).max(1));
    let table = ArgMax::new(d);
    let bounds: Vec<usize> = std::iter::once(0)
        .chain(starts.iter().copied())
        .chain(std::iter::once(n_frames))
        .collect();
    let mut out = Vec::new();
    let mut stack: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    while let Some((a, b)) = stack.pop() {
        if b - a <= max_len {
            continue;
        }
        // A new start s in [a + min_len, b − min_len]; seam index j = s − 1.
        let lo = a + min_len;
        let hi = b - min_len;
        let s = if lo <= hi {
            table.argmax(lo - 1, hi - 1) + 1
        } else {
            a + (b - a) / 2
        };
        out.push(s);
        stack.push((a, s));
        stack.push((s, b));
    }
    starts.extend(out);
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// Sparse table for O(1) range arg-max queries after O(n log n) construction.
pub(crate) struct ArgMax<'a> {
    v: &'a [f32],
    levels: Vec<Vec<u32>>,
}

impl<'a> ArgMax<'a> {
    pub(crate) fn new(v: &'a [f32]) -> Self {
        let mut levels = vec![(0..v.len() as u32).collect::<Vec<_>>()];
        let mut w = 1;
        while 2 * w <= v.len() {
            let prev = levels.last().expect("level 0 exists");
            let next: Vec<u32> = (0..=v.len() - 2 * w)
                .map(|i| {
                    let (x, y) = (prev[i], prev[i + w]);
                    if v[y as usize] > v[x as usize] {
                        y
                    } else {
                        x
                    }
                })
                .collect();
            levels.push(next);
            w *= 2;
        }
        Self { v, levels }
    }

    /// Index of the largest value in `lo..=hi` (the first one on ties).
    pub(crate) fn argmax(&self, lo: usize, hi: usize) -> usize {
        let len = hi - lo + 1;
        let k = usize::BITS as usize - 1 - len.leading_zeros() as usize;
        let (x, y) = (
            self.levels[k][lo] as usize,
            self.levels[k][hi + 1 - (1 << k)] as usize,
        );
        if self.v[y] > self.v[x] {
            y
        } else {
            x
        }
    }
}

/// Turns sorted start frames into half-open frame ranges covering `0..n_frames`.
///
/// ```
/// use reelsmith_segment::seams::segments_from_starts;
/// assert_eq!(segments_from_starts(&[2, 5], 7), vec![0..2, 2..5, 5..7]);
/// assert!(segments_from_starts(&[], 0).is_empty());
/// ```
pub fn segments_from_starts(starts: &[usize], n_frames: usize) -> Vec<std::ops::Range<usize>> {
    if n_frames == 0 {
        return Vec::new();
    }
    let mut b: Vec<usize> = starts
        .iter()
        .copied()
        .filter(|&s| s > 0 && s < n_frames)
        .collect();
    b.sort_unstable();
    b.dedup();
    let mut out = Vec::with_capacity(b.len() + 1);
    let mut prev = 0;
    for s in b {
        out.push(prev..s);
        prev = s;
    }
    out.push(prev..n_frames);
    out
}
