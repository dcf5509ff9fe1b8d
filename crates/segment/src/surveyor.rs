//! The k-NN "embedding surveyor": per-window cluster structure that adapts the seam threshold.
//!
//! A sliding window (default 30 s, step 15 s) walks over the embeddings. In each window,
//! k-means is run for k = 1, 2, … until the mean and the standard deviation of the
//! distances of the window's rows to their cluster centroid fall under `mean_tol` and
//! `std_tol` times their k = 1 values (the window's overall spread), or `k_max` is
//! reached. The adapted seam threshold for the window is `mean + k_sigma · std` of those
//! distances: a successor distance larger than the typical distance to one's own cluster
//! centre leaves the cluster. Frames covered by several windows average their thresholds.
//!
//! Measured (pixel embedder, Euclidean successor distances, 0.25 s minimum length, the 7
//! shared clips at ±2 frames, `benches/shots_compare.py` with `SHOTS_RAW_METHOD`): plain
//! rolling seams (min-max normalised, mean + 2·std over 25 values) reach hard-cut F1 0.43
//! (35 false seams); surveyor thresholds reach 0.93 (2 false seams, one of them in a
//! single-shot clip). [`detect_shots`](crate::shots::detect_shots) reaches 1.00, so the
//! surveyor stays an option of seam segmentation and is not used for shot detection.

use reelsmith_core::Embeddings;
use serde::{Deserialize, Serialize};

/// Options of [`survey`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SurveyorOptions {
    /// Window length in frames (default 750 = 30 s at 25 fps; use [`SurveyorOptions::for_fps`]).
    pub window: usize,
    /// Step between window starts in frames (default 375 = 15 s at 25 fps).
    pub step: usize,
    /// Largest k tried (default 8).
    pub k_max: usize,
    /// Stop growing k when the mean distance to the centroids is at most this fraction of
    /// the k = 1 mean (default 0.5).
    pub mean_tol: f32,
    /// … and their standard deviation at most this fraction of the k = 1 std (default 0.5).
    pub std_tol: f32,
    /// Threshold = mean + `k_sigma` · std of the final distances (default 2).
    pub k_sigma: f32,
    /// Rows per window used for clustering, evenly subsampled (default 256): keeps the cost
    /// linear in the number of frames with a small constant.
    pub max_rows: usize,
    /// Lloyd iterations per k (default 10).
    pub iterations: usize,
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
            k_max: 8,
            mean_tol: 0.5,
            std_tol: 0.5,
            k_sigma: 2.0,
            max_rows: 256,
            iterations: 10,
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
    /// Number of clusters chosen.
    pub k: usize,
    /// Mean Euclidean distance of the rows to their centroid at that k.
    pub mean: f32,
    /// Standard deviation of those distances.
    pub std: f32,
    /// Adapted seam threshold `mean + k_sigma · std`.
    pub threshold: f32,
}

/// Runs the surveyor; returns one [`SurveyWindow`] per window (none for fewer than 2 rows).
/// Non-finite values in rows are treated as 0.
pub fn survey(emb: &Embeddings, opts: &SurveyorOptions) -> Vec<SurveyWindow> {
    let n = emb.len();
    if n < 2 {
        return Vec::new();
    }
    let window = opts.window.max(2).min(n);
    let step = opts.step.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let end = (start + window).min(n);
        out.push(survey_window(emb, start, end, opts));
        if end >= n {
            break;
        }
        start += step;
        if start + window > n {
            start = n - window;
        }
    }
    out
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

fn survey_window(emb: &Embeddings, start: usize, end: usize, o: &SurveyorOptions) -> SurveyWindow {
    let dim = emb.dim();
    let len = end - start;
    let take = o.max_rows.max(2).min(len);
    let rows: Vec<Vec<f32>> = (0..take)
        .map(|i| {
            let r = emb.row(start + i * len / take);
            r.iter()
                .map(|v| if v.is_finite() { *v } else { 0.0 })
                .collect()
        })
        .collect();
    let (mut k, mut mean, mut std) = (1, 0f32, 0f32);
    let (mut m1, mut s1) = (0f32, 0f32);
    for kk in 1..=o.k_max.max(1).min(take) {
        let (m, s) = kmeans_spread(&rows, dim, kk, o.iterations);
        if kk == 1 {
            (m1, s1) = (m, s);
        }
        (k, mean, std) = (kk, m, s);
        if m <= o.mean_tol * m1 && s <= o.std_tol * s1 {
            break;
        }
        if m1 == 0.0 {
            break;
        }
    }
    SurveyWindow {
        start,
        end,
        k,
        mean,
        std,
        threshold: mean + o.k_sigma * std,
    }
}

/// k-means with farthest-point initialisation; returns mean and std of the distances of the
/// rows to their assigned centroid.
fn kmeans_spread(rows: &[Vec<f32>], dim: usize, k: usize, iters: usize) -> (f32, f32) {
    let d2 =
        |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum() };
    let mut cents: Vec<Vec<f32>> = vec![rows[0].clone()];
    let mut best: Vec<f32> = rows.iter().map(|r| d2(r, &cents[0])).collect();
    while cents.len() < k {
        let (i, _) =
            best.iter().enumerate().fold(
                (0, -1.0f32),
                |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc },
            );
        cents.push(rows[i].clone());
        let c = cents.last().expect("just pushed");
        for (b, r) in best.iter_mut().zip(rows) {
            *b = b.min(d2(r, c));
        }
    }
    let mut assign = vec![0usize; rows.len()];
    for it in 0..=iters {
        let mut changed = false;
        for (a, r) in assign.iter_mut().zip(rows) {
            let (ci, _) = cents.iter().enumerate().map(|(ci, c)| (ci, d2(r, c))).fold(
                (0, f32::INFINITY),
                |acc, x| if x.1 < acc.1 { x } else { acc },
            );
            if *a != ci {
                *a = ci;
                changed = true;
            }
        }
        if it == iters || (!changed && it > 0) {
            break;
        }
        let mut sums = vec![vec![0f64; dim]; k];
        let mut counts = vec![0usize; k];
        for (a, r) in assign.iter().zip(rows) {
            counts[*a] += 1;
            for (s, v) in sums[*a].iter_mut().zip(r) {
                *s += f64::from(*v);
            }
        }
        for ((c, s), n) in cents.iter_mut().zip(&sums).zip(&counts) {
            if *n > 0 {
                for (cv, sv) in c.iter_mut().zip(s) {
                    *cv = (*sv / *n as f64) as f32;
                }
            }
        }
    }
    let dists: Vec<f64> = assign
        .iter()
        .zip(rows)
        .map(|(a, r)| f64::from(d2(r, &cents[*a]).sqrt()))
        .collect();
    let n = dists.len() as f64;
    let mean = dists.iter().sum::<f64>() / n;
    let var = dists.iter().map(|d| (d - mean) * (d - mean)).sum::<f64>() / n;
    (mean as f32, var.sqrt() as f32)
}
