//! Shot-boundary detection: hard cuts (flashes rejected) and gradual transitions.
//!
//! Input: one embedding row per decoded frame, every frame, in presentation order. The
//! defaults are calibrated for the weight-free pixel embedder of `reelsmith-embed` compared
//! with [`Metric::L1`] (its rows are laid out so that L1 is a weighted mean absolute
//! difference of small luma/chroma thumbnails, in `[0, 1]`); other embedders need their own
//! thresholds.
//!
//! # Hard cuts
//! With `d(i) = dist(i − 1, i)`:
//! 1. **Flash rejection.** A cut changes the content for good; a flash, an explosion or a
//!    passing occluder comes back. The cut strength is
//!    `e(i) = min dist(i − 1 − a, i + b)` over `a, b < flash_window` (≈ 0.2 s): the distance
//!    across the boundary however the comparison frames are chosen. A flash lasting fewer
//!    than `flash_window` frames has a pair of frames on both sides that match.
//! 2. **Adaptive threshold.** `ratio(i) = e(i) / (mean of d over the ±cut_window neighbours,
//!    largest dropped, + ratio_floor)`; a cut needs `ratio ≥ cut_ratio` and
//!    `e ≥ cut_min`. Fast motion raises the neighbours too, so it does not pass. This is the
//!    rule of PySceneDetect's `AdaptiveDetector` (its default ratio 3 and window 2 are kept
//!    here as 3 and 3), made robust by the flash-free strength and the dropped maximum
//!    (two cuts close together do not hide each other).
//! 3. **Minimum shot length** (≈ 0.25 s): when two cuts are closer, the stronger is kept.
//!
//! # Gradual transitions (fades, dissolves)
//! No single frame difference is large, so windows `[a, b]` at strides from ≈ 0.2 s to
//! ≈ 2.5 s (growing ×1.5) are tested:
//! - `D = dist(a, b) ≥ gradual_min` and no hard cut inside;
//! - the change is spread out: no single `d` inside exceeds `gradual_spread · D`;
//! - it is an event, not sustained motion: `D ≥ gradual_contrast ·` the change over the
//!   half-stride context before `a` and after `b` (a pan changes as much there);
//! - it is a blend: each inner frame is close to `(1 − t)·row(a) + t·row(b)` for its best
//!   `t ∈ [0, 1]`; the mean residual relative to `D` must be at most `gradual_linearity`
//!   (a dissolve or fade is exactly such a blend, moving content is not);
//! - `score = (D − context) · (1 − residual) ≥ gradual_min_score`.
//!
//! Windows are taken best score first without overlap; the reported span is trimmed to
//! where the blend position passes 5 % and 95 %. Defaults were chosen on real shots of
//! the shared clips mixed into synthetic dissolves and fades (`benches/shots_eval.py`), not
//! on the clips' transitions.
//!
//! Cost: O(n · flash_window²) distances for cut candidates only, O(n · strides) distances
//! for gradual windows (pruned by the triangle inequality under L1/Euclidean).

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
use crate::seams::ArgMax;
use reelsmith_core::Embeddings;

/// Options of [`detect_shots`]. Build them with [`ShotOptions::for_fps`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShotOptions {
    /// Row comparison (default [`Metric::L1`]).
    pub metric: Metric,
    /// Minimum shot length in frames (default 0.25 s).
    pub min_shot_len: usize,
    /// Neighbours on each side for the adaptive baseline (default 3).
    pub cut_window: usize,
    /// Strength over baseline needed for a cut (default 3, as PySceneDetect's adaptive rule).
    pub cut_ratio: f32,
    /// Absolute minimum cut strength (default 0.03 on the pixel embedder's L1 scale: a 3 %
    /// mean change, below noise-free static content's ≈ 0.005 and well below real cuts).
    pub cut_min: f32,
    /// Added to the baseline so that static shots do not blow the ratio up (default 0.004,
    /// about the compression noise of still content).
    pub ratio_floor: f32,
    /// Frames on each side compared for flash rejection (default 0.2 s, at least 3).
    pub flash_window: usize,
    /// Whether gradual transitions are detected (default true).
    pub gradual: bool,
    /// Shortest window stride in frames (default 0.2 s, at least 4).
    pub gradual_min_stride: usize,
    /// Longest window stride in frames (default 2.5 s).
    pub gradual_max_stride: usize,
    /// Minimum change across a gradual window (default 0.05).
    pub gradual_min: f32,
    /// Largest single-frame share of the change in a gradual window (default 0.5).
    pub gradual_spread: f32,
    /// Required ratio of the window change to the context change (default 2).
    pub gradual_contrast: f32,
    /// Largest mean relative blend residual (default 0.3).
    pub gradual_linearity: f32,
    /// Minimum gradual score (default 0.045).
    pub gradual_min_score: f32,
}

