//! The pictures of a segments run: `keyframes_grid.jpg`, `successor.png`, `embeddings.png`.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;
use reelsmith_core::Embeddings;

use super::{BoundaryKind, Plan, Written};
use crate::output::{font_available, save_image, write_err, OutputDir};
use crate::Error;

/// Writes the three pictures; returns their file names.
pub(super) fn write_all(
    plan: &Plan,
    segments: &[Written],
    out: &OutputDir,
) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    if keyframe_grid(segments, &out.path("keyframes_grid.jpg")?)? {
        names.push("keyframes_grid.jpg".to_string());
    }
    successor_plot(plan, &out.path("successor.png")?)?;
    names.push("successor.png".to_string());
    embedding_map(plan, &out.path("embeddings.png")?)?;
    names.push("embeddings.png".to_string());
    Ok(names)
}

/// The colour of segment `i` (a qualitative palette, repeated).
fn palette(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

fn kind_colour(kind: BoundaryKind) -> RGBColor {
    match kind {
        BoundaryKind::Cut => RGBColor(214, 39, 40),
        BoundaryKind::Gradual => RGBColor(255, 127, 14),
        BoundaryKind::Seam => RGBColor(44, 160, 44),
        BoundaryKind::Split => RGBColor(127, 127, 127),
    }
}

/// One row per segment, its keyframes side by side, labelled; false when there is no image.
fn keyframe_grid(segments: &[Written], path: &Path) -> Result<bool, Error> {
    const TILE_H: u32 = 135;
    const LABEL_W: u32 = 170;
    const PAD: u32 = 4;
    let tiles: Vec<Vec<RgbImage>> = segments
        .iter()
        .map(|(_, imgs)| imgs.iter().map(|i| tile_of(i, TILE_H)).collect())
        .collect();
    let widest = tiles
        .iter()
        .map(|row| row.iter().map(|t| t.width() + PAD).sum::<u32>())
        .max()
        .unwrap_or(0);
    if widest == 0 {
        return Ok(false);
    }
    let rows = segments.len() as u32;
    let (w, h) = (LABEL_W + widest + PAD, rows * (TILE_H + PAD) + PAD);
    let mut sheet = RgbImage::from_pixel(w, h, image::Rgb([24, 24, 24]));
    for (r, row) in tiles.iter().enumerate() {
        let mut x = LABEL_W;
        let y = PAD + r as u32 * (TILE_H + PAD);
        for t in row {
            image::imageops::overlay(&mut sheet, t, i64::from(x), i64::from(y));
            x += t.width() + PAD;
        }
    }
    if font_available() {
        let mut buf = sheet.into_raw();
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            for (r, (s, _)) in segments.iter().enumerate() {
                let y = (PAD + r as u32 * (TILE_H + PAD)) as i32;
                let starts = s
                    .starts_at
                    .map_or("start".to_string(), |k| format!("{k:?}").to_lowercase());
                for (line, text) in [
                    format!("segment {}", s.number),
                    format!("{:.2}-{:.2} s", s.start, s.end),
                    format!("starts at: {starts}"),
                ]
                .into_iter()
                .enumerate()
                {
                    root.draw(&Text::new(
                        text,
                        (8, y + 8 + 22 * line as i32),
                        ("sans-serif", 16).into_font().color(&WHITE),
                    ))
                    .map_err(|e| write_err(path, e))?;
                }
            }
            root.present().map_err(|e| write_err(path, e))?;
        }
        sheet = RgbImage::from_raw(w, h, buf).expect("buffer size matches");
    }
    save_image(&sheet, path)?;
    Ok(true)
}

fn tile_of(img: &RgbImage, height: u32) -> RgbImage {
    let width = ((f64::from(height) * f64::from(img.width()) / f64::from(img.height().max(1)))
        .round() as u32)
        .max(1);
    image::imageops::resize(img, width, height, image::imageops::FilterType::Triangle)
}

