//! The "embedding surveyor" of successor segmentation: a sliding window over the
//! embeddings, k-nearest neighbours among the window's frames, and the window's seam
//! threshold adjusted from them.
//!
//! The successor-segmentation method marks a seam where the (Euclidean) distance between a
//! frame and its successor is large. How large is "large" depends on the footage: a static
//! interview and a handheld chase differ by an order of magnitude. The surveyor measures
//! that scale where it matters, in each window (default 30 s, step 15 s, as the method's
//! configuration):
//!
//! 1. **k-NN among the window's frames.** Each frame's `k` nearest other frames of the window
//!    (Euclidean, default `k` 2), and its *neighbourhood radius*: the mean distance to them.
//!    Inside a segment a frame's nearest neighbours are frames of the same segment (its
//!    temporal neighbours when the camera moves), so the radius is the segment's own
//!    frame-to-frame variation.
//! 2. **The window's threshold** is `mean + k_sigma · std` of the radii of its frames
//!    (default `k_sigma` 2): a successor distance above it leaves the neighbourhood that
//!    frames of this window typically have. Frames covered by several windows average
//!    the thresholds of those windows ([`survey_thresholds`]).
//! 3. **Local check** (default `local_factor` 1.5): the seam between frames `j` and `j + 1`
//!    must also exceed `local_factor ×` the larger radius of the two frames. A whip pan or
//!    a burst of motion in an otherwise calm window has large radii of its own, so it is not
//!    a seam; a frame after a real change has its neighbours on its own side.
//!
//! Cost: O(window² · dim) per window on at most `max_rows` rows (default 256, evenly
//! subsampled), so linear in the number of frames.

use reelsmith_core::Embeddings;
use serde::{Deserialize, Serialize};

use crate::distance::sanitize;

/// Options of [`survey`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SurveyorOptions {
    /// Window length in frames (default 750 = 30 s at 25 fps; use [`SurveyorOptions::for_fps`]).
    pub window: usize,
    /// Step between window starts in frames (default 375 = 15 s at 25 fps).
    pub step: usize,
    /// Neighbours per frame (default 2).
    pub k: usize,
    /// Window threshold = mean + `k_sigma` · std of the neighbourhood radii (default 2).
    pub k_sigma: f32,
    /// A seam must also exceed this multiple of the larger neighbourhood radius of its two
    /// frames (default 1.5; 0 turns the local check off).
    pub local_factor: f32,
    /// Rows per window used for the neighbours, evenly subsampled (default 256): keeps the
    /// cost linear in the number of frames.
    pub max_rows: usize,
}

impl Default for SurveyorOptions {
    fn default() -> Self {
        Self::for_fps(25.0)
    }
}

impl SurveyorOptions {
    /// The defaults with a 30 s window and a 15 s step at `fps` frames per second
    /// (25 fps when `fps` is not a positive finite number).
    pub fn for_fps(fps: f64) -> Self {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            25.0
        };
        Self {
            window: ((30.0 * fps).round() as usize).max(2),
            step: ((15.0 * fps).round() as usize).max(1),
            k: 2,
            k_sigma: 2.0,
            local_factor: 1.5,
            max_rows: 256,
        }
    }
}

/// What the surveyor found in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SurveyWindow {
    /// First frame of the window.
    pub start: usize,
    /// One past the last frame of the window.
    pub end: usize,
    /// Neighbours used (at most the window's rows − 1).
    pub k: usize,
    /// Mean neighbourhood radius of the window's frames.
    pub mean: f32,
    /// Standard deviation of the radii.
    pub std: f32,
    /// Adapted seam threshold `mean + k_sigma · std`.
    pub threshold: f32,
}

/// What [`survey_series`] returns: the windows and, per frame, its neighbourhood radius.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Survey {
    /// One entry per window.
    pub windows: Vec<SurveyWindow>,
    /// Per frame: the mean distance to its `k` nearest neighbours in the first window that
    /// holds it (0 where it was not sampled into one).
    pub radius: Vec<f32>,
}

