//! Per-segment summaries: mean embedding and representative keyframes.

use reelsmith_core::Embeddings;
use serde::{Deserialize, Serialize};

/// A segment's summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSummary {
    /// First frame.
    pub start: usize,
    /// One past the last frame.
    pub end: usize,
    /// Mean of the segment's rows.
    pub mean: Vec<f32>,
    /// Representative frames, ascending.
    pub keyframes: Vec<usize>,
}

/// Number of representative keyframes for a segment of `len` frames: 2 up to 2 s, 3 up to
/// 6 s, 4 beyond (at `fps`), never more than `len`. Short shots need fewer pictures; four
/// cover a long one's beginning, middle and end.
pub fn keyframe_count(len: usize, fps: f64) -> usize {
    let secs = if fps > 0.0 && fps.is_finite() {
        len as f64 / fps
    } else {
        len as f64 / 25.0
    };
    let k = if secs <= 2.0 {
        2
    } else if secs <= 6.0 {
        3
    } else {
        4
    };
    k.min(len)
}

/// Summarises each segment (`ranges` of row indices, empty or out-of-range ones skipped):
/// the mean row, and [`keyframe_count`] keyframes, each the row closest (Euclidean) to the
/// segment mean within one of that many equal parts of the segment. O(n · d).
///
/// ```
/// use reelsmith_core::Embeddings;
/// use reelsmith_segment::summary::summarize;
/// let e = Embeddings::from_rows(&[[0.0], [1.0], [2.0], [10.0], [11.0]]).unwrap();
/// let s = summarize(&e, &[0..3, 3..5], 25.0);
/// assert_eq!(s[0].mean, vec![1.0]);
/// assert_eq!(s[0].keyframes.len(), 2);
/// assert_eq!(s[1].keyframes, vec![3, 4]);
/// ```
pub fn summarize(
    emb: &Embeddings,
    ranges: &[std::ops::Range<usize>],
    fps: f64,
) -> Vec<SegmentSummary> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.is_empty() || r.end > emb.len() {
            continue;
        }
        let Some(mean) = emb.mean(Some(r.clone())) else {
            continue;
        };
        let len = r.len();
        let k = keyframe_count(len, fps).max(1);
        let mut keyframes = Vec::with_capacity(k);
        for part in 0..k {
            let a = r.start + part * len / k;
            let b = (r.start + (part + 1) * len / k).max(a + 1);
            let best = (a..b)
                .map(|i| {
                    let d: f32 = emb
                        .row(i)
                        .iter()
                        .zip(&mean)
                        .map(|(x, m)| (x - m) * (x - m))
                        .sum();
                    (i, if d.is_finite() { d } else { f32::INFINITY })
                })
                .fold(
                    (a, f32::INFINITY),
                    |acc, x| if x.1 < acc.1 { x } else { acc },
                );
            keyframes.push(best.0);
        }
        keyframes.dedup();
        out.push(SegmentSummary {
            start: r.start,
            end: r.end,
            mean,
            keyframes,
        });
    }
    out
}
