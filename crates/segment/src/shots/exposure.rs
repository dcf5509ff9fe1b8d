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

/// The gain [`normalised`] applies to `emb`: `EXPOSURE_LEVEL / level`, between 1 and
/// [`MAX_GAIN`], for the video's typical contrast `level`; 1 when the rows are not the
/// pixel embedder's (three equal grids, compared with [`Metric::L1`]) or every frame is
/// flat.
pub(super) fn gain(emb: &Embeddings, metric: Metric) -> f32 {
    let dim = emb.dim();
    if metric != Metric::L1 || emb.is_empty() || dim == 0 || !dim.is_multiple_of(3) {
        return 1.0;
    }
    // Pixel-embedder luma cells hold Y · 0.5 / cells: the full range is 0.5 / cells.
    let range = 0.5 / (dim / 3) as f32;
    let Some(level) = median_level(emb, 0..emb.len(), range) else {
        return 1.0;
    };
    (EXPOSURE_LEVEL / level).clamp(1.0, MAX_GAIN)
}

/// `emb` scaled by its [`gain`] when that is above 1 (a dark video), else `None`. Every
/// distance between rows grows by the gain; ratios between distances do not change.
pub(super) fn normalised(emb: &Embeddings, metric: Metric) -> Option<Embeddings> {
    let g = gain(emb, metric);
    if g <= 1.0 {
        return None;
    }
    let data: Vec<f32> = emb.as_slice().iter().map(|v| v * g).collect();
    Embeddings::new(data, emb.dim()).ok()
}

/// A shot's gain must exceed the whole video's by this factor for the second pass (see
/// [`per_shot`]) to run: shots of ordinary footage vary in contrast, and a small
/// difference changes nothing.
const SHOT_GAIN_STEP: f32 = 1.25;

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

/// `emb` with each shot of `shots` (as a first pass found them on the whole video's
/// gain) scaled by its own gain (`EXPOSURE_LEVEL` over the shot's median contrast, between
/// 1 and [`MAX_GAIN`]; a shot of flat frames only takes the video's), or `None` when no
/// shot's gain exceeds the video's by [`SHOT_GAIN_STEP`]: a night scene inside a bright
/// video. Luma scales from black and chroma from neutral grey, as a camera's gain does;
/// the gain changes only where the first pass found a transition.
pub(super) fn per_shot(
    emb: &Embeddings,
    metric: Metric,
    first: &super::ShotDetection,
) -> Option<Embeddings> {
    let shots = &first.shots;
    let dim = emb.dim();
    let n = emb.len();
    if metric != Metric::L1 || n == 0 || dim == 0 || !dim.is_multiple_of(3) || shots.len() < 2 {
        return None;
    }
    let cells = dim / 3;
    let range = 0.5 / cells as f32;
    let video = gain(emb, metric);
    let of =
        |level: Option<f32>| level.map_or(video, |l| (EXPOSURE_LEVEL / l).clamp(1.0, MAX_GAIN));
    // A shot next to a gradual transition keeps the video's gain: a gain changing inside
    // a blend would bend it.
    let hard = |k: usize| {
        first
            .transitions
            .get(k)
            .is_none_or(|t| t.kind == super::TransitionKind::Cut)
    };
    let gains: Vec<f32> = shots
        .iter()
        .enumerate()
        .map(|(k, s)| {
            if (k == 0 || hard(k - 1)) && hard(k) {
                of(median_level(emb, s.start..(s.end + 1).min(n), range))
            } else {
                video
            }
        })
        .collect();
    if gains.iter().all(|&g| g < video * SHOT_GAIN_STEP) {
        return None;
    }
    // Pixel-embedder chroma cells hold (Cb or Cr) · 0.25 / cells; neutral is 0.5.
    let neutral = 0.125 / cells as f32;
    let mut data = Vec::with_capacity(n * dim);
    for (s, &g) in shots.iter().zip(&gains) {
        for i in s.start..(s.end + 1).min(n) {
            let row = emb.row(i);
            data.extend(row[..cells].iter().map(|v| v * g));
            data.extend(row[cells..].iter().map(|v| neutral + (v - neutral) * g));
        }
    }
    if data.len() != n * dim {
        return None;
    }
    Embeddings::new(data, dim).ok()
}
