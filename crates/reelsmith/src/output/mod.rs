//! Writing outputs: a folder is written as one set ([`OutputDir`]), a single file through a
//! temporary name renamed into place, so a reader never sees half an output and a failed
//! or cancelled run leaves nothing behind.
//!
//! Front ends that stop on a signal call [`cleanup`] first: it removes the staging
//! folders and temporary files of the runs in progress.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::Error;

mod dir;

pub use dir::{OutputDir, MANIFEST, STAGING_PREFIX};

/// Staging folders and temporary files of the runs in progress, for [`cleanup`].
pub(crate) mod live {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(crate) fn register(p: &Path) {
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(p.to_path_buf());
    }

    pub(crate) fn unregister(p: &Path) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = live.iter().position(|q| q == p) {
            live.swap_remove(i);
        }
    }

    pub(crate) fn take() -> Vec<PathBuf> {
        std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Removes the staging folders and temporary files of every run in progress in this
/// process, and the output folders those runs created (when empty). Call it from a signal
/// handler before exiting; the destinations stay as they were before the runs.
pub fn cleanup() {
    // Most recent first: a staging folder goes before the folder created to hold it.
    for p in live::take().into_iter().rev() {
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(STAGING_PREFIX))
            {
                // A worker thread may still be creating a file in it: try again.
                for _ in 0..5 {
                    if std::fs::remove_dir_all(&p).is_ok() || !p.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            } else {
                let _ = std::fs::remove_dir(&p);
            }
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Checks that `path` may receive a single output file: it is not one of `inputs`, and
/// whatever is there now is a regular file (replaced) or nothing; never a folder, a link
/// or a special file.
pub fn check_output_file(path: &Path, inputs: &[PathBuf]) -> Result<(), Error> {
    let refuse = |detail: &str| Error::Output {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(refuse(
                "is a symbolic link; outputs are never written through links",
            ))
        }
        Ok(m) if m.is_dir() => return Err(refuse("is a folder; give a file name")),
        Ok(m) if !m.is_file() => {
            return Err(refuse(
                "is not a regular file (a device, a pipe?); give a file name",
            ))
        }
        _ => {}
    }
    if let Ok(out) = std::fs::canonicalize(path) {
        for i in inputs {
            if std::fs::canonicalize(i).is_ok_and(|i| i == out) {
                return Err(refuse("is also an input; give another output file"));
            }
        }
    }
    Ok(())
}

/// An output error naming `path`, from any error message.
pub(crate) fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::write(path, std::io::Error::other(e.to_string()))
}

/// The temporary name `path` is written under before the rename.
fn part_path(path: &Path) -> PathBuf {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("out");
    path.with_extension(format!("{ext}.part"))
}

/// Writes `bytes` to `path` through a temporary file renamed into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_with(path, |tmp| std::fs::write(tmp, bytes))
}

/// Writes `path` through `write`, which fills the temporary file it is given; the file is
/// renamed into place when `write` succeeds and removed when it fails.
pub(crate) fn write_with(
    path: &Path,
    write: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), Error> {
    let tmp = part_path(path);
    live::register(&tmp);
    let result = match write(&tmp) {
        Err(e) => Err(write_err(&tmp, e)),
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| write_err(path, e)),
    };
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    live::unregister(&tmp);
    result
}

/// Writes `value` as pretty JSON, atomically.
pub(crate) fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| write_err(path, e))?;
    write_atomic(path, &bytes)
}

/// Writes a CSV file of `header` and `rows`, atomically.
pub(crate) fn write_csv<I, R, S>(path: &Path, header: &[&str], rows: I) -> Result<(), Error>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    let e = |e: csv::Error| write_err(path, e);
    w.write_record(header).map_err(e)?;
    for r in rows {
        w.write_record(r).map_err(e)?;
    }
    let bytes = w.into_inner().map_err(|err| write_err(path, err))?;
    write_atomic(path, &bytes)
}

/// Saves an image (format from the extension), atomically.
pub(crate) fn save_image(img: &image::RgbImage, path: &Path) -> Result<(), Error> {
    reelsmith_decode::save_image(img, path, None).map_err(Error::from)
}

/// Registers a system sans-serif font with plotters once; false when none is found, in
/// which case images are drawn without text. `REELSMITH_FONT` names a TTF/OTF file to use.
pub(crate) fn font_available() -> bool {
    use plotters::style::FontStyle;
    static FONT: OnceLock<bool> = OnceLock::new();
    *FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(p) = std::env::var_os("REELSMITH_FONT") {
            candidates.push(p.into());
        }
        for p in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
            "/Library/Fonts/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ] {
            candidates.push(p.into());
        }
        for c in candidates {
            if let Ok(bytes) = std::fs::read(&c) {
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, leaked).is_ok() {
                    return true;
                }
            }
        }
        tracing::warn!("no TrueType font found (set REELSMITH_FONT); plots and contact sheets are drawn without text");
        false
    })
}