/// Successor score over time, its threshold, and the boundaries coloured by kind.
fn successor_plot(plan: &Plan, path: &Path) -> Result<(), Error> {
    let (w, h) = (1200u32, 420u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let text = font_available();
    let s = &plan.found.successor;
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |err: &dyn std::fmt::Display| write_err(path, err);
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let t_end = plan.duration.max(1e-3);
        let mut builder = ChartBuilder::on(&root);
        builder.margin(15);
        if text {
            builder
                .caption(
                    "successor score (blue), threshold (grey); segment starts: cut red, \
                     gradual orange, seam green, split grey",
                    ("sans-serif", 16),
                )
                .x_label_area_size(35)
                .y_label_area_size(45);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..t_end, 0f64..1.05f64)
            .map_err(|x| e(&x))?;
        if text {
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc("normalised successor distance")
                .draw()
                .map_err(|x| e(&x))?;
        }
        for b in &plan.found.boundaries {
            chart
                .draw_series(LineSeries::new(
                    [(b.time, 0.0), (b.time, 1.05)],
                    kind_colour(b.kind).stroke_width(2),
                ))
                .map_err(|x| e(&x))?;
        }
        let clamp = |v: f32| f64::from(v).clamp(0.0, 1.05);
        chart
            .draw_series(LineSeries::new(
                s.times
                    .iter()
                    .zip(&s.threshold)
                    .filter(|(_, t)| t.is_finite())
                    .map(|(&t, &v)| (t, clamp(v))),
                RGBColor(150, 150, 150).stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(
                s.times.iter().zip(&s.score).map(|(&t, &v)| (t, clamp(v))),
                BLUE.stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(plan.found.seam_samples.iter().filter_map(|&j| {
                let t = *s.times.get(j.checked_sub(1)?)?;
                let v = *s.score.get(j - 1)?;
                Some(Circle::new((t, clamp(v)), 4, BLUE.filled()))
            }))
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer size matches");
    save_image(&img, path)
}

/// The first two principal components of `emb` (rows centred), by power iteration on the
/// covariance; `None` for fewer than 2 rows.
pub(super) fn pca_2d(emb: &Embeddings) -> Option<Vec<(f64, f64)>> {
    let (n, d) = (emb.len(), emb.dim());
    if n < 2 || d == 0 {
        return None;
    }
    let mean = emb.mean(None)?;
    let centred: Vec<Vec<f64>> = emb
        .rows()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(v, m)| {
                    let x = f64::from(v - m);
                    if x.is_finite() {
                        x
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    // X^T X v without forming the d × d matrix: v ← Xᵀ(X v).
    let apply = |v: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; d];
        for row in &centred {
            let p: f64 = row.iter().zip(v).map(|(a, b)| a * b).sum();
            for (o, a) in out.iter_mut().zip(row) {
                *o += p * a;
            }
        }
        out
    };
    let normalise = |v: &mut Vec<f64>| {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        norm
    };
    let mut comps: Vec<Vec<f64>> = Vec::new();
    for c in 0..2 {
        // A deterministic start that is not orthogonal to typical data.
        let mut v: Vec<f64> = (0..d)
            .map(|i| 1.0 + ((i * 7 + c * 13) % 11) as f64)
            .collect();
        for _ in 0..100 {
            let mut next = apply(&v);
            for p in &comps {
                let dot: f64 = next.iter().zip(p).map(|(a, b)| a * b).sum();
                next.iter_mut().zip(p).for_each(|(x, y)| *x -= dot * y);
            }
            if normalise(&mut next) == 0.0 {
                break;
            }
            v = next;
        }
        normalise(&mut v);
        comps.push(v);
    }
    Some(
        centred
            .iter()
            .map(|r| {
                let p = |c: &[f64]| r.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
                (p(&comps[0]), p(&comps[1]))
            })
            .collect(),
    )
}

/// The sampled embeddings in 2-D (PCA), one colour per segment, consecutive frames joined.
fn embedding_map(plan: &Plan, path: &Path) -> Result<(), Error> {
    let (w, h) = (800u32, 800u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let text = font_available();
    let points = pca_2d(&plan.embeddings).unwrap_or_default();
    let seg_of: Vec<usize> = (0..points.len())
        .map(|row| {
            plan.spans
                .iter()
                .position(|s| s.rows.contains(&row))
                .unwrap_or(0)
        })
        .collect();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |err: &dyn std::fmt::Display| write_err(path, err);
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let range = |f: fn(&(f64, f64)) -> f64| {
            let (lo, hi) = points
                .iter()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(v), h.max(v))
                });
            if lo.is_finite() && hi > lo {
                let pad = 0.05 * (hi - lo);
                (lo - pad)..(hi + pad)
            } else {
                -1.0..1.0
            }
        };
        let mut builder = ChartBuilder::on(&root);
        builder.margin(15);
        if text {
            builder
                .caption(
                    "sampled frame embeddings (PCA), coloured by segment",
                    ("sans-serif", 18),
                )
                .x_label_area_size(30)
                .y_label_area_size(40);
        }
        let mut chart = builder
            .build_cartesian_2d(range(|p| p.0), range(|p| p.1))
            .map_err(|x| e(&x))?;
        if text {
            chart
                .configure_mesh()
                .x_desc("PC 1")
                .y_desc("PC 2")
                .draw()
                .map_err(|x| e(&x))?;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                RGBColor(210, 210, 210),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(
                points
                    .iter()
                    .zip(&seg_of)
                    .map(|(&p, &s)| Circle::new(p, 5, palette(s).filled())),
            )
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer size matches");
    save_image(&img, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_direction_of_largest_spread() {
        // Points along (1, 1, 0) with a little spread along (0, 0, 1).
        let rows: Vec<[f32; 3]> = (0..20)
            .map(|i| {
                let t = i as f32 - 10.0;
                [t, t, 0.1 * ((i % 3) as f32 - 1.0)]
            })
            .collect();
        let p = pca_2d(&Embeddings::from_rows(&rows).unwrap()).unwrap();
        // Centred on the mean (t = -0.5), the first coordinate reaches 9.5·√2 (at t = -10);
        // the second is small.
        let span0 = p.iter().map(|q| q.0.abs()).fold(0.0, f64::max);
        let span1 = p.iter().map(|q| q.1.abs()).fold(0.0, f64::max);
        assert!((span0 - 9.5 * 2f64.sqrt()).abs() < 1e-3, "{span0}");
        assert!(span1 < 0.2, "{span1}");
        assert!(pca_2d(&Embeddings::from_rows(&[[1.0f32]]).unwrap()).is_none());
    }
}
