//! Gradual transitions (fades, dissolves): blend windows at several strides, confirmed
//! past the window like the cuts.

use super::{cuts, FrameEmbeddings, ShotOptions, Transition, TransitionKind};
use crate::distance::{lane_sum3, Metric};
use crate::seams::ArgMax;
use rayon::prelude::*;
use reelsmith_core::Embeddings;

/// The gradual windows of one video: what the tests of every window share, built once
/// for both passes ([`Scan::gradual`], then [`Scan::beside`] the blends that survive the
/// motion test).
pub(super) struct Scan<'a> {
    emb: &'a Embeddings,
    d: &'a [f32],
    dist: &'a (dyn Fn(usize, usize) -> f32 + Sync),
    cuts: &'a [usize],
    o: &'a ShotOptions,
    /// Prefix sums of `d`: `path(a, b) = Σ d over (a, b]`.
    pre: Vec<f64>,
    /// Cuts at or before each frame (prefix counts, shifted by one).
    cut_count: Vec<u32>,
    /// Flat frames (black, white): a fade ends on one, and what follows it (a fade-in, a
    /// cut) is another event, not a continuing change (see the context test).
    flat: Vec<bool>,
    shots: ShotBounds,
    triangle: bool,
    argmax: ArgMax<'a>,
    strides: Vec<usize>,
}

impl<'a> Scan<'a> {
    pub(super) fn new(
        emb: &'a Embeddings,
        d: &'a [f32],
        dist: &'a (dyn Fn(usize, usize) -> f32 + Sync),
        cuts: &'a [usize],
        o: &'a ShotOptions,
    ) -> Self {
        let n = d.len();
        let mut pre = vec![0f64; n + 1];
        for i in 0..n {
            pre[i + 1] = pre[i] + f64::from(d[i]);
        }
        let mut cut_count = vec![0u32; n + 1];
        for &c in cuts {
            if c < n {
                cut_count[c + 1] += 1;
            }
        }
        for i in 0..n {
            cut_count[i + 1] += cut_count[i];
        }
        let flat: Vec<bool> = (0..n).map(|i| cuts::is_flat(emb.row(i))).collect();
        let mut strides = Vec::new();
        let mut s = o.gradual_min_stride.max(2);
        while s <= o.gradual_max_stride && s < n {
            strides.push(s);
            s = ((s as f64 * 1.5).round() as usize).max(s + 1);
        }
        Self {
            emb,
            d,
            dist,
            cuts,
            o,
            pre,
            cut_count,
            flat,
            shots: ShotBounds::new(n, cuts),
            triangle: matches!(o.metric, Metric::L1 | Metric::Euclidean),
            argmax: ArgMax::new(d),
            strides,
        }
    }

    /// The blends found: windows of every stride that pass the tests, the best first,
    /// none overlapping another, each confirmed past its ends.
    pub(super) fn gradual(&self) -> Vec<Transition> {
        let n = self.d.len();
        // Each stride's windows are tested independently, side by side; the candidates
        // are gathered in stride order, as one pass over the strides would find them. The
        // confirmation (`lasts`, O(confirm_window²) distances) is left to the selection,
        // which asks it only of the windows it would keep.
        let per_stride: Vec<Vec<Window>> = self
            .strides
            .par_iter()
            .map(|&s| (s..n).filter_map(|b| self.judge(b - s, b, s, 0)).collect())
            .collect();
        let kept = self.select(per_stride.into_iter().flatten().collect(), Vec::new());
        kept.into_iter().map(|k| self.transition(k)).collect()
    }

    /// Blends that follow the blends `found` (the gradual transitions kept after
    /// [`Scan::gradual`] and the motion test) back to back: the change just before a
    /// window that starts a few frames after another blend ends is that blend's, which
    /// fails the window as motion that carries on. Here the context before is taken only
    /// from the end of the blend found before, and the windows it bounds within `cx` are
    /// judged again, when they turn away from that blend (see [`turns`]: one blend found
    /// short is not two). The context after keeps its whole length, so motion that
    /// carries on past the window still fails it. (Bounding the context after by a blend
    /// found after the window too found two more blends and three false ones over the
    /// corpora: motion or a tail just before a blend.) Returns the new blends only.
    pub(super) fn beside(&self, found: &[Transition]) -> Vec<Transition> {
        let n = self.d.len();
        let spans: Vec<(usize, usize)> = found.iter().filter_map(|t| t.span).collect();
        if spans.is_empty() {
            return Vec::new();
        }
        let dist = self.dist;
        let kept: Vec<(f32, usize, usize)> = spans.iter().map(|&(lo, hi)| (0.0, lo, hi)).collect();
        // Looked up by binary search (a long film has thousands of transitions): the spans
        // by their end (stable, so that of two ending together the later found counts, as
        // a scan for the last greatest end would take it), the least start from each on,
        // and the cuts in order.
        let mut by_end = spans.clone();
        by_end.sort_by_key(|s| s.1);
        let mut least_start = vec![usize::MAX; by_end.len() + 1];
        for k in (0..by_end.len()).rev() {
            least_start[k] = least_start[k + 1].min(by_end[k].0);
        }
        let mut cuts = self.cuts.to_vec();
        cuts.sort_unstable();
        // Whether a cut lies within one frame of `x`.
        let near_cut = |x: usize| {
            let k = cuts.partition_point(|&c| c + 1 < x);
            cuts.get(k).is_some_and(|&c| c <= x + 1)
        };
        // Each stride's windows that start less than `cx` after a span's end, that span
        // being the last to end before them; gathered by end frame, as a scan over every
        // window of the stride would find them.
        let per_stride: Vec<Vec<Window>> = self
            .strides
            .par_iter()
            .map(|&s| {
                let cx = (s / 2).max(3);
                let mut out = Vec::new();
                for (k, &(lo, hi)) in by_end.iter().enumerate() {
                    for a in hi..(hi + cx).min(n.saturating_sub(s)) {
                        let b = a + s;
                        // The spans ending at or before `a` are `by_end[..j]`: span `k` must
                        // be the last of them, and none of the spans after them may start
                        // before `b` (the `free` test against every span), nor a cut lie
                        // within a frame of either end.
                        let j = by_end.partition_point(|e| e.1 <= a);
                        if j != k + 1
                            || least_start[j] < b
                            || near_cut(a)
                            || near_cut(b)
                            || !turns(dist, lo, hi, a, b)
                        {
                            continue;
                        }
                        out.extend(self.judge(a, b, s, hi));
                    }
                }
                out
            })
            .collect();
        let all = self.select(per_stride.into_iter().flatten().collect(), kept);
        all.into_iter()
            .skip(spans.len())
            .map(|k| self.transition(k))
            .collect()
    }

