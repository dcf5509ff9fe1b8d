//! Shot-boundary detection: hard cuts (flashes, strobes and occluders rejected) and
//! gradual transitions.
//!
//! Input: one embedding row per decoded frame, every frame, in presentation order. The
//! defaults are calibrated for the weight-free pixel embedder of `reelsmith-embed` compared
//! with [`Metric::L1`] (its rows are laid out so that L1 is a weighted mean absolute
//! difference of small luma/chroma thumbnails, in `[0, 1]`); other embedders need their own
//! thresholds. `docs/shots.md` in the repository has the method's measurements and the
//! F1-versus-threshold curves the defaults were chosen from. Grid cells that stay dark
//! and still through the whole video (letterbox and pillarbox bars) are left out first and
//! the rest rescaled, so that a portrait picture pillarboxed to a third of the frame is
//! analysed as the picture it is.
//!
//! # Hard cuts
//! With `d(i) = dist(i − 1, i)`:
//! 1. **Adaptive spike.** `d(i)` must reach `cut_ratio ·` (the mean of `d` over the
//!    ±`cut_window` neighbours, largest dropped, `+ ratio_floor`) and `cut_min`: fast
//!    motion raises the neighbours too, so it does not pass. This is the rule of
//!    PySceneDetect's `AdaptiveDetector` (ratio 3), made robust by the dropped maximum (two
//!    cuts close together do not hide each other). In footage made by repeating frames
//!    (25 fps delivered at 50 or 60, film at 30 without fields) the neighbours are the
//!    nearest changes that are not repeats: a repeated frame changes nothing, and counting
//!    it would lower the baseline until a camera's jolt passes for a cut.
//! 2. **Flash rejection.** The strength is `e(i) = min dist(i − 1 − a, i + b)` over
//!    `a, b < flash_window` (≈ 0.2 s): the change across the boundary however the
//!    comparison frames are chosen. A flash shorter than that has a pair of frames on both
//!    sides that match. `e(i)` must pass the same thresholds as `d(i)`.
//! 3. **Confirmation past the disturbance.** An occluder sweeping past the lens, a strobe
//!    or a flash with a long decay lasts longer than the flash window, but the picture
//!    comes back; after a cut it does not. Every pair of frames up to `confirm_window`
//!    (≈ 0.5 s) before and after the candidate must still differ by `confirm_ratio · e(i)`.
//!    Frames that vouch for no scene are passed over: washed-out ones (a flash, black),
//!    and ones that show their own side's scene relit (same luma pattern as the frame
//!    next to the candidate, see 4, yet at least `confirm_ratio · e(i)` from it: a flash
//!    half faded, as bright as the other side's scene by chance). When the pairs still
//!    match, a flash's frames are passed over too: frames brighter than a frame before
//!    and a frame after them on their side of the candidate in 0.9 of the luma grid's
//!    cells, and at least `confirm_ratio · e(i)` from the frame next to the candidate (a
//!    flash that clipped the picture, whose luma pattern the relit test cannot match);
//!    and when they still match, a disturbance inside one side's shot is passed over:
//!    frames at least `confirm_ratio · e(i)` from the frame next to the candidate on their
//!    side while a frame further out on that side (within `confirm_window` of them) is
//!    back within it (an occluder a few frames before or after a cut, dark like the other
//!    shot).
//!    `relight_max = 0` turns these off with the lighting test.
//! 4. **Lighting.** When some frame up to `confirm_window` before the candidate and some
//!    frame up to `confirm_window` after it have the same luma pattern once brightness
//!    and contrast are taken out (mean absolute difference of the normalised patterns
//!    below `relight_max`), the change is one of lighting (a strobe, a long flash, a
//!    lamp switched on) and not a cut. Flat frames (black, white) have no pattern and
//!    never match, so cuts to and from black stay cuts.
//! 5. **Semantic check** (only with a model, see [`ShotDetector::detect_confirmed`]): for
//!    a candidate inside a disturbance (other large frame changes within
//!    `confirm_window`), the mean model embeddings of the 3 frames before the disturbance
//!    and the 3 after it are compared; a cosine similarity of at least `semantic_same`
//!    (the same scene, moved or re-lit) drops the candidate. A clean cut (no other large
//!    change near it) is not asked about: two shots of one scene can look alike to a
//!    model.
//! 6. **Camera motion** (only with luma frames, see [`detect_shots_with_motion`]): the
//!    global translation and zoom between the candidate's two frames is estimated
//!    ([`crate::motion`]); when it explains the change (normalised residual at most
//!    `motion_max`) and either the framing moved by at most a tenth of the width (a
//!    re-blurred or re-compressed picture, a bump, a keyframe of a starved encoder
//!    snapping the picture back into place) or a neighbouring pair of frames moves at
//!    least 0.4 as far (a camera accelerates and slows down; a cut-in or a jump cut
//!    jumps between still frames), it is a whip pan, a zoom or shake, not a cut.
//! 7. **An object passing near the lens**: when the change is spread over its neighbours
//!    (the larger neighbouring change at least 0.4 of it: something moved in or out over
//!    two or three frames) and only part of the picture differs from the two frames before
//!    that spread to the two after (under 0.75 of the luma grid: the rest is the same
//!    scene), an object left the picture or entered it — a bird flying out of a close-up,
//!    an animal jumping in front of the camera — and it is not a cut.
//! 8. **Minimum shot length** (≈ 0.25 s): when two cuts are closer, the stronger is kept.
//!
//! A consequence of 3: an insert shorter than `confirm_window` between two views of the
//! same framing (A, B for a few frames, A again) is taken for a disturbance.
//!
//! # Gradual transitions (fades, dissolves)
//! No single frame difference is large, so windows `[a, b]` at strides from ≈ 0.2 s to
//! ≈ 2.5 s (growing ×1.5) are tested:
//! - `D = dist(a, b) ≥ gradual_min` and no hard cut inside;
//! - the change is spread out: no single `d` inside exceeds `gradual_spread · D`;
//! - it is an event, not sustained motion: `D ≥ gradual_contrast ·` the change over the
//!   half-stride context before `a` and after `b` (a pan changes as much there); no
//!   context is looked for past an end that is a flat frame (black, white): a fade ends
//!   there, and a fade-in just after it is another transition; a side that is not flat
//!   needs at least half its context inside the video (a window closer to the video's
//!   first or last frame is not judged: a clip that starts or ends in the middle of a
//!   movement shows too little of it to tell it from a blend); a window that fails this
//!   test may still be a dissolve between moving shots when its middle frame dips in
//!   contrast as a blend of two unrelated pictures does (at most 0.6 of the luma
//!   variance motion would give there, the ends correlated at most 0.5): it is then
//!   judged without the context, must fit a blend within 2/3 of `gradual_linearity`,
//!   and is taken only where no window that passed the test lies;
//! - it is a blend: each inner frame is close to `(1 − t)·row(a) + t·row(b)` for its best
//!   `t ∈ [0, 1]`; the mean residual relative to `D` must be at most `gradual_linearity`
//!   (a dissolve or fade is exactly such a blend, moving content is not);
//! - it does not hold still midway: a blend moves every frame, so a window in which 4
//!   frames keep their blend position (within 0.02) while the picture changes before and
//!   after them (the shot between a dissolve and a fade) is two transitions, found by
//!   shorter windows;
//! - it changes the whole picture: at least `gradual_extent` of the luma grid's cells
//!   (cells dark at both ends, such as letterbox bars, left out) change by a quarter of
//!   the mean change or more; a title or a logo fading in over a shot, or a cloud
//!   drifting across the sky, changes only a part of the picture;
//! - it lasts: as for cuts, frames up to `confirm_window` before `a` and after `b` still
//!   differ by `confirm_ratio · D`, and not by lighting alone (see 4 above; a fade is
//!   told from a lamp by the flat black or white frame it reaches); both looks stay
//!   within the shots next to the window, not past a hard cut (the shot beyond a cut may
//!   look like the picture the window blends to, as when a dissolve returns to the scene
//!   of the shot before the cut); with a model, the 3 frames before the reported span
//!   and the 3 after it must not be the same scene (cosine similarity below
//!   `semantic_same`);
//! - `score = (D − context) · (1 − residual) ≥ gradual_min_score`.
//!
//! - with luma frames, it is not camera motion: a span whose ends have about the same
//!   contrast (not a fade), are one picture moved (zoom up to 2.5×) and either did not
//!   move or move in at least 3 of the span's 8 parts is a slow zoom or a pan (or no
//!   change at all), and is dropped.
//!
//! - with luma frames, a span whose ends share too little of the picture to be compared
//!   is camera motion when each of its 8 parts is explained by a translation and the
//!   parts add up to a move of half the frame or more (a whip pan across the frame), or
//!   when each part is explained by a global motion and their zooms multiply to 1.5× or
//!   more, in or out (a fast, blurred zoom whose ends one estimate cannot match).
//!
//! - with luma frames, a span whose ends differ in contrast is still camera motion when a
//!   zoom explains the difference (a close-up of a busier or plainer part of the
//!   picture): neither end is flat (a fade reaches a black or white frame, a zoom does
//!   not), the ends are one picture zoomed by 1.5× or more (in or out), and the zooms of
//!   the span's 8 parts, each explained by a global motion, multiply to the ends' zoom
//!   within a factor 1.1 (a dissolve to a close-up of the same picture blends in place:
//!   its parts do not zoom); or when, frame by frame, each frame is explained by a
//!   global motion of the one before and their zooms multiply to 1.5× or more with no
//!   frame carrying more than half of it (a crash zoom too fast for the 8 parts and too
//!   far for the ends' own estimate; a fade's or a dissolve's frames do not zoom), or when
//!   its parts pan half the frame or more, no part carrying more than half of the move
//!   (a whip pan from a busy part of the scene to a plain one).
//!
//! Windows are taken best score first without overlap (they may share an end frame); the
//! reported span is trimmed to where the blend position passes 5 % and 95 %. Then a
//! second pass looks for blends that follow those kept (and not dropped as camera
//! motion) back to back: a window that starts less than its context's length after a
//! blend's end has that blend in its context before, so that context is taken only from
//! the blend's end (none when the two touch), and the window is judged again by every
//! test above, when some frame between the blend's end and the window's start detours
//! from the line from the blend's start to the window's end by 1.2 or more (a second
//! transition, not the rest of one blend found short); its context after is kept whole.
//! A span that
//! is two blends back to back (A → B → C with B shown for a frame or a few: a middle frame
//! that detours from the span's ends, and two parts that each fit a blend far better than
//! the whole does) is reported as two transitions; two spans that touch, whose frames at
//! the seam lie on the line between the whole's ends and whose whole fits one blend, are
//! one blend found in two pieces (a fade-out whose start was found with the blend before
//! it) and are reported as one. A cut closer than `min_shot_len` to a
//! gradual span is the same transition seen twice (the last frames of a dissolve, a
//! dissolve into a shot that starts with a jump) and is reported once, as the gradual
//! transition with its span stretched over the cut, when the frames between the cut and
//! the span still lie on the blend from the picture before both to the picture after
//! both; when they show a picture of their own (a cut into a shot that then fades out),
//! both are reported.
//!
//! Cost: O(n · flash_window²) distances for cut candidates only, O(n · strides) distances
//! for gradual windows (pruned by the triangle inequality under L1/Euclidean), and
//! O(confirm_window²) per candidate that passed everything else.

