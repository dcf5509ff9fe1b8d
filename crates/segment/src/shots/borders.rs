//! The active picture: letterbox and pillarbox bars left out of the analysis.
//!
//! A portrait clip pillarboxed into a landscape frame fills a third of it or less; the bars
//! never change, so every distance between frames (a mean over the whole pixel-embedder
//! grid) shrinks to that share, and a hard cut between two of its shots scores under the
//! absolute thresholds (`cut_min`, `gradual_min`). Grid cells that stay dark and still in
//! every frame of the video are the bars (or a part of the frame nothing ever shows):
//! [`active_picture`] drops them and rescales the rest, as if the pixel embedder had been
//! run on the active picture alone.

use reelsmith_core::Embeddings;

use crate::motion::LumaFrames;

/// A cell whose luma stays under this share of the full range in every frame is dark.
const BAR_DARK: f32 = 0.08;

/// ... and still when its luma moves less than this share of the full range over the video.
const BAR_STILL: f32 = 0.03;

/// Bars are left out only when they cover at least this share of the grid (smaller bars
/// dilute distances too little to matter)...
const MIN_BAR_SHARE: f32 = 0.15;

/// ... and at least this share of the grid is left (a picture of a few cells is no
/// picture to analyse: a black video with a small logo, say).
const MIN_ACTIVE_SHARE: f32 = 0.2;

/// `emb` with the cells of bars (dark and still in every frame) left out of its three
/// grids and the remaining values scaled by `cells / active` (pixel-embedder values hold
/// a level over the cell count), or `None` when the rows are not in the pixel embedder's
/// layout (three equal grids), there are fewer than two frames, or the bars cover less
/// than [`MIN_BAR_SHARE`] or more than `1 −` [`MIN_ACTIVE_SHARE`] of the grid.
pub(super) fn active_picture(emb: &Embeddings) -> Option<Embeddings> {
    let dim = emb.dim();
    if emb.len() < 2 || dim == 0 || !dim.is_multiple_of(3) {
        return None;
    }
    let cells = dim / 3;
    // Pixel-embedder luma cells hold Y · 0.5 / cells.
    let level = 2.0 * cells as f32;
    let mut lo = vec![f32::INFINITY; cells];
    let mut hi = vec![f32::NEG_INFINITY; cells];
    for row in emb.rows() {
        for (c, &v) in row[..cells].iter().enumerate() {
            let y = v * level;
            if !y.is_finite() {
                // A cell with a non-finite value is no bar.
                lo[c] = f32::NEG_INFINITY;
                hi[c] = f32::INFINITY;
                continue;
            }
            lo[c] = lo[c].min(y);
            hi[c] = hi[c].max(y);
        }
    }
    let active: Vec<usize> = (0..cells)
        .filter(|&c| !(hi[c] < BAR_DARK && hi[c] - lo[c] < BAR_STILL))
        .collect();
    let bars = cells - active.len();
    if (bars as f32) < MIN_BAR_SHARE * cells as f32
        || (active.len() as f32) < MIN_ACTIVE_SHARE * cells as f32
    {
        return None;
    }
    let scale = cells as f32 / active.len() as f32;
    let mut data = Vec::with_capacity(emb.len() * 3 * active.len());
    for row in emb.rows() {
        for grid in 0..3 {
            data.extend(active.iter().map(|&c| row[grid * cells + c] * scale));
        }
    }
    Embeddings::new(data, 3 * active.len()).ok()
}

