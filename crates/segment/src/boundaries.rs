//! Segment boundaries from several sources: shot cuts, gradual transitions and successor
//! seams, under a minimum and a maximum segment duration.
//!
//! Positions are times (or any increasing unit) on `[0, end)`; a boundary at `t` starts a new
//! segment at `t`. [`select`] keeps the subset of candidates that makes every segment at
//! least `min_len` long while keeping as many cuts and gradual transitions as possible (then
//! as many seams, then the strongest): an exact dynamic programme, so a shot longer than the
//! minimum is never merged with its neighbour because of a greedy choice elsewhere. A
//! transition is dropped only when a shot next to it is shorter than the minimum.
//! [`split_long`] then splits segments longer than `max_len` at their strongest internal
//! seam.

use serde::{Deserialize, Serialize};

/// Where a boundary comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BoundaryKind {
    /// A hard cut found by the shot detector (the exact first frame of the new shot).
    Cut,
    /// A gradual transition (fade, dissolve) found by the shot detector.
    Gradual,
    /// A successor-distance seam (the picture's content changed) with no shot boundary near.
    Seam,
    /// A split of a segment longer than the maximum duration, at its strongest internal seam.
    Split,
}

impl BoundaryKind {
    /// Rank in the selection: shot boundaries outrank seams.
    fn rank(self) -> f64 {
        match self {
            BoundaryKind::Cut | BoundaryKind::Gradual => 1e6,
            BoundaryKind::Seam | BoundaryKind::Split => 1e3,
        }
    }
}

/// A candidate boundary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Where the new segment would start.
    pub at: f64,
    /// Its source.
    pub kind: BoundaryKind,
    /// Its strength (larger is stronger; compared only between candidates of one kind).
    pub strength: f32,
}

/// Chooses boundaries among `cands` so that every segment of `[0, end)` lasts at least
/// `min_len`: the subset with the most shot boundaries (cuts and gradual transitions), then
/// the most seams, then the largest total strength (strengths clamped to `[0, 1]`).
/// Candidates outside `(0, end)` or not finite are ignored. Returns the chosen candidates
/// sorted by position. O(m log m) for m candidates.
///
/// ```
/// use reelsmith_segment::boundaries::{select, BoundaryKind, Candidate};
/// let cut = |at| Candidate { at, kind: BoundaryKind::Cut, strength: 0.5 };
/// // Shots of 1.2, 1.84, 2.44, 2.0, 2.2 and 0.32 s; nothing may be shorter than 2 s.
/// let cands = [cut(1.2), cut(3.04), cut(5.48), cut(7.48), cut(9.68)];
/// let kept: Vec<f64> = select(&cands, 10.0, 2.0).iter().map(|c| c.at).collect();
/// assert_eq!(kept, vec![3.04, 5.48, 7.48]);
/// ```
pub fn select(cands: &[Candidate], end: f64, min_len: f64) -> Vec<Candidate> {
    const EPS: f64 = 1e-9;
    let min_len = if min_len.is_finite() {
        min_len.max(0.0)
    } else {
        0.0
    };
    let mut c: Vec<Candidate> = cands
        .iter()
        .copied()
        .filter(|c| c.at.is_finite() && c.at > 0.0 && c.at < end)
        .collect();
    c.sort_by(|a, b| a.at.total_cmp(&b.at));
    let m = c.len();
    let weight = |c: &Candidate| {
        let s = if c.strength.is_finite() {
            f64::from(c.strength).clamp(0.0, 1.0)
        } else {
            0.0
        };
        c.kind.rank() + s
    };
    // dp[i]: best total weight of a valid prefix whose last boundary is c[i].
    let mut dp = vec![f64::NEG_INFINITY; m];
    let mut from: Vec<Option<usize>> = vec![None; m];
    // Running best over j with c[i].at − c[j].at ≥ min_len.
    let (mut best, mut best_j) = (f64::NEG_INFINITY, None);
    let mut ptr = 0;
    for i in 0..m {
        while ptr < i && c[i].at - c[ptr].at >= min_len - EPS {
            if dp[ptr] > best {
                best = dp[ptr];
                best_j = Some(ptr);
            }
            ptr += 1;
        }
        let start_ok = c[i].at >= min_len - EPS;
        let (base, prev) = match (start_ok, best_j) {
            (true, Some(j)) if best > 0.0 => (best, Some(j)),
            (true, _) => (0.0, None),
            (false, Some(j)) => (best, Some(j)),
            (false, None) => continue,
        };
        dp[i] = base + weight(&c[i]);
        from[i] = prev;
    }
    let last = (0..m)
        .filter(|&i| end - c[i].at >= min_len - EPS && dp[i].is_finite())
        .max_by(|&a, &b| dp[a].total_cmp(&dp[b]).then(b.cmp(&a)));
    let mut out = Vec::new();
    let mut cur = last;
    while let Some(i) = cur {
        out.push(c[i]);
        cur = from[i];
    }
    out.reverse();
    out
}