mod borders;
mod cuts;
mod exposure;
mod gradual;
mod settings;

pub use settings::ShotSettings;

/// Largest zoom factor searched between the ends of a gradual span (a crash zoom over a
/// few frames can change the scale 2.5×).
const GRADUAL_MAX_SCALE: f32 = 2.5;

use serde::{Deserialize, Serialize};

use crate::distance::Metric;
use crate::motion::LumaFrames;
use rayon::prelude::*;
use reelsmith_core::Embeddings;

/// Options of [`detect_shots`], durations in frames. Build them with
/// [`ShotOptions::for_fps`] or [`ShotSettings::at_fps`] (durations in seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShotOptions {
    /// Row comparison (default [`Metric::L1`]).
    pub metric: Metric,
    /// Minimum shot length in frames (default 0.25 s).
    pub min_shot_len: usize,
    /// Neighbours on each side for the adaptive baseline (default 3).
    pub cut_window: usize,
    /// Strength over baseline needed for a cut (default 3.5; PySceneDetect's adaptive rule
    /// uses 3).
    pub cut_ratio: f32,
    /// Absolute minimum cut strength (default 0.02 on the pixel embedder's L1 scale: a 2 %
    /// mean change, four times noise-free static content's ≈ 0.005 and well below real
    /// cuts; 0.005–0.025 give the same transitions on every corpus, docs/shots.md).
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
    /// Frames on each side looked at past a disturbance when confirming a cut or a gradual
    /// transition (default 0.5 s, at least 12; values below `flash_window` act as
    /// `flash_window`).
    pub confirm_window: usize,
    /// Share of a candidate's strength that must remain between every pair of frames up
    /// to `confirm_window` before and after it (default 0.5; 0 turns the confirmation off).
    pub confirm_ratio: f32,
    /// Largest difference of the brightness-normalised luma patterns (mean absolute
    /// difference in units of the pattern's mean deviation) between a frame before and a
    /// frame after a candidate for the change to count as lighting (a strobe, a flash, a
    /// lamp) rather than a transition (default 0.25; 0 turns the lighting tests off: this
    /// one, and the confirmation's passing over relit frames and a flash's frames). Reads
    /// the first third of each row as the luma grid, as the pixel embedder lays it out.
    pub relight_max: f32,
    /// Cosine similarity of model embeddings before and after a disturbance at or above
    /// which it is the same scene (default 0.9; used only with a model).
    pub semantic_same: f32,
    /// Largest normalised residual of the best global motion (translation and zoom, see
    /// [`crate::motion`]) between the frames either side of a cut candidate for the
    /// change to count as camera motion (a whip pan, a crash zoom, shake) rather than a
    /// cut (default 0.7; 0 turns the test off). Used only when luma frames are given
    /// ([`detect_shots_with_motion`], [`ShotDetector::detect_frames`]).
    pub motion_max: f32,
    /// Least share of the picture that a gradual transition must change (default 0.65;
    /// 0 turns the test off): the share of the luma grid's cells whose change between
    /// the window's two ends reaches a quarter of the mean change, cells dark at both
    /// ends (letterbox and pillarbox bars) left out. A dissolve or a fade between two
    /// shots changes nearly all of the picture; a title or a logo fading in over a
    /// continuing shot, or a cloud drifting across the sky, changes a part of it. Reads
    /// the first third of each row as the luma grid, as the pixel embedder lays it out.
    pub gradual_extent: f32,
}