    /// The transition of a kept window: its span trimmed to the ramp.
    fn transition(&self, (score, a, b): (f32, usize, usize)) -> Transition {
        ramped(self.emb, a, b, score)
    }

    /// Chooses among candidate windows: ordinary windows first, best score first; then the
    /// dipped ones (see [`DIP_VARIANCE`]). A window is kept when it overlaps none kept
    /// before it (`kept` to start with) and lasts; one that does not last blocks nothing,
    /// so asking only the free ones gives what confirming every window first would.
    fn select(
        &self,
        mut cand: Vec<Window>,
        mut kept: Vec<(f32, usize, usize)>,
    ) -> Vec<(f32, usize, usize)> {
        cand.sort_by(|x, y| {
            x.dipped
                .cmp(&y.dipped)
                .then(y.score.total_cmp(&x.score))
                .then(x.a.cmp(&y.a))
        });
        for Window {
            score, a, b, dab, ..
        } in cand
        {
            if free(&kept, self.cuts, a, b)
                && lasts(self.emb, self.dist, a, b, &self.shots, dab, self.o)
            {
                kept.push((score, a, b));
            }
        }
        kept
    }

    /// The tests of one window `[a, b]` of stride `s`, whose context before may reach back
    /// to frame `from` (0 in the first pass, the end of the blend found before it in the
    /// second): the window with its score, or `None`. The tests are pure: the cheap ones
    /// come first.
    fn judge(&self, a: usize, b: usize, s: usize, from: usize) -> Option<Window> {
        let (emb, d, dist, o) = (self.emb, self.d, self.dist, self.o);
        let (flat, cut_count, argmax, triangle) =
            (&self.flat, &self.cut_count, &self.argmax, self.triangle);
        let n = d.len();
        let path = |a: usize, b: usize| (self.pre[b + 1] - self.pre[a + 1]) as f32;
        let cx = (s / 2).max(3);
        // A window that starts or ends on a flat frame is a fade: it needs only
        // FADE_SHARE of the change and score of a dissolve (see `FADE_SHARE`).
        let (least, least_score) = if flat[a] || flat[b] {
            (o.gradual_min * FADE_SHARE, o.gradual_min_score * FADE_SHARE)
        } else {
            (o.gradual_min, o.gradual_min_score)
        };
        if triangle && path(a, b) < least {
            return None;
        }
        if cut_count[b + 1] - cut_count[a + 1] > 0 {
            return None;
        }
        let dab = dist(a, b);
        if dab < least || !dab.is_finite() {
            return None;
        }
        if d[argmax.argmax(a + 1, b)] > o.gradual_spread * dab {
            return None;
        }
        // The change just outside the window; not looked for past a flat end (a fade
        // out to black followed closely by a fade in is two transitions).
        // Next to the video's first or last frame fewer than `cx` frames may be
        // there to look at; too few, and the window is not judged (see
        // `EDGE_CONTEXT_SHARE`).
        // A fade's moving side (the other end flat) is judged by its stillest
        // frames when no cut lies there (see `still_context`).
        let side = |lo: usize, hi: usize, fade: bool| {
            let c = dist(lo, hi);
            if fade && cut_count[hi + 1] == cut_count[lo + 1] {
                c.min(still_context(&d[lo + 1..=hi]))
            } else {
                c
            }
        };
        // A context before that a blend found before bounds within `cx` (see
        // `from`) is taken up to that blend's end: all of its frames, however
        // few; none at all when the two touch.
        let before = if flat[a] {
            Some(0.0)
        } else if from > 0 && a - from < cx {
            let k = a - from;
            Some(if k == 0 { 0.0 } else { side(a - k, a, flat[b]) })
        } else {
            let k = cx.min(a);
            enough_context(k, cx).then(|| side(a - k, a, flat[b]))
        };
        let after = if flat[b] {
            Some(0.0)
        } else {
            let k = cx.min(n - 1 - b);
            enough_context(k, cx).then(|| side(b, b + k, flat[a]))
        };
        let (Some(before), Some(after)) = (before, after) else {
            return None;
        };
        // The tests are pure: the cheap ones come first.
        if o.gradual_extent > 0.0 && change_extent(emb.row(a), emb.row(b)) < o.gradual_extent {
            return None;
        }
        // A window that changes less than `gradual_contrast` times its context may
        // still be a dissolve between moving shots, when its middle frame has the
        // low contrast of a blend (see `DIP_VARIANCE`): it is then judged without
        // the context, by a closer fit to a blend, and taken only where no
        // ordinary window lies.
        let mut ctx = before.max(after);
        let dipped = dab < o.gradual_contrast * ctx;
        if dipped {
            if !blend_dips(emb, a, b) {
                return None;
            }
            ctx = 0.0;
        }
        let linearity = if dipped { DIP_LINEARITY } else { 1.0 };
        let limit = o.gradual_linearity * linearity;
        let rho = blend_residual_within(emb, a, b, dab, o.metric, limit)?;
        if holds_midway(emb, dist, a, b, dab) {
            return None;
        }
        let score = (dab - ctx) * (1.0 - rho);
        if score < least_score {
            return None;
        }
        Some(Window {
            dipped,
            score,
            a,
            b,
            dab,
        })
    }
}