impl Default for ShotOptions {
    fn default() -> Self {
        Self::for_fps(25.0)
    }
}

impl ShotOptions {
    /// Defaults with durations converted at `fps` (25 when not positive and finite).
    pub fn for_fps(fps: f64) -> Self {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            25.0
        };
        let frames = |s: f64| (s * fps).round().max(1.0) as usize;
        Self {
            metric: Metric::L1,
            min_shot_len: frames(0.25),
            cut_window: 3,
            cut_ratio: 3.0,
            cut_min: 0.03,
            ratio_floor: 0.004,
            flash_window: frames(0.2).max(3),
            gradual: true,
            gradual_min_stride: frames(0.2).max(4),
            gradual_max_stride: frames(2.5).max(4),
            gradual_min: 0.05,
            gradual_spread: 0.5,
            gradual_contrast: 2.0,
            gradual_linearity: 0.3,
            gradual_min_score: 0.045,
        }
    }
}

/// Kind of a shot transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    /// An abrupt change between two consecutive frames.
    Cut,
    /// A fade or dissolve over several frames.
    Gradual,
}

/// One shot transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    /// First frame of the new shot: for a cut the frame after the change, for a gradual
    /// transition the middle of its span.
    pub frame: usize,
    /// Cut or gradual.
    pub kind: TransitionKind,
    /// Inclusive first and last frame of a gradual transition's ramp.
    pub span: Option<(usize, usize)>,
    /// Strength: the flash-free cut strength, or the gradual score (same distance scale).
    pub score: f32,
}

/// A shot as an inclusive frame range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shot {
    /// First frame.
    pub start: usize,
    /// Last frame (inclusive).
    pub end: usize,
}

/// Result of [`detect_shots`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ShotDetection {
    /// Transitions in frame order.
    pub transitions: Vec<Transition>,
    /// Shots covering every frame (none for empty input).
    pub shots: Vec<Shot>,
}

/// A shot-boundary detector over per-frame embeddings, the counterpart of PySceneDetect's
/// `SceneDetector` for whole series: one row per decoded frame in, transitions and shots
/// out. Pipelines take a `&dyn ShotDetector`, so detectors are swappable.
///
/// [`ShotOptions`] is the built-in detector (adaptive hard cuts with flash rejection, and
/// gradual transitions).
///
/// ```
/// use reelsmith_core::Embeddings;
/// use reelsmith_segment::shots::{ShotDetector, ShotOptions};
///
/// let rows: Vec<[f32; 2]> = (0..40).map(|i| if i < 20 { [0.1, 0.0] } else { [0.0, 0.1] }).collect();
/// let detector: &dyn ShotDetector = &ShotOptions::for_fps(25.0);
/// let found = detector.detect(&Embeddings::from_rows(&rows).unwrap());
/// assert_eq!(found.transitions[0].frame, 20);
/// assert_eq!(detector.name(), "adaptive-contrast");
/// ```
pub trait ShotDetector: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> &str;
    /// Transitions and shots of the frames whose embeddings are `emb`.
    fn detect(&self, emb: &Embeddings) -> ShotDetection;
}

impl ShotDetector for ShotOptions {
    fn name(&self) -> &str {
        "adaptive-contrast"
    }

    fn detect(&self, emb: &Embeddings) -> ShotDetection {
        detect_shots(emb, self)
    }
}