/// Runs the surveyor; returns one [`SurveyWindow`] per window (none for fewer than 2 rows).
/// Non-finite values in rows are treated as 0.
///
/// ```
/// use reelsmith_core::Embeddings;
/// use reelsmith_segment::surveyor::{survey, SurveyorOptions};
/// let rows: Vec<[f32; 2]> = (0..20).map(|i| [(i / 10) as f32, 0.01 * (i % 3) as f32]).collect();
/// let w = survey(&Embeddings::from_rows(&rows).unwrap(), &SurveyorOptions::for_fps(1.0));
/// assert_eq!(w.len(), 1);
/// assert!(w[0].threshold < 0.5, "within-shot scale, far below the jump of 1");
/// ```
pub fn survey(emb: &Embeddings, opts: &SurveyorOptions) -> Vec<SurveyWindow> {
    survey_series(emb, opts).windows
}

/// [`survey`] with each frame's neighbourhood radius (for the local check of
/// [`surveyor_seam_thresholds`]).
pub fn survey_series(emb: &Embeddings, opts: &SurveyorOptions) -> Survey {
    let n = emb.len();
    if n < 2 {
        return Survey {
            windows: Vec::new(),
            radius: vec![0.0; n],
        };
    }
    let window = opts.window.max(2).min(n);
    let step = opts.step.max(1);
    let mut windows = Vec::new();
    let mut radius = vec![f32::NAN; n];
    let mut start = 0;
    loop {
        let end = (start + window).min(n);
        windows.push(survey_window(emb, start, end, opts, &mut radius));
        if end >= n {
            break;
        }
        start += step;
        if start + window > n {
            start = n - window;
        }
    }
    // Frames left out by subsampling take the radius of the nearest measured frame.
    let mut last = 0.0;
    for r in radius.iter_mut() {
        if r.is_nan() {
            *r = last;
        } else {
            last = *r;
        }
    }
    Survey { windows, radius }
}

/// Per successor-distance thresholds (length `n − 1`) from [`survey`] windows: the average
/// of the thresholds of every window containing both frames. Use with
/// [`seams_with_thresholds`](crate::seams::seams_with_thresholds) and Euclidean successor
/// distances.
pub fn survey_thresholds(windows: &[SurveyWindow], n_frames: usize) -> Vec<f32> {
    let m = n_frames.saturating_sub(1);
    let mut sum = vec![0f64; m + 1];
    let mut cnt = vec![0i64; m + 1];
    for w in windows {
        let (a, b) = (w.start.min(m), w.end.saturating_sub(1).min(m));
        if a >= b {
            continue;
        }
        sum[a] += f64::from(w.threshold);
        sum[b] -= f64::from(w.threshold);
        cnt[a] += 1;
        cnt[b] -= 1;
    }
    let (mut s, mut c) = (0f64, 0i64);
    let mut out = Vec::with_capacity(m);
    for j in 0..m {
        s += sum[j];
        c += cnt[j];
        out.push(if c > 0 {
            (s / c as f64) as f32
        } else {
            f32::INFINITY
        });
    }
    out
}

/// The surveyor's full seam thresholds (length `n − 1`): the window thresholds of
/// [`survey_thresholds`], raised where the local check asks for more
/// (`local_factor ×` the larger radius of frames `j` and `j + 1`).
///
/// ```
/// use reelsmith_core::Embeddings;
/// use reelsmith_segment::seams::seams_with_thresholds;
/// use reelsmith_segment::surveyor::{surveyor_seam_thresholds, SurveyorOptions};
/// use reelsmith_segment::{successor_distances, Metric};
/// // Two calm shots, and inside the first a fast pan (frames 6..10 move by 0.5 each).
/// let mut rows = Vec::new();
/// for i in 0..30 {
///     let x = if i < 6 { 0.0 } else if i < 10 { 0.5 * (i - 5) as f32 } else if i < 20 { 2.0 } else { 9.0 };
///     rows.push([x, 0.02 * (i % 2) as f32]);
/// }
/// let e = Embeddings::from_rows(&rows).unwrap();
/// let d = successor_distances(&e, Metric::Euclidean);
/// let t = surveyor_seam_thresholds(&e, &SurveyorOptions::for_fps(1.0));
/// assert_eq!(seams_with_thresholds(&d, &t, 1, None), vec![20]);
/// ```
pub fn surveyor_seam_thresholds(emb: &Embeddings, opts: &SurveyorOptions) -> Vec<f32> {
    let s = survey_series(emb, opts);
    let mut t = survey_thresholds(&s.windows, emb.len());
    if opts.local_factor > 0.0 && opts.local_factor.is_finite() {
        for (j, tj) in t.iter_mut().enumerate() {
            let local = opts.local_factor * s.radius[j].max(s.radius[j + 1]);
            if local > *tj {
                *tj = local;
            }
        }
    }
    t
}