/// `luma` cropped to its active picture: the bands of whole columns at the left and right
/// and whole rows at the top and bottom whose pixels stay dark and still in every frame
/// ([`BAR_DARK`], [`BAR_STILL`]) cut off, so that the motion test fits the picture rather
/// than bars that never move. `None` under the same shares as [`active_picture`], or when
/// less than 4 × 4 pixels would be left.
pub(super) fn active_luma(luma: &LumaFrames) -> Option<LumaFrames> {
    let (w, h, n) = (luma.width(), luma.height(), luma.len());
    if n < 2 || w < 4 || h < 4 {
        return None;
    }
    let (dark, still) = (BAR_DARK * 255.0, BAR_STILL * 255.0);
    let mut lo = vec![u8::MAX; w * h];
    let mut hi = vec![0u8; w * h];
    for i in 0..n {
        for (p, &v) in luma.frame(i).iter().enumerate() {
            lo[p] = lo[p].min(v);
            hi[p] = hi[p].max(v);
        }
    }
    let bar = |p: usize| f32::from(hi[p]) < dark && f32::from(hi[p] - lo[p]) < still;
    let col = |x: usize| (0..h).all(|y| bar(y * w + x));
    let row = |y: usize| (0..w).all(|x| bar(y * w + x));
    let left = (0..w).take_while(|&x| col(x)).count();
    if left == w {
        return None;
    }
    let right = (0..w).rev().take_while(|&x| col(x)).count();
    let top = (0..h).take_while(|&y| row(y)).count();
    let bottom = (0..h).rev().take_while(|&y| row(y)).count();
    let (cw, ch) = (w - left - right, h.saturating_sub(top + bottom));
    let (area, kept) = ((w * h) as f32, (cw * ch) as f32);
    if cw < 4 || ch < 4 || kept > (1.0 - MIN_BAR_SHARE) * area || kept < MIN_ACTIVE_SHARE * area {
        return None;
    }
    let mut out = LumaFrames::new(cw, ch).ok()?;
    let mut buf = Vec::with_capacity(cw * ch);
    for i in 0..n {
        let f = luma.frame(i);
        buf.clear();
        for y in top..top + ch {
            buf.extend_from_slice(&f[y * w + left..y * w + left + cw]);
        }
        out.push(&buf).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_bars_are_cropped_off() {
        // 16 x 8 frames: 4 black columns either side, a moving gradient between.
        let frame = |t: u8| -> Vec<u8> {
            (0..16 * 8)
                .map(|p| {
                    let x = p % 16;
                    if (4..12).contains(&x) {
                        40 + 10 * x as u8 + t
                    } else {
                        3
                    }
                })
                .collect()
        };
        let mut l = LumaFrames::new(16, 8).unwrap();
        for t in [0, 20, 40] {
            l.push(&frame(t)).unwrap();
        }
        let c = active_luma(&l).expect("bars found");
        assert_eq!((c.width(), c.height(), c.len()), (8, 8, 3));
        assert_eq!(c.frame(1)[0], 40 + 40 + 20);
        // A bar pixel that lights up once keeps its column.
        let mut lit = frame(60);
        lit[3] = 200;
        l.push(&lit).unwrap();
        assert_eq!(active_luma(&l).unwrap().width(), 9);
        // No bars, or nothing but bars: nothing to crop.
        let mut full = LumaFrames::new(16, 8).unwrap();
        full.push(&[90; 128]).unwrap();
        full.push(&[120; 128]).unwrap();
        assert!(active_luma(&full).is_none());
        let mut black = LumaFrames::new(16, 8).unwrap();
        black.push(&[0; 128]).unwrap();
        black.push(&[0; 128]).unwrap();
        assert!(active_luma(&black).is_none());
    }

    /// A pixel-embedder row of `cells` cells from luma levels (Cb = Cr = 0.5).
    fn row(levels: &[f32]) -> Vec<f32> {
        let n = levels.len() as f32;
        let mut r: Vec<f32> = levels.iter().map(|y| y * 0.5 / n).collect();
        r.extend(std::iter::repeat_n(0.25 / n, 2 * levels.len()));
        r
    }

    /// 16 cells in a row: 4 bar cells either side of 8 picture cells showing `v`.
    fn pillarboxed(v: f32) -> Vec<f32> {
        let mut levels = vec![0.01; 16];
        for (i, l) in levels[4..12].iter_mut().enumerate() {
            *l = v + 0.02 * i as f32;
        }
        row(&levels)
    }

    #[test]
    fn bars_are_left_out_and_the_picture_rescaled() {
        let emb = Embeddings::from_rows(&[pillarboxed(0.2), pillarboxed(0.7)]).unwrap();
        let act = active_picture(&emb).expect("bars found");
        assert_eq!(act.dim(), 3 * 8);
        // The picture's cells, at the level an 8-cell embedder gives them.
        assert!((act.row(0)[0] - 0.2 * 0.5 / 8.0).abs() < 1e-6);
        assert!((act.row(1)[7] - (0.7 + 0.14) * 0.5 / 8.0).abs() < 1e-6);
        // Chroma follows the same cells.
        assert!((act.row(0)[8] - 0.25 / 8.0).abs() < 1e-6);
        // The L1 distance is the full-picture change again (0.5 per cell, in Y · 0.5).
        let d: f32 = act.row(0)[..8]
            .iter()
            .zip(&act.row(1)[..8])
            .map(|(a, b)| (a - b).abs())
            .sum();
        assert!((d - 0.25).abs() < 1e-5, "{d}");
    }

    #[test]
    fn dark_cells_that_change_or_light_ones_are_no_bars() {
        // The same frame with a bar cell that lights up once: one bar fewer (3 + 4 left).
        let mut lit = pillarboxed(0.7);
        lit[0] = 0.5 * 0.5 / 16.0;
        let emb = Embeddings::from_rows(&[pillarboxed(0.2), lit]).unwrap();
        assert_eq!(active_picture(&emb).unwrap().dim(), 3 * 9);
        // A full picture: nothing dropped.
        let full = |v: f32| row(&[v; 16]);
        assert!(active_picture(&Embeddings::from_rows(&[full(0.3), full(0.6)]).unwrap()).is_none());
        // Bars under the least share (1 cell of 16) are kept.
        let mut narrow = vec![0.5; 16];
        narrow[0] = 0.0;
        let e = Embeddings::from_rows(&[row(&narrow), row(&narrow)]).unwrap();
        assert!(active_picture(&e).is_none());
        // An all-black video has no active picture to analyse.
        let black = Embeddings::from_rows(&[row(&[0.0; 16]), row(&[0.0; 16])]).unwrap();
        assert!(active_picture(&black).is_none());
        // Rows not in the pixel embedder's layout, or one frame: untouched.
        assert!(
            active_picture(&Embeddings::from_rows(&[vec![0.0; 16], vec![0.1; 16]]).unwrap())
                .is_none()
        );
        assert!(active_picture(&Embeddings::from_rows(&[pillarboxed(0.2)]).unwrap()).is_none());
    }
}