/// Splits every segment longer than `max_len` (between consecutive `starts`, with 0 and
/// `end`) at the strongest of `seams` (position, strength) that leaves both parts at least
/// `min_len` long (`min_len` is lowered to `max_len / 2` when larger), repeatedly; where no
/// seam qualifies the segment is split at the seam nearest its middle, or at the middle.
/// Returns the added split positions, ascending.
///
/// ```
/// use reelsmith_segment::boundaries::split_long;
/// let seams = [(3.0, 0.2), (8.0, 0.9), (12.0, 0.5)];
/// assert_eq!(split_long(&[], 16.0, 2.0, 10.0, &seams), vec![8.0]);
/// assert_eq!(split_long(&[8.0], 16.0, 2.0, 10.0, &seams), Vec::<f64>::new());
/// ```
pub fn split_long(
    starts: &[f64],
    end: f64,
    min_len: f64,
    max_len: f64,
    seams: &[(f64, f32)],
) -> Vec<f64> {
    if !(max_len.is_finite() && max_len > 0.0 && end.is_finite()) {
        return Vec::new();
    }
    let min_len = min_len.clamp(0.0, max_len / 2.0);
    let mut bounds: Vec<f64> = std::iter::once(0.0)
        .chain(
            starts
                .iter()
                .copied()
                .filter(|s| s.is_finite() && *s > 0.0 && *s < end),
        )
        .chain(std::iter::once(end))
        .collect();
    bounds.sort_by(f64::total_cmp);
    let mut stack: Vec<(f64, f64)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let mut out = Vec::new();
    while let Some((a, b)) = stack.pop() {
        if b - a <= max_len + 1e-9 {
            continue;
        }
        let inside = seams
            .iter()
            .filter(|(t, _)| *t >= a + min_len - 1e-9 && *t <= b - min_len + 1e-9);
        let strength = |s: f32| if s.is_finite() { s } else { f32::NEG_INFINITY };
        let s = inside
            .max_by(|x, y| {
                strength(x.1)
                    .total_cmp(&strength(y.1))
                    .then(y.0.total_cmp(&x.0))
            })
            .map(|(t, _)| *t)
            .unwrap_or((a + b) / 2.0);
        out.push(s);
        stack.push((a, s));
        stack.push((s, b));
    }
    out.sort_by(f64::total_cmp);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(at: f64, kind: BoundaryKind, strength: f32) -> Candidate {
        Candidate { at, kind, strength }
    }

    #[test]
    fn cuts_between_long_shots_are_always_kept() {
        // A strong seam 1 s after a weak cut: the cut wins, the seam goes.
        let c = [
            cand(4.0, BoundaryKind::Cut, 0.01),
            cand(5.0, BoundaryKind::Seam, 1.0),
            cand(9.0, BoundaryKind::Seam, 0.3),
        ];
        let kept: Vec<f64> = select(&c, 12.0, 2.0).iter().map(|c| c.at).collect();
        assert_eq!(kept, vec![4.0, 9.0]);
    }

    #[test]
    fn short_material_and_odd_input() {
        let c = [cand(1.0, BoundaryKind::Cut, 1.0)];
        assert!(select(&c, 1.5, 2.0).is_empty());
        assert!(select(&[], 10.0, 2.0).is_empty());
        let odd = [
            cand(f64::NAN, BoundaryKind::Cut, 1.0),
            cand(-1.0, BoundaryKind::Cut, 1.0),
            cand(5.0, BoundaryKind::Seam, f32::NAN),
            cand(50.0, BoundaryKind::Cut, 1.0),
        ];
        let kept: Vec<f64> = select(&odd, 10.0, 2.0).iter().map(|c| c.at).collect();
        assert_eq!(kept, vec![5.0]);
        // min_len 0 keeps everything.
        let many: Vec<Candidate> = (1..10)
            .map(|i| cand(i as f64, BoundaryKind::Seam, 0.1))
            .collect();
        assert_eq!(select(&many, 10.0, 0.0).len(), 9);
    }

    #[test]
    fn the_exact_programme_beats_greedy_strength() {
        // Greedy by strength would keep the strong cut at 3.0 and lose both others.
        let c = [
            cand(2.0, BoundaryKind::Cut, 0.1),
            cand(3.0, BoundaryKind::Cut, 0.9),
            cand(4.0, BoundaryKind::Cut, 0.1),
        ];
        let kept: Vec<f64> = select(&c, 6.0, 2.0).iter().map(|c| c.at).collect();
        assert_eq!(kept, vec![2.0, 4.0]);
    }

    #[test]
    fn long_segments_split_until_short_enough() {
        let seams: Vec<(f64, f32)> = (1..40).map(|i| (i as f64, (i % 7) as f32)).collect();
        let splits = split_long(&[], 40.0, 2.0, 15.0, &seams);
        let mut all = vec![0.0];
        all.extend(&splits);
        all.push(40.0);
        for w in all.windows(2) {
            assert!(w[1] - w[0] <= 15.0 && w[1] - w[0] >= 2.0, "{all:?}");
        }
        // No seam at all: the middle.
        assert_eq!(split_long(&[], 20.0, 2.0, 15.0, &[]), vec![10.0]);
    }
}