fn survey_window(
    emb: &Embeddings,
    start: usize,
    end: usize,
    o: &SurveyorOptions,
    radius_out: &mut [f32],
) -> SurveyWindow {
    let len = end - start;
    let take = o.max_rows.max(2).min(len);
    let idx: Vec<usize> = (0..take).map(|i| start + i * len / take).collect();
    let rows: Vec<Vec<f32>> = idx.iter().map(|&i| sanitize(emb.row(i))).collect();
    let k = o.k.max(1).min(take - 1);
    let mut radii = Vec::with_capacity(take);
    let mut dists = vec![0f32; take];
    for (a, ra) in rows.iter().enumerate() {
        for (b, rb) in rows.iter().enumerate() {
            dists[b] = if a == b {
                f32::INFINITY
            } else {
                ra.iter()
                    .zip(rb)
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f32>()
                    .sqrt()
            };
        }
        dists.select_nth_unstable_by(k - 1, f32::total_cmp);
        let r = dists[..k].iter().sum::<f32>() / k as f32;
        let r = if r.is_finite() { r } else { 0.0 };
        radii.push(r);
        if radius_out[idx[a]].is_nan() {
            radius_out[idx[a]] = r;
        }
    }
    let n = radii.len() as f64;
    let mean = radii.iter().map(|&r| f64::from(r)).sum::<f64>() / n;
    let var = radii
        .iter()
        .map(|&r| (f64::from(r) - mean) * (f64::from(r) - mean))
        .sum::<f64>()
        / n;
    let (mean, std) = (mean as f32, var.sqrt() as f32);
    SurveyWindow {
        start,
        end,
        k,
        mean,
        std,
        threshold: mean + o.k_sigma * std,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seams::seams_with_thresholds;
    use crate::{successor_distances, Metric};

    #[test]
    fn a_flash_is_not_a_seam_but_a_change_of_scene_is() {
        // Scene A (0..15) with a flash at 7, then scene B (15..30).
        let rows: Vec<[f32; 2]> = (0..30)
            .map(|i| {
                let noise = 0.01 * (i % 3) as f32;
                match i {
                    7 => [5.0, 5.0],
                    i if i < 15 => [0.0, noise],
                    _ => [3.0, noise],
                }
            })
            .collect();
        let e = Embeddings::from_rows(&rows).unwrap();
        let d = successor_distances(&e, Metric::Euclidean);
        let t = surveyor_seam_thresholds(&e, &SurveyorOptions::for_fps(1.0));
        assert_eq!(seams_with_thresholds(&d, &t, 1, None), vec![15]);
    }

    #[test]
    fn windows_cover_every_frame_and_radii_are_finite() {
        let rows: Vec<[f32; 3]> = (0..100)
            .map(|i| [i as f32 * 0.1, f32::NAN, (i % 7) as f32])
            .collect();
        let e = Embeddings::from_rows(&rows).unwrap();
        let opts = SurveyorOptions {
            window: 30,
            step: 15,
            max_rows: 10,
            ..SurveyorOptions::for_fps(1.0)
        };
        let s = survey_series(&e, &opts);
        assert_eq!(s.windows.first().unwrap().start, 0);
        assert_eq!(s.windows.last().unwrap().end, 100);
        assert!(s.radius.iter().all(|r| r.is_finite()));
        let t = surveyor_seam_thresholds(&e, &opts);
        assert_eq!(t.len(), 99);
        assert!(t.iter().all(|v| v.is_finite()));
    }
}