impl Default for ShotOptions {
    fn default() -> Self {
        Self::for_fps(25.0)
    }
}

impl ShotOptions {
    /// Defaults with durations converted at `fps` (25 when not positive and finite): the
    /// default [`ShotSettings`] at that rate.
    pub fn for_fps(fps: f64) -> Self {
        ShotSettings::default().at_fps(fps)
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
    /// [`ShotDetector::detect`] with a semantic model at hand: `semantic` embeds chosen
    /// frames (decoded again at the model's size) for the confirmation of ambiguous
    /// candidates. Detectors without such a step ignore it (the default).
    fn detect_confirmed(
        &self,
        emb: &Embeddings,
        semantic: &mut dyn FrameEmbeddings,
    ) -> ShotDetection {
        let _ = semantic;
        self.detect(emb)
    }
    /// [`ShotDetector::detect`] with the frames' small luma pictures at hand (one per
    /// row of `emb`) for the motion test, and optionally a semantic model (see
    /// [`ShotDetector::detect_confirmed`]). Detectors without a motion test ignore
    /// `luma` (the default).
    fn detect_frames(
        &self,
        emb: &Embeddings,
        luma: Option<&LumaFrames>,
        semantic: Option<&mut dyn FrameEmbeddings>,
    ) -> ShotDetection {
        let _ = luma;
        match semantic {
            Some(s) => self.detect_confirmed(emb, s),
            None => self.detect(emb),
        }
    }
}

/// Embeddings of chosen frames by a semantic model (CLIP, DINOv2), for the confirmation
/// step of [`ShotDetector::detect_confirmed`].
pub trait FrameEmbeddings {
    /// One row per frame of `frames` (0-based indices, ascending, no duplicates), in that
    /// order; `None` when they cannot be had, and the detector decides on pixels alone.
    fn embed_frames(&mut self, frames: &[usize]) -> Option<Embeddings>;
}

impl ShotDetector for ShotOptions {
    fn name(&self) -> &str {
        "adaptive-contrast"
    }

    fn detect(&self, emb: &Embeddings) -> ShotDetection {
        detect_shots(emb, self)
    }

    fn detect_confirmed(
        &self,
        emb: &Embeddings,
        semantic: &mut dyn FrameEmbeddings,
    ) -> ShotDetection {
        detect(emb, None, self, Some(semantic))
    }

