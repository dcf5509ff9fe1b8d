//! Hard cuts: the adaptive spike test, flash rejection, the confirmation that looks past
//! the disturbance, the semantic check and the minimum shot length.

use super::gradual::change_extent;
use super::{FrameEmbeddings, ShotOptions};
use crate::motion::{estimate_within, GlobalMotion, LumaFrames, MAX_SCALE};
use rayon::prelude::*;
use reelsmith_core::{cosine_similarity, Embeddings};

/// Share of a candidate's frame change above which a neighbouring frame change counts as
/// part of the same disturbance (for the frames the semantic check compares).
const DISTURBED_SHARE: f32 = 0.3;

/// Frames on each side averaged for the semantic check.
const SEMANTIC_FRAMES: usize = 3;

/// A frame change that passed the spike test, flash rejection and the confirmation.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Candidate {
    /// First frame of the new shot.
    pub frame: usize,
    /// Flash-free strength.
    pub strength: f32,
    /// `(s, e)`: the first and last large frame change around the candidate (`d[s]` and
    /// `d[e]`); frame `s − 1` is the last one before the disturbance, `e` the first after.
    pub extent: (usize, usize),
}

impl Candidate {
    /// Whether other large frame changes surround this one (an occluder, a strobe): only
    /// such candidates are ambiguous enough for the semantic check.
    fn disturbed(&self) -> bool {
        self.extent.0 < self.frame || self.extent.1 > self.frame
    }
}

