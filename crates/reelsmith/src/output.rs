//! Writing output files: every file is written to a temporary name beside its destination
//! and renamed into place, so a reader never sees half a file.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::Error;

/// An output error naming `path`, from any error message.
pub(crate) fn write_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::write(path, std::io::Error::other(e.to_string()))
}

/// Creates the output folder `dir` (and its parents) when missing.
pub(crate) fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::write(dir, source))
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
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(write_err(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        write_err(path, e)
    })
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