/// Whether the blend `[a, b]` followed by the blend `[c, d]` (`b ≤ c`) turns: some frame
/// between them detours [`SPLIT_DETOUR`] or more on the way from `a` to `d` (two
/// transitions, A → B → C), rather than lying near one line from `a` to `d` (one blend
/// found in two pieces).
fn turns(dist: &dyn Fn(usize, usize) -> f32, a: usize, b: usize, c: usize, d: usize) -> bool {
    let ad = dist(a, d);
    if !(ad > 0.0 && ad.is_finite()) {
        return false;
    }
    (b..=c).any(|m| (dist(a, m) + dist(m, d)) / ad >= SPLIT_DETOUR)
}

/// Whether the window `[a, b]` overlaps none of the windows `kept` and lies at least two
/// frames from every cut.
fn free(kept: &[(f32, usize, usize)], cuts: &[usize], a: usize, b: usize) -> bool {
    kept.iter().all(|&(_, ga, gb)| b <= ga || a >= gb)
        && cuts
            .iter()
            .all(|&c| a.abs_diff(c) >= 2 && b.abs_diff(c) >= 2)
}

/// A gradual window that passed every test but the confirmation.
struct Window {
    /// Judged by its dip rather than its context (see [`DIP_VARIANCE`]).
    dipped: bool,
    score: f32,
    a: usize,
    b: usize,
    /// The change from its first frame to its last.
    dab: f32,
}

/// Least share of a gradual window's context (`cx` frames on each side) that the video
/// must hold next to a side that is not flat: a window closer than this to the video's
/// first or last frame is not reported. The context is the change just outside the
/// window, which tells a blend from motion that carries on; a clip that starts or ends
/// in the middle of a movement (an object rising into the picture, a pan) shows only its
/// first or last frames, whose change understates the motion (none at all at the very
/// first or last frame). A fade from or to black at a video's start or end keeps its flat
/// side and is found.
const EDGE_CONTEXT_SHARE: f32 = 0.5;

/// The context of a fade's moving side from its frame changes `d` (the `k` just outside
/// the window): `k` times the smallest of them. A fade that starts a few frames after a
/// dissolve ends (or ends just before one starts) has that dissolve in its context, whose
/// change, not the shot's own motion, would then fail the fade; motion that carries on
/// into the fade changes every frame, still frames between two transitions do not. The
/// flat end is the fade's evidence; a cut in the context keeps the whole change (the new
/// shot's first frames next to a fade's window would otherwise merge the cut into it).
fn still_context(d: &[f32]) -> f32 {
    d.len() as f32 * d.iter().copied().fold(f32::INFINITY, f32::min)
}

/// Whether the `k` frames that the video holds just outside a gradual window (at most
/// `cx`, the context's length) are enough to judge it by: at least
/// [`EDGE_CONTEXT_SHARE`] of `cx`, and at least one.
fn enough_context(k: usize, cx: usize) -> bool {
    k > 0 && k as f32 >= EDGE_CONTEXT_SHARE * cx as f32
}

/// Largest share of the luma variance that motion would give at a window's middle (the
/// two ends' variances, mixed by the blend position) which the middle frame may have
/// for the window to dip like a blend. Blending two unrelated pictures halves the
/// variance at the middle, (σa² + σb²) / 4 against (σa² + σb²) / 2, whatever moves in
/// them; a shot that moves keeps its contrast. The dissolves into and out of
/// `F-spliced-3`'s moving shot (docs/shots.md, ninth round): 0.55–0.57; a motion-blurred
/// whip pan dipped to 0.44 (see [`DIP_LINEARITY`]).
const DIP_VARIANCE: f32 = 0.6;

/// Largest correlation of the two ends' luma grids for [`DIP_VARIANCE`] to apply: the
/// dip is that of unrelated pictures (at 0.5 the expected dip is only to 0.75).
const DIP_CORRELATION: f32 = 0.5;

/// Share of `gradual_linearity` that a window judged by its dip (not its context) may
/// have as blend residual. Motion blur dips too (a whip pan's blurred frames); the
/// dissolves between moving shots fit a blend at 0.12–0.17 and the one whip pan that
/// dipped at 0.29.
const DIP_LINEARITY: f32 = 2.0 / 3.0;