/// Detects shot transitions in per-frame embeddings (see the [module docs](self)).
///
/// Empty input gives no shots; one frame gives one shot and no transition; constant input
/// gives one shot. NaN/inf values make the affected distances 0 (no cut there).
pub fn detect_shots(emb: &Embeddings, opts: &ShotOptions) -> ShotDetection {
    let n = emb.len();
    if n == 0 {
        return ShotDetection::default();
    }
    let dist = |i: usize, j: usize| opts.metric.distance(emb.row(i), emb.row(j));
    let d: Vec<f32> = std::iter::once(0.0)
        .chain((1..n).map(|i| dist(i - 1, i)))
        .collect();
    let cuts = hard_cuts(&d, &dist, n, opts);
    let mut transitions: Vec<Transition> = cuts
        .iter()
        .map(|&(frame, score)| Transition {
            frame,
            kind: TransitionKind::Cut,
            span: None,
            score,
        })
        .collect();
    if opts.gradual {
        let cut_frames: Vec<usize> = cuts.iter().map(|c| c.0).collect();
        transitions.extend(gradual(emb, &d, &dist, &cut_frames, opts));
    }
    transitions.sort_by_key(|t| t.frame);
    // Keep shots at least one frame long even if a gradual midpoint meets a cut.
    transitions.dedup_by_key(|t| t.frame);
    transitions.retain(|t| t.frame > 0 && t.frame < n);
    let mut shots = Vec::with_capacity(transitions.len() + 1);
    let mut start = 0;
    for t in &transitions {
        shots.push(Shot {
            start,
            end: t.frame - 1,
        });
        start = t.frame;
    }
    shots.push(Shot { start, end: n - 1 });
    ShotDetection { transitions, shots }
}

fn hard_cuts(
    d: &[f32],
    dist: &dyn Fn(usize, usize) -> f32,
    n: usize,
    o: &ShotOptions,
) -> Vec<(usize, f32)> {
    let k = o.flash_window.max(1);
    let w = o.cut_window.max(1);
    let mut cand: Vec<(usize, f32)> = Vec::new();
    let mut nb: Vec<f32> = Vec::with_capacity(2 * w);
    for i in 1..n {
        if d[i] < o.cut_min {
            continue;
        }
        nb.clear();
        nb.extend(
            (i.saturating_sub(w).max(1)..(i + w + 1).min(n))
                .filter(|&j| j != i)
                .map(|j| d[j]),
        );
        let baseline = if nb.len() > 1 {
            let (sum, max) = nb
                .iter()
                .fold((0f32, f32::NEG_INFINITY), |(s, m), &v| (s + v, m.max(v)));
            (sum - max) / (nb.len() - 1) as f32
        } else {
            nb.first().copied().unwrap_or(0.0)
        };
        let floor = o.ratio_floor.max(f32::MIN_POSITIVE);
        if d[i] < o.cut_ratio * (baseline + floor) {
            continue;
        }
        let mut e = d[i];
        'outer: for a in 0..k.min(i) {
            for b in 0..k.min(n - i) {
                e = e.min(dist(i - 1 - a, i + b));
                if e < o.cut_min {
                    break 'outer;
                }
            }
        }
        if e >= o.cut_min && e >= o.cut_ratio * (baseline + floor) {
            cand.push((i, e));
        }
    }
    cand.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    let min_len = o.min_shot_len.max(1);
    let mut kept = std::collections::BTreeMap::new();
    for (i, e) in cand {
        let p = kept
            .range(..i)
            .next_back()
            .is_none_or(|(&p, _)| i - p >= min_len);
        let q = kept
            .range(i..)
            .next()
            .is_none_or(|(&q, _)| q - i >= min_len);
        if p && q {
            kept.insert(i, e);
        }
    }
    kept.into_iter().collect()
}