/// Draws `ys` against 1, 2, … as a line chart into a PNG at `path` (atomically).
pub(crate) fn line_plot(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    ys: &[f64],
) -> Result<(), Error> {
    use plotters::prelude::*;
    let (w, h) = (900u32, 400u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let text = font_available();
    let perr = |e: &dyn std::fmt::Display| write_err(path, format!("cannot draw the plot: {e}"));
    let finite: Vec<f64> = ys.iter().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&e))?;
        let mut b = ChartBuilder::on(&root);
        b.margin(12);
        if text {
            b.caption(title, ("sans-serif", 20))
                .x_label_area_size(36)
                .y_label_area_size(56);
        }
        let mut chart = b
            .build_cartesian_2d(1f64..(ys.len().max(2) as f64), lo..hi)
            .map_err(|e| perr(&e))?;
        if text {
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .draw()
                .map_err(|e| perr(&e))?;
        }
        chart
            .draw_series(LineSeries::new(
                ys.iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, v)| ((i + 1) as f64, *v)),
                &BLUE,
            ))
            .map_err(|e| perr(&e))?;
        root.present().map_err(|e| perr(&e))?;
    }
    write_plot_png(path, w, h, buf)
}

/// Writes a drawn RGB buffer `w`×`h` as a PNG at `path`, through a part file renamed into
/// place (the plot is there whole or not at all).
fn write_plot_png(path: &Path, w: u32, h: u32, buf: Vec<u8>) -> Result<(), Error> {
    let img = image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| write_err(path, "cannot draw the plot: buffer size"))?;
    let tmp = part_path(path).with_extension("part.png");
    save_image(&img, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(path, e))
}

/// Draws two bars per label (`a` and `b`, e.g. without and with an adapter) into a PNG at
/// `path` (atomically), with a legend naming the two series.
pub(crate) fn paired_bar_plot(
    path: &Path,
    title: &str,
    labels: &[String],
    a: (&str, &[f64]),
    b: (&str, &[f64]),
) -> Result<(), Error> {
    use plotters::prelude::*;
    let n = labels.len().max(1);
    let (w, h) = ((160 + 60 * n as u32).clamp(480, 1600), 420u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let text = font_available();
    let perr = |e: &dyn std::fmt::Display| write_err(path, format!("cannot draw the plot: {e}"));
    let finite = a.1.iter().chain(b.1).copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(0.0f64, f64::min);
    let hi = finite.fold(0.0f64, f64::max);
    let (lo, hi) = if hi > lo { (lo, hi * 1.15) } else { (0.0, 1.0) };
    let colours = [RGBColor(120, 120, 120), RGBColor(30, 110, 220)];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&e))?;
        let mut cb = ChartBuilder::on(&root);
        cb.margin(12);
        if text {
            cb.caption(title, ("sans-serif", 20))
                .x_label_area_size(30)
                .y_label_area_size(56);
        }
        let mut chart = cb
            .build_cartesian_2d(0f64..n as f64, lo..hi)
            .map_err(|e| perr(&e))?;
        if text {
            let names = labels.to_vec();
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n + 1)
                .x_label_formatter(&move |x: &f64| {
                    // Each group of bars starts at an integer; it is labelled there.
                    if (x - x.round()).abs() < 1e-6 {
                        names.get(x.round() as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .draw()
                .map_err(|e| perr(&e))?;
        }
        for (k, (name, ys)) in [a, b].into_iter().enumerate() {
            let colour = colours[k];
            let series =
                chart
                    .draw_series(ys.iter().enumerate().filter(|(_, v)| v.is_finite()).map(
                        |(i, v)| {
                            let x0 = i as f64 + 0.1 + 0.4 * k as f64;
                            Rectangle::new([(x0, 0.0f64.max(lo)), (x0 + 0.38, *v)], colour.filled())
                        },
                    ))
                    .map_err(|e| perr(&e))?;
            if text {
                series.label(name.to_string()).legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            }
        }
        if text {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| perr(&e))?;
        }
        root.present().map_err(|e| perr(&e))?;
    }
    write_plot_png(path, w, h, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_part_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_json(&p, &serde_json::json!({"x": 1})).unwrap();
        assert!(p.is_file() && !part_path(&p).exists());
        // A destination that is a folder fails, naming it, and leaves nothing behind.
        let d = dir.path().join("sub.csv");
        std::fs::create_dir(&d).unwrap();
        let e = write_csv(&d, &["a"], [["1"]]).unwrap_err();
        assert!(e.to_string().contains("sub.csv"), "{e}");
        assert!(!part_path(&d).exists());
    }
}