/// Whether the window `[a, b]` dips like a blend of two unrelated pictures: the ends'
/// luma grids correlate at most [`DIP_CORRELATION`], and the inner frame whose blend
/// position is nearest one half (within 0.25 of it) has at most [`DIP_VARIANCE`] of
/// the luma variance that the ends' variances, mixed at that position, give.
fn blend_dips(emb: &Embeddings, a: usize, b: usize) -> bool {
    if b < a + 2 {
        return false;
    }
    let Some(axis) = BlendAxis::new(emb, a, b) else {
        return false;
    };
    let centred = |i: usize| -> Vec<f32> {
        let y = cuts::luma_grid(emb.row(i));
        let mean = y.iter().sum::<f32>() / y.len().max(1) as f32;
        y.iter().map(|v| v - mean).collect()
    };
    let mean_product = |x: &[f32], y: &[f32]| -> f32 {
        x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>() / x.len().max(1) as f32
    };
    let (ya, yb) = (centred(a), centred(b));
    let (va, vb) = (mean_product(&ya, &ya), mean_product(&yb, &yb));
    let corr = mean_product(&ya, &yb) / (va * vb).sqrt();
    if !(corr.is_finite() && corr <= DIP_CORRELATION) {
        return false;
    }
    let Some((m, t)) = (a + 1..b)
        .map(|m| (m, axis.t(m)))
        .min_by(|x, y| (x.1 - 0.5).abs().total_cmp(&(y.1 - 0.5).abs()))
    else {
        return false;
    };
    if (t - 0.5).abs() > 0.25 {
        return false;
    }
    let ym = centred(m);
    mean_product(&ym, &ym) <= DIP_VARIANCE * ((1.0 - t) * va + t * vb)
}

/// Share of `gradual_min` (the least change of a gradual window) and of
/// `gradual_min_score` that a fade needs: a window starting or ending on a flat frame
/// (black, white). A dark shot (night, a dim room) fading to black changes the picture
/// less than `gradual_min` although the fade is plain to see; the flat end is evidence a
/// moving or dimming shot does not give, and the window must still pass every other test
/// (context, blend residual, confirmation).
const FADE_SHARE: f32 = 0.4;

/// A grid cell whose luma is below this share of the full range in both frames is dark
/// (a letterbox or pillarbox bar, a black background) and left out of
/// [`change_extent`].
const DARK: f32 = 0.06;

/// A cell counts as changed when its change reaches this share of the mean change.
const CHANGED_SHARE: f32 = 0.25;