    fn detect_frames(
        &self,
        emb: &Embeddings,
        luma: Option<&LumaFrames>,
        semantic: Option<&mut dyn FrameEmbeddings>,
    ) -> ShotDetection {
        detect(emb, luma, self, semantic)
    }
}

/// Detects shot transitions in per-frame embeddings (see the [module docs](self)).
///
/// Empty input gives no shots; one frame gives one shot and no transition; constant input
/// gives one shot. NaN/inf values make the affected distances 0 (no cut there).
pub fn detect_shots(emb: &Embeddings, opts: &ShotOptions) -> ShotDetection {
    detect(emb, None, opts, None)
}

/// [`detect_shots`] with the motion test: `luma` holds one small grayscale picture per
/// row of `emb` (the pipelines keep them from the analysis decode), and a cut candidate
/// whose two frames are explained by a global translation or zoom (residual at most
/// [`ShotOptions::motion_max`]) is dropped. Frames of another count than `emb`'s rows
/// are ignored (no motion test).
pub fn detect_shots_with_motion(
    emb: &Embeddings,
    luma: &LumaFrames,
    opts: &ShotOptions,
) -> ShotDetection {
    detect(emb, Some(luma), opts, None)
}

fn detect(
    emb: &Embeddings,
    luma: Option<&LumaFrames>,
    opts: &ShotOptions,
    semantic: Option<&mut dyn FrameEmbeddings>,
) -> ShotDetection {
    let n = emb.len();
    if n == 0 {
        return ShotDetection::default();
    }
    // Letterbox and pillarbox bars left out, so that their share of the frame does not
    // dilute every change (see `borders`).
    let active = borders::active_picture(emb);
    let emb = active.as_ref().unwrap_or(emb);
    // Dark footage scaled up to ordinary exposure, so that the absolute floors see its
    // changes (see `exposure`): first the whole video's gain, then, where some shots it
    // finds are much darker than the video (a night scene in a bright film), each shot's
    // own gain in a second pass.
    let video = exposure::gain(emb, opts.metric);
    let exposed = exposure::normalised(emb, video);
    let mut semantic = semantic;
    let first = detect_exposed(
        exposed.as_ref().unwrap_or(emb),
        luma,
        opts,
        semantic.as_deref_mut(),
    );
    match exposure::per_shot(emb, opts.metric, &first, video) {
        Some(scaled) => detect_exposed(&scaled, luma, opts, semantic),
        None => first,
    }
}

/// [`detect`] on rows already freed of bars and brought to ordinary exposure.
fn detect_exposed<'s>(
    emb: &Embeddings,
    luma: Option<&LumaFrames>,
    opts: &ShotOptions,
    semantic: Option<&mut (dyn FrameEmbeddings + 's)>,
) -> ShotDetection {
    let n = emb.len();
    let dist = |i: usize, j: usize| opts.metric.distance(emb.row(i), emb.row(j));
    let d: Vec<f32> = std::iter::once(0.0)
        .chain((1..n).map(|i| dist(i - 1, i)))
        .collect();
    let mut semantic = semantic;
    let luma = luma.filter(|l| l.len() == n);
    let active_luma = luma.and_then(borders::active_luma);
    let luma = active_luma.as_ref().or(luma);
    let mut cands = cuts::candidates(emb, &d, &dist, opts, luma);
    if let Some(sem) = semantic.as_deref_mut() {
        cuts::semantic_check(&mut cands, n, opts, sem);
    }
    let cuts = cuts::spaced(&cands, opts);
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
        let scan = gradual::Scan::new(emb, &d, &dist, &cut_frames, opts);
        // A zoom or a pan spread over many frames: the span's ends are one picture moved.
        // Each span's estimates are independent: they run side by side.
        let moved = |grads: &mut Vec<Transition>| {
            if let Some(l) = luma.filter(|_| opts.motion_max > 0.0) {
                let moved: Vec<bool> = grads
                    .par_iter()
                    .map(|g| {
                        g.span.is_some_and(|(lo, hi)| {
                            cuts::span_is_camera_motion(
                                l,
                                lo.saturating_sub(1),
                                (hi + 1).min(n - 1),
                                opts.motion_max,
                                GRADUAL_MAX_SCALE,
                            )
                        })
                    })
                    .collect();
                let mut moved = moved.into_iter();
                grads.retain(|_| !moved.next().unwrap_or(false));
            }
        };
        let mut grads = scan.gradual();
        moved(&mut grads);
        // Blends that follow those found back to back, their context before taken only
        // from the end of the blend before them (see `Scan::beside`).
        let mut beside = scan.beside(&grads);
        moved(&mut beside);
        grads.extend(beside);
        // Two blends back to back (A -> B -> C, B held a few frames) as two transitions.
        let grads = gradual::split_back_to_back(emb, grads, opts);
        // One blend found in two touching pieces (a fade-out whose start was found with
        // the blend before it) as one transition.
        let mut grads = gradual::join_pieces(emb, grads, opts);
        if let Some(sem) = semantic {
            gradual::semantic_check(&mut grads, n, opts, sem);
        }
        transitions = merge(transitions, grads, opts.min_shot_len.max(1), |c, g| {
            gradual::cut_belongs(emb, c, g, opts)
        });
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

/// Cuts closer than `gap` frames to a gradual span are the same transition when
/// `belongs(cut frame, span)` says so (the frames between them are still part of the
/// blend, see [`gradual::cut_belongs`]): the gradual one is kept, its span stretched over
/// the cut. A cut into a shot that then fades out, or out of a shot that has just faded
/// in, is a transition of its own.
fn merge(
    cuts: Vec<Transition>,
    mut grads: Vec<Transition>,
    gap: usize,
    belongs: impl Fn(usize, (usize, usize)) -> bool,
) -> Vec<Transition> {
    let mut out = Vec::with_capacity(cuts.len() + grads.len());
    for c in cuts {
        let near = grads.iter_mut().find(|g| {
            g.span.is_some_and(|(lo, hi)| {
                c.frame + gap > lo && c.frame < hi + 1 + gap && belongs(c.frame, (lo, hi))
            })
        });
        match near {
            Some(g) => {
                if let Some((lo, hi)) = g.span.as_mut() {
                    *lo = (*lo).min(c.frame.saturating_sub(1));
                    *hi = (*hi).max(c.frame);
                }
            }
            None => out.push(c),
        }
    }
    out.extend(grads);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured "picture" `seed`, its pattern shifted by `shift` cells, with a small
    /// per-frame wobble (`frame`) standing in for noise: 48 cells scaled so that L1
    /// distances are mean absolute differences.
    fn picture(seed: u32, shift: f32, frame: usize) -> Vec<f32> {
        let cells = 48;
        (0..cells)
            .map(|c| {
                let x = (c % 8) as f32 + shift;
                let y = (c / 8) as f32;
                let v = ((x * 0.9 + y * 1.7 + seed as f32 * 2.3).sin() * 0.5 + 0.5) * 0.8;
                let wobble = 0.004 * (((frame * 7 + c * 13) % 11) as f32 / 11.0 - 0.5);
                (v + wobble) / cells as f32
            })
            .collect()
    }

    fn emb(rows: &[Vec<f32>]) -> Embeddings {
        Embeddings::from_rows(rows).unwrap()
    }

    fn cover(row: &[f32], share: f32, level: f32) -> Vec<f32> {
        let n = row.len();
        let k = (share * n as f32).round() as usize;
        row.iter()
            .enumerate()
            .map(|(i, &v)| if i < k { level / n as f32 } else { v })
            .collect()
    }

    /// Every transition's frame and kind, in order.
    fn transitions_of(det: &ShotDetection) -> Vec<(usize, TransitionKind)> {
        det.transitions.iter().map(|t| (t.frame, t.kind)).collect()
    }

    fn frames_of(det: &ShotDetection, kind: TransitionKind) -> Vec<usize> {
        det.transitions
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.frame)
            .collect()
    }

    #[test]
    fn a_long_occluder_sweep_is_not_a_cut_but_a_cut_is() {
        // A scene; from frame 40 an occluder covers 85 % of it for 9 frames (longer than
        // the 5-frame flash window), moving a little; a cut at 100.
        let mut rows: Vec<Vec<f32>> = (0..100).map(|i| picture(1, 0.0, i)).collect();
        let shares = [0.85; 9];
        for (k, s) in shares.iter().enumerate() {
            let i = 40 + k;
            rows[i] = cover(&rows[i], *s, 0.02 + 0.01 * k as f32);
        }
        rows.extend((100..160).map(|i| picture(7, 0.0, i)));
        let o = ShotOptions::for_fps(25.0);
        let det = detect_shots(&emb(&rows), &o);
        assert_eq!(frames_of(&det, TransitionKind::Cut), vec![100], "{det:?}");
        assert!(
            frames_of(&det, TransitionKind::Gradual).is_empty(),
            "{det:?}"
        );
        // Without the confirmation (and the lighting test, which also sees the picture
        // come back) the occluder's edges are taken for cuts.
        let off = ShotOptions {
            confirm_ratio: 0.0,
            relight_max: 0.0,
            ..o
        };
        let det = detect_shots(&emb(&rows), &off);
        assert!(det.transitions.len() > 1, "{det:?}");
    }

    #[test]
    fn an_occluder_that_looks_like_the_next_shot_just_before_a_cut_does_not_hide_it() {
        // A scene; frames 88..=91 are nine-tenths covered by a dark, faintly textured
        // occluder, 5 frames before a cut at 97 to a dark, faintly textured shot: the
        // occluded frames look like the frames after the cut, but the scene before them
        // is back at 92, so they are a disturbance of the shot before, not its picture.
        let dark = |seed: u32, i: usize| -> Vec<f32> {
            picture(seed, 0.0, i)
                .iter()
                .map(|v| 0.13 / 48.0 + 0.05 * v)
                .collect()
        };
        let rows: Vec<Vec<f32>> = (0..160)
            .map(|i| match i {
                88..=91 => {
                    let (scene, occluder) = (picture(2, 0.0, i), dark(9, i));
                    let k = 9 * scene.len() / 10;
                    (0..scene.len())
                        .map(|c| if c < k { occluder[c] } else { scene[c] })
                        .collect()
                }
                ..97 => picture(2, 0.0, i),
                _ => dark(5, i),
            })
            .collect();
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        assert_eq!(frames_of(&det, TransitionKind::Cut), vec![97], "{det:?}");
    }

    #[test]
    fn flashes_on_both_sides_of_a_cut_do_not_hide_it() {
        // A cut at 80 with a 2-frame white flash 8 frames before it and another 10
        // frames after it: the two washed-out flashes look alike, the scenes do not.
        let flash = |r: Vec<f32>| -> Vec<f32> {
            let n = r.len() as f32;
            r.iter().map(|v| 0.15 * v + 0.85 * 0.95 / n).collect()
        };
        let rows: Vec<Vec<f32>> = (0..160)
            .map(|i| {
                let r = picture(if i < 80 { 1 } else { 4 }, 0.0, i);
                if matches!(i, 72 | 73 | 90 | 91) {
                    flash(r)
                } else {
                    r
                }
            })
            .collect();
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        let found = transitions_of(&det);
        assert_eq!(found, vec![(80, TransitionKind::Cut)], "{det:?}");
    }

    #[test]
    fn a_flash_fading_before_a_cut_does_not_hide_it() {
        // A dim scene, a 4-frame white flash fading back over two half-white frames, the
        // dim scene again, then a cut at 80 to a plain mid-grey scene about as bright as
        // the half-faded frames: those match the new scene by brightness, but they show
        // the dim scene relit, and the confirmation passes over them.
        let dim = |i: usize| -> Vec<f32> { picture(1, 0.0, i).iter().map(|v| 0.25 * v).collect() };
        let n = dim(0).len() as f32;
        let rows: Vec<Vec<f32>> = (0..160)
            .map(|i| match i {
                64..=67 => vec![0.95 / n; n as usize],
                68 | 69 => dim(i).iter().map(|v| 0.5 * v + 0.5 * 0.95 / n).collect(),
                80.. => picture(4, 0.0, i)
                    .iter()
                    .map(|v| (0.45 + 0.3 * (v * n - 0.4)) / n)
                    .collect(),
                _ => dim(i),
            })
            .collect();
        let o = ShotOptions::for_fps(25.0);
        let det = detect_shots(&emb(&rows), &o);
        let found = transitions_of(&det);
        assert_eq!(found, vec![(80, TransitionKind::Cut)], "{det:?}");
        // Compared, a half-faded frame vouches for the new scene and the cut is lost.
        let det = detect_shots(
            &emb(&rows),
            &ShotOptions {
                relight_max: 0.0,
                ..o
            },
        );
        assert!(frames_of(&det, TransitionKind::Cut).is_empty(), "{det:?}");
    }

    #[test]
    fn a_flash_that_clips_the_picture_before_a_cut_does_not_hide_it() {
        // A scene; a flash lights it from frame 46 to 48, clipping its bright parts, and
        // fades back at frame 49; the cut at 60 is to a bright, plain scene that the
        // flash's frames resemble by brightness (closer than half the cut). The clipping
        // changed the flash frames' luma pattern (the relit test cannot tell them for the
        // scene), but they are brighter all over than the frames before and after them:
        // the confirmation passes over them. Without that the cut is lost.
        let scene = |i: usize| picture(1, 0.0, i);
        let n = scene(0).len() as f32;
        let lit = |i: usize, gain: f32| -> Vec<f32> {
            scene(i)
                .iter()
                .map(|v| (v * gain + 0.3 / n).min(0.9 / n))
                .collect()
        };
        let rows: Vec<Vec<f32>> = (0..140)
            .map(|i| match i {
                46..=48 => lit(i, 3.0),
                49 => lit(i, 2.0),
                60.. => picture(5, 0.0, i)
                    .iter()
                    .map(|v| (0.85 + 0.1 * (v * n)) / n)
                    .collect(),
                _ => scene(i),
            })
            .collect();
        let o = ShotOptions::for_fps(25.0);
        let det = detect_shots(&emb(&rows), &o);
        let found = transitions_of(&det);
        assert_eq!(found, vec![(60, TransitionKind::Cut)], "{det:?}");
    }

    #[test]
    fn a_strobe_is_not_a_cut() {
        // Lit and dark frames alternating every 2 frames for a second.
        let rows: Vec<Vec<f32>> = (0..120)
            .map(|i| {
                let r = picture(3, 0.0, i);
                if (40..65).contains(&i) && (i / 2) % 2 == 0 {
                    r.iter().map(|v| v * 0.25).collect()
                } else {
                    r
                }
            })
            .collect();
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        assert!(det.transitions.is_empty(), "{det:?}");
        // Dimmed for 1.6 s (longer than the confirmation looks).
        let rows: Vec<Vec<f32>> = (0..160)
            .map(|i| {
                let r = picture(3, 0.0, i);
                if (40..80).contains(&i) {
                    r.iter().map(|v| v * 0.25).collect()
                } else {
                    r
                }
            })
            .collect();
        let o = ShotOptions::for_fps(25.0);
        let det = detect_shots(&emb(&rows), &o);
        assert!(det.transitions.is_empty(), "{det:?}");
        // It is the lighting test that tells.
        let det = detect_shots(
            &emb(&rows),
            &ShotOptions {
                relight_max: 0.0,
                ..o
            },
        );
        assert!(!det.transitions.is_empty(), "{det:?}");
    }

    #[test]
    fn a_cut_right_after_a_dissolve_is_reported_once() {
        // A dissolve from picture 1 to picture 2 over frames 50..=61, then the last
        // frames jump to the end of the blend: one transition, gradual.
        let a = picture(1, 0.0, 0);
        let b = picture(2, 0.0, 0);
        let mut rows: Vec<Vec<f32>> = Vec::new();
        for i in 0..120 {
            let t = if i < 50 {
                0.0
            } else if i < 62 {
                (i - 49) as f32 / 16.0
            } else {
                1.0
            };
            rows.push(
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| x * (1.0 - t) + y * t)
                    .collect(),
            );
        }
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        assert_eq!(det.transitions.len(), 1, "{det:?}");
        let t = &det.transitions[0];
        assert_eq!(t.kind, TransitionKind::Gradual, "{det:?}");
        let (lo, hi) = t.span.unwrap();
        assert!(lo <= 51 && hi >= 61, "{det:?}");
    }

