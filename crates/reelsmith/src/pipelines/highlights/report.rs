//! The highlights report files: JSON, CSVs, the score plot and the contact sheet.

use std::path::Path;

use image::RgbImage;
use plotters::prelude::*;
use reelsmith_decode::{DecodeOptions, Scale, Video};

use super::types::HighlightsReport;
use crate::output::{font_available, save_image, write_csv, write_err, OutputDir};
use crate::Error;

/// Writes `timeline.csv`, `similarity.csv`, `scores.png` and `contact_sheet.jpg` for a
/// highlights run (`highlights.json` comes last, with the commit). `peak_frames[i]` is clip
/// `i`'s peak frame where the clip export already decoded it; the others are decoded here.
pub(super) fn write_all(
    video: &Video,
    report: &HighlightsReport,
    peak_frames: Vec<Option<RgbImage>>,
    out: &OutputDir,
) -> Result<(), Error> {
    write_timeline(report, &out.path("timeline.csv")?)?;
    write_similarity(report, &out.path("similarity.csv")?)?;
    plot_scores(report, &out.path("scores.png")?)?;
    contact_sheet(video, report, peak_frames, &out.path("contact_sheet.jpg")?)
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.6}")).unwrap_or_default()
}

fn write_timeline(report: &HighlightsReport, path: &Path) -> Result<(), Error> {
    let header = [
        "frame",
        "time",
        "sharpness_var",
        "sharpness",
        "exposure",
        "aesthetics_raw",
        "aesthetics",
        "saliency",
        "score",
        "smoothed",
    ];
    let rows = report.timeline.iter().map(|r| {
        [
            r.frame.to_string(),
            format!("{:.4}", r.time),
            format!("{:.4}", r.score.sharpness_var),
            format!("{:.6}", r.score.sharpness),
            format!("{:.6}", r.score.exposure),
            opt(r.score.aesthetics_raw),
            opt(r.score.aesthetics),
            opt(r.score.saliency),
            format!("{:.6}", r.score.score),
            format!("{:.6}", r.smoothed),
        ]
    });
    write_csv(path, &header, rows)
}

fn write_similarity(report: &HighlightsReport, path: &Path) -> Result<(), Error> {
    let labels: Vec<String> = report
        .candidates
        .iter()
        .map(|&i| format!("frame_{}", report.timeline[i].frame))
        .collect();
    let mut header = vec!["candidate"];
    header.extend(labels.iter().map(String::as_str));
    let rows = labels.iter().zip(&report.similarity).map(|(label, row)| {
        std::iter::once(label.clone()).chain(row.iter().map(|d| format!("{d:.6}")))
    });
    write_csv(path, &header, rows)
}

fn plot_scores(report: &HighlightsReport, path: &Path) -> Result<(), Error> {
    let (w, h) = (1200u32, 400u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let text = font_available();
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |err: &dyn std::fmt::Display| write_err(path, err);
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let t_end = report
            .duration
            .max(report.timeline.last().map(|r| r.time).unwrap_or(0.0))
            .max(1e-3);
        let mut builder = ChartBuilder::on(&root);
        builder.margin(15);
        if text {
            builder
                .caption(
                    "frame score over time (peaks of the chosen clips marked)",
                    ("sans-serif", 18),
                )
                .x_label_area_size(35)
                .y_label_area_size(45);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..t_end, 0f64..1f64)
            .map_err(|x| e(&x))?;
        if text {
            chart
                .configure_mesh()
                .x_desc("time (s)")
                .y_desc("score")
                .draw()
                .map_err(|x| e(&x))?;
        }
        for c in &report.clips {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(c.start_time, 0.0), (c.start_time + c.duration, 1.0)],
                    RGBColor(255, 230, 180).filled(),
                )))
                .map_err(|x| e(&x))?;
        }
        chart
            .draw_series(LineSeries::new(
                report
                    .timeline
                    .iter()
                    .map(|r| (r.time, r.score.score.clamp(0.0, 1.0))),
                RGBColor(150, 150, 150),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(LineSeries::new(
                report
                    .timeline
                    .iter()
                    .map(|r| (r.time, r.smoothed.clamp(0.0, 1.0))),
                BLUE.stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(
                report
                    .clips
                    .iter()
                    .map(|c| Circle::new((c.peak_time, c.score.clamp(0.0, 1.0)), 6, RED.filled())),
            )
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
    }
    let img = RgbImage::from_raw(w, h, buf).expect("buffer size matches");
    save_image(&img, path)
}

fn contact_sheet(
    video: &Video,
    report: &HighlightsReport,
    mut peak_frames: Vec<Option<RgbImage>>,
    path: &Path,
) -> Result<(), Error> {
    const TILE_H: u32 = 240;
    const LABEL_H: u32 = 28;
    let opts = DecodeOptions::new().scale(Scale::Height(TILE_H));
    peak_frames.resize(report.clips.len(), None);
    let mut tiles = Vec::new();
    for (c, peak) in report.clips.iter().zip(peak_frames) {
        let tile = match peak {
            Some(img) => Some(tile_of(&img, TILE_H)),
            None => video
                .frames_from(c.peak_time, &opts)?
                .next()
                .transpose()?
                .map(|f| f.image),
        };
        if let Some(t) = tile {
            tiles.push((t, c));
        }
    }
    if tiles.is_empty() {
        return Ok(());
    }
    let tile_w = tiles.iter().map(|(t, _)| t.width()).max().unwrap_or(1);
    let cols = (tiles.len() as u32).min(3);
    let rows = (tiles.len() as u32).div_ceil(cols);
    let (w, h) = (cols * tile_w, rows * (TILE_H + LABEL_H));
    let mut sheet = RgbImage::from_pixel(w, h, image::Rgb([24, 24, 24]));
    for (n, (img, _)) in tiles.iter().enumerate() {
        let (x, y) = (
            (n as u32 % cols) * tile_w,
            (n as u32 / cols) * (TILE_H + LABEL_H),
        );
        image::imageops::overlay(&mut sheet, img, i64::from(x), i64::from(y + LABEL_H));
    }
    if font_available() {
        let mut buf = sheet.into_raw();
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            for (n, (_, c)) in tiles.iter().enumerate() {
                let (x, y) = (
                    (n as u32 % cols) * tile_w,
                    (n as u32 / cols) * (TILE_H + LABEL_H),
                );
                let label = format!(
                    "#{} {}  peak {:.2}s  score {:.2}",
                    n + 1,
                    c.filename,
                    c.peak_time,
                    c.score
                );
                root.draw(&Text::new(
                    label,
                    (x as i32 + 6, y as i32 + 6),
                    ("sans-serif", 16).into_font().color(&WHITE),
                ))
                .map_err(|e| write_err(path, e))?;
            }
            root.present().map_err(|e| write_err(path, e))?;
        }
        sheet = RgbImage::from_raw(w, h, buf).expect("buffer size matches");
    }
    save_image(&sheet, path)
}

/// `img` shrunk to `height` rows, the width keeping the aspect (even, as a scaled decode
/// gives it).
fn tile_of(img: &RgbImage, height: u32) -> RgbImage {
    if img.height() == height {
        return img.clone();
    }
    let half = (f64::from(height) * f64::from(img.width()) / (2.0 * f64::from(img.height())))
        .round() as u32;
    let width = (half * 2).max(2);
    image::imageops::resize(img, width, height, image::imageops::FilterType::Triangle)
}