/// Share of the picture that changes from row `ra` to row `rb`: of the luma grid's cells
/// (the first third of a row whose width is a multiple of 3, as the pixel embedder lays
/// it out; the whole row otherwise), those not dark in both rows (see [`DARK`]), the
/// share whose absolute change reaches [`CHANGED_SHARE`] of their mean absolute change.
/// 1 when nothing changes or nothing is left (no evidence of a partial change).
pub(super) fn change_extent(ra: &[f32], rb: &[f32]) -> f32 {
    let luma = |r: &[f32]| -> usize {
        if r.len().is_multiple_of(3) && !r.is_empty() {
            r.len() / 3
        } else {
            r.len()
        }
    };
    let m = luma(ra).min(luma(rb));
    // Pixel-embedder luma cells hold Y · 0.5 / cells.
    let dark = DARK * 0.5 / m.max(1) as f32;
    let changes: Vec<f32> = ra[..m]
        .iter()
        .zip(&rb[..m])
        .filter(|(x, y)| !(**x < dark && **y < dark))
        .map(|(x, y)| (x - y).abs())
        .filter(|c| c.is_finite())
        .collect();
    if changes.is_empty() {
        return 1.0;
    }
    let mean = changes.iter().sum::<f32>() / changes.len() as f32;
    if mean <= 0.0 {
        return 1.0;
    }
    let need = CHANGED_SHARE * mean;
    changes.iter().filter(|&&c| c >= need).count() as f32 / changes.len() as f32
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
        lane_sum3(self.emb.row(m), ra, &self.diff, |x, y, z| (x - y) * z) / self.nn
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

/// The gradual transition of the blend window `[a, b]` with `score`: its span trimmed to
/// the ramp (see [`ramp`]), its frame the span's middle.
fn ramped(emb: &Embeddings, a: usize, b: usize, score: f32) -> Transition {
    let (lo, hi) = ramp(emb, a, b);
    Transition {
        frame: (lo + hi).div_ceil(2),
        kind: TransitionKind::Gradual,
        span: Some((lo, hi)),
        score,
    }
}

/// A blend moves every frame; a window that holds still for this many frames or more
/// midway (the middle shot of A → B → C, or a shot between a dissolve and a fade) is two
/// transitions, each found by a shorter window.
const HOLD_FRAMES: usize = 4;

/// How little the blend position may move over [`HOLD_FRAMES`] frames for them to hold
/// still (a linear dissolve of 60 frames moves it by 0.05 over 4 frames).
const HOLD_MOVE: f32 = 0.02;

/// A still stretch is "midway" when the picture changes by at least this share of the
/// window's change both before and after it (the still ends of a window do not count).
const HOLD_MIDWAY: f32 = 0.15;

/// Whether the inner frames of `[a, b]` hold still midway: a run of [`HOLD_FRAMES`]
/// frames whose blend positions along the line from row `a` to row `b` lie within
/// [`HOLD_MOVE`] of each other, with the picture changing by [`HOLD_MIDWAY`] of
/// `dab = dist(a, b)` or more from `a` to the run and from the run to `b`.
fn holds_midway(
    emb: &Embeddings,
    dist: &dyn Fn(usize, usize) -> f32,
    a: usize,
    b: usize,
    dab: f32,
) -> bool {
    if b < a + HOLD_FRAMES + 1 {
        return false;
    }
    let Some(axis) = BlendAxis::new(emb, a, b) else {
        return false;
    };
    let t: Vec<f32> = (a + 1..b).map(|m| axis.t(m)).collect();
    t.windows(HOLD_FRAMES).enumerate().any(|(k, w)| {
        let (lo, hi) = w
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        let (m, e) = (a + 1 + k, a + k + HOLD_FRAMES);
        hi - lo <= HOLD_MOVE && dist(a, m) >= HOLD_MIDWAY * dab && dist(e, b) >= HOLD_MIDWAY * dab
    })
}

/// Mean over the inner frames of `[a, b]` of the distance to the best blend of rows `a` and
/// `b`, relative to `dab`.
fn blend_residual(emb: &Embeddings, a: usize, b: usize, dab: f32, metric: Metric) -> f32 {
    blend_residual_within(emb, a, b, dab, metric, f32::INFINITY).unwrap_or(f32::INFINITY)
}

/// [`blend_residual`] when it is at most `limit`; `None` when it is over (given up as
/// soon as the frames summed so far put it over: the distances are never negative, so
/// the rest can only add to it) or not finite.
fn blend_residual_within(
    emb: &Embeddings,
    a: usize,
    b: usize,
    dab: f32,
    metric: Metric,
    limit: f32,
) -> Option<f32> {
    let Some(axis) = BlendAxis::new(emb, a, b) else {
        return (0.0 <= limit).then_some(0.0);
    };
    if b <= a + 1 {
        return (0.0 <= limit).then_some(0.0);
    }
    let ra = emb.row(a);
    let inner = (b - a - 1) as f32;
    let mut blend = vec![0f32; axis.diff.len()];
    let mut total = 0f32;
    for m in a + 1..b {
        let t = axis.t(m).clamp(0.0, 1.0);
        for ((bl, y), z) in blend.iter_mut().zip(ra).zip(&axis.diff) {
            *bl = y + t * z;
        }
        total += metric.distance(emb.row(m), &blend);
        if total / inner / dab > limit {
            return None;
        }
    }
    let r = total / inner / dab;
    (r.is_finite() && r <= limit).then_some(r)
}

/// The shot holding each frame, as cut by the hard cuts found: the confirmation of a
/// gradual window looks only at the shots next to it. Frames past a cut show another
/// shot, which may look like the picture the window blends to (a cut away and a
/// dissolve back to the same scene, two shots of one place) and would make the window
/// look like a disturbance that comes back.
struct ShotBounds {
    /// First frame of the shot holding each frame (the last cut at or before it).
    first: Vec<usize>,
    /// Last frame of the shot holding each frame (the frame before the next cut after
    /// it).
    last: Vec<usize>,
}

impl ShotBounds {
    /// Shots of `n` frames cut at `cuts` (first frames of new shots).
    fn new(n: usize, cuts: &[usize]) -> Self {
        let mut is_cut = vec![false; n];
        for &c in cuts.iter().filter(|&&c| c < n) {
            is_cut[c] = true;
        }
        let mut first = vec![0; n];
        let mut start = 0;
        for (i, f) in first.iter_mut().enumerate() {
            if is_cut[i] {
                start = i;
            }
            *f = start;
        }
        let mut last = vec![0; n];
        let mut end = n.saturating_sub(1);
        for i in (0..n).rev() {
            last[i] = end;
            if is_cut[i] && i > 0 {
                end = i - 1;
            }
        }
        Self { first, last }
    }
}

/// Confirmation of a gradual window `[a, b]`: frames up to `confirm_window` before `a` and
/// after `b`, within the shots next to the window (see [`ShotBounds`]), must still differ
/// by `confirm_ratio` of the window's change (a passing shadow, a slow flash or an
/// occluder comes back; a dissolve does not), and by more than lighting (a lamp dimmed is
/// not a fade; a fade reaches a flat black or white frame within `confirm_window`).
fn lasts(
    emb: &Embeddings,
    dist: &dyn Fn(usize, usize) -> f32,
    a: usize,
    b: usize,
    shots: &ShotBounds,
    dab: f32,
    o: &ShotOptions,
) -> bool {
    if o.confirm_ratio <= 0.0 {
        return true;
    }
    let n = emb.len();
    let l = o.confirm_window;
    let need = o.cut_min.max(o.confirm_ratio * dab);
    let (first, last) = (
        a.saturating_sub(l).max(shots.first[a]),
        (b + l).min(shots.last[b]),
    );
    for p in first..=a {
        for q in b..=last {
            if dist(p, q) < need {
                return false;
            }
        }
    }
    if o.relight_max <= 0.0 {
        return true;
    }
    // A fade reaches a flat frame (black, white): a transition even though the pictures on
    // both sides may share their pattern (a fade-in seen from its middle).
    let around = a.saturating_sub(l)..(b + l + 1).min(n);
    if around.clone().any(|f| cuts::is_flat(emb.row(f))) {
        return true;
    }
    !cuts::relit(emb, first..a + 1, b..last + 1, o.relight_max)
}

/// Whether a cut at frame `c` (first frame of the new picture) near the gradual span
/// `(lo, hi)` is part of that transition: the frames between the cut and the span (none
/// when they touch) lie on the blend from the frame before both to the frame after both
/// (mean relative blend residual at most `gradual_linearity`). A dissolve whose last
/// frames jump to its end gives such frames; a cut into a shot that holds for a moment
/// and then fades out gives frames of another picture.
pub(super) fn cut_belongs(
    emb: &Embeddings,
    c: usize,
    (lo, hi): (usize, usize),
    o: &ShotOptions,
) -> bool {
    let n = emb.len();
    if n == 0 || c == 0 || c >= n {
        return true;
    }
    // (first frame of the blend line, last frame of it, frames between cut and span)
    let (p, q, between) = if c <= lo {
        (c - 1, (hi + 1).min(n - 1), c..lo + 1)
    } else if c > hi {
        (lo.saturating_sub(1), c, hi..c)
    } else {
        return true;
    };
    if between.is_empty() || q <= p {
        return true;
    }
    let Some(axis) = BlendAxis::new(emb, p, q) else {
        return true;
    };
    let dpq = o.metric.distance(emb.row(p), emb.row(q));
    if !(dpq > 0.0 && dpq.is_finite()) {
        return true;
    }
    let rp = emb.row(p);
    let mut blend = vec![0f32; axis.diff.len()];
    let mut total = 0f32;
    let count = between.len();
    for m in between {
        let t = axis.t(m).clamp(0.0, 1.0);
        for ((bl, y), z) in blend.iter_mut().zip(rp).zip(&axis.diff) {
            *bl = y + t * z;
        }
        total += o.metric.distance(emb.row(m), &blend);
    }
    total / count as f32 / dpq <= o.gradual_linearity
}

/// Drops the gradual transitions whose frames before and after the span show the same
/// scene by the semantic model; leaves everything when the embeddings cannot be had.
pub(super) fn semantic_check(
    grads: &mut Vec<Transition>,
    n: usize,
    o: &ShotOptions,
    sem: &mut dyn FrameEmbeddings,
) {
    let sides: Vec<(usize, usize)> = grads
        .iter()
        .map(|g| {
            let (lo, hi) = g.span.unwrap_or((g.frame, g.frame));
            (lo, hi + 1)
        })
        .collect();
    if sides.is_empty() {
        return;
    }
    let Some(same) = cuts::same_scene(&sides, n, o.semantic_same, sem) else {
        return;
    };
    let mut verdicts = same.into_iter();
    grads.retain(|_| !verdicts.next().unwrap_or(false));
}

/// A span whose middle frame detours this much (`(dist(a, m) + dist(m, b)) / dist(a, b)`
/// at least) may be two blends back to back; one blend gives 1 (L1 along a straight line).
const SPLIT_DETOUR: f32 = 1.2;

/// Each of the two blends of a split must change at least this share of the whole span's
/// change.
const SPLIT_PART: f32 = 0.25;

/// Each of the two blends of a split must fit at most this share of the whole span's
/// blend residual: two blends back to back are far better fits than one blend over both.
const SPLIT_GAIN: f32 = 0.5;

/// Splits the gradual transitions that are two blends back to back (A → B → C with B
/// shown only a few frames between them, or a fade-in followed closely by a dissolve) into
/// one transition each. For a span `(lo, hi)` with ends `a = lo − 1`, `b = hi + 1`, the
/// inner frame `m` that detours most from `a` to `b` splits it when the detour is at least
/// [`SPLIT_DETOUR`], both `[a, m]` and `[m, b]` change at least [`SPLIT_PART`] of
/// `dist(a, b)` (and `gradual_min`), have inner frames, and are blends with at most
/// [`SPLIT_GAIN`] of the whole span's blend residual. A single dissolve or fade, even with
/// moving content, fits one blend about as well as two and is left whole.
pub(super) fn split_back_to_back(
    emb: &Embeddings,
    grads: Vec<Transition>,
    o: &ShotOptions,
) -> Vec<Transition> {
    let n = emb.len();
    let mut out = Vec::with_capacity(grads.len());
    for g in grads {
        let Some((lo, hi)) = g.span else {
            out.push(g);
            continue;
        };
        let (a, b) = (lo.saturating_sub(1), (hi + 1).min(n.saturating_sub(1)));
        match split_point(emb, a, b, o) {
            Some(m) => {
                for (x, y) in [(a, m), (m, b)] {
                    out.push(ramped(emb, x, y, g.score));
                }
            }
            None => out.push(g),
        }
    }
    out
}

/// Joins the gradual transitions that are one blend found in two pieces: two spans that
/// touch (the second starts at most one frame after the first ends), whose frames at the
/// seam do not detour from the line between the whole's ends (see [`turns`]: no middle
/// picture, as A → B → C has) and whose whole fits one blend (relative residual at most
/// `gradual_linearity`). A fade-out whose first part was found together with a blend
/// before it (and split from it) leaves its end to black as a second window; so may a
/// long dissolve. Two transitions back to back turn at their seam and stay two.
pub(super) fn join_pieces(
    emb: &Embeddings,
    mut grads: Vec<Transition>,
    o: &ShotOptions,
) -> Vec<Transition> {
    let n = emb.len();
    let dist = |i: usize, j: usize| o.metric.distance(emb.row(i), emb.row(j));
    grads.sort_by_key(|g| g.span.map_or(g.frame, |s| s.0));
    let mut out: Vec<Transition> = Vec::with_capacity(grads.len());
    for g in grads {
        if let (Some(prev), Some((lo2, hi2))) = (out.last_mut(), g.span) {
            if let Some((lo1, hi1)) = prev.span {
                let (a, d) = (lo1.saturating_sub(1), (hi2 + 1).min(n.saturating_sub(1)));
                let dad = dist(a, d);
                // (Ends that are one picture, `dad` 0, are no blend: `turns` would not
                // see them turn.)
                if lo2 >= hi1
                    && lo2 <= hi1 + 1
                    && dad > 0.0
                    && !turns(&dist, a, hi1, lo2, d)
                    && blend_residual(emb, a, d, dad, o.metric) <= o.gradual_linearity
                {
                    *prev = ramped(emb, a, d, prev.score.max(g.score));
                    continue;
                }
            }
        }
        out.push(g);
    }
    out
}

/// Where the window `[a, b]` splits into two blends back to back (see
/// [`split_back_to_back`]), if it does.
fn split_point(emb: &Embeddings, a: usize, b: usize, o: &ShotOptions) -> Option<usize> {
    let dist = |i: usize, j: usize| o.metric.distance(emb.row(i), emb.row(j));
    if b < a + 4 {
        return None;
    }
    let dab = dist(a, b);
    if !(dab > 0.0 && dab.is_finite()) {
        return None;
    }
    let (m, detour) = (a + 2..=b - 2)
        .map(|m| (m, (dist(a, m) + dist(m, b)) / dab))
        .max_by(|x, y| x.1.total_cmp(&y.1))?;
    let (d1, d2) = (dist(a, m), dist(m, b));
    let part = (SPLIT_PART * dab).max(o.gradual_min);
    if !(detour >= SPLIT_DETOUR && d1 >= part && d2 >= part) {
        return None;
    }
    let whole = blend_residual(emb, a, b, dab, o.metric);
    let r1 = blend_residual(emb, a, m, d1, o.metric);
    let r2 = blend_residual(emb, m, b, d2, o.metric);
    (r1.max(r2) <= SPLIT_GAIN * whole).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 16 × 9 luma grid of unrelated cell values (seed `k`), as the pixel embedder lays
    /// out a row's first third (chroma cells after it at mid-grey).
    fn grid(k: u32) -> Vec<f32> {
        let cells = 144;
        let mut row = vec![0.25 / cells as f32; 3 * cells];
        for (i, v) in row[..cells].iter_mut().enumerate() {
            let h = (i as u32 + 1).wrapping_mul(2_654_435_761) ^ k.wrapping_mul(40_503);
            *v = (h % 1000) as f32 / 1000.0 * 0.5 / cells as f32;
        }
        row
    }

    fn rows(n: usize, f: impl Fn(usize) -> Vec<f32>) -> Embeddings {
        Embeddings::from_rows(&(0..n).map(f).collect::<Vec<_>>()).unwrap()
    }

    fn mix(x: &[f32], y: &[f32], t: f32) -> Vec<f32> {
        x.iter()
            .zip(y)
            .map(|(p, q)| p * (1.0 - t) + q * t)
            .collect()
    }

    #[test]
    fn a_blend_of_unrelated_pictures_dips_and_motion_or_a_fade_does_not() {
        let (p, q) = (grid(1), grid(2));
        let t = |i: usize| i as f32 / 10.0;
        // A dissolve over 10 frames: the middle has about half the variance.
        assert!(blend_dips(&rows(11, |i| mix(&p, &q, t(i))), 0, 10));
        // A pan: every frame is the picture moved a cell further along its rows, so
        // the two ends are unrelated but the contrast holds.
        let wide = grid(3);
        let view = |i: usize| -> Vec<f32> {
            let mut r = wide.clone();
            r[..144].rotate_left(i);
            r
        };
        assert!(!blend_dips(&rows(11, view), 0, 10));
        // A fade to a dim version of the same picture: its ends are one picture.
        let dim: Vec<f32> = p.iter().map(|v| v * 0.2).collect();
        assert!(!blend_dips(&rows(11, |i| mix(&p, &dim, t(i))), 0, 10));
        // A cut in the middle of the window (no frame near the blend's middle).
        assert!(!blend_dips(
            &rows(11, |i| if i < 5 { p.clone() } else { q.clone() }),
            0,
            10
        ));
    }

    /// The frame changes of `e` under `m` (0 for the first frame), as the detector
    /// computes them for the scan.
    fn scan_parts(e: &Embeddings, m: Metric) -> Vec<f32> {
        std::iter::once(0.0)
            .chain((1..e.len()).map(|i| m.distance(e.row(i - 1), e.row(i))))
            .collect()
    }

    #[test]
    fn a_blend_after_a_blend_found_is_judged_by_the_context_after_it() {
        // Picture p dissolves into q over frames 40..=45, then q into r over 46..=57; r
        // shares half of q (correlated ends: no dip of unrelated pictures to go by).
        let (p, q) = (grid(11), grid(12));
        let r = mix(&q, &grid(13), 0.5);
        let e = rows(120, |i| match i {
            ..40 => p.clone(),
            40..=45 => mix(&p, &q, (i - 39) as f32 / 7.0),
            46..=57 => mix(&q, &r, (i - 45) as f32 / 13.0),
            _ => r.clone(),
        });
        let o = ShotOptions::for_fps(25.0);
        let d = scan_parts(&e, o.metric);
        let dist = |i: usize, j: usize| o.metric.distance(e.row(i), e.row(j));
        let scan = Scan::new(&e, &d, &dist, &[], &o);
        let first = Transition {
            frame: 43,
            kind: TransitionKind::Gradual,
            span: Some((39, 46)),
            score: 0.2,
        };
        // The change just before the second blend is the first one's: with the context
        // before reaching past the first blend's end, the window fails; up to it, it
        // passes.
        assert!(scan.judge(46, 58, 12, 0).is_none());
        assert!(scan.judge(46, 58, 12, 46).is_some());
        let found = scan.beside(std::slice::from_ref(&first));
        assert_eq!(found.len(), 1, "{found:?}");
        let (lo, hi) = found[0].span.unwrap();
        assert!(
            (44..=48).contains(&lo) && (55..=59).contains(&hi),
            "{found:?}"
        );
        // One long dissolve found short is not two blends: the rest lies on its line.
        let long = rows(120, |i| match i {
            ..40 => p.clone(),
            40..=69 => mix(&p, &r, (i - 39) as f32 / 31.0),
            _ => r.clone(),
        });
        let d = scan_parts(&long, o.metric);
        let dist = |i: usize, j: usize| o.metric.distance(long.row(i), long.row(j));
        let scan = Scan::new(&long, &d, &dist, &[], &o);
        let half = Transition {
            span: Some((39, 55)),
            ..first
        };
        assert!(scan.beside(&[half]).is_empty());
    }

    #[test]
    fn one_blend_found_in_two_touching_pieces_is_joined_and_two_blends_are_not() {
        let o = ShotOptions::for_fps(25.0);
        let (p, q) = (grid(21), grid(22));
        let black = vec![0.0; p.len()];
        let piece = |lo: usize, hi: usize| Transition {
            frame: (lo + hi).div_ceil(2),
            kind: TransitionKind::Gradual,
            span: Some((lo, hi)),
            score: 0.1,
        };
        // A fade-out of p over frames 20..=39, found as two pieces, 19-31 and 31-40 (given
        // out of order: they are sorted first).
        let fade = rows(60, |i| match i {
            ..20 => p.clone(),
            20..=39 => mix(&p, &black, (i - 19) as f32 / 21.0),
            _ => black.clone(),
        });
        let joined = join_pieces(&fade, vec![piece(31, 40), piece(19, 31)], &o);
        assert_eq!(joined.len(), 1, "{joined:?}");
        let (lo, hi) = joined[0].span.unwrap();
        assert!(
            (18..=21).contains(&lo) && (38..=41).contains(&hi),
            "{joined:?}"
        );
        // Pieces that do not touch stay apart.
        assert_eq!(
            join_pieces(&fade, vec![piece(19, 28), piece(31, 40)], &o).len(),
            2
        );
        // p dissolves into q, then q fades out at once: the seam (q) turns, two blends.
        let two = rows(60, |i| match i {
            ..20 => p.clone(),
            20..=29 => mix(&p, &q, (i - 19) as f32 / 11.0),
            30..=39 => mix(&q, &black, (i - 29) as f32 / 11.0),
            _ => black.clone(),
        });
        assert_eq!(
            join_pieces(&two, vec![piece(19, 30), piece(30, 40)], &o).len(),
            2
        );
    }

    #[test]
    fn a_fades_still_context_is_its_stillest_frame_change_times_its_length() {
        // Two still frames after a dissolve's last large changes: the stillest counts.
        assert_eq!(still_context(&[0.08, 0.05, 0.001, 0.002]), 4.0 * 0.001);
        // Motion that carries on changes every frame.
        assert_eq!(still_context(&[0.03, 0.04, 0.03]), 3.0 * 0.03);
    }

    #[test]
    fn the_bounded_blend_residual_is_the_residual_or_gives_up_over_its_limit() {
        let (p, q) = (grid(4), grid(5));
        // A dissolve whose middle frames stray from the blend more and more.
        let e = rows(12, |i| {
            let mut r = mix(&p, &q, i as f32 / 11.0);
            if (3..9).contains(&i) {
                r[..144].rotate_left(i);
            }
            r
        });
        let m = Metric::L1;
        let dab = m.distance(e.row(0), e.row(11));
        let rho = blend_residual(&e, 0, 11, dab, m);
        assert!(rho > 0.0 && rho.is_finite(), "{rho}");
        // At or above the residual, the same value bit for bit; below it, nothing.
        assert_eq!(blend_residual_within(&e, 0, 11, dab, m, rho), Some(rho));
        assert_eq!(
            blend_residual_within(&e, 0, 11, dab, m, 2.0 * rho),
            Some(rho)
        );
        assert_eq!(blend_residual_within(&e, 0, 11, dab, m, 0.99 * rho), None);
        // Two frames next to each other have nothing between them to stray.
        assert_eq!(blend_residual_within(&e, 3, 4, dab, m, 0.0), Some(0.0));
    }
}