    #[test]
    fn a_title_fading_in_over_a_shot_is_not_a_dissolve_but_a_dissolve_is() {
        // A continuing shot over which a bright title fades in on 5 of every 16 cells
        // (a third of the picture) during frames 40..60; then a real dissolve to another
        // picture during frames 100..120.
        let title = |r: &[f32], t: f32| -> Vec<f32> {
            let n = r.len() as f32;
            r.iter()
                .enumerate()
                .map(|(c, &v)| {
                    if c % 16 < 5 {
                        v * (1.0 - t) + t * 0.9 / n
                    } else {
                        v
                    }
                })
                .collect()
        };
        let ramp = |i: usize, s: usize| ((i as f32 - s as f32 + 1.0) / 21.0).clamp(0.0, 1.0);
        let rows: Vec<Vec<f32>> = (0..160)
            .map(|i| {
                let a = title(&picture(1, 0.0, i), ramp(i, 40));
                let b = picture(5, 0.0, i);
                let t = ramp(i, 100);
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| x * (1.0 - t) + y * t)
                    .collect()
            })
            .collect();
        let o = ShotOptions::for_fps(25.0);
        let det = detect_shots(&emb(&rows), &o);
        let found = transitions_of(&det);
        assert_eq!(found.len(), 1, "{det:?}");
        assert_eq!(found[0].1, TransitionKind::Gradual, "{det:?}");
        assert!((105..=115).contains(&found[0].0), "{det:?}");
        // Without the extent test the title is taken for a dissolve too.
        let off = ShotOptions {
            gradual_extent: 0.0,
            ..o
        };
        let det = detect_shots(&emb(&rows), &off);
        assert!(
            det.transitions.iter().any(|t| (40..=60).contains(&t.frame)),
            "{det:?}"
        );
    }

    #[test]
    fn a_cut_into_a_shot_that_then_fades_out_is_reported_with_the_fade() {
        // Picture 1, a cut at 60 to picture 2, which holds 3 frames and fades to black
        // over frames 63..=83; black until a cut at 110 to picture 3.
        let rows: Vec<Vec<f32>> = (0..170)
            .map(|i| match i {
                0..60 => picture(1, 0.0, i),
                60..110 => {
                    let t = ((i as f32 - 62.0) / 21.0).clamp(0.0, 1.0);
                    picture(2, 0.0, i).iter().map(|v| v * (1.0 - t)).collect()
                }
                _ => picture(3, 0.0, i),
            })
            .collect();
        // At 30 fps the minimum shot length is 8 frames: the fade's ramp starts closer
        // than that to the cut.
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(30.0));
        let found = transitions_of(&det);
        assert_eq!(found.len(), 3, "{det:?}");
        assert_eq!(found[0], (60, TransitionKind::Cut), "{det:?}");
        assert_eq!(found[1].1, TransitionKind::Gradual, "{det:?}");
        assert!((70..=80).contains(&found[1].0), "{det:?}");
        assert_eq!(found[2], (110, TransitionKind::Cut), "{det:?}");
    }

    /// Frames `0..n` of an edit made of linear blends `(first frame, length, from, to)`
    /// between pictures (0 is black, 11 and up dim), each picture holding between them.
    fn blends(n: usize, steps: &[(usize, usize, u32, u32)]) -> Vec<Vec<f32>> {
        let pic = |k: u32, i: usize| -> Vec<f32> {
            match k {
                0 => vec![0.0; 48],
                // A dark picture (a night scene): pictures 21, 22... are 1, 2... at a
                // twelfth of the brightness.
                21.. => picture(k - 20, 0.0, i).iter().map(|v| v / 12.0).collect(),
                // A dim picture (night, a dark room): pictures 11, 12... are 1, 2... at a
                // third of the brightness.
                11.. => picture(k - 10, 0.0, i).iter().map(|v| v / 3.0).collect(),
                _ => picture(k, 0.0, i),
            }
        };
        (0..n)
            .map(|i| {
                let mut cur = steps[0].2;
                for &(start, len, from, to) in steps {
                    if i < start {
                        break;
                    }
                    if i < start + len {
                        let t = (i - start + 1) as f32 / (len + 1) as f32;
                        let (a, b) = (pic(from, i), pic(to, i));
                        return a
                            .iter()
                            .zip(&b)
                            .map(|(x, y)| x * (1.0 - t) + y * t)
                            .collect();
                    }
                    cur = to;
                }
                pic(cur, i)
            })
            .collect()
    }

    fn spans(det: &ShotDetection) -> Vec<(usize, usize)> {
        det.transitions.iter().filter_map(|t| t.span).collect()
    }

    #[test]
    fn a_dim_shot_fading_out_two_black_frames_before_a_fade_in_is_two_transitions() {
        // A dim picture fades to black over 50..=55, black at 56 and 57, picture 2 fades
        // in over 58..=70. The fade-in right after the black frames is no context of the
        // fade-out (it lies past the flat frame the fade-out ends on).
        // With one black frame (56) the two transitions' windows share it.
        for black in [2, 1] {
            let rows = blends(140, &[(50, 6, 11, 0), (56 + black, 13, 0, 2)]);
            let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
            let s = spans(&det);
            assert_eq!(det.transitions.len(), 2, "{black}: {det:?}");
            assert!(s[0].0 >= 46 && s[0].1 <= 57, "{black}: {det:?}");
            assert!(s[1].0 >= 54 && s[1].1 <= 74, "{black}: {det:?}");
        }
    }

    #[test]
    fn a_cut_between_two_dark_shots_is_found() {
        // Two night shots (a twelfth of the brightness), cut at 80: the cut changes the
        // grid by less than `cut_min`, as a camera move does in ordinary footage.
        let rows: Vec<Vec<f32>> = (0..160)
            .map(|i| {
                let k = if i < 80 { 1 } else { 4 };
                picture(k, 0.0, i).iter().map(|v| v / 12.0).collect()
            })
            .collect();
        let o = ShotOptions::for_fps(25.0);
        let e = emb(&rows);
        let change = o.metric.distance(e.row(79), e.row(80));
        assert!(change > 0.0 && change < o.cut_min, "{change}");
        assert!(exposure::gain(&e, o.metric) > 1.0);
        let det = detect_shots(&e, &o);
        let found = transitions_of(&det);
        assert_eq!(found, vec![(80, TransitionKind::Cut)], "{det:?}");
        // The same shots at ordinary exposure are left as they are.
        let bright: Vec<Vec<f32>> = rows
            .iter()
            .map(|r| r.iter().map(|v| v * 12.0).collect())
            .collect();
        assert_eq!(exposure::gain(&emb(&bright), o.metric), 1.0);
    }

    #[test]
    fn a_cut_inside_a_night_scene_of_a_bright_video_is_found() {
        // Bright picture 3, a cut at 150 to a night scene of two dark shots (a twelfth of
        // the brightness) cut at 230, and a cut at 310 back to bright picture 5. The video
        // is mostly bright (no gain for the whole); the night scene gets its own.
        let rows: Vec<Vec<f32>> = (0..460)
            .map(|i| match i {
                0..150 => picture(3, 0.0, i),
                150..230 => picture(1, 0.0, i).iter().map(|v| v / 12.0).collect(),
                230..310 => picture(4, 0.0, i).iter().map(|v| v / 12.0).collect(),
                _ => picture(5, 0.0, i),
            })
            .collect();
        let o = ShotOptions::for_fps(25.0);
        let e = emb(&rows);
        assert_eq!(exposure::gain(&e, o.metric), 1.0);
        let change = o.metric.distance(e.row(229), e.row(230));
        assert!(change > 0.0 && change < o.cut_min, "{change}");
        let det = detect_shots(&e, &o);
        let found = transitions_of(&det);
        let cut = TransitionKind::Cut;
        assert_eq!(found, vec![(150, cut), (230, cut), (310, cut)], "{det:?}");
    }

    #[test]
    fn a_dark_shot_fading_to_black_in_a_bright_video_is_found() {
        // Bright picture 3 dissolves over 90..=99 into a dark picture (a night shot), which
        // fades to black over 150..=159; black to 189, then a cut to bright picture 2. The
        // video is not dark (no gain; the dark shot, next to a dissolve, keeps the
        // video's), and the fade changes the picture less than `gradual_min`: the black
        // frame it ends on makes it a fade.
        let rows = blends(300, &[(90, 10, 3, 21), (150, 10, 21, 0), (190, 0, 0, 2)]);
        let o = ShotOptions::for_fps(25.0);
        let e = emb(&rows);
        assert_eq!(exposure::gain(&e, o.metric), 1.0);
        let change = o.metric.distance(e.row(140), e.row(170));
        assert!(change > 0.0 && change < o.gradual_min, "{change}");
        let det = detect_shots(&e, &o);
        assert_eq!(frames_of(&det, TransitionKind::Cut), vec![190], "{det:?}");
        let s = spans(&det);
        assert_eq!(s.len(), 2, "{det:?}");
        assert!(s[0].0 >= 86 && s[0].1 <= 103, "{det:?}");
        assert!(s[1].0 >= 146 && s[1].1 <= 163, "{det:?}");
    }

    #[test]
    fn a_dissolve_to_a_dim_shot_that_later_fades_out_is_two_transitions() {
        // Picture 1 dissolves to a dim picture over 50..=57, which holds 22 frames and
        // fades to black over 80..=85: the window over both holds still midway.
        let rows = blends(160, &[(50, 8, 1, 13), (80, 6, 13, 0)]);
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        let s = spans(&det);
        assert_eq!(det.transitions.len(), 2, "{det:?}");
        assert!(s[0].0 >= 46 && s[0].1 <= 62, "{det:?}");
        assert!(s[1].0 >= 75 && s[1].1 <= 89, "{det:?}");
    }

    #[test]
    fn a_fade_in_two_frames_before_a_dissolve_is_two_transitions() {
        // A dim picture fades in over 50..=55, holds 2 frames, then dissolves to picture 2
        // over 58..=75: the span over both detours through the dim picture.
        let rows = blends(160, &[(50, 6, 0, 11), (58, 18, 11, 2)]);
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        let s = spans(&det);
        assert_eq!(det.transitions.len(), 2, "{det:?}");
        assert!(s[0].0 >= 46 && s[0].1 <= 58, "{det:?}");
        assert!(s[1].0 >= 55 && s[1].1 <= 79, "{det:?}");
    }

    #[test]
    fn a_cut_in_a_pillarboxed_picture_is_found() {
        // Two shots whose picture fills 5 of the 16 grid columns; the bars are black and
        // still. Left in, they shrink the cut to under a third of its strength.
        let boxed = |seed: u32, frame: usize| {
            let mut r = picture(seed, 0.0, frame);
            let cells = r.len() / 3;
            for c in (0..cells).filter(|c| !(5..10).contains(c)) {
                r[c] = 0.0;
                r[cells + c] = 0.25 / cells as f32;
                r[2 * cells + c] = 0.25 / cells as f32;
            }
            r
        };
        let rows: Vec<Vec<f32>> = (0..60)
            .map(|i| boxed(if i < 30 { 1 } else { 4 }, i))
            .collect();
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        let frames: Vec<usize> = det.transitions.iter().map(|t| t.frame).collect();
        assert_eq!(frames, [30], "{det:?}");
    }

    #[test]
    fn frames_repeated_to_a_higher_rate_neither_make_nor_hide_cuts() {
        // A panning shot at 25 fps whose camera jolts forward at frame 40 (4x its usual
        // step), then a cut at 70; cuts only (the rows have no luma frames for the motion
        // test that keeps a long pan from looking like a dissolve).
        let pos = |i: usize| 0.1 * i as f32 + if i >= 40 { 0.3 } else { 0.0 };
        let source = |i: usize| picture(if i < 70 { 1 } else { 5 }, pos(i), i);
        let cuts_at = |fps: usize, rows: &[Vec<f32>]| {
            let o = ShotOptions {
                gradual: false,
                ..ShotOptions::for_fps(fps as f64)
            };
            frames_of(&detect_shots(&emb(rows), &o), TransitionKind::Cut)
        };
        let native: Vec<Vec<f32>> = (0..110).map(source).collect();
        assert_eq!(cuts_at(25, &native), vec![70]);
        // The same shot converted to a higher rate by repeating frames (output frame k
        // shows source frame k * 25 / rate): 25 to 60 makes more than half the frame
        // changes zero, which would lower the adaptive baseline next to the jolt enough
        // for it to pass as a cut; 24 to 30 repeats every fifth frame, with the same
        // effect.
        for (src, rate) in [(25, 60), (25, 50), (24, 30)] {
            let converted: Vec<Vec<f32>> = (0..110 * rate / src)
                .map(|k| source(k * src / rate))
                .collect();
            assert_eq!(
                cuts_at(rate, &converted),
                vec![(70 * rate).div_ceil(src)],
                "{src} to {rate} fps"
            );
        }
    }

    #[test]
    fn an_object_leaving_or_entering_a_close_up_is_not_a_cut_but_a_cut_is() {
        // The first `share` of each third's cells (one side of the picture) shows a close
        // object (another texture) in front of the scene.
        let with_object = |frame: usize, share: f32| -> Vec<f32> {
            let scene = picture(1, 0.0, frame);
            // Another texture, its brightness turned round (a dark object over a bright
            // part of the scene, a bright one over a dark part).
            let object: Vec<f32> = picture(9, 0.3, frame)
                .iter()
                .map(|v| 0.8 / scene.len() as f32 - v)
                .collect();
            let third = scene.len() / 3;
            let k = (share * third as f32).round() as usize;
            (0..scene.len())
                .map(|c| if c % third < k { object[c] } else { scene[c] })
                .collect()
        };
        // The object covers half the picture, leaves it in two frames (40 and 41), and a
        // cut follows at 90.
        let leaving = |i: usize| match i {
            ..40 => with_object(i, 0.5),
            40 => with_object(i, 0.25),
            41..90 => with_object(i, 0.0),
            _ => picture(4, 0.0, i),
        };
        let rows: Vec<Vec<f32>> = (0..130).map(leaving).collect();
        let o = ShotOptions::for_fps(25.0);
        let det = detect_shots(&emb(&rows), &o);
        assert_eq!(frames_of(&det, TransitionKind::Cut), vec![90], "{det:?}");
        // Entering and staying, likewise.
        let rows: Vec<Vec<f32>> = (0..130)
            .map(|i| leaving(if i < 90 { 89 - i } else { i }))
            .collect();
        let det = detect_shots(&emb(&rows), &o);
        assert_eq!(frames_of(&det, TransitionKind::Cut), vec![90], "{det:?}");
        // The same two-frame change over the whole picture (a cut through one blended
        // frame) is a cut.
        let blended = |i: usize| match i {
            ..40 => picture(1, 0.0, i),
            40 => picture(1, 0.0, i)
                .iter()
                .zip(picture(6, 0.0, i))
                .map(|(a, b)| 0.5 * (a + b))
                .collect(),
            _ => picture(6, 0.0, i),
        };
        let rows: Vec<Vec<f32>> = (0..100).map(blended).collect();
        let det = detect_shots(&emb(&rows), &o);
        assert_eq!(det.transitions.len(), 1, "{det:?}");
        assert!((40..=41).contains(&det.transitions[0].frame), "{det:?}");
    }

    #[test]
    fn a_dissolve_back_to_the_scene_before_a_cut_is_found() {
        // Scene 1 until a cut at 60 to scene 2, which holds 10 frames and dissolves back
        // to scene 1 (the camera moved a little) over frames 70..=77. The dissolve's
        // confirmation must not look past the cut: the frames before it show the scene the
        // dissolve returns to, and would make it look like a disturbance that comes back.
        let back = |i: usize| picture(1, 0.2, i);
        let rows: Vec<Vec<f32>> = (0..150)
            .map(|i| match i {
                ..60 => picture(1, 0.0, i),
                60..70 => picture(2, 0.0, i),
                70..78 => {
                    let t = (i - 69) as f32 / 9.0;
                    picture(2, 0.0, i)
                        .iter()
                        .zip(back(i))
                        .map(|(x, y)| x * (1.0 - t) + y * t)
                        .collect()
                }
                _ => back(i),
            })
            .collect();
        let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
        let found = transitions_of(&det);
        assert_eq!(found.len(), 2, "{det:?}");
        assert_eq!(found[0], (60, TransitionKind::Cut), "{det:?}");
        assert_eq!(found[1].1, TransitionKind::Gradual, "{det:?}");
        assert!((70..=78).contains(&found[1].0), "{det:?}");
    }

    #[test]
    fn a_change_still_under_way_at_the_last_frame_is_not_a_transition() {
        // Picture 1 starts blending into picture 2 at frame 195 over 20 frames, but the
        // video ends at 199, five frames in: no frames are left after the change to tell
        // it from motion that carries on, and it never reaches a shot of its own.
        let o = ShotOptions::for_fps(25.0);
        let cut_short = blends(200, &[(195, 20, 1, 2)]);
        let det = detect_shots(&emb(&cut_short), &o);
        assert!(det.transitions.is_empty(), "{det:?}");
        // The same change played to its end, a second before the video does, is found.
        let whole = blends(240, &[(195, 20, 1, 2)]);
        let det = detect_shots(&emb(&whole), &o);
        assert_eq!(frames_of(&det, TransitionKind::Gradual).len(), 1, "{det:?}");
        // So is a fade to black that ends the video on its last frame: a flat end needs
        // no frames after it.
        let fade_out = blends(200, &[(185, 14, 1, 0)]);
        let det = detect_shots(&emb(&fade_out), &o);
        assert_eq!(frames_of(&det, TransitionKind::Gradual).len(), 1, "{det:?}");
    }

    #[test]
    fn fades_right_after_a_dissolve_are_found() {
        // Picture 1 dissolves into 2 (or into 12, a dim 2) over 12 frames; the new picture
        // holds two frames and fades to black over 12 or 6; black holds, then picture 3
        // fades in. (On these rows the ordinary context already passes the fades; the
        // still context of a fade next to another transition, `gradual::still_context`,
        // is measured on the corpora: docs/shots.md, tenth round.)
        let o = ShotOptions::for_fps(25.0);
        for (dim, fade) in [(0, 12), (0, 6), (10, 6)] {
            let rows = blends(
                220,
                &[
                    (60, 12, 1, 2 + dim),
                    (74, fade, 2 + dim, 0),
                    (150, 12, 0, 3),
                ],
            );
            let det = detect_shots(&emb(&rows), &o);
            let found = frames_of(&det, TransitionKind::Gradual);
            assert_eq!(found.len(), 3, "dim {dim}, fade {fade}: {det:?}");
            assert!((62..=72).contains(&found[0]), "{det:?}");
            assert!((74..=86).contains(&found[1]), "{det:?}");
        }
    }

    #[test]
    fn a_slow_dissolve_stays_one_transition() {
        // 40 and 60 frames of dissolve: neither a hold midway nor a detour.
        for len in [40, 60] {
            let rows = blends(200, &[(60, len, 1, 2)]);
            let det = detect_shots(&emb(&rows), &ShotOptions::for_fps(25.0));
            assert_eq!(det.transitions.len(), 1, "{len}: {det:?}");
            let (lo, hi) = det.transitions[0].span.unwrap();
            assert!(lo <= 64 && hi >= 55 + len, "{len}: {det:?}");
        }
    }

    /// Semantic embeddings from a table: frame → row.
    struct Table(Vec<Vec<f32>>, Vec<Vec<usize>>);

    impl FrameEmbeddings for Table {
        fn embed_frames(&mut self, frames: &[usize]) -> Option<Embeddings> {
            self.1.push(frames.to_vec());
            let rows: Vec<&Vec<f32>> = frames.iter().map(|&f| &self.0[f]).collect();
            Some(Embeddings::from_rows(&rows).unwrap())
        }
    }

    struct Unavailable;

    impl FrameEmbeddings for Unavailable {
        fn embed_frames(&mut self, _: &[usize]) -> Option<Embeddings> {
            None
        }
    }

    #[test]
    fn the_semantic_check_drops_only_disturbed_candidates_it_finds_unchanged() {
        // An occluder during which the camera jumps to another framing of the scene
        // (pixels differ after it: the pixel confirmation keeps it), and a clean cut.
        let mut rows: Vec<Vec<f32>> = (0..60).map(|i| picture(1, 0.0, i)).collect();
        for k in 0..6 {
            rows.push(cover(&picture(1, k as f32 * 0.5, k), 0.85, 0.02 * k as f32));
        }
        rows.extend((66..126).map(|i| picture(1, 3.0, i)));
        rows.extend((126..186).map(|i| picture(9, 0.0, i)));
        let o = ShotOptions::for_fps(25.0);
        let pixels = detect_shots(&emb(&rows), &o);
        assert!(pixels.transitions.len() >= 2, "{pixels:?}");
        assert!(pixels.transitions.iter().any(|t| t.frame == 126));
        // The model says: scene "1" up to frame 125, scene "9" after.
        let sem: Vec<Vec<f32>> = (0..rows.len())
            .map(|i| {
                if i < 126 {
                    vec![1.0, 0.1]
                } else {
                    vec![0.1, 1.0]
                }
            })
            .collect();
        let mut table = Table(sem, Vec::new());
        let det = o.detect_confirmed(&emb(&rows), &mut table);
        let found: Vec<usize> = det.transitions.iter().map(|t| t.frame).collect();
        assert_eq!(found, vec![126], "{det:?}");
        // One batch for the cut candidates; the gradual step may ask about the occluder's
        // frames too (its first frame has a black luma grid, which a fade could end on).
        assert!(
            (1..=2).contains(&table.1.len()),
            "one batch of frames per step: {:?}",
            table.1
        );
        // Frames just before the occluder (57..60) and just after it (66..69).
        assert!(
            table.1[0].contains(&59) && table.1[0].contains(&66),
            "{:?}",
            table.1
        );
        // Without the model's answer the pixel decision stands.
        let det = o.detect_confirmed(&emb(&rows), &mut Unavailable);
        assert_eq!(det, pixels);
    }

    #[test]
    fn settings_convert_at_the_frame_rate_and_validate() {
        let s = ShotSettings::default();
        assert_eq!(s.at_fps(25.0), ShotOptions::for_fps(25.0));
        assert_eq!(s.at_fps(25.0).confirm_window, 13);
        assert_eq!(s.at_fps(60.0).confirm_window, 30);
        assert_eq!(s.at_fps(f64::NAN), s.at_fps(25.0));
        assert!(s.validate().is_ok());
        let bad = ShotSettings {
            confirm_seconds: -1.0,
            ..ShotSettings::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "confirm_seconds");
        let bad = ShotSettings {
            semantic_same: 2.0,
            ..ShotSettings::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "semantic_same");
        let bad = ShotSettings {
            gradual_extent: 1.5,
            ..ShotSettings::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "gradual_extent");
        let partial: ShotSettings = serde_json::from_str(r#"{"confirm_ratio": 0.3}"#).unwrap();
        assert_eq!(partial.confirm_ratio, 0.3);
        assert_eq!(partial.cut_ratio, 3.5);
    }
}
