//! Exposure: dark footage analysed as if it were exposed like ordinary footage.
//!
//! The detector's floors (`cut_min`, `gradual_min`, the gradual score) are absolute
//! changes of the pixel-embedder grid, calibrated on footage of ordinary exposure. In a
//! night scene or an underexposed film every change between frames shrinks with the
//! picture's contrast: a cut between two dark shots changes the grid by as little as a
//! camera move in a bright one, and falls under the floors. [`normalised`] measures the
//! video's typical contrast and, when it is under [`EXPOSURE_LEVEL`], scales the rows up
//! (a digital gain of at most [`MAX_GAIN`]) so that the floors see the changes a viewer
//! sees; footage of ordinary exposure is left as it is.

use reelsmith_core::Embeddings;

use super::cuts;
use crate::distance::Metric;

/// Typical luma contrast (mean absolute deviation of the luma grid, as a share of the
/// full range; the median over the video's frames that are not flat) under which a video
/// counts as dark, and to which a dark video is raised. Over the 330 clips of the shared
/// clips and the robustness corpora the median clip sits at 0.12, one in eleven under
/// 0.08 (the least 0.049); night versions of them at 0.012–0.05.
const EXPOSURE_LEVEL: f32 = 0.08;

/// The largest gain: compression noise grows with it, and a picture this much under
/// [`EXPOSURE_LEVEL`] holds too little to analyse reliably anyway.
const MAX_GAIN: f32 = 6.0;

/// The full luma range of a row (pixel-embedder luma cells hold Y · 0.5 / cells) when
/// the rows are the pixel embedder's (three equal grids, compared with [`Metric::L1`]);
/// `None` for any other rows, which are left as they are.
fn luma_range(emb: &Embeddings, metric: Metric) -> Option<f32> {
    let dim = emb.dim();
    (metric == Metric::L1 && !emb.is_empty() && dim > 0 && dim.is_multiple_of(3))
        .then(|| 0.5 / (dim / 3) as f32)
}

/// The gain that raises the typical contrast `level` to [`EXPOSURE_LEVEL`], between 1
/// and [`MAX_GAIN`].
fn level_gain(level: f32) -> f32 {
    (EXPOSURE_LEVEL / level).clamp(1.0, MAX_GAIN)
}

/// Median contrast (share of the full range) of the frames `rows` that are not flat.
fn median_level(emb: &Embeddings, rows: std::ops::Range<usize>, range: f32) -> Option<f32> {
    let mut levels: Vec<f32> = rows
        .map(|i| emb.row(i))
        .filter(|r| !cuts::is_flat(r))
        .map(|r| cuts::luma_contrast(r) / range)
        .filter(|l| l.is_finite() && *l > 0.0)
        .collect();
    if levels.is_empty() {
        return None;
    }
    let mid = levels.len() / 2;
    let (_, &mut level, _) = levels.select_nth_unstable_by(mid, f32::total_cmp);
    Some(level)
}

/// The whole video's gain: [`level_gain`] of its typical contrast (the median over the
/// frames that are not flat); 1 when the rows are not the pixel embedder's or every
/// frame is flat.
pub(super) fn gain(emb: &Embeddings, metric: Metric) -> f32 {
    luma_range(emb, metric)
        .and_then(|range| median_level(emb, 0..emb.len(), range))
        .map_or(1.0, level_gain)
}

/// `emb` with row `i` scaled by `gain_of(i)`: luma from black, chroma from neutral grey
/// (pixel-embedder chroma cells hold (Cb or Cr) · 0.25 / cells; neutral is 0.5), as a
/// camera's gain does. Within a stretch of one gain every distance grows by it and ratios
/// between distances do not change.
fn scaled(emb: &Embeddings, gain_of: impl Fn(usize) -> f32) -> Option<Embeddings> {
    let dim = emb.dim();
    let cells = dim / 3;
    let neutral = 0.125 / cells as f32;
    let mut data = Vec::with_capacity(emb.len() * dim);
    for (i, row) in emb.rows().enumerate() {
        let g = gain_of(i);
        data.extend(row[..cells].iter().map(|v| v * g));
        data.extend(row[cells..].iter().map(|v| neutral + (v - neutral) * g));
    }
    Embeddings::new(data, dim).ok()
}

/// `emb` scaled by the video's gain `video` (see [`gain`]) when that is above 1 (a dark
/// video), else `None`.
pub(super) fn normalised(emb: &Embeddings, video: f32) -> Option<Embeddings> {
    if video > 1.0 {
        scaled(emb, |_| video)
    } else {
        None
    }
}

/// A shot's gain must exceed the whole video's by this factor for the second pass (see
/// [`per_shot`]) to run: shots of ordinary footage vary in contrast, and a small
/// difference changes nothing.
const SHOT_GAIN_STEP: f32 = 1.25;

/// `emb` with each shot of `first` (a pass on the video's gain `video`) scaled by its own
/// gain ([`level_gain`] of the shot's median contrast; a shot of flat frames only takes
/// the video's), or `None` when no shot's gain exceeds the video's by
/// [`SHOT_GAIN_STEP`]: a night scene inside a bright video. Shots next to a gradual
/// transition keep the video's gain, and the gain changes only where the first pass
/// found a cut.
pub(super) fn per_shot(
    emb: &Embeddings,
    metric: Metric,
    first: &super::ShotDetection,
    video: f32,
) -> Option<Embeddings> {
    let range = luma_range(emb, metric)?;
    let (shots, n) = (&first.shots, emb.len());
    if shots.len() < 2 {
        return None;
    }
    // A shot next to a gradual transition keeps the video's gain: a gain changing inside
    // a blend would bend it.
    let hard = |k: usize| {
        first
            .transitions
            .get(k)
            .is_none_or(|t| t.kind == super::TransitionKind::Cut)
    };
    let mut frame_gain = vec![video; n];
    let mut darker = false;
    for (k, s) in shots.iter().enumerate() {
        if !((k == 0 || hard(k - 1)) && hard(k)) {
            continue;
        }
        let frames = s.start.min(n)..(s.end + 1).min(n);
        let g = median_level(emb, frames.clone(), range).map_or(video, level_gain);
        darker |= g >= video * SHOT_GAIN_STEP;
        frame_gain[frames].fill(g);
    }
    if darker {
        scaled(emb, |i| frame_gain[i])
    } else {
        None
    }
}