fn gradual(
    emb: &Embeddings,
    d: &[f32],
    dist: &dyn Fn(usize, usize) -> f32,
    cuts: &[usize],
    o: &ShotOptions,
) -> Vec<Transition> {
    let n = d.len();
    let mut pre = vec![0f64; n + 1];
    for i in 0..n {
        pre[i + 1] = pre[i] + f64::from(d[i]);
    }
    // path(a, b) = Σ d over (a, b]
    let path = |a: usize, b: usize| (pre[b + 1] - pre[a + 1]) as f32;
    let mut cut_count = vec![0u32; n + 1];
    for &c in cuts {
        if c < n {
            cut_count[c + 1] += 1;
        }
    }
    for i in 0..n {
        cut_count[i + 1] += cut_count[i];
    }
    let triangle = matches!(o.metric, Metric::L1 | Metric::Euclidean);
    let argmax = ArgMax::new(d);
    let mut strides = Vec::new();
    let mut s = o.gradual_min_stride.max(2);
    while s <= o.gradual_max_stride && s < n {
        strides.push(s);
        s = ((s as f64 * 1.5).round() as usize).max(s + 1);
    }
    let mut cand: Vec<(f32, usize, usize)> = Vec::new();
    for &s in &strides {
        let cx = (s / 2).max(3);
        for b in s..n {
            let a = b - s;
            if triangle && path(a, b) < o.gradual_min {
                continue;
            }
            if cut_count[b + 1] - cut_count[a + 1] > 0 {
                continue;
            }
            let dab = dist(a, b);
            if dab < o.gradual_min || !dab.is_finite() {
                continue;
            }
            if d[argmax.argmax(a + 1, b)] > o.gradual_spread * dab {
                continue;
            }
            let ctx = dist(a.saturating_sub(cx), a).max(dist(b, (b + cx).min(n - 1)));
            if dab < o.gradual_contrast * ctx {
                continue;
            }
            let rho = blend_residual(emb, a, b, dab, o.metric);
            if rho > o.gradual_linearity {
                continue;
            }
            let score = (dab - ctx) * (1.0 - rho);
            if score >= o.gradual_min_score {
                cand.push((score, a, b));
            }
        }
    }
    cand.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let mut kept: Vec<(f32, usize, usize)> = Vec::new();
    for (score, a, b) in cand {
        let free = kept.iter().all(|&(_, ga, gb)| b < ga || a > gb)
            && cuts
                .iter()
                .all(|&c| a.abs_diff(c) >= 2 && b.abs_diff(c) >= 2);
        if free {
            kept.push((score, a, b));
        }
    }
    kept.into_iter()
        .map(|(score, a, b)| {
            let (lo, hi) = ramp(emb, a, b);
            Transition {
                frame: (lo + hi).div_ceil(2),
                kind: TransitionKind::Gradual,
                span: Some((lo, hi)),
                score,
            }
        })
        .collect()
}

/// The line from row `a` to row `b`: each row's blend position `t` along it.
struct BlendAxis<'a> {
    emb: &'a Embeddings,
    a: usize,
    diff: Vec<f32>,
    nn: f32,
}

impl<'a> BlendAxis<'a> {
    /// `None` when rows `a` and `b` coincide or are not finite.
    fn new(emb: &'a Embeddings, a: usize, b: usize) -> Option<Self> {
        let diff: Vec<f32> = emb
            .row(b)
            .iter()
            .zip(emb.row(a))
            .map(|(x, y)| x - y)
            .collect();
        let nn: f32 = diff.iter().map(|v| v * v).sum();
        (nn > 0.0 && nn.is_finite()).then_some(Self { emb, a, diff, nn })
    }

    /// Least-squares blend position of row `m` (unclamped).
    fn t(&self, m: usize) -> f32 {
        let ra = self.emb.row(self.a);
        self.emb
            .row(m)
            .iter()
            .zip(ra)
            .zip(&self.diff)
            .map(|((x, y), z)| (x - y) * z)
            .sum::<f32>()
            / self.nn
    }
}

/// Trims a gradual window `[a, b]` to its ramp: the span runs from the frame before the
/// first blend position `t > 0.05` to the frame after the last `t < 0.95`. Still frames
/// inside the window sit at `t ≈ 0` or `t ≈ 1` and are left out.
fn ramp(emb: &Embeddings, a: usize, b: usize) -> (usize, usize) {
    let Some(axis) = BlendAxis::new(emb, a, b) else {
        return (a, b);
    };
    let lo = (a..=b).find(|&m| axis.t(m) > 0.05).unwrap_or(a);
    let hi = (a..=b).rev().find(|&m| axis.t(m) < 0.95).unwrap_or(b);
    let lo = lo.saturating_sub(1).max(a);
    let hi = (hi + 1).min(b).max(lo);
    (lo, hi)
}

/// Mean over the inner frames of `[a, b]` of the distance to the best blend of rows `a` and
/// `b`, relative to `dab`.
fn blend_residual(emb: &Embeddings, a: usize, b: usize, dab: f32, metric: Metric) -> f32 {
    let Some(axis) = BlendAxis::new(emb, a, b) else {
        return 0.0;
    };
    if b <= a + 1 {
        return 0.0;
    }
    let ra = emb.row(a);
    let mut blend = vec![0f32; axis.diff.len()];
    let mut total = 0f32;
    for m in a + 1..b {
        let t = axis.t(m).clamp(0.0, 1.0);
        for ((bl, y), z) in blend.iter_mut().zip(ra).zip(&axis.diff) {
            *bl = y + t * z;
        }
        total += metric.distance(emb.row(m), &blend);
    }
    let r = total / (b - a - 1) as f32 / dab;
    if r.is_finite() {
        r
    } else {
        f32::INFINITY
    }
}