/// Candidates that pass every pixel test, in frame order.
pub(super) fn candidates(
    emb: &Embeddings,
    d: &[f32],
    dist: &dyn Fn(usize, usize) -> f32,
    o: &ShotOptions,
    luma: Option<&LumaFrames>,
) -> Vec<Candidate> {
    let n = d.len();
    let k = o.flash_window.max(1);
    let l = o.confirm_window.max(k);
    let w = o.cut_window.max(1);
    let floor = o.ratio_floor.max(f32::MIN_POSITIVE);
    let rep = repeated(d, floor);
    // Frames that pass the tests before the motion test, with their flash-free strength.
    let mut passed: Vec<(usize, f32)> = Vec::new();
    let mut nb: Vec<f32> = Vec::with_capacity(2 * w);
    for i in 1..n {
        if d[i] < o.cut_min {
            continue;
        }
        // The baseline: the `w` nearest frame changes on each side, repeated frames
        // (no change at all, see `repeated`) passed over.
        nb.clear();
        nb.extend(
            (1..i)
                .rev()
                .take(REPEAT_SCAN * w)
                .filter(|&j| !rep[j])
                .take(w)
                .map(|j| d[j]),
        );
        nb.extend(
            (i + 1..n)
                .take(REPEAT_SCAN * w)
                .filter(|&j| !rep[j])
                .take(w)
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
        let need = o.cut_ratio * (baseline + floor);
        if d[i] < need {
            continue;
        }
        // Flash rejection: the change across the boundary however the comparison frames
        // are chosen within the flash window.
        let Some(e) = min_across(dist, i, n, (0, k), o.cut_min.max(need), &|_| false) else {
            continue;
        };
        // Confirmation: frames further out on both sides (past an occluder or a strobe)
        // must still differ by `confirm_ratio` of that strength. Washed-out frames (a
        // flash, black) vouch for no scene: two flashes either side of a cut look alike;
        // nor do frames that show their own side's scene under other light (a flash
        // fading, see `relit_reference`).
        let keep = o.confirm_ratio * e;
        if o.confirm_ratio > 0.0 && l > k {
            let reference = luma_contrast(emb.row(i - 1)).min(luma_contrast(emb.row(i)));
            let lo = i.saturating_sub(l);
            let sides = [i - 1, i].map(|r| (r, luma_pattern(emb.row(r))));
            let passed_over: Vec<bool> = (lo..(i + l).min(n))
                .map(|f| {
                    let (r, pattern) = &sides[usize::from(f >= i)];
                    luma_contrast(emb.row(f)) < WASHED_OUT * reference
                        || (o.relight_max > 0.0
                            && f != *r
                            && pattern.as_deref().is_some_and(|p| {
                                relit_reference(emb.row(f), p, o.relight_max) && dist(f, *r) >= keep
                            }))
                })
                .collect();
            let skip = |f: usize| passed_over.get(f - lo).copied().unwrap_or(false);
            if min_across(dist, i, n, (k, l), o.cut_min.max(keep), &skip).is_none() {
                // Frames of a flash (brighter than frames on both sides of them within
                // their own side of the candidate, see `flash_frame`) vouch for no scene
                // either; looked for only when the comparison fails, as it rarely does,
                // and only with the lighting tests on.
                if o.relight_max <= 0.0 {
                    continue;
                }
                let flashed: Vec<bool> = (lo..(i + l).min(n))
                    .map(|f| {
                        let (r, _) = sides[usize::from(f >= i)];
                        let side = if f < i { 0..i } else { i..n };
                        f != r && dist(f, r) >= keep && flash_frame(emb, f, side, l)
                    })
                    .collect();
                let skip = |f: usize| skip(f) || flashed.get(f - lo).copied().unwrap_or(false);
                if min_across(dist, i, n, (k, l), o.cut_min.max(keep), &skip).is_none() {
                    // Frames of a disturbance inside one side's shot (an occluder just
                    // before or after the cut): far from the frame next to the candidate
                    // on their side, while a frame further out on that side is back near it.
                    let bracketed: Vec<bool> = (lo..(i + l).min(n))
                        .map(|f| {
                            let (r, _) = sides[usize::from(f >= i)];
                            if f == r || dist(f, r) < keep {
                                return false;
                            }
                            let mut out = if f < i {
                                f.saturating_sub(l)..f
                            } else {
                                f + 1..(f + l + 1).min(n)
                            };
                            out.any(|g| dist(g, r) < keep)
                        })
                        .collect();
                    let skip =
                        |f: usize| skip(f) || bracketed.get(f - lo).copied().unwrap_or(false);
                    if min_across(dist, i, n, (k, l), o.cut_min.max(keep), &skip).is_none() {
                        continue;
                    }
                }
            }
        }
        // Lighting: a strobe or a flash with a long decay changes brightness, not the
        // picture's structure.
        if o.relight_max > 0.0
            && relit(
                emb,
                i.saturating_sub(l)..i,
                i..(i + l).min(n),
                o.relight_max,
            )
        {
            continue;
        }
        passed.push((i, e));
    }
    // Camera motion (the frame after the change is the one before it moved or zoomed) and
    // an object near the lens leaving the picture or entering it. The motion estimates
    // are the costly part and independent of each other: they run side by side.
    let kept: Vec<bool> = passed
        .par_iter()
        .map(|&(i, _)| {
            let moved = luma
                .filter(|_| o.motion_max > 0.0)
                .is_some_and(|l| cut_is_camera_motion(l, i, o.motion_max, &rep));
            !moved && !object_passing(emb, d, i, &rep)
        })
        .collect();
    let mut out = Vec::new();
    for (&(i, e), _) in passed.iter().zip(&kept).filter(|(_, &k)| k) {
        let t = o.cut_min.max(DISTURBED_SHARE * d[i]);
        let s = (i.saturating_sub(l).max(1)..i)
            .find(|&j| d[j] >= t)
            .unwrap_or(i);
        let e_end = (i + 1..(i + l + 1).min(n))
            .rev()
            .find(|&j| d[j] >= t)
            .unwrap_or(i);
        out.push(Candidate {
            frame: i,
            strength: e,
            extent: (s, e_end),
        });
    }
    out
}

/// A frame whose change from the frame before is at most this share of the changes on
/// both sides of it (the larger of the two changes before it and the larger of the two
/// after) repeats the frame before: footage converted to a higher frame rate by
/// repeating frames (25 to 50 or 60 frames per second, 24 to 30 without fields), or an
/// encoder that stalled. Such a frame carries no change, and the tests that compare
/// neighbouring changes pass over it.
const REPEAT_SHARE: f32 = 0.1;

/// How many frames per wanted change the tests that pass over repeated frames look at,
/// at most (two repeats in a row, as 24 to 60 frames per second makes, leave one frame
/// in three changed).
const REPEAT_SCAN: usize = 3;

/// Least share of a video's frame changes (above the noise floor, repeats included)
/// that must be repeats for the video to be taken as made by repeating frames. Converted
/// footage repeats a fifth (24 to 30 frames per second) to more than half (25 to 60) of
/// its frames wherever the picture moves; a video shot at its own rate has at most a few
/// still frames that happen to sit between two large changes (a cut and a flash).
const REPEAT_MIN_SHARE: f32 = 0.1;

/// Repeats count only in company: at least this many other frames within
/// [`REPEAT_SPAN`] frames on either side must look like repeats too. Converted footage
/// repeats frames at a steady cadence (every fifth frame at 24 to 30 frames per second, up
/// to two in three at 24 to 60); a still frame between a cut and a flash is alone.
const REPEAT_COMPANY: usize = 2;

/// Frames on each side searched for [`REPEAT_COMPANY`].
const REPEAT_SPAN: usize = 10;

/// Which frames repeat the frame before them (see [`REPEAT_SHARE`]; the changes around
/// a repeat must exceed `floor`, the noise of a still picture, on both sides, and other
/// repeats must keep it company, see [`REPEAT_COMPANY`]). All `false` unless the video
/// repeats frames throughout (see [`REPEAT_MIN_SHARE`]). Frame 0 and the last frame never
/// count.
pub(super) fn repeated(d: &[f32], floor: f32) -> Vec<bool> {
    let n = d.len();
    let alone: Vec<bool> = (0..n)
        .map(|j| {
            if j < 2 || j + 1 >= n {
                return false;
            }
            let before = d[j - 1].max(d[j - 2]);
            let after = d[j + 1].max(d.get(j + 2).copied().unwrap_or(0.0));
            let around = before.min(after);
            around > floor && d[j] <= REPEAT_SHARE * around
        })
        .collect();
    let mut rep: Vec<bool> = (0..n)
        .map(|j| {
            alone[j]
                && (j.saturating_sub(REPEAT_SPAN)..(j + REPEAT_SPAN + 1).min(n))
                    .filter(|&k| k != j && alone[k])
                    .count()
                    >= REPEAT_COMPANY
        })
        .collect();
    let repeats = rep.iter().filter(|&&r| r).count();
    let changes = (1..n).filter(|&j| !rep[j] && d[j] > floor).count();
    if repeats == 0 || (repeats as f32) < REPEAT_MIN_SHARE * (repeats + changes) as f32 {
        rep.iter_mut().for_each(|r| *r = false);
    }
    rep
}

/// The nearest frame changes before and after the change at frame `i` (of `n`) that are
/// not repeats (frames flagged in `rep`, see [`repeated`]), looked for up to
/// [`REPEAT_SCAN`] frames away: `i − 1` and `i + 1` where nothing repeats. Frame 0 has no
/// change before it.
fn changes_around(i: usize, n: usize, rep: &[bool]) -> (Option<usize>, Option<usize>) {
    let changed = |j: &usize| !rep.get(*j).copied().unwrap_or(false);
    (
        (1..i).rev().take(REPEAT_SCAN).find(changed),
        (i + 1..n).take(REPEAT_SCAN).find(changed),
    )
}

/// A cut candidate whose neighbouring frame change (the larger of the nearest ones before
/// and after it that are not repeats) reaches this share of its own change is spread over
/// several frames: something moved across them (see [`object_passing`]). Hard cuts in the
/// corpora and shared clips: 0.01–0.36 (fast motion and flashes next to the cut); an
/// object leaving or entering a close-up: 0.46–0.74.
const OBJECT_SPREAD: f32 = 0.4;

/// Largest share of the picture (see [`change_extent`]) an object passing near the lens
/// changes between the frames before it and those after: the rest shows the same scene.
/// Hard cuts whose change is spread (see [`OBJECT_SPREAD`]): 0.80 and more, all hard
/// cuts 0.71 and more; an object leaving or entering a close-up: 0.39–0.69.
const OBJECT_EXTENT: f32 = 0.75;

/// Whether the change at frame `i` is an object near the lens leaving the picture or
/// entering it (a bird flying up out of a close-up, an animal jumping in front of the
/// camera) rather than a cut: the change is spread over the frames next to it (the
/// object moves across two or three frames, see [`OBJECT_SPREAD`]) and, from the two
/// frames before that to the two after, only part of the picture changes (the object's
/// place; the rest is the same scene, see [`OBJECT_EXTENT`]). A cut changes the whole
/// picture from one frame to the next. Frames flagged in `rep` repeat the one before
/// them and are passed over.
fn object_passing(emb: &Embeddings, d: &[f32], i: usize, rep: &[bool]) -> bool {
    let n = d.len();
    let (Some(prev), Some(next)) = changes_around(i, n, rep) else {
        return false;
    };
    if d[prev].max(d[next]) < OBJECT_SPREAD * d[i] || prev < 2 || next + 1 >= n {
        return false;
    }
    let mean = |a: usize, b: usize| -> Vec<f32> {
        emb.row(a)
            .iter()
            .zip(emb.row(b))
            .map(|(x, y)| 0.5 * (x + y))
            .collect()
    };
    change_extent(&mean(prev - 2, prev - 1), &mean(next, next + 1)) < OBJECT_EXTENT
}

/// A motion that moves no corner of the frame by more than this share of its width is
/// "the same framing" (a change of blur or of compression, not a move).
const STILL_SHIFT: f32 = 0.03;

/// A move between a candidate's two frames of at most this share of the width (every
/// corner), explained by the motion, is a jolt, not a cut, whether or not the frames
/// around it move: the same framing re-blurred or re-compressed, the camera bumped, or a
/// starved encoder's keyframe snapping a drifted picture back into place (0.034 and 0.061
/// of the width at the keyframes of a 60 kbit/s clip). A cut to a framing of the same
/// scene moves it further: 71 of the 361 true hard cuts of the corpora are explained by a
/// motion, and the least of their moves is 0.153 of the width. Anything from 0.07 to 0.15
/// gives the same transitions on every corpus (docs/shots.md).
const JOLT_SHIFT: f32 = 0.1;

/// A move between a candidate's two frames is camera motion only when a neighbouring
/// pair of frames moves at least this share as far: a camera accelerates and slows
/// down, while a cut to a closer or shifted framing of the same scene (a cut-in, a jump
/// cut) jumps between two still or slow frames.
const CONTINUITY: f32 = 0.4;

/// A gradual span is cut into this many parts to see which of them move the picture.
const SPAN_PARTS: usize = 8;

/// Share of a gradual span's parts that must move the picture for the span to be camera
/// motion (a whip pan may take only the end of a span).
const SPAN_MOVING: f32 = 0.375;

/// Contrast ratio (lower over higher) of a gradual span's two ends under which the span
/// is a fade, whatever moves in it.
const FADE_CONTRAST: f32 = 0.5;

/// A gradual span whose parts, each explained by a translation, add up to a move of at
/// least this share of the frame (width across, height down) is a pan too far for its
/// two ends to share enough of the picture to be compared directly (a whip pan).
const CHAIN_SHIFT: f32 = 0.5;

/// Largest share of a pan that one of a gradual span's parts may carry for the span to be
/// taken for a pan although its two ends differ in contrast as a fade's do (see
/// [`span_is_camera_motion`]): a camera speeds up and slows down over several parts (a
/// whip pan of 0.78 of the width: at most 0.21 in one part of eight), while a dissolve's
/// parts either stay in place or one of them, mid-blend, happens to fit a jump (0.6 and
/// all of the way in the corpora's dissolves that the parts' sum mistook for pans).
const PAN_SPREAD: f32 = 0.5;

/// Largest share of a zoom (its logarithm) that one frame of a gradual span may carry for
/// the span to be taken for a zoom frame by frame (see [`zoomed_frame_by_frame`]): a
/// camera zooms over several frames (a 2.5× crash zoom in four frames: at most 0.33 of
/// it in one), while noise between two nearly black frames at the end of a fade fits one
/// step to a zoom at the search's limit (1.59×, all of the span's zoom).
const ZOOM_SPREAD: f32 = 0.5;

/// Share of the residual limit within which one frame must explain the next for a span to
/// be followed frame by frame (see [`zoomed_frame_by_frame`]): consecutive frames of one
/// camera move match far better than a span's parts (0.14 at most through a motion-blurred
/// 2.5× crash zoom), while the dim frames midway through a fade that noise fits to a small
/// zoom match at 0.41–0.53.
const STEP_RESIDUAL: f32 = 0.5;

/// Least zoom factor (in or out) between a gradual span's two ends for a change of
/// their contrast to be the zoom's rather than a fade's (see [`zoomed`]).
const CHAIN_ZOOM: f32 = 1.5;

/// Largest ratio between the zoom factor of a gradual span's two ends and the product of
/// its parts' zoom factors for the span to zoom all along (see [`zoomed`]).
const ZOOM_AGREE: f32 = 1.1;

/// Luma contrast (mean absolute deviation, 0-1 scale) under which a frame is flat (black,
/// white, one colour): a fade ends on one, a zoom never does.
const FLAT: f32 = 0.01;

/// The global motion between frames `i` and `j` with zoom factors up to `max_scale`
/// (compared both ways round when it exceeds [`MAX_SCALE`], keeping the better).
fn motion(luma: &LumaFrames, i: usize, j: usize, max_scale: f32) -> Option<GlobalMotion> {
    let (a, b) = (luma.plane(i)?, luma.plane(j)?);
    let m = estimate_within(&a, &b, max_scale);
    if max_scale <= MAX_SCALE {
        return m;
    }
    match (m, estimate_within(&b, &a, max_scale)) {
        (Some(x), Some(y)) => Some(if y.residual < x.residual { y } else { x }),
        (x, y) => x.or(y),
    }
}

/// Whether the change from frame `i − 1` to `i` is camera motion: explained by a global
/// translation and zoom (residual at most `max`), and either a jolt (a move of at most
/// [`JOLT_SHIFT`] of the width: the same framing re-blurred, re-compressed or bumped) or
/// a move that the neighbouring change before or after it continues (see
/// [`CONTINUITY`]; frames flagged in `rep` repeat the one before them and are passed
/// over).
fn cut_is_camera_motion(luma: &LumaFrames, i: usize, max: f32, rep: &[bool]) -> bool {
    let (w, h) = (luma.width(), luma.height());
    let Some(m) = motion(luma, i - 1, i, MAX_SCALE) else {
        return false;
    };
    if m.residual > max {
        return false;
    }
    let shift = m.corner_shift(w, h);
    if shift <= JOLT_SHIFT * w as f32 {
        return true;
    }
    let (before, after) = changes_around(i, luma.len(), rep);
    [before, after]
        .into_iter()
        .flatten()
        .map(|b| (b - 1, b))
        .filter_map(|(a, b)| motion(luma, a, b, MAX_SCALE))
        .any(|n| n.residual <= max && n.corner_shift(w, h) >= CONTINUITY * shift)
}

/// Whether a gradual span from frame `lo` to `hi` is camera motion or no change at all:
/// its two ends have about the same contrast (not a fade, see [`FADE_CONTRAST`]) and are
/// one picture moved (zoom factors up to `max_scale`, residual at most `max`), and either
/// they are the same framing (the span only re-compressed or re-blurred the picture) or
/// at least [`SPAN_MOVING`] of the span's [`SPAN_PARTS`] parts move the picture (each
/// explained, each moving a corner by at least [`STILL_SHIFT`]` / 2` of the width). A
/// dissolve, even between two framings of one scene, does not move its frames: it blends
/// them. Ends too far apart to be matched are checked in parts (see [`chained_move`]).
/// Ends whose contrast differs as a fade's do are camera motion only when a zoom explains
/// the change (see [`zoomed`] and [`zoomed_frame_by_frame`]) or the span pans far in
/// parts that spread the move (see [`chained_pan`] and [`PAN_SPREAD`]): a whip pan from a
/// busy part of a scene to a plain one.
pub(super) fn span_is_camera_motion(
    luma: &LumaFrames,
    lo: usize,
    hi: usize,
    max: f32,
    max_scale: f32,
) -> bool {
    let (w, h) = (luma.width(), luma.height());
    if hi <= lo {
        return false;
    }
    // A fade changes the contrast; a camera move keeps it.
    let (Some(a), Some(b)) = (luma.plane(lo), luma.plane(hi)) else {
        return false;
    };
    let (ca, cb) = (a.contrast(), b.contrast());
    let fade = ca.min(cb) < FADE_CONTRAST * ca.max(cb);
    // A fade that reaches a flat frame is one whatever moves in it (and costs no estimate).
    if fade && ca.min(cb) < FLAT {
        return false;
    }
    let whole = motion(luma, lo, hi, max_scale).filter(|m| m.residual <= max);
    if fade {
        // Unless the change of contrast is a zoom's or a pan's (a close-up of a busier or
        // plainer part of the picture, a whip pan from a busy part of the scene to a plain
        // one): see `zoomed` and `chained_pan`. A pan that far is checked in its parts, a
        // zoom that fast frame by frame (`zoomed_frame_by_frame`): the two ends share too
        // little of the picture for their own estimate to be trusted.
        return whole.is_some_and(|m| zoomed(luma, lo, hi, max, m.scale))
            || chained_pan(luma, lo, hi, max, PAN_SPREAD)
            || zoomed_frame_by_frame(luma, lo, hi, max);
    }
    let Some(whole) = whole else {
        return chained_move(luma, lo, hi, max);
    };
    // The same picture at both ends (re-compressed, re-blurred): no transition at all.
    if whole.corner_shift(w, h) <= STILL_SHIFT * w as f32 {
        return true;
    }
    // Enough of the span moves the picture (see SPAN_PARTS, SPAN_MOVING).
    let parts = SPAN_PARTS.min(hi - lo);
    let need = (SPAN_MOVING * parts as f32).ceil() as usize;
    let q = |k: usize| lo + (hi - lo) * k / parts;
    let mut moving = 0;
    for k in 0..parts {
        let moved = motion(luma, q(k), q(k + 1), MAX_SCALE).is_some_and(|m| {
            m.residual <= max && m.corner_shift(w, h) >= 0.5 * STILL_SHIFT * w as f32
        });
        moving += usize::from(moved);
        if moving >= need {
            return true;
        }
        if moving + (parts - 1 - k) < need {
            return false;
        }
    }
    false
}

/// Whether the span from frame `lo` to `hi` is a camera move too far for its ends to be
/// compared directly (their motion estimate does not explain them): a pan, when each of
/// its [`SPAN_PARTS`] parts is explained by a translation (residual at most `max`; no
/// zoom searched, which keeps the common test cheap) and the translations add up to at
/// least [`CHAIN_SHIFT`] of the frame; else a zoom, when each part is explained by a
/// global motion (zoom factors up to [`MAX_SCALE`]) and the parts' zoom factors multiply
/// to at least [`CHAIN_ZOOM`] (in or out), as in a fast, motion-blurred zoom whose ends
/// are too far apart in scale for one estimate. A dissolve blends its frames in place:
/// its parts do not move, or not that far, and do not zoom.
fn chained_move(luma: &LumaFrames, lo: usize, hi: usize, max: f32) -> bool {
    chained_pan(luma, lo, hi, max, 1.0)
        || chain_parts(luma, lo, hi, max, MAX_SCALE)
            .is_some_and(|c| c.zoom.abs() >= CHAIN_ZOOM.ln())
}

/// Whether the span from frame `lo` to `hi` is a pan of at least [`CHAIN_SHIFT`] of the
/// frame: each of its [`SPAN_PARTS`] parts is explained by a translation (residual at
/// most `max`), the translations add up to that far (see [`chained_move`]), and no part
/// moves more than `spread` of the whole way (1 for no such limit; see [`PAN_SPREAD`]).
fn chained_pan(luma: &LumaFrames, lo: usize, hi: usize, max: f32, spread: f32) -> bool {
    let (w, h) = (luma.width() as f32, luma.height() as f32);
    chain_parts(luma, lo, hi, max, 1.0).is_some_and(|c| {
        let far = (c.dx / w).hypot(c.dy / h);
        far >= CHAIN_SHIFT && c.largest <= spread * far
    })
}

/// The motions of a span's [`SPAN_PARTS`] parts added up.
struct Chain {
    /// Horizontal translations, in pixels.
    dx: f32,
    /// Vertical translations, in pixels.
    dy: f32,
    /// Natural logarithms of the zoom factors (their product's logarithm).
    zoom: f32,
    /// The largest translation of one part, as a share of the frame (width across,
    /// height down).
    largest: f32,
}

/// The span from frame `lo` to `hi` cut into [`SPAN_PARTS`] parts (fewer when it is
/// shorter), each fitted with a global motion (zoom factors up to `max_scale`; 1 searches
/// translations only), their motions added up; `None` as soon as one part is not
/// explained (residual over `max`).
fn chain_parts(luma: &LumaFrames, lo: usize, hi: usize, max: f32, max_scale: f32) -> Option<Chain> {
    let parts = SPAN_PARTS.min(hi - lo);
    let q = |k: usize| lo + (hi - lo) * k / parts;
    let mut c = Chain {
        dx: 0.0,
        dy: 0.0,
        zoom: 0.0,
        largest: 0.0,
    };
    for k in 0..parts {
        let m = motion(luma, q(k), q(k + 1), max_scale).filter(|m| m.residual <= max)?;
        c.dx += m.dx;
        c.dy += m.dy;
        c.zoom += m.scale.ln();
        c.largest = c
            .largest
            .max((m.dx / luma.width() as f32).hypot(m.dy / luma.height() as f32));
    }
    Some(c)
}

/// Whether the span from frame `lo` to `hi`, whose two ends a zoom by `scale` explains,
/// zooms all along: the zoom is at least [`CHAIN_ZOOM`] (in or out), each of the span's
/// [`SPAN_PARTS`] parts is explained by a global motion (zoom factors up to
/// [`MAX_SCALE`], residual at most `max`), and the parts' zoom factors multiply to the
/// whole's within [`ZOOM_AGREE`]. A fade or a dissolve changes its frames in place: the
/// parts a motion explains do not add up to the zoom that its two ends happen to fit.
fn zoomed(luma: &LumaFrames, lo: usize, hi: usize, max: f32, scale: f32) -> bool {
    let whole = scale.ln();
    if whole.abs() < CHAIN_ZOOM.ln() {
        return false;
    }
    chain_parts(luma, lo, hi, max, MAX_SCALE)
        .is_some_and(|c| (c.zoom - whole).abs() <= ZOOM_AGREE.ln())
}

/// Whether the span from frame `lo` to `hi` zooms frame by frame: each frame is explained
/// by a global motion of the one before (zoom factors up to [`MAX_SCALE`], residual at
/// most [`STEP_RESIDUAL`] of `max`) and the zoom factors multiply to at least
/// [`CHAIN_ZOOM`] (in or out). A crash zoom of 2.5× in four motion-blurred frames is too
/// fast for the span's [`SPAN_PARTS`] parts (one part zooms 2.1×, past the search) and
/// too far for its two ends' own estimate (the close-up shows a sixth of the wide view);
/// frame by frame it is followed exactly. A fade or a dissolve changes each frame in place: its frames'
/// motions are the identity and multiply to no zoom, but for one step between two nearly
/// black frames that noise fits to a large zoom, which the spread limit leaves out (see
/// [`ZOOM_SPREAD`]).
fn zoomed_frame_by_frame(luma: &LumaFrames, lo: usize, hi: usize, max: f32) -> bool {
    let (mut zoom, mut largest) = (0f32, 0f32);
    for f in lo..hi {
        let Some(m) =
            motion(luma, f, f + 1, MAX_SCALE).filter(|m| m.residual <= STEP_RESIDUAL * max)
        else {
            return false;
        };
        zoom += m.scale.ln();
        largest = largest.max(m.scale.ln().abs());
    }
    zoom.abs() >= CHAIN_ZOOM.ln() && largest <= ZOOM_SPREAD * zoom.abs()
}

/// A frame whose luma contrast is under this share of the lower contrast of a cut
/// candidate's two frames is washed out (a flash, a frame gone black or white): the
/// confirmation does not compare it, since two such frames match whatever the scenes.
const WASHED_OUT: f32 = 0.35;

/// The smallest distance between a frame `i − 1 − a` and a frame `i + b` with `a, b` in
/// `0..hi` and at least one of them at or above `lo`, pairs with a frame that `skip`
/// names left out; `None` as soon as one falls below `at_least`.
fn min_across(
    dist: &dyn Fn(usize, usize) -> f32,
    i: usize,
    n: usize,
    (lo, hi): (usize, usize),
    at_least: f32,
    skip: &dyn Fn(usize) -> bool,
) -> Option<f32> {
    let mut m = f32::INFINITY;
    for a in 0..hi.min(i) {
        if skip(i - 1 - a) {
            continue;
        }
        for b in 0..hi.min(n - i) {
            if (a < lo && b < lo) || skip(i + b) {
                continue;
            }
            m = m.min(dist(i - 1 - a, i + b));
            if m < at_least {
                return None;
            }
        }
    }
    Some(m)
}

/// Drops the disturbed candidates whose frames before and after the disturbance show the
/// same scene by the semantic model (see [`same_scene`]). Leaves everything when the
/// embeddings cannot be had.
pub(super) fn semantic_check(
    cands: &mut Vec<Candidate>,
    n: usize,
    o: &ShotOptions,
    sem: &mut dyn FrameEmbeddings,
) {
    let sides: Vec<(usize, usize)> = cands
        .iter()
        .filter(|c| c.disturbed())
        .map(|c| c.extent)
        .collect();
    let Some(same) = same_scene(&sides, n, o.semantic_same, sem) else {
        return;
    };
    let mut verdicts = same.into_iter();
    cands.retain(|c| !c.disturbed() || !verdicts.next().unwrap_or(false));
}

/// For each `(s, e)` (frame `s − 1` the last before a disturbance or transition, `e` the
/// first after it): whether the mean semantic embeddings of the [`SEMANTIC_FRAMES`]
/// frames before `s` and from `e` on have a cosine similarity of at least `threshold`.
/// One call to `sem` for all; `None` when it gives no embeddings.
pub(super) fn same_scene(
    sides: &[(usize, usize)],
    n: usize,
    threshold: f32,
    sem: &mut dyn FrameEmbeddings,
) -> Option<Vec<bool>> {
    let ranges = |&(s, e): &(usize, usize)| {
        (
            s.saturating_sub(SEMANTIC_FRAMES)..s.min(n),
            e.min(n)..(e + SEMANTIC_FRAMES).min(n),
        )
    };
    let mut frames: Vec<usize> = sides
        .iter()
        .flat_map(|p| {
            let (b, a) = ranges(p);
            b.chain(a)
        })
        .collect();
    frames.sort_unstable();
    frames.dedup();
    if frames.is_empty() {
        return Some(vec![false; sides.len()]);
    }
    let rows = sem.embed_frames(&frames)?;
    if rows.len() != frames.len() {
        return None;
    }
    let mean = |range: std::ops::Range<usize>| -> Option<Vec<f32>> {
        let mut acc = vec![0f32; rows.dim()];
        let mut count = 0;
        for f in range {
            let r = frames.binary_search(&f).ok()?;
            acc.iter_mut().zip(rows.row(r)).for_each(|(x, y)| *x += y);
            count += 1;
        }
        (count > 0).then_some(acc)
    };
    Some(
        sides
            .iter()
            .map(|p| {
                let (b, a) = ranges(p);
                match (mean(b), mean(a)) {
                    (Some(x), Some(y)) => cosine_similarity(&x, &y) >= threshold,
                    _ => false,
                }
            })
            .collect(),
    )
}

/// Keeps the strongest candidates at least `min_shot_len` apart: `(frame, strength)` in
/// frame order.
pub(super) fn spaced(cands: &[Candidate], o: &ShotOptions) -> Vec<(usize, f32)> {
    let mut order: Vec<&Candidate> = cands.iter().collect();
    order.sort_by(|x, y| {
        y.strength
            .total_cmp(&x.strength)
            .then(x.frame.cmp(&y.frame))
    });
    let min_len = o.min_shot_len.max(1);
    let mut kept = std::collections::BTreeMap::new();
    for c in order {
        let i = c.frame;
        let p = kept
            .range(..i)
            .next_back()
            .is_none_or(|(&p, _)| i - p >= min_len);
        let q = kept
            .range(i..)
            .next()
            .is_none_or(|(&q, _)| q - i >= min_len);
        if p && q {
            kept.insert(i, c.strength);
        }
    }
    kept.into_iter().collect()
}

/// The luma grid of a row (the first third when its width is a multiple of 3, as the
/// pixel embedder lays it out; the whole row otherwise).
pub(super) fn luma_grid(row: &[f32]) -> &[f32] {
    if row.len().is_multiple_of(3) && !row.is_empty() {
        &row[..row.len() / 3]
    } else {
        row
    }
}

/// Mean absolute deviation of a row's luma grid (see [`luma_grid`]): its contrast, 0 for
/// a flat or non-finite picture.
pub(super) fn luma_contrast(row: &[f32]) -> f32 {
    let y = luma_grid(row);
    let n = y.len() as f32;
    if y.is_empty() {
        return 0.0;
    }
    let mean = y.iter().sum::<f32>() / n;
    let mad = y.iter().map(|v| (v - mean).abs()).sum::<f32>() / n;
    if mad.is_finite() {
        mad
    } else {
        0.0
    }
}

/// Whether a row's picture is flat (black, white, one colour): the deviation of its luma
/// grid (see [`luma_contrast`]) is under 1 % of the pixel embedder's luma range, or the
/// row is empty or not finite.
pub(super) fn is_flat(row: &[f32]) -> bool {
    let n = luma_grid(row).len().max(1) as f32;
    // Pixel-embedder luma cells hold Y · 0.5 / cells: the full range is 0.5 / cells.
    luma_contrast(row) <= 0.01 * 0.5 / n
}

/// The luma pattern of a row with its brightness and contrast taken out: the first third
/// of the row (the pixel embedder's luma grid; the whole row when its width is not a
/// multiple of 3) minus its mean, over its mean absolute deviation. `None` for a flat
/// picture (see [`is_flat`]), which has no structure to compare.
pub(super) fn luma_pattern(row: &[f32]) -> Option<Vec<f32>> {
    if is_flat(row) {
        return None;
    }
    let y = luma_grid(row);
    let n = y.len() as f32;
    let mean = y.iter().sum::<f32>() / n;
    let mad = luma_contrast(row);
    Some(y.iter().map(|v| (v - mean) / mad).collect())
}

/// Mean absolute difference of two [`luma_pattern`]s.
fn pattern_distance(p: &[f32], q: &[f32]) -> f32 {
    p.iter().zip(q).map(|(x, y)| (x - y).abs()).sum::<f32>() / p.len().max(1) as f32
}

/// Whether some frame of `before` and some frame of `after` have the same luma pattern
/// once brightness and contrast are taken out (mean absolute difference of the
/// [`luma_pattern`]s below `max`): the change between them is one of lighting.
pub(super) fn relit(
    emb: &Embeddings,
    before: std::ops::Range<usize>,
    after: std::ops::Range<usize>,
    max: f32,
) -> bool {
    let pats = |r: std::ops::Range<usize>| -> Vec<Vec<f32>> {
        r.filter_map(|f| luma_pattern(emb.row(f))).collect()
    };
    let (b, a) = (pats(before), pats(after));
    b.iter()
        .any(|p| a.iter().any(|q| pattern_distance(p, q) < max))
}

/// Least share of the luma grid's cells that must be brighter in a frame than in another
/// for the frame to be brighter all over (see [`flash_frame`]): a flash lights every part
/// of the picture (0.93 of the cells at the peak of a flash before a cut, where the
/// scene's own motion over the same half second makes 0.38 of them brighter).
const BRIGHTER_SHARE: f32 = 0.9;

/// Whether frame `f` is brighter than frame `g` all over: in at least [`BRIGHTER_SHARE`]
/// of the luma grid's cells (see [`luma_grid`]).
fn brighter_than(emb: &Embeddings, f: usize, g: usize) -> bool {
    let (a, b) = (luma_grid(emb.row(f)), luma_grid(emb.row(g)));
    let m = a.len().min(b.len());
    m > 0 && a.iter().zip(b).filter(|(x, y)| x > y).count() as f32 >= BRIGHTER_SHARE * m as f32
}

/// Whether frame `f` belongs to a flash: within `side` (the frames on its side of a cut
/// candidate), some frame up to `reach` frames before it and some frame up to `reach`
/// after it are darker all over (see [`brighter_than`]). Light that rises and falls back
/// on one scene; the scene's own frames (before or after an occluder, say) are not
/// brighter than the frames around them. The confirmation passes over such a frame
/// when it is also as far from its side's frame next to the candidate as a cut must be:
/// a flash's brightness may match the other side's scene by chance.
fn flash_frame(emb: &Embeddings, f: usize, side: std::ops::Range<usize>, reach: usize) -> bool {
    let before = f.saturating_sub(reach).max(side.start)..f;
    let after = f + 1..(f + 1 + reach).min(side.end);
    before.into_iter().any(|g| brighter_than(emb, f, g))
        && after.into_iter().any(|g| brighter_than(emb, f, g))
}

/// Whether the picture of `row` is the one whose [`luma_pattern`] is `reference` under
/// other light: their patterns differ by less than `max` (see [`relit`]). The
/// confirmation passes over a frame that shows its own side's scene so relit and is as
/// far from that side's frame next to the candidate as the confirmation asks of a cut:
/// a flash half faded, whose brightness may match the other side's scene by chance.
fn relit_reference(row: &[f32], reference: &[f32], max: f32) -> bool {
    luma_pattern(row).is_some_and(|q| pattern_distance(reference, &q) < max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::motion::value_noise;

    /// A 64 × 36 window at horizontal offset `x` of a wide texture (seed `k`): value noise
    /// on a 4-pixel lattice, so no shift but the true one matches.
    fn window(x: f32, k: u32) -> Vec<u8> {
        (0..36 * 64)
            .map(|i| {
                let v = value_noise(k, (i % 64) as f32 + x, (i / 64) as f32, 4.0);
                (v * 200.0 + 20.0).round() as u8
            })
            .collect()
    }

    fn frames(f: impl Fn(usize) -> Vec<u8>, n: usize) -> LumaFrames {
        let mut l = LumaFrames::new(64, 36).unwrap();
        for i in 0..n {
            l.push(&f(i)).unwrap();
        }
        l
    }

    /// `n` frames blending picture `a` into picture `b` by `t(i)` (0: all `a`).
    fn blend_frames(a: &[u8], b: &[u8], t: impl Fn(usize) -> f32, n: usize) -> LumaFrames {
        frames(
            |i| {
                a.iter()
                    .zip(b)
                    .map(|(&p, &q)| (f32::from(p) * (1.0 - t(i)) + f32::from(q) * t(i)) as u8)
                    .collect()
            },
            n,
        )
    }

    /// A 64 × 36 view, zoomed by `s` about the centre, of a picture whose texture (the
    /// lattice noise of [`window`]) is strong near the centre and faint towards the edges,
    /// times `gain` (a fade): zooming in raises the view's contrast.
    fn close_up(s: f32, gain: f32) -> Vec<u8> {
        (0..36 * 64)
            .map(|i| {
                let (x, y) = ((i % 64) as f32 - 31.5, (i / 64) as f32 - 17.5);
                let (x, y) = (x / s, y / s);
                let v = value_noise(0, x + 32.0, y + 18.0, 3.0) - 0.5;
                let r = (x / 32.0).hypot(y / 18.0);
                let amp = 220.0 * (-3.0 * r * r).exp() + 12.0;
                ((120.0 + v * amp) * gain).clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    #[test]
    fn a_zoom_that_changes_the_contrast_is_camera_motion_but_a_fade_is_not() {
        // Still until frame 8, a 2.2x zoom in over frames 9..=20, still after: the close-up
        // has more than twice the contrast of the wide view (so the span looks like a fade
        // by contrast alone).
        let t = |i: usize| ((i as f32 - 8.0) / 12.0).clamp(0.0, 1.0);
        let scale = |i: usize| 2.2f32.powf(t(i) * t(i) * (3.0 - 2.0 * t(i)));
        let zoom = frames(|i| close_up(scale(i), 1.0), 28);
        let (a, b) = (zoom.plane(5).unwrap(), zoom.plane(23).unwrap());
        assert!(a.contrast() < FADE_CONTRAST * b.contrast(), "{a:?} {b:?}");
        assert!(span_is_camera_motion(&zoom, 5, 23, 0.7, GRADUAL_MAX));
        // The same wide view fading down to a faint picture (not flat): its contrast
        // changes as much, but nothing zooms.
        let fade = frames(|i| close_up(1.0, 1.0 - 0.7 * t(i)), 28);
        let (a, b) = (fade.plane(5).unwrap(), fade.plane(23).unwrap());
        assert!(b.contrast() < FADE_CONTRAST * a.contrast());
        assert!(!span_is_camera_motion(&fade, 5, 23, 0.7, GRADUAL_MAX));
        // A fade to black during the zoom is a fade: it ends on a flat frame.
        let zoom_fade = frames(|i| close_up(scale(i), 1.0 - t(i)), 28);
        assert!(!span_is_camera_motion(&zoom_fade, 5, 23, 0.7, GRADUAL_MAX));
        // A dissolve from the wide view to the 2.2x close-up: its two ends are one picture
        // zoomed, but its frames blend in place and their zooms do not add up to it.
        let (wide, close) = (close_up(1.0, 1.0), close_up(2.2, 1.0));
        let dissolve = blend_frames(&wide, &close, t, 28);
        assert!(motion(&dissolve, 5, 23, GRADUAL_MAX).is_some_and(|m| m.residual <= 0.7));
        assert!(!span_is_camera_motion(&dissolve, 5, 23, 0.7, GRADUAL_MAX));
    }

    #[test]
    fn a_crash_zoom_too_fast_for_the_parts_is_followed_frame_by_frame() {
        // Still until frame 10, a 3.5x zoom in over frames 11..=14 (x1.37 a frame), still
        // after, in a span of 20 frames: past the ends' own search (2.5x) and, in one of
        // the span's eight parts, past a part's (1.6x). The contrast changes as a fade's.
        let t = |i: usize| ((i as f32 - 10.0) / 4.0).clamp(0.0, 1.0);
        let zoom = frames(|i| close_up(3.5f32.powf(t(i)), 1.0), 24);
        let (a, b) = (zoom.plane(2).unwrap(), zoom.plane(22).unwrap());
        assert!(a.contrast() < FADE_CONTRAST * b.contrast(), "{a:?} {b:?}");
        assert!(!motion(&zoom, 2, 22, GRADUAL_MAX)
            .is_some_and(|m| m.residual <= 0.7 && zoomed(&zoom, 2, 22, 0.7, m.scale)));
        assert!(zoomed_frame_by_frame(&zoom, 2, 22, 0.7));
        assert!(span_is_camera_motion(&zoom, 2, 22, 0.7, GRADUAL_MAX));
        // A dissolve from the wide view to the 3.5x close-up over the same frames: each
        // frame is the one before in place, and nothing zooms.
        let (wide, close) = (close_up(1.0, 1.0), close_up(3.5, 1.0));
        let dissolve = blend_frames(&wide, &close, t, 24);
        assert!(!zoomed_frame_by_frame(&dissolve, 2, 22, 0.7));
        assert!(!span_is_camera_motion(&dissolve, 2, 22, 0.7, GRADUAL_MAX));
    }

    #[test]
    fn a_whip_pan_too_far_to_compare_its_ends_is_camera_motion_but_a_dissolve_is_not() {
        // Still until frame 8, a pan of 52 pixels (0.8 of the width) over frames 9..=16,
        // still after: the span's two ends share too little of the picture to be matched.
        let x = |i: usize| {
            let t = ((i as f32 - 8.0) / 8.0).clamp(0.0, 1.0);
            52.0 * t * t * (3.0 - 2.0 * t)
        };
        let whip = frames(|i| window(x(i), 0), 24);
        assert!(motion(&whip, 4, 20, GRADUAL_MAX).is_none_or(|m| m.residual > 0.7));
        assert!(span_is_camera_motion(&whip, 4, 20, 0.7, GRADUAL_MAX));
        // A dissolve between two pictures over the same frames.
        let (a, b) = (window(0.0, 0), window(0.0, 1));
        let dissolve = frames(
            |i| {
                let t = ((i as f32 - 8.0) / 9.0).clamp(0.0, 1.0);
                a.iter()
                    .zip(&b)
                    .map(|(&p, &q)| (f32::from(p) * (1.0 - t) + f32::from(q) * t).round() as u8)
                    .collect()
            },
            24,
        );
        assert!(!span_is_camera_motion(&dissolve, 4, 20, 0.7, GRADUAL_MAX));
    }

    #[test]
    fn a_whip_pan_to_a_plain_part_of_the_scene_is_camera_motion_but_a_dissolve_is_not() {
        // A texture busy on the left and plain on the right; still until frame 8, a pan of
        // 52 pixels over frames 9..=16, still after: the span's ends differ in contrast as
        // a fade's do.
        let view = |x: f32| -> Vec<u8> {
            (0..36 * 64)
                .map(|i| {
                    let u = (i % 64) as f32 + x;
                    let v = value_noise(2, u, (i / 64) as f32, 4.0) - 0.5;
                    (120.0 + v * (200.0 * (-u / 30.0).exp() + 10.0)) as u8
                })
                .collect()
        };
        let x = |i: usize| {
            let t = ((i as f32 - 8.0) / 8.0).clamp(0.0, 1.0);
            52.0 * t * t * (3.0 - 2.0 * t)
        };
        let whip = frames(|i| view(x(i)), 24);
        let (a, b) = (whip.plane(4).unwrap(), whip.plane(20).unwrap());
        assert!(b.contrast() < FADE_CONTRAST * a.contrast(), "{a:?} {b:?}");
        assert!(span_is_camera_motion(&whip, 4, 20, 0.7, GRADUAL_MAX));
        // A dissolve between the same two ends.
        let t = |i: usize| ((i as f32 - 8.0) / 9.0).clamp(0.0, 1.0);
        let dissolve = blend_frames(&view(0.0), &view(52.0), t, 24);
        assert!(!span_is_camera_motion(&dissolve, 4, 20, 0.7, GRADUAL_MAX));
        // A move of 36 pixels made in one jump between two still stretches: one part
        // carries it all, as a dissolve's part that happens to fit a jump does; no camera
        // pans so.
        let jump = frames(|i| view(if i < 12 { 0.0 } else { 36.0 }), 24);
        assert!(!span_is_camera_motion(&jump, 4, 20, 0.7, GRADUAL_MAX));
        // Without the spread limit the parts' sum alone would take it for a pan.
        assert!(chained_pan(&jump, 4, 20, 0.7, 1.0));
    }

    #[test]
    fn a_zoom_too_far_to_compare_its_ends_is_camera_motion() {
        // Still until frame 8, a 6x zoom in at an even pace over frames 9..=32 (far past
        // the 2.5x searched between a span's ends), still after, on a texture of even
        // contrast: the ends cannot be matched, but every eighth of the span zooms, and
        // the zooms multiply to far more than `CHAIN_ZOOM`.
        let t = |i: usize| ((i as f32 - 8.0) / 24.0).clamp(0.0, 1.0);
        let scale = |i: usize| 6f32.powf(t(i));
        let view = |s: f32| -> Vec<u8> {
            (0..36 * 64)
                .map(|i| {
                    let (x, y) = ((i % 64) as f32 - 31.5, (i / 64) as f32 - 17.5);
                    // Detail at every scale, as a real scene has: zooming in shows finer
                    // texture, not a smoother picture.
                    let v: f32 = (0..5)
                        .map(|o| {
                            let f = (1 << o) as f32;
                            value_noise(2 + o, (x / s + 32.0) * f, (y / s + 18.0) * f, 4.0)
                        })
                        .sum::<f32>()
                        / 5.0;
                    (v * 400.0 - 72.0).clamp(0.0, 255.0).round() as u8
                })
                .collect()
        };
        let zoom = frames(|i| view(scale(i)), 40);
        assert!(motion(&zoom, 5, 35, GRADUAL_MAX).is_none_or(|m| m.residual > 0.7));
        assert!(span_is_camera_motion(&zoom, 5, 35, 0.7, GRADUAL_MAX));
        // A dissolve between the same two ends blends in place: no part zooms.
        let (wide, close) = (view(1.0), view(6.0));
        let dissolve = blend_frames(&wide, &close, t, 40);
        assert!(!span_is_camera_motion(&dissolve, 5, 35, 0.7, GRADUAL_MAX));
    }

    #[test]
    fn a_jolt_is_camera_motion_but_a_cut_to_another_framing_is_not() {
        // A still shot that jumps 3 pixels (under a twentieth of the width) at frame 10 and
        // holds there: a bump of the camera or a keyframe snapping a drifted picture back.
        // No frame around it moves, so the continuity test cannot vouch for it.
        let rep = vec![false; 20];
        let jolt = frames(|i| window(if i < 10 { 0.0 } else { 3.0 }, 0), 20);
        let m = motion(&jolt, 9, 10, MAX_SCALE).unwrap();
        assert!(m.corner_shift(64, 36) > STILL_SHIFT * 64.0, "{m:?}");
        assert!(cut_is_camera_motion(&jolt, 10, 0.7, &rep));
        // A cut to a framing of the same scene a fifth of the width along stays a cut.
        let reframe = frames(|i| window(if i < 10 { 0.0 } else { 13.0 }, 0), 20);
        assert!(motion(&reframe, 9, 10, MAX_SCALE).is_some_and(|m| m.residual <= 0.7));
        assert!(!cut_is_camera_motion(&reframe, 10, 0.7, &rep));
    }

    #[test]
    fn repeats_are_found_only_where_a_video_repeats_frames() {
        let floor = 0.004;
        // A moving shot at 25 fps converted to 60 by repeating frames: a change of 0.02
        // (and a little noise) whenever a new source frame shows, none otherwise.
        let shows = |k: usize| k * 25 / 60;
        let d: Vec<f32> = (0..120)
            .map(|k| match k {
                0 => 0.0,
                k if shows(k) != shows(k - 1) => 0.02 + 0.002 * (k % 3) as f32,
                _ => 0.0002,
            })
            .collect();
        let rep = repeated(&d, floor);
        for (k, &r) in rep.iter().enumerate().take(118).skip(4) {
            assert_eq!(r, shows(k) == shows(k - 1), "frame {k}");
        }
        // Still shots at their own rate (changes at the noise floor) with a cut at 40 and
        // a one-frame flash at 43 (two large changes, 43 and 44). Nothing repeats,
        // although frames 41 and 42 sit between two large changes and make up two of the
        // video's five changes above the floor: they are alone.
        let d: Vec<f32> = (0..120)
            .map(|k| match k {
                0 => 0.0,
                40 => 0.14,
                43 | 44 => 0.23,
                _ => 0.0008,
            })
            .collect();
        assert!(repeated(&d, floor).iter().all(|&r| !r));
        // A strobe: lit frames among dark ones every third frame in a moving shot. The
        // dark frames barely change and keep each other company, but over the whole video
        // they are too few of its changes to be taken for a cadence.
        let d: Vec<f32> = (0..300)
            .map(|k| match k {
                0 => 0.0,
                100..=130 if k % 3 != 2 => 0.3,
                100..=130 => 0.001,
                _ => 0.02,
            })
            .collect();
        assert!(repeated(&d, floor).iter().all(|&r| !r));
    }

    const GRADUAL_MAX: f32 = 2.5;
}
